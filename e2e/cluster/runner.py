"""Plays the kubelet for the operator's own Pods on the local control plane.

kwok marks Qdrant Pods Ready without running anything; operator Pods are left to this runner
(kwok's stages exclude `app=qdrant-operator`), which for each one:
  - starts one process of the operator binary, with the Pod's env (downward API resolved) and
    args, its admin server on a free 127.0.0.1 port (recorded in .e2e/pods/<pod>.port);
  - gives it a kubeconfig with a token of the Pod's ServiceAccount bound to the Pod, so the
    RBAC in deploy/ is what is exercised and the audit log names the Pod;
  - reports Running, and Ready as the process's /readyz says;
  - restarts the process if it exits while the Pod lives (restartPolicy Always);
  - on graceful deletion sends SIGTERM, then SIGKILL after the grace period, then removes the
    Pod; on forced deletion (the Pod is already gone) sends SIGKILL at once.

Usage: runner.py STATE_DIR BINARY NAMESPACE
"""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone

STATE, BINARY, NAMESPACE = sys.argv[1], sys.argv[2], sys.argv[3]
PKI = os.path.join(STATE, "pki")
PODS_DIR = os.path.join(STATE, "pods")
LOGS = os.path.join(STATE, "logs")
with open(os.path.join(STATE, "apiserver-port")) as f:
    API_PORT = int(f.read().strip())
SELECTOR = "app=qdrant-operator"


