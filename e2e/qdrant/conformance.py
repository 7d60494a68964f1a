#!/usr/bin/env python3
"""Conformance test of the Qdrant stand-in (or of a real Qdrant binary) against Qdrant's OpenAPI.

Starts three peers on 127.0.0.1 (free ports, temporary storage, API keys set), calls every
endpoint the stand-in implements, including error cases, and validates each request and
response body against the schema of its path, method and status in both OpenAPI documents
(v1.16 and v1.18). It also checks cluster behaviour: transfers pass through Partial and take
time, points survive moves, peers holding shards cannot be removed without force, restarts
keep the peer id and the points, new storage means a new peer id, peer ids above 2^53 stay
exact integers.

    python3 e2e/qdrant/conformance.py                       # against the stand-in
    QDRANT_BIN=/path/to/qdrant python3 e2e/qdrant/conformance.py   # against real Qdrant

The OpenAPI documents are read from $QDRANT_OPENAPI_DIR (default: <repo>/../shared/qdrant-openapi).
Needs the `jsonschema` package (pinned in README.md). Exit status 0 only when all passed.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OPENAPI_DIR = Path(os.environ.get("QDRANT_OPENAPI_DIR") or REPO.parent / "shared" / "qdrant-openapi")
DOCUMENTS = ("openapi-v1.16.json", "openapi-v1.18.json")
QDRANT_BIN = os.environ.get("QDRANT_BIN")
STANDIN = not QDRANT_BIN
RW_KEY = "conformance-rw-key"
RO_KEY = "conformance-ro-key"
TWO_53 = 2**53

try:
    import jsonschema
    import jsonschema.exceptions
except ImportError:
    print("conformance: FAIL: the `jsonschema` package is missing; install it with: python3 -m pip install 'jsonschema==4.26.0'", file=sys.stderr)
    sys.exit(2)


class Failure(Exception):
    """A behaviour check failed; the run stops there."""


def check(cond, message):
    if not cond:
        raise Failure(message)


# ----------------------------------------------------------------------------------------
# OpenAPI 3.0 schemas -> JSON Schema 2020-12, validated by the jsonschema package.


def convert(schema):
    """Translates an OpenAPI 3.0 schema object into JSON Schema.

    The differences that matter in Qdrant's documents: `nullable: true` adds null to the type
    (and to an enum); a schema that is *only* `nullable: true` (Qdrant's generator writes
    `anyOf: [{$ref}, {nullable: true}]` for Option<T>) means null, not "anything".
    Annotations (description, example, default, deprecated) are dropped.
    """
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("description", "example", "default", "deprecated", "nullable"):
            continue
        if key in ("anyOf", "oneOf", "allOf"):
            out[key] = [convert(s) for s in value]
        elif key in ("items", "additionalProperties", "not"):
            out[key] = convert(value)
        elif key == "properties":
            out[key] = {name: convert(s) for name, s in value.items()}
        else:
            out[key] = value
    if schema.get("nullable") is True:
        if not out:
            return {"type": "null"}
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = list(out["enum"]) + [None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
PARTIAL_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$")


def uuid_ok(x):
    try:
        uuid.UUID(x)
        return True
    except ValueError:
        return False


def format_checker():
    """Checks the formats of Qdrant's documents. As JSON Schema wants, a format passes values
    of other types (null, strings: `type` judges those); integer formats reject any float,
    even 1.8e19, so a u64 sent as a double fails."""
    fc = jsonschema.FormatChecker(formats=())
    ranges = {"uint": (0, 2**64), "uint64": (0, 2**64), "uint32": (0, 2**32), "uint8": (0, 2**8), "int64": (-(2**63), 2**63)}
    for name, (lo, hi) in ranges.items():
        fc.checks(name)(lambda x, lo=lo, hi=hi: not is_number(x) or (is_int(x) and lo <= x < hi))
    for name in ("float", "double"):
        fc.checks(name)(lambda x: not is_number(x) or (x == x and abs(x) != float("inf")))
    fc.checks("date-time")(lambda x: not isinstance(x, str) or bool(RFC3339.match(x)))
    fc.checks("partial-date-time")(lambda x: not isinstance(x, str) or bool(PARTIAL_DATE_TIME.match(x)))
    fc.checks("uuid")(lambda x: not isinstance(x, str) or uuid_ok(x))
    fc.checks("uri")(lambda x: not isinstance(x, str) or bool(urllib.parse.urlsplit(x).scheme))
    fc.checks("binary")(lambda x: True)
    return fc


# JSON Schema's "integer" accepts 1.0; Qdrant's u64 fields must be integers on the wire.
TYPE_CHECKER = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": lambda c, x: is_int(x), "number": lambda c, x: is_number(x)})
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=TYPE_CHECKER)
FORMATS = format_checker()


class Spec:
    """One OpenAPI document: path templates and schema validation."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        self.name = Path(path).stem
        self.components = {"schemas": {n: convert(s) for n, s in doc["components"]["schemas"].items()}}
        self.paths = []
        for template, item in doc["paths"].items():
            regex = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
            self.paths.append((template.count("{"), template, regex, item))
        self.paths.sort(key=lambda p: p[0])  # literal segments win over parameters
        self.validators = {}

    def operation(self, method, path):
        for _, template, regex, item in self.paths:
            if regex.match(path) and method.lower() in item:
                return template, item[method.lower()]
        return None, None

    def errors(self, schema, instance):
        key = json.dumps(schema, sort_keys=True)
        v = self.validators.get(key)
        if v is None:
            # $refs point into #/components/schemas, so the schema is validated inside a root
            # document that carries the converted components.
            v = Validator({**convert(schema), "components": self.components}, format_checker=FORMATS)
            self.validators[key] = v
        out = []
        for e in sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path)):
            deepest = jsonschema.exceptions.best_match(e.context) if e.context else None
            detail = f" (closest: {deepest.json_path}: {short(deepest.message)})" if deepest is not None else ""
            out.append(f"{e.json_path}: {short(e.message)}{detail}")
        return out


