#!/usr/bin/env bash
# Scale-down with replication factor 2, 3 -> 2: every shard still has 2 Active replicas
# afterwards, on the 2 peers that stay, and no point is lost. Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=shrink-rf2
trap 'delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
cluster_with_points "$qc" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3, "replication_factor": 2}' 500
info "500 points in 3 shards, 2 replicas each, over 3 peers"

kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"replicas":2}}' >/dev/null
scaled() { qc_converged "$qc" && [ -z "$(qc_field "$qc" .status.operation.type)" ] && [ "$(qc_field "$qc" .status.qdrant.peerCount)" = 2 ]; }
wait_until 240 "$qc to drain down to 2 peers" scaled
replicas=$(collection_replicas "$url" "$key" c)
for shard in 0 1 2; do
  active=$(awk -v s="$shard" '$1 == s && $3 == "Active"' <<<"$replicas" | wc -l)
  [ "$active" = 2 ] || fail "shard $shard has $active Active replicas, not 2: $replicas"
done
[ "$(awk '{ print $2 }' <<<"$replicas" | sort -u | wc -l)" = 2 ] || fail "replicas on other peers than the 2 that stay: $replicas"
[ "$(count_points "$url" "$key" c)" = 500 ] || fail "after the scale-down: $(count_points "$url" "$key" c) points, not 500"
info "scaled down to 2: every shard has 2 Active replicas, 500 points"
