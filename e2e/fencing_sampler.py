"""Background sampler for 80-fencing.sh: records rounds of every operator Pod's
operator_leader gauge, each bracketed by the Lease as seen just before and just after the
round, so a round with two leaders can be judged against Lease transitions.

Lease changes come from a `kubectl get -w` stream; gauges from the same place as
`operator_metrics` in utils.sh (the runner's port locally, the Pod proxy elsewhere).
Usage: fencing_sampler.py OUT.jsonl   (stops on SIGTERM)
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

OUT = sys.argv[1]
STATE = os.environ.get("E2E_STATE", os.path.join(os.path.dirname(__file__), "..", ".e2e"))
NS = os.environ.get("OPERATOR_NS", "qdrant-operator")
LEASE = os.environ.get("LEASE_NAME", "qdrant-operator")
KUBECTL = os.environ.get("KUBECTL", "kubectl")
bin_dir = os.path.join(STATE, "bin-dir")
if KUBECTL == "kubectl" and os.path.exists(bin_dir):
    KUBECTL = os.path.join(open(bin_dir).read().strip(), "kubectl")

lease = {"holder": None, "transitions": None}


def follow_lease():
    while True:
        p = subprocess.Popen([KUBECTL, "get", "lease", LEASE, "-n", NS, "-w", "--output-watch-events", "-o", "json"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        dec = json.JSONDecoder()
        buf = ""
        for chunk in iter(lambda: p.stdout.read(1), ""):
            buf += chunk
            try:
                ev, end = dec.raw_decode(buf.lstrip())
            except json.JSONDecodeError:
                continue
            buf = buf.lstrip()[end:]
            spec = ev.get("object", {}).get("spec", {})
            lease["holder"] = spec.get("holderIdentity", "")
            lease["transitions"] = spec.get("leaseTransitions", 0)
        time.sleep(0.5)


def pods():
    out = subprocess.run([KUBECTL, "get", "pods", "-n", NS, "-l", "app=qdrant-operator", "-o",
                          "jsonpath={range .items[*]}{.metadata.name}{'\\n'}{end}"], capture_output=True, text=True)
    return [p for p in out.stdout.split() if p]


def gauge(pod):
    port_file = os.path.join(STATE, "pods", f"{pod}.port")
    try:
        if os.path.exists(port_file):
            with urllib.request.urlopen(f"http://127.0.0.1:{open(port_file).read().strip()}/metrics", timeout=1) as r:
                text = r.read().decode()
        else:
            text = subprocess.run([KUBECTL, "get", "--raw", f"/api/v1/namespaces/{NS}/pods/{pod}:8080/proxy/metrics"],
                                  capture_output=True, text=True, timeout=3).stdout
    except Exception:  # noqa: BLE001 - a Pod that is going away
        return None
    for line in text.splitlines():
        if line.startswith(f'operator_leader{{pod="{pod}"}} '):
            return int(float(line.split()[1]))
    return None


threading.Thread(target=follow_lease, daemon=True).start()
with open(OUT, "a") as out:
    pod_list, last_list = [], 0.0
    while True:
        if time.time() - last_list > 1:
            pod_list, last_list = pods(), time.time()
        before = dict(lease)
        t0 = time.time()
        values = {p: gauge(p) for p in pod_list}
        after = dict(lease)
        out.write(json.dumps({"t0": t0, "t1": time.time(), "before": before, "after": after,
                              "leaders": sorted(p for p, v in values.items() if v == 1)}) + "\n")
        out.flush()
        time.sleep(0.05)
