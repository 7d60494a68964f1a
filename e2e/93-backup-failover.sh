#!/usr/bin/env bash
# The operator leader is deleted during a backup (S3 made slow by the fault proxy, so the
# backup is caught mid-way): once gracefully, once crashed (force-deleted). Each time the
# backup ends Succeeded under the same id as attempt 2: never recorded good without its
# manifest, one backup directory and one manifest, no piece of the stopped attempt left, and
# never a second Running record (the new leader resumes the one backup, it does not start
# another). A backup whose manifest was written but whose success was not recorded is recorded,
# not taken again. Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=bkfo
bucket=backups
cleanup() {
  kc delete qdrantcollectionbackups --all -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1 || true
  delete_qcs "$qc"
  s3_down
}
trap cleanup EXIT
wait_for_operator_ready 120
s3_bucket "$bucket"
s3_proxy_up
cluster_with_points "$qc" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 1}' 600
field() { kc get qcbackup fo -n "$TEST_NS" -o jsonpath="{$1}" 2>/dev/null; }
running_records() { field '.status.backups[?(@.state=="Running")].id' | wc -w; }

round() { # DELETE_FLAGS
  s3_proxy_mode slow 2
  local gen
  if exists qcbackup fo -n "$TEST_NS"; then
    gen=$(kc get qcbackup fo -n "$TEST_NS" -o jsonpath='{.metadata.generation}')
    kc patch qcbackup fo -n "$TEST_NS" --type=merge -p "{\"spec\":{\"snapshots\":{\"retentionCount\":$(( gen + 5 ))}}}" >/dev/null
    wait_until 30 "a new backup to start" eval '[ "$(field .status.backupNowGeneration)" = "$(kc get qcbackup fo -n "$TEST_NS" -o jsonpath="{.metadata.generation}")" ]'
  else
    kc apply -n "$TEST_NS" -f - >/dev/null <<EOF2
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollectionBackup
metadata: {name: fo}
spec:
  cluster: $qc
  collectionName: c
  snapshots:
    s3EndpointURL: $S3_PROXY_ENDPOINT
    s3CredentialsSecretName: bucket-credentials
    bucketName: $bucket
    backupNow: true
EOF2
  fi
  wait_until 30 "the backup Running" eval '[ "$(field ".status.backups[0].state")" = Running ]'
  local id dir old
  id=$(field '.status.backups[0].id')
  dir="$qc/c/$id/"
  wait_until 60 "two pieces uploaded" eval '[ "$(s3_keys "$bucket" "$dir" | wc -l)" -ge 2 ]'
  s3_keys "$bucket" "$dir" | grep -q manifest.json && fail "a manifest exists while the backup runs"
  old=$(delete_leader "$@")
  info "deleted leader $old ${*:-gracefully} with $(s3_keys "$bucket" "$dir" | wc -l) pieces of $id uploaded"
  # Until it ends: never two Running records, never Succeeded without the manifest.
  local deadline=$(( $(now_ms) + 120000 )) state
  while :; do
    state=$(field '.status.backups[0].state')
    [ "$(running_records)" -le 1 ] || fail "two backups Running at once"
    [ "$state" = Running ] || break
    [ "$(now_ms)" -lt "$deadline" ] || fail "the backup did not end within 120 s"
    sleep 0.3
  done
  [ "$state" = Succeeded ] || fail "the backup ended $state: $(field '.status.backups[0].message')"
  [ "$(field '.status.backups[0].id')" = "$id" ] || fail "the backup that ended is not $id"
  [ "$(field '.status.backups[0].attempt')" = 2 ] || fail "expected attempt 2, got $(field '.status.backups[0].attempt')"
  [ "$(field ".status.backups[?(@.id==\"$id\")].id" | wc -w)" = 1 ] || fail "$id is recorded more than once"
  wait_until 10 "the stopped attempt's pieces removed" eval '! s3_keys "$bucket" "$dir" | grep -q -- "-a1.snapshot"'
  local manifest
  manifest=$(s3_get "$bucket" "${dir}manifest.json") || fail "Succeeded without a manifest"
  python3 - "$manifest" "$(s3_keys "$bucket" "$dir" | tr '\n' ' ')" <<'PY' || fail "the manifest does not match the directory"
import json, sys
m = json.loads(sys.argv[1]); keys = set(sys.argv[2].split())
pieces = {p["key"] for p in m["pieces"]}
assert len(pieces) == 6 and all(k.endswith("-a2.snapshot") for k in pieces), pieces
assert keys == pieces | {k for k in keys if k.endswith("/manifest.json")} and len(keys) == 7, keys
assert m["pointsCount"] == {"min": 600, "max": 600}, m["pointsCount"]
PY
  info "$id: Succeeded as attempt 2 after the leader change; 6 pieces of attempt 2 and the manifest, nothing else"
}
round
round --force

# A leader that wrote the manifest but stopped before recording the success: the record says
# Running. The next look resumes it, finds the manifest whole, and records that backup,
# Succeeded, without taking it again (the same pieces, not one more object).
id=$(field '.status.backups[0].id')
dir="$qc/c/$id/"
objects=$(s3_keys "$bucket" "$dir")
kc patch qcbackup fo -n "$TEST_NS" --subresource=status --type=json \
  -p '[{"op":"replace","path":"/status/backups/0/state","value":"Running"},{"op":"remove","path":"/status/backups/0/completedAt"}]' >/dev/null
wait_until 60 "the resumed backup recorded" eval '[ "$(field ".status.backups[0].state")" = Succeeded ]'
[ "$(field '.status.backups[0].attempt')" = 3 ] || fail "expected attempt 3, got $(field '.status.backups[0].attempt')"
[ "$(s3_keys "$bucket" "$dir")" = "$objects" ] || fail "the backup was taken again: $(s3_keys "$bucket" "$dir")"
[ "$(field '.status.backups[0].pieces')" = 6 ] || fail "the recorded backup does not have its 6 pieces"
info "$id: a manifest already whole is recorded Succeeded (attempt 3), not taken again"
# One manifest per backup directory, one directory per backup taken.
[ "$(s3_keys "$bucket" "$qc/c/" | grep -c '/manifest.json$')" = 2 ] || fail "expected exactly 2 backups in the bucket"
[ "$(s3_keys "$bucket" "$qc/c/" | cut -d/ -f3 | sort -u | wc -l)" = 2 ] || fail "a second copy of a backup was started"
info "2 leader changes, 2 backups, each completed once"
