"""Plays the kubelet on the local control plane for the operator's own Pods and for Qdrant Pods.

kwok marks every other Pod Ready without running anything. Its stages exclude these two kinds
of Pod (kwok-stages.py), and this runner runs them instead.

Operator Pods (`app=qdrant-operator` in NAMESPACE). For each one the runner:
  - starts one process of the operator binary, with the Pod's env (downward API resolved) and
    args, its admin server on a free 127.0.0.1 port (recorded in .e2e/pods/<pod>.port);
  - gives it a kubeconfig with a token of the Pod's ServiceAccount bound to the Pod, so the
    RBAC in deploy/ is what is exercised and the audit log names the Pod;
  - reports Running, and Ready as the process's /readyz says;
  - restarts the process if it exits while the Pod lives (restartPolicy Always);
  - on graceful deletion sends SIGTERM, then SIGKILL after the grace period, then removes the
    Pod; on forced deletion (the Pod is already gone) sends SIGKILL at once.

Qdrant Pods (label `component=qdrant`, the older JavaScript operator's too, in every
namespace), when kwok's configuration leaves them to us (E2E_QDRANT_PODS=kwok at cluster-up
gives them back to kwok). For each scheduled one the runner (helpers in qpods.py):
  - builds the container's filesystem under .e2e/qpods/<ns>/<pod>/: ConfigMap and Secret
    volumes (items, subPath, modes), emptyDir, and PVC volumes as links to
    .e2e/pvc/<ns>/<claim>-<claim uid>/, which outlive the Pod; /qdrant is the image's WORKDIR,
    with an entrypoint.sh that execs $QDRANT_BIN, or the stand-in (e2e/qdrant/standin.py);
  - gives the Pod its own loopback address 127.0.X.Y and reports it as podIP; publishes the
    Pod's headless-Service DNS names (<pod>.<svc>.<ns>[.svc[.cluster.local]], <pod>.<svc>)
    for that address in a managed block of $E2E_HOSTS_FILE (default /etc/hosts), so that
    the operator's processes, the Qdrant peers and scripts on this machine resolve them;
  - runs the container's command and args with the container's env, absolute /qdrant/... paths
    (and other mount paths) translated into the root, QDRANT__SERVICE__HOST set to the Pod's
    address (real Qdrant and the stand-in bind REST, gRPC and p2p there);
  - reports Running, and Ready from the container's readinessProbe against the Pod's address;
    restarts the process if it exits (restartCount); on graceful deletion runs the preStop
    exec hook, sends SIGTERM, SIGKILL after the grace period; on forced deletion SIGKILL;
  - provisions the claims of Pods that wait for them: a PersistentVolume pre-bound to each
    pending claim (reclaim policy Retain), since the local plane has no provisioner; when a
    claim is deleted, its data directory and that PV go too.

Trade-off: the Pod IP of a Qdrant Pod is a loopback address, which the endpoints and
EndpointSlice controllers refuse (Endpoints may not be loopback), so its Services have no
endpoints. Nothing local uses them: peers and the operator address Qdrant Pods by their DNS
names, which resolve through the hosts file here and through cluster DNS on a real cluster.
Operator Pods keep a fake non-loopback IP, as nothing connects to it.

Usage: runner.py STATE_DIR BINARY NAMESPACE
"""

import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qpods  # noqa: E402

STATE = BINARY = NAMESPACE = PKI = PODS_DIR = LOGS = PIDS = None
API_PORT = SSL = None
HOSTS = None  # qpods.HostsFile of this runner
QDRANT_PODS = False  # whether this runner plays the kubelet for Qdrant Pods
SELECTOR = "app=qdrant-operator"
# Only pod/ stages are rewritten by kwok-stages.py; this string in kwok's configuration says
# that they exclude Qdrant Pods, so this runner must run them.
QDRANT_EXCLUSION = qpods.QDRANT_POD_JQ
PV_LABEL = "e2e.qdrant-operator/local-pv"


