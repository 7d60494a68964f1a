#!/usr/bin/env bash
# The scale-down part of `make bench`: SCALE_DOWN_N (5) runs of 3 -> 1 with 1,000 points in 6
# shards, on stand-in Qdrant Pods (the control plane must run them: not E2E_QDRANT_PODS=kwok).
# Writes the markdown section to $E2E_STATE/bench/scale-down/section.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
source e2e/utils.sh
RUNS=${SCALE_DOWN_N:-5}
OUT=$E2E_STATE/bench/scale-down
rm -rf "$OUT"; mkdir -p "$OUT"
sampler=""
qc=""
cleanup() { [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true; [ -z "$qc" ] || delete_qcs "$qc"; }
trap cleanup EXIT
wait_for_operator_ready 120
for i in $(seq 1 "$RUNS"); do
  qc=bench-sd-$i
  cluster_with_points "$qc" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 1}' 1000
  QDRANT_KEY=$key python3 -u e2e/bench/transfers.py "$OUT/$qc.jsonl" "$url" c 2>>"$OUT/sampler.log" &
  sampler=$!
  t0=$(epoch_now)
  kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"replicas":1}}' >/dev/null
  scaled() { [ -z "$(qc_field "$qc" .status.operation.type)" ] && [ "$(qc_field "$qc" .status.qdrant.peerCount)" = 1 ]; }
  wait_until 300 "$qc to scale down to 1" scaled
  t1=$(epoch_now)
  kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=""
  [ "$(count_points "$url" "$key" c)" = 1000 ] || fail "$qc: $(count_points "$url" "$key" c) points after the scale-down"
  python3 -c 'import json,sys; print(json.dumps({"wall": float(sys.argv[2]) - float(sys.argv[1]), "samples": sys.argv[3]}))' "$t0" "$t1" "$qc.jsonl" >>"$OUT/runs.jsonl"
  echo "[bench] scale-down $i/$RUNS: $(python3 -c "print(round($t1 - $t0, 1))") s" >&2
  delete_qcs "$qc"; qc=""
done
python3 e2e/bench/scale_down_report.py "$OUT" >"$OUT/section.md"
