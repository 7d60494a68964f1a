"""Qdrant Pods as local processes: the parts of e2e/cluster/runner.py that need no API server.

The runner plays the kubelet for the operator's Qdrant Pods (see its docstring for the
lifecycle). This module holds what it needs to turn a Pod object into a running process, with
every API read passed in as `lookup(resource, namespace, name) -> object or None`, so that
test_runner_qdrant.py tests it without a control plane:

- which Pods are ours (`is_qdrant_pod`);
- a loopback address per Pod (`allocate_address`) and the headless-Service DNS names that
  resolve to it (`dns_names`), published in a managed block of a hosts file (`HostsFile`);
- the container's filesystem under a per-Pod root (`materialize`): its ConfigMap, Secret,
  emptyDir and PVC volumes at their mount paths, with the image's `/qdrant` WORKDIR and an
  `entrypoint.sh` that runs `QDRANT_BIN` or the stand-in;
- the container's environment and argv (`container_env`, `container_argv`), with absolute
  container paths rewritten into the root (`translate`);
- the readiness probe (`Readiness`).

CLI, for down.sh: `python3 qpods.py remove-hosts-block STATE_DIR` removes the block that the
runner of STATE_DIR wrote (the hosts file is `$E2E_HOSTS_FILE`, default /etc/hosts).
"""

import base64
import contextlib
import errno
import fcntl
import hashlib
import http.client
import ipaddress
import os
import re
import shlex
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import threading
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(os.path.dirname(HERE), "qdrant", "standin.py")

# --- which Pods ----------------------------------------------------------------------------

# The label that every Qdrant Pod carries, and no other Pod has: ours (src/controller/build.rs,
# `selector_labels()`), and the older JavaScript operator's, whose clusters e2e/88 takes over
# while they run. The operator's own Pods are app=qdrant-operator,component=operator.
QDRANT_POD_LABELS = {"component": "qdrant"}
QDRANT_POD_SELECTOR = ",".join(f"{k}={v}" for k, v in QDRANT_POD_LABELS.items())
# The same test as a kwok selector key (a jq query, evaluated by kwok with gojq); kwok-stages.py
# excludes Pods for which it is true, and the runner takes Qdrant Pods over only when kwok's
# configuration contains it, so the two can never both drive a Pod.
QDRANT_POD_JQ = ' and '.join(f'.metadata.labels["{k}"] == "{v}"' for k, v in QDRANT_POD_LABELS.items())


def is_qdrant_pod(pod):
    labels = pod.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in QDRANT_POD_LABELS.items())


def qdrant_container(pod):
    """The container that runs Qdrant: the one named `qdrant` (build.rs), else the first.
    Sidecars are not run (their images cannot be run here); they are reported ready."""
    containers = pod["spec"]["containers"]
    return next((c for c in containers if c["name"] == "qdrant"), containers[0])


# --- addresses -----------------------------------------------------------------------------

# Pod addresses come from 127.0.64.1 - 127.0.127.254: the whole of 127.0.0.0/8 reaches the
# loopback interface on Linux without any setup, and this range keeps clear of 127.0.0.1 and
# the low 127.0.0.x addresses that other tools like to use.
POOL_FIRST_OCTET3, POOL_LAST_OCTET3 = 64, 127
POOL_SIZE = (POOL_LAST_OCTET3 - POOL_FIRST_OCTET3 + 1) * 254


def pool_address(i):
    i %= POOL_SIZE
    return f"127.0.{POOL_FIRST_OCTET3 + i // 254}.{1 + i % 254}"


def allocate_address(seed, used):
    """The first address of the pool, starting at a point derived from `seed`, that is not in
    `used`. Deterministic for a seed (the runner seeds with namespace/name/uid, so a re-created
    Pod usually gets a new address, as on a real cluster, and a test can predict it)."""
    start = zlib.crc32(seed.encode())
    for i in range(POOL_SIZE):
        addr = pool_address(start + i)
        if addr not in used:
            return addr
    raise RuntimeError("no free loopback address left in 127.0.64.0-127.0.127.255")


# --- DNS names and the hosts file ----------------------------------------------------------