def configure(state, binary, namespace):
    """Sets the paths of a state directory; connects to its API server if it has one."""
    global STATE, BINARY, NAMESPACE, PKI, PODS_DIR, LOGS, PIDS, API_PORT, SSL, HOSTS
    STATE, BINARY, NAMESPACE = os.path.abspath(state), binary, namespace
    PKI = os.path.join(STATE, "pki")
    PODS_DIR = os.path.join(STATE, "pods")
    LOGS = os.path.join(STATE, "logs")
    PIDS = os.path.join(STATE, "pids")
    HOSTS = qpods.HostsFile(qpods.hosts_path(), STATE)
    port_file = os.path.join(STATE, "apiserver-port")
    if os.path.exists(port_file):
        with open(port_file) as f:
            API_PORT = int(f.read().strip())
        SSL = ctx()


def log(msg):
    print(f"[runner {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ctx():
    c = ssl.create_default_context(cafile=os.path.join(PKI, "ca.crt"))
    c.load_cert_chain(os.path.join(PKI, "admin.crt"), os.path.join(PKI, "admin.key"))
    return c


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


def lookup(resource, ns, name):
    """GET of a namespaced core object, None if it does not exist (for qpods' `lookup`)."""
    status, obj = api("GET", f"/api/v1/namespaces/{ns}/{resource}/{name}")
    if status == 404:
        return None
    if status != 200:
        raise qpods.MountError(f"GET {resource} {ns}/{name}: {status} {obj}")
    return obj


def delete_pod(ns, name, uid):
    """Removes a Pod whose containers have stopped, as the kubelet does (grace period 0). The
    uid precondition keeps a successor of the same name safe."""
    api("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}",
        {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}})


class PodProcess:
    """One Pod and the process that stands in for its container: status, probes, restarts and
    signals. Subclasses say how the process is started (`launch`), what address the Pod has
    (`pod_ip`) and how readiness is probed (`probe`)."""

    def __init__(self, pod):
        self.name = pod["metadata"]["name"]
        self.namespace = pod["metadata"]["namespace"]
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.proc = None
        self.restarts = 0
        self.ready = None
        self.terminating = False
        self.gone = False
        self.lock = threading.Lock()

    # --- what subclasses provide ---
    def launch(self):
        raise NotImplementedError

    def pod_ip(self):
        raise NotImplementedError

    def probe(self):
        raise NotImplementedError

    def container_statuses(self, ready):
        c = self.pod["spec"]["containers"][0]
        return [{
            "name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": ready,
            "restartCount": self.restarts, "started": True,
            "state": {"running": {"startedAt": now()}},
        }]

    def exited(self, code):
        """The process exited while the Pod lives, before it is restarted."""

    def pre_stop(self, deadline):
        """Runs before SIGTERM on graceful deletion."""

    def sigterm_sent(self):
        """Runs right after SIGTERM was sent on graceful deletion."""

    def cleanup(self):
        """Runs once the process is gone for good."""

    # --- shared ---
    def start(self):
        self.proc = self.launch()
        self.ready = None
        self.report(False)

    def report(self, ready):
        """Writes the Pod's status as a kubelet would."""
        if self.gone or self.ready == ready:
            return
        self.ready = ready
        cond = "True" if ready else "False"
        ip = self.pod_ip()
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": self.pod.get("status", {}).get("startTime") or now(),
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                {"type": "ContainersReady", "status": cond, "lastTransitionTime": now()},
                {"type": "Ready", "status": cond, "lastTransitionTime": now()},
            ],
            "containerStatuses": self.container_statuses(ready),
        }
        st, resp = api("PATCH", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
                       {"status": status}, content_type="application/merge-patch+json")
        if st >= 300 and st != 404:
            log(f"status of {self.name}: {st} {resp}")

    def kill(self, sig):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def supervise_once(self):
        """One round of the kubelet's work for a running Pod: restart an exited process (after
        a back-off), else probe readiness and report it."""
        if self.terminating or self.gone or self.proc is None:
            return
        code = self.proc.poll()
        if code is not None:
            self.restarts += 1
            log(f"{self.name} exited with {code}; restarting (restart {self.restarts})")
            self.exited(code)
            self.report(False)
            time.sleep(min(5, self.restarts))
            if not self.terminating and not self.gone:
                try:
                    self.start()
                except Exception as e:  # noqa: BLE001
                    log(f"restart of {self.name} failed: {e}")
            return
        self.report(self.probe())

    def terminate(self, grace):
        """Graceful deletion: SIGTERM, SIGKILL after the grace period, then remove the Pod."""
        with self.lock:
            if self.terminating:
                return
            self.terminating = True
        deadline = time.time() + grace
        self.pre_stop(deadline)
        log(f"SIGTERM {self.name} (grace {grace}s)")
        self.kill(signal.SIGTERM)
        self.sigterm_sent()
        while self.proc and self.proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if self.proc and self.proc.poll() is None:
            log(f"SIGKILL {self.name} after the grace period")
            self.kill(signal.SIGKILL)
            self.proc.wait()
        self.report(False)
        self.gone = True
        delete_pod(self.namespace, self.name, self.uid)
        self.cleanup()

    def force_kill(self):
        self.gone = True
        if self.proc and self.proc.poll() is None:
            log(f"SIGKILL {self.name} (Pod force-deleted)")
            self.kill(signal.SIGKILL)
            self.proc.wait()
        self.cleanup()