def short(text, n=240):
    return text if len(text) <= n else text[: n - 3] + "..."


# ----------------------------------------------------------------------------------------
# Requests, each checked against both documents.


class Stats:
    requests = 0
    violations = []
    deviations = 0


SPECS = []


def violation(message):
    Stats.violations.append(message)
    print(f"  VIOLATION {message}", file=sys.stderr)


class Response:
    def __init__(self, status, content_type, data):
        self.status, self.content_type, self.data = status, content_type, data
        self.json = None
        if content_type.split(";")[0].strip() == "application/json" and data:
            try:
                self.json = json.loads(data)
            except ValueError:
                pass

    @property
    def result(self):
        return (self.json or {}).get("result")

    @property
    def error(self):
        status = (self.json or {}).get("status")
        return status.get("error", "") if isinstance(status, dict) else ""


def check_request(method, path, query, body, content_type):
    for spec in SPECS:
        template, op = spec.operation(method, path)
        if op is None:
            continue
        declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
        for name in query:
            if name not in declared:
                violation(f"[request] {spec.name} {method} {template}: query parameter `{name}` is not declared")
        content = (op.get("requestBody") or {}).get("content", {})
        if body is None:
            continue
        if content_type not in content:
            violation(f"[request] {spec.name} {method} {template}: request content type {content_type} is not declared")
        elif content_type == "application/json":
            for err in spec.errors(content[content_type]["schema"], body):
                violation(f"[request] {spec.name} {method} {template}: {err}")


def check_response(method, path, resp):
    media = resp.content_type.split(";")[0].strip()
    for spec in SPECS:
        template, op = spec.operation(method, path)
        if op is None:
            continue  # e.g. a deliberately unknown path; only its status is checked
        responses = op["responses"]
        key = next((k for k in (str(resp.status), f"{resp.status // 100}XX", "default") if k in responses), None)
        where = f"{spec.name} {method} {template} -> {resp.status}"
        if key is None:
            violation(f"{where}: status is not declared (declared: {', '.join(responses)})")
            continue
        content = responses[key].get("content") or {}
        if not content:
            continue
        if media not in content:
            if resp.status == 401 and media == "text/plain":
                # Qdrant's auth layer answers 401 with a plain-text body although the documents
                # declare JSON; the stand-in answers the same way on purpose.
                Stats.deviations += 1
                continue
            violation(f"{where}: content type {media or '(none)'} is not declared (declared: {', '.join(content)})")
            continue
        schema = content[media].get("schema")
        if media == "application/json":
            if resp.json is None:
                violation(f"{where}: body is not JSON: {resp.data[:200]!r}")
                continue
            for err in spec.errors(schema, resp.json):
                violation(f"{where}: {err}")
            check_envelope(where, resp, schema)
        elif media == "text/plain":
            try:
                resp.data.decode("utf-8")
            except UnicodeDecodeError:
                violation(f"{where}: text/plain body is not UTF-8")


def check_envelope(where, resp, schema):
    """Qdrant's envelope fields are not `required` in the documents; demand them anyway, as
    every enveloped Qdrant answer carries them and clients rely on them. Error answers and
    schemas that spell out `time` are envelopes (GET / is not)."""
    if resp.status < 400 and "time" not in (schema or {}).get("properties", {}):
        return
    body = resp.json
    if not isinstance(body, dict):
        violation(f"{where}: envelope is not an object")
        return
    if not is_number(body.get("time")):
        violation(f"{where}: envelope lacks a numeric `time`")
    if resp.status < 300:
        if not isinstance(body.get("status"), str):
            violation(f"{where}: envelope lacks a string `status`")
        if resp.status == 200 and "result" in (schema or {}).get("properties", {}) and "result" not in body:
            violation(f"{where}: envelope lacks `result`")
    elif not (isinstance(body.get("status"), dict) and isinstance(body["status"].get("error"), str) and body["status"]["error"]):
        violation(f"{where}: error envelope lacks `status.error`")


def call(peer, method, path, body=None, key=RW_KEY, query=None, expect=200, raw=None, content_type="application/json", bearer=False, invalid=False):
    """Sends one request to a peer's REST port, validates request and response against both
    documents, and checks the status (`expect` may be an int, a tuple, or None)."""
    query = query or {}
    target = path + ("?" + urllib.parse.urlencode(query) if query else "")
    headers = {}
    if key is not None:
        if bearer:
            headers["authorization"] = f"Bearer {key}"
        else:
            headers["api-key"] = key
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        headers["content-type"] = content_type
    if not invalid:
        check_request(method, path, query, body if body is not None else (raw if content_type != "application/json" else None), content_type.split(";")[0])
    conn = http.client.HTTPConnection("127.0.0.1", peer.http_port, timeout=60)
    try:
        conn.request(method, target, body=data, headers=headers)
        r = conn.getresponse()
        resp = Response(r.status, r.getheader("content-type") or "", r.read())
    finally:
        conn.close()
    Stats.requests += 1
    check_response(method, path, resp)
    if expect is not None:
        ok = resp.status in expect if isinstance(expect, tuple) else resp.status == expect
        check(ok, f"{method} {target} on {peer.name}: expected status {expect}, got {resp.status}: {resp.data[:400]!r}")
    return resp


