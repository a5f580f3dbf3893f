# Agent Portal Service — common tasks. `just` alone lists them.

# List the recipes
default:
    @just --list

# Run the service on the embedded default (in-memory stores, simulated downstreams)
run:
    cargo run

# Redis (throw-away, or $REDIS_URL), the platform sandbox (9090) on it, two instances (8081, 8082) with every downstream on the sandbox; Ctrl-C stops all
dev:
    bash scripts/dev.sh

# `just dev` on a local 3-master Redis Cluster (throw-away nodes from port 7000, joined with redis-cli --cluster create) and two instances; Ctrl-C stops all
dev-cluster:
    bash scripts/dev-cluster.sh

# Run every test, then the API contract (installs redis-server, curl, Python venv, Node.js when missing)
test:
    bash scripts/test.sh

# The API contract against the running binary: openapi-spec-validator, a generated TypeScript client type-checked against real responses, schemathesis (env CONTRACT_MAX_EXAMPLES, CONTRACT_SEED; part of `just test`)
contract:
    bash scripts/contract.sh

# The CI gates: formatting, lints, tests
ci:
    bash .ci/run

# Format the code
fmt:
    cargo fmt --all

# Lint with warnings as errors
lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmark a cached GET /api/v1/dashboard/stats over loopback (prints throughput, p50/p99, store and downstream calls per request; env BENCH_SECS, BENCH_CONNECTIONS, BENCH_SERVER_WORKERS)
bench-dashboard:
    cargo run --release -p portal-server --example bench_dashboard

# Benchmark a cached GET /api/v1/dashboard/stats on Redis (own redis-server; req/s, p50/p99, Redis commands and round trips per request, ratio to redis-benchmark GET; env BENCH_SECS, BENCH_CONNECTIONS, BENCH_SERVER_WORKERS)
bench-redis:
    cargo run --release -p portal-server --example bench_redis

# Capacity: users per server core and per Redis core from a mixed workload of realistic portal users (socket, stats every 30 s, history every 60 s, a send every 3 min) at a p99 target; env BENCH_USERS, BENCH_CLIENTS, BENCH_SECS, BENCH_P99_MS
bench-capacity:
    cargo build --release -p portal-server --bin agent-portal
    cargo run --release -p portal-server --example bench_capacity

# The cached GET /api/v1/dashboard/stats side by side with the spec's Express + ioredis stack and this build's GET /livez, on one redis-server (req/s, p50/p99, server and Redis CPU per request, Redis commands per request; env BENCH_RUNS, BENCH_SECS, BENCH_CONNECTIONS, BENCH_SKIP_EXPRESS; BENCH_PROFILE=docs/perf/NAME.svg records a flame graph instead)
bench-express:
    bash scripts/bench-vs-express.sh

# Benchmark 10,000 WebSockets in process (memory per socket, fan-out p50/p99 to 1,000 sockets, events/s; env BENCH_SOCKETS, BENCH_FANOUT_SOCKETS, BENCH_EVENTS, BENCH_SECS)
bench-ws:
    ulimit -n 65536 || echo "could not raise the open-file limit; the bench lowers the socket count"; cargo bench -p portal-server --bench websocket

# Regenerate docs/openapi.json from the code (a test fails while it is out of date).
openapi:
    UPDATE_OPENAPI=1 cargo test -p portal-api --test openapi_snapshot
