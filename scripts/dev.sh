#!/usr/bin/env bash
# Local multi-instance setup: one throw-away redis-server on a free local port and two
# agent-portal instances on 8081 and 8082 sharing it (same COOKIE_SECRET and ENCRYPTION_KEY,
# generated for this run), with the simulated downstreams. A session made on one instance is
# valid on the other. Ctrl-C stops everything.
#
# Overrides: DEV_PORTS="8081 8082" (instance ports), DEV_REDIS_PORT (default: first free from 6390).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v redis-server >/dev/null 2>&1 || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

redis_port="${DEV_REDIS_PORT:-}"
if [ -z "$redis_port" ]; then
  redis_port=6390
  while ! port_free "$redis_port"; do redis_port=$((redis_port + 1)); done
fi
ports=(${DEV_PORTS:-8081 8082})
for p in "${ports[@]}"; do
  port_free "$p" || { echo "port $p is in use" >&2; exit 1; }
done

cargo build --quiet --bin agent-portal
bin="${CARGO_TARGET_DIR:-target}/debug/agent-portal"

workdir="$(mktemp -d)"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup INT TERM EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir" \
  >"$workdir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  port_free "$redis_port" || break
  sleep 0.05
done

secret_hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
export REDIS_URL="redis://127.0.0.1:${redis_port}/0"
export COOKIE_SECRET="$(secret_hex)"
export ENCRYPTION_KEY="$(secret_hex)"

for p in "${ports[@]}"; do
  PORT="$p" BASE_URL="http://127.0.0.1:$p" "$bin" &
  pids+=($!)
done

echo "redis:     $REDIS_URL"
for p in "${ports[@]}"; do echo "instance:  http://127.0.0.1:$p  (health: http://127.0.0.1:$p/health)"; done
echo "Ctrl-C stops everything."
wait -n "${pids[@]}" || true
