#!/usr/bin/env bash
# A leader that shuts down gracefully writes "false" on its own Pod, and nothing turns it back
# to "true" before the Pod is gone. Every value the annotation takes is recorded from a watch
# on the leader's Pod that starts before the deletion, so the check sees the annotation while
# the Pod still exists, and fails if "false" is never seen or "true" comes back after it.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
watch_pid=""
trap '[ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null' EXIT
wait_for_operator_ready 120
for round in 1 2 3; do
  leader=$(get_leader_pod) || fail "no single leader"
  out=$(mktemp)
  kc get pod "$leader" -n "$OPERATOR_NS" -w --output-watch-events \
    -o jsonpath='{.type}{" "}{.object.metadata.annotations.qdrant\.operator/leader}{"\n"}' >"$out" 2>/dev/null &
  watch_pid=$!
  watching() { grep -q . "$out"; }
  wait_until 10 "the watch on $leader to deliver its first event" watching
  [ "$(head -n 1 "$out")" = "ADDED true" ] || fail "the leader $leader does not start out annotated \"true\": $(head -n 1 "$out")"
  delete_operator_pod "$leader"
  deleted() { grep -q '^DELETED' "$out"; }
  wait_until 60 "$leader to be deleted" deleted
  kill "$watch_pid" 2>/dev/null; watch_pid=""
  values=$(awk '$1 != "DELETED" { print $2 }' "$out" | tr '\n' ' ')
  python3 - "$values" <<'PY' || fail "round $round: annotation sequence of $leader while it existed: $values"
import sys
seq = sys.argv[1].split()
if "false" not in seq:
    sys.exit(1)  # never observed "false" before the Pod disappeared
first = seq.index("false")
sys.exit(1 if "true" in seq[first:] else 0)
PY
  info "round $round: $leader's annotation while it existed: $values"
  rm -f "$out"
  wait_for_operator_ready 120
done
