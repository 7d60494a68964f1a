#!/usr/bin/env bash
# The main job: a local control plane, the operator with 3 replicas, a Qdrant cluster scaled to
# 3 (its Pods run the stand-in Qdrant, or $QDRANT_BIN), and a report of who leads: the operator
# according to the Lease, the metrics and the annotation; Qdrant according to its Raft.
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/utils.sh
step() { echo; echo "==> $*"; }
t0=$SECONDS
step "building the control plane (cached after the first run) and starting it"
e2e/cluster/up.sh
step "deploying the operator (3 replicas)"
e2e/cluster/deploy.sh
wait_for_operator_ready 120
step "applying examples/qdrant-cluster-minimal.yaml, then scaling it to 3"
kc apply -n default -f examples/qdrant-cluster-minimal.yaml
wait_for_qc_status my-cluster 60 Running Healthy
kc scale qc my-cluster -n default --replicas=3
wait_until 60 "my-cluster to have 3 ready replicas" qc_converged my-cluster
three_peers_led() { qc_status_is my-cluster Healthy && [ "$(qc_field my-cluster .status.qdrant.peerCount)" = 3 ] && [ -n "$(qc_field my-cluster .status.qdrant.raftLeader)" ]; }
wait_until 90 "Qdrant to report 3 peers in consensus with a Raft leader" three_peers_led

echo
echo "================ report ================"
holder=$(lease_holder)
echo "Leader according to the Lease:      $holder (leaseTransitions $(lease_transitions))"
for p in $(operator_pods); do
  printf '  %-40s operator_leader=%s  annotation qdrant.operator/leader=%s\n' "$p" \
    "$(metric_value "$p" "operator_leader{pod=\"$p\"}")" "$(leader_annotation "$p")"
done
metric_leader=$(get_leader_pod)
echo "Leader according to the metrics:    $metric_leader"
echo "Leader according to the annotation: $(for p in $(operator_pods); do [ "$(leader_annotation "$p")" = true ] && echo "$p"; done)"
wait_until 30 "the Lease, the metrics and the annotation to agree" signals_agree
echo "The Lease, the metrics and the annotation agree."
echo
echo "Qdrant's own view (status.qdrant): Raft leader $(qc_field my-cluster .status.qdrant.raftLeader), term $(qc_field my-cluster .status.qdrant.term)"
kc get qc my-cluster -n default -o jsonpath='{range .status.qdrant.peers[*]}  {.pod}  peer {.peerId}  {.uri}{"\n"}{end}'
echo
kc get qc -n default
echo
kc get pods -n default -l clustername=my-cluster -o wide
echo
echo "Done in $((SECONDS - t0))s. The control plane stays up: export KUBECONFIG=$KUBECONFIG"
echo "Stop it with: make cluster-down"
