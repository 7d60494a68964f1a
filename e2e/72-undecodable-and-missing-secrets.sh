#!/usr/bin/env bash
# Objects the operator cannot act upon are reported, and never stop the others:
# - a QdrantCluster whose spec.config is nested 200 levels deep (accepted by the API server,
#   beyond what the operator's JSON decoder takes) gets Error/Undecodable, an Event, and the
#   gauge qdrant_operator_undecodable_objects; a good cluster beside it keeps reconciling,
#   also on a replica that starts (and lists) after the bad one exists;
# - a QdrantCluster whose TLS Secret does not exist gets Error/SecretNotFound naming the
#   Secret, and nothing is created; once the Secret exists it proceeds.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
trap 'delete_qcs deep good tls-missing; kc delete secret tls-missing-certs -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1' EXIT
wait_for_operator_ready 120

apply_qc good 1
wait_for_qc_status good 60 Running Healthy
python3 - <<'PY' | kc create -n "$TEST_NS" -f - >/dev/null
import json
config = 1
for _ in range(200):
    config = {"a": config}
print(json.dumps({"apiVersion": "qdrant.operator/v1alpha1", "kind": "QdrantCluster", "metadata": {"name": "deep"},
                  "spec": {"replicas": 1, "image": "qdrant/qdrant:v1.16.3", "config": config}}))
PY
wait_for_qc_status deep 30 Error
[ "$(qc_field deep .status.reason)" = "Undecodable" ] || fail "reason is $(qc_field deep .status.reason), not Undecodable"
grep -q "recursion limit" <<<"$(qc_field deep .status.message)" || fail "the message does not say why: $(qc_field deep .status.message)"
has_event() { [ -n "$(kc get events -n "$TEST_NS" --field-selector involvedObject.name=deep,reason=Undecodable -o name)" ]; }
wait_until 10 "an Undecodable Event on deep" has_event
leader=$(get_leader_pod)
gauge_is_one() { [ "$(metric_value "$leader" 'qdrant_operator_undecodable_objects{kind="QdrantCluster"}')" = "1" ]; }
wait_until 5 "qdrant_operator_undecodable_objects to be 1 on $leader" gauge_is_one
absent sts deep -n "$TEST_NS" || fail "a StatefulSet was created for the undecodable cluster"
info "deep: Error/Undecodable, Event, gauge = 1, nothing created"

kc scale qc good -n "$TEST_NS" --replicas=2 >/dev/null
wait_until 30 "good to keep reconciling beside deep" qc_converged good
# A new leader lists every cluster, deep included, when it starts.
old=$(delete_leader)
wait_until 10 "a new leader after deleting $old" new_holder_other_than "$old"
wait_for_operator_ready 60
kc scale qc good -n "$TEST_NS" --replicas=1 >/dev/null
wait_until 30 "good to reconcile under the new leader" qc_converged good
info "good keeps reconciling, also after a failover (every replica lists deep)"

# A missing TLS Secret.
apply_qc tls-missing 1 "  tls: {enabled: true, secretName: tls-missing-certs}"
wait_for_qc_status tls-missing 30 Error
[ "$(qc_field tls-missing .status.reason)" = "SecretNotFound" ] || fail "reason is $(qc_field tls-missing .status.reason), not SecretNotFound"
grep -q "Secret $TEST_NS/tls-missing-certs (spec.tls.secretName) does not exist" <<<"$(qc_field tls-missing .status.message)" \
  || fail "the message does not name the Secret: $(qc_field tls-missing .status.message)"
[ "$(qc_field tls-missing '.status.conditions[?(@.type=="Ready")].reason')" = "SecretNotFound" ] || fail "Ready condition does not say SecretNotFound"
absent sts tls-missing -n "$TEST_NS" || fail "a StatefulSet was created without its TLS Secret"
info "tls-missing: Error/SecretNotFound naming the Secret; nothing created"
tmp=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=tls-missing" -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1
kc create secret generic tls-missing-certs -n "$TEST_NS" --from-file=cert.pem="$tmp/cert.pem" \
  --from-file=key.pem="$tmp/key.pem" --from-file=cacert.pem="$tmp/cert.pem" >/dev/null
rm -rf "$tmp"
wait_for_qc_status tls-missing 60 Running Healthy
info "with the Secret created, tls-missing proceeds to Running"
