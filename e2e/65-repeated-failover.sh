#!/usr/bin/env bash
# Ten failovers in a row, alternating graceful and forced. After each: exactly one leader,
# the signals agree, and the new leader applies a spec change.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
source "$(dirname "$0")/failover-lib.sh"
trap 'delete_qcs fo65' EXIT
wait_for_operator_ready 120
apply_qc fo65 1
wait_for_qc_status fo65 30 Running Healthy
ld=$(lease_duration_seconds)
for i in $(seq 1 10); do
  if [ $((i % 2)) -eq 1 ]; then
    failover graceful 2 fo65 >/dev/null
  else
    failover force $((ld + 2)) fo65 >/dev/null
  fi
  wait_until 60 "fo65 to converge after failover $i" qc_converged fo65
  wait_for_operator_ready 60
done
info "10 failovers: one leader and convergence after each"
