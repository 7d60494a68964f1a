#!/usr/bin/env bash
# Least privilege. What the API server grants the operator's ServiceAccount
# (`kubectl auth can-i --list`) is exactly the rules in deploy/base/rbac.yaml, plus what every
# authenticated user has (self-reviews, discovery); each rule there has a comment saying why;
# and it cannot touch other Leases nor Pods outside its namespace.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
SA=system:serviceaccount:$OPERATOR_NS:qdrant-operator
RBAC=$REPO_ROOT/deploy/base/rbac.yaml

# Every rule carries a comment directly above it.
python3 - "$RBAC" <<'PY' || fail "a rule in deploy/base/rbac.yaml has no comment saying why"
import sys
lines = open(sys.argv[1]).read().splitlines()
bad = [i + 1 for i, l in enumerate(lines) if l.strip().startswith("- apiGroups:") and not lines[i - 1].strip().startswith("#")]
if bad:
    print(f"  rules without a comment at lines {bad}")
    sys.exit(1)
PY

# Granted == documented, in the operator namespace (ClusterRole + Role) and in another one
# (ClusterRole only).
granted=$(mktemp)
trap 'rm -f "$granted"' EXIT
for ns in "$OPERATOR_NS" "$TEST_NS"; do
  kc auth can-i --list --as="$SA" -n "$ns" >"$granted"
  python3 - "$RBAC" "$ns" "$OPERATOR_NS" "$granted" <<'PY' || fail "grants in namespace $ns differ from deploy/base/rbac.yaml"
import re, sys, yaml
rbac, ns, op_ns, granted = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
docs = [d for d in yaml.safe_load_all(open(rbac)) if d]
# kubectl merges rules on the same resource (e.g. pods from the ClusterRole and the Role), so
# both sides are compared as (resource, names) -> the union of verbs.
def merged(rules):
    out = {}
    for res, names, verbs in rules:
        out.setdefault((res, names), set()).update(verbs)
    return {(res, names, tuple(sorted(v))) for (res, names), v in out.items()}
want = set()
for d in docs:
    if d["kind"] == "ClusterRole" or (d["kind"] == "Role" and ns == op_ns):
        for r in d["rules"]:
            for g in r["apiGroups"]:
                for res in r["resources"]:
                    name = res if not g else (f"{res.split('/')[0]}.{g}" + (f"/{res.split('/')[1]}" if "/" in res else ""))
                    want.add((name, tuple(sorted(r.get("resourceNames", []))), tuple(sorted(r["verbs"]))))
everyone = {"selfsubjectreviews.authentication.k8s.io", "selfsubjectaccessreviews.authorization.k8s.io",
            "selfsubjectrulesreviews.authorization.k8s.io"}
got = set()
for line in open(granted).read().splitlines()[1:]:
    if line.startswith(" "):
        continue  # non-resource URLs (discovery, health): granted to every authenticated user
    m = re.match(r"^(\S+)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$", line)
    res, names, verbs = m.group(1), m.group(3).split(), m.group(4).split()
    if res in everyone:
        continue
    got.add((res, tuple(sorted(names)), tuple(sorted(verbs))))
want, got = merged(want), merged(got)
if got != want:
    print("  granted but not documented:", sorted(got - want))
    print("  documented but not granted:", sorted(want - got))
    sys.exit(1)
print(f"  {ns}: {len(got)} grants, exactly as documented")
PY
done

can() { kc auth can-i "$@" --as="$SA" >/dev/null 2>&1; }
can update lease/qdrant-operator -n "$OPERATOR_NS" || fail "cannot update its own Lease"
can create leases -n "$OPERATOR_NS" || fail "cannot create its Lease"
can patch pods -n "$OPERATOR_NS" || fail "cannot annotate its own Pods"
can update lease/someone-else -n "$OPERATOR_NS" && fail "can update another Lease"
can delete lease/qdrant-operator -n "$OPERATOR_NS" && fail "can delete its Lease"
can delete lease/someone-else -n "$OPERATOR_NS" && fail "can delete another Lease"
can update lease/qdrant-operator -n "$TEST_NS" && fail "can update a Lease outside its namespace"
can patch pods -n "$TEST_NS" && fail "can patch Pods outside its namespace"
can delete pods -n "$OPERATOR_NS" && fail "can delete Pods"
can delete pods -n "$TEST_NS" && fail "can delete Qdrant Pods (a rolling restart evicts them)"
can create pods --subresource=eviction -n "$TEST_NS" || fail "cannot evict Qdrant Pods for a rolling restart"
can update qdrantclusters -n "$TEST_NS" && fail "can change QdrantCluster specs"
can delete statefulsets -n "$TEST_NS" || fail "cannot re-create a StatefulSet (without its Pods) for larger volumes"
can delete persistentvolumeclaims -n "$TEST_NS" || fail "cannot delete a drained peer's volume"
can patch persistentvolumeclaims -n "$TEST_NS" || fail "cannot expand volumes"
can '*' '*' && fail "has a wildcard grant"
info "grants match deploy/base/rbac.yaml; no other Lease, no Pods elsewhere"
