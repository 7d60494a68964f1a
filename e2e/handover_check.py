"""Graceful handovers, from the API server's audit log: since SINCE, the Lease changed hands at
least once, and every change was a release followed by an acquisition, never a takeover.

In the successful writes of the operator's Lease since SINCE, a holder that gives the Lease
up writes holder "" (the release on SIGTERM); the next holder's acquisition must follow within
MAX_GAP seconds (a follower takes a release at once). A write naming a new holder straight
after another holder's write is a takeover after the lease expired: the old leader did not
release, so the handover was not graceful.

Usage: handover_check.py AUDIT_LOG SINCE_EPOCH_SECONDS MAX_GAP_SECONDS
Prints each handover and exits 1 on any violation.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from audit import events, is_operator_lease, ok  # noqa: E402

audit_path, since, max_gap = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
writes = sorted((e["done"], e["holder"] or "", e["pod"]) for e in events(audit_path)
                if is_operator_lease(e) and ok(e) and e["verb"] in ("create", "update", "patch"))
before = [w for w in writes if w[0] < since]
writes = [w for w in writes if w[0] >= since]

problems, handovers = [], 0
# The holder when the window opens: the last write before it (a release leaves it empty).
holder = before[-1][1] or None if before else None
released_at = None
for t, h, pod in writes:
    if h == "":
        if holder and pod != holder:
            problems.append(f"{t:.3f}: the Lease of {holder} was released by {pod or 'someone else'}")
        released_at = t
    elif holder is not None and h != holder:
        if released_at is None:
            problems.append(f"{t:.3f}: {h} took the Lease from {holder}, which had not released it")
        else:
            gap = t - released_at
            print(f"handover {holder} -> {h}: acquired {gap * 1000:.0f} ms after the release")
            handovers += 1
            if gap > max_gap:
                problems.append(f"{t:.3f}: {h} acquired the Lease {gap:.2f}s after {holder} released it (limit {max_gap}s)")
    if h:
        holder, released_at = h, None

if released_at is not None:
    problems.append(f"the Lease was left released at {released_at:.3f}, with no new holder")
if handovers == 0:
    problems.append("the Lease never changed hands")
for p in problems:
    print("FAIL: " + p)
print(f"{handovers} handover(s), {len(problems)} problem(s), over {len(writes)} Lease writes")
sys.exit(1 if problems else 0)
