"""One step of a round of the backup benchmark (e2e/bench/backup.sh), timed, appended to
OUT.jsonl as one JSON line.

    backup_timing.py backup OUT ROUND NAME                      prints the backupId
    backup_timing.py restore OUT ROUND NAME BACKUP_ID BACKUP_NAME
    backup_timing.py baseline OUT ROUND POD_URL...

backup: creates the QdrantCollectionBackup NAME with backupNow, then polls it every 50 ms;
wall time from just before the create request to the poll that shows status.backups[0]
Succeeded (Failed, or no end in BENCH_TIMEOUT seconds, fails). Also records the status'
durationSeconds, sizeBytes and pieces. restore: likewise for a QdrantCollectionRestore of
BACKUP_ID (with the S3 settings of BACKUP_NAME) until status.phase is Completed, and the
seconds of its status message. baseline: the backup's work by hand, one request after the
other, from here: every Pod's GET /collections/c/cluster, then for each shard, through the
Pod that holds it, a snapshot (wait=true), its download, its upload to S3 (e2e/s3/s3cli.py),
its deletion; then a small manifest.

The Kubernetes API is reached through `kubectl proxy` at BENCH_API, so that what is timed is
the operator, not kubectl starting up. Reads TEST_NS, BENCH_CLUSTER, BENCH_BUCKET,
BENCH_SECRET, S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION and QDRANT_KEY.
"""
import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "s3"))
import s3cli  # noqa: E402

COLLECTION, SHARDS, POINTS = "c", 6, 1000
POLL = 0.05
GROUP = "/apis/qdrant.operator/v1alpha1"
env = os.environ.get


class Http:
    """One keep-alive connection to a base URL; a broken connection is opened again once."""

    def __init__(self, base, headers=None):
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.headers = u.hostname, u.port, headers or {}
        self.conn = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {**self.headers, **({"content-type": "application/json"} if data else {})}
        for retry in (False, True):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if retry:
                    raise
        raise AssertionError("unreachable")

    def json(self, method, path, body=None, ok=(200, 201)):
        status, data = self.call(method, path, body)
        if status not in ok:
            sys.exit(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data)


def record(out, **fields):
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps(fields) + "\n")


def resource(kind, plural, name, spec):
    return (f"{GROUP}/namespaces/{env('TEST_NS', 'default')}/{plural}",
            {"apiVersion": "qdrant.operator/v1alpha1", "kind": kind,
             "metadata": {"name": name, "labels": {"bench": "backup"}}, "spec": spec})


def create_and_wait(plural_path, obj, ended):
    """Creates obj, then polls it every POLL seconds until ended(obj) is true (its status
    ended well) or raises SystemExit (it failed, or BENCH_TIMEOUT passed). Returns (wall
    seconds from just before the create to the answer of the poll that saw the end, the
    object then, how many polls)."""
    api = Http(env("BENCH_API"))
    timeout = float(env("BENCH_TIMEOUT", "120"))
    path = f"{plural_path}/{obj['metadata']['name']}"
    t0 = time.monotonic()
    api.json("POST", plural_path, obj)
    polls = 0
    while True:
        t = time.monotonic()
        got = api.json("GET", path)
        seen = time.monotonic()
        polls += 1
        if ended(got):
            return seen - t0, got, polls
        if seen - t0 > timeout:
            sys.exit(f"{path}: no end after {timeout:.0f} s; status: {json.dumps(got.get('status'))}")
        time.sleep(max(0.0, POLL - (time.monotonic() - t)))


def backup(out, rnd, name):
    plural, obj = resource("QdrantCollectionBackup", "qdrantcollectionbackups", name, {
        "cluster": env("BENCH_CLUSTER"), "collectionName": COLLECTION,
        "snapshots": {"s3EndpointURL": env("S3_ENDPOINT"), "s3CredentialsSecretName": env("BENCH_SECRET"),
                      "bucketName": env("BENCH_BUCKET"), "region": env("S3_REGION") or "us-east-1", "backupNow": True}})

    def ended(b):
        r = (b.get("status") or {}).get("backups") or [{}]
        if r[0].get("state") == "Failed":
            sys.exit(f"backup {name} failed: {r[0].get('reason')}: {r[0].get('message')}")
        return r[0].get("state") == "Succeeded"

    wall, got, polls = create_and_wait(plural, obj, ended)
    b = got["status"]["backups"][0]
    if (b.get("pieces"), b.get("pointsCount")) != (SHARDS, POINTS):
        sys.exit(f"backup {name}: {b.get('pieces')} pieces and {b.get('pointsCount')} points, not {SHARDS} and {POINTS}")
    record(out, kind="backup", round=rnd, wall=wall, status_seconds=b.get("durationSeconds"),
           bytes=b.get("sizeBytes"), pieces=b["pieces"], backup_id=b["backupId"], polls=polls)
    print(f"[bench] backup {rnd}: {wall:.2f} s (status {b.get('durationSeconds')} s, {b.get('sizeBytes')} bytes)", file=sys.stderr)
    print(b["backupId"])


