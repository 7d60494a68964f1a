"""The fencing proof, from the API server's own records.

1. Audit log: every write (create, update, patch, delete) made with the operator's
   ServiceAccount, except Lease writes (the election itself) and Events (every replica reports
   what it saw), must come from the Pod that held the Lease at that moment. The Pod is named by
   the bound token (user.extra authentication.kubernetes.io/pod-name). The holder timeline is
   rebuilt from the successful Lease writes in the same log (their request bodies).
2. Deadline: every such write reached the API server no later than the renew deadline after
   the writer's own last successful Lease write (a renewal or an acquisition). The guard
   closes at (start of that request + RD), which is no later than when the API server
   received it plus RD, so a write past that line was sent by a replica whose guard was
   closed: after an API-server outage, for example.
3. Gauge samples: no sampling round shows two Pods with operator_leader 1 unless the Lease
   changed during that round.

Usage: fencing_check.py AUDIT_LOG SAMPLES_JSONL SINCE_EPOCH_SECONDS [RENEW_DEADLINE_SECONDS]
Prints the counts and exits 1 on any violation.
"""
import bisect
import json
import os
import sys
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from audit import acting_write, events, is_operator_lease, ok  # noqa: E402

audit_path, samples_path, since = sys.argv[1], sys.argv[2], float(sys.argv[3])
renew_deadline = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
# Audit timestamps have microsecond resolution; this only absorbs rounding and the time
# between the API server receiving a request and stamping it.
TOLERANCE = 0.05
log = events(audit_path)
# (time the Lease write completed, the holder it wrote)
holder_changes = [(e["done"], e["holder"] or "") for e in log if is_operator_lease(e) and ok(e) and e["verb"] in ("create", "update", "patch")]
writes = [(e["recv"], e["pod"] or "?", e["verb"], e["resource"], e["name"], e["code"]) for e in log if acting_write(e, attempts=True) and e["recv"] >= since]
holder_changes.sort()


def holder_at(t):
    h = None
    for when, who in holder_changes:
        if when > t:
            break
        h = who
    return h


violations = [w for w in writes if holder_at(w[0]) != w[1]]
for t, pod, verb, res, name, code in violations[:20]:
    print(f"  VIOLATION: {datetime.fromtimestamp(t).isoformat()} {pod} {verb} {res} {name} ({code}); holder was {holder_at(t)!r}")

# Each Pod's successful Lease writes, by the time the API server received them.
own_lease_writes = {}
for e in log:
    if is_operator_lease(e) and ok(e) and e["verb"] in ("create", "update", "patch") and e["pod"]:
        own_lease_writes.setdefault(e["pod"], []).append(e["recv"])


def past_deadline(t, pod):
    times = own_lease_writes.get(pod, [])
    i = bisect.bisect_right(times, t)
    return i == 0 or t > times[i - 1] + renew_deadline + TOLERANCE


late = [w for w in writes if past_deadline(w[0], w[1])]
for t, pod, verb, res, name, code in late[:20]:
    print(f"  LATE WRITE: {datetime.fromtimestamp(t).isoformat()} {pod} {verb} {res} {name} ({code}), more than {renew_deadline}s after its last Lease write")

rounds = doubled = straddling = 0
with open(samples_path) as f:
    for line in f:
        s = json.loads(line)
        if s["t0"] < since:
            continue
        rounds += 1
        if len(s["leaders"]) > 1:
            if s["before"] != s["after"]:
                straddling += 1
            else:
                doubled += 1
                print(f"  TWO LEADERS: {s}")

print(f"audit: {len(writes)} operator writes checked against {len(holder_changes)} Lease writes, {len(violations)} violations, {len(late)} past the writer's renew deadline")
print(f"gauges: {rounds} sampling rounds, {doubled} with two leaders outside a Lease transition ({straddling} straddled one)")
if not writes:
    print("no operator writes found in the window: nothing was proven")
    sys.exit(1)
if rounds == 0:
    print("no gauge samples in the window: the sampler did not run")
    sys.exit(1)
sys.exit(1 if violations or late or doubled else 0)
