"""Judges a rolling restart of one cluster's N Qdrant Pods (restart_sampler.py's samples, and
the Pods as they are now). Fails unless:
- every Pod was restarted: none has a uid of BEFORE (a file of the uids before the change);
- from the Pods' start times: each restarted Pod started only after the one restarted before
  it was Ready (its Ready condition's transition);
- in every sample, at most one Pod was "not whole": missing, terminating, not Ready, or holding
  a shard replica that is not Active. So a Pod restarted only once the previous one was back
  with every replica Active, and never two at once;
- some sample saw a Pod not whole (the sampler did watch the restarts).

Usage: restart_check.py SAMPLES.jsonl NAMESPACE CLUSTER N BEFORE_UIDS_FILE SINCE_EPOCH
"""
import datetime
import json
import os
import subprocess
import sys

SAMPLES, NS, CLUSTER, N, BEFORE, SINCE = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
STATE = os.environ.get("E2E_STATE", os.path.join(os.path.dirname(__file__), "..", ".e2e"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")
bin_dir = os.path.join(STATE, "bin-dir")
if KUBECTL == "kubectl" and os.path.exists(bin_dir):
    KUBECTL = os.path.join(open(bin_dir).read().strip(), "kubectl")
failures = []


def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


names = [f"{CLUSTER}-{i}" for i in range(N)]
before = set(open(BEFORE).read().split())
out = subprocess.run([KUBECTL, "get", "pods", "-n", NS, "-l", f"clustername={CLUSTER},component=qdrant", "-o", "json"],
                     capture_output=True, text=True, timeout=20, check=True).stdout
now = {p["metadata"]["name"]: p for p in json.loads(out)["items"]}
timeline = []
for name in names:
    p = now.get(name)
    if p is None:
        failures.append(f"{name} does not exist")
        continue
    if p["metadata"]["uid"] in before:
        failures.append(f"{name} was not restarted (same uid)")
    ready = [c for c in p["status"].get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"]
    if not ready:
        failures.append(f"{name} is not Ready")
        continue
    timeline.append((ts(p["status"]["startTime"]), ts(ready[0]["lastTransitionTime"]), name))
timeline.sort()
for (start_a, ready_a, a), (start_b, _, b) in zip(timeline, timeline[1:]):
    # Kubernetes times have a resolution of one second: equal times are allowed.
    if start_b < ready_a:
        failures.append(f"{b} started at {start_b:.0f}, before {a} (started {start_a:.0f}) was Ready at {ready_a:.0f}")
print("  restart order from the Pods' start and Ready times: " + ", ".join(f"{n} {s - timeline[0][0]:+.0f}s..{r - timeline[0][0]:+.0f}s" for s, r, n in timeline))

samples = [json.loads(line) for line in open(SAMPLES) if line.strip()]
samples = [s for s in samples if s["t"] >= SINCE]
if not samples:
    failures.append("no samples")
busy = doubled = 0
for s in samples:
    whole_not = set()
    for name in names:
        p = s["pods"].get(name)
        if p is None or p["terminating"] or not p["ready"]:
            whole_not.add(name)
    for pod, shard, state in s["replicas"] or []:
        if state != "Active":
            whole_not.add(f"{pod} (shard {shard} {state})" if pod not in whole_not else pod)
    pods_not_whole = {w.split(" ")[0] for w in whole_not}
    if pods_not_whole:
        busy += 1
    if len(pods_not_whole) > 1:
        doubled += 1
        if doubled == 1:
            failures.append(f"at +{s['t'] - SINCE:.1f}s {len(pods_not_whole)} Pods were not whole at once: {sorted(whole_not)}")
if busy == 0:
    failures.append(f"none of {len(samples)} samples saw a Pod restarting")
print(f"  {len(samples)} samples: {busy} with a Pod restarting or recovering, {doubled} with more than one")
for f in failures:
    print(f"  {f}")
sys.exit(1 if failures else 0)
