"""Reading the API server's audit log (JSON lines), shared by the fencing check and the
benchmarks."""
import json
from datetime import datetime

OPERATOR_SA = "system:serviceaccount:qdrant-operator:qdrant-operator"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def events(path):
    """Every completed request, flattened, in the order received."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            if e.get("stage") != "ResponseComplete":
                continue
            ref = e.get("objectRef", {})
            user = e.get("user", {})
            out.append({
                "recv": ts(e["requestReceivedTimestamp"]),
                "done": ts(e["stageTimestamp"]),
                "verb": e.get("verb"),
                "group": ref.get("apiGroup", ""),
                "resource": ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else ""),
                "name": ref.get("name", ""),
                "ns": ref.get("namespace", ""),
                "code": e.get("responseStatus", {}).get("code", 0),
                "user": user.get("username", ""),
                # The Pod a bound ServiceAccount token belongs to.
                "pod": (user.get("extra", {}).get("authentication.kubernetes.io/pod-name") or [""])[0],
                # Lease writes are logged with their bodies (see the audit policy in up.sh).
                "holder": ((e.get("requestObject") or {}).get("spec") or {}).get("holderIdentity"),
            })
    out.sort(key=lambda e: e["recv"])
    return out


def ok(e):
    return 200 <= e["code"] < 300


def is_operator_lease(e):
    return (e["group"] == "coordination.k8s.io" and e["resource"] == "leases"
            and e["name"] == "qdrant-operator" and e["ns"] == "qdrant-operator")


def acting_write(e, attempts=False):
    """A write by the operator that only a leader makes: anything but the election itself
    (Lease writes) and Events (every replica reports what it saw). Successful ones only,
    unless `attempts`: for fencing, a refused write still shows who tried to act."""
    return (e["user"] == OPERATOR_SA and e["verb"] in WRITES and (attempts or ok(e))
            and not is_operator_lease(e) and e["resource"] != "events")
