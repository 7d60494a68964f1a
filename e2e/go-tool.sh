# Builds a Go tool that a go.mod pins with a `tool` line (e2e/helm/, e2e/s3/) into a cache
# directory outside the repo, keyed by a hash of that go.mod, go.sum and the build flags, as
# e2e/cluster/build.sh does for the control plane: a second run with the same inputs builds
# nothing. Sourced by those directories' build.sh.
# shellcheck shell=bash

# build_go_tool DIR NAME BINARY MODULE PACKAGE LDFLAGS: builds PACKAGE, of the MODULE whose
# version DIR/go.mod pins, as BINARY in ~/.cache/qdrant-operator/NAME-<hash> (or under
# $QDRANT_OPERATOR_CACHE), unless it is there already, and prints that directory. {version} in
# LDFLAGS stands for MODULE's version.
build_go_tool() {
  local dir=$1 name=$2 bin=$3 module=$4 pkg=$5 ldflags version key cache t0
  version=$(awk -v m="$module" '$1 == m { print $2 }' "$dir/go.mod")
  [ -n "$version" ] || { echo "[$name] $dir/go.mod does not require $module" >&2; return 1; }
  ldflags=${6//\{version\}/$version}
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
  key=$( { cat "$dir/go.mod" "$dir/go.sum"; echo "$ldflags|$GOFLAGS|$CGO_ENABLED|$(go env GOVERSION)"; } | sha256sum | cut -c1-16)
  cache=${QDRANT_OPERATOR_CACHE:-$HOME/.cache/qdrant-operator}/$name-$key
  if [ -x "$cache/$bin" ]; then echo "$cache"; return 0; fi
  # If the checksum database is unreachable, go.sum (committed) still verifies every module.
  if ! go env GOSUMDB | grep -q off && ! timeout 10 go mod download -json "$module@$version" >/dev/null 2>&1; then
    export GOSUMDB=off
  fi
  t0=$SECONDS
  echo "[$name $(date +%H:%M:%S)] building $bin $version (a cold build takes minutes on 2 cores)" >&2
  mkdir -p "$cache.tmp"
  (cd "$dir" && nice -n 10 go build -ldflags "$ldflags" -o "$cache.tmp/$bin" "$pkg")
  rm -rf "$cache" && mv "$cache.tmp" "$cache"
  echo "[$name $(date +%H:%M:%S)] built $bin $version in $((SECONDS - t0))s" >&2
  echo "$cache"
}
