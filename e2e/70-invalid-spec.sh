#!/usr/bin/env bash
# The schema refuses what it can, with its message. What it cannot refuse becomes
# Error/InvalidSpec naming the problem, with nothing created. Fixing the spec recovers.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
trap 'delete_qcs bad-schema bad-semantic' EXIT
wait_for_operator_ready 120

# refused SPEC_YAML EXPECTED_MESSAGE: the API server refuses the object and says why.
refused() {
  local out
  if out=$(printf 'apiVersion: qdrant.operator/v1alpha1\nkind: QdrantCluster\nmetadata: {name: bad-schema}\nspec: %s\n' "$1" \
      | kc apply -n "$TEST_NS" -f - 2>&1); then
    fail "the API server accepted: $1"
  fi
  grep -qF "$2" <<<"$out" || fail "refusal of [$1] does not say '$2': $out"
}
refused '{replicas: 0, image: "qdrant/qdrant:v1.16.3"}' "spec.replicas"
refused "{replicas: 1, image: \"qdrant/qdrant:v1.16.3\", apikey: 'false', readApikey: 'true'}" \
  "spec.readApikey can be used only with spec.apikey enabled"
refused '{replicas: 1, image: "qdrant/qdrant:v1.16.3", service: Fancy}' "spec.service"
refused '{replicas: 1}' "spec.image"
exists qc bad-schema -n "$TEST_NS" && fail "a refused object exists"
info "schema refusals carry their messages"

apply_qc bad-semantic 1 "  tls: {enabled: true, renewBefore: soon}
  persistence: {size: 10GB}"
wait_for_qc_status bad-semantic 15 Error
[ "$(qc_field bad-semantic .status.reason)" = "InvalidSpec" ] || fail "reason is not InvalidSpec"
msg=$(qc_field bad-semantic .status.message)
grep -qF "spec.tls.renewBefore" <<<"$msg" || fail "message does not name spec.tls.renewBefore: $msg"
grep -qF "spec.persistence.size" <<<"$msg" || fail "message does not name spec.persistence.size: $msg"
for o in "sts bad-semantic" "svc bad-semantic" "svc bad-semantic-headless" "cm bad-semantic"; do
  exists $o -n "$TEST_NS" && fail "$o was created for an invalid spec"
done
has_event() { [ -n "$(kc get events -n "$TEST_NS" --field-selector involvedObject.name=bad-semantic,reason=InvalidSpec -o name)" ]; }
wait_until 5 "an InvalidSpec Event on the cluster" has_event
info "invalid spec: Error/InvalidSpec naming both problems, nothing created, Event recorded"

kc patch qc bad-semantic -n "$TEST_NS" --type json \
  -p '[{"op":"replace","path":"/spec/tls","value":{"enabled":false}},{"op":"remove","path":"/spec/persistence"}]' >/dev/null
wait_until 30 "the fixed cluster to converge" qc_converged bad-semantic
info "fixing the spec recovered the cluster"
