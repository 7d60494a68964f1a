# Shared by up.sh, down.sh and the runner scripts: paths and process helpers.
# shellcheck shell=bash
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${E2E_STATE:-$ROOT/.e2e}
PIDS=$STATE/pids
LOGS=$STATE/logs

log() { echo "[cluster $(date +%H:%M:%S)] $*" >&2; }

# pid_alive NAME: true when the process recorded under NAME is still running.
pid_alive() {
  local f="$PIDS/$1.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# stop_pid NAME: SIGTERM the recorded process, SIGKILL it after 10 s, forget it.
stop_pid() {
  local f="$PIDS/$1.pid" pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# supervise NAME CMD...: runs CMD in the background the way a kubelet runs a static Pod: when
# it exits it is started again, with the same flags, a second later. The process's PID is
# recorded as NAME, the supervisor's as NAME.sup. While $STATE/hold/NAME exists an exited
# process is not restarted, so a fault suite can keep a component down for a while.
supervise() {
  local name=$1; shift
  mkdir -p "$STATE/hold"
  rm -f "$PIDS/$name.pid"
  (
    child=""
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; [ -n "$child" ] && wait "$child"; exit 0' TERM
    while :; do
      while [ -e "$STATE/hold/$name" ]; do sleep 0.2; done
      "$@" &
      child=$!
      echo "$child" >"$PIDS/$name.pid"
      rc=0
      wait "$child" || rc=$?
      echo "[supervisor $(date +%H:%M:%S)] $name exited with status $rc; restarting"
      sleep 1
    done
  ) >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.sup.pid"
  local i
  for i in $(seq 1 50); do [ -s "$PIDS/$name.pid" ] && return 0; sleep 0.1; done
  log "$name did not start"
  return 1
}
