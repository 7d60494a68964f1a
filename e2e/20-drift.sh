#!/usr/bin/env bash
# A deleted StatefulSet, a StatefulSet scaled to 0 by hand, a deleted Service and an edited
# ConfigMap are each restored within 5 s.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
trap 'delete_qcs drift' EXIT
wait_for_operator_ready 120
apply_qc drift 1
wait_for_qc_status drift 30 Running Healthy

uid=$(kc get sts drift -n "$TEST_NS" -o jsonpath='{.metadata.uid}')
kc delete sts drift -n "$TEST_NS" --wait=false >/dev/null
new_sts() { local u; u=$(kc get sts drift -n "$TEST_NS" -o jsonpath='{.metadata.uid}' 2>/dev/null); [ -n "$u" ] && [ "$u" != "$uid" ]; }
wait_until 5 "the deleted StatefulSet to be recreated" new_sts
info "deleted StatefulSet recreated"

kc scale sts drift -n "$TEST_NS" --replicas=0 >/dev/null
sts_replicas_is_1() { [ "$(kc get sts drift -n "$TEST_NS" -o jsonpath='{.spec.replicas}')" = "1" ]; }
# The scale must have landed before we can see it undone: wait for the generation to move.
wait_until 5 "StatefulSet replicas restored to 1 after a manual scale to 0" sts_replicas_is_1
gen=$(kc get sts drift -n "$TEST_NS" -o jsonpath='{.metadata.generation}')
[ "$gen" -ge 2 ] || fail "the manual scale never reached the StatefulSet (generation $gen)"
info "manual scale to 0 undone"

kc delete svc drift-headless -n "$TEST_NS" --wait=false >/dev/null
wait_until 5 "the headless Service to be recreated" exists svc drift-headless -n "$TEST_NS"
info "deleted Service recreated"

kc patch cm drift -n "$TEST_NS" --type merge -p '{"data":{"production.yaml":"tampered: true\n"}}' >/dev/null
cm_restored() { ! kc get cm drift -n "$TEST_NS" -o jsonpath='{.data.production\.yaml}' | grep -q tampered; }
wait_until 5 "the edited ConfigMap to be restored" cm_restored
info "edited ConfigMap restored"
