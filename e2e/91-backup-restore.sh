#!/usr/bin/env bash
# Backup and restore through S3 (a real S3 server on loopback): a collection of 1,000 points
# over 3 peers and 6 shards (replication 2) is backed up on demand, a snapshot of every shard
# replica from the peer that holds it, each piece checked against the manifest's sha256; the
# collection is deleted, then restored by a QdrantCollectionRestore: 1,000 points with the
# same vectors and payloads, every shard on a peer; and restored onto another cluster of one
# peer (the replication capped at 1). Restoring a backup that does not exist fails with a
# clear reason. Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=bk
bucket=backups
cleanup() {
  kc delete qdrantcollectionrestores,qdrantcollectionbackups --all -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1 || true
  delete_qcs "$qc" "$qc-2"
  s3_down
}
trap cleanup EXIT
wait_for_operator_ready 120
s3_bucket "$bucket"
cluster_with_points "$qc" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 2}' 1000
[ "$(shard_holders "$url" "$key" c)" = 3 ] || fail "the collection is not spread over 3 peers"

# Every point with its vector and payload, sorted by id: what a restore must give back.
points_of() { # COLLECTION [URL KEY]
  qdrant_http POST "${2:-$url}/collections/$1/points/scroll" "${3:-$key}" '{"limit": 5000, "with_vector": true, "with_payload": true}' | sed -n 2p \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]["points"]; print(json.dumps(sorted(([p["id"], p["vector"], p.get("payload")] for p in r), key=lambda x: x[0])))'
}
before=$(points_of c)
[ "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$before")" = 1000 ] || fail "expected 1000 points before the backup"

field() { kc get "$1" "$2" -n "$TEST_NS" -o jsonpath="{$3}" 2>/dev/null; }
kc apply -n "$TEST_NS" -f - >/dev/null <<EOF2
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollectionBackup
metadata: {name: c-now}
spec:
  cluster: $qc
  collectionName: c
  snapshots:
    s3EndpointURL: $S3_ENDPOINT
    s3CredentialsSecretName: bucket-credentials
    bucketName: $bucket
    backupNow: true
EOF2
backup_state() { field qcbackup c-now '.status.backups[0].state'; }
wait_until 120 "the backup to end" eval '[ "$(backup_state)" = Succeeded ] || [ "$(backup_state)" = Failed ]'
[ "$(backup_state)" = Succeeded ] || fail "backup failed: $(field qcbackup c-now '.status.backups[0].reason'): $(field qcbackup c-now '.status.backups[0].message')"
backup_id=$(field qcbackup c-now '.status.backups[0].backupId')
id=$(field qcbackup c-now '.status.backups[0].id')
[ "$backup_id" = "$qc/c/$id" ] || fail "backupId $backup_id is not $qc/c/$id"
[ "$(field qcbackup c-now '.status.backups[0].pieces')" = 12 ] || fail "expected 12 pieces (6 shards x 2 replicas), got $(field qcbackup c-now '.status.backups[0].pieces')"
[ "$(field qcbackup c-now '.status.backups[0].pointsCount')" = 1000 ] || fail "the backup's point count is not 1000"
[ "$(field qcbackup c-now '.status.conditions[?(@.type=="Ready")].status')" = True ] || fail "Ready is not True after a good backup"
info "backup $backup_id: $(field qcbackup c-now '.status.backups[0].sizeBytes') bytes in $(field qcbackup c-now '.status.backups[0].durationSeconds') s at $(field qcbackup c-now '.status.backups[0].location')"

# The manifest lists every piece; each object's bytes match its sha256 and size; every shard
# is there from both peers that hold it, and the 3 Pods all contributed.
manifest=$(s3_get "$bucket" "$qc/c/$id/manifest.json")
s3_keys "$bucket" "$qc/c/$id/" > "$E2E_STATE/keys.$$"
python3 - "$manifest" "$E2E_STATE/keys.$$" <<'PY' || fail "the manifest does not match the bucket"
import json, sys
m = json.loads(sys.argv[1])
keys = set(open(sys.argv[2]).read().split())
pieces = m["pieces"]
assert m["format"] == "qdrant-operator/backup-v1", m["format"]
assert m["pointsCount"] == {"min": 1000, "max": 1000}, m["pointsCount"]
assert sorted({p["shard"] for p in pieces}) == list(range(6)), "shards missing"
assert all(sum(1 for p in pieces if p["shard"] == s) == 2 for s in range(6)), "each shard needs its 2 replicas"
assert len({p["pod"] for p in pieces}) == 3, "every Pod holds replicas"
assert keys == {p["key"] for p in pieces} | {f"{m['cluster']}/{m['collection']}/{m['backupId'].split('/')[2]}/manifest.json"}, (sorted(keys), pieces)
PY
python3 - "$manifest" > "$E2E_STATE/pieces.$$" <<'PY'
import json, sys
for p in json.loads(sys.argv[1])["pieces"]:
    print(p["key"], p["sha256"], p["size"])
