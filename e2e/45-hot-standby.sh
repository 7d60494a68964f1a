#!/usr/bin/env bash
# Hot standby: every replica, followers included, watches QdrantClusters. A new CR shows up in
# every replica's cache (qdrant_operator_clusters_managed, read from each replica's store),
# while only the leader writes (80-fencing.sh proves that part).
set -euo pipefail
source "$(dirname "$0")/utils.sh"
trap 'delete_qcs standby-a standby-b' EXIT
wait_for_operator_ready 120
managed() { metric_value "$1" qdrant_operator_clusters_managed; }
pods=$(operator_pods)
declare -A before
for p in $pods; do
  before[$p]=$(managed "$p")
  [ -n "${before[$p]}" ] || fail "$p exports no qdrant_operator_clusters_managed"
done
apply_qc standby-a 1
apply_qc standby-b 1
for p in $pods; do
  sees_both() { [ "$(managed "$1")" -eq $(( ${before[$1]} + 2 )) ]; }
  wait_until 10 "$p's cache to hold the two new clusters" sees_both "$p"
done
info "all $(wc -w <<<"$pods") replicas' caches hold the new clusters, followers included"