# ----------------------------------------------------------------------------------------
# Peers.


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    def __init__(self, name, root):
        self.name = name
        self.dir = Path(root) / name
        self.http_port, self.grpc_port, self.p2p_port = free_port(), free_port(), free_port()
        self.proc = None
        self.args = []

    @property
    def uri(self):
        return f"http://127.0.0.1:{self.p2p_port}"

    def reset_storage(self):
        self.dir = self.dir.with_name(self.dir.name + "-new")

    def start(self, bootstrap=None):
        (self.dir / "storage").mkdir(parents=True, exist_ok=True)
        (self.dir / "snapshots").mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("QDRANT__")}
        env.update(
            {
                "QDRANT__SERVICE__HOST": "127.0.0.1",
                "QDRANT__SERVICE__HTTP_PORT": str(self.http_port),
                "QDRANT__SERVICE__GRPC_PORT": str(self.grpc_port),
                "QDRANT__CLUSTER__ENABLED": "true",
                "QDRANT__CLUSTER__P2P__PORT": str(self.p2p_port),
                "QDRANT__STORAGE__STORAGE_PATH": str(self.dir / "storage"),
                "QDRANT__STORAGE__SNAPSHOTS_PATH": str(self.dir / "snapshots"),
                "QDRANT__SERVICE__API_KEY": RW_KEY,
                "QDRANT__SERVICE__READ_ONLY_API_KEY": RO_KEY,
                "QDRANT__TELEMETRY_DISABLED": "true",
            }
        )
        cmd = [QDRANT_BIN] if QDRANT_BIN else [sys.executable, str(HERE / "standin.py")]
        self.args = ["--uri", self.uri] + (["--bootstrap", bootstrap.uri] if bootstrap else [])
        log = open(self.dir / "peer.log", "ab")
        # The peer runs in its own directory, so a real binary finds no stray ./config there.
        self.proc = subprocess.Popen(cmd + self.args, cwd=self.dir, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}; see {self.dir / 'peer.log'}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise Failure(f"{self.name} not ready after {timeout}s")


