"""Checks the Helm chart without a cluster, with the real helm and kubectl binaries.

1. `helm lint --strict` passes.
2. The default rendering (`helm template qdrant-operator --namespace qdrant-operator
   --include-crds`) and `kubectl kustomize deploy` hold the same objects, field for field,
   except Helm's standard labels (helm.sh/chart, app.kubernetes.io/{name,instance,version,
   managed-by}), and except the Namespace, which the chart renders only with
   namespace.create=true (then it must match deploy/'s too).
3. The chart's copies of the CRD and of the alert rules are their sources, byte for byte
   (`make chart-files` copies them), and the PrometheusRule's spec is the rules.
4. Other values render what they say (watch namespace, scheduling, monitoring off).
5. values.schema.json and the chart's own checks refuse bad values, naming the value.

Usage: HELM=... KUBECTL=... python3 e2e/helm/chart_test.py [-v]
"""

import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "qdrant-operator")
HELM = os.environ.get("HELM", "helm")
KUBECTL = os.environ.get("KUBECTL", "kubectl")
RELEASE = NAMESPACE = "qdrant-operator"
# The labels Helm charts conventionally add; deploy/ has no use for them.
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
               "app.kubernetes.io/version", "app.kubernetes.io/managed-by"}

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)


def helm_template(*values):
    p = run(HELM, "template", RELEASE, CHART, "--namespace", NAMESPACE, "--include-crds", *values)
    return p, [d for d in yaml.safe_load_all(p.stdout) if d] if p.returncode == 0 else []


def key(obj):
    m = obj["metadata"]
    return f'{obj["kind"]} {m.get("namespace", "-")}/{m["name"]}'


def by_key(objs):
    out = {}
    for o in objs:
        k = key(o)
        if k in out:
            check(False, f"{k} is rendered twice")
        out[k] = o
    return out


def strip_helm_labels(obj):
    """The object without Helm's standard labels, wherever labels are: its own and its Pod
    template's."""
    for meta in (obj.get("metadata"), obj.get("spec", {}).get("template", {}).get("metadata")):
        if meta and "labels" in meta:
            meta["labels"] = {k: v for k, v in meta["labels"].items() if k not in HELM_LABELS}
    return obj


def differences(a, b, path=""):
    """Every path at which a and b differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}.{k}: only in the chart: {b[k]!r}")
            elif k not in b:
                out.append(f"{path}.{k}: only in deploy/: {a[k]!r}")
            else:
                out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: deploy/ has {a!r}, the chart {b!r}"]


def compare(deploy, chart, what):
    """deploy and chart (dicts by key) hold the same objects, Helm's labels aside."""
    for k in sorted(set(deploy) | set(chart)):
        if k not in chart:
            check(False, f"{what}: {k} is in deploy/ but not rendered by the chart")
        elif k not in deploy:
            check(False, f"{what}: {k} is rendered by the chart but not in deploy/")
        else:
            diffs = differences(strip_helm_labels(deploy[k]), strip_helm_labels(chart[k]))
            check(not diffs, f"{what}: {k} is the same" + "".join(f"\n        {d}" for d in diffs))


def test_lint():
    p = run(HELM, "lint", "--strict", CHART)
    check(p.returncode == 0, "helm lint --strict passes" + ("" if p.returncode == 0 else "\n" + p.stdout + p.stderr))


def test_default_rendering():
    p = run(KUBECTL, "kustomize", os.path.join(ROOT, "deploy"))
    check(p.returncode == 0, "kubectl kustomize deploy renders" + ("" if p.returncode == 0 else ": " + p.stderr))
    deploy = by_key(d for d in yaml.safe_load_all(p.stdout) if d)
    namespace = deploy.pop(f"Namespace -/{NAMESPACE}", None)
    check(namespace is not None, "deploy/ has the Namespace")

    p, objs = helm_template()
    check(p.returncode == 0, "helm template with default values renders" + ("" if p.returncode == 0 else ": " + p.stderr))
    chart = by_key(objs)
    for o in objs:
        labels = o["metadata"].get("labels", {})
        if o["kind"] != "CustomResourceDefinition":
            check(labels.get("app.kubernetes.io/managed-by") == "Helm", f"{key(o)} carries Helm's labels")
    compare(deploy, chart, "default values")

    p, objs = helm_template("--set", "namespace.create=true")
    chart = by_key(objs)
    got = chart.get(f"Namespace -/{NAMESPACE}")
    check(got is not None, "namespace.create=true renders the Namespace")
    if got is not None and namespace is not None:
        compare({"the Namespace": namespace}, {"the Namespace": got}, "namespace.create=true")
    check(len(chart) == len(deploy) + 1, "namespace.create=true adds the Namespace and nothing else")


