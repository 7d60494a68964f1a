#!/usr/bin/env bash
# Safe scale-down, 3 -> 1: a collection of 1,000 points in 6 shards with replication factor 1
# (so every peer holds the only copy of some shards). Lowering replicas makes the operator move
# every shard off the Pods that go, remove their peers from the consensus (without force), and
# only then shrink the StatefulSet and delete their volumes. Afterwards: 1,000 points, 1 peer
# in consensus, the removed Pods' PVCs gone. Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=shrink
trap 'delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
cluster_with_points "$qc" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 1}' 1000
[ "$(count_points "$url" "$key" c)" = 1000 ] || fail "expected 1000 points before the scale-down"
holders=$(shard_holders "$url" "$key" c)
[ "$holders" = 3 ] || fail "the 6 shards are on $holders peers, not 3"
info "1000 points in 6 shards (replication factor 1) over 3 peers"

kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"replicas":1}}' >/dev/null
scaled() { qc_converged "$qc" && [ -z "$(qc_field "$qc" .status.operation.type)" ] && [ "$(qc_field "$qc" .status.qdrant.peerCount)" = 1 ]; }
wait_until 240 "$qc to drain down to 1 peer" scaled
[ "$(count_points "$url" "$key" c)" = 1000 ] || fail "after the scale-down: $(count_points "$url" "$key" c) points, not 1000"
peers=$(qdrant_http GET "$url/cluster" "$key" | sed -n 2p | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["result"]["peers"]))')
[ "$peers" = 1 ] || fail "$peers peers in consensus, not 1"
wait_until 60 "the volumes of $qc-1 and $qc-2 to be deleted" absent pvc "qdrant-storage-$qc-1" "qdrant-storage-$qc-2" -n "$TEST_NS"
exists pvc "qdrant-storage-$qc-0" -n "$TEST_NS" || fail "the volume of $qc-0 is gone"
info "scaled down to 1: 1000 points, 1 peer in consensus, the volumes of $qc-1 and $qc-2 deleted"
