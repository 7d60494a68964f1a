#!/usr/bin/env bash
# Everything CI runs: unit tests, CRD freshness, rule tests, the Helm chart's, dashboard's and
# documentation's checks, the Qdrant stand-in's and the S3 server's self-tests, then the local
# control plane, deploy, every e2e suite, and teardown (always, even on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo; echo "### $* ($(date +%H:%M:%S))"; }
trap 'step "teardown"; e2e/cluster/down.sh' EXIT
# A fresh control plane every time: the suites read its audit log from the start.
e2e/cluster/down.sh >/dev/null 2>&1 || true

step "unit and integration tests"
cargo test --locked
step "CRD freshness"
make --no-print-directory crds-check
if [ -x e2e/rules-test.sh ]; then
  step "alert rule tests"
  e2e/rules-test.sh
fi
step "Grafana dashboard check: its tests, against a real Prometheus on 127.0.0.1 (no cluster)"
python3 e2e/test_dashboard_check.py
step "documentation: relative links resolve, nothing refers to a path outside the repository"
python3 e2e/test_docs_check.py
python3 e2e/docs_check.py
step "Qdrant stand-in: self-test and conformance with Qdrant's OpenAPI documents"
python3 e2e/qdrant/test_standin.py
python3 e2e/qdrant/conformance.py
step "S3 server (versitygw): its client, its fault proxy and the suites' S3 helpers (no cluster)"
e2e/s3/selftest.sh
step "local runner: Qdrant Pods as processes (no control plane)"
python3 e2e/cluster/test_runner_qdrant.py
step "Helm chart: helm lint, default rendering against deploy/, values the schema refuses"
e2e/helm/chart-test.sh
step "local control plane"
e2e/cluster/up.sh
step "deploy"
e2e/cluster/deploy.sh
step "e2e suites"
e2e/run.sh
