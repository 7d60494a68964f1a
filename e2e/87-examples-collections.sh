#!/usr/bin/env bash
# The collection, backup, restore and template manifests in examples/ (the older JavaScript
# operator's, as facts) apply unchanged but for the S3 endpoint (a real S3 server on
# loopback, not storage.googleapis.com) and reach their final status:
# - minimal, complete and replication collections are Ready and as specified in Qdrant;
#   complete's daily schedule becomes an owned QdrantCollectionBackup, gone with it;
# - snapshot (backupNow) and backup make good backups; restore (its backupId set to one of
#   them) brings back the points, and so does a collection with restoreSnapshotName, as in
#   that operator's backup guide;
# - the template fills a collection's settings and backup schedule, and counts its user.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=my-cluster
bucket=unique-bucket-for-shapshots
cleanup() {
  kc delete qdrantcollections --all -n "$TEST_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kc delete qdrantcollectionrestores,qdrantcollectionbackups --all -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1 || true
  kc delete qdrantcollectiontemplate default-vectors --ignore-not-found >/dev/null 2>&1 || true
  delete_qcs "$qc"
  for c in $(kc get qdrantcollections -n "$TEST_NS" -o name 2>/dev/null); do
    kc patch "$c" -n "$TEST_NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
  s3_down
}
trap cleanup EXIT
wait_for_operator_ready 120
s3_bucket "$bucket"
apply_qc "$qc" 3 "  apikey: 'true'"
wait_until 120 "$qc to be Healthy" qc_status_is "$qc" Healthy
key=$(secret_key "$qc-apikey" api-key)
url=$(qdrant_url "$qc-0" "$qc")

example() { # FILE [extra sed]: applies examples/FILE with only the S3 endpoint changed
  sed -e "s|https://storage.googleapis.com/|$S3_ENDPOINT|" ${2:+-e "$2"} "$REPO_ROOT/examples/$1" | kc apply -n "$TEST_NS" -f - >/dev/null
}
field() { kc get "$1" "$2" -n "$TEST_NS" -o jsonpath="{$3}" 2>/dev/null; }
ready() { [ "$(field qcol "$1" '.status.conditions[?(@.type=="Ready")].status')" = True ] && [ "$(field qcol "$1" .status.observedGeneration)" = "$(field qcol "$1" .metadata.generation)" ]; }
params() { qdrant_http GET "$url/collections/$1" "$key" | sed -n 2p | python3 -c 'import json,sys; c=json.load(sys.stdin)["result"]["config"]; p=c["params"]; print(p["vectors"]["size"], p["vectors"]["distance"], p["shard_number"], p["replication_factor"], json.dumps(c.get("quantization_config"), sort_keys=True))'; }
gone() { kc delete qcol "$1" -n "$TEST_NS" --wait=true >/dev/null; [ "$(qdrant_status_code GET "$url/collections/$1" "$key")" = 404 ] || fail "$1 is still in Qdrant after its deletion"; }
backup_succeeded() { [ "$(field qcbackup "$1" '.status.backups[0].state')" = Succeeded ]; }
restore_completed() { [ "$(field qcrestore "$1" .status.phase)" = Completed ]; }

example qdrant-collection-minimal.yaml
wait_until 60 "minimal Ready" ready my-collection
[ "$(params my-collection)" = "10 Cosine 1 1 null" ] || fail "minimal in Qdrant: $(params my-collection)"
gone my-collection
info "minimal: Ready, 10 Cosine, 1 shard; deleted with its resource"

example qdrant-collection-complete.yaml
wait_until 60 "complete Ready" ready my-collection
[ "$(params my-collection)" = '10 Cosine 6 2 {"scalar": {"always_ram": true, "quantile": 0.5, "type": "int8"}}' ] || fail "complete in Qdrant: $(params my-collection)"
wait_until 30 "complete's backup resource" eval '[ "$(field qcbackup my-collection .spec.snapshots.backupSchedule)" = "0 0 * * *" ]'
[ "$(field qcbackup my-collection '.metadata.ownerReferences[0].kind')" = QdrantCollection ] || fail "the backup resource is not owned by the collection"
wait_until 30 "its next schedule time" eval '[ -n "$(field qcbackup my-collection .status.nextScheduleTime)" ]'
next=$(field qcbackup my-collection .status.nextScheduleTime)
gone my-collection
wait_until 60 "the backup resource garbage-collected" absent qcbackup my-collection -n "$TEST_NS"
info "complete: Ready, 6 shards x 2, int8 quantization; its daily backup resource (next at $next) went with it"

