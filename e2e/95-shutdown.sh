#!/usr/bin/env bash
# Scaling the operator to 0 releases the Lease (holder "", leaseDurationSeconds 1, transitions
# unchanged) and leaves every Pod annotation "false" or the Pod gone. Then it scales back.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
replicas=$(kc get deploy qdrant-operator -n "$OPERATOR_NS" -o jsonpath='{.spec.replicas}')
trap 'kc scale deploy qdrant-operator -n "$OPERATOR_NS" --replicas="$replicas" >/dev/null; wait_for_operator_ready 120' EXIT
wait_for_operator_ready 120
before=$(lease_transitions)
pods=$(operator_pods)
kc scale deploy qdrant-operator -n "$OPERATOR_NS" --replicas=0 >/dev/null

released() { [ -z "$(lease_holder)" ] && exists lease "$LEASE_NAME" -n "$OPERATOR_NS"; }
wait_until 40 'the Lease to be released (holder "")' released
annotations_clear() {
  local p a
  for p in $pods; do
    exists pod "$p" -n "$OPERATOR_NS" || continue
    a=$(leader_annotation "$p")
    [ "$a" = "false" ] || return 1
  done
}
wait_until 40 'every operator Pod to say "false" or be gone' annotations_clear
[ "$(lease_transitions)" = "$before" ] || fail "the release changed leaseTransitions ($before -> $(lease_transitions))"
[ "$(kc get lease "$LEASE_NAME" -n "$OPERATOR_NS" -o jsonpath='{.spec.leaseDurationSeconds}')" = "1" ] \
  || fail "the released Lease does not have leaseDurationSeconds 1"
no_pods() { [ -z "$(kc get pods -n "$OPERATOR_NS" -l app=qdrant-operator -o name)" ]; }
wait_until 40 "every operator Pod to be gone" no_pods
info "Lease released; annotations false or Pods gone"
