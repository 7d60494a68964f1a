#!/usr/bin/env bash
# Stops every process that cluster-up and deploy started, by the PIDs they recorded, and
# removes the state directory. Idempotent.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
if [ -d "$PIDS" ]; then
  # The runner first: it stops the operator processes it started.
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
rm -rf "$STATE"
log "stopped; state removed"
