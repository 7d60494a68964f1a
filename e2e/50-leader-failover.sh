#!/usr/bin/env bash
# Graceful failover: `kubectl delete pod <leader>` (the real leader, found from the metrics).
# A different Pod leads within 2 s, the signals agree, the old Pod is gone or "false", and a
# spec change made right after is applied within 5 s.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
source "$(dirname "$0")/failover-lib.sh"
trap 'delete_qcs fo50' EXIT
wait_for_operator_ready 120
apply_qc fo50 1
wait_for_qc_status fo50 30 Running Healthy
failover graceful 2 fo50 >/dev/null
wait_for_operator_ready 60
