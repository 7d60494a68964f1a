#!/usr/bin/env bash
# Deleting the Lease while the operator leads (an admin, a GitOps prune), 10 times, while a
# QdrantCluster is changed continuously. The holder re-creates the Lease at once and keeps
# leading, with the same leaseTransitions; no follower takes over from a live holder, so no
# sampling round (every ~60 ms, all replicas) shows two leaders, and the audit log shows no
# write by a non-holder nor past a writer's renew deadline.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=lease-deletion
churn_pid=""
cleanup() {
  [ -n "$churn_pid" ] && kill "$churn_pid" 2>/dev/null
  stop_own_sampler
  delete_qcs "$qc"
}
trap cleanup EXIT
fault_suite_start "$qc"
ld=$(lease_duration_seconds)

# Continuous changes: replicas cycle 1, 2, 3 every half second.
( i=0; while :; do i=$((i % 3 + 1)); kc patch qc "$qc" -n "$TEST_NS" --type merge -p "{\"spec\":{\"replicas\":$i}}" >/dev/null 2>&1; sleep 0.5; done ) &
churn_pid=$!

leader=$(get_leader_pod) || fail "no single leader before the deletions"
worst=0
for n in $(seq 1 10); do
  before=$(lease_transitions)
  t0=$(now_ms)
  kc delete lease "$LEASE_NAME" -n "$OPERATOR_NS" --wait=false >/dev/null
  wait_until $((ld + 2)) "a live Pod to hold the Lease again after deletion $n" lease_held_by_live_pod
  took=$(( $(now_ms) - t0 ))
  [ "$took" -gt "$worst" ] && worst=$took
  holder=$(lease_holder)
  [ "$holder" = "$leader" ] || fail "deletion $n moved leadership from $leader to $holder while $leader was alive"
  [ "$(lease_transitions)" = "$before" ] || fail "deletion $n changed leaseTransitions from $before to $(lease_transitions)"
  wait_until 10 "the three signals to agree after deletion $n" signals_agree
done
info "10 deletions: $leader kept the Lease each time (re-created within ${worst} ms at worst), leaseTransitions unchanged"

kill "$churn_pid" 2>/dev/null; churn_pid=""
wait_until 60 "$qc to converge after the churn" qc_converged "$qc"
fencing_since "$FAULT_SINCE" "$SAMPLES" || fail "the fencing proof failed during the Lease deletions"
info "no two leaders in any sampling round; every write came from the holder, within its renew deadline"