def restore(out, rnd, name, backup_id, backup_name):
    plural, obj = resource("QdrantCollectionRestore", "qdrantcollectionrestores", name, {
        "collection": COLLECTION, "cluster": env("BENCH_CLUSTER"), "backupId": backup_id, "backup": backup_name})

    def ended(r):
        s = r.get("status") or {}
        if s.get("phase") == "Failed":
            sys.exit(f"restore {name} failed: {s.get('reason')}: {s.get('error')}")
        return s.get("phase") == "Completed"

    wall, got, polls = create_and_wait(plural, obj, ended)
    s = got["status"]
    if s.get("pointsCount") != POINTS:
        sys.exit(f"restore {name}: {s.get('pointsCount')} points in its status, not {POINTS}")
    m = re.search(r" in ([0-9.]+) s\b", s.get("message") or "")
    record(out, kind="restore", round=rnd, wall=wall, message_seconds=float(m.group(1)) if m else None,
           message=s.get("message"), polls=polls)
    print(f"[bench] restore {rnd}: {wall:.2f} s ({s.get('message')})", file=sys.stderr)


def baseline(out, rnd, urls):
    key = env("QDRANT_KEY", "")
    s3 = s3cli.S3(env("S3_ENDPOINT", ""), env("S3_ACCESS_KEY", ""), env("S3_SECRET_KEY", ""), env("S3_REGION") or "us-east-1")
    store, bucket = s3cli.Client(s3), env("BENCH_BUCKET")
    prefix = f"baseline/{env('BENCH_CLUSTER')}/{COLLECTION}/round-{rnd}/"
    t0 = time.monotonic()
    pods = [Http(u, {"api-key": key} if key else {}) for u in urls]
    holders = {}
    for pod in pods:
        info = pod.json("GET", f"/collections/{COLLECTION}/cluster")["result"]
        for s in info["local_shards"]:
            if s["state"] == "Active":
                holders.setdefault(s["shard_id"], (pod, info["peer_id"]))
    if sorted(holders) != list(range(SHARDS)):
        sys.exit(f"baseline: Active replicas of shards {sorted(holders)}, not of all {SHARDS}")
    pieces = []
    for sid, (pod, peer) in sorted(holders.items()):
        base = f"/collections/{COLLECTION}/shards/{sid}/snapshots"
        snap = pod.json("POST", f"{base}?wait=true")["result"]["name"]
        status, data = pod.call("GET", f"{base}/{snap}")
        if status != 200:
            sys.exit(f"baseline: download of {snap}: {status} {data[:300]!r}")
        piece = f"{prefix}shard-{sid}/peer-{peer}.snapshot"
        store.put(bucket, [(piece, data)])
        pod.json("DELETE", f"{base}/{snap}?wait=true")
        pieces.append({"key": piece, "shard": sid, "peerId": peer, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    store.put(bucket, [(f"{prefix}manifest.json", json.dumps({"pieces": pieces}).encode())])
    wall = time.monotonic() - t0
    s3.close()
    size = sum(p["size"] for p in pieces)
    record(out, kind="baseline", round=rnd, wall=wall, bytes=size, pieces=len(pieces))
    print(f"[bench] by hand {rnd}: {wall:.2f} s ({size} bytes)", file=sys.stderr)


def main(argv):
    steps = {"backup": (backup, 3), "restore": (restore, 5), "baseline": (baseline, None)}
    if not argv or argv[0] not in steps:
        sys.exit(__doc__)
    fn, arity = steps[argv[0]]
    args = argv[1:]
    if (arity is not None and len(args) != arity) or (arity is None and len(args) < 3):
        sys.exit(__doc__)
    if fn is baseline:
        baseline(args[0], int(args[1]), args[2:])
    else:
        fn(args[0], int(args[1]), *args[2:])


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (s3cli.S3Error, s3cli.NoAnswer) as e:
        sys.exit(f"baseline: {e}")
