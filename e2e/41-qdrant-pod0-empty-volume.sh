#!/usr/bin/env bash
# Pod 0 on an empty volume: its claim is deleted with it, so the StatefulSet brings it back on a
# new, empty one. Its start script joins the running cluster instead of founding a second one.
# Qdrant refuses a new peer under the URI of the old peer 0, which it still counts as a member;
# the operator knows from the recorded volumes that the old peer's data is gone, drops its
# replicas (each shard has another Active one: replication factor 2), removes it without force,
# and once the new peer 0 has joined, brings every shard back to 2 Active replicas. Sampled a
# few times a second: no Pod ever answers from another consensus. Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=lost
trap 'stop_restart_sampler; delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
cluster_with_points "$qc" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 2}' 300
url=$(qdrant_url "$qc-1" "$qc")
recorded() { [ -n "$(qc_field "$qc" '.status.qdrant.peers[?(@.pod=="'"$qc"'-0")].volume')" ]; }
wait_until 60 "the volume of $qc-0's peer to be recorded" recorded
old_peer=$(qc_field "$qc" '.status.qdrant.peers[?(@.pod=="'"$qc"'-0")].peerId')
old_claim=$(kc get pvc "qdrant-storage-$qc-0" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')
start_restart_sampler "$qc"
since=$(epoch_now)

kc delete pvc "qdrant-storage-$qc-0" -n "$TEST_NS" --wait=false >/dev/null
kc delete pod "$qc-0" -n "$TEST_NS" --wait=false >/dev/null
info "deleted $qc-0 and its claim (peer $old_peer)"
new_claim() { local uid; uid=$(kc get pvc "qdrant-storage-$qc-0" -n "$TEST_NS" -o jsonpath='{.metadata.uid}' 2>/dev/null); [ -n "$uid" ] && [ "$uid" != "$old_claim" ]; }
wait_until 120 "$qc-0 to get a new claim" new_claim
replaced() {
  local now
  now=$(qc_field "$qc" '.status.qdrant.peers[?(@.pod=="'"$qc"'-0")].peerId')
  [ -n "$now" ] && [ "$now" != "$old_peer" ] && [ "$(qc_field "$qc" .status.qdrant.peerCount)" = 3 ] \
    && [ -z "$(qc_field "$qc" .status.operation.type)" ] && qdrant_health_is "$qc" Healthy
}
wait_until 240 "$qc-0 to rejoin as a new peer, the old one forgotten, every replica back" replaced
stop_restart_sampler
uid=$(kc get qc "$qc" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')
[ -n "$(kc get events -n "$TEST_NS" --field-selector "reason=PeerReplaced,involvedObject.uid=$uid" -o name)" ] || fail "no PeerReplaced Event"
python3 "$E2E_DIR/one_cluster_check.py" "$RESTART_SAMPLES" "$qc-1" "$since" || fail "a second cluster appeared"
replicas=$(collection_replicas "$url" "$key" c)
for shard in 0 1 2 3 4 5; do
  active=$(awk -v s="$shard" '$1 == s && $3 == "Active"' <<<"$replicas" | wc -l)
  [ "$active" = 2 ] || fail "shard $shard has $active Active replicas, not 2: $replicas"
done
grep -q "$old_peer" <<<"$replicas" && fail "the old peer $old_peer still holds replicas: $replicas"
[ "$(count_points "$url" "$key" c)" = 300 ] || fail "after the replacement: $(count_points "$url" "$key" c) points, not 300"
info "$qc-0 rejoined as peer $(qc_field "$qc" '.status.qdrant.peers[?(@.pod=="'"$qc"'-0")].peerId'); 3 peers, every shard 2 Active replicas, 300 points"
