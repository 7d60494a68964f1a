#!/usr/bin/env bash
# Scale-up 1 -> 3 with rebalancing (spec.rebalance, on by default): a collection of 6 shards
# with replication factor 2 lives on 1 peer (so every shard has 1 replica). Once the new peers
# have joined, the operator copies each shard to meet the factor and spreads the replicas: 12
# replicas, 4 on each peer, every one Active, and no point lost. Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=grow
trap 'delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
cluster_with_points "$qc" 1 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 2}' 600
info "600 points in 6 shards (replication factor 2) on 1 peer"

kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"replicas":3}}' >/dev/null
grown() { qc_converged "$qc" && [ -z "$(qc_field "$qc" .status.operation.type)" ] && [ "$(qc_field "$qc" .status.qdrant.peerCount)" = 3 ]; }
wait_until 240 "$qc to grow to 3 peers and rebalance" grown
replicas=$(collection_replicas "$url" "$key" c)
for shard in 0 1 2 3 4 5; do
  active=$(awk -v s="$shard" '$1 == s && $3 == "Active"' <<<"$replicas" | wc -l)
  [ "$active" = 2 ] || fail "shard $shard has $active Active replicas, not 2: $replicas"
done
per_peer=$(awk '{ print $2 }' <<<"$replicas" | sort | uniq -c | awk '{ print $1 }' | sort -n | tr '\n' ' ')
[ "$per_peer" = "4 4 4 " ] || fail "replicas per peer: $per_peer, not 4 4 4"
[ "$(count_points "$url" "$key" c)" = 600 ] || fail "after the scale-up: $(count_points "$url" "$key" c) points, not 600"
info "grown to 3: every shard has 2 Active replicas, 4 replicas on each peer, 600 points"
