#!/usr/bin/env bash
# TLS without a secretName: the operator makes a CA (Secret <qc>-ca) and a certificate (Secret
# <qc>-server-cert) whose names cover both Services and every Pod, short, namespaced and fully
# qualified. The peers form their cluster over TLS with it (each verifies the others' names
# against the CA), the operator reaches every Pod over HTTPS with it, and every Pod serves it.
# With a validity of 3 minutes and renewBefore of 2, the certificate is renewed about a
# minute after it was issued, before it expires, from the same CA, and no Pod restarts for it.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=gentls
work=$(mktemp -d)
cleanup() {
  delete_qcs "$qc"
  kc delete secret "$qc-ca" "$qc-server-cert" -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_for_operator_ready 120

apply_qc "$qc" 3 "  apikey: 'true'
  persistence: {size: 1Gi}
  tls: {enabled: true, certificateValidity: 3m, renewBefore: 2m}"
wait_until 180 "$qc to be Healthy over TLS" qc_status_is "$qc" Healthy
key=$(secret_key "$qc-apikey" api-key)
secret_key "$qc-ca" 'cacert\.pem' >"$work/ca.pem"
secret_key "$qc-server-cert" 'cert\.pem' >"$work/cert.pem"
cmp -s "$work/ca.pem" <(secret_key "$qc-server-cert" 'cacert\.pem') || fail "the certificate Secret's CA bundle is not the CA"
openssl verify -CAfile "$work/ca.pem" "$work/cert.pem" >/dev/null || fail "the certificate is not signed by the CA"
sans=$(openssl x509 -in "$work/cert.pem" -noout -ext subjectAltName)
for svc in "$qc" "$qc-headless"; do
  for n in "$svc" "$svc.$TEST_NS" "$svc.$TEST_NS.svc" "$svc.$TEST_NS.svc.cluster.local"; do
    grep -q "DNS:$n\(,\|$\)" <<<"$sans" || fail "the certificate does not name $n: $sans"
  done
done
for i in 0 1 2; do
  h=$qc-$i.$qc-headless
  for n in "$h" "$h.$TEST_NS" "$h.$TEST_NS.svc" "$h.$TEST_NS.svc.cluster.local"; do
    grep -q "DNS:$n\(,\|$\)" <<<"$sans" || fail "the certificate does not name $n: $sans"
  done
  # Every Pod serves it, verified against the CA for the Pod's own name.
  got=$(curl -s -m 10 -o /dev/null -w '%{http_code}' --cacert "$work/ca.pem" -H "api-key: $key" "https://$h.$TEST_NS:6333/collections") || true
  [ "$got" = 200 ] || fail "$qc-$i does not serve the certificate for its name (curl: $got)"
done
[ "$(qc_field "$qc" .status.qdrant.peerCount)" = 3 ] || fail "the peers did not form one cluster over TLS"
info "CA and certificate made; $(grep -o 'DNS:' <<<"$sans" | wc -l) names, both Services and 3 Pods in 4 forms; every Pod serves it, verified by name"

# Renewal: due 1 minute after issue, 2 minutes before expiry.
not_after() { openssl x509 -in "$1" -noout -enddate | cut -d= -f2; }
old_end=$(date -d "$(not_after "$work/cert.pem")" +%s)
old_serial=$(openssl x509 -in "$work/cert.pem" -noout -serial)
uids=$(qpod_uids "$qc")
renewed() { [ "$(secret_key "$qc-server-cert" 'cert\.pem' | openssl x509 -noout -serial)" != "$old_serial" ]; }
wait_until 150 "the certificate to be renewed" renewed
at=$(date +%s)
[ "$at" -lt "$old_end" ] || fail "renewed only at $(date -d "@$at"), after the old certificate expired ($(date -d "@$old_end"))"
secret_key "$qc-server-cert" 'cert\.pem' >"$work/new.pem"
new_end=$(date -d "$(not_after "$work/new.pem")" +%s)
[ "$new_end" -gt "$old_end" ] || fail "the renewed certificate does not last longer"
openssl verify -CAfile "$work/ca.pem" "$work/new.pem" >/dev/null || fail "the renewed certificate is not from the same CA"
cmp -s "$work/ca.pem" <(secret_key "$qc-ca" 'cacert\.pem') || fail "the CA changed"
[ "$(qpod_uids "$qc")" = "$uids" ] || fail "Pods were restarted for the renewal"
wait_until 30 "$qc still Healthy" qc_status_is "$qc" Healthy
info "renewed $((old_end - at)) s before expiry, same CA, valid until $(date -d "@$new_end" +%T); no Pod restarted"
