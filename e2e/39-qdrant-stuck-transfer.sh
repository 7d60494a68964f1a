#!/usr/bin/env bash
# A stuck shard transfer during a scale-down (2 -> 1) is aborted and started again, and
# reported: the source peer's transfers are stalled (the stand-in's fault hook), and with
# TRANSFER_STALL_TIMEOUT=5s the operator aborts the transfer, says so in an Event and in
# qdrant_operator_transfers_aborted_total, and starts it again; the StatefulSet keeps both Pods
# meanwhile. Healed, the scale-down completes with every point. A real Qdrant has no way to
# stall a transfer on demand, so this suite is not run with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
if [ -n "${QDRANT_BIN:-}" ]; then
  info "a stalled transfer needs the stand-in's fault hook: not run against $QDRANT_BIN"
  exit 0
fi
qc=stuck
source_url=$(qdrant_url "$qc-1" "$qc")
cleanup() {
  qdrant_http POST "$source_url/__standin/heal" >/dev/null || true
  delete_qcs "$qc"
  kc set env deploy/qdrant-operator -n "$OPERATOR_NS" TRANSFER_STALL_TIMEOUT- >/dev/null
  wait_for_operator_ready 180
}
trap cleanup EXIT
wait_for_operator_ready 120
kc set env deploy/qdrant-operator -n "$OPERATOR_NS" TRANSFER_STALL_TIMEOUT=5s >/dev/null
wait_for_operator_ready 180
cluster_with_points "$qc" 2 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 4, "replication_factor": 1}' 400
[ "$(qdrant_status_code POST "$source_url/__standin/stall_transfers")" = 200 ] || fail "the stand-in's stall hook did not answer"

kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"replicas":1}}' >/dev/null
aborted() { metric_value "$(get_leader_pod)" "qdrant_operator_transfers_aborted_total{cluster_name=\"$qc\",cluster_namespace=\"$TEST_NS\"}"; }
aborted_twice() { [ "$(aborted)" -ge 2 ] 2>/dev/null; }
wait_until 90 "the stalled transfer to be aborted, started again and aborted again" aborted_twice
shows_transfer() { [ "$(qc_field "$qc" .status.operation.transfer.collection)" = c ]; }
wait_until 30 "status.operation to show the transfer waited for" shows_transfer
[ "$(kc get sts "$qc" -n "$TEST_NS" -o jsonpath='{.spec.replicas}')" = 2 ] || fail "the StatefulSet shrank while a transfer was stuck"
uid=$(kc get qc "$qc" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')
[ -n "$(kc get events -n "$TEST_NS" --field-selector "reason=TransferAborted,involvedObject.uid=$uid" -o name)" ] || fail "no TransferAborted Event"
info "$(aborted) aborts counted by the leader and reported in an Event; still 2 Pods"

[ "$(qdrant_status_code POST "$source_url/__standin/heal")" = 200 ] || fail "heal failed"
scaled() { qc_converged "$qc" && [ -z "$(qc_field "$qc" .status.operation.type)" ] && [ "$(qc_field "$qc" .status.qdrant.peerCount)" = 1 ]; }
wait_until 120 "the scale-down to complete once transfers move again" scaled
[ "$(count_points "$url" "$key" c)" = 400 ] || fail "after the scale-down: $(count_points "$url" "$key" c) points, not 400"
info "healed: scaled down to 1 peer with 400 points"
