#!/usr/bin/env bash
# Runs every numbered suite in order (or those given as arguments), with the fencing sampler
# recording leadership in the background for 80-fencing.sh. Prints one line per suite and
# ends with "N passed, N failed". Exit code 77 from a suite means "cannot run here" (skipped).
set -uo pipefail
source "$(dirname "$0")/utils.sh"

suites=("$@")
[ ${#suites[@]} -gt 0 ] || mapfile -t suites < <(cd "$E2E_DIR" && ls [0-9][0-9]-*.sh)

mkdir -p "$E2E_STATE/fencing" "$E2E_STATE/logs"
sampler_pid=""
if [ -z "${FENCING_SAMPLER_RUNNING:-}" ]; then
  python3 -u "$E2E_DIR/fencing_sampler.py" "$E2E_STATE/fencing/samples.jsonl" >"$E2E_STATE/logs/sampler.log" 2>&1 &
  sampler_pid=$!
  echo "$sampler_pid" >"$E2E_STATE/fencing/sampler.pid"
  export FENCING_SAMPLER_RUNNING=1
fi
trap '[ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null' EXIT

passed=0 failed=0 skipped=0 results=()
for s in "${suites[@]}"; do
  s=$(basename "$s")
  echo "=== $s" >&2
  t0=$(now_ms)
  bash "$E2E_DIR/$s"
  rc=$?
  dur=$(( ($(now_ms) - t0) / 100 ))
  d="$((dur / 10)).$((dur % 10))s"
  case $rc in
    0) passed=$((passed + 1)); results+=("PASS  $s  $d") ;;
    77) skipped=$((skipped + 1)); results+=("SKIP  $s  $d") ;;
    *) failed=$((failed + 1)); results+=("FAIL  $s  $d (exit $rc)") ;;
  esac
  echo "${results[-1]}" >&2
done

echo
echo "e2e results:"
printf '  %s\n' "${results[@]}"
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
