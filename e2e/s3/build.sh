#!/usr/bin/env bash
# Builds versitygw, a real S3 server (Apache-2.0; its posix backend keeps buckets as directories
# and objects as files, and it verifies SigV4 signatures), from the committed go.mod (its `tool`
# line pins github.com/versity/versitygw/cmd/versitygw) into a cache directory outside the repo
# keyed by a hash of go.mod, go.sum and the build flags, as e2e/helm/build.sh does for Helm
# (e2e/go-tool.sh). A second run with the same inputs builds nothing. Prints the cache directory
# on stdout; the binary is <dir>/versitygw. To bump it: GOTOOLCHAIN=local go get -tool
# github.com/versity/versitygw/cmd/versitygw@VERSION && go mod tidy, here, and commit both files.
# Why not MinIO: the only MinIO server module the Go module proxy serves here is a 2026
# pseudo-version under the AGPL-3.0, and this workplace's package lists mark AGPL modules "not to use";
# the Apache-2.0 MinIO versions from before April 2021 are refused by the proxy.
set -euo pipefail
source "$(dirname "$0")/../go-tool.sh"
build_go_tool "$(dirname "$0")" s3 versitygw github.com/versity/versitygw github.com/versity/versitygw/cmd/versitygw \
  '-s -w -X main.Version={version} -X main.Build=gomod -X main.BuildTime=none'
