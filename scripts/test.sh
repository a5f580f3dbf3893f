#!/usr/bin/env bash
# Runs every test of the workspace. Sets up what the tests need first: the Redis adapter's
# tests start their own `redis-server` processes, so only the binary must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it (Debian package redis-server)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
redis-server --version

cargo test --workspace --locked "$@"
