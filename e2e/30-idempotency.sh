#!/usr/bin/env bash
# Once a cluster is Ready, 30 s without a spec change move no child's resourceVersion, nor the
# StatefulSet's generation, nor the CR's own resourceVersion (no status rewrites).
set -euo pipefail
source "$(dirname "$0")/utils.sh"
trap 'delete_qcs idem' EXIT
wait_for_operator_ready 120
apply_qc idem 3 "  apikey: 'true'
  readApikey: 'true'"
wait_until 60 "idem to converge" qc_converged idem
objects=("sts idem" "svc idem" "svc idem-headless" "cm idem" "pdb idem" "secret idem-apikey" "secret idem-read-apikey" "secret idem-auth-config" "qc idem")
snapshot() {
  local o
  for o in "${objects[@]}"; do echo "$o $(resource_version $o)"; done
  echo "sts-generation $(kc get sts idem -n "$TEST_NS" -o jsonpath='{.metadata.generation}')"
}
before=$(snapshot)
grep -q ' $' <<<"$before" && fail "an expected child is missing: $before"
key=$(kc get secret idem-apikey -n "$TEST_NS" -o jsonpath='{.data.api-key}')
info "watching for 30 s"
sleep 30 # the assertion is that nothing happens during this interval
after=$(snapshot)
if [ "$before" != "$after" ]; then
  diff <(echo "$before") <(echo "$after") >&2 || true
  fail "objects changed with no spec change"
fi
[ "$key" = "$(kc get secret idem-apikey -n "$TEST_NS" -o jsonpath='{.data.api-key}')" ] || fail "the generated API key changed"
info "no resourceVersion moved in 30 s across ${#objects[@]} objects; the generated key is unchanged"

# Turning authentication off removes the derived auth config but keeps the generated keys;
# turning it back on restores the very same key rather than generating a new one.
kc patch qc idem -n "$TEST_NS" --type merge -p '{"spec":{"apikey":"false","readApikey":"false"}}' >/dev/null
wait_until 10 "the auth config Secret to be deleted" absent secret idem-auth-config -n "$TEST_NS"
exists secret idem-apikey -n "$TEST_NS" || fail "the generated key Secret was deleted"
kc patch qc idem -n "$TEST_NS" --type merge -p '{"spec":{"apikey":"true"}}' >/dev/null
wait_until 10 "the auth config Secret to come back" exists secret idem-auth-config -n "$TEST_NS"
[ "$key" = "$(kc get secret idem-apikey -n "$TEST_NS" -o jsonpath='{.data.api-key}')" ] || fail "re-enabling apikey generated a new key"
info "auth off and on again: auth config removed and restored, the generated key kept"
