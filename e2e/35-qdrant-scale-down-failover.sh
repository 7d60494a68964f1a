#!/usr/bin/env bash
# Failover during a scale-down: the operator's leader is deleted while a shard transfer runs.
# The new leader takes the scale-down up where Qdrant's state says it stands and completes it,
# with all 1,000 points; the API server's audit log shows no write by the old leader past its
# renew deadline, nor by any replica that did not hold the Lease. Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=shrink-fo
trap 'stop_own_sampler; delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
with_gauge_sampler
cluster_with_points "$qc" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 1}' 1000
since=$(epoch_now)

kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"replicas":1}}' >/dev/null
transferring() {
  qdrant_http GET "$url/collections/c/cluster" "$key" | sed -n 2p \
    | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["result"]["shard_transfers"] else 1)' 2>/dev/null
}
wait_until 60 "a shard transfer to run" transferring
old=$(delete_leader)
info "deleted the leader $old while a shard transfer ran"
wait_until 60 "a new leader" new_holder_other_than "$old"
scaled() { qc_converged "$qc" && [ -z "$(qc_field "$qc" .status.operation.type)" ] && [ "$(qc_field "$qc" .status.qdrant.peerCount)" = 1 ]; }
wait_until 240 "the new leader ($(lease_holder)) to complete the scale-down" scaled
[ "$(count_points "$url" "$key" c)" = 1000 ] || fail "after the scale-down: $(count_points "$url" "$key" c) points, not 1000"
wait_until 60 "the volumes of $qc-1 and $qc-2 to be deleted" absent pvc "qdrant-storage-$qc-1" "qdrant-storage-$qc-2" -n "$TEST_NS"
info "the new leader $(lease_holder) completed it: 1 peer, 1000 points, volumes deleted"
fencing_since "$since" "$SAMPLES" || fail "the fencing proof failed across the failover"
