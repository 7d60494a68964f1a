#!/usr/bin/env bash
# Taking over live clusters from the older JavaScript operator. With this operator stopped and
# the JavaScript operator's CRD installed, the suite creates exactly what that operator leaves
# behind for examples/qdrant-cluster-{minimal,complete}.yaml (e2e/fixtures/js-operator: the CR
# with its finalizer, ConfigMap, key Secrets, Services, PDB, NetworkPolicy, StatefulSet), with
# `kubectl create` as that operator's POSTs; the runner starts its Pods as it would run. Data
# goes in through the old keys. Then our CRD and this operator come back (its leader is deleted
# as soon as the takeover begins, so the next one finishes it), and:
# - the read-write key is byte-identical and still works; the read-only key is the literal the
#   spec names (the JavaScript operator never applied it), and works once the Pods restart;
# - the minimal cluster's Pod is never restarted or deleted (same uid throughout); the
#   complete one's Pods restart one at a time only because its read-only key changes;
# - every apply succeeds: the immutable podManagementPolicy and claim templates are kept, the
#   old `tcpSocket` readiness handler, `rollingUpdate` and PDB `minAvailable` are gone;
# - the legacy finalizer is removed; every point is still there;
# - a later `replicas` change (minimal) and `image` change (complete) are applied;
# - `kubectl delete qc` completes.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
FIX=$E2E_DIR/fixtures/js-operator
ROOT=$(cd "$E2E_DIR/.." && pwd)
min=my-cluster
full=my-complete-cluster
work=$(mktemp -d)
replicas=$(kc get deploy qdrant-operator -n "$OPERATOR_NS" -o jsonpath='{.spec.replicas}')
node=""

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    # What the clusters looked like when the suite failed, for whoever reads CI's output.
    kc get qc -n "$TEST_NS" -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.metadata.finalizers}{" "}{.status}{"\n"}{end}' >&2 2>/dev/null || true
    kc get sts,pods -n "$TEST_NS" -l component=qdrant -o wide >&2 2>/dev/null || true
  fi
  kc delete qc "$min" "$full" -n "$TEST_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  # Whatever still carries the old finalizer (the suite failed before the takeover) is freed.
  for q in "$min" "$full"; do
    kc patch qc "$q" -n "$TEST_NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
  kc replace -f "$ROOT/crds/qdrant.operator_qdrantclusters.yaml" >/dev/null 2>&1 || true
  kc apply -k "$ROOT/crds" >/dev/null 2>&1 || true
  kc scale deploy qdrant-operator -n "$OPERATOR_NS" --replicas="$replicas" >/dev/null 2>&1 || true
  delete_qcs "$min" "$full"
  kc delete secret "$full-tls" -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1 || true
  kc delete storageclass standard --ignore-not-found >/dev/null 2>&1 || true
  [ -z "$node" ] || kc label node "$node" node-role/qdrant- >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_for_operator_ready 120

# --- the world the JavaScript operator left ------------------------------------------------
kc scale deploy qdrant-operator -n "$OPERATOR_NS" --replicas=0 >/dev/null
no_operator_pods() { [ -z "$(operator_pods)" ]; }
wait_until 60 "the operator's Pods to be gone" no_operator_pods
kc replace -f "$FIX/crd.yaml" >/dev/null
js_crd() { [ -z "$(kc get crd qdrantclusters.qdrant.operator -o jsonpath='{.spec.versions[0].subresources.scale}')" ]; }
wait_until 30 "the JavaScript operator's CRD" js_crd