example qdrant-collection-replication.yaml
wait_until 60 "replication Ready" ready my-collection
[ "$(params my-collection)" = "10 Cosine 6 2 null" ] || fail "replication in Qdrant: $(params my-collection)"
[ "$(field qcol my-collection .status.replicas.3)" = 2 ] || fail "shard 3 does not have 2 replicas"
gone my-collection
info "replication: Ready, 6 shards x 2"

example qdrant-collection-snapshot.yaml
wait_until 60 "snapshot Ready" ready my-collection
body=$(python3 -c 'import json; print(json.dumps({"points": [{"id": i, "vector": [i / 10 + j for j in range(10)], "payload": {"n": i}} for i in range(1, 51)]}))')
[ "$(qdrant_status_code PUT "$url/collections/my-collection/points?wait=true" "$key" "$body")" = 200 ] || fail "upserting 50 points failed"
# backupNow was acted upon when the collection was made; the backup example takes another,
# now with the 50 points.
wait_until 60 "the snapshot example's backup" backup_succeeded my-collection
example qdrant-collection-backup.yaml
wait_until 60 "the backup example to succeed" backup_succeeded my-collection-backup
backup_id=$(field qcbackup my-collection-backup '.status.backups[0].backupId')
[ "$(field qcbackup my-collection-backup '.status.backups[0].pointsCount')" = 50 ] || fail "the backup does not hold the 50 points"
info "snapshot and backup: good backups, the second $backup_id with 50 points"

# The collection is lost in Qdrant (its resource makes an empty one again, or the restore does).
[ "$(qdrant_status_code DELETE "$url/collections/my-collection" "$key")" = 200 ] || fail "deleting the collection in Qdrant failed"
[ "$(count_points "$url" "$key" my-collection)" != 50 ] || fail "the points are still there"
example qdrant-collection-restore.yaml "s|backupId: .*|backupId: $backup_id|"
wait_until 60 "the restore example to complete" restore_completed my-collection-restore
[ "$(count_points "$url" "$key" my-collection)" = 50 ] || fail "the restore did not bring back 50 points"
info "restore: Completed, 50 points back"

# As in that operator's backup guide: a new collection filled from a backup.
kc apply -n "$TEST_NS" -f - >/dev/null <<EOF2
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollection
metadata: {name: target-collection}
spec:
  cluster: $qc
  vectorSize: 10
  snapshots:
    s3EndpointURL: $S3_ENDPOINT
    s3CredentialsSecretName: bucket-credentials
    bucketName: $bucket
    restoreSnapshotName: $backup_id
EOF2
wait_until 60 "target-collection restored" eval '[ "$(count_points "$url" "$key" target-collection)" = 50 ]'
wait_until 30 "its restore Completed" eval '[ "$(kc get qcrestore -n "$TEST_NS" -l qdrant.operator/collection=target-collection -o jsonpath="{.items[0].status.phase}")" = Completed ]'
info "restoreSnapshotName: target-collection has the 50 points"

example qdrant-collection-template.yaml
example qdrant-collection-from-template.yaml
wait_until 60 "embeddings Ready" ready embeddings
[ "$(params embeddings)" = "768 Cosine 6 2 null" ] || fail "embeddings in Qdrant: $(params embeddings)"
wait_until 30 "the template's backup policy applied" eval '[ "$(field qcbackup embeddings .spec.snapshots.backupSchedule)" = "0 2 * * *" ] && [ "$(field qcbackup embeddings .spec.snapshots.retentionCount)" = 7 ]'
wait_until 30 "the template counts its user" eval '[ "$(kc get qct default-vectors -o jsonpath="{.status.usageCount}")" = 1 ]'
info "template: embeddings is 768 Cosine, 6 shards x 2, backed up daily at 02:00 keeping 7; usageCount 1"
