#!/usr/bin/env bash
# Gated rolling restart: a config change restarts the 3 Qdrant Pods one at a time (the
# StatefulSet is OnDelete; the operator evicts). Checked from the Pods' start and Ready times,
# and from samples taken a few times a second: never two Pods restarting at once, and each Pod
# restarted only once the previous one was back with every shard replica Active (the stand-in
# re-synchronises a restarted peer's replicas as Partial first). No point is lost. Runs
# unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=roll
trap 'stop_restart_sampler; delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
rolling_restart_start "$qc"

kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"config":{"storage":{"performance":{"max_search_threads":2}}}}}' >/dev/null
wait_until 240 "every Pod of $qc to be restarted, one at a time" restarted_all "$qc" "$before"
stop_restart_sampler
check_rolling_restart "$qc" 3 "$before" "$since" || fail "the rolling restart was not gated"
[ "$(count_points "$url" "$key" c)" = 300 ] || fail "after the restart: $(count_points "$url" "$key" c) points, not 300"
[ "$(awk '$3 != "Active"' <<<"$(collection_replicas "$url" "$key" c)" | wc -l)" = 0 ] || fail "replicas not Active after the restart"
[ "$(kc get sts "$qc" -n "$TEST_NS" -o jsonpath='{.spec.updateStrategy.type}')" = OnDelete ] || fail "the StatefulSet is not OnDelete"
info "restarted one at a time, replicas Active between restarts, 300 points"
