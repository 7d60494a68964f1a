#!/usr/bin/env bash
# spec.paused: the operator stops acting on one cluster. While paused, a replicas change is
# acknowledged (status condition Paused, observedGeneration) and not applied, the StatefulSet
# is not written at all, and `kubectl get qc` shows it in the Paused column. Unpaused, the
# change is applied and the condition goes.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=paused
trap 'delete_qcs "$qc"' EXIT
wait_for_operator_ready 120

apply_qc "$qc" 1 ""
wait_until 120 "$qc to be Healthy" qc_status_is "$qc" Healthy
kc patch qc "$qc" -n "$TEST_NS" --type=merge -p '{"spec":{"paused":true}}' >/dev/null
paused_for_generation() {
  [ "$(qc_field "$qc" '.status.conditions[?(@.type=="Paused")].status')" = True ] \
    && [ "$(qc_field "$qc" .status.observedGeneration)" = "$(qc_field "$qc" .metadata.generation)" ]
}
wait_until 30 "the Paused condition" paused_for_generation
rv=$(resource_version sts "$qc")
kc patch qc "$qc" -n "$TEST_NS" --type=merge -p '{"spec":{"replicas":2}}' >/dev/null
wait_until 30 "the paused status for the replicas change" paused_for_generation
[ "$(kc get sts "$qc" -n "$TEST_NS" -o jsonpath='{.spec.replicas}')" = 1 ] || fail "a paused cluster was scaled"
[ "$(resource_version sts "$qc")" = "$rv" ] || fail "the StatefulSet of a paused cluster was written"
column=$(kc get qc "$qc" -n "$TEST_NS" | awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "PAUSED") c = i } NR == 2 { print $c }')
[ "$column" = true ] || fail "kubectl get qc does not show it paused (PAUSED column: '$column')"
info "paused: replicas 1 -> 2 acknowledged ($(qc_field "$qc" .status.reason)), StatefulSet untouched, PAUSED column true"

kc patch qc "$qc" -n "$TEST_NS" --type=merge -p '{"spec":{"paused":false}}' >/dev/null
resumed() { qc_converged "$qc" && [ -z "$(qc_field "$qc" '.status.conditions[?(@.type=="Paused")].status')" ] && qdrant_health_is "$qc" Healthy; }
wait_until 120 "the scale to 2 applied once unpaused" resumed
info "unpaused: scaled to 2, Healthy, no Paused condition"
