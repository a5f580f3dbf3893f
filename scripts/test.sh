#!/usr/bin/env bash
# Runs every test of the workspace. Sets up what the tests need first: the Redis tests start
# their own `redis-server` processes (single nodes, Clusters made with `redis-cli --cluster
# create`, Sentinels) and make throw-away TLS certificates with `openssl`, so only those
# binaries must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "not found: installing ${missing[*]} (Debian packages)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
redis-server --version

cargo test --workspace --locked "$@"
