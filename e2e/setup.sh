#!/usr/bin/env bash
# Installs what a fresh machine of this kind lacks. Go, Rust and Python are part of the
# machine; Debian packages are installed when missing.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "[setup] installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Qdrant stand-in's conformance test validates responses against Qdrant's OpenAPI schemas.
python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install -q 'jsonschema==4.26.0'
# The rule and chart checks read YAML.
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q 'PyYAML==6.0.3'
for t in go cargo python3 openssl curl; do
  command -v "$t" >/dev/null || { echo "[setup] $t is missing and cannot be installed here" >&2; exit 1; }
done
# The S3 server of the backup suites, built from Go modules like the control plane's binaries
# and cached the same way (a warm run builds nothing), so a fresh machine needs nothing else.
"$(dirname "$0")/s3/build.sh" >/dev/null
