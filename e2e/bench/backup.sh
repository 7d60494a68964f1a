#!/usr/bin/env bash
# The backup part of `make bench`: BACKUP_N (5) rounds on one QdrantCluster bench-bk of 3
# stand-in Qdrant Pods (the control plane must run them: not E2E_QDRANT_PODS=kwok) whose
# collection c holds 1,000 points in 6 shards, with a local S3 server (e2e/s3/s3.sh). Each
# round: the backup by hand (the baseline), a backup by the operator, then the collection is
# deleted and restored, and must hold 1,000 points again. e2e/bench/backup_timing.py times each
# step; e2e/bench/backup_report.py writes the markdown section to
# $E2E_STATE/bench/backup/section.md. Runs alone on a plane that is up with the operator
# deployed: e2e/bench/backup.sh (KUBECONFIG defaults to .e2e/kubeconfig).
set -euo pipefail
cd "$(dirname "$0")/../.."
source e2e/utils.sh
ROUNDS=${BACKUP_N:-5}
OUT=$E2E_STATE/bench/backup
runs=$OUT/runs.jsonl
export BENCH_CLUSTER=bench-bk BENCH_BUCKET=bench-backups BENCH_SECRET=bench-bk-s3
qc=$BENCH_CLUSTER
rm -rf "$OUT"; mkdir -p "$OUT"
proxy=""
cleanup() {
  if [ -n "$proxy" ]; then kill "$proxy" 2>/dev/null || true; wait "$proxy" 2>/dev/null || true; fi
  kc delete qdrantcollectionrestores,qdrantcollectionbackups -n "$TEST_NS" -l bench=backup --ignore-not-found >/dev/null 2>&1 || true
  kc delete secret "$BENCH_SECRET" -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1 || true
  delete_qcs "$qc"
  s3_down
}
trap cleanup EXIT
wait_for_operator_ready 120

# The timed requests go through kubectl proxy: a kubectl per poll would take longer to start
# than the 50 ms between polls.
"$KUBECTL" proxy --address=127.0.0.1 --port=0 >"$OUT/proxy.log" 2>&1 &
proxy=$!
wait_until 10 "kubectl proxy to listen (its log: $OUT/proxy.log)" grep -q '^Starting to serve on ' "$OUT/proxy.log"
export BENCH_API="http://$(sed -n 's/^Starting to serve on //p' "$OUT/proxy.log")"

s3_up
s3_mb "$BENCH_BUCKET"
s3_secret "$BENCH_SECRET"
cluster_with_points "$qc" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 1}' 1000
export QDRANT_KEY=$key
pods=()
for p in 0 1 2; do pods+=("$(qdrant_url "$qc-$p" "$qc")"); done
all_active() { [ "$(collection_replicas "$url" "$key" c | awk '$3 == "Active" { print $1 }' | sort -u | wc -l)" = 6 ]; }

for i in $(seq 1 "$ROUNDS"); do
  wait_until 60 "every shard of c Active" all_active
  python3 e2e/bench/backup_timing.py baseline "$runs" "$i" "${pods[@]}"
  # A backup's id is the second it started: two in one second would share a directory.
  sleep 1
  backup_id=$(python3 e2e/bench/backup_timing.py backup "$runs" "$i" "$qc-$i")
  [ "$(qdrant_status_code DELETE "$url/collections/c" "$key")" = 200 ] || fail "round $i: deleting the collection failed"
  python3 e2e/bench/backup_timing.py restore "$runs" "$i" "$qc-restore-$i" "$backup_id" "$qc-$i"
  n=$(count_points "$url" "$key" c)
  [ "$n" = 1000 ] || fail "round $i: $n points after the restore, not 1000"
done
python3 e2e/bench/backup_report.py "$runs" >"$OUT/section.md"
cat "$OUT/section.md"
