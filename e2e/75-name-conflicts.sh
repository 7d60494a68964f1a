#!/usr/bin/env bash
# An object the operator would write but does not own is never overwritten:
# - QdrantClusters `a` and `a-headless` both want the Service `a-headless` (the headless
#   Service of one, the client Service of the other). The first keeps it and keeps working;
#   the second reports Error/NameConflict naming the Service and its owner, and gets nothing.
# - A user's pre-existing Service `user-svc` blocks the QdrantCluster `user-svc` the same
#   way, and is left byte-for-byte as it was. Once the user removes it, the cluster proceeds.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
trap 'delete_qcs a a-headless user-svc; kc delete svc user-svc -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1' EXIT
wait_for_operator_ready 120

apply_qc a 1
wait_for_qc_status a 60 Running Healthy
headless_rv=$(resource_version svc a-headless)
apply_qc a-headless 1
wait_for_qc_status a-headless 30 Error
[ "$(qc_field a-headless .status.reason)" = "NameConflict" ] || fail "reason is $(qc_field a-headless .status.reason), not NameConflict"
msg=$(qc_field a-headless .status.message)
grep -q "Service $TEST_NS/a-headless" <<<"$msg" && grep -q "QdrantCluster a" <<<"$msg" \
  || fail "the message does not name the Service and its owner: $msg"
[ "$(qc_field a-headless '.status.conditions[?(@.type=="Ready")].reason')" = "NameConflict" ] || fail "Ready condition does not say NameConflict"
has_event() { [ -n "$(kc get events -n "$TEST_NS" --field-selector involvedObject.name=a-headless,reason=NameConflict -o name)" ]; }
wait_until 10 "a NameConflict Event on a-headless" has_event
info "a-headless: Error/NameConflict: $msg"
# Nothing of a-headless was created, and a's Service is untouched and still works for a.
for c in "sts a-headless" "cm a-headless" "svc a-headless-headless"; do
  absent $c -n "$TEST_NS" || fail "$c was created although a-headless is blocked"
done
owned_by_qc svc a-headless a || fail "svc a-headless is no longer owned by a"
[ "$(kc get svc a-headless -n "$TEST_NS" -o jsonpath='{.spec.clusterIP}')" = "None" ] || fail "svc a-headless is no longer headless"
status_current() { [ "$(qc_field a-headless .status.observedGeneration)" = "$(qc_field a-headless .metadata.generation)" ]; }
wait_until 10 "a-headless's status to be current" status_current
[ "$(resource_version svc a-headless)" = "$headless_rv" ] || fail "svc a-headless was rewritten"
kc scale qc a -n "$TEST_NS" --replicas=2 >/dev/null
wait_until 30 "a to keep working (scale to 2)" qc_converged a
info "a keeps its Service and keeps reconciling"

# A user's Service.
kc create service clusterip user-svc -n "$TEST_NS" --tcp=80:8080 >/dev/null
user_rv=$(resource_version svc user-svc)
apply_qc user-svc 1
wait_for_qc_status user-svc 30 Error
[ "$(qc_field user-svc .status.reason)" = "NameConflict" ] || fail "user-svc: reason is $(qc_field user-svc .status.reason)"
grep -q "Service $TEST_NS/user-svc already exists and is not owned by this cluster" <<<"$(qc_field user-svc .status.message)" \
  || fail "user-svc: the message does not name the user's Service: $(qc_field user-svc .status.message)"
absent sts user-svc -n "$TEST_NS" || fail "sts user-svc was created although the cluster is blocked"
[ "$(resource_version svc user-svc)" = "$user_rv" ] || fail "the user's Service was modified"
[ -z "$(kc get svc user-svc -n "$TEST_NS" -o jsonpath='{.metadata.ownerReferences}')" ] || fail "the user's Service got an owner"
info "user-svc: blocked by the user's Service, which is untouched"
kc delete svc user-svc -n "$TEST_NS" >/dev/null
wait_for_qc_status user-svc 60 Running Healthy
owned_by_qc svc user-svc user-svc || fail "svc user-svc is not owned by the cluster after the conflict cleared"
info "with the user's Service gone, user-svc proceeds to Running"
