#!/usr/bin/env bash
# Graceful failover: `kubectl delete pod <leader>` (the real leader, found from the metrics).
# A different Pod leads within 2 s, the signals agree, the old Pod is gone or "false", a spec
# change made right after is applied within 5 s, and the Events on the Lease tell the story:
# LostLeadership (shutdown) from the old leader, BecameLeader from the new one.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
source "$(dirname "$0")/failover-lib.sh"
trap 'delete_qcs fo50' EXIT
wait_for_operator_ready 120
apply_qc fo50 1
wait_for_qc_status fo50 30 Running Healthy
old=$(get_leader_pod)
failover graceful 2 fo50 >/dev/null
new=$(lease_holder)
lease_event() { # REASON TEXT: an Event with that reason on the Lease whose message has TEXT
  kc get events -n "$OPERATOR_NS" --field-selector "involvedObject.kind=Lease,reason=$1" \
    -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | grep -qF "$2"
}
wait_until 5 "a LostLeadership Event from $old" lease_event LostLeadership "$old lost leadership: shutdown"
wait_until 5 "a BecameLeader Event from $new" lease_event BecameLeader "$new became leader"
info "Events: $old LostLeadership (shutdown), $new BecameLeader"
wait_for_operator_ready 60