CLUSTER_DOMAIN = "cluster.local"


def dns_names(pod, domain=CLUSTER_DOMAIN):
    """(qualified names, short name) that cluster DNS gives a Pod with `spec.hostname` and
    `spec.subdomain` (a StatefulSet sets them to the Pod name and its headless Service):
    `<host>.<sub>.<ns>`, `.svc`, `.svc.<domain>`, and `<host>.<sub>`, which inside the Pod's
    namespace resolves through the search path. Without a subdomain, none: cluster DNS has no
    record for a Pod by name then."""
    spec, meta = pod["spec"], pod["metadata"]
    sub = spec.get("subdomain")
    if not sub:
        return [], None
    host = spec.get("hostname") or meta["name"]
    base = f"{host}.{sub}.{meta['namespace']}"
    return [base, f"{base}.svc", f"{base}.svc.{domain}"], f"{host}.{sub}"


BEGIN = "# qdrant-operator e2e BEGIN "
END = "# qdrant-operator e2e END "


class HostsConflict(Exception):
    """A name the Pod needs is already published by someone else (another e2e run on this
    machine with the same namespace and cluster names, or a line written by hand)."""


def parse_hosts(text):
    """Splits a hosts file into (lines outside managed blocks, {block key: its lines}). A block
    without its END line runs to the end of the file."""
    outside, blocks, current = [], {}, None
    for line in text.splitlines():
        if current is None and line.startswith(BEGIN):
            current = line[len(BEGIN):].strip()
            blocks[current] = []
        elif current is not None and line.startswith(END) and line[len(END):].strip() == current:
            current = None
        elif current is not None:
            blocks[current].append(line)
        else:
            outside.append(line)
    return outside, blocks


def hosts_entries(lines):
    """(addresses, names) on the hosts lines given, comments ignored; names lower-cased, as
    lookups in /etc/hosts are case-insensitive."""
    addrs, names = set(), set()
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            addrs.add(str(ipaddress.ip_address(fields[0])))
        except ValueError:
            continue
        names.update(n.lower() for n in fields[1:])
    return addrs, names


def render_hosts(text, key, lines, keep=lambda key: True):
    """The hosts file `text` with the block of `key` replaced by `lines` (dropped when empty),
    at the end of the file, and with other blocks for which `keep(key)` is false dropped (the
    runner drops blocks of state directories that no longer exist). Everything else is kept
    byte for byte and in place."""
    out, current, skip = [], None, False
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\n")
        if current is None and bare.startswith(BEGIN):
            current = bare[len(BEGIN):].strip()
            skip = current == key or not keep(current)
        elif current is not None and bare.startswith(END) and bare[len(END):].strip() == current:
            current = None
            if skip:
                skip = False
                continue
        if not skip:
            out.append(line)
    body = "".join(out)
    if lines:
        if body and not body.endswith("\n"):
            body += "\n"
        body += BEGIN + key + "\n" + "".join(l + "\n" for l in lines) + END + key + "\n"
    return body


def _lock_path(path):
    digest = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"qdrant-operator-e2e-hosts-{digest}.lock")


