# Entry points. `make demo` runs the main job on a local control plane; `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export KUBECONFIG ?= $(CURDIR)/.e2e/kubeconfig

.PHONY: demo test unit crds crds-check chart-files chart-test cluster-up cluster-down deploy e2e bench rules-test setup

setup:
	@e2e/setup.sh

# Each CRD by the plural after `qdrant`: crds/qdrant.operator_qdrant<kind>.yaml is `crdgen <kind>`.
CRD_KINDS := clusters collections collectionbackups collectionrestores collectiontemplates

crds:
	for k in $(CRD_KINDS); do cargo run --quiet --locked --bin crdgen $$k > crds/qdrant.operator_qdrant$$k.yaml; done
	@$(MAKE) --no-print-directory chart-files

# The chart carries copies of the CRD, the alert rules and the dashboard (a chart must be self-contained);
# e2e/helm/chart_test.py fails when they differ from their sources.
chart-files:
	cp $(CRD_KINDS:%=crds/qdrant.operator_qdrant%.yaml) charts/qdrant-operator/crds/
	cp deploy/monitoring/rules.yaml charts/qdrant-operator/files/
	cp deploy/monitoring/grafana-dashboard.json charts/qdrant-operator/files/

# helm lint, the chart's default rendering against deploy/, and values the schema refuses.
chart-test:
	@e2e/helm/chart-test.sh

# Fails when crds/ does not match the Rust types.
crds-check:
	@for k in $(CRD_KINDS); do cargo run --quiet --locked --bin crdgen $$k | diff -u crds/qdrant.operator_qdrant$$k.yaml - \
	  || { echo "crds/ is stale: run 'make crds' and commit the result" >&2; exit 1; }; done
	@echo "crds/ is fresh"

unit:
	cargo test --locked

cluster-up: setup
	@e2e/cluster/up.sh

cluster-down:
	@e2e/cluster/down.sh

deploy:
	@e2e/cluster/deploy.sh

e2e:
	@e2e/run.sh

rules-test:
	@e2e/rules-test.sh

demo: setup
	@e2e/demo.sh

bench:
	@e2e/bench/run.sh

test: setup
	@e2e/test.sh
