#!/usr/bin/env bash
# Applies crds/ and deploy/ to $KUBECONFIG (the local control plane by default) and waits for
# the operator to be rolled out with a leader. On the local control plane it also builds the
# release binary and starts the runner that plays the kubelet for the operator's Pods.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export KUBECONFIG=${KUBECONFIG:-$STATE/kubeconfig}
LOCAL=false
[ "$(realpath -m "$KUBECONFIG")" = "$(realpath -m "$STATE/kubeconfig")" ] && LOCAL=true
if $LOCAL; then
  KUBECTL="$(cat "$STATE/bin-dir")/kubectl"
else
  KUBECTL=${KUBECTL:-kubectl}
fi

BINARY=${OPERATOR_BINARY:-$ROOT/target/release/qdrant-operator}
if $LOCAL && [ -z "${OPERATOR_BINARY:-}" ]; then
  t0=$SECONDS
  log "building the release binary (a few minutes the first time; cargo shows its progress)"
  (cd "$ROOT" && cargo build --release --locked --bin qdrant-operator >&2)
  log "built in $((SECONDS - t0))s"
fi
if $LOCAL; then
  $KUBECTL apply -f "$ROOT/e2e/cluster/monitoring-crds.yaml" >/dev/null
fi
$KUBECTL apply -k "$ROOT/crds" >/dev/null
$KUBECTL wait --for=condition=Established crd/qdrantclusters.qdrant.operator --timeout=60s >/dev/null
$LOCAL && $KUBECTL wait --for=condition=Established crd/podmonitors.monitoring.coreos.com --timeout=60s >/dev/null
$KUBECTL apply -k "$ROOT/deploy" >/dev/null

if $LOCAL && ! pid_alive runner; then
  mkdir -p "$LOGS" "$PIDS"
  python3 -u "$ROOT/e2e/cluster/runner.py" "$STATE" "$BINARY" qdrant-operator >"$LOGS/runner.log" 2>&1 &
  echo $! >"$PIDS/runner.pid"
  log "runner started (pid $!)"
fi

log "waiting for the operator Deployment"
$KUBECTL -n qdrant-operator rollout status deploy/qdrant-operator --timeout=180s >&2
deadline=$((SECONDS + 60))
until [ -n "$($KUBECTL -n qdrant-operator get lease qdrant-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)" ]; do
  [ $SECONDS -lt $deadline ] || { log "no Lease holder within 60s"; exit 1; }
  sleep 0.2
done
log "deployed; leader: $($KUBECTL -n qdrant-operator get lease qdrant-operator -o jsonpath='{.spec.holderIdentity}')"
