#!/usr/bin/env bash
# The leader is killed while a reconcile of 20 new QdrantClusters is in flight (shown from the
# objects: some StatefulSets exist, not all). Afterwards every CR converges with exactly one of
# each child, no orphans, and status.observedGeneration == metadata.generation.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
N=20
names=(); for i in $(seq -w 1 $N); do names+=("inflight-$i"); done
trap 'delete_qcs "${names[@]}"' EXIT
wait_for_operator_ready 120

manifest=$(for n in "${names[@]}"; do printf 'apiVersion: qdrant.operator/v1alpha1\nkind: QdrantCluster\nmetadata: {name: %s}\nspec: {replicas: 2, image: "qdrant/qdrant:v1.16.3"}\n---\n' "$n"; done)
count_sts() { kc get sts -n "$TEST_NS" -l app.kubernetes.io/managed-by=qdrant-operator -o name | grep -c '/inflight-' || true; }
kc apply -n "$TEST_NS" -f - >/dev/null <<<"$manifest"
deadline=$(( $(now_ms) + 20000 ))
while :; do
  c=$(count_sts)
  if [ "$c" -ge 1 ] && [ "$c" -lt $N ]; then break; fi
  [ "$c" -lt $N ] || fail "all $N StatefulSets appeared before the leader could be killed mid-reconcile"
  [ "$(now_ms)" -lt "$deadline" ] || fail "no StatefulSet appeared within 20 s"
done
old=$(delete_leader --force)
info "killed leader $old with $c of $N StatefulSets created"

converged_all() { local n; for n in "${names[@]}"; do qc_converged "$n" || return 1; done; }
wait_until $(( $(lease_duration_seconds) + 60 )) "all $N clusters to converge after the failover" converged_all
new_holder_other_than "$old" || fail "the killed Pod still holds the Lease"

for kind in sts svc cm pdb; do
  got=$(kc get "$kind" -n "$TEST_NS" -l app.kubernetes.io/managed-by=qdrant-operator -o name | grep -c '/inflight-' || true)
  want=$N; [ "$kind" = svc ] && want=$((2 * N))
  [ "$got" -eq "$want" ] || fail "$got $kind objects for $N clusters, want $want"
done
for n in "${names[@]}"; do
  for o in "sts $n" "svc $n" "svc $n-headless" "cm $n" "pdb $n"; do
    owned_by_qc $o "$n" || fail "$o is not owned by QdrantCluster $n"
  done
done
orphans=$(kc get sts,svc,cm,pdb,secret -n "$TEST_NS" -l app.kubernetes.io/managed-by=qdrant-operator \
  -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}{" "}{.metadata.ownerReferences[0].uid}{"\n"}{end}' | awk 'NF == 1')
[ -z "$orphans" ] || fail "children without an owner: $orphans"
info "all $N clusters converged with exactly one of each child and no orphans"
wait_for_operator_ready 60
