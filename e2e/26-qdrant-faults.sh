#!/usr/bin/env bash
# Faults on the Qdrant side give a clear status, no crash and no hot loop:
#  - a peer that does not answer (its process frozen): PeerUnreachable naming it;
#  - a peer that answers 500 (the stand-in's fault hook; skipped with QDRANT_BIN, since a
#    real Qdrant has no such hook): PeerError naming it and the status code.
# Meanwhile the leader asks Qdrant a bounded number of times, keeps the Lease, and no operator
# Pod restarts. Healed, the cluster is Healthy again. (A rejected API key: 24-qdrant-keys.sh.)
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=faults
cleanup() {
  thaw_qpods
  if [ -z "${QDRANT_BIN:-}" ]; then
    qdrant_http POST "$(qdrant_url "$qc-1" "$qc")/__standin/heal" >/dev/null || true
  fi
  delete_qcs "$qc"
}
trap cleanup EXIT
wait_for_operator_ready 120
apply_qc "$qc" 3
wait_until 120 "$qc to be Healthy" qc_status_is "$qc" Healthy
leader=$(get_leader_pod)
restarts=$(operator_restarts)

# calm WHAT: over 20 s, at most 15 GET /cluster calls by the leader (3 Pods, one look on each
# change plus one every 30 s: a hot loop makes hundreds), the same leader, no restart.
calm() {
  local before t0 calls
  before=$(qdrant_requests_on_leader "GET /cluster")
  t0=$SECONDS
  sleep 20 # the assertion is about what happens in this window
  calls=$(( $(qdrant_requests_on_leader "GET /cluster") - before ))
  [ "$calls" -le 15 ] || fail "$1: $calls GET /cluster calls in $((SECONDS - t0)) s: a hot loop"
  [ "$(lease_holder)" = "$leader" ] || fail "$1: the leader changed to $(lease_holder)"
  [ "$(operator_restarts)" = "$restarts" ] || fail "$1: an operator Pod restarted"
  info "$1: $calls GET /cluster calls in 20 s, same leader, no restart"
}

freeze_qpod "$qc-2"
wait_until 90 "$qc to report $qc-2 unreachable" unhealthy_with "$qc" PeerUnreachable "$qc-2: unreachable"
info "frozen peer: $(healthy_condition "$qc" message)"
calm "frozen peer"
thaw_qpods
wait_until 90 "$qc to be Healthy again" qc_status_is "$qc" Healthy

if [ -n "${QDRANT_BIN:-}" ]; then
  info "a peer answering 500 needs the stand-in's fault hook: not run against $QDRANT_BIN"
  exit 0
fi
[ "$(qdrant_status_code POST "$(qdrant_url "$qc-1" "$qc")/__standin/fail?status=500&path_prefix=/cluster")" = 200 ] \
  || fail "the stand-in's fault hook did not answer"
wait_until 90 "$qc to report $qc-1 answering 500" unhealthy_with "$qc" PeerError "$qc-1: 500 Internal Server Error"
info "peer answering 500: $(healthy_condition "$qc" message)"
calm "peer answering 500"
qdrant_http POST "$(qdrant_url "$qc-1" "$qc")/__standin/heal" >/dev/null
wait_until 90 "$qc to be Healthy again" qc_status_is "$qc" Healthy
info "healed: Healthy again"