PY
while read -r k sum size; do
  s3_get "$bucket" "$k" > "$E2E_STATE/piece.$$"
  [ "$(sha256sum < "$E2E_STATE/piece.$$" | cut -d' ' -f1)" = "$sum" ] || fail "$k does not match its sha256"
  [ "$(stat -c %s "$E2E_STATE/piece.$$")" = "$size" ] || fail "$k does not have its size"
done < "$E2E_STATE/pieces.$$"
rm -f "$E2E_STATE/piece.$$" "$E2E_STATE/pieces.$$" "$E2E_STATE/keys.$$"
info "12 pieces match their sha256 in the manifest"

# A backup that does not exist: a clear reason, nothing touched.
restore() { # NAME BACKUP_ID COLLECTION [CLUSTER]
  kc apply -n "$TEST_NS" -f - >/dev/null <<EOF2
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollectionRestore
metadata: {name: $1}
spec:
  collection: $3
  cluster: ${4:-$qc}
  backupId: $2
EOF2
}
phase() { field qcrestore "$1" .status.phase; }
ended() { [ "$(phase "$1")" = Completed ] || [ "$(phase "$1")" = Failed ]; }
restore missing "$qc/c/1999-01-01-00-00-00" c
wait_until 60 "the restore of a missing backup to end" ended missing
[ "$(phase missing)" = Failed ] && [ "$(field qcrestore missing .status.reason)" = BackupNotFound ] || fail "a missing backup: $(phase missing) $(field qcrestore missing .status.reason)"
[ "$(count_points "$url" "$key" c)" = 1000 ] || fail "a failed restore touched the collection"

# Delete the collection, then restore it.
[ "$(qdrant_status_code DELETE "$url/collections/c" "$key")" = 200 ] || fail "deleting the collection failed"
[ "$(qdrant_status_code GET "$url/collections/c" "$key")" = 404 ] || fail "the collection is still there"
t0=$(now_ms)
restore again "$backup_id" c
wait_until 120 "the restore to end" ended again
[ "$(phase again)" = Completed ] || fail "restore failed: $(field qcrestore again .status.reason): $(field qcrestore again .status.error)"
info "restored in $(( $(now_ms) - t0 )) ms: $(field qcrestore again .status.message)"
[ "$(field qcrestore again .status.pointsCount)" = 1000 ] && [ "$(field qcrestore again .status.expectedPoints)" = 1000 ] || fail "the status does not show 1000 of 1000 points"
[ "$(count_points "$url" "$key" c)" = 1000 ] || fail "the restored collection does not have 1000 points"
[ "$(points_of c)" = "$before" ] || fail "the restored points differ from the backed-up ones (vectors or payloads)"
wait_until 30 "every shard on a peer" eval '[ "$(collection_replicas "$url" "$key" c | awk "{print \$1}" | sort -u | wc -l)" = 6 ]'
info "1000 points with the same vectors and payloads; 6 shards over $(shard_holders "$url" "$key" c) peers"

# Completed is final: a leader change does not run it again.
rv=$(field qcrestore again .metadata.resourceVersion)
old=$(delete_leader)
wait_until 60 "a new leader" new_holder_other_than "$old"
deadline=$(( $(now_ms) + 5000 ))
while [ "$(now_ms)" -lt "$deadline" ]; do
  [ "$(field qcrestore again .metadata.resourceVersion)" = "$rv" ] || fail "a completed restore was written again"
  sleep 0.5
done
info "a completed restore is not run again by a new leader"

# Onto another cluster, of one peer: the collection is created there from the backup's
# settings, its replication capped at the peer count, with the same points.
apply_qc "$qc-2" 1 "  apikey: 'true'"
wait_until 120 "$qc-2 to be Healthy" qc_status_is "$qc-2" Healthy
key2=$(secret_key "$qc-2-apikey" api-key)
url2=$(qdrant_url "$qc-2-0" "$qc-2")
restore elsewhere "$backup_id" c "$qc-2"
wait_until 120 "the restore onto $qc-2 to end" ended elsewhere
[ "$(phase elsewhere)" = Completed ] || fail "restore onto $qc-2 failed: $(field qcrestore elsewhere .status.reason): $(field qcrestore elsewhere .status.error)"
[ "$(points_of c "$url2" "$key2")" = "$before" ] || fail "the points restored onto $qc-2 differ from the backed-up ones"
params2=$(qdrant_http GET "$url2/collections/c" "$key2" | sed -n 2p | python3 -c 'import json,sys; p=json.load(sys.stdin)["result"]["config"]["params"]; print(p["shard_number"], p["replication_factor"])')
[ "$params2" = "6 1" ] || fail "on $qc-2 the collection has shards and replication '$params2', not '6 1'"
info "onto $qc-2 (1 peer): 1000 points with the same vectors and payloads, 6 shards, replication 1"
