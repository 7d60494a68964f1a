#!/usr/bin/env bash
# Stops every process that cluster-up and deploy started, by the PIDs they recorded, and
# removes the state directory. Idempotent.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
if [ -d "$PIDS" ]; then
  # The runner first: it stops the operator processes it started.
  for name in runner prometheus kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop_pid "$name"
  done
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    stop_pid "$(basename "$f" .pid)"
  done
fi
rm -rf "$STATE"
log "stopped; state removed"
