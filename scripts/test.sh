#!/usr/bin/env bash
# Runs every test of the workspace, then the API contract against the running service
# (scripts/contract.sh: openapi-spec-validator, a generated TypeScript client type-checked
# against real responses, a bounded schemathesis run). Sets up what the tests need first: the
# Redis tests start their own `redis-server` processes (single nodes, Clusters made with
# `redis-cli --cluster create`, Sentinels) and make throw-away TLS certificates with
# `openssl`; the contract check needs curl, Python's venv and Node.js with npm (it installs
# its pinned tools into target/tools itself).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "not found: installing ${missing[*]} (Debian packages)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
redis-server --version

cargo test --workspace --locked "$@"
bash scripts/contract.sh