def log(msg):
    print(f"[runner {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ctx():
    c = ssl.create_default_context(cafile=os.path.join(PKI, "ca.crt"))
    c.load_cert_chain(os.path.join(PKI, "admin.crt"), os.path.join(PKI, "admin.key"))
    return c


SSL = ctx()


def api(method, path, body=None, content_type="application/json", timeout=30):
    conn = http.client.HTTPSConnection("127.0.0.1", API_PORT, context=SSL, timeout=timeout)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": content_type} if data else {}
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    out = resp.read()
    conn.close()
    return resp.status, (json.loads(out) if out else None)


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class PodProcess:
    """One operator Pod and the process that stands in for its container."""

    def __init__(self, pod):
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.port = free_port()
        self.proc = None
        self.restarts = 0
        self.ready = None
        self.terminating = False
        self.gone = False
        self.lock = threading.Lock()
        self.dir = os.path.join(STATE, "runner", self.name)
        os.makedirs(self.dir, exist_ok=True)

    def kubeconfig(self):
        sa = self.pod["spec"].get("serviceAccountName", "default")
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 86400,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid},
            },
        }
        status, resp = api("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{sa}/token", body)
        if status != 201:
            raise RuntimeError(f"token request for {self.name} failed: {status} {resp}")
        path = os.path.join(self.dir, "kubeconfig")
        with open(path, "w") as f:
            f.write(
                "apiVersion: v1\nkind: Config\n"
                f"clusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:{API_PORT}\n"
                f"    certificate-authority: {os.path.join(PKI, 'ca.crt')}\n"
                f"users:\n- name: {sa}\n  user:\n    token: {resp['status']['token']}\n"
                "contexts:\n- name: local\n  context: {cluster: local, user: " + sa + "}\ncurrent-context: local\n"
            )
        return path

    def env(self, kubeconfig):
        c = self.pod["spec"]["containers"][0]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KUBECONFIG": kubeconfig}
        fields = {"metadata.name": self.name, "metadata.namespace": NAMESPACE, "metadata.uid": self.uid,
                  "spec.nodeName": self.pod["spec"].get("nodeName", ""), "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "")}
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "fieldRef" in (e.get("valueFrom") or {}):
                env[e["name"]] = fields.get(e["valueFrom"]["fieldRef"]["fieldPath"], "")
        env["ADMIN_ADDR"] = f"127.0.0.1:{self.port}"
        return env, c.get("args", [])

    def start(self):
        kc = self.kubeconfig()
        env, args = self.env(kc)
        out = open(os.path.join(LOGS, f"operator-{self.name}.log"), "a")
        self.proc = subprocess.Popen([BINARY, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        with open(os.path.join(PODS_DIR, f"{self.name}.port"), "w") as f:
            f.write(str(self.port))
        with open(os.path.join(PODS_DIR, f"{self.name}.pid"), "w") as f:
            f.write(str(self.proc.pid))
        log(f"started {self.name} as pid {self.proc.pid} on 127.0.0.1:{self.port}")
        self.ready = None
        self.report(False)

    def fake_ip(self):
        return f"10.245.{self.port // 256}.{self.port % 256}"

    def report(self, ready):
        """Writes the Pod's status as a kubelet would."""
        if self.gone or self.ready == ready:
            return
        self.ready = ready
        cond = "True" if ready else "False"
        c = self.pod["spec"]["containers"][0]
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            # A fake, non-loopback address: the endpoints controller rejects loopback, and
            # nothing connects to it (the scripts use the port recorded in .e2e/pods/).
            "podIP": self.fake_ip(),
            "podIPs": [{"ip": self.fake_ip()}],
            "startTime": self.pod.get("status", {}).get("startTime") or now(),
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                {"type": "ContainersReady", "status": cond, "lastTransitionTime": now()},
                {"type": "Ready", "status": cond, "lastTransitionTime": now()},
            ],
            "containerStatuses": [{
                "name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": ready,
                "restartCount": self.restarts, "started": True,
                "state": {"running": {"startedAt": now()}},
            }],
        }
        st, resp = api("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{self.name}/status",
                       {"status": status}, content_type="application/merge-patch+json")
        if st >= 300 and st != 404:
            log(f"status of {self.name}: {st} {resp}")

    def probe(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            conn.request("GET", "/readyz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def kill(self, sig):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self, grace):
        """Graceful deletion: SIGTERM, SIGKILL after the grace period, then remove the Pod."""
        with self.lock:
            if self.terminating:
                return
            self.terminating = True
        log(f"SIGTERM {self.name} (grace {grace}s)")
        self.kill(signal.SIGTERM)
        # When the "kubelet" delivered it, for the benchmark's breakdown of a handover.
        with open(os.path.join(STATE, "runner", f"{self.name}.sigterm"), "w") as f:
            f.write(f"{time.time():.6f}\n")
        deadline = time.time() + grace
        while self.proc and self.proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if self.proc and self.proc.poll() is None:
            log(f"SIGKILL {self.name} after the grace period")
            self.kill(signal.SIGKILL)
            self.proc.wait()
        self.report(False)
        self.gone = True
        api("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{self.name}",
            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})
        self.cleanup()

    def force_kill(self):
        self.gone = True
        if self.proc and self.proc.poll() is None:
            log(f"SIGKILL {self.name} (Pod force-deleted)")
            self.kill(signal.SIGKILL)
            self.proc.wait()
        self.cleanup()

    def cleanup(self):
        for ext in ("port", "pid"):
            try:
                os.remove(os.path.join(PODS_DIR, f"{self.name}.{ext}"))
            except FileNotFoundError:
                pass


pods = {}
pods_lock = threading.Lock()


def handle(event_type, pod):
    name = pod["metadata"]["name"]
    with pods_lock:
        p = pods.get(name)
        if p and p.uid != pod["metadata"]["uid"]:
            p = None
        if event_type == "DELETED":
            if p:
                pods.pop(name, None)
                threading.Thread(target=p.force_kill, daemon=True).start()
            return
        if pod["metadata"].get("deletionTimestamp"):
            if p:
                grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
                threading.Thread(target=p.terminate, args=(grace,), daemon=True).start()
            else:
                api("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}", {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
            return
        if p is None and pod["spec"].get("nodeName"):
            p = PodProcess(pod)
            pods[name] = p
            try:
                p.start()
            except Exception as e:  # noqa: BLE001 - report and retry on the next event
                log(f"could not start {name}: {e}")
                pods.pop(name, None)
        elif p is not None:
            p.pod = pod


def watch_loop():
    sel = urllib.parse.quote(SELECTOR)
    while True:
        try:
            status, lst = api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={sel}")
            if status != 200:
                time.sleep(1)
                continue
            seen = set()
            for pod in lst["items"]:
                seen.add(pod["metadata"]["name"])
                handle("ADDED", pod)
            with pods_lock:
                missing = [n for n in pods if n not in seen]
            for n in missing:
                handle("DELETED", {"metadata": {"name": n, "uid": pods[n].uid}})
            rv = lst["metadata"]["resourceVersion"]
            conn = http.client.HTTPSConnection("127.0.0.1", API_PORT, context=SSL, timeout=330)
            conn.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={sel}&watch=1&resourceVersion={rv}&timeoutSeconds=300&allowWatchBookmarks=false")
            resp = conn.getresponse()
            while True:
                line = resp.readline()
                if not line:
                    break
                ev = json.loads(line)
                if ev["type"] == "ERROR":
                    break
                handle(ev["type"], ev["object"])
            conn.close()
        except Exception as e:  # noqa: BLE001 - the API server may restart; keep going
            log(f"watch error: {e}")
            time.sleep(0.5)


def supervise_loop():
    """Readiness probes and container restarts."""
    while True:
        with pods_lock:
            current = list(pods.values())
        for p in current:
            if p.terminating or p.gone or p.proc is None:
                continue
            code = p.proc.poll()
            if code is not None:
                p.restarts += 1
                log(f"{p.name} exited with {code}; restarting (restart {p.restarts})")
                p.report(False)
                time.sleep(min(5, p.restarts))
                if not p.terminating and not p.gone:
                    try:
                        p.start()
                    except Exception as e:  # noqa: BLE001
                        log(f"restart of {p.name} failed: {e}")
                continue
            p.report(p.probe())
        time.sleep(0.25)


def shutdown(*_):
    with pods_lock:
        current = list(pods.values())
    for p in current:
        p.kill(signal.SIGKILL)
        p.cleanup()
    os._exit(0)


if __name__ == "__main__":
    os.makedirs(PODS_DIR, exist_ok=True)
    os.makedirs(LOGS, exist_ok=True)
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    threading.Thread(target=supervise_loop, daemon=True).start()
    log(f"watching {SELECTOR} Pods in {NAMESPACE}")
    watch_loop()