class OperatorPod(PodProcess):
    """An operator Pod: the operator binary on a free 127.0.0.1 admin port."""

    def __init__(self, pod, predecessor=None):
        super().__init__(pod)
        self.port = free_port()
        self.dir = os.path.join(STATE, "runner", self.name)
        os.makedirs(self.dir, exist_ok=True)

    def begin(self):
        """Starts the process at once, in the watch thread; an error leaves the Pod to the
        next event."""
        self.start()

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

    def launch(self):
        kc = self.kubeconfig()
        env, args = self.env(kc)
        out = open(os.path.join(LOGS, f"operator-{self.name}.log"), "a")
        proc = subprocess.Popen([BINARY, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        with open(os.path.join(PODS_DIR, f"{self.name}.port"), "w") as f:
            f.write(str(self.port))
        with open(os.path.join(PODS_DIR, f"{self.name}.pid"), "w") as f:
            f.write(str(proc.pid))
        log(f"started {self.name} as pid {proc.pid} on 127.0.0.1:{self.port}")
        return proc

    def pod_ip(self):
        # A fake, non-loopback address: the endpoints controller rejects loopback, and
        # nothing connects to it (the scripts use the port recorded in .e2e/pods/).
        return f"10.245.{self.port // 256}.{self.port % 256}"

    def probe(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            conn.request("GET", "/readyz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def sigterm_sent(self):
        # When the "kubelet" delivered it, for the benchmark's breakdown of a handover.
        with open(os.path.join(STATE, "runner", f"{self.name}.sigterm"), "w") as f:
            f.write(f"{time.time():.6f}\n")

    def cleanup(self):
        for ext in ("port", "pid"):
            try:
                os.remove(os.path.join(PODS_DIR, f"{self.name}.{ext}"))
            except FileNotFoundError:
                pass


class QdrantPod(PodProcess):
    """A Qdrant Pod: the container's command as a local process on the Pod's own loopback
    address, in a filesystem built from the Pod's volumes (qpods.materialize). Each one has
    its own thread, so a slow start or probe never delays another Pod (nor operator Pods)."""

    def __init__(self, pod, predecessor=None):
        super().__init__(pod)
        self.predecessor = predecessor
        self.key = (self.namespace, self.name)
        self.addr = None
        self.root = None
        self.readiness = None
        self.last_exit = None
        self.last_started = None
        self.cleaned = False
        self.finished = threading.Event()
        self.pid_file = os.path.join(PIDS, f"qpod.{self.namespace}.{self.name}.pid")

    def begin(self):
        threading.Thread(target=self.run, name=f"qpod-{self.namespace}-{self.name}", daemon=True).start()

    def run(self):
        # A Pod reusing the name of one that was just deleted (a StatefulSet's next Pod) waits
        # until that one's process is dead and its root removed: they share the root path and,
        # with persistence, the data directory.
        if self.predecessor is not None:
            self.predecessor.finished.wait(120)
            self.predecessor = None
        failed = None
        while not (self.terminating or self.gone):
            if self.proc is None:
                try:
                    self.start()
                except Exception as e:  # noqa: BLE001 - like ContainerCreating: retry
                    if str(e) != failed:
                        log(f"cannot start {self.namespace}/{self.name} yet: {e}")
                        failed = str(e)
                    time.sleep(1)
                    continue
            self.supervise_once()
            time.sleep(qpods.PROBE_INTERVAL)

    def lookup(self, resource, ns, name):
        return lookup(resource, ns, name)

    def start(self):
        with self.lock:
            if self.terminating or self.gone:
                return
            super().start()

    def launch(self):
        container = qpods.qdrant_container(self.pod)
        qdrant_bin = os.environ.get("QDRANT_BIN") or None
        self.root = qpods.materialize(STATE, self.pod, self.lookup, qdrant_bin)
        if self.addr is None:
            # The address is the Pod's for its life, across container restarts.
            names, short = qpods.dns_names(self.pod)
            self.addr, published = HOSTS.assign(self.key, f"{self.namespace}/{self.name}/{self.uid}", names, short)
            log(f"{self.namespace}/{self.name} is {self.addr} ({' '.join(published) or 'no DNS names'})")
        extra = {"QDRANT__SERVICE__HOST": self.addr}
        if qdrant_bin:
            extra["QDRANT__TELEMETRY_DISABLED"] = "true"  # a test machine reports nothing
        else:
            # The stand-in's test-only fault hooks (e2e/qdrant/README.md), for the suites that
            # make a peer answer errors; a real binary has none.
            extra["QDRANT_STANDIN_FAULTS"] = "1"
        env = qpods.container_env(self.pod, container, self.lookup, self.addr, self.root, extra)
        argv = qpods.container_argv(container, env, self.root)
        cwd = os.path.join(self.root, (container.get("workingDir") or qpods.IMAGE_WORKDIR).lstrip("/"))
        os.makedirs(LOGS, exist_ok=True)
        out = open(os.path.join(LOGS, f"qdrant-{self.namespace}-{self.name}.log"), "a")
        out.write(f"--- {now()} {shlex.join(argv)} (cwd {cwd})\n")
        out.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        os.makedirs(PIDS, exist_ok=True)
        with open(self.pid_file, "w") as f:
            f.write(str(proc.pid))
        self.readiness = qpods.Readiness(container, time.monotonic())
        self.last_started = now()
        log(f"started {self.namespace}/{self.name} as pid {proc.pid} on {self.addr}")
        return proc

    def pod_ip(self):
        return self.addr

    def report(self, ready):
        if self.addr is not None:  # a Pod that never ran has no status to report
            super().report(ready)

    def probe(self):
        target = qpods.probe_target(self.pod, qpods.qdrant_container(self.pod), self.addr)
        ok = True if target is None else qpods.probe_once(target)
        return self.readiness.observe(ok, time.monotonic())

    def container_statuses(self, ready):
        main = qpods.qdrant_container(self.pod)
        out = []
        for c in self.pod["spec"]["containers"]:
            s = {"name": c["name"], "image": c.get("image", ""), "imageID": "", "started": True,
                 "ready": True, "restartCount": 0, "state": {"running": {"startedAt": now()}}}
            if c is main:
                s.update(ready=ready, restartCount=self.restarts, state={"running": {"startedAt": self.last_started}})
                if self.last_exit is not None:
                    s["lastState"] = {"terminated": self.last_exit}
            out.append(s)
        return out

    def kill(self, sig):
        """SIGTERM reaches the container's main process, SIGKILL everything in it (its process
        group), as when a container runtime stops a container."""
        if self.proc is None:
            return
        try:
            if sig == signal.SIGKILL:
                os.killpg(self.proc.pid, sig)
            elif self.proc.poll() is None:
                os.kill(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def exited(self, code):
        self.kill(signal.SIGKILL)  # whatever the process left behind in its group
        self.last_exit = {"exitCode": code if code >= 0 else 128 - code, "finishedAt": now()}

    def pre_stop(self, deadline):
        """The container's preStop exec hook, in the container's context, within the grace
        period (the operator's Qdrant Pods sleep 3 s there, for Services to drop the Pod)."""
        hook = ((qpods.qdrant_container(self.pod).get("lifecycle") or {}).get("preStop") or {}).get("exec")
        if not hook or self.proc is None or self.proc.poll() is not None:
            return
        container = qpods.qdrant_container(self.pod)
        try:
            env = qpods.container_env(self.pod, container, self.lookup, self.addr, self.root, {"QDRANT__SERVICE__HOST": self.addr})
            argv = [qpods.translate(a, self.root, qpods.translate_prefixes(container)) for a in hook["command"]]
            log(f"preStop {self.namespace}/{self.name}: {shlex.join(argv)}")
            subprocess.run(argv, cwd=os.path.join(self.root, "qdrant"), env=env, timeout=max(0.1, deadline - time.time()),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except Exception as e:  # noqa: BLE001 - a failed hook does not stop the deletion
            log(f"preStop {self.namespace}/{self.name}: {e}")

    def force_kill(self):
        with self.lock:
            self.gone = True
        super().force_kill()

    def cleanup(self):
        """The Pod is gone: its process group, address, DNS names and root (emptyDirs) go
        with it; PVC data stays (see pvc_event). Once: a terminated Pod's deletion event
        comes after its cleanup."""
        with self.lock:
            if self.cleaned:
                return
            self.cleaned = True
        self.kill(signal.SIGKILL)
        try:
            os.remove(self.pid_file)
        except FileNotFoundError:
            pass
        if self.addr is not None:
            HOSTS.release(self.key)
        shutil.rmtree(qpods.pod_root(STATE, self.namespace, self.name), ignore_errors=True)
        self.finished.set()


class PodKind:
    """The Pods of one kind that the runner plays the kubelet for, keyed by (namespace, name)."""

    def __init__(self, name, cls):
        self.name = name
        self.cls = cls
        self.pods = {}
        self.lock = threading.Lock()


OPERATOR = PodKind("operator", OperatorPod)
QDRANT = PodKind("qdrant", QdrantPod)


def handle(kind, event_type, pod):
    meta = pod["metadata"]
    ns = meta.get("namespace", NAMESPACE)
    key = (ns, meta["name"])
    predecessor = None
    with kind.lock:
        p = kind.pods.get(key)
        if p and p.uid != meta["uid"]:
            if event_type != "DELETED":
                # A new Pod with the name of one whose deletion we missed: that one is gone.
                kind.pods.pop(key, None)
                threading.Thread(target=p.force_kill, daemon=True).start()
                predecessor = p
                forget(kind, key, p)
            p = None
        if event_type == "DELETED":
            if p:
                kind.pods.pop(key, None)
                forget(kind, key, p)
                threading.Thread(target=p.force_kill, daemon=True).start()
            return
        if meta.get("deletionTimestamp"):
            if p:
                grace = meta.get("deletionGracePeriodSeconds", 30)
                threading.Thread(target=p.terminate, args=(grace,), daemon=True).start()
            else:
                delete_pod(ns, meta["name"], meta["uid"])
            return
        if p is None and pod["spec"].get("nodeName"):
            if predecessor is None and kind is QDRANT:
                predecessor = recently_finished.get(key)
            p = kind.cls(pod, predecessor)
            kind.pods[key] = p
            try:
                p.begin()
            except Exception as e:  # noqa: BLE001 - report and retry on the next event
                log(f"could not start {meta['name']}: {e}")
                kind.pods.pop(key, None)
        elif p is not None:
            p.pod = pod
        elif kind is QDRANT:
            # Not scheduled yet: perhaps waiting for its claims.
            threading.Thread(target=provision, args=(pod,), daemon=True).start()


class Recent(dict):
    """The last QdrantPod of each (namespace, name) that was removed, until it has finished:
    its successor, which may be seen before the deletion event, waits for it."""

    def get(self, key):
        p = super().get(key)
        return p if p is not None and not p.finished.is_set() else None


recently_finished = Recent()


def forget(kind, key, p):
    if kind is QDRANT:
        recently_finished[key] = p


def resync(kind, items):
    """A fresh list: every Pod as if added, and the ones we run that are missing as deleted."""
    seen = set()
    for pod in items:
        seen.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        handle(kind, "ADDED", pod)
    with kind.lock:
        missing = [(k, p.uid) for k, p in kind.pods.items() if k not in seen]
    for (ns, name), uid in missing:
        handle(kind, "DELETED", {"metadata": {"namespace": ns, "name": name, "uid": uid}})


def watch_loop(path, selector, on_list, on_event):
    """List, then watch, `path` (with a label selector, or None), forever: the API server may
    restart, and a watch ends every 5 minutes; each new list goes to `on_list(items)`."""
    sel = f"labelSelector={urllib.parse.quote(selector)}&" if selector else ""
    while True:
        try:
            status, lst = api("GET", f"{path}?{sel}".rstrip("?&"))
            if status != 200:
                time.sleep(1)
                continue
            on_list(lst["items"])
            rv = lst["metadata"]["resourceVersion"]
            conn = http.client.HTTPSConnection("127.0.0.1", API_PORT, context=SSL, timeout=330)
            conn.request("GET", f"{path}?{sel}watch=1&resourceVersion={rv}&timeoutSeconds=300&allowWatchBookmarks=false")
            resp = conn.getresponse()
            while True:
                line = resp.readline()
                if not line:
                    break
                ev = json.loads(line)
                if ev["type"] == "ERROR":
                    break
                on_event(ev["type"], ev["object"])
            conn.close()
        except Exception as e:  # noqa: BLE001 - the API server may restart; keep going
            log(f"watch error: {e}")
            time.sleep(0.5)


def pod_watcher(kind):
    def on_event(event_type, pod):
        if event_type in ("ADDED", "MODIFIED", "DELETED"):
            handle(kind, event_type, pod)
    return lambda items: resync(kind, items), on_event


def supervise_loop():
    """Readiness probes and container restarts of operator Pods (Qdrant Pods have a thread
    each)."""
    while True:
        with OPERATOR.lock:
            current = list(OPERATOR.pods.values())
        for p in current:
            p.supervise_once()
        time.sleep(0.25)


# --- claims --------------------------------------------------------------------------------

provisioned = set()  # claim uids we made a PV for


def pv_name(claim_uid):
    return f"qdrant-e2e-{claim_uid}"


def local_pv(pvc, path):
    """A PersistentVolume pre-bound to `pvc` (claimRef with its uid): the PV controller binds
    the claim to it, whatever its StorageClass, which need not exist. hostPath records where the
    data is; the runner links it into the Pod itself. Retain: the runner deletes the PV and the
    data when the claim is deleted, not the PV controller (it can delete hostPath volumes only
    under /tmp)."""
    meta, spec = pvc["metadata"], pvc["spec"]
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name(meta["uid"]), "labels": {PV_LABEL: "true"}},
        "spec": {
            "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "storageClassName": spec.get("storageClassName") or "",
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
        },
    }


def provision(pod):
    """A PV for each pending claim of a Pod that is not scheduled: the scheduler refuses Pods
    whose immediate-binding claims are unbound, and the local plane has no provisioner."""
    ns = pod["metadata"]["namespace"]
    for v in pod["spec"].get("volumes") or []:
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if not claim:
            continue
        try:
            pvc = lookup("persistentvolumeclaims", ns, claim)
        except Exception as e:  # noqa: BLE001 - the next Pod event retries
            log(f"claim {ns}/{claim}: {e}")
            continue
        if pvc is None or pvc["spec"].get("volumeName") or pvc["metadata"].get("deletionTimestamp"):
            continue
        uid = pvc["metadata"]["uid"]
        if uid in provisioned:
            continue
        path = qpods.pvc_dir(STATE, ns, claim, uid)
        os.makedirs(path, exist_ok=True)
        st, resp = api("POST", "/api/v1/persistentvolumes", local_pv(pvc, path))
        if st in (201, 409):
            provisioned.add(uid)
            if st == 201:
                log(f"PersistentVolume {pv_name(uid)} for claim {ns}/{claim}")
        else:
            log(f"PersistentVolume for claim {ns}/{claim}: {st} {resp}")


def claim_gone(ns, name, uid):
    """A deleted claim takes its data and its PV with it. Only claims that had data here or a
    PV from us have anything to remove (every claim of the cluster passes through here)."""
    path = qpods.pvc_dir(STATE, ns, name, uid)
    had_data = os.path.isdir(path)
    if had_data:
        shutil.rmtree(path, ignore_errors=True)
        log(f"claim {ns}/{name} deleted: removed {path}")
    if had_data or uid in provisioned:
        api("DELETE", f"/api/v1/persistentvolumes/{pv_name(uid)}")
        provisioned.discard(uid)


def pvc_event(event_type, pvc):
    if event_type == "DELETED":
        m = pvc["metadata"]
        claim_gone(m["namespace"], m["name"], m["uid"])


def claim_exists(ns, name, uid):
    """Asked again rather than taken from a list: a claim created after the list was taken
    may already have data and a PV."""
    try:
        pvc = lookup("persistentvolumeclaims", ns, name)
    except Exception:  # noqa: BLE001 - when in doubt, keep the data
        return True
    return pvc is not None and pvc["metadata"]["uid"] == uid


def pvc_resync(items):
    """Claims deleted while we were not watching: their data directories and our PVs."""
    live = {(p["metadata"]["namespace"], f"{p['metadata']['name']}-{p['metadata']['uid']}") for p in items}
    base = os.path.join(STATE, "pvc")
    for ns in os.listdir(base) if os.path.isdir(base) else []:
        for entry in os.listdir(os.path.join(base, ns)):
            name, uid = entry[:-37], entry[-36:]
            if (ns, entry) not in live and not claim_exists(ns, name, uid):
                claim_gone(ns, name, uid)
    st, pvs = api("GET", f"/api/v1/persistentvolumes?labelSelector={urllib.parse.quote(PV_LABEL)}")
    for pv in (pvs or {}).get("items", []) if st == 200 else []:
        ref = pv["spec"].get("claimRef") or {}
        if not claim_exists(ref.get("namespace"), ref.get("name"), ref.get("uid")):
            api("DELETE", f"/api/v1/persistentvolumes/{pv['metadata']['name']}")


# --- start and stop ------------------------------------------------------------------------


def qdrant_pods_enabled():
    """True when kwok's configuration leaves Qdrant Pods to us (see kwok-stages.py)."""
    try:
        with open(os.path.join(STATE, "kwok.yaml")) as f:
            return QDRANT_EXCLUSION in f.read()
    except FileNotFoundError:
        return False


def kill_orphans():
    """Qdrant processes of an earlier runner of this state directory (killed without its
    shutdown) are not ours to supervise: SIGKILL them, if the PID still is one (its working
    directory is under our qpods/)."""
    if not os.path.isdir(PIDS):
        return
    mine = os.path.join(STATE, "qpods") + "/"
    for f in os.listdir(PIDS):
        if not (f.startswith("qpod.") and f.endswith(".pid")):
            continue
        path = os.path.join(PIDS, f)
        try:
            with open(path) as fh:
                pid = int(fh.read().strip())
            if os.readlink(f"/proc/{pid}/cwd").startswith(mine):
                os.killpg(pid, signal.SIGKILL)
                log(f"killed orphan Qdrant process {pid} ({f})")
        except (OSError, ValueError):
            pass
        os.remove(path)


def shutdown(*_):
    for kind in (OPERATOR, QDRANT):
        with kind.lock:
            current = list(kind.pods.values())
        for p in current:
            p.kill(signal.SIGKILL)
            if isinstance(p, QdrantPod):
                try:
                    os.remove(p.pid_file)
                except FileNotFoundError:
                    pass
            else:
                p.cleanup()
    if QDRANT_PODS:
        try:
            HOSTS.clear()
        except Exception:  # noqa: BLE001 - down.sh removes the block too
            pass
    os._exit(0)


if __name__ == "__main__":
    configure(sys.argv[1], sys.argv[2], sys.argv[3])
    os.makedirs(PODS_DIR, exist_ok=True)
    os.makedirs(LOGS, exist_ok=True)
    os.makedirs(PIDS, exist_ok=True)
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    threading.Thread(target=supervise_loop, daemon=True).start()
    QDRANT_PODS = qdrant_pods_enabled()
    if QDRANT_PODS:
        kill_orphans()
        HOSTS.clear()
        log(f"watching Qdrant Pods ({qpods.QDRANT_POD_SELECTOR}) in every namespace; hosts file {HOSTS.path}; "
            f"Qdrant binary {os.environ.get('QDRANT_BIN') or 'the stand-in'}")
        threading.Thread(target=watch_loop, args=("/api/v1/pods", qpods.QDRANT_POD_SELECTOR, *pod_watcher(QDRANT)), daemon=True).start()
        threading.Thread(target=watch_loop, args=("/api/v1/persistentvolumeclaims", None, pvc_resync, pvc_event), daemon=True).start()
    log(f"watching {SELECTOR} Pods in {NAMESPACE}")
    watch_loop(f"/api/v1/namespaces/{NAMESPACE}/pods", SELECTOR, *pod_watcher(OPERATOR))
