#!/usr/bin/env bash
# Health from Qdrant in status. A 3-peer cluster is Healthy, with 3 peers in consensus, a Raft
# leader and the same peer ids Qdrant reports (u64, kept exact). One peer's process is frozen:
# the cluster becomes Degraded and the status names that Pod. Thawed, it is Healthy again.
# Runs unchanged with QDRANT_BIN (real Qdrant processes instead of the stand-in).
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=health
trap 'thaw_qpods; delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
apply_qc "$qc" 3 "  apikey: 'true'"
wait_until 120 "$qc to be Healthy" qc_status_is "$qc" Healthy
qdrant_health_is "$qc" Healthy || fail "status.qdrant.health is not Healthy"
[ "$(healthy_condition "$qc" status)" = "True" ] || fail "the Healthy condition is not True"
[ "$(qc_field "$qc" .status.qdrant.peerCount)" = "3" ] || fail "peerCount is not 3: $(qc_field "$qc" .status.qdrant)"
leader=$(qc_field "$qc" .status.qdrant.raftLeader)
[[ "$leader" =~ ^$qc-[0-2]$ ]] || fail "raftLeader is not one of the Pods: '$leader'"

# Each Pod's peer id in the status is exactly the id that Pod reports for itself. Compared
# as decimal strings: python's json reads integers exactly, whatever their size.
key=$(secret_key "$qc-apikey" api-key)
for i in 0 1 2; do
  pod=$qc-$i
  reported=$(qdrant_http GET "$(qdrant_url "$pod" "$qc")/cluster" "$key" | sed -n 2p | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["peer_id"])')
  stored=$(qc_field "$qc" ".status.qdrant.peers[?(@.pod==\"$pod\")].peerId")
  [ -n "$reported" ] && [ "$reported" = "$stored" ] || fail "$pod: status says peer '$stored', Qdrant says '$reported'"
done
row=$(kc get qc "$qc" -n "$TEST_NS" --no-headers)
read -r _ _ _ _ peers col_leader health _ <<<"$row"
[ "$peers/$col_leader/$health" = "3/$leader/Healthy" ] || fail "kubectl get qc shows '$row'"
info "Healthy: 3 peers, Raft leader $leader, peer ids as Qdrant reports them; kubectl get qc: $row"

# Freeze a peer that is not the Raft leader: it neither answers nor dies.
victim=$qc-0
[ "$victim" != "$leader" ] || victim=$qc-1
freeze_qpod "$victim"
info "froze $victim"
wait_until 90 "$qc to be Degraded, naming $victim" unhealthy_with "$qc" PeerUnreachable "$victim"
qdrant_health_is "$qc" Degraded || fail "status.qdrant.health is not Degraded"
[ "$(qc_field "$qc" '.status.conditions[?(@.type=="Degraded")].status')" = "True" ] || fail "the Degraded condition is not True"
info "Degraded: $(healthy_condition "$qc" message)"

thaw_qpods
wait_until 90 "$qc to be Healthy again" qc_status_is "$qc" Healthy
[ "$(healthy_condition "$qc" status)" = "True" ] || fail "the Healthy condition is not True"
info "thawed $victim: Healthy again"
