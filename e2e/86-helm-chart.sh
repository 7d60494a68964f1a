#!/usr/bin/env bash
# The Helm chart on the plane, with the Helm built from e2e/helm/go.mod. The kustomize
# deployment is set aside (scaled to 0, so its leader releases the Lease, then deleted, CRDs
# and Namespace kept), and `helm install` with default values, as the README says, must give:
# - three leader signals that agree (suite 40, run as it is), a graceful and a crash failover;
# - `helm upgrade` with a changed value rolls every Pod, and the Lease changes hands only by
#   release and acquisition (the audit log), with only the leader writing (fencing);
# - `helm uninstall` leaves nothing of the release: every object of its manifest, its Pods
#   and its release records are gone, the CRDs and a user's QdrantCluster stay, and the
#   namespace holds nothing it did not hold before the install (the operator's Lease stays).
# The kustomize objects are restored at the end, on failure too, so later suites run as before.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
source "$(dirname "$0")/failover-lib.sh"

RELEASE=qdrant-operator
CHART=$REPO_ROOT/charts/qdrant-operator
QC=h86
HELM=${HELM:-$("$REPO_ROOT/e2e/helm/build.sh")/helm}
# Helm's own cache, config and data stay in the state directory, not in $HOME.
export HELM_CACHE_HOME=$E2E_STATE/helm/cache HELM_CONFIG_HOME=$E2E_STATE/helm/config HELM_DATA_HOME=$E2E_STATE/helm/data
export KUBECTL
helm_() { "$HELM" --namespace "$OPERATOR_NS" "$@"; }
release_exists() { helm_ status "$RELEASE" >/dev/null 2>&1; }
no_operator_pods() { [ -z "$(kc get pods -n "$OPERATOR_NS" -l app=qdrant-operator -o name 2>/dev/null)" ]; }
managed_by_helm() { [ "$(kc get deploy qdrant-operator -n "$OPERATOR_NS" -o jsonpath='{.metadata.labels.app\.kubernetes\.io/managed-by}' 2>/dev/null)" = Helm ]; }

aside=$E2E_STATE/helm/kustomize-set-aside.yaml
installed=false set_aside=false replicas=3
# Each step in a subshell, so a failed wait (which exits) does not skip the next one.
restore() {
  local rc=$?
  set +e
  (delete_qcs "$QC") || rc=1
  if $installed && release_exists; then
    info "restore: uninstalling the release"
    helm_ uninstall "$RELEASE" --wait --timeout 120s >/dev/null
    (wait_until 60 "the release's operator Pods to be gone" no_operator_pods) || rc=1
  fi
  if $set_aside; then
    info "restore: the kustomize deployment"
    # apply leaves the replicas a scale set alone: scale back explicitly.
    kc apply -f "$aside" >/dev/null || rc=1
    kc scale deploy qdrant-operator -n "$OPERATOR_NS" --replicas="$replicas" >/dev/null || rc=1
    (wait_for_operator_ready 180) || rc=1
  fi
  stop_own_sampler
  exit "$rc"
}
trap restore EXIT

mkdir -p "$E2E_STATE/helm"
info "helm: $("$HELM" version --short)"
release_exists && fail "a Helm release $RELEASE already exists in $OPERATOR_NS; this suite installs its own"
wait_for_operator_ready 120
managed_by_helm && fail "the operator Deployment already belongs to Helm"

# --- set the kustomize deployment aside: the objects of deploy/ that exist, but the CRDs and
# the Namespace (which hold the users' QdrantClusters and the Lease).
kc kustomize "$REPO_ROOT/deploy" | python3 -c '
import os, subprocess, sys, yaml
kept = []
for d in yaml.safe_load_all(sys.stdin):
    if not d or d["kind"] in ("CustomResourceDefinition", "Namespace"):
        continue
    group = d["apiVersion"].rpartition("/")[0]
    resource = d["kind"].lower() + ("." + group if group else "")
    ns = ["-n", d["metadata"]["namespace"]] if d["metadata"].get("namespace") else []
    if subprocess.run([os.environ["KUBECTL"], "get", resource, d["metadata"]["name"], *ns], capture_output=True).returncode == 0:
        kept.append(d)
yaml.safe_dump_all(kept, sys.stdout, sort_keys=False)
' >"$aside"
grep -q '^kind: Deployment' "$aside" || fail "the kustomize Deployment is not in the set-aside manifest"
info "setting aside $(grep -c '^kind:' "$aside") kustomize objects"
replicas=$(kc get deploy qdrant-operator -n "$OPERATOR_NS" -o jsonpath='{.spec.replicas}')
set_aside=true
# Scaled to 0 first: the leader releases the Lease while its RBAC still exists. Foreground
# deletion: the ReplicaSet is gone before the Deployment, and cannot meet the release's.
kc scale deploy qdrant-operator -n "$OPERATOR_NS" --replicas=0 >/dev/null
wait_until 60 "the kustomize operator Pods to be gone" no_operator_pods
kc delete -f "$aside" --cascade=foreground --wait=true --timeout=60s >/dev/null
# What the namespace holds without any operator installed (the Lease among it).
namespace_objects() {
  local types
  types=$(kc api-resources --verbs=list --namespaced -o name | grep -v '^events' | paste -sd, -) || return 1
  kc get "$types" -n "$OPERATOR_NS" -o name
}
baseline=$E2E_STATE/helm/namespace-before.txt
namespace_objects >"$baseline" || fail "cannot list what $OPERATOR_NS holds"