# What complete.yaml needs around it: its StorageClass, a node for its affinity, its TLS Secret
# (a CA and a certificate for every Pod and Service name, made here with openssl).
kc apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: standard}
provisioner: kubernetes.io/no-provisioner
allowVolumeExpansion: true
EOF
node=$(kc get nodes -o jsonpath='{.items[0].metadata.name}')
kc label node "$node" node-role/qdrant=true --overwrite >/dev/null
(
  cd "$work"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out cacert.pem -days 2 -subj "/CN=js-test-ca" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem -out req.csr -subj "/CN=$full" 2>/dev/null
  h=$full-headless.$TEST_NS
  printf 'subjectAltName=DNS:%s,DNS:%s.%s,DNS:*.%s,DNS:*.%s.svc,DNS:*.%s.svc.cluster.local\n' "$full" "$full" "$TEST_NS" "$h" "$h" "$h" >san.ext
  openssl x509 -req -in req.csr -CA cacert.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile san.ext 2>/dev/null
)
kc create secret generic "$full-tls" -n "$TEST_NS" --from-file="$work/cert.pem" --from-file="$work/key.pem" --from-file="$work/cacert.pem" >/dev/null

# create_fixture FILE: the CR first, then everything else with its uid, as the fixtures say.
create_fixture() {
  sed "s/__NAMESPACE__/$TEST_NS/g" "$1" >"$work/all.yaml"
  python3 - "$work/all.yaml" "$work/cr.yaml" "$work/rest.yaml" <<'PY'
import sys
docs = [d for d in open(sys.argv[1]).read().split("\n---\n") if "kind:" in d]
open(sys.argv[2], "w").write(docs[0])
open(sys.argv[3], "w").write("\n---\n".join(docs[1:]))
PY
  kc create -f "$work/cr.yaml" >/dev/null
  local name uid
  name=$(kc get -f "$work/cr.yaml" -o jsonpath='{.metadata.name}')
  uid=$(qc_field "$name" .metadata.uid)
  sed "s/__CLUSTER_UID__/$uid/g" "$work/rest.yaml" | kc create -f - >/dev/null
}
create_fixture "$FIX/minimal.yaml"
create_fixture "$FIX/complete.yaml"

pods_ready() { [ "$(kc get pods -n "$TEST_NS" -l "clustername=$1,component=qdrant" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" = "$2" ]; }
wait_until 120 "the JavaScript operator's $min Pod to be Ready" pods_ready "$min" 1
wait_until 180 "the JavaScript operator's $full Pods to be Ready" pods_ready "$full" 3

