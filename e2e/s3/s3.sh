#!/usr/bin/env bash
# A local S3 server for the e2e tests: versitygw (built by e2e/s3/build.sh, cached) with its
# posix backend, on 127.0.0.1 only, on a free port, with fixed test credentials.
#   e2e/s3/s3.sh start STATE_DIR   start it (or find it running) and print its env lines
#   e2e/s3/s3.sh env STATE_DIR     print S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION
#   e2e/s3/s3.sh stop STATE_DIR    stop the process whose PID start recorded, and only that one
# Buckets are directories under STATE_DIR/s3/data, object metadata is kept in a sidecar directory
# (STATE_DIR/s3/meta), not in xattrs, so any filesystem works. The log is STATE_DIR/s3/log.
# Use: eval "$(e2e/s3/s3.sh start "$state")", or s3_up in e2e/utils.sh. Not MinIO: its server
# is AGPL-3.0, which this workplace does not use (see build.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
S3_ACCESS_KEY=${S3_ACCESS_KEY:-qdrant-e2e}
S3_SECRET_KEY=${S3_SECRET_KEY:-qdrant-e2e-secret-key}
S3_REGION=${S3_REGION:-us-east-1}
S3_START_TIMEOUT=${S3_START_TIMEOUT:-30}
HEALTH=/health

usage() { echo "usage: $0 start|stop|env STATE_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)/s3
log() { echo "[s3 $(date +%H:%M:%S)] $*" >&2; }

# The recorded PID, if that process is still ours: a versitygw serving this state directory
# (so a PID reused by another process is never signalled).
ours() {
  local pid
  pid=$(cat "$dir/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  local args
  args=$(tr '\0' '\n' < "/proc/$pid/cmdline")
  [ "$(basename "$(head -n 1 <<< "$args")")" = versitygw ] && grep -qxF -- "$dir/data" <<< "$args" || return 1
  echo "$pid"
}

print_env() {
  local port
  port=$(cat "$dir/port")
  echo "S3_ENDPOINT=http://127.0.0.1:$port"
  echo "S3_ACCESS_KEY=$S3_ACCESS_KEY"
  echo "S3_SECRET_KEY=$S3_SECRET_KEY"
  echo "S3_REGION=$S3_REGION"
}

live() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$1$HEALTH"; }

start() {
  if ours >/dev/null && live "$(cat "$dir/port")"; then print_env; return 0; fi
  local bin port pid deadline
  bin=${S3_SERVER_BIN:-$("$here/build.sh")/versitygw}
  mkdir -p "$dir/data" "$dir/meta"
  # A free loopback port: the kernel picks one, we release it and versitygw binds it.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$port" > "$dir/port"
  # --keep-alive, as real S3 serves: without it versitygw closes every connection after one
  # answer, and a client's reuse of connections (and faultproxy.py's counting of requests on
  # one) would go untested.
  ROOT_ACCESS_KEY_ID=$S3_ACCESS_KEY ROOT_SECRET_ACCESS_KEY=$S3_SECRET_KEY \
    nohup "$bin" --port "127.0.0.1:$port" --region "$S3_REGION" --health "$HEALTH" --keep-alive \
    posix --sidecar "$dir/meta" "$dir/data" > "$dir/log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$dir/pid"
  deadline=$((SECONDS + S3_START_TIMEOUT))
  until live "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "versitygw exited before it was live; its log ($dir/log) ends:"; tail -n 20 "$dir/log" >&2
      rm -f "$dir/pid"; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "versitygw (pid $pid) not live on 127.0.0.1:$port after ${S3_START_TIMEOUT}s; stopping it"
      tail -n 20 "$dir/log" >&2; stop; return 1
    fi
    sleep 0.2
  done
  log "versitygw pid $pid live on 127.0.0.1:$port (data $dir/data)"
  print_env
}

stop() {
  local pid i
  if ! pid=$(ours); then rm -f "$dir/pid"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then log "versitygw pid $pid ignored SIGTERM for 10s; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$dir/pid"
  log "versitygw pid $pid stopped"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  env) [ -f "$dir/port" ] || { log "not started in $dir"; exit 1; }; print_env ;;
  *) usage ;;
esac
