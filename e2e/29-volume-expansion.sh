#!/usr/bin/env bash
# PVC expansion. Raising persistence.size grows every existing claim in place and re-creates
# the StatefulSet (orphan propagation) with the new size in its claim template; no Pod is
# deleted and no point lost, even with the leader crashed as the expansion begins. Lowering it is refused in status (StorageAsSpecified False,
# ShrinkRefused) while every other change still applies. A StorageClass that does not allow
# expansion gets the API server's refusal as an Event and ExpansionPending in status, and
# blocks nothing else either.
# What is real here: the API server's admission of each claim's new size (it checks the
# StorageClass's allowVolumeExpansion) and the garbage collector's orphaning. The local plane
# binds claims to hostPath volumes, which no resizer grows, so a claim's status.capacity stays
# at the old size: the file system itself is not resized here.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=grow
fixed=grow-fixed
cleanup() {
  delete_qcs "$qc" "$fixed"
  kc delete storageclass expandable fixed --ignore-not-found >/dev/null 2>&1 || true
}
trap cleanup EXIT
wait_for_operator_ready 120
kc apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: expandable}
provisioner: kubernetes.io/no-provisioner
allowVolumeExpansion: true
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fixed}
provisioner: kubernetes.io/no-provisioner
EOF

spec() { echo "  apikey: 'true'
  persistence: {size: $1, storageClassName: $2}${3:-}"; }
apply_qc "$qc" 3 "$(spec 1Gi expandable)"
apply_qc "$fixed" 1 "$(spec 1Gi fixed)"
wait_until 180 "$qc to be Healthy" qc_status_is "$qc" Healthy
wait_until 120 "$fixed to be Healthy" qc_status_is "$fixed" Healthy
key=$(secret_key "$qc-apikey" api-key)
url=$(qdrant_url "$qc-0" "$qc")
create_collection "$url" "$key" c '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3, "replication_factor": 2}'
upsert_points "$url" "$key" c 300
uids=$(qpod_uids "$qc" | sort)
sts_uid=$(kc get sts "$qc" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')

claims_are() { # QC SIZE: every claim of QC requests SIZE
  local sizes
  sizes=$(kc get pvc -n "$TEST_NS" -l "clustername=$1" -o jsonpath='{range .items[*]}{.spec.resources.requests.storage}{"\n"}{end}' | sort -u)
  [ "$sizes" = "$2" ]
}
template_size() { kc get sts "$1" -n "$TEST_NS" -o jsonpath='{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}'; }
storage_condition() { qc_field "$1" ".status.conditions[?(@.type==\"StorageAsSpecified\")].$2"; }
grown() {
  claims_are "$qc" 2Gi && [ "$(template_size "$qc")" = 2Gi ] && [ "$(storage_condition "$qc" status)" = True ] \
    && qc_converged "$qc" && qdrant_health_is "$qc" Healthy
}

# Grow, and crash the leader as soon as it has begun: the next leader goes on from what it
# finds (claims grown or not, the StatefulSet there, terminating, or gone).
apply_qc "$qc" 3 "$(spec 2Gi expandable)"
begun() { kc get pvc -n "$TEST_NS" -l "clustername=$qc" -o jsonpath='{range .items[*]}{.spec.resources.requests.storage}{"\n"}{end}' | grep -qx 2Gi; }
wait_until 30 "the first claim to grow" begun
crashed=$(delete_leader --force)
wait_until 120 "$qc's claims and claim template at 2Gi, Healthy, under a new leader" grown
[ "$(get_leader_pod)" != "$crashed" ] || fail "no new leader"
[ "$(kc get sts "$qc" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')" != "$sts_uid" ] || fail "the StatefulSet was not re-created"
[ "$(qpod_uids "$qc" | sort)" = "$uids" ] || fail "Pods were deleted by the expansion"
[ "$(count_points "$url" "$key" c)" = 300 ] || fail "points lost"
info "1Gi -> 2Gi with the leader crashed mid-way: 3 claims expanded in place, StatefulSet re-created without its Pods (same 3 Pod uids), 300 points"

# Shrink: refused, and not in the way of other changes.
apply_qc "$qc" 3 "$(spec 1Gi expandable "
  service: NodePort")"
refused() { [ "$(storage_condition "$qc" reason)" = ShrinkRefused ] && [ "$(kc get svc "$qc" -n "$TEST_NS" -o jsonpath='{.spec.type}')" = NodePort ]; }
wait_until 60 "the shrink refused and the Service change applied" refused
claims_are "$qc" 2Gi || fail "claims shrank"
[ "$(template_size "$qc")" = 2Gi ] || fail "the claim template shrank"
info "2Gi -> 1Gi refused: $(storage_condition "$qc" message); the Service change beside it applied"

# A class without expansion: the API server refuses, the status says so, nothing else waits.
apply_qc "$fixed" 1 "$(spec 2Gi fixed "
  service: NodePort")"
pending() {
  [ "$(storage_condition "$fixed" reason)" = ExpansionPending ] && [ "$(kc get svc "$fixed" -n "$TEST_NS" -o jsonpath='{.spec.type}')" = NodePort ] \
    && kc get events -n "$TEST_NS" --field-selector "involvedObject.name=$fixed,reason=VolumeExpansionFailed" -o name | grep -q .
}
wait_until 60 "$fixed's expansion reported as refused, the Service change applied" pending
claims_are "$fixed" 1Gi || fail "$fixed's claims changed"
[ "$(template_size "$fixed")" = 1Gi ] || fail "$fixed's claim template changed"
msg=$(kc get events -n "$TEST_NS" --field-selector "involvedObject.name=$fixed,reason=VolumeExpansionFailed" -o jsonpath='{.items[0].note}{.items[0].message}')
info "class without expansion: $msg"