# The chart's copies and their sources (crds/ is generated from the Rust types).
COPIES = [("charts/qdrant-operator/crds/qdrant.operator_qdrantclusters.yaml", "crds/qdrant.operator_qdrantclusters.yaml"),
          ("charts/qdrant-operator/crds/qdrant.operator_qdrantcollections.yaml", "crds/qdrant.operator_qdrantcollections.yaml"),
          ("charts/qdrant-operator/crds/qdrant.operator_qdrantcollectionbackups.yaml", "crds/qdrant.operator_qdrantcollectionbackups.yaml"),
          ("charts/qdrant-operator/crds/qdrant.operator_qdrantcollectionrestores.yaml", "crds/qdrant.operator_qdrantcollectionrestores.yaml"),
          ("charts/qdrant-operator/crds/qdrant.operator_qdrantcollectiontemplates.yaml", "crds/qdrant.operator_qdrantcollectiontemplates.yaml"),
          ("charts/qdrant-operator/files/rules.yaml", "deploy/monitoring/rules.yaml"),
          ("charts/qdrant-operator/files/grafana-dashboard.json", "deploy/monitoring/grafana-dashboard.json")]


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def test_copies_are_the_source():
    for copy, source in COPIES:
        check(read(copy) == read(source), f"{copy} is {source} (else run `make chart-files`)")
    _, objs = helm_template()
    rules = [o for o in objs if o["kind"] == "PrometheusRule"]
    with open(os.path.join(ROOT, "deploy", "monitoring", "rules.yaml")) as f:
        source = yaml.safe_load(f)
    check(len(rules) == 1 and rules[0]["spec"] == source, "the PrometheusRule's spec is deploy/monitoring/rules.yaml")
    check(not find(objs, "ConfigMap"), "the dashboard's ConfigMap is off by default (deploy/ has none)")
    p, objs = helm_template("--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=monitoring")
    cms = find(objs, "ConfigMap", "qdrant-operator-dashboard")
    with open(os.path.join(ROOT, "deploy", "monitoring", "grafana-dashboard.json")) as f:
        dashboard = json.load(f)
    check(p.returncode == 0 and len(cms) == 1 and cms[0]["metadata"]["labels"].get("grafana_dashboard") == "1"
          and cms[0]["metadata"]["namespace"] == "monitoring"
          and json.loads(cms[0]["data"]["qdrant-operator.json"]) == dashboard,
          "grafanaDashboard.enabled renders the dashboard, unchanged, in a ConfigMap with the sidecar's label")


