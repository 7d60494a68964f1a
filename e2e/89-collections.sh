#!/usr/bin/env bash
# QdrantCollections, as the older JavaScript operator's manifests write them: created in Qdrant
# with their shards and replication; an update of a changeable setting (replication factor,
# HNSW) applied in place; named vectors created, and one's onDisk changed in place; malformed
# ones refused by the schema or reported in status; one that exists with other fixed settings
# reported, never dropped; deleting the resource deletes the
# collection, except with deletionPolicy Retain. Every write is the leader's.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=colls
cleanup() {
  kc delete qdrantcollections --all -n "$TEST_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  delete_qcs "$qc"
  for c in $(kc get qdrantcollections -n "$TEST_NS" -o name 2>/dev/null); do
    kc patch "$c" -n "$TEST_NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
wait_for_operator_ready 120
apply_qc "$qc" 3 "  apikey: 'true'"
wait_until 120 "$qc to be Healthy" qc_status_is "$qc" Healthy
key=$(secret_key "$qc-apikey" api-key)
url=$(qdrant_url "$qc-0" "$qc")

collection() { # NAME SPEC_YAML
  kc apply -n "$TEST_NS" -f - <<EOF2
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollection
metadata: {name: $1}
spec:
$2
EOF2
}
col_field() { kc get qdrantcollection "$1" -n "$TEST_NS" -o jsonpath="{$2}" 2>/dev/null; }
ready() { [ "$(col_field "$1" '.status.conditions[?(@.type=="Ready")].status')" = True ] && [ "$(col_field "$1" .status.observedGeneration)" = "$(col_field "$1" .metadata.generation)" ]; }
reason_is() { [ "$(col_field "$1" '.status.conditions[?(@.type=="Ready")].reason')" = "$2" ]; }
qconfig() { qdrant_http GET "$url/collections/$1" "$key" | sed -n 2p; }

# The JavaScript operator's complete example, unchanged but for the cluster's name.
collection my-collection "  cluster: $qc
  vectorSize: 10
  onDisk: false
  shardNumber: 6
  replicationFactor: 2
  config:
    hnsw_config: {m: 16, ef_construct: 100, full_scan_threshold: 10000}
    optimizers_config: {deleted_threshold: 0.2, vacuum_min_vector_number: 1000}
  snapshots:
    s3EndpointURL: https://storage.googleapis.com/
    s3CredentialsSecretName: bucket-credentials
    bucketName: unique-bucket-for-shapshots
    backupSchedule: '0 0 * * *'" >/dev/null
wait_until 60 "my-collection Ready" ready my-collection
qconfig my-collection | python3 -c '
import json, sys
p = json.load(sys.stdin)["result"]["config"]["params"]
assert p["vectors"]["size"] == 10 and p["vectors"]["distance"] == "Cosine", p
assert p["shard_number"] == 6 and p["replication_factor"] == 2, p' || fail "the collection in Qdrant is not as specified"
[ "$(col_field my-collection .status.replicas.5)" = 2 ] || fail "status does not show 2 replicas of shard 5: $(col_field my-collection .status.replicas)"
info "created: 6 shards, replication 2, status $(col_field my-collection .status.status)"

# An update Qdrant allows: replication 2 -> 3, HNSW m 16 -> 32.
collection my-collection "  cluster: $qc
  vectorSize: 10
  onDisk: false
  shardNumber: 6
  replicationFactor: 3
  config:
    hnsw_config: {m: 32}" >/dev/null
updated() { ready my-collection && qconfig my-collection | python3 -c '
import json, sys
c = json.load(sys.stdin)["result"]["config"]
sys.exit(0 if c["params"]["replication_factor"] == 3 and c["hnsw_config"]["m"] == 32 else 1)'; }
wait_until 60 "the update applied in place" updated
info "updated in place: replication_factor 3, hnsw m 32"

# Malformed: refused by the schema, or reported.
out=$(collection bad-size "  cluster: $qc
  vectorSize: 0" 2>&1) && fail "vector size 0 accepted"
grep -q "vectorSize" <<<"$out" || fail "the refusal does not name vectorSize: $out"
out=$(collection bad-distance "  cluster: $qc
  vectorSize: 4
  distance: Hamming" 2>&1) && fail "an unknown distance accepted"
grep -q "distance" <<<"$out" || fail "the refusal does not name distance: $out"
collection too-many "  cluster: $qc
  vectorSize: 4
  replicationFactor: 5" >/dev/null
wait_until 30 "replication above the peer count reported" reason_is too-many InvalidSpec
collection orphan "  cluster: no-such-cluster
  vectorSize: 4" >/dev/null
wait_until 30 "a missing cluster reported" reason_is orphan ClusterNotFound
[ "$(qdrant_status_code GET "$url/collections/too-many" "$key")" = 404 ] || fail "an invalid collection was created"
info "refused: vectorSize 0, distance Hamming; reported: $(col_field too-many '.status.conditions[0].message'); $(col_field orphan '.status.conditions[0].message')"

# Named vectors (this operator's addition): created by name; onDisk of one changed in place.
collection multi "  cluster: $qc
  vectors:
    text: {size: 384}
    image: {size: 512, distance: Dot, onDisk: false}" >/dev/null
wait_until 60 "multi Ready" ready multi
named() { qconfig multi | python3 -c 'import json,sys; v=json.load(sys.stdin)["result"]["config"]["params"]["vectors"]; print(" ".join(":".join([n, str(v[n]["size"]), v[n]["distance"], str(v[n].get("on_disk"))]) for n in sorted(v)))'; }
[ "$(named)" = "image:512:Dot:False text:384:Cosine:True" ] || fail "named vectors in Qdrant: $(named)"
kc patch qdrantcollection multi -n "$TEST_NS" --type=merge -p '{"spec":{"vectors":{"image":{"size":512,"distance":"Dot","onDisk":true}}}}' >/dev/null
wait_until 60 "image on disk" eval '[ "$(named)" = "image:512:Dot:True text:384:Cosine:True" ] && ready multi'
out=$(kc apply -n "$TEST_NS" -f - 2>&1 <<EOF2 || true
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollection
metadata: {name: both}
spec: {cluster: $qc, vectorSize: 4, vectors: {a: {size: 4}}}
EOF2
)
grep -q 'exclude each other' <<< "$out" || fail "vectorSize with vectors was not refused: $out"
info "named vectors: $(named); vectorSize with vectors refused by the schema"

# Exists with other fixed settings: reported, never dropped.
create_collection "$url" "$key" taken '{"vectors": {"size": 4, "distance": "Dot"}}'
upsert_points "$url" "$key" taken 50
collection taken "  cluster: $qc
  vectorSize: 8" >/dev/null
wait_until 30 "the conflict reported" reason_is taken ConfigConflict
[ "$(count_points "$url" "$key" taken)" = 50 ] || fail "the existing collection was touched"
info "conflict: $(col_field taken '.status.conditions[0].message')"

# Deletion, and the Retain policy.
collection kept "  cluster: $qc
  vectorSize: 4
  deletionPolicy: Retain" >/dev/null
wait_until 60 "kept Ready" ready kept
kc delete qdrantcollection my-collection kept multi -n "$TEST_NS" --timeout=60s >/dev/null || fail "deleting QdrantCollections did not complete"
[ "$(qdrant_status_code GET "$url/collections/my-collection" "$key")" = 404 ] || fail "my-collection still exists in Qdrant"
[ "$(qdrant_status_code GET "$url/collections/kept" "$key")" = 200 ] || fail "the Retain policy did not keep the collection"
kc delete qdrantcollection taken -n "$TEST_NS" --timeout=60s >/dev/null
[ "$(count_points "$url" "$key" taken)" = 50 ] || fail "deleting a conflicting resource deleted the user's collection"
info "deleted: my-collection gone from Qdrant, kept (Retain) still there"
