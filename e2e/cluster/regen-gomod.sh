#!/usr/bin/env bash
# Regenerates go.mod/go.sum for the local control plane. Run by hand only when
# bumping versions; the result is committed and the build never runs this.
# k8s.io/kubernetes requires its staging modules at the nonexistent v0.0.0, and Go
# ignores replace directives inside dependencies, so we add one replace per module.
set -euo pipefail
cd "$(dirname "$0")"
K8S_VERSION=${K8S_VERSION:-v1.36.3}
STAGING_VERSION=${STAGING_VERSION:-v0.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
export GOTOOLCHAIN=local
rm -f go.mod go.sum
go mod init qdrant-operator/e2e/cluster
go mod edit -go=1.26.0
modfile=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
for m in $(grep -E '^\s*k8s.io/[a-z-]+ v0\.0\.0$' "$modfile" | awk '{print $1}' | sort -u); do
  go mod edit -replace "${m}=${m}@${STAGING_VERSION}"
done
go mod edit -require "k8s.io/kubernetes@${K8S_VERSION}" -require "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
go mod tidy
