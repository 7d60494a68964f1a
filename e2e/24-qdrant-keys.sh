#!/usr/bin/env bash
# API keys, through every Pod's own address: no key gets 401; the read-only key reads but gets
# 403 on every write the operator would make (shard operations, peer removal, snapshots,
# collection changes); the read-write key may write. The operator itself uses the read-write
# key: changing only the read-only key while the Pods still run the old one leaves the cluster
# Healthy, and changing the read-write key the same way turns it Unauthorized, named per Pod,
# without a hot loop. The StatefulSet controller is held down meanwhile, so the Pods keep their
# old keys (Qdrant reads its key at start, as the real one does); released, the Pods roll and
# the cluster is Healthy with the new keys.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=keys
KCM=kube-controller-manager
HOLD=$E2E_STATE/hold/$KCM
if [ ! -f "$E2E_STATE/pids/$KCM.sup.pid" ]; then
  echo "  needs the local control plane's supervised $KCM: cannot run here" >&2
  exit 77
fi
cleanup() {
  rm -f "$HOLD"
  delete_qcs "$qc"
}
trap cleanup EXIT
wait_for_operator_ready 120
# Persistent volumes: the Pods restart when the keys change, and must come back as the same
# peers (on an emptyDir a restarted Pod is a new peer, and the old one stays in consensus).
apply_qc "$qc" 3 "  apikey: 'rw-key-one'
  readApikey: 'ro-key-one'
  persistence: {size: 1Gi}"
wait_until 120 "$qc to be Healthy" qc_status_is "$qc" Healthy

# expect CODE METHOD PATH KEY [BODY]: on every Pod.
expect() {
  local want=$1 method=$2 path=$3 key=$4 body=${5:-} i got
  for i in 0 1 2; do
    got=$(qdrant_status_code "$method" "$(qdrant_url "$qc-$i" "$qc")$path" "$key" "$body")
    [ "$got" = "$want" ] || fail "$method $path on $qc-$i with key '${key:-none}': $got, expected $want"
  done
}
[ "$(qdrant_status_code PUT "$(qdrant_url "$qc-0" "$qc")/collections/k" rw-key-one '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3}')" = 200 ] \
  || fail "the read-write key could not create a collection"
everywhere() { local i; for i in 0 1 2; do [ "$(qdrant_status_code GET "$(qdrant_url "$qc-$i" "$qc")/collections/k" rw-key-one)" = 200 ] || return 1; done; }
wait_until 30 "collection k on every Pod" everywhere
for path in /cluster /collections /collections/k/cluster /readyz; do
  [ "$path" = /readyz ] || expect 401 GET "$path" ""
  expect 200 GET "$path" ro-key-one
done
expect 401 GET /cluster wrong-key
peer=$(qc_field "$qc" '.status.qdrant.peers[0].peerId')
expect 403 POST /collections/k/cluster ro-key-one "{\"move_shard\": {\"shard_id\": 0, \"from_peer_id\": $peer, \"to_peer_id\": $peer}}"
expect 403 POST /collections/k/cluster ro-key-one "{\"drop_replica\": {\"shard_id\": 0, \"peer_id\": $peer}}"
expect 403 DELETE "/cluster/peer/$peer" ro-key-one
expect 403 POST /collections/k/snapshots ro-key-one
expect 403 PUT /collections/k2 ro-key-one '{"vectors": {"size": 4, "distance": "Dot"}}'
expect 403 DELETE /collections/k ro-key-one
expect 200 POST /collections/k/points/count ro-key-one '{"exact": true}'
info "no key: 401; read-only key: reads 200, writes 403 (shard operations, peer removal, snapshots, collections); on every Pod"

# Hold the StatefulSet controller, so the Pods keep running with the keys they started with.
touch "$HOLD"
kill "$(cat "$E2E_STATE/pids/$KCM.pid")"
kcm_down() { ! kill -0 "$(cat "$E2E_STATE/pids/$KCM.pid")" 2>/dev/null; }
wait_until 30 "$KCM to stop" kcm_down
current() { [ "$(qc_field "$qc" .status.observedGeneration)" = "$(qc_field "$qc" .metadata.generation)" ] && [ "$(healthy_condition "$qc" observedGeneration)" = "$(qc_field "$qc" .metadata.generation)" ]; }

kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"readApikey":"ro-key-two"}}' >/dev/null
wait_until 30 "the new generation to be judged" current
[ "$(healthy_condition "$qc" status)" = "True" ] || fail "a read-only key change the Pods have not seen made the cluster unhealthy: the operator uses the read-only key ($(healthy_condition "$qc" message))"
expect 200 GET /cluster ro-key-one
info "read-only key changed, Pods not restarted: still Healthy, so the operator does not use it"

kc patch qc "$qc" -n "$TEST_NS" --type merge -p '{"spec":{"apikey":"rw-key-two"}}' >/dev/null
wait_until 30 "the new generation to be judged" current
wait_until 60 "$qc to be Unauthorized, naming every Pod" unhealthy_with "$qc" Unauthorized "$qc-0, $qc-1, $qc-2: 401"
qdrant_health_is "$qc" Degraded || fail "status.qdrant.health is not Degraded"
restarts=$(operator_restarts)
before=$(qdrant_requests_on_leader "GET /cluster")
t0=$SECONDS
sleep 20 # the assertion is about what happens in this window: a bounded number of calls
calls=$(( $(qdrant_requests_on_leader "GET /cluster") - before ))
[ "$calls" -le 15 ] || fail "$calls GET /cluster calls in $((SECONDS - t0)) s with a rejected key: a hot loop"
[ "$(operator_restarts)" = "$restarts" ] || fail "an operator Pod restarted"
info "read-write key changed, Pods not restarted: $(healthy_condition "$qc" message); $calls calls in 20 s; no restart"

rm -f "$HOLD"
wait_until 180 "the Pods to roll and $qc to be Healthy with the new keys" qc_status_is "$qc" Healthy
expect 401 GET /cluster rw-key-one
expect 200 GET /cluster ro-key-two
expect 403 DELETE "/cluster/peer/$peer" ro-key-two
expect 200 POST /collections/k/points/count rw-key-two '{"exact": true}'
info "released the StatefulSet controller: Pods rolled, Healthy with the new keys"
