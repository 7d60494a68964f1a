#!/usr/bin/env bash
# Stops every process that cluster-up and deploy started, by the PIDs they recorded, removes
# the runner's block from the hosts file, and removes the state directory. Idempotent.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
if [ -d "$PIDS" ]; then
  # The runner first: it stops the operator and Qdrant processes it started (Qdrant processes
  # of a runner that died are recorded as qpod.*.pid and stopped by the loop below).
  # A supervisor first, so that it does not restart the process it supervises.
  for name in runner prometheus kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop_pid "$name.sup"
    stop_pid "$name"
  done
  for f in "$PIDS"/*.sup.pid "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    stop_pid "$(basename "$f" .pid)"
  done
fi
# The runner removes its hosts block when it stops; this is for a runner that died.
python3 "$ROOT/e2e/cluster/qpods.py" remove-hosts-block "$STATE" || log "could not remove the hosts block of $STATE from ${E2E_HOSTS_FILE:-/etc/hosts}"
rm -rf "$STATE"
log "stopped; state removed"
