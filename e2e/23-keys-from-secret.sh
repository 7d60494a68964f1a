#!/usr/bin/env bash
# API keys from a user's Secret (apikeySecretKeyRef, readApikeySecretKeyRef): the Pods use the
# Secret's keys; a missing Secret or key, or an empty key, is reported in status and nothing
# is created; setting
# both a literal and a reference is refused by the API server; rotating the Secret rolls the
# Pods, one at a time, onto the new key, and the old key stops working.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=fromsecret
missing=fromsecret-missing
cleanup() {
  delete_qcs "$qc" "$missing"
  kc delete secret user-keys empty-keys -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1 || true
}
trap cleanup EXIT
wait_for_operator_ready 120

user_keys() { # ADMIN READER
  kc create secret generic user-keys -n "$TEST_NS" --from-literal=admin="$1" --from-literal=reader="$2" --dry-run=client -o yaml | kc apply -f - >/dev/null
}

# Refused by the schema: a literal and a reference at once.
if out=$(apply_qc bad 1 "  apikey: 'literal'
  apikeySecretKeyRef: {name: user-keys, key: admin}" 2>&1); then
  fail "a literal key and a Secret reference together were accepted"
fi
grep -q "not both" <<<"$out" || fail "the refusal does not say why: $out"
info "a literal and a reference together: refused by the API server ($(grep -o 'set spec.apikey[^"]*' <<<"$out" | head -1))"

# A Secret that does not exist: reported, nothing created.
apply_qc "$missing" 1 "  apikeySecretKeyRef: {name: no-such-secret, key: admin}"
wait_until 60 "$missing to report the missing Secret" bash -c "[ \"\$('$KUBECTL' get qc '$missing' -n '$TEST_NS' -o jsonpath='{.status.reason}')\" = SecretNotFound ]"
grep -q "no-such-secret" <<<"$(qc_field "$missing" .status.message)" || fail "the status does not name the Secret: $(qc_field "$missing" .status.message)"
absent sts "$missing" -n "$TEST_NS" || fail "a StatefulSet was created without its key"
info "missing Secret: $(qc_field "$missing" .status.message)"
# An empty key would turn authentication off: it counts as missing.
kc create secret generic empty-keys -n "$TEST_NS" --from-literal=admin= >/dev/null
apply_qc "$missing" 1 "  apikeySecretKeyRef: {name: empty-keys, key: admin}"
names_empty() { grep -q "empty-keys.*or it is empty" <<<"$(qc_field "$missing" .status.message)"; }
wait_until 60 "$missing to report the empty key" names_empty
absent sts "$missing" -n "$TEST_NS" || fail "a StatefulSet was created with an empty key"
info "empty key: $(qc_field "$missing" .status.message)"

user_keys admin-one reader-one
apply_qc "$qc" 3 "  apikeySecretKeyRef: {name: user-keys, key: admin}
  readApikeySecretKeyRef: {name: user-keys, key: reader}
  persistence: {size: 1Gi}"
wait_until 120 "$qc to be Healthy" qc_status_is "$qc" Healthy
every_pod() { # CODE METHOD PATH KEY [BODY]
  local i got
  for i in 0 1 2; do
    got=$(qdrant_status_code "$2" "$(qdrant_url "$qc-$i" "$qc")$3" "$4" "${5:-}")
    [ "$got" = "$1" ] || { echo "$2 $3 on $qc-$i with key '${4:-none}': $got, expected $1"; return 1; }
  done
}
every_pod 200 GET /collections admin-one || fail "the Secret's API key does not work"
every_pod 200 GET /collections reader-one || fail "the Secret's read-only key does not read"
every_pod 403 PUT /collections/x reader-one '{"vectors": {"size": 4, "distance": "Dot"}}' || fail "the read-only key may write"
every_pod 401 GET /collections "" || fail "Qdrant answers without a key"
[ "$(secret_key "$qc-apikey" api-key)" = admin-one ] || fail "$qc-apikey does not hold the key in effect"
create_collection "$(qdrant_url "$qc-0" "$qc")" admin-one c '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3, "replication_factor": 2}'
upsert_points "$(qdrant_url "$qc-0" "$qc")" admin-one c 100
info "keys from user-keys in effect on every Pod; 100 points"

# Rotation: the Secret changes, the Pods roll onto the new key.
before=$E2E_STATE/fromsecret-before.txt
qpod_uids "$qc" >"$before"
user_keys admin-two reader-one
wait_until 300 "the Pods to restart onto the rotated key" restarted_all "$qc" "$before"
every_pod 200 GET /collections admin-two || fail "the rotated key does not work"
every_pod 401 GET /collections admin-one || fail "the old key still works"
[ "$(count_points "$(qdrant_url "$qc-0" "$qc")" admin-two c)" = 100 ] || fail "points lost across the rotation"
info "rotated: every Pod restarted onto admin-two, admin-one refused, 100 points kept"
