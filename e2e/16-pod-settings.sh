#!/usr/bin/env bash
# Pod settings users of the Helm chart and of the JavaScript operator expect, through the real
# API server's validation: nodeSelector, priorityClassName, imagePullSecrets, Pod and Service
# annotations, extra env, a startupProbe, snapshots on a claim per Pod, and the NetworkPolicy
# (REST and gRPC open, p2p only from the cluster's own Pods), deleted again when turned off.
# Also: `kubectl explain` documents every field the CRD gained for them and for the takeover.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=podset
cleanup() {
  delete_qcs "$qc"
  kc delete priorityclass qdrant-high --ignore-not-found >/dev/null 2>&1 || true
}
trap cleanup EXIT
wait_for_operator_ready 120

for f in apikeySecretKeyRef readApikeySecretKeyRef paused nodeSelector priorityClassName imagePullSecrets \
  podAnnotations serviceAnnotations env startupProbe startupProbe.failureThreshold snapshotPersistence \
  snapshotPersistence.size networkPolicy networkPolicy.clientFrom tls.certificateValidity tls.renewBefore persistence.size; do
  text=$(kc explain "qc.spec.$f" 2>/dev/null | awk '/^DESCRIPTION:/ { d = 1; next } d && NF { print; exit }')
  [ -n "$text" ] || fail "kubectl explain qc.spec.$f has no description"
done
info "kubectl explain documents every new field"

kc apply -f - >/dev/null <<EOF2
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: qdrant-high}
value: 1000
EOF2
apply_qc "$qc" 2 "  nodeSelector: {kubernetes.io/os: linux}
  priorityClassName: qdrant-high
  imagePullSecrets: [{name: regcred}]
  podAnnotations: {example.com/scrape: 'true'}
  serviceAnnotations: {service.beta.kubernetes.io/aws-load-balancer-internal: 'true'}
  env: [{name: QDRANT__LOG_LEVEL, value: DEBUG}]
  startupProbe: {failureThreshold: 60}
  persistence: {size: 1Gi}
  snapshotPersistence: {size: 1Gi}
  networkPolicy: {enabled: true}"
wait_until 120 "$qc to be Healthy" qc_status_is "$qc" Healthy
pod=$(kc get pod "$qc-0" -n "$TEST_NS" -o json)
python3 - "$pod" <<'PY' || fail "the Pod lacks a setting"
import json, sys
p = json.loads(sys.argv[1])
s, c = p["spec"], p["spec"]["containers"][0]
checks = {
    "nodeSelector": s.get("nodeSelector") == {"kubernetes.io/os": "linux"},
    "priorityClassName": s.get("priorityClassName") == "qdrant-high" and s.get("priority") == 1000,
    "imagePullSecrets": s.get("imagePullSecrets") == [{"name": "regcred"}],
    "annotation": p["metadata"]["annotations"].get("example.com/scrape") == "true",
    "env": {"name": "QDRANT__LOG_LEVEL", "value": "DEBUG"} in c["env"],
    "startupProbe": c.get("startupProbe", {}).get("failureThreshold") == 60,
    "snapshot claim": any(v["name"] == "qdrant-snapshots" and v.get("persistentVolumeClaim") for v in s["volumes"]),
}
bad = [k for k, ok in checks.items() if not ok]
print("  Pod settings:", ", ".join(f"{k} {'ok' if ok else 'MISSING'}" for k, ok in checks.items()))
sys.exit(1 if bad else 0)
PY
[ "$(kc get svc "$qc" -n "$TEST_NS" -o jsonpath='{.metadata.annotations.service\.beta\.kubernetes\.io/aws-load-balancer-internal}')" = true ] || fail "the Service annotation is missing"
exists pvc "qdrant-snapshots-$qc-1" -n "$TEST_NS" || fail "no snapshot claim for $qc-1"
np=$(kc get networkpolicy "$qc" -n "$TEST_NS" -o json)
python3 - "$np" "$qc" <<'PY' || fail "the NetworkPolicy is not as documented"
import json, sys
np, qc = json.loads(sys.argv[1]), sys.argv[2]
rules = np["spec"]["ingress"]
ports = lambda r: sorted(p["port"] for p in r["ports"])
client = [r for r in rules if ports(r) == [6333, 6334]]
p2p = [r for r in rules if ports(r) == [6335]]
assert client and "from" not in client[0], rules
assert p2p and p2p[0]["from"] == [{"podSelector": {"matchLabels": {"clustername": qc, "component": "qdrant"}}}], rules
assert np["spec"]["podSelector"]["matchLabels"] == {"clustername": qc, "component": "qdrant"}
print("  NetworkPolicy: 6333/6334 from anywhere, 6335 only from the cluster's Pods")
PY
apply_qc "$qc" 2 "  persistence: {size: 1Gi}
  snapshotPersistence: {size: 1Gi}
  networkPolicy: {enabled: false}"
wait_until 60 "the NetworkPolicy deleted when turned off" absent networkpolicy "$qc" -n "$TEST_NS"
info "settings in the Pod and Service; NetworkPolicy made, then deleted when turned off"
