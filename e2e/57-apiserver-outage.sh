#!/usr/bin/env bash
# The API server fails under the operator, as the local control plane can make it: frozen
# (SIGSTOP) for 5 s, then killed and kept down for 20 s (longer than the renew deadline)
# before its supervisor restarts it with the same flags. After each:
# - exactly one leader within 30 s of recovery;
# - a change to an existing QdrantCluster made after recovery is applied within 10 s;
# - no operator replica restarted;
# - each replica logged at most 100 lines per started minute of outage (watches back off,
#   repeated errors are rate-limited);
# and over the whole suite no write came from a non-holder or past its writer's renew
# deadline (audit log).
set -euo pipefail
source "$(dirname "$0")/utils.sh"
PIDS_DIR=$E2E_STATE/pids
HOLD=$E2E_STATE/hold/kube-apiserver
if [ ! -f "$PIDS_DIR/kube-apiserver.sup.pid" ]; then
  echo "  needs the local control plane's supervised kube-apiserver: cannot run here" >&2
  exit 77
fi
qc=outage
apiserver_pid() { cat "$PIDS_DIR/kube-apiserver.pid"; }
cleanup() {
  rm -f "$HOLD"
  kill -CONT "$(apiserver_pid)" 2>/dev/null
  stop_own_sampler
  wait_until 60 "the API server to answer again" apiserver_ready
  # After kube-apiserver was killed, kube-controller-manager's garbage collector can take more
  # than a minute to watch again (measured once: nothing collected for 60 s after recovery).
  GC_TIMEOUT=180 delete_qcs "$qc"
}
trap cleanup EXIT
apiserver_ready() { kc get --raw /readyz >/dev/null 2>&1; }

fault_suite_start "$qc"
pods=$(operator_pods)
declare -A pid_of
for p in $pods; do pid_of[$p]=$(cat "$E2E_STATE/pods/$p.pid"); done

log_lines() { wc -l <"$E2E_STATE/logs/operator-$1.log"; }
declare -A lines_before
mark_logs() { local p; for p in $pods; do lines_before[$p]=$(log_lines "$p"); done; }

# after_recovery WHAT OUTAGE_SECONDS: the checks that follow every fault.
after_recovery() {
  local what=$1 outage=$2 p pid n limit replicas t0 took
  wait_until 30 "exactly one leader, agreed by every signal, after $what" signals_agree
  replicas=$(( $(qc_field "$qc" .spec.replicas) % 3 + 1 ))
  t0=$(now_ms)
  kc patch qc "$qc" -n "$TEST_NS" --type merge -p "{\"spec\":{\"replicas\":$replicas}}" >/dev/null
  sts_follows() { [ "$(kc get sts "$qc" -n "$TEST_NS" -o jsonpath='{.spec.replicas}')" = "$replicas" ]; }
  wait_until 10 "replicas=$replicas to be applied after $what" sts_follows
  took=$(( $(now_ms) - t0 ))
  for p in $pods; do
    pid=$(cat "$E2E_STATE/pods/$p.pid" 2>/dev/null || true)
    [ "$pid" = "${pid_of[$p]}" ] && kill -0 "$pid" 2>/dev/null || fail "operator Pod $p restarted during $what"
    n=$(( $(log_lines "$p") - ${lines_before[$p]} ))
    limit=$(( 100 * ((outage + 59) / 60) ))
    [ "$n" -le "$limit" ] || fail "$p logged $n lines during $what (at most $limit allowed)"
    info "$p: $n log lines during $what"
  done
  info "$what: one leader ($(lease_holder)); a change after recovery applied in ${took} ms; no restarts"
}

# 1. Frozen for 5 s: connections hang instead of failing.
mark_logs
kill -STOP "$(apiserver_pid)"
sleep 5
kill -CONT "$(apiserver_pid)"
wait_until 30 "the API server to answer after the freeze" apiserver_ready
after_recovery "a 5 s freeze" 5

# 2. Killed, down for 20 s, then restarted with the same flags by its supervisor.
mark_logs
old=$(apiserver_pid)
touch "$HOLD"
kill -KILL "$old"
sleep 20
rm -f "$HOLD"
new_apiserver() { [ "$(apiserver_pid)" != "$old" ]; }
wait_until 10 "the supervisor to restart kube-apiserver" new_apiserver
wait_until 60 "the restarted API server to be ready" apiserver_ready
after_recovery "a 20 s kill and restart" 25

fencing_since "$FAULT_SINCE" "$SAMPLES" || fail "the fencing proof failed across the API-server outages"
info "the leader stopped writing by its deadline; every write came from the holder"
