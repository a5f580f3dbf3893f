#!/usr/bin/env bash
# `just dev-cluster`: `just dev` on a local 3-master Redis Cluster instead of one node.
# Starts three throw-away cluster nodes (no persistence, on free ports from 7000, deleted on
# exit), joins them with `redis-cli --cluster create`, then runs scripts/dev.sh with
# REDIS_CLUSTER_NODES: the sandbox (reading the outbound stream on the master that holds it) and
# two instances (8081, 8082). Ctrl-C stops everything.
#
# Overrides: DEV_CLUSTER_PORT (first port tried, 7000), REDIS_PUBSUB=sharded (sharded Pub/Sub),
# and everything scripts/dev.sh reads.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ||
  { echo "redis-server and redis-cli are needed (apt-get install redis-server)" >&2; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
workdir="$(mktemp -d)"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup INT TERM EXIT

ports=()
port="${DEV_CLUSTER_PORT:-7000}"
while [ "${#ports[@]}" -lt 3 ]; do
  # A node also listens on its port + 10000 (the cluster bus).
  if port_free "$port" && port_free "$((port + 10000))"; then ports+=("$port"); fi
  port=$((port + 1))
done
for p in "${ports[@]}"; do
  mkdir -p "$workdir/$p"
  redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir/$p" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
    >"$workdir/$p/redis.log" 2>&1 &
  pids+=($!)
done
for p in "${ports[@]}"; do
  for _ in $(seq 1 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
done
nodes=""
for p in "${ports[@]}"; do nodes="$nodes 127.0.0.1:$p"; done
# shellcheck disable=SC2086
redis-cli --cluster create $nodes --cluster-replicas 0 --cluster-yes >"$workdir/create.log"
for _ in $(seq 1 100); do
  redis-cli -p "${ports[0]}" cluster info | grep -q 'cluster_state:ok' && break
  sleep 0.1
done

# The master holding the outbound stream (the sandbox consumes it there).
slot="$(redis-cli -p "${ports[0]}" cluster keyslot outbound.message)"
stream_port="$(redis-cli -p "${ports[0]}" cluster nodes | awk -v slot="$slot" '
  $3 ~ /master/ { for (i = 9; i <= NF; i++) { split($i, r, "-"); hi = (r[2] == "" ? r[1] : r[2]);
    if (slot >= r[1] && slot <= hi) { split($2, a, "[:@]"); print a[2]; exit } } }')"

export REDIS_CLUSTER_NODES
REDIS_CLUSTER_NODES="$(echo $nodes | tr ' ' ',')"
export SANDBOX_REDIS_URL="redis://127.0.0.1:${stream_port}/0"
unset REDIS_URL
bash scripts/dev.sh
