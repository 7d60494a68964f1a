#!/usr/bin/env bash
# Alert rules: deploy/monitoring/rules.yaml is the one source; prometheusrule.yaml is generated
# from it (--write regenerates it, and copies it into the Helm chart). Checks: the
# PrometheusRule is fresh, `promtool check rules`, `promtool test rules` (a firing and a
# non-firing case for every alert), and every runbook_url anchor exists in docs/runbook.md.
set -euo pipefail
cd "$(dirname "$0")/.."
M=deploy/monitoring
generate() {
  python3 - "$M/rules.yaml" <<'PY'
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
doc = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PrometheusRule",
    "metadata": {"name": "qdrant-operator", "namespace": "qdrant-operator", "labels": {"app": "qdrant-operator"}},
    "spec": rules,
}
print("# Generated from rules.yaml by `e2e/rules-test.sh --write`; edit rules.yaml instead.")
print(yaml.safe_dump(doc, sort_keys=False, width=1000), end="")
PY
}
if [ "${1:-}" = "--write" ]; then
  generate >"$M/prometheusrule.yaml"
  cp "$M/rules.yaml" charts/qdrant-operator/files/rules.yaml
  echo "wrote $M/prometheusrule.yaml and the chart's copy of rules.yaml"
  exit 0
fi
generate | diff -u "$M/prometheusrule.yaml" - >&2 || { echo "prometheusrule.yaml is stale: run e2e/rules-test.sh --write" >&2; exit 1; }
echo "prometheusrule.yaml matches rules.yaml"
promtool check rules "$M/rules.yaml"
(cd "$M/tests" && promtool test rules ./*.yaml)
python3 - "$M/rules.yaml" docs/runbook.md <<'PY'
import re, sys, yaml
rules = [r for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]]
anchors = {re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-")) for h in re.findall(r"^#+ (.+)$", open(sys.argv[2]).read(), re.M)}
missing = []
for r in rules:
    url = r["annotations"]["runbook_url"]
    anchor = url.split("#", 1)[1]
    if anchor != r["alert"].lower() or anchor not in anchors:
        missing.append((r["alert"], url))
    for key in ("severity",):
        assert key in r["labels"], r["alert"]
    for key in ("summary", "description"):
        assert key in r["annotations"], r["alert"]
if missing:
    print("runbook anchors missing:", missing)
    sys.exit(1)
print(f"every one of {len(rules)} alerts has severity, summary, description and a runbook anchor in docs/runbook.md")
PY
