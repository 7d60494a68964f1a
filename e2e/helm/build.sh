#!/usr/bin/env bash
# Builds Helm from the committed go.mod (its `tool` line pins helm.sh/helm/v4/cmd/helm) into a
# cache directory outside the repo keyed by a hash of go.mod, go.sum and the build flags, as
# e2e/cluster/build.sh does for the control plane. A second run with the same inputs builds
# nothing. Prints the cache directory on stdout; the binary is <dir>/helm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
version=$(awk '$1 == "helm.sh/helm/v4" { print $2 }' "$here/go.mod")
[ -n "$version" ] || { echo "[helm] go.mod does not require helm.sh/helm/v4" >&2; exit 1; }
LDFLAGS="-s -w -X helm.sh/helm/v4/internal/version.version=$version"
key=$( { cat "$here/go.mod" "$here/go.sum"; echo "$LDFLAGS|$GOFLAGS|$CGO_ENABLED|$(go env GOVERSION)"; } | sha256sum | cut -c1-16)
cache=${QDRANT_OPERATOR_CACHE:-$HOME/.cache/qdrant-operator}/helm-$key

if [ -x "$cache/helm" ]; then echo "$cache"; exit 0; fi
# If the checksum database is unreachable, go.sum (committed) still verifies every module.
if ! go env GOSUMDB | grep -q off && ! timeout 10 go mod download -json golang.org/x/mod@v0.41.0 >/dev/null 2>&1; then
  export GOSUMDB=off
fi
t0=$SECONDS
echo "[helm $(date +%H:%M:%S)] building helm $version (a cold build takes several minutes on 2 cores)" >&2
mkdir -p "$cache.tmp"
(cd "$here" && go build -ldflags "$LDFLAGS" -o "$cache.tmp/helm" helm.sh/helm/v4/cmd/helm)
rm -rf "$cache" && mv "$cache.tmp" "$cache"
echo "[helm $(date +%H:%M:%S)] built helm $version in $((SECONDS - t0))s" >&2
echo "$cache"
