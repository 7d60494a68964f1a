"""Background sampler for the suites that restart or replace Qdrant Pods: records, a few times
a second, one cluster's Qdrant Pods (uid, Ready, terminating), the state of every shard replica
of one collection, by the Pod of the peer that holds it, and each answering Pod's view of the
consensus (its peer id, the Raft leader, the peer ids). restart_check.py judges the samples.

Usage: restart_sampler.py OUT.jsonl NAMESPACE CLUSTER COLLECTION   (API key in QDRANT_KEY;
stops on SIGTERM)
"""
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

OUT, NS, CLUSTER, COLLECTION = sys.argv[1:5]
KEY = os.environ.get("QDRANT_KEY", "")
STATE = os.environ.get("E2E_STATE", os.path.join(os.path.dirname(__file__), "..", ".e2e"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")
bin_dir = os.path.join(STATE, "bin-dir")
if KUBECTL == "kubectl" and os.path.exists(bin_dir):
    KUBECTL = os.path.join(open(bin_dir).read().strip(), "kubectl")


def pods():
    out = subprocess.run([KUBECTL, "get", "pods", "-n", NS, "-l", f"clustername={CLUSTER},component=qdrant", "-o", "json"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    result = {}
    for p in json.loads(out)["items"]:
        conds = p.get("status", {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
        result[p["metadata"]["name"]] = {"uid": p["metadata"]["uid"], "ready": ready, "terminating": "deletionTimestamp" in p["metadata"]}
    return result


def ask(pod, path):
    url = f"http://{pod}.{CLUSTER}-headless.{NS}:6333{path}"
    req = urllib.request.Request(url, headers={"api-key": KEY} if KEY else {})
    with urllib.request.urlopen(req, timeout=2) as r:
        return json.load(r)["result"]


def consensus(names):
    """Each answering Pod's own peer id, Raft leader and peer ids."""
    views = {}
    for pod in sorted(names):
        try:
            c = ask(pod, "/cluster")
        except Exception:  # noqa: BLE001 - a Pod restarting does not answer
            continue
        views[pod] = {"peer_id": c.get("peer_id"), "leader": (c.get("raft_info") or {}).get("leader"), "peers": sorted(int(p) for p in c.get("peers", {}))}
    return views


def replicas(names):
    """Every replica as [pod, shard, state], from the first Pod that answers; None if none."""
    for pod in sorted(names):
        try:
            peers = ask(pod, "/cluster")["peers"]
            info = ask(pod, f"/collections/{COLLECTION}/cluster")
        except Exception:  # noqa: BLE001 - a Pod restarting does not answer; ask the next
            continue
        pod_of = {int(pid): urllib.parse.urlparse(p["uri"]).hostname.split(".")[0] for pid, p in peers.items()}
        rows = [[pod_of.get(info["peer_id"]), s["shard_id"], s["state"]] for s in info["local_shards"]]
        rows += [[pod_of.get(s["peer_id"]), s["shard_id"], s["state"]] for s in info["remote_shards"]]
        return rows
    return None


with open(OUT, "a", encoding="utf-8") as out:
    while True:
        t = time.time()
        try:
            seen = pods()
        except Exception as e:  # noqa: BLE001 - the API server may be slow; sample again
            print(f"pod listing failed: {e}", file=sys.stderr)
            time.sleep(0.2)
            continue
        out.write(json.dumps({"t": t, "pods": seen, "replicas": replicas(seen), "consensus": consensus(seen)}) + "\n")
        out.flush()
        time.sleep(0.1)