api_key=$(secret_key "$full-apikey" api-key)
js_read_key=$(secret_key "$full-read-apikey" api-key)
[ ${#api_key} = 32 ] || fail "the fixture's API key is not the JavaScript operator's 32 characters: $api_key"
export CURL_CA_BUNDLE=$work/cacert.pem
full_url() { echo "https://$full-$1.$full-headless.$TEST_NS:6333"; }
min_url=$(qdrant_url "$min-0" "$min")
peers_formed() { [ "$(qdrant_http GET "$(full_url 0)/cluster" "$api_key" | sed -n 2p | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["result"]["peers"]))' 2>/dev/null)" = 3 ]; }
wait_until 60 "the JavaScript operator's 3 peers to form one cluster over TLS" peers_formed
create_collection "$(full_url 0)" "$api_key" c '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3, "replication_factor": 2}'
upsert_points "$(full_url 0)" "$api_key" c 300
create_collection "$min_url" "" c '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 2}'
upsert_points "$min_url" "" c 200
min_uid=$(qpod_uids "$min")
full_uids=$work/full-before.txt
qpod_uids "$full" >"$full_uids"
sts_uid=$(kc get sts "$min" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')
full_sts_uid=$(kc get sts "$full" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')
info "JavaScript operator's clusters running: $min (1 Pod, 200 points), $full (3 Pods over TLS, 300 points, API key ${api_key:0:4}...)"

# --- this operator takes over --------------------------------------------------------------
kc replace -f "$ROOT/crds/qdrant.operator_qdrantclusters.yaml" >/dev/null
kc apply -k "$ROOT/crds" >/dev/null
kc wait --for=condition=Established crd/qdrantclusters.qdrant.operator --timeout=60s >/dev/null
kc scale deploy qdrant-operator -n "$OPERATOR_NS" --replicas="$replicas" >/dev/null
wait_for_operator_ready 120

# Hand the leadership over as soon as the takeover has begun: the next leader finishes it
# from what it finds.
finalizer_gone() { [ -z "$(qc_field "$full" '.metadata.finalizers')" ]; }
wait_until 60 "the takeover of $full to begin" finalizer_gone
first=$(delete_leader)
wait_until 60 "a new leader after $first" new_holder_other_than "$first"

taken_over() { # QC: no legacy finalizer, StatefulSet applied by us, status Healthy and settled
  [ -z "$(qc_field "$1" '.metadata.finalizers')" ] \
    && [ "$(kc get sts "$1" -n "$TEST_NS" -o jsonpath='{.metadata.labels.app\.kubernetes\.io/managed-by}')" = qdrant-operator ] \
    && qc_converged "$1" && [ -z "$(qc_field "$1" .status.operation.type)" ] && qdrant_health_is "$1" Healthy
}
wait_until 120 "$min to be taken over and Healthy" taken_over "$min"
[ "$(qpod_uids "$min")" = "$min_uid" ] || fail "$min's Pod was replaced by the takeover"
[ -n "$(kc get sts "$min" -n "$TEST_NS" -o jsonpath='{.metadata.annotations.qdrant\.operator/adopted}')" ] || fail "$min's StatefulSet has no takeover record"
info "$min taken over: legacy finalizer gone, Healthy, its Pod untouched ($min_uid)"

# complete: the read-only key the spec names differs from the one its Pods run with, so they
# restart, one at a time; nothing else changes.
full_done() { taken_over "$full" && restarted_all "$full" "$full_uids"; }
wait_until 300 "$full to be taken over, its Pods restarted onto the spec's read-only key" full_done
[ "$(secret_key "$full-apikey" api-key)" = "$api_key" ] || fail "the API key changed"
[ "$(secret_key "$full-read-apikey" api-key)" = my-read-only-key ] || fail "the read-only key is not the spec's literal"
[ "$js_read_key" != my-read-only-key ] || fail "the fixture's read key should differ from the spec's"
for i in 0 1 2; do
  [ "$(qdrant_status_code GET "$(full_url "$i")/collections/c" "$api_key")" = 200 ] || fail "the unchanged API key does not work on $full-$i"
  [ "$(qdrant_status_code GET "$(full_url "$i")/collections/c" my-read-only-key)" = 200 ] || fail "the read-only key does not work on $full-$i"
  [ "$(qdrant_status_code GET "$(full_url "$i")/collections/c")" = 401 ] || fail "$full-$i answers without a key"
done
[ "$(count_points "$(full_url 0)" "$api_key" c)" = 300 ] || fail "$full lost points"
[ "$(count_points "$min_url" "" c)" = 200 ] || fail "$min lost points"
info "keys: API key byte-identical, read-only key the spec's literal; 300 and 200 points kept"

# What the takeover repaired, each a 422 on every apply without it.
for q in "$min" "$full"; do
  kc get sts "$q" -n "$TEST_NS" -o json >"$work/sts.json"
  python3 - "$q" "$work/sts.json" <<'PY' || fail "$q's StatefulSet was not taken over cleanly"
import json, sys
s = json.load(open(sys.argv[2]))["spec"]
name = sys.argv[1]
c = next(c for c in s["template"]["spec"]["containers"] if c["name"] == "qdrant")
problems = []
if s.get("podManagementPolicy") != "OrderedReady": problems.append(f"podManagementPolicy {s.get('podManagementPolicy')}")
if s["updateStrategy"] != {"type": "OnDelete"}: problems.append(f"updateStrategy {s['updateStrategy']}")
if set(c["readinessProbe"]) & {"tcpSocket", "exec", "grpc"}: problems.append(f"readinessProbe {c['readinessProbe']}")
if "args" in c: problems.append(f"args {c['args']}")
vols = {v["name"] for v in s["template"]["spec"]["volumes"]}
if vols & {"qdrant-secret", "qdrant-cert"}: problems.append(f"old volumes {vols}")
for t in s.get("volumeClaimTemplates") or []:
    if set(t["metadata"].get("labels", {})) != {"clustername", "component"}: problems.append(f"claim template labels {t['metadata']}")
print(f"  {name}: " + ("; ".join(problems) or "podManagementPolicy OrderedReady kept, OnDelete alone, httpGet readiness alone, no args, no old volumes"))
sys.exit(1 if problems else 0)
PY
done
[ -z "$(kc get pdb "$full" -n "$TEST_NS" -o jsonpath='{.spec.minAvailable}')" ] || fail "the PDB kept minAvailable"
[ "$(kc get pdb "$full" -n "$TEST_NS" -o jsonpath='{.spec.maxUnavailable}')" = 1 ] || fail "the PDB has no maxUnavailable 1"
others=$(kc get sts,svc,cm,pdb,secret -n "$TEST_NS" -l clustername -o json 2>/dev/null | python3 -c '
import json, sys
for o in json.load(sys.stdin)["items"]:
    for m in o["metadata"].get("managedFields") or []:
        if not m.get("subresource") and m["manager"] not in ("qdrant-operator", "kube-controller-manager"):
            print(o["kind"], o["metadata"]["name"], m["manager"])')
[ -z "$others" ] || fail "fields still owned by other managers: $others"
[ "$(kc get sts "$min" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')" = "$sts_uid" ] || fail "$min's StatefulSet was re-created"
[ "$(kc get sts "$full" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')" = "$full_sts_uid" ] || fail "$full's StatefulSet was re-created"

# --- later changes apply ---------------------------------------------------------------------
kc patch qc "$min" -n "$TEST_NS" --type=merge -p '{"spec":{"replicas":2}}' >/dev/null
settled() { qc_converged "$1" && [ -z "$(qc_field "$1" .status.operation.type)" ] && qdrant_health_is "$1" Healthy; }
wait_until 120 "$min scaled to 2 and Healthy" settled "$min"
grep -qx "$min_uid" <(qpod_uids "$min") || fail "scaling up replaced $min's first Pod"
[ "$(qc_field "$min" .status.qdrant.peerCount)" = 2 ] || fail "$min has not 2 peers"
info "replicas 1 -> 2 applied; the first Pod still the JavaScript operator's"
# The image change goes to the complete cluster: its Pods have volumes. (A restarted Pod of
# the minimal one comes back on an empty emptyDir, as a new peer.)
before=$work/full-before-image.txt
qpod_uids "$full" >"$before"
kc patch qc "$full" -n "$TEST_NS" --type=merge -p '{"spec":{"image":"qdrant/qdrant:v1.16.4"}}' >/dev/null
wait_until 300 "$full's Pods restarted onto the new image" restarted_all "$full" "$before"
[ "$(kc get pods -n "$TEST_NS" -l "clustername=$full,component=qdrant" -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sort -u)" = qdrant/qdrant:v1.16.4 ] || fail "not every Pod runs the new image"
[ "$(count_points "$(full_url 0)" "$api_key" c)" = 300 ] || fail "$full lost points across the image change"
info "image change applied to every Pod of $full, 300 points kept"

# --- kubectl delete completes ------------------------------------------------------------------
kc delete qc "$min" "$full" -n "$TEST_NS" --timeout=60s >/dev/null || fail "kubectl delete qc did not complete"
gone() { absent sts "$min" -n "$TEST_NS" && absent sts "$full" -n "$TEST_NS"; }
wait_until 60 "the StatefulSets garbage-collected" gone
info "kubectl delete qc completed; children garbage-collected"
