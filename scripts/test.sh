#!/usr/bin/env bash
# Runs every test of the workspace. Sets up what the tests need first: the Redis tests start
# their own `redis-server` processes (single nodes, Clusters made with `redis-cli --cluster
# create`, Sentinels) and make throw-away TLS certificates with `openssl`; the metrics tests
# run `promtool` and a `prometheus` server (Debian's `prometheus`); the browser test drives
# headless `chromium` through `chromedriver` (`chromium-driver`); the README walk-through test
# runs the README's commands, whose WebSocket example uses Python's `websockets`. Only those
# are installed here, and only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "not found: installing ${missing[*]} (Debian packages)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import websockets' >/dev/null 2>&1; then
  echo "not found: installing Python's websockets (PyPI)" >&2
  python3 -m pip install -q websockets 2>/dev/null \
    || python3 -m pip install -q --break-system-packages websockets
fi
redis-server --version

cargo test --workspace --locked "$@"
