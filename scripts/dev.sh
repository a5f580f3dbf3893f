#!/usr/bin/env bash
# Local platform with nothing simulated inside the service (`just dev`):
# - Redis: $REDIS_URL when it is set (must be running), else a throw-away redis-server on a
#   free local port (no persistence, deleted on exit);
# - the platform sandbox (`portal-sandbox`: Auth Service, Tenant Service, State Manager,
#   Genesys login and API, Meta Graph over HTTP, with the demo data and fault injection) on
#   $SANDBOX_PORT (default 9090), consuming the service's outbound Stream on that Redis and
#   publishing delivery events (message_update, sent/delivered/read) on its Pub/Sub;
# - two agent-portal instances (8081 and 8082) on that Redis with EVERY downstream URL pointed
#   at the sandbox, sharing COOKIE_SECRET, ENCRYPTION_KEY and AUDIT_HMAC_KEY generated for this run: a session
#   made on one instance is valid on the other, a widget send on one is seen live on both.
# Ctrl-C stops everything this script started.
#
# Overrides: DEV_PORTS="8081 8082" (instance ports), DEV_REDIS_PORT (default: first free from
# 6390), SANDBOX_PORT, SANDBOX_FAULTS (JSON, see docs/configuration.md), REDIS_URL, or
# REDIS_CLUSTER_NODES with SANDBOX_REDIS_URL (the node holding the outbound stream; what
# scripts/dev-cluster.sh sets).
set -euo pipefail
cd "$(dirname "$0")/.."

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_listening() { # port, what
  for _ in $(seq 1 200); do
    port_free "$1" || return 0
    sleep 0.05
  done
  echo "$2 did not start on port $1" >&2
  return 1
}

ports=(${DEV_PORTS:-8081 8082})
sandbox_port="${SANDBOX_PORT:-9090}"
for p in "${ports[@]}" "$sandbox_port"; do
  port_free "$p" || { echo "port $p is in use" >&2; exit 1; }
done

cargo build --quiet -p portal-server -p portal-sandbox --bins
bin_dir="${CARGO_TARGET_DIR:-target}/debug"

workdir="$(mktemp -d)"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup INT TERM EXIT

if [ -n "${REDIS_CLUSTER_NODES:-}" ]; then
  redis_note="(cluster: $REDIS_CLUSTER_NODES)"
  export SANDBOX_REDIS_CLUSTER_NODES="$REDIS_CLUSTER_NODES"
elif [ -n "${REDIS_URL:-}" ]; then
  redis_note="(yours)"
else
  command -v redis-server >/dev/null 2>&1 || { echo "redis-server is not installed (apt-get install redis-server), or set REDIS_URL" >&2; exit 1; }
  redis_port="${DEV_REDIS_PORT:-}"
  if [ -z "$redis_port" ]; then
    redis_port=6390
    while ! port_free "$redis_port"; do redis_port=$((redis_port + 1)); done
  fi
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir" \
    >"$workdir/redis.log" 2>&1 &
  pids+=($!)
  wait_listening "$redis_port" redis-server
  export REDIS_URL="redis://127.0.0.1:${redis_port}/0"
  redis_note="(throw-away)"
fi

sandbox="http://127.0.0.1:${sandbox_port}"
SANDBOX_PORT="$sandbox_port" SANDBOX_REDIS_URL="${SANDBOX_REDIS_URL:-$REDIS_URL}" "$bin_dir/portal-sandbox" &
pids+=($!)
wait_listening "$sandbox_port" portal-sandbox

secret_hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
export COOKIE_SECRET="$(secret_hex)"
export AUDIT_HMAC_KEY="$(secret_hex)"
export ENCRYPTION_KEY="$(secret_hex)"
export AUTH_SERVICE_URL="$sandbox"
export TENANT_SERVICE_URL="$sandbox"
export STATE_MANAGER_URL="$sandbox"
export GENESYS_LOGIN_BASE_URL="$sandbox/genesys"
export GENESYS_API_BASE_URL="$sandbox/genesys"
export META_GRAPH_BASE_URL="$sandbox/meta"

for p in "${ports[@]}"; do
  PORT="$p" BASE_URL="http://localhost:$p" "$bin_dir/agent-portal" &
  pids+=($!)
done
for p in "${ports[@]}"; do wait_listening "$p" agent-portal; done

echo "redis:     ${REDIS_URL:-} $redis_note"
echo "sandbox:   $sandbox  (faults: $sandbox/_admin/faults)"
for p in "${ports[@]}"; do
  echo "instance:  http://localhost:$p  (sign in: http://localhost:$p/api/v1/auth/login?login_hint=admin@acme.example)"
done
echo "Ctrl-C stops everything."
wait -n "${pids[@]}" || true