@contextlib.contextmanager
def hosts_lock(path):
    """Serializes read-modify-write of one hosts file across processes (concurrent e2e runs
    each have a runner). A separate lock file, because a rename replaces the hosts file's
    inode and with it any lock held on it."""
    with open(_lock_path(path), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_hosts(path, old, new):
    """Replaces the hosts file's content. Atomically (temporary file + rename) where possible,
    so a resolver never reads half a file. Where /etc/hosts is a mount point (Docker bind-mounts
    it, so does a private mount namespace) a rename onto it fails with EBUSY; then it is
    rewritten in place from the first byte that changes, so the lines before our block (such as
    localhost) are never touched, and only a lookup racing the write may miss one of our names."""
    if old == new:
        return
    tmp = f"{path}.qdrant-e2e-{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o644
    try:
        with open(tmp, "w") as f:
            f.write(new)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        return
    except OSError as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if e.errno not in (errno.EBUSY, errno.EXDEV, errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    old_b, new_b = old.encode(), new.encode()
    same = 0
    for a, b in zip(old_b, new_b):
        if a != b:
            break
        same += 1
    with open(path, "r+b") as f:
        f.seek(same)
        f.write(new_b[same:])
        f.truncate()


class HostsFile:
    """The managed block of one runner (keyed by its state directory) in a hosts file: one line
    per Pod with its address and DNS names. The block is also the registry of addresses in use:
    an address is allocated only if no line of the file (any block, any runner) has it, under
    a lock shared by every runner."""

    def __init__(self, path, key):
        self.path = path
        self.key = key
        self.entries = {}  # pod key (namespace, name) -> (address, names)
        self.mutex = threading.Lock()

    def _read(self):
        try:
            with open(self.path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _lines(self):
        # The comment names the Pod; a line without names (a Pod without a subdomain) still
        # reserves its address, and resolvers skip it.
        return [" ".join([addr, *names, "#", f"{ns}/{name}"]) for (ns, name), (addr, names) in sorted(self.entries.items())]

    def _live(self, key):
        """Whether another block still counts: blocks of state directories that are gone belong
        to runs that ended without down.sh, and are dropped at our next write."""
        return not os.path.isabs(key) or os.path.isdir(key)

    def _write(self, text):
        write_hosts(self.path, text, render_hosts(text, self.key, self._lines(), self._live))

    def assign(self, pod_key, seed, names, short=None):
        """Allocates an address for the Pod and publishes `names` (and `short` unless another
        line has it: the short name is ambiguous across namespaces, and the first Pod keeps it)
        for it. Returns (address, names published). Raises HostsConflict if a qualified name is
        published elsewhere: two runs would otherwise reach each other's Pods."""
        with self.mutex, hosts_lock(self.path):
            text = self._read()
            outside, blocks = parse_hosts(text)
            blocks = {k: ls for k, ls in blocks.items() if k != self.key and self._live(k)}
            their_addrs, their_names = hosts_entries(outside + [l for ls in blocks.values() for l in ls])
            taken = {n.lower() for n in names} & their_names
            if taken:
                where = [k for k, ls in blocks.items() if hosts_entries(ls)[1] & taken]
                raise HostsConflict(f"{', '.join(sorted(taken))} already in {self.path}" + (f" (block of {where[0]})" if where else ""))
            ours = {pk: v for pk, v in self.entries.items() if pk != pod_key}
            our_names = {n.lower() for _, ns in ours.values() for n in ns}
            published = list(names)
            if short and short.lower() not in their_names | our_names:
                published.append(short)
            addr = allocate_address(seed, their_addrs | {a for a, _ in ours.values()})
            self.entries[pod_key] = (addr, published)
            self._write(text)
            return addr, published

    def release(self, pod_key):
        with self.mutex, hosts_lock(self.path):
            if self.entries.pop(pod_key, None) is not None:
                self._write(self._read())

    def clear(self):
        """Removes this runner's block (at start-up: a previous runner's Pods are not ours)."""
        with self.mutex, hosts_lock(self.path):
            self.entries.clear()
            self._write(self._read())


def hosts_path():
    return os.environ.get("E2E_HOSTS_FILE", "/etc/hosts")


# --- paths ---------------------------------------------------------------------------------

IMAGE_WORKDIR = "/qdrant"


def translate_prefixes(container):
    """Absolute container paths that live under the Pod's root: the image's /qdrant, and every
    mount path outside it. Anything else (/bin/bash, /usr/bin/env) is the host's, standing in
    for the image's binaries."""
    prefixes = [IMAGE_WORKDIR]
    for m in container.get("volumeMounts") or []:
        p = m["mountPath"].rstrip("/") or "/"
        if p != "/" and not any(p == q or p.startswith(q + "/") for q in prefixes):
            prefixes.append(p)
    return sorted(prefixes, key=len, reverse=True)


def translate(text, root, prefixes):
    """Rewrites absolute container paths in `text` (a command-line word, an env value, a config
    file) to the same paths under `root`. A path is recognised where it starts a word: at the
    start, after whitespace, a quote, `=`, `:`, `,`, an opening bracket, or `file://`; it is the
    prefix itself or continues with `/`. So `storage_path: /qdrant/storage`, `--x=/qdrant/a`
    and `file:///qdrant/snapshots/s` change, `http://h/qdrant/x` and `/qdrantx` do not."""
    if not prefixes:
        return text
    alternatives = "|".join(re.escape(p) for p in prefixes)
    pattern = re.compile(r"(?:^|(?<=[\s\"'=:,\[({])|(?<=file://))(" + alternatives + r")(?=/|$|[\s\"',;:)\]}])", re.M)
    root = root.rstrip("/")
    return pattern.sub(lambda m: root + m.group(1), text)


def translate_file_content(data, root, prefixes):
    """Config files from ConfigMaps and Secrets get their container paths translated, as the
    process reads them from the host; binary data and PEM (certificates, keys) stay as they are."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    if "-----BEGIN " in text:
        return data
    return translate(text, root, prefixes).encode("utf-8")


# --- environment ---------------------------------------------------------------------------

# What the qdrant/qdrant image sets (its Dockerfile: `ENV TZ=Etc/UTC RUN_MODE=production`,
# WORKDIR /qdrant, `CMD ["./entrypoint.sh"]`, no ENTRYPOINT). RUN_MODE makes Qdrant (and the
# stand-in) read config/production.yaml, which the operator mounts from its ConfigMap.
IMAGE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "Etc/UTC", "RUN_MODE": "production"}
IMAGE_ENTRYPOINT = []
IMAGE_CMD = ["./entrypoint.sh"]


class MountError(Exception):
    """A volume or env source the kubelet could not set up either (missing object or key); the
    runner retries, as the kubelet leaves the Pod in ContainerCreating."""


_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand(text, env):
    """Kubernetes' `$(VAR)` expansion in env values, command and args: a defined variable is
    replaced, an undefined reference is kept as written, `$$` escapes a `$`."""
    return _REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def field_ref(pod, path, pod_ip):
    meta, spec = pod["metadata"], pod["spec"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    return {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }.get(path, "")


def object_data(obj, resource):
    """The keys of a ConfigMap (`resource` configmaps) or Secret (secrets) as bytes."""
    out = {}
    if resource == "secrets":
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = v.encode()
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = v.encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
    return out


def key_ref(ref, resource, ns, lookup):
    obj = lookup(resource, ns, ref["name"])
    data = object_data(obj, resource) if obj else None
    if data is None or ref["key"] not in data:
        if ref.get("optional"):
            return None
        what = "ConfigMap" if resource == "configmaps" else "Secret"
        raise MountError(f"{what} {ns}/{ref['name']}" + ("" if data is None else f" has no key {ref['key']}"))
    return data[ref["key"]].decode("utf-8", "replace")


def container_env(pod, container, lookup, pod_ip, root, extra):
    """The process environment: the image's, the hostname, `envFrom`, `env` (values with `$(VAR)`
    expanded, fieldRef, configMapKeyRef, secretKeyRef), container paths translated into `root`,
    then `extra` (what the runner must force, such as the bind address) over all of it."""
    ns = pod["metadata"]["namespace"]
    prefixes = translate_prefixes(container)
    env = dict(IMAGE_ENV)
    # The container's hostname is the Pod's, and the runtime exports it (initialize.sh takes the
    # ordinal from it).
    env["HOSTNAME"] = pod["spec"].get("hostname") or pod["metadata"]["name"]
    declared = {}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, resource in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
            if kind in src:
                obj = lookup(resource, ns, src[kind]["name"])
                if obj is None:
                    if src[kind].get("optional"):
                        continue
                    raise MountError(f"{kind} {ns}/{src[kind]['name']} not found")
                for k, v in object_data(obj, resource).items():
                    declared[prefix + k] = v.decode("utf-8", "replace")
    for e in container.get("env") or []:
        if "value" in e or not e.get("valueFrom"):
            declared[e["name"]] = expand(e.get("value", ""), declared)
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            declared[e["name"]] = field_ref(pod, vf["fieldRef"]["fieldPath"], pod_ip)
        elif "configMapKeyRef" in vf:
            v = key_ref(vf["configMapKeyRef"], "configmaps", ns, lookup)
            if v is not None:
                declared[e["name"]] = v
        elif "secretKeyRef" in vf:
            v = key_ref(vf["secretKeyRef"], "secrets", ns, lookup)
            if v is not None:
                declared[e["name"]] = v
        # resourceFieldRef: no resources are enforced here, so there is nothing true to say.
    env.update({k: translate(v, root, prefixes) for k, v in declared.items()})
    env.update(extra)
    return env


def container_argv(container, env, root):
    """The process's argv as a container runtime builds it (command or the image's entrypoint,
    then args or the image's CMD), `$(VAR)` expanded and container paths translated."""
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = list(command) + list(args or [])
    else:
        argv = IMAGE_ENTRYPOINT + (list(args) if args else IMAGE_CMD)
    prefixes = translate_prefixes(container)
    return [translate(expand(a, env), root, prefixes) for a in argv]


def entrypoint_script(qdrant_bin=None):
    """The image's ./entrypoint.sh: runs the Qdrant binary with the arguments it got (the real
    one also supervises it for recovery mode, which does not matter here). exec keeps the Pod's
    process one PID, so SIGTERM reaches Qdrant itself."""
    if qdrant_bin:
        cmd = shlex.quote(qdrant_bin)
    else:
        cmd = f"{shlex.quote(sys.executable)} -u {shlex.quote(STANDIN)}"
    return ("#!/bin/bash\n"
            "# Written by e2e/cluster/runner.py: the image's entrypoint, running " + ("QDRANT_BIN" if qdrant_bin else "the stand-in") + ".\n"
            f"exec {cmd} \"$@\"\n")


# --- volumes -------------------------------------------------------------------------------


def pvc_dir(state, ns, name, uid):
    """Where a PVC's data lives: keyed by the claim (name and uid), so it outlives the Pods that
    mount it, and a new claim of the same name starts empty."""
    return os.path.join(state, "pvc", ns, f"{name}-{uid}")


def pod_root(state, ns, name):
    return os.path.join(state, "qpods", ns, name)


def _items(data, items, optional, what):
    """The files of a ConfigMap/Secret volume: every key, or the `items` listed (path, mode)."""
    if items is None:
        return {k: (v, None) for k, v in data.items()}
    out = {}
    for it in items:
        if it["key"] not in data:
            if optional:
                continue
            raise MountError(f"{what} has no key {it['key']}")
        out[it["path"]] = (data[it["key"]], it.get("mode"))
    return out


def volume_files(volume, pod, lookup):
    """{relative path: (bytes, mode)} for a ConfigMap, Secret or projected volume; None for
    any other kind. A projected `serviceAccountToken` becomes an empty file: the runner issues
    no tokens (Qdrant never calls the API server); `downwardAPI` items with a `fieldRef` are
    filled in as the kubelet would."""
    ns = pod["metadata"]["namespace"]
    for kind, resource, name_field in (("configMap", "configmaps", "name"), ("secret", "secrets", "secretName")):
        if kind in volume:
            src = volume[kind]
            obj = lookup(resource, ns, src[name_field])
            what = f"{'ConfigMap' if kind == 'configMap' else 'Secret'} {ns}/{src[name_field]}"
            if obj is None:
                if src.get("optional"):
                    return {}
                raise MountError(f"{what} not found")
            default = src.get("defaultMode", 0o644)
            return {p: (d, m if m is not None else default) for p, (d, m) in _items(object_data(obj, resource), src.get("items"), src.get("optional"), what).items()}
    if "projected" in volume:
        src = volume["projected"]
        default = src.get("defaultMode", 0o644)
        out = {}
        for s in src.get("sources") or []:
            kind = next(iter(s))
            if kind == "serviceAccountToken":
                out[s[kind]["path"]] = (b"", default)
                continue
            if kind == "downwardAPI":
                for it in s[kind].get("items") or []:
                    if "fieldRef" not in it:
                        raise MountError(f"projected downwardAPI item {it['path']}: only fieldRef is supported by the local runner")
                    value = field_ref(pod, it["fieldRef"]["fieldPath"], pod.get("status", {}).get("podIP", ""))
                    out[it["path"]] = (value.encode(), it.get("mode", default))
                continue
            if kind not in ("configMap", "secret"):
                raise MountError(f"projected volume source {kind} is not supported by the local runner")
            name_field = "name"
            resource = "configmaps" if kind == "configMap" else "secrets"
            obj = lookup(resource, ns, s[kind][name_field])
            if obj is None:
                if s[kind].get("optional"):
                    continue
                raise MountError(f"{kind} {ns}/{s[kind][name_field]} not found")
            for p, (d, m) in _items(object_data(obj, resource), s[kind].get("items"), s[kind].get("optional"), f"{kind} {ns}/{s[kind][name_field]}").items():
                out[p] = (d, m if m is not None else default)
        return out
    return None


def _replace_with_symlink(target, link):
    """Points `link` at `target`, replacing whatever is there (a link from an earlier start)."""
    os.makedirs(os.path.dirname(link), exist_ok=True)
    tmp = link + ".qdrant-e2e-link"
    with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)
    os.symlink(target, tmp)
    if os.path.isdir(link) and not os.path.islink(link):
        shutil.rmtree(link)
    os.replace(tmp, link)


def materialize(state, pod, lookup, qdrant_bin=None):
    """Builds the container's filesystem under the Pod's root and returns the root:

        <root>/volumes/<volume>/     each volume: emptyDir (a directory, kept across container
                                     restarts), ConfigMap/Secret/projected (files, rewritten at
                                     every container start, container paths translated),
                                     PVC (a symlink to pvc_dir(), created if missing)
        <root>/qdrant/               the image's WORKDIR, with entrypoint.sh
        <root>/<mountPath>           each volumeMount: a symlink to its volume (or to the
                                     subPath inside it), or for a subPath of a ConfigMap/Secret
                                     a copy of the file (subPath mounts never see updates)

    Raises MountError when an object the Pod needs is missing."""
    meta, spec = pod["metadata"], pod["spec"]
    ns, name = meta["namespace"], meta["name"]
    root = pod_root(state, ns, name)
    container = qdrant_container(pod)
    prefixes = translate_prefixes(container)
    vols = os.path.join(root, "volumes")
    os.makedirs(os.path.join(root, IMAGE_WORKDIR.lstrip("/")), exist_ok=True)
    os.makedirs(vols, exist_ok=True)
    files_volumes = set()
    for v in spec.get("volumes") or []:
        d = os.path.join(vols, v["name"])
        if "emptyDir" in v:
            os.makedirs(d, exist_ok=True)
        elif "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            pvc = lookup("persistentvolumeclaims", ns, claim)
            if pvc is None:
                raise MountError(f"PersistentVolumeClaim {ns}/{claim} not found")
            data = pvc_dir(state, ns, claim, pvc["metadata"]["uid"])
            os.makedirs(data, exist_ok=True)
            _replace_with_symlink(data, d)
        else:
            files = volume_files(v, pod, lookup)
            if files is None:
                raise MountError(f"volume {v['name']}: only emptyDir, persistentVolumeClaim, configMap, secret and projected volumes are supported by the local runner")
            files_volumes.add(v["name"])
            # A fresh directory each time, as the kubelet's atomic writer swaps in a new one.
            new = d + ".new"
            shutil.rmtree(new, ignore_errors=True)
            for rel, (data, mode) in files.items():
                path = os.path.join(new, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(translate_file_content(data, root, prefixes))
                os.chmod(path, mode)
            os.makedirs(new, exist_ok=True)
            shutil.rmtree(d, ignore_errors=True)
            os.rename(new, d)
    for m in sorted(container.get("volumeMounts") or [], key=lambda m: m["mountPath"].count("/")):
        src = os.path.join(vols, m["name"])
        if not os.path.lexists(src):
            raise MountError(f"volumeMount {m['mountPath']}: no volume {m['name']}")
        dst = os.path.join(root, m["mountPath"].lstrip("/"))
        sub = m.get("subPath")
        if sub and m["name"] in files_volumes:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(dst) or os.path.isfile(dst):
                os.remove(dst)
            if not os.path.isfile(os.path.join(src, sub)):
                raise MountError(f"volumeMount {m['mountPath']}: volume {m['name']} has no {sub}")
            shutil.copy2(os.path.join(src, sub), dst)
        elif sub:
            os.makedirs(os.path.join(src, sub), exist_ok=True)
            _replace_with_symlink(os.path.join(os.path.realpath(src), sub), dst)
        else:
            _replace_with_symlink(os.path.realpath(src), dst)
    entry = os.path.join(root, IMAGE_WORKDIR.lstrip("/"), "entrypoint.sh")
    with open(entry, "w") as f:
        f.write(entrypoint_script(qdrant_bin))
    os.chmod(entry, 0o755)
    return root


# --- readiness -----------------------------------------------------------------------------


def probe_target(pod, container, pod_ip):
    """(scheme, host, port, path, headers, timeout) of the container's httpGet readiness probe,
    ("tcp", host, port, ...) of a tcpSocket one, or None without one (ready once running, as
    the kubelet has it; exec and grpc probes are treated the same, documented)."""
    p = container.get("readinessProbe") or {}
    kind = "httpGet" if "httpGet" in p else "tcpSocket" if "tcpSocket" in p else None
    if kind is None:
        return None
    h = p[kind]
    port = h["port"]
    if isinstance(port, str) and not port.isdigit():
        # An unknown port name makes every probe fail, as it does for the kubelet.
        port = next((cp["containerPort"] for cp in container.get("ports") or [] if cp.get("name") == port), 0)
    timeout = p.get("timeoutSeconds", 1)
    if kind == "tcpSocket":
        return ("tcp", h.get("host") or pod_ip, int(port), None, {}, timeout)
    headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
    return (h.get("scheme", "HTTP").lower(), h.get("host") or pod_ip, int(port), h.get("path") or "/", headers, timeout)


_NO_VERIFY = ssl.create_default_context()
_NO_VERIFY.check_hostname = False
_NO_VERIFY.verify_mode = ssl.CERT_NONE


def probe_once(target):
    """One probe as the kubelet does it: HTTP success is a status in 200-399 (HTTPS without
    verifying the certificate, like the kubelet); TCP success is an accepted connection."""
    scheme, host, port, path, headers, timeout = target
    try:
        if scheme == "tcp":
            socket.create_connection((host, port), timeout=timeout).close()
            return True
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=_NO_VERIFY)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", path, headers=headers)
        ok = 200 <= conn.getresponse().status < 400
        conn.close()
        return ok
    except (OSError, http.client.HTTPException):
        return False


class Readiness:
    """The readiness state of one container run, from its probe's thresholds: not ready before
    initialDelaySeconds; ready after successThreshold consecutive successes, not ready after
    failureThreshold consecutive failures. The runner probes every PROBE_INTERVAL seconds, not
    every periodSeconds: faster, so tests wait less, with the same thresholds."""

    def __init__(self, container, started):
        p = container.get("readinessProbe") or {}
        self.delay = p.get("initialDelaySeconds", 0)
        self.successes_needed = p.get("successThreshold", 1)
        self.failures_allowed = p.get("failureThreshold", 3)
        self.started = started
        self.ready = False
        self.streak = 0  # > 0: consecutive successes, < 0: consecutive failures

    def observe(self, ok, now):
        if now - self.started < self.delay:
            return False
        if ok:
            self.streak = self.streak + 1 if self.streak > 0 else 1
            if self.streak >= self.successes_needed:
                self.ready = True
        else:
            self.streak = self.streak - 1 if self.streak < 0 else -1
            if -self.streak >= self.failures_allowed:
                self.ready = False
        return self.ready


PROBE_INTERVAL = 0.25


def main(argv):
    if len(argv) == 3 and argv[1] == "remove-hosts-block":
        HostsFile(hosts_path(), os.path.abspath(argv[2])).clear()
        return 0
    print(f"usage: {argv[0]} remove-hosts-block STATE_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
