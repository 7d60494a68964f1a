#!/usr/bin/env bash
# Crash failover: `kubectl delete pod <leader> --grace-period=0 --force`. The process is
# killed without releasing the Lease, so a new leader takes over after the lease duration:
# required within lease duration + 2 s.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
source "$(dirname "$0")/failover-lib.sh"
trap 'delete_qcs fo55' EXIT
wait_for_operator_ready 120
apply_qc fo55 1
wait_for_qc_status fo55 30 Running Healthy
ld=$(lease_duration_seconds)
took=$(failover force $((ld + 2)) fo55)
# Followers time the expiry from the last renewal they saw, up to one retry period (2 s)
# before the kill; anything much faster means the killed leader released the Lease.
[ "$took" -ge $(( (ld - 3) * 1000 )) ] || fail "took over after ${took} ms, before the ${ld}s lease could expire: was the Lease released?"
info "crash failover with lease duration ${ld}s took ${took} ms"
wait_for_operator_ready 60
