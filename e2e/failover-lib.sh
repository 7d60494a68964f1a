# Shared by the failover suites: one failover of the real leader, measured and checked.
# shellcheck shell=bash

# failover MODE LIMIT_SECONDS QC: deletes the leader (MODE graceful|force), requires a
# different Pod to hold the Lease within LIMIT_SECONDS, all signals to agree, the old Pod to
# be gone or "false", and a spec change of QC right after to be applied within 5 s.
failover() {
  local mode=$1 limit=$2 qc=$3 old t0 took replicas before
  wait_until 60 "signals to agree before the failover" signals_agree
  before=$(lease_transitions)
  old=$(get_leader_pod) || fail "no single leader to delete"
  local old_pid=""
  old_pid=$(cat "$E2E_STATE/pods/$old.pid" 2>/dev/null || true)
  t0=$(now_ms)
  if [ "$mode" = force ]; then delete_operator_pod "$old" --force; else delete_operator_pod "$old"; fi
  wait_until "$limit" "a Pod other than $old to hold the Lease" new_holder_other_than "$old"
  took=$(( $(now_ms) - t0 ))
  [ "$(lease_transitions)" -eq $((before + 1)) ] || fail "leaseTransitions went from $before to $(lease_transitions), not +1"
  # The Lease, the gauges and the annotations of the running Pods agree within one retry period
  # (2 s); the replacement Pod's process must also be up before every Pod can be read.
  local t1
  t1=$(now_ms)
  wait_until 10 "the three signals to agree after the failover" signals_agree
  local agreed=$(( $(now_ms) - t1 ))
  info "signals agreed $agreed ms after the new holder appeared"
  # One retry period (2 s), plus 1 s for this check's own kubectl and metrics round trips.
  [ "$agreed" -le 3000 ] || fail "the signals took $agreed ms to agree, more than one retry period"
  old_pod_ok() { ! exists pod "$old" -n "$OPERATOR_NS" || [ "$(leader_annotation "$old")" = "false" ]; }
  wait_until 5 "the old leader $old to be gone or say false" old_pod_ok
  # Locally, the Pod's process ends (as a kubelet would end it), and every Pod has its own.
  if [ -n "$old_pid" ]; then
    wait_until 35 "the deleted leader's process $old_pid to end" bash -c "! kill -0 $old_pid 2>/dev/null"
    local p pid
    for p in $(operator_pods); do
      pid=$(cat "$E2E_STATE/pods/$p.pid" 2>/dev/null) || fail "operator Pod $p has no process"
      [ "$pid" != "$old_pid" ] && kill -0 "$pid" 2>/dev/null || fail "operator Pod $p has no live process of its own"
    done
  fi
  replicas=$(( $(qc_field "$qc" .spec.replicas) % 3 + 1 ))
  kc patch qc "$qc" -n "$TEST_NS" --type merge -p "{\"spec\":{\"replicas\":$replicas}}" >/dev/null
  sts_follows() { [ "$(kc get sts "$qc" -n "$TEST_NS" -o jsonpath='{.spec.replicas}')" = "$replicas" ]; }
  wait_until 5 "the new leader to apply replicas=$replicas to $qc" sts_follows
  info "$mode failover: $old -> $(lease_holder) in ${took} ms; signals agree; spec change applied"
  echo "$took"
}
