#!/usr/bin/env bash
# The chart checks that need no cluster (e2e/helm/chart_test.py), with Helm built from
# e2e/helm/go.mod and the kubectl of the local control plane's build (both cached).
set -euo pipefail
cd "$(dirname "$0")/../.."
HELM=${HELM:-$(e2e/helm/build.sh)/helm}
KUBECTL=${KUBECTL:-$(e2e/cluster/build.sh)/kubectl}
# Helm's cache, config and data in a scratch directory, not in $HOME.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export HELM KUBECTL HELM_CACHE_HOME=$scratch/cache HELM_CONFIG_HOME=$scratch/config HELM_DATA_HOME=$scratch/data
echo "$("$HELM" version --short), $("$KUBECTL" version --client | head -n 1)"
python3 e2e/helm/chart_test.py
