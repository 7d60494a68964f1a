#!/usr/bin/env bash
# The minimal example creates its children (owned by the CR) within 5 s, becomes Running with
# Ready=True, scales to 3 with `kubectl scale`, and its children are garbage-collected with it.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
trap 'delete_qcs my-cluster' EXIT
wait_for_operator_ready 120
explained() { kc explain qdrantcluster.spec.replicas | grep -q "Number of Qdrant peers"; }
# The API server publishes the CRD's OpenAPI a moment after it is established.
wait_until 30 "kubectl explain to describe spec.replicas" explained

kc apply -n "$TEST_NS" -f "$REPO_ROOT/examples/qdrant-cluster-minimal.yaml" >/dev/null
children=("sts my-cluster" "svc my-cluster" "svc my-cluster-headless" "cm my-cluster")
for c in "${children[@]}"; do
  wait_until 5 "$c to exist" exists $c -n "$TEST_NS"
done
for c in "${children[@]}"; do
  owned_by_qc $c my-cluster || fail "$c is not owned by QdrantCluster my-cluster"
done
info "children exist, owned by the CR"

wait_for_qc_status my-cluster 30 Running Healthy
[ "$(qc_field my-cluster '.status.conditions[?(@.type=="Ready")].status')" = "True" ] || fail "Ready condition is not True"
[ "$(qc_field my-cluster .status.readyReplicas)" = "1" ] || fail "readyReplicas is not 1"
info "Running, Ready=True, readyReplicas=1"

kc scale qc my-cluster -n "$TEST_NS" --replicas=3 >/dev/null
wait_until 30 "my-cluster to converge at 3 replicas" qc_converged my-cluster
wait_until 5 "PodDisruptionBudget for 3 replicas" exists pdb my-cluster -n "$TEST_NS"
info "scaled to 3 with kubectl scale; PDB present"

kc scale qc my-cluster -n "$TEST_NS" --replicas=1 >/dev/null
wait_until 30 "my-cluster to converge at 1 replica" qc_converged my-cluster
wait_until 10 "PodDisruptionBudget removed at 1 replica" absent pdb my-cluster -n "$TEST_NS"
info "scaled back to 1; PDB removed"

kc delete qc my-cluster -n "$TEST_NS" --wait=true >/dev/null
for c in "${children[@]}"; do
  wait_until 30 "$c garbage-collected" absent $c -n "$TEST_NS"
done
info "deleting the CR garbage-collected its children"