def wait_for(what, fn, timeout=30, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        check(time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------------------
# Helpers over the API.


def cluster(peer, **kw):
    return call(peer, "GET", "/cluster", **kw).result


def peer_id(peer):
    return cluster(peer)["peer_id"]


def count(peer, collection, key=RW_KEY):
    return call(peer, "POST", f"/collections/{collection}/points/count", {"exact": True}, key=key).result["count"]


def replicas(peer, collection):
    """{shard_id: {peer_id: state}} and the transfers, as seen from `peer`."""
    info = call(peer, "GET", f"/collections/{collection}/cluster").result
    out = {}
    for s in info["local_shards"]:
        out.setdefault(s["shard_id"], {})[info["peer_id"]] = s["state"]
    for s in info["remote_shards"]:
        out.setdefault(s["shard_id"], {})[s["peer_id"]] = s["state"]
    return out, info["shard_transfers"]


def settled(peer, collection, want):
    """True once the shard layout equals `want` ({shard: set of peers}, all Active) and no
    transfer is running."""
    layout, transfers = replicas(peer, collection)
    return not transfers and all(set(layout.get(s, {})) == peers and set(layout[s].values()) == {"Active"} for s, peers in want.items())


def points(n, start=0, dim=4):
    return [{"id": i, "vector": [((i * 7 + j) % 13) / 13.0 for j in range(dim)], "payload": {"n": i, "parity": "even" if i % 2 == 0 else "odd"}} for i in range(start, start + n)]


def watch_transfer(observer, collection, shard, target, done):
    """Polls the target's view of a transfer; returns (states the target's replica went
    through, seconds until `done(layout, transfers)`)."""
    t0 = time.monotonic()
    seen = []
    while True:
        layout, transfers = replicas(observer, collection)
        state = layout.get(shard, {}).get(target)
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        if done(layout, transfers):
            return seen, time.monotonic() - t0
        check(time.monotonic() - t0 < 60, f"transfer of shard {shard} to {target} did not finish in 60s (states {seen})")
        time.sleep(0.02)


def multipart(field, filename, data):
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def local_points(peer, collection, shard):
    info = call(peer, "GET", f"/collections/{collection}/cluster").result
    return next(s["points_count"] for s in info["local_shards"] if s["shard_id"] == shard)


def shard_snapshots(holder, other, collection, sid):
    """Shard snapshot endpoints for one shard: taken, listed, downloaded, refused by a peer
    without the shard, recovered by name and by upload (checksums verified), deleted."""
    base = f"/collections/{collection}/shards/{sid}/snapshots"
    n = local_points(holder, collection, sid)
    call(holder, "POST", base, key=RO_KEY, expect=403)
    desc = call(holder, "POST", base, query={"wait": "true"}).result
    check(desc["size"] > 0 and re.fullmatch(r"[0-9a-f]{64}", desc.get("checksum") or ""), f"shard snapshot description {desc}")
    check(desc["name"] in [x["name"] for x in call(holder, "GET", base, key=RO_KEY).result], f"shard snapshot {desc['name']} not listed")
    blob = call(holder, "GET", f"{base}/{desc['name']}")
    check(len(blob.data) == desc["size"] and hashlib.sha256(blob.data).hexdigest() == desc["checksum"], "downloaded shard snapshot matches size and checksum")
    for method in ("POST", "GET"):
        call(other, method, base, expect=400)
    call(holder, "GET", f"{base}/missing.snapshot", expect=404)
    call(holder, "PUT", "/collections/" + collection + "/points", {"points": points(30, start=1000 + 100 * sid)}, query={"wait": "true"})
    check(local_points(holder, collection, sid) > n, "points written after the snapshot")
    call(holder, "PUT", f"{base}/recover", {"location": desc["name"]}, key=RO_KEY, expect=403)
    call(holder, "PUT", f"{base}/recover", {"location": desc["name"], "checksum": "0" * 64}, expect=400)
    check(call(holder, "PUT", f"{base}/recover", {"location": desc["name"], "checksum": desc["checksum"]}, query={"wait": "true"}).result is True, "shard recover must answer true")
    check(local_points(holder, collection, sid) == n, f"shard {sid} has {local_points(holder, collection, sid)} points after recovery, not {n}")
    body, ctype = multipart("snapshot", desc["name"], blob.data)
    call(holder, "POST", f"{base}/upload", raw=body, content_type=ctype, query={"checksum": "0" * 64}, expect=400)
    call(holder, "POST", f"{base}/upload", raw=body, content_type=ctype, key=RO_KEY, expect=403)
    check(call(holder, "POST", f"{base}/upload", raw=body, content_type=ctype, query={"priority": "snapshot", "checksum": desc["checksum"], "wait": "true"}).result is True, "shard upload must answer true")
    check(local_points(holder, collection, sid) == n, "recovery from the uploaded shard snapshot")
    call(holder, "POST", base, query={"wait": "false"}, expect=202)
    wait_for("shard snapshot taken with wait=false", lambda: len(call(holder, "GET", base).result) == 2)
    call(holder, "DELETE", f"{base}/{desc['name']}", key=RO_KEY, expect=403)
    call(holder, "DELETE", f"{base}/{desc['name']}", query={"wait": "false"}, expect=202)
    wait_for("shard snapshot deleted with wait=false", lambda: desc["name"] not in [x["name"] for x in call(holder, "GET", base).result])
    call(holder, "GET", f"{base}/{desc['name']}", expect=404)
    for x in call(holder, "GET", base).result:
        check(call(holder, "DELETE", f"{base}/{x['name']}", query={"wait": "true"}).result is True, "delete shard snapshot")


# ----------------------------------------------------------------------------------------
# The scenario.


def step(title):
    print(f"conformance: {title}", flush=True)


def run(root):
    a, b, c = Peer("a", root), Peer("b", root), Peer("c", root)
    peers = [a, b, c]
    try:
        scenario(root, a, b, c, peers)
    finally:
        for p in peers:
            if p.proc and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()


def scenario(root, a, b, c, peers):
    step("starting 3 peers")
    a.start()
    a.wait_ready()
    b.start(bootstrap=a)
    c.start(bootstrap=a)
    b.wait_ready()
    c.wait_ready()
    wait_for("3 peers on every peer", lambda: all(len(cluster(p)["peers"]) == 3 for p in peers))
    ids = {p.name: peer_id(p) for p in peers}
    check(len(set(ids.values())) == 3, f"peer ids are not distinct: {ids}")
    for p in peers:
        st = cluster(p)
        check(is_int(st["peer_id"]) and all(re.fullmatch(r"\d+", k) for k in st["peers"]), f"{p.name}: peer ids must be JSON integers: {st}")
        check(st["raft_info"]["leader"] in ids.values(), f"{p.name}: leader {st['raft_info']['leader']} is not a known peer")

    step("service endpoints and authentication")
    for path in ("/healthz", "/livez", "/readyz"):
        call(a, "GET", path, key=None)
    version = call(a, "GET", "/", key=None).json
    check(isinstance(version.get("version"), str) and version.get("title"), f"GET / answered {version}")
    call(a, "GET", "/cluster", key=None, expect=401)
    call(a, "GET", "/cluster", key="wrong-key", expect=401)
    call(a, "GET", "/collections", key=None, expect=401)
    call(a, "GET", "/cluster", key=RO_KEY)
    call(a, "GET", "/cluster", key=RW_KEY, bearer=True)
    call(a, "GET", "/cluster", key=RO_KEY, bearer=True)
    call(a, "GET", "/no/such/endpoint", expect=404)

    step("collections")
    c1_body = {
        "vectors": {"size": 4, "distance": "Cosine"},
        "shard_number": 3,
        "replication_factor": 1,
        "write_consistency_factor": 1,
        "on_disk_payload": True,
        "hnsw_config": {"m": 16, "ef_construct": 64},
        "optimizers_config": {"indexing_threshold": 0},
    }
    call(a, "PUT", "/collections/c1", c1_body, key=RO_KEY, expect=403)
    check(call(a, "PUT", "/collections/c1", c1_body).result is True, "create c1 must answer true")
    call(b, "PUT", "/collections/c1", c1_body, expect=(400, 409))
    c2_body = {
        "vectors": {"img": {"size": 8, "distance": "Dot"}, "txt": {"size": 4, "distance": "Euclid", "on_disk": True}},
        "shard_number": 2,
        "replication_factor": 2,
        "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}},
    }
    check(call(b, "PUT", "/collections/c2", c2_body).result is True, "create c2 must answer true")
    call(a, "PUT", "/collections/c3", raw=b'{"vectors": {"size": 4, "distance": ', invalid=True, expect=400)
    call(a, "PUT", "/collections/c3", {"vectors": {"size": "four", "distance": "Cosine"}}, invalid=True, expect=(400, 422))
    call(a, "PUT", "/collections/c3", {"vectors": {"size": 0, "distance": "Cosine"}}, invalid=True, expect=400)
    call(a, "PUT", "/collections/c3", {"vectors": {"size": 4, "distance": "Hamming"}}, invalid=True, expect=400)
    call(a, "PUT", "/collections/c3", {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 0}, invalid=True, expect=422)
    call(a, "PUT", "/collections/c3", {"vectors": {"size": 4, "distance": "Dot"}, "hnsw_config": {"ef_construct": 1}}, invalid=True, expect=422)
    names = {x["name"] for x in call(c, "GET", "/collections", key=RO_KEY).result["collections"]}
    check({"c1", "c2"} <= names and "c3" not in names, f"GET /collections lists {names}")
    info = call(c, "GET", "/collections/c1").result
    check(info["status"] == "green", f"c1 status {info['status']}")
    params = info["config"]["params"]
    check(params["shard_number"] == 3 and (params["vectors"]["size"], params["vectors"]["distance"]) == (4, "Cosine"), f"c1 params echo: {params}")
    check(info["config"]["hnsw_config"]["ef_construct"] == 64, "c1 hnsw_config.ef_construct echo")
    info2 = call(a, "GET", "/collections/c2", key=RO_KEY).result
    check(info2["config"]["params"]["replication_factor"] == 2 and set(info2["config"]["params"]["vectors"]) == {"img", "txt"}, f"c2 params echo: {info2['config']['params']}")
    check((info2["config"].get("quantization_config") or {}).get("scalar", {}).get("type") == "int8", "c2 quantization_config echo")
    call(a, "GET", "/collections/missing", expect=404)
    check(call(a, "GET", "/collections/c1/exists").result == {"exists": True}, "c1 exists")
    check(call(a, "GET", "/collections/missing/exists").result == {"exists": False}, "missing does not exist")
    patch = {"optimizers_config": {"indexing_threshold": 20000}, "hnsw_config": {"m": 32}}
    call(b, "PATCH", "/collections/c1", patch, key=RO_KEY, expect=403)
    check(call(b, "PATCH", "/collections/c1", patch).result is True, "PATCH c1 must answer true")
    cfg = wait_for("PATCH visible on c", lambda: (lambda r: r if r["optimizer_config"]["indexing_threshold"] == 20000 else None)(call(c, "GET", "/collections/c1").result["config"]))
    check(cfg["hnsw_config"]["m"] == 32, f"PATCH hnsw_config.m not stored: {cfg['hnsw_config']}")
    patch2 = {"params": {"write_consistency_factor": 1, "on_disk_payload": False}, "vectors": {"txt": {"on_disk": False, "hnsw_config": {"m": 8}}},
              "quantization_config": "Disabled"}
    check(call(a, "PATCH", "/collections/c2", patch2).result is True, "PATCH c2 must answer true")
    info2 = wait_for("PATCH of c2 visible on b", lambda: (lambda r: r if r["config"]["params"]["on_disk_payload"] is False else None)(call(b, "GET", "/collections/c2").result))
    txt = info2["config"]["params"]["vectors"]["txt"]
    check(txt.get("on_disk") is False and (txt.get("hnsw_config") or {}).get("m") == 8, f"PATCH of vector txt not stored: {txt}")
    check(info2["config"].get("quantization_config") is None, f"quantization_config Disabled must read back as null: {info2['config'].get('quantization_config')}")
    check(info2["status"] == "green" and is_int(info2["segments_count"]), f"c2 status {info2['status']}, segments_count {info2['segments_count']}")
    call(a, "PATCH", "/collections/c2", {"params": {"replication_factor": 0}}, invalid=True, expect=422)
    call(a, "PATCH", "/collections/c2", {"vectors": {"nope": {"on_disk": True}}}, expect=400)
    call(a, "PATCH", "/collections/missing", {"params": {"on_disk_payload": True}}, expect=404)

    step("points")
    batch = {"points": points(1000)}
    call(b, "PUT", "/collections/c1/points", batch, key=RO_KEY, query={"wait": "true"}, expect=403)
    t0 = time.monotonic()
    res = call(b, "PUT", "/collections/c1/points", batch, query={"wait": "true"}).result
    upsert_s = time.monotonic() - t0
    check(res["status"] == "completed", f"upsert with wait=true answered {res}")
    check(upsert_s < 5, f"1000-point upsert took {upsert_s:.2f}s")
    call(b, "PUT", "/collections/c1/points", {"points": [{"id": 5000, "vector": [1.0, 2.0]}]}, query={"wait": "true"}, expect=(400, 422))
    c2_batch = {"batch": {"ids": list(range(100)), "vectors": {"img": [[0.5] * 8] * 100, "txt": [[0.25] * 4] * 100}, "payloads": [{"k": i} for i in range(100)]}}
    check(call(c, "PUT", "/collections/c2/points", c2_batch, query={"wait": "true"}).result["status"] == "completed", "c2 batch upsert")
    for p in peers:
        check(count(p, "c1") == 1000, f"count of c1 on {p.name} is not 1000")
    check(count(a, "c1", key=RO_KEY) == 1000, "read-only key may count")
    check(count(a, "c2") == 100, "count of c2 is not 100")
    filtered = call(a, "POST", "/collections/c1/points/count", {"exact": True, "filter": {"must": [{"key": "parity", "match": {"value": "even"}}]}}).result["count"]
    check(filtered == 500, f"filtered count is {filtered}, not 500")
    page = call(c, "POST", "/collections/c1/points/scroll", {"limit": 10, "with_payload": True, "with_vector": False}, key=RO_KEY).result
    check([p["id"] for p in page["points"]] == list(range(10)) and page["next_page_offset"] == 10, f"scroll page: {[p['id'] for p in page['points']]} next {page['next_page_offset']}")
    page2 = call(c, "POST", "/collections/c1/points/scroll", {"limit": 5, "offset": 10, "with_vector": True}).result
    check([p["id"] for p in page2["points"]] == list(range(10, 15)) and page2["points"][0]["vector"] == batch["points"][10]["vector"], "scroll from offset 10 with vectors")
    got = call(a, "POST", "/collections/c1/points", {"ids": [1, 2, 999], "with_payload": True}, key=RO_KEY).result
    check(sorted(p["id"] for p in got) == [1, 2, 999] and all(p["payload"]["n"] == p["id"] for p in got), f"get points: {got}")

    step("shard layout")
    layout, transfers = replicas(a, "c1")
    check(sorted(layout) == [0, 1, 2] and all(len(r) == 1 for r in layout.values()) and not transfers, f"c1 layout {layout}")
    local_total = 0
    for p in peers:
        info = call(p, "GET", "/collections/c1/cluster").result
        check(info["peer_id"] == ids[p.name] and info["shard_count"] == 3, f"{p.name}: collection cluster info {info}")
        local_total += sum(s["points_count"] for s in info["local_shards"])
    check(local_total == 1000, f"local shards hold {local_total} points, not 1000")
    by_id = {v: k for k, v in ids.items()}
    peer_of = {ids[p.name]: p for p in peers}

    step("move a shard: Partial, then Active, and the points stay")
    shard = 0
    src = next(iter(layout[shard]))
    dst = next(i for i in ids.values() if i != src)
    via = next(p for p in peers if ids[p.name] not in (src, dst))
    move = {"move_shard": {"shard_id": shard, "from_peer_id": src, "to_peer_id": dst, "method": "stream_records"}}
    call(via, "POST", "/collections/c1/cluster", move, key=RO_KEY, expect=403)
    t0 = time.monotonic()
    check(call(via, "POST", "/collections/c1/cluster", move).result is True, "move_shard must answer true")
    seen, took = watch_transfer(peer_of[dst], "c1", shard, dst, lambda lay, tr: not tr and set(lay[shard]) == {dst} and lay[shard][dst] == "Active")
    took = time.monotonic() - t0
    check("Partial" in seen and seen[-1] == "Active", f"target replica states during the move: {seen}")
    if STANDIN:
        check(took >= 0.5, f"the move took only {took:.2f}s; transfers must take real time")
    print(f"conformance:   move of shard {shard} {by_id[src]}->{by_id[dst]}: states {seen}, {took:.2f}s")
    for p in peers:
        check(count(p, "c1") == 1000, f"after the move, count of c1 on {p.name} is not 1000")

    step("replicate a shard, drop the replica, refuse dropping the last one")
    layout, _ = replicas(a, "c1")
    shard = 1
    src = next(iter(layout[shard]))
    dst = next(i for i in ids.values() if i != src)
    rep = {"replicate_shard": {"shard_id": shard, "from_peer_id": src, "to_peer_id": dst}}
    check(call(a, "POST", "/collections/c1/cluster", rep).result is True, "replicate_shard must answer true")
    seen, took = watch_transfer(peer_of[dst], "c1", shard, dst, lambda lay, tr: not tr and lay[shard].get(dst) == "Active" and lay[shard].get(src) == "Active")
    check("Partial" in seen and seen[-1] == "Active", f"target replica states during replication: {seen}")
    check(count(c, "c1") == 1000, "count after replication")
    call(b, "POST", "/collections/c1/cluster", {"drop_replica": {"shard_id": shard, "peer_id": dst}}, key=RO_KEY, expect=403)
    check(call(b, "POST", "/collections/c1/cluster", {"drop_replica": {"shard_id": shard, "peer_id": dst}}).result is True, "drop_replica must answer true")
    wait_for("replica dropped", lambda: settled(a, "c1", {shard: {src}}))
    last = call(b, "POST", "/collections/c1/cluster", {"drop_replica": {"shard_id": shard, "peer_id": src}}, expect=(400, 422))
    check(last.error, "refusal to drop the last replica must carry an error message")
    check(count(a, "c1") == 1000, "count after drop_replica")

    step("abort a transfer: the source stays intact")
    layout, _ = replicas(a, "c1")
    shard = 2
    src = next(iter(layout[shard]))
    dst = next(i for i in ids.values() if i != src)
    check(call(c, "POST", "/collections/c1/cluster", {"replicate_shard": {"shard_id": shard, "from_peer_id": src, "to_peer_id": dst}}).result is True, "replicate for abort")
    abort = call(c, "POST", "/collections/c1/cluster", {"abort_transfer": {"shard_id": shard, "from_peer_id": src, "to_peer_id": dst}}, expect=None)
    if abort.status == 200:
        wait_for("aborted transfer gone", lambda: settled(a, "c1", {shard: {src}}))
    else:
        # Only a real, fast Qdrant may finish the transfer before the abort arrives.
        check(not STANDIN, f"abort_transfer answered {abort.status}: {abort.data[:300]!r}")
        wait_for("replica active", lambda: settled(a, "c1", {shard: {src, dst}}))
        call(c, "POST", "/collections/c1/cluster", {"drop_replica": {"shard_id": shard, "peer_id": dst}})
        wait_for("replica dropped", lambda: settled(a, "c1", {shard: {src}}))
    check(count(b, "c1") == 1000, "count after abort")

    step("peer removal: refused while the peer holds shards, accepted after moving them off")
    victim = ids["c"]
    call(a, "DELETE", f"/cluster/peer/{victim}", key=RO_KEY, expect=403)
    refused = call(a, "DELETE", f"/cluster/peer/{victim}", expect=400)
    check(str(victim) in refused.error, f"refusal must name the peer: {refused.error}")
    if STANDIN:
        check("shards" in refused.error and ("c1" in refused.error or "c2" in refused.error), f"refusal must name the shards: {refused.error}")
    others = [ids["a"], ids["b"]]
    wanted = {}
    for coll in ("c1", "c2"):
        layout, _ = replicas(a, coll)
        want = {}
        for s, reps in layout.items():
            holders = set(reps)
            if victim in holders:
                target = next(o for o in others if o not in holders)
                call(b, "POST", f"/collections/{coll}/cluster", {"move_shard": {"shard_id": s, "from_peer_id": victim, "to_peer_id": target}})
                holders = holders - {victim} | {target}
            want[s] = holders
        wanted[coll] = want
    for coll, want in wanted.items():
        wait_for(f"shards of {coll} moved off c", lambda coll=coll, want=want: settled(a, coll, want), timeout=60)
    check(call(a, "DELETE", f"/cluster/peer/{victim}").result is True, "removal of an empty peer must answer true")
    wait_for("c gone from the cluster", lambda: all(str(victim) not in cluster(p)["peers"] for p in (a, b)))
    c.stop()
    peers.remove(c)
    check(count(a, "c1") == 1000 and count(b, "c2") == 100, "points survive moving shards off a removed peer")

    step("snapshots")
    check(call(a, "PUT", "/collections/snap", {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1, "replication_factor": 1}).result is True, "create snap")
    layout, _ = replicas(a, "snap")
    holder = peer_of[next(iter(layout[0]))]
    call(holder, "PUT", "/collections/snap/points", {"points": points(50)}, query={"wait": "true"})
    call(holder, "POST", "/collections/snap/snapshots", key=RO_KEY, expect=403)
    desc = call(holder, "POST", "/collections/snap/snapshots", query={"wait": "true"}).result
    check(desc["size"] > 0 and re.fullmatch(r"[0-9a-f]{64}", desc.get("checksum") or ""), f"snapshot description {desc}")
    listed = call(holder, "GET", "/collections/snap/snapshots", key=RO_KEY).result
    check(desc["name"] in [s["name"] for s in listed], f"snapshot {desc['name']} not listed: {listed}")
    blob = call(holder, "GET", f"/collections/snap/snapshots/{desc['name']}")
    check(len(blob.data) == desc["size"] and hashlib.sha256(blob.data).hexdigest() == desc["checksum"], "downloaded snapshot matches size and checksum")
    call(holder, "PUT", "/collections/snap/points", {"points": points(20, start=50)}, query={"wait": "true"})
    check(count(holder, "snap") == 70, "70 points before recovery")
    location = (holder.dir / "snapshots" / "snap" / desc["name"]).as_uri()
    call(holder, "PUT", "/collections/snap/snapshots/recover", {"location": location, "priority": "snapshot"}, key=RO_KEY, expect=403)
    call(holder, "PUT", "/collections/snap/snapshots/recover", {"location": location, "priority": "snapshot", "checksum": "0" * 64}, expect=(400, 422, 500))
    check(call(holder, "PUT", "/collections/snap/snapshots/recover", {"location": location, "priority": "snapshot", "checksum": desc["checksum"]}, query={"wait": "true"}).result is True, "recover must answer true")
    check(count(holder, "snap") == 50, "recovery from the snapshot restores its 50 points")
    call(holder, "PUT", "/collections/snap/points", {"points": points(20, start=50)}, query={"wait": "true"})
    body, ctype = multipart("snapshot", desc["name"], blob.data)
    call(holder, "POST", "/collections/snap/snapshots/upload", raw=body, content_type=ctype, key=RO_KEY, query={"priority": "snapshot"}, expect=403)
    check(call(holder, "POST", "/collections/snap/snapshots/upload", raw=body, content_type=ctype, query={"priority": "snapshot", "wait": "true"}).result is True, "upload must answer true")
    check(count(holder, "snap") == 50, "recovery from the uploaded snapshot restores its 50 points")
    call(holder, "DELETE", f"/collections/snap/snapshots/{desc['name']}", key=RO_KEY, expect=403)
    check(call(holder, "DELETE", f"/collections/snap/snapshots/{desc['name']}", query={"wait": "true"}).result is True, "delete snapshot")
    call(holder, "GET", f"/collections/snap/snapshots/{desc['name']}", expect=404)
    check(desc["name"] not in [s["name"] for s in call(holder, "GET", "/collections/snap/snapshots").result], "deleted snapshot still listed")
    call(holder, "DELETE", f"/collections/snap/snapshots/{desc['name']}", expect=404)
    call(holder, "POST", "/collections/missing/snapshots", expect=404)
    call(holder, "GET", "/collections/missing/snapshots", expect=404)
    call(holder, "POST", "/collections/snap/snapshots", query={"wait": "false"}, expect=202)
    late = wait_for("snapshot taken with wait=false", lambda: call(holder, "GET", "/collections/snap/snapshots").result)[0]
    call(holder, "DELETE", f"/collections/snap/snapshots/{late['name']}", query={"wait": "false"}, expect=202)
    wait_for("snapshot deleted with wait=false", lambda: not call(holder, "GET", "/collections/snap/snapshots").result)
    call(holder, "PUT", "/collections/snap/snapshots/recover", {"location": location, "priority": "snapshot", "checksum": desc["checksum"]}, query={"wait": "false"}, expect=202)
    call(a, "DELETE", "/collections/snap", key=RO_KEY, expect=403)
    check(call(a, "DELETE", "/collections/snap").result is True, "delete snap")

    step("shard snapshots: each through the peer that holds the shard")
    check(call(a, "PUT", "/collections/ssnap", {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 2, "replication_factor": 1}).result is True, "create ssnap")
    call(a, "PUT", "/collections/ssnap/points", {"points": points(60)}, query={"wait": "true"})
    layout, _ = replicas(a, "ssnap")
    for sid in sorted(layout):
        shard_snapshots(peer_of[next(iter(layout[sid]))], next(p for p in peers if ids[p.name] not in layout[sid]), "ssnap", sid)
    call(a, "GET", "/collections/ssnap/shards/7/snapshots", expect=404)
    call(a, "GET", "/collections/missing/shards/0/snapshots", expect=404)
    held = sum(local_points(peer_of[next(iter(layout[sid]))], "ssnap", sid) for sid in layout)
    check(count(a, "ssnap") == held, f"after the shard recoveries ssnap counts {count(a, 'ssnap')} points, its shards hold {held}")
    check(call(a, "DELETE", "/collections/ssnap").result is True, "delete ssnap")

    step("restart with the same storage keeps peer id and points")
    b.stop()
    b.start(bootstrap=a)
    b.wait_ready()
    check(peer_id(b) == ids["b"], f"restarted b has peer id {peer_id(b)}, not {ids['b']}")
    wait_for("b sees both peers", lambda: len(cluster(b)["peers"]) == 2)
    check(count(b, "c1") == 1000 and count(b, "c2") == 100, "points survive a restart")

    step("new storage gives a new peer id; peer ids stay exact integers")
    d = Peer("d", root)
    peers.append(d)
    d.start(bootstrap=a)
    d.wait_ready()
    d_id = peer_id(d)
    check(d_id not in ids.values(), f"new peer reused an id: {d_id}")
    wait_for("d listed on a", lambda: str(d_id) in cluster(a)["peers"])
    all_ids = list(ids.values()) + [d_id]
    check(all(is_int(i) for i in all_ids), "peer ids must be JSON integers")
    check(any(i > TWO_53 for i in all_ids), f"no peer id above 2^53 among {all_ids}")
    if STANDIN:
        check(all(i > TWO_53 for i in all_ids), f"stand-in peer ids must exceed 2^53: {all_ids}")
    # The id d reports for itself, the ids a lists, and the ids the moves above sent as JSON
    # numbers and read back from /collections/*/cluster must agree exactly.
    check({int(k) for k in cluster(a)["peers"]} == {ids["a"], ids["b"], d_id}, "peer ids round-trip exactly between peers")

    step("forced removal of a peer that holds a replica")
    layout, _ = replicas(a, "c1")
    src = next(iter(layout[0]))
    call(a, "POST", "/collections/c1/cluster", {"replicate_shard": {"shard_id": 0, "from_peer_id": src, "to_peer_id": d_id}})
    wait_for("replica on d", lambda: settled(a, "c1", {0: {src, d_id}}), timeout=60)
    call(a, "DELETE", f"/cluster/peer/{d_id}", expect=400)
    call(a, "DELETE", f"/cluster/peer/{d_id}", query={"force": "false"}, expect=400)
    check(call(a, "DELETE", f"/cluster/peer/{d_id}", query={"force": "true"}).result is True, "forced removal must answer true")
    wait_for("d gone", lambda: str(d_id) not in cluster(a)["peers"] and settled(a, "c1", {0: {src}}))
    check(count(a, "c1") == 1000, "points survive the forced removal of a peer holding a second replica")
    d.stop()
    peers.remove(d)

    step("delete a collection")
    check(call(b, "DELETE", "/collections/c2").result is True, "delete c2")
    call(a, "GET", "/collections/c2", expect=404)
    check(call(a, "DELETE", "/collections/c2").result is False, "deleting a missing collection must answer false")

    step("a peer still answers /cluster while the leader is down")
    leader = cluster(a)["raft_info"]["leader"]
    down = a if leader == ids["a"] else b
    up = b if down is a else a
    down.stop(signal.SIGKILL)
    peers.remove(down)
    st = call(up, "GET", "/cluster").result
    check(st["peer_id"] == ids[up.name], "the surviving peer reports its own id")


def main():
    missing = [d for d in DOCUMENTS if not (OPENAPI_DIR / d).is_file()]
    if missing:
        print(f"conformance: FAIL: OpenAPI document(s) {', '.join(missing)} not found in {OPENAPI_DIR} (set QDRANT_OPENAPI_DIR)", file=sys.stderr)
        return 2
    SPECS.extend(Spec(OPENAPI_DIR / d) for d in DOCUMENTS)
    target = f"real Qdrant binary {QDRANT_BIN}" if QDRANT_BIN else "the stand-in"
    print(f"conformance: checking {target} against {', '.join(DOCUMENTS)} from {OPENAPI_DIR}")
    # SIGTERM (e.g. from a test runner's timeout) must still run the cleanup in run().
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    root = tempfile.mkdtemp(prefix="qdrant-conformance-")
    failure = None
    try:
        run(root)
    except Failure as e:
        failure = str(e)
    elapsed = time.monotonic() - t0
    note = f" ({Stats.deviations} plain-text 401 answers of the auth layer, as Qdrant gives them)" if Stats.deviations else ""
    print(f"conformance: {Stats.requests} requests checked against {len(SPECS)} OpenAPI documents, {len(Stats.violations)} violations{note}, {elapsed:.1f}s")
    if failure:
        print(f"conformance: FAIL: {failure}\nconformance: peer logs are in {root}", file=sys.stderr)
        return 1
    if Stats.violations:
        print(f"conformance: FAIL: {len(Stats.violations)} schema violations (listed above); peer logs are in {root}", file=sys.stderr)
        return 1
    shutil.rmtree(root, ignore_errors=True)
    print("conformance: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
