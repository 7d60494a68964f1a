#!/usr/bin/env bash
# The Lease, the gauges and the annotations name the same single leader;
# sum(operator_leader) over the Pods is 1; operator_lease_transitions is equal on all Pods.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
wait_for_operator_ready 120
holder=$(lease_holder)
pods=$(operator_pods)
[ "$(wc -l <<<"$pods")" -ge 2 ] || fail "need at least 2 operator Pods, have: $pods"
grep -qx "$holder" <<<"$pods" || fail "Lease holder '$holder' is not an operator Pod"
sum=0
for p in $pods; do
  v=$(metric_value "$p" "operator_leader{pod=\"$p\"}")
  [ -n "$v" ] || fail "$p exports no operator_leader"
  sum=$((sum + v))
  t=$(metric_value "$p" "operator_lease_transitions{lease=\"$LEASE_NAME\"}")
  [ "$t" = "$(lease_transitions)" ] || fail "$p reports operator_lease_transitions=$t, Lease says $(lease_transitions)"
  a=$(leader_annotation "$p")
  if [ "$p" = "$holder" ]; then
    [ "$v" = 1 ] && [ "$a" = true ] || fail "holder $p: gauge=$v annotation=$a"
  else
    [ "$v" = 0 ] && [ "$a" = false ] || fail "follower $p: gauge=$v annotation=$a"
  fi
done
[ "$sum" -eq 1 ] || fail "sum(operator_leader) = $sum"
[ "$(get_leader_pod)" = "$holder" ] || fail "get_leader_pod disagrees with the Lease"
dbg_port=$(cat "$E2E_STATE/pods/$holder.port" 2>/dev/null || true)
if [ -n "$dbg_port" ]; then
  curl -sf "http://127.0.0.1:$dbg_port/debug/leader" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["is_leader"] is True and d["identity"] == d["lease_holder"] == sys.argv[1], d
assert d["last_renew_ago_ms"] is not None and d["last_renew_ago_ms"] < 5000, d
' "$holder" || fail "/debug/leader disagrees"
fi
info "leader $holder agreed by Lease, gauges and annotations across $(wc -l <<<"$pods") Pods; sum(operator_leader)=1"
