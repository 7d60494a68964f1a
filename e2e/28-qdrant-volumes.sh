#!/usr/bin/env bash
# The local plane keeps a Qdrant Pod's data in its PersistentVolumeClaim, as a real cluster
# does: a Pod deleted by hand comes back as the same peer with its points; a PVC deleted with
# its Pod gives a new, empty peer, and the old data directory is gone.
# Runs unchanged with QDRANT_BIN.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
qc=vols
trap 'delete_qcs "$qc"' EXIT
wait_for_operator_ready 120
apply_qc "$qc" 1 "  apikey: 'true'
  persistence:
    size: 1Gi"
wait_until 120 "$qc to be Healthy" qc_status_is "$qc" Healthy
key=$(secret_key "$qc-apikey" api-key)
url=$(qdrant_url "$qc-0" "$qc")
pvc=qdrant-storage-$qc-0
json() { sed -n 2p | python3 -c "import json,sys; r = json.load(sys.stdin)['result']; print($1)"; }
points=$(python3 -c 'import json; print(json.dumps({"points": [{"id": i, "vector": [i, 1, 0, 0]} for i in range(1, 101)]}))')
[ "$(qdrant_status_code PUT "$url/collections/c" "$key" '{"vectors": {"size": 4, "distance": "Dot"}}')" = 200 ] || fail "creating collection c failed"
[ "$(qdrant_status_code PUT "$url/collections/c/points?wait=true" "$key" "$points")" = 200 ] || fail "upserting points failed"
count() { qdrant_http POST "$url/collections/c/points/count" "$key" '{"exact": true}' | json 'r["count"]'; }
peer_id() { qdrant_http GET "$url/cluster" "$key" | json 'r["peer_id"]'; }
[ "$(count)" = 100 ] || fail "expected 100 points, got $(count)"
peer=$(peer_id)
claim=$(kc get pvc "$pvc" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')
[ -n "$claim" ] || fail "no PVC $pvc"
info "100 points on peer $peer, in PVC $pvc ($claim)"

uid() { kc get pod "$qc-0" -n "$TEST_NS" -o jsonpath='{.metadata.uid}' 2>/dev/null; }
pod_ready() { [ "$(kc get pod "$qc-0" -n "$TEST_NS" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }
replaced() { local u; u=$(uid); [ -n "$u" ] && [ "$u" != "$1" ] && pod_ready && qc_status_is "$qc" Healthy; }
old=$(uid)
kc delete pod "$qc-0" -n "$TEST_NS" >/dev/null
wait_until 120 "$qc-0 to come back Ready and $qc Healthy" replaced "$old"
[ "$(kc get pvc "$pvc" -n "$TEST_NS" -o jsonpath='{.metadata.uid}')" = "$claim" ] || fail "the PVC was replaced"
[ "$(peer_id)" = "$peer" ] || fail "$qc-0 came back as peer $(peer_id), not $peer"
[ "$(count)" = 100 ] || fail "after the Pod's restart: $(count) points, not 100"
info "Pod deleted by hand: back as peer $peer with its 100 points"

old=$(uid)
kc delete pvc "$pvc" -n "$TEST_NS" --wait=false >/dev/null
kc delete pod "$qc-0" -n "$TEST_NS" --wait=false >/dev/null
new_claim() { local c; c=$(kc get pvc "$pvc" -n "$TEST_NS" -o jsonpath='{.metadata.uid}' 2>/dev/null); [ -n "$c" ] && [ "$c" != "$claim" ]; }
wait_until 120 "a new PVC $pvc" new_claim
wait_until 120 "$qc-0 to come back Ready and $qc Healthy" replaced "$old"
[ "$(peer_id)" != "$peer" ] || fail "$qc-0 kept peer id $peer on a new volume"
collections=$(qdrant_http GET "$url/collections" "$key" | json 'len(r["collections"])')
[ "$collections" = 0 ] || fail "a new volume holds $collections collections"
if [ -d "$E2E_STATE/pvc" ]; then
  [ ! -e "$E2E_STATE/pvc/$TEST_NS/$pvc-$claim" ] || fail "the deleted claim's data directory is still there"
fi
info "PVC deleted with its Pod: new empty peer $(peer_id), old data directory removed"