def find(objs, kind, name=None):
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def test_values():
    p, objs = helm_template(
        "--set", "watchNamespace=apps", "--set", "replicas=5", "--set", "image.tag=1.2.3",
        "--set", "image.repository=registry.example/qdrant-operator", "--set", "logFormat=plain",
        "--set", "nodeSelector.pool=ops", "--set", "tolerations[0].key=ops",
        "--set", "tolerations[0].operator=Exists", "--set", "leaderElection.leaseDuration=30s",
        "--set", "leaderElection.renewDeadline=20s", "--set", "leaderElection.retryPeriod=4s",
        "--set", "resources.limits.memory=256Mi", "--set", "podMonitor.enabled=false",
        "--set", "prometheusRule.enabled=false", "--set", "affinity.podAntiAffinity=null")
    check(p.returncode == 0, "helm template with other values renders" + ("" if p.returncode == 0 else ": " + p.stderr))
    if p.returncode != 0:
        return
    dep = find(objs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    check(dep["spec"]["replicas"] == 5, "replicas=5 sets the Deployment's replicas")
    check(c["image"] == "registry.example/qdrant-operator:1.2.3", "image.repository and image.tag set the image")
    check(env.get("WATCH_NAMESPACE") == "apps", "watchNamespace sets WATCH_NAMESPACE")
    check((env["LOG_FORMAT"], env["LEASE_DURATION"], env["RENEW_DEADLINE"], env["RETRY_PERIOD"]) == ("plain", "30s", "20s", "4s"),
          "logFormat and the lease timings set the environment")
    check(pod.get("nodeSelector") == {"pool": "ops"} and pod.get("tolerations") == [{"key": "ops", "operator": "Exists"}],
          "nodeSelector and tolerations reach the Pod")
    check("affinity" not in pod, "affinity.podAntiAffinity=null drops the default anti-affinity")
    check(c["resources"]["limits"]["memory"] == "256Mi" and c["resources"]["requests"]["cpu"] == "50m",
          "resources merge with the defaults")
    check(not find(objs, "PodMonitor") and not find(objs, "PrometheusRule"), "monitoring can be turned off")
    check(not find(objs, "ClusterRoleBinding"), "a watched namespace has no ClusterRoleBinding")
    rb = [o for o in find(objs, "RoleBinding", "qdrant-operator") if o["metadata"]["namespace"] == "apps"]
    check(len(rb) == 1 and rb[0]["roleRef"]["kind"] == "ClusterRole", "the ClusterRole is bound in the watched namespace only")
    role = find(objs, "Role", "qdrant-operator-leader-election")[0]
    check(any("events.k8s.io" in r["apiGroups"] for r in role["rules"]),
          "the leader-election Role grants Events in the operator's namespace when another one is watched")

    p, objs = helm_template("--set", "fullnameOverride=ops")
    check(p.returncode == 0 and find(objs, "Deployment", "ops") and find(objs, "Service", "ops-metrics")
          and find(objs, "Deployment", "ops")[0]["spec"]["template"]["spec"]["serviceAccountName"] == "ops",
          "fullnameOverride names the objects and the ServiceAccount the Pods use")


# Bad values, and what the error must name. helm must fail, and say which value is wrong.
BAD = [
    (["--set", "replicas=0"], "/replicas"),
    (["--set", "replicas=1.5"], "/replicas"),
    (["--set-string", "replicas=3"], "/replicas"),
    (["--set", "logFormat=xml"], "/logFormat"),
    (["--set", "leaderElection.leaseDuration=15"], "/leaderElection/leaseDuration"),
    (["--set", "leaderElection.retryPeriod=2 seconds"], "/leaderElection/retryPeriod"),
    (["--set", "replica=2"], "replica"),
    (["--set", "watchNamespace=Apps_1"], "/watchNamespace"),
    (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    (["--set", "namespace.create=yes"], "/namespace/create"),
    (["--set", "grafanaDashboard.labelValue=1"], "/grafanaDashboard/labelValue"),
    (["--set", "leaderElection.renewDeadline=15s"], "leaderElection.leaseDuration (15s) must be greater than leaderElection.renewDeadline (15s)"),
    (["--set", "leaderElection.retryPeriod=9s"], "leaderElection.renewDeadline (10s) must be greater than 1.2 × leaderElection.retryPeriod (9s)"),
    (["--set", "leaderElection.leaseDuration=15500ms"], "leaderElection.leaseDuration (15500ms) must be a whole number of seconds"),
    (["--set", "drainTimeout=30s"], "drainTimeout (30s) must be greater than 0 and shorter than terminationGracePeriodSeconds"),
]


def test_bad_values():
    for values, says in BAD:
        p, _ = helm_template(*values)
        err = p.stderr.strip().replace("\n", " ")
        check(p.returncode != 0 and says in err, f"{' '.join(values)} is refused, naming {says!r}"
              + ("" if p.returncode != 0 and says in err else f"\n        exit {p.returncode}: {err[:400]}"))


if __name__ == "__main__":
    test_lint()
    test_default_rendering()
    test_copies_are_the_source()
    test_values()
    test_bad_values()
    print(f"{len(failures)} failed" if failures else "every chart check passed")
    sys.exit(1 if failures else 0)
