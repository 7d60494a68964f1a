#!/usr/bin/env bash
# Scheduled backups and S3 faults, against a real S3 server on loopback.
# - A schedule of one minute with retentionCount 2 (after two backups now) keeps exactly 2
#   backups (manifests) in the bucket, the newest, and no object outside them; the metrics
#   the QdrantBackupMissing alert reads are exported (interval 60 s, last success).
# - Wrong credentials, a missing bucket, and S3 going down during the upload each end Failed
#   with a clear reason, write no manifest, and lose no earlier backup (the bucket's earlier
#   objects are byte-identical). With S3 back, the next backup succeeds and the failed
#   attempt's leftovers are removed.
# - Bad input: a malformed schedule is InvalidSchedule, a missing Secret is SecretNotFound, a
#   missing required field is refused by the schema, and a restore with mode merge or a
#   malformed backupId fails with its reason. Nothing crashes.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=sched
bucket=backups
cleanup() {
  kc delete qdrantcollectionrestores,qdrantcollectionbackups --all -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1 || true
  delete_qcs "$qc"
  s3_down
}
trap cleanup EXIT
wait_for_operator_ready 120
restarts0=$(operator_restarts)
s3_bucket "$bucket"
s3_secret wrong-credentials "$S3_ACCESS_KEY" not-the-secret
cluster_with_points "$qc" 2 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 2, "replication_factor": 1}' 200

field() { kc get "$1" "$2" -n "$TEST_NS" -o jsonpath="{$3}" 2>/dev/null; }
backup() { # NAME SNAPSHOTS_YAML (indented by 4)
  kc apply -n "$TEST_NS" -f - <<EOF2
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollectionBackup
metadata: {name: $1}
spec:
  cluster: $qc
  collectionName: c
  snapshots:
$2
EOF2
}
s3_settings() { # ENDPOINT SECRET BUCKET
  printf '    s3EndpointURL: %s\n    s3CredentialsSecretName: %s\n    bucketName: %s\n' "$1" "$2" "$3"
}
manifests() { s3_keys "$bucket" "${1:-}" | grep -c '/manifest.json$' || true; }

# --- a schedule of one minute, retentionCount 2 ---
# Two backups now (backupNow, in two generations) before the schedule's first: the first
# scheduled one is then a third good backup, and retention must delete the oldest.
backup every-minute "$(s3_settings "$S3_ENDPOINT" bucket-credentials "$bucket")
    backupNow: true
    retentionCount: 2" >/dev/null
