#!/usr/bin/env bash
# Builds Helm from the committed go.mod (its `tool` line pins helm.sh/helm/v4/cmd/helm) into a
# cache directory outside the repo keyed by a hash of go.mod, go.sum and the build flags, as
# e2e/cluster/build.sh does for the control plane (e2e/go-tool.sh). A second run with the same
# inputs builds nothing. Prints the cache directory on stdout; the binary is <dir>/helm.
set -euo pipefail
source "$(dirname "$0")/../go-tool.sh"
build_go_tool "$(dirname "$0")" helm helm helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm \
  '-s -w -X helm.sh/helm/v4/internal/version.version={version}'
