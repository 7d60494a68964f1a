#!/usr/bin/env bash
# Negative control for the fencing proof: builds a deliberately broken operator in which
# followers reconcile and the guard always says yes, deploys it on a fresh local control plane,
# and runs 10-reconcile.sh, 50-leader-failover.sh and 80-fencing.sh. The fencing suite must
# FAIL; this script exits 0 only if it does. It never touches the real build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
work=$ROOT/target/negative-control
rm -rf "$work/src" && mkdir -p "$work"
cp -r "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" "$ROOT/src" "$ROOT/examples" "$work/"
python3 - "$work/src" <<'PY'
import sys
root = sys.argv[1]
def edit(path, old, new):
    p = f"{root}/{path}"
    s = open(p).read()
    assert old in s, f"{path}: the code to break has changed; update this script"
    open(p, "w").write(s.replace(old, new))
# Followers reconcile too, outside any term...
edit("controller/mod.rs",
     "let Some(term) = ctx.terms.current() else { return Ok(Action::await_change()) };",
     "let term = ctx.terms.current().unwrap_or_else(|| ctx.terms.start_now());")
# ...and the guard lets every replica write.
edit("leader/guard.rs",
     "self.deadline().is_some_and(|d| Instant::now() < d)",
     "{ let _ = self.deadline(); true }")
PY
(cd "$work" && CARGO_TARGET_DIR="$ROOT/target/negative-control/target" cargo build --release --bin qdrant-operator 2>&1 | tail -n 1)
"$ROOT/e2e/cluster/down.sh" >/dev/null 2>&1 || true
trap '"$ROOT/e2e/cluster/down.sh" >/dev/null 2>&1' EXIT
"$ROOT/e2e/cluster/up.sh"
OPERATOR_BINARY="$ROOT/target/negative-control/target/release/qdrant-operator" "$ROOT/e2e/cluster/deploy.sh"
if "$ROOT/e2e/run.sh" 10-reconcile.sh 50-leader-failover.sh 80-fencing.sh; then
  echo "NEGATIVE CONTROL FAILED: the fencing suites passed with followers writing" >&2
  exit 1
fi
echo "negative control OK: with followers writing, the suites fail (see 80-fencing.sh above)"