wait_until 60 "the first backup now" eval '[ "$(field qcbackup every-minute ".status.backups[0].state")" = Succeeded ]'
kc patch qcbackup every-minute -n "$TEST_NS" --type=merge -p '{"spec":{"snapshots":{"backupSchedule":"* * * * *"}}}' >/dev/null
wait_until 60 "the second backup now" eval '[ "$(field qcbackup every-minute ".status.backups[?(@.state==\"Succeeded\")].id" | wc -w)" = 2 ]'
[ "$(manifests "$qc/c/")" = 2 ] || fail "expected 2 backups before the schedule's first"
good_ids() { s3_keys "$bucket" "$qc/c/" | sed -n 's|^[^/]*/c/\([^/]*\)/manifest.json$|\1|p'; }
scheduled_successes() { kc get qcbackup every-minute -n "$TEST_NS" -o json | python3 -c '
import json, sys
b = json.load(sys.stdin)["status"].get("backups", [])
print(sum(1 for r in b if r["state"] == "Succeeded" and r["trigger"] == "Scheduled"))'; }
# Three good backups were made once the first scheduled one succeeded; retention then keeps 2.
deadline=$(( $(now_ms) + 150000 ))
until [ "$(scheduled_successes)" -ge 1 ] && [ -z "$(field qcbackup every-minute '.status.backups[?(@.state=="Running")].id')" ]; do
  [ "$(now_ms)" -lt "$deadline" ] || fail "timed out waiting for a scheduled backup: $(field qcbackup every-minute .status)"
  [ "$(field qcbackup every-minute '.status.backups[0].state')" != Failed ] || fail "a scheduled backup failed: $(field qcbackup every-minute '.status.backups[0].message')"
  sleep 1
done
wait_until 30 "retention to leave exactly 2 backups" eval '[ "$(manifests "$qc/c/")" = 2 ]'
kept=$(good_ids | tr '\n' ' ')
# No object outside the two kept backups' directories.
while read -r k; do
  d=$(cut -d/ -f3 <<< "$k")
  [[ " $kept " == *" $d "* ]] || fail "object $k is outside the 2 kept backups ($kept)"
done < <(s3_keys "$bucket")
newest=$(field qcbackup every-minute '.status.lastSuccessfulBackup')
[[ " $kept " == *" ${newest##*/} "* ]] || fail "the newest backup $newest is not among those kept: $kept"
[ "$(field qcbackup every-minute '.status.backups[?(@.state=="Succeeded")].id' | wc -w)" = 2 ] || fail "the status lists other than the 2 kept backups: $(field qcbackup every-minute '.status.backups[*].id')"
[ -n "$(field qcbackup every-minute .status.nextScheduleTime)" ] || fail "no nextScheduleTime"
info "schedule: kept exactly 2 backups ($kept), next at $(field qcbackup every-minute .status.nextScheduleTime)"
leader=$(get_leader_pod)
backup_metric() { # NAME: its value for this backup resource (labels in any order)
  operator_metrics "$leader" | grep "^$1{" | grep -F "backup_name=\"every-minute\"" | grep -F "backup_namespace=\"$TEST_NS\"" | awk '{ print $2; exit }'
}
interval=$(backup_metric qdrant_operator_backup_schedule_interval_seconds)
last=$(backup_metric qdrant_operator_backup_last_success_timestamp_seconds)
[ "${interval%.*}" = 60 ] || fail "schedule interval metric is '$interval', not 60"
python3 -c 'import sys,time; assert 0 < time.time() - float(sys.argv[1]) < 120, sys.argv[1]' "$last" || fail "last-success metric $last is not recent"
info "metrics: interval ${interval}s, last success $(python3 -c 'import sys,time; print(round(time.time()-float(sys.argv[1])))' "$last") s ago"
# No schedule, then no resource: the backups stay. (The schedule goes first, and the suite
# waits for no backup to be running, so that none starts or ends after the bucket is listed.)
kc patch qcbackup every-minute -n "$TEST_NS" --type=merge -p '{"spec":{"snapshots":{"backupSchedule":""}}}' >/dev/null
wait_until 60 "no backup running" eval '[ "$(field qcbackup every-minute .status.observedGeneration)" = "$(field qcbackup every-minute .metadata.generation)" ] && [ -z "$(field qcbackup every-minute ".status.backups[?(@.state==\"Running\")].id")" ]'
kc delete qcbackup every-minute -n "$TEST_NS" >/dev/null
[ "$(manifests "$qc/c/")" = 2 ] || fail "deleting the resource changed the backups in the bucket"
s3_keys "$bucket" | sort > "$E2E_STATE/bucket-before.$$"
before_sums=$(while read -r k; do s3_get "$bucket" "$k" | sha256sum; done < "$E2E_STATE/bucket-before.$$")

# --- faults: each a clear status, no manifest, the earlier backups untouched ---
ended() { local s; s=$(field qcbackup "$1" '.status.backups[0].state'); [ "$s" = Succeeded ] || [ "$s" = Failed ]; }
expect_failure() { # NAME REASON
  wait_until 60 "backup $1 to end" ended "$1"
  local state reason message
  state=$(field qcbackup "$1" '.status.backups[0].state'); reason=$(field qcbackup "$1" '.status.backups[0].reason'); message=$(field qcbackup "$1" '.status.backups[0].message')
  [ "$state" = Failed ] && [ "$reason" = "$2" ] || fail "$1: expected Failed/$2, got $state/$reason: $message"
  [ "$(field qcbackup "$1" '.status.conditions[?(@.type=="Ready")].reason')" = BackupFailed ] || fail "$1: Ready does not say BackupFailed"
  [ -n "$message" ] || fail "$1: no message"
  info "$1: Failed, $reason: $message"
}
backup wrong-creds "$(s3_settings "$S3_ENDPOINT" wrong-credentials "$bucket")
    pathPrefix: faults/
    backupNow: true" >/dev/null
expect_failure wrong-creds S3AccessDenied
backup no-bucket "$(s3_settings "$S3_ENDPOINT" bucket-credentials no-such-bucket)
    backupNow: true" >/dev/null
expect_failure no-bucket BucketNotFound
s3_proxy_up
s3_proxy_mode down-after-puts 1
backup s3-down "$(s3_settings "$S3_PROXY_ENDPOINT" bucket-credentials "$bucket")
    pathPrefix: faults/
    backupNow: true" >/dev/null
expect_failure s3-down S3Unreachable
failed_id=$(field qcbackup s3-down '.status.backups[0].id')
[ "$(s3_keys "$bucket" faults/ | grep -c manifest.json || true)" = 0 ] || fail "a failed backup wrote a manifest"
[ "$(s3_keys "$bucket" "faults/$qc/c/$failed_id/" | wc -l)" -ge 1 ] || fail "the upload did not get as far as one piece (the fault came too early to test)"
s3_keys "$bucket" | grep -v '^faults/' | sort | diff -u "$E2E_STATE/bucket-before.$$" - || fail "the earlier backups' objects changed"
after_sums=$(while read -r k; do s3_get "$bucket" "$k" | sha256sum; done < "$E2E_STATE/bucket-before.$$")
[ "$before_sums" = "$after_sums" ] || fail "the earlier backups' bytes changed"
rm -f "$E2E_STATE/bucket-before.$$"
info "no earlier backup lost: $(wc -w <<< "$kept") backups byte-identical"
# S3 back: the next backup succeeds, and the failed attempt's pieces are removed.
s3_proxy_mode pass
kc patch qcbackup s3-down -n "$TEST_NS" --type=merge -p '{"spec":{"snapshots":{"retentionCount":5}}}' >/dev/null
wait_until 60 "the next backup to succeed" eval '[ "$(field qcbackup s3-down ".status.backups[0].state")" = Succeeded ]'
wait_until 30 "the failed attempt's pieces removed" eval '[ -z "$(s3_keys "$bucket" "faults/$qc/c/$failed_id/")" ]'
info "with S3 back: $(field qcbackup s3-down '.status.backups[0].id') Succeeded; the failed attempt's pieces are gone"

# --- bad input ---
backup bad-cron "$(s3_settings "$S3_ENDPOINT" bucket-credentials "$bucket")
    backupSchedule: '61 * * * *'" >/dev/null
wait_until 30 "InvalidSchedule" eval '[ "$(field qcbackup bad-cron ".status.conditions[?(@.type==\"Ready\")].reason")" = InvalidSchedule ]'
info "bad-cron: $(field qcbackup bad-cron '.status.conditions[0].message')"
backup no-secret "$(s3_settings "$S3_ENDPOINT" no-such-secret "$bucket")
    backupNow: true" >/dev/null
expect_failure no-secret SecretNotFound
out=$(kc apply -n "$TEST_NS" -f - 2>&1 <<EOF2 || true
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollectionBackup
metadata: {name: no-bucket-field}
spec: {cluster: $qc, collectionName: c, snapshots: {s3EndpointURL: x, s3CredentialsSecretName: y}}
EOF2
)
grep -q 'bucketName: Required' <<< "$out" || fail "a backup without bucketName was not refused by the schema: $out"
absent qcbackup no-bucket-field -n "$TEST_NS" || fail "the malformed backup was stored"
restore() { # NAME BACKUP_ID MODE
  kc apply -n "$TEST_NS" -f - >/dev/null <<EOF2
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollectionRestore
metadata: {name: $1}
spec: {collection: c, cluster: $qc, backupId: '$2', mode: $3}
EOF2
}
restore merge "$newest" merge
restore bad-id "not-a-backup-id" replace
for r in merge:UnsupportedMode bad-id:InvalidBackupId; do
  wait_until 30 "restore ${r%%:*} to fail" eval '[ "$(field qcrestore '"${r%%:*}"' .status.phase)" = Failed ]'
  [ "$(field qcrestore "${r%%:*}" .status.reason)" = "${r#*:}" ] || fail "restore ${r%%:*}: reason $(field qcrestore "${r%%:*}" .status.reason), not ${r#*:}"
  info "restore ${r%%:*}: Failed, ${r#*:}: $(field qcrestore "${r%%:*}" .status.error)"
done
[ "$(count_points "$url" "$key" c)" = 200 ] || fail "bad input touched the collection"
[ "$(operator_restarts)" = "$restarts0" ] || fail "an operator Pod restarted"
info "bad input refused or reported; the collection and the operator untouched"
