#!/usr/bin/env bash
# A scale-down that would lose data is refused: with replication factor 1, the peer of the
# Pod that goes holds the only copy of a shard, and that Pod does not answer (its process is
# frozen). The operator reports ScaleDownBlocked naming the collection and the shard, and keeps
# every Pod. Once the Pod answers again, the scale-down completes with every point.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=blocked
trap 'thaw_qpods; delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
cluster_with_points "$qc" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3, "replication_factor": 1}' 300
peer2=$(qc_field "$qc" ".status.qdrant.peers[?(@.pod==\"$qc-2\")].peerId")
collection_replicas "$url" "$key" c | awk -v p="$peer2" '$2 == p' | grep -q . || fail "$qc-2 holds no shard of c"

freeze_qpod "$qc-2"
kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"replicas":2}}' >/dev/null
blocked() {
  [ "$(qc_field "$qc" '.status.conditions[?(@.type=="ScaleDownBlocked")].status')" = True ] \
    && grep -q "shard [0-9]* of c" <<<"$(qc_field "$qc" '.status.conditions[?(@.type=="ScaleDownBlocked")].message')"
}
wait_until 90 "ScaleDownBlocked naming a shard of c" blocked
info "blocked: $(qc_field "$qc" '.status.conditions[?(@.type=="ScaleDownBlocked")].message')"
[ "$(qc_field "$qc" .status.qdrantStatus)" = OperationInProgress ] || fail "qdrantStatus is $(qc_field "$qc" .status.qdrantStatus)"
[ "$(kc get sts "$qc" -n "$TEST_NS" -o jsonpath='{.spec.replicas}')" = 3 ] || fail "the StatefulSet was shrunk"
exists pod "$qc-2" -n "$TEST_NS" || fail "$qc-2 was deleted"
exists pvc "qdrant-storage-$qc-2" -n "$TEST_NS" || fail "the volume of $qc-2 was deleted"
info "every Pod and volume kept"

thaw_qpods
scaled() { qc_converged "$qc" && [ -z "$(qc_field "$qc" .status.operation.type)" ] && [ "$(qc_field "$qc" .status.qdrant.peerCount)" = 2 ]; }
wait_until 240 "$qc to drain down to 2 peers once $qc-2 answers" scaled
[ "$(count_points "$url" "$key" c)" = 300 ] || fail "after the scale-down: $(count_points "$url" "$key" c) points, not 300"
[ -z "$(qc_field "$qc" '.status.conditions[?(@.type=="ScaleDownBlocked")].status')" ] || fail "ScaleDownBlocked is still set"
info "unblocked: scaled down to 2 with all 300 points"
