#!/usr/bin/env bash
# Starts a real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (RBAC, JSON audit
# log), kube-controller-manager, kube-scheduler, kwok as the fake kubelet, and three Nodes.
# Idempotent: if it is already up, it says so and returns. If any component fails to start,
# it stops everything it started, says which component and why, and exits non-zero.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BIN=$("$ROOT/e2e/cluster/build.sh")
KUBECTL="$BIN/kubectl --kubeconfig=$STATE/kubeconfig"

if [ -f "$STATE/kubeconfig" ] && pid_alive kube-apiserver && $KUBECTL get --raw /readyz >/dev/null 2>&1; then
  log "already up (KUBECONFIG=$STATE/kubeconfig)"
  exit 0
fi
"$ROOT/e2e/cluster/down.sh" >/dev/null 2>&1 || true

t_start=$SECONDS
mkdir -p "$STATE/pki" "$PIDS" "$LOGS" "$STATE/etcd"
echo "$BIN" > "$STATE/bin-dir"

fail() {
  log "FAILED: $*"
  "$ROOT/e2e/cluster/down.sh" >/dev/null 2>&1 || true
  exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start NAME CMD...: runs CMD supervised (restarted when it exits, as a kubelet restarts a
# static Pod), with its log under .e2e/logs.
start() {
  supervise "$@" || fail "$1 could not be started"
}

# wait_for NAME TIMEOUT CMD...: waits until CMD succeeds; fails naming the component (with the
# end of its log) if the component dies or the timeout passes.
wait_for() {
  local name=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$name"; then
      fail "$name exited during start-up; last lines of $LOGS/$name.log:
$(tail -n 15 "$LOGS/$name.log")"
    fi
    if [ $SECONDS -ge $deadline ]; then
      fail "$name not ready within ${timeout}s; last lines of $LOGS/$name.log:
$(tail -n 15 "$LOGS/$name.log")"
    fi
    sleep 0.2
  done
}

# --- certificates and keys ---
P=$STATE/pki
openssl_quiet() { openssl "$@" >/dev/null 2>&1; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=qdrant-operator-e2e-ca" -keyout "$P/ca.key" -out "$P/ca.crt" || fail "openssl: CA"
cat >"$P/apiserver.ext" <<EXT
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1
EXT
openssl_quiet req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$P/apiserver.key" -out "$P/apiserver.csr"
openssl_quiet x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3 -extfile "$P/apiserver.ext" -out "$P/apiserver.crt" || fail "openssl: serving cert"
openssl_quiet req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" -keyout "$P/admin.key" -out "$P/admin.csr"
# Extensions make it an X.509 v3 certificate; rustls (the operator's TLS) rejects v1.
echo "extendedKeyUsage=clientAuth" >"$P/admin.ext"
openssl_quiet x509 -req -in "$P/admin.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3 -extfile "$P/admin.ext" -out "$P/admin.crt" || fail "openssl: admin cert"
openssl_quiet genrsa -out "$P/sa.key" 2048
openssl_quiet rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" || fail "openssl: service-account key"

ETCD_PORT=$(free_port); ETCD_PEER=$(free_port); API_PORT=$(free_port)
KCM_PORT=$(free_port); SCHED_PORT=$(free_port); KWOK_PORT=$(free_port)
echo "$API_PORT" >"$STATE/apiserver-port"

cat >"$STATE/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $P/ca.crt
users:
- name: admin
  user:
    client-certificate: $P/admin.crt
    client-key: $P/admin.key
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC

# Metadata for every request, as JSON lines: the fencing check and the benchmarks read it.
# Node heartbeats are left out: they are noise for both.
cat >"$STATE/audit-policy.yaml" <<'AP'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  namespaces: [kube-node-lease]
- level: None
  resources: [{group: "", resources: [nodes/status]}]
# Lease writes with their bodies: the holder timeline is rebuilt from them.
- level: Request
  verbs: [create, update, patch]
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: Metadata
AP

# --- etcd ---
log "starting etcd"
start etcd "$BIN/etcd" --name default --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# --- kube-apiserver ---
# TaintNodesByCondition taints new Nodes not-ready, and only the node-lifecycle controller
# (off here: kwok's Nodes have no real kubelet) would remove the taint.
log "starting kube-apiserver"
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" --client-ca-file "$P/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
  --authorization-mode Node,RBAC --disable-admission-plugins TaintNodesByCondition --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true \
  --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$STATE/audit.log" --audit-log-format json \
  --audit-log-mode blocking --audit-log-maxsize 0
wait_for kube-apiserver 60 $KUBECTL get --raw /readyz

# Our CRDs exist before the controller-manager starts, so its garbage collector knows them
# from its first discovery. Installed later, they are only picked up at its next discovery
# sync (every 30 s), and a QdrantCluster deleted before that leaves its children behind
# until then: that raced the first suite on a fresh control plane.
log "installing the CRDs"
$KUBECTL apply -k "$ROOT/crds" >/dev/null || fail "installing crds/"
$KUBECTL apply -f "$ROOT/e2e/cluster/monitoring-crds.yaml" >/dev/null || fail "installing the monitoring CRDs"
$KUBECTL wait --for=condition=Established crd --all --timeout=60s >/dev/null || fail "CRDs not established"

# --- controllers, scheduler ---
log "starting kube-controller-manager and kube-scheduler"
start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$STATE/kubeconfig" \
  --authentication-kubeconfig "$STATE/kubeconfig" --authorization-kubeconfig "$STATE/kubeconfig" \
  --leader-elect=false --use-service-account-credentials=false \
  --service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
  --controllers '*,-node-lifecycle-controller,-taint-eviction-controller' \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT"
start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$STATE/kubeconfig" \
  --authentication-kubeconfig "$STATE/kubeconfig" --authorization-kubeconfig "$STATE/kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port "$SCHED_PORT"
wait_for kube-controller-manager 60 curl -sfk "https://127.0.0.1:$KCM_PORT/healthz"
wait_for kube-scheduler 60 curl -sfk "https://127.0.0.1:$SCHED_PORT/healthz"

# --- kwok, with its default stages; operator Pods are left to the local runner ---
KWOK_DIR=$(cd /tmp && GOTOOLCHAIN=local GOFLAGS= go mod download -json sigs.k8s.io/kwok@v0.8.0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || fail "kwok: module source not found"
python3 "$ROOT/e2e/cluster/kwok-stages.py" "$KWOK_DIR/kustomize/stage" >"$STATE/kwok.yaml" || fail "kwok: stages"
log "starting kwok"
start kwok "$BIN/kwok" --kubeconfig "$STATE/kubeconfig" --manage-all-nodes=true --config "$STATE/kwok.yaml" \
  --server-address "127.0.0.1:$KWOK_PORT" --cidr 10.244.0.0/16 --node-ip 10.0.0.1
for i in 0 1 2; do
  cat <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, type: kwok, topology.kubernetes.io/zone: zone-$i}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
---
NODE
done | $KUBECTL apply -f - >/dev/null || fail "creating Nodes"
wait_for kwok 60 $KUBECTL wait node --all --for=condition=Ready --timeout=1s
wait_for kube-controller-manager 60 $KUBECTL get serviceaccount default -n default

log "control plane ready in $((SECONDS - t_start))s: export KUBECONFIG=$STATE/kubeconfig"