# --- install with default values
since_install=$(epoch_now)
installed=true
helm_ install "$RELEASE" "$CHART" >/dev/null
managed_by_helm || fail "the Deployment is not labelled as Helm's"
[ "$(helm_ status "$RELEASE" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["info"]["status"])')" = deployed ] \
  || fail "the release is not 'deployed'"
wait_for_operator_ready 120
[ "$(operator_pods | wc -l)" -eq 3 ] || fail "the default install runs $(operator_pods | wc -l) Pods, not 3"
info "installed: $(operator_pods | tr '\n' ' ')leader $(lease_holder)"

# --- the three leader signals, and failovers
bash "$E2E_DIR/40-leader-signals.sh" || fail "the leader signals disagree on the Helm release"
with_gauge_sampler
apply_qc "$QC" 1
wait_for_qc_status "$QC" 60 Running Healthy
took=$(failover graceful 2 "$QC")
info "graceful failover: ${took} ms"
ld=$(lease_duration_seconds)
took=$(failover force $((ld + 2)) "$QC")
info "crash failover: ${took} ms"
wait_for_operator_ready 120

# --- upgrade with a changed value: every Pod rolls, the Lease is handed over gracefully
old_pods=$(operator_pods)
old_leader=$(get_leader_pod) || fail "no single leader before the upgrade"
before=$(lease_transitions)
since_upgrade=$(epoch_now)
helm_ upgrade "$RELEASE" "$CHART" --reuse-values --set logFormat=plain >/dev/null
[ "$(kc get deploy qdrant-operator -n "$OPERATOR_NS" -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="LOG_FORMAT")].value}')" = plain ] \
  || fail "helm upgrade did not set LOG_FORMAT=plain in the Deployment"
rolled() {
  local p
  kc -n "$OPERATOR_NS" rollout status deploy/qdrant-operator --timeout=1s || return 1
  [ "$(operator_pods | wc -l)" -eq 3 ] || return 1
  for p in $(operator_pods); do grep -qx "$p" <<<"$old_pods" && return 1; done
  return 0
}
wait_until 240 "every operator Pod to be replaced by the upgrade" rolled
wait_until 30 "the leadership signals to agree after the upgrade" signals_agree
new_leader=$(lease_holder)
after=$(lease_transitions)
# The old leader went, and each old Pod can have led once at most.
[ "$after" -gt "$before" ] && [ "$after" -le $((before + 3)) ] || fail "leaseTransitions went from $before to $after during the upgrade"
python3 "$E2E_DIR/handover_check.py" "${AUDIT_LOG:-$E2E_STATE/audit.log}" "$since_upgrade" 2 | sed 's/^/  /' >&2 \
  || fail "leadership did not change hands gracefully during the upgrade"
fencing_since "$since_install" "$SAMPLES" || fail "a write came from a Pod that did not hold the Lease"
info "upgrade: $old_leader -> $new_leader, leaseTransitions $before -> $after, every handover a release"

# --- uninstall: nothing of the release is left but the CRDs
manifest=$E2E_STATE/helm/release-manifest.yaml
helm_ get manifest "$RELEASE" >"$manifest"
helm_ uninstall "$RELEASE" --wait --timeout 120s >/dev/null
wait_until 60 "the release's operator Pods to be gone" no_operator_pods
release_exists && fail "helm status still finds the release"
[ -z "$(kc get secrets -n "$OPERATOR_NS" -l "owner=helm,name=$RELEASE" -o name)" ] || fail "Helm's release records are left"
left=$(kc get -f "$manifest" --ignore-not-found -o name) || fail "cannot look up the release's objects"
[ -z "$left" ] || fail "left after helm uninstall: $(tr '\n' ' ' <<<"$left")"
exists crd qdrantclusters.qdrant.operator || fail "helm uninstall removed the CRD"
exists qc "$QC" -n "$TEST_NS" || fail "helm uninstall removed the QdrantCluster $QC"
# Nothing in the namespace that was not there before the install (written to a file for the
# failure message).
leftovers=$E2E_STATE/helm/leftovers.txt
nothing_new() {
  local now
  now=$(namespace_objects) || return 1
  grep -vxF -f "$baseline" <<<"$now" >"$leftovers" || true
  [ ! -s "$leftovers" ]
}
wait_until 60 "the namespace to hold nothing new after helm uninstall (see $leftovers)" nothing_new
info "uninstalled: the CRDs and $QC stay; $OPERATOR_NS holds what it held before the install (the Lease: holder '$(lease_holder)')"
