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
