#!/usr/bin/env bash
# Runs every test of the workspace, then the API contract against the running service
# (scripts/contract.sh: openapi-spec-validator, a generated TypeScript client type-checked
# against real responses, a bounded schemathesis run). Sets up what the tests need first,
# only when missing:
# - the Redis tests start their own `redis-server` processes (single nodes, Clusters made with
#   `redis-cli --cluster create`, Sentinels) and make throw-away TLS certificates with `openssl`;
# - the metrics tests run `promtool` and a `prometheus` server (Debian's `prometheus`);
# - the browser test drives headless `chromium` through `chromedriver` (`chromium-driver`);
# - the README walk-through test runs the README's commands, whose WebSocket example uses
#   Python's `websockets`;
# - the contract check needs curl, Python's venv and Node.js with npm (it installs its pinned
#   tools into target/tools itself).
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian packages (apt-get update first, once).
updated=""
install_packages() {
  echo "not found: installing $* (Debian packages)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  [ -n "$updated" ] || { $SUDO apt-get update -qq; updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then install_packages "${missing[@]}"; fi
# The README's WebSocket example: Python's websockets (14 or later, from PyPI).
if ! python3 -c 'import websockets, sys; sys.exit(int(websockets.__version__.split(".")[0]) < 14)' \
  >/dev/null 2>&1; then
  python3 -m pip --version >/dev/null 2>&1 || install_packages python3-pip
  echo "not found: installing Python's websockets (PyPI)" >&2
  python3 -m pip install -q --upgrade websockets 2>/dev/null \
    || python3 -m pip install -q --upgrade --break-system-packages websockets
fi
redis-server --version

cargo test --workspace --locked "$@"
bash scripts/contract.sh
