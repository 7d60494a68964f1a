#!/usr/bin/env bash
# Rolling restart across an operator failover: the leader is deleted after the first Qdrant
# Pod was evicted. The new leader finds what is left from the Pods' revisions and goes on, one
# Pod at a time, never evicting a second Pod while one is coming back; the audit log shows no
# write by the old leader after its deadline. Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=roll-fo
trap 'stop_restart_sampler; stop_own_sampler; delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
with_gauge_sampler
rolling_restart_start "$qc"

kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"image":"qdrant/qdrant:v1.16.4"}}' >/dev/null
first_evicted() { [ "$(qpod_uids "$qc" | grep -cxFf "$before")" -lt 3 ] || kc get pods -n "$TEST_NS" -l "clustername=$qc" -o jsonpath='{.items[*].metadata.deletionTimestamp}' | grep -q .; }
wait_until 60 "the first Pod to be evicted" first_evicted
old=$(delete_leader)
info "deleted the leader $old after the first eviction"
wait_until 60 "a new leader" new_holder_other_than "$old"
wait_until 240 "the new leader ($(lease_holder)) to restart every Pod of $qc" restarted_all "$qc" "$before"
stop_restart_sampler
check_rolling_restart "$qc" 3 "$before" "$since" || fail "the rolling restart was not gated across the failover"
[ "$(count_points "$url" "$key" c)" = 300 ] || fail "after the restart: $(count_points "$url" "$key" c) points, not 300"
fencing_since "$since" "$SAMPLES" || fail "the fencing proof failed across the failover"
info "the new leader $(lease_holder) finished the rolling restart one Pod at a time"
