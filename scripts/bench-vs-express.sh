#!/usr/bin/env bash
# `just bench-express`: the cached GET /api/v1/dashboard/stats of this service and of the
# spec's own Express + ioredis stack (../shared/bench/express-baseline), side by side on one
# throw-away redis-server, with the same wrk settings, plus this build's GET /livez (the HTTP
# floor of the same binary). For each: requests/s, p50/p99 (wrk), server CPU per request and
# Redis CPU per request (utime + stime from /proc/<pid>/stat over the run, divided by the
# requests wrk completed). Repeats BENCH_RUNS times and prints min / median / max per figure,
# then the ratios of ONE run (the median run by the service's req/s).
#
# Settings (environment): BENCH_RUNS (3), BENCH_SECS (10), BENCH_CONNECTIONS (32),
# BENCH_WRK_THREADS (2), WORKERS (the service's worker threads; default one per core),
# BENCH_BIN (a prebuilt agent-portal to measure instead of this tree's),
# BENCH_SKIP_EXPRESS=1 (the service only), BENCH_KEEP_TMP=1 (keep the logs).
#
# BENCH_PROFILE=docs/perf/NAME.svg instead records a CPU profile of the service under the
# cached request's load (perf, the software cpu-clock event at 999 Hz, DWARF call graphs, for
# BENCH_SECS) and renders it as a flame graph with inferno (`cargo install inferno --locked`);
# with BENCH_PROFILE_LIVEZ=1 the profile is of GET /livez, the floor.
#
# The service runs as it ships (LOG_LEVEL=info, one "request finished" line per request,
# JSON to a file, metrics on), with the API rate limit raised out of the way but still hit
# and counted on every request (RATE_LIMIT_API_MAX=60000000 per 60 s).
#
# Needs: wrk, redis-server, node + npm (installed from Debian when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${BENCH_RUNS:-3}"
secs="${BENCH_SECS:-10}"
conns="${BENCH_CONNECTIONS:-32}"
wrk_threads="${BENCH_WRK_THREADS:-2}"
target="${CARGO_TARGET_DIR:-target}"

need() { # command, Debian package
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
  else
    echo "$1 is missing: apt-get install $2" >&2
    exit 1
  fi
}
need wrk wrk
need redis-server redis-server
[ "${BENCH_SKIP_EXPRESS:-0}" = 1 ] || { need node nodejs; need npm npm; }

# BENCH_BIN=path runs that binary instead of building this tree's (an A/B of two builds).
if [ -n "${BENCH_BIN:-}" ]; then
  bin="$BENCH_BIN"
else
  cargo build --quiet --release -p portal-server --bin agent-portal
  bin="$target/release/agent-portal"
fi

tmp="$(mktemp -d)"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup INT TERM EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_listening() { # port, what
  for _ in $(seq 1 400); do port_free "$1" || return 0; sleep 0.05; done
  echo "$2 did not start on port $1" >&2
  exit 1
}
# utime + stime of a process, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"

# --- Redis, the service, Express -------------------------------------------------------------
redis_port="$(free_port 6480)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
wait_listening "$redis_port" redis-server
redis_url="redis://127.0.0.1:${redis_port}/0"

portal_port="$(free_port 8480)"
PORT="$portal_port" REDIS_URL="$redis_url" LOG_FORMAT=json \
  COOKIE_SECRET="bench-cookie-secret-0123456789abcdef0123456789" \
  ENCRYPTION_KEY="00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" \
  RATE_LIMIT_API_MAX=60000000 RATE_LIMIT_API_WINDOW_SECS=60 \
  "$bin" >"$tmp/portal.log" 2>&1 &
portal_pid=$!
pids+=("$portal_pid")
wait_listening "$portal_port" agent-portal
base="http://localhost:$portal_port"
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ] && break
  sleep 0.1
done

# Sign in through the simulated Genesys login (login → authorize → callback), as a browser.
location() { curl -s -o /dev/null -w '%{redirect_url}' -b "$tmp/jar" -c "$tmp/jar" "$1"; }
authorize="$(location "$base/api/v1/auth/login?login_hint=admin@acme.example")"
callback="$(location "$authorize")"
location "$callback" >/dev/null
portal_cookie="sessionId=$(awk '$6 == "sessionId" {print $7}' "$tmp/jar")"
[ "$portal_cookie" != "sessionId=" ] || { echo "sign-in failed" >&2; exit 1; }
stats="$base/api/v1/dashboard/stats?period=today"
for _ in 1 2 3; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $portal_cookie" "$stats")"
  [ "$code" = 200 ] || { echo "warm-up answered $code" >&2; exit 1; }
done

express_pid=""
if [ "${BENCH_SKIP_EXPRESS:-0}" != 1 ]; then
  express_dir="$target/express-baseline"
  if [ ! -d "$express_dir/node_modules" ]; then
    mkdir -p "$express_dir"
    cp ../shared/bench/express-baseline/{package.json,package-lock.json,server.js} "$express_dir/" 2>/dev/null ||
      cp /work/shared/bench/express-baseline/{package.json,package-lock.json,server.js} "$express_dir/"
    chmod u+w "$express_dir"/*
    (cd "$express_dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  fi
  express_port="$(free_port 3990)"
  (cd "$express_dir" && REDIS_URL="$redis_url" PORT="$express_port" exec node server.js) \
    >"$tmp/express.log" 2>&1 &
  express_pid=$!
  pids+=("$express_pid")
  wait_listening "$express_port" express
  for _ in $(seq 1 100); do grep -q '^COOKIE ' "$tmp/express.log" && break; sleep 0.05; done
  express_cookie="$(sed -n 's/^COOKIE //p' "$tmp/express.log")"
  express_stats="http://127.0.0.1:$express_port/api/v1/dashboard/stats?period=today"
fi

# --- one measurement -------------------------------------------------------------------------
# measure NAME URL SERVER_PID [COOKIE] → appends "NAME req/s p50 p99 server_us redis_us" to
# $tmp/results.
measure() {
  local name=$1 url=$2 pid=$3 cookie=${4:-}
  local args=(-t "$wrk_threads" -c "$conns" -d "${secs}s" --latency)
  [ -n "$cookie" ] && args+=(-H "Cookie: $cookie")
  # A short warm-up (connections, caches, JIT for node), not measured.
  wrk "${args[@]/${secs}s/2s}" "$url" >/dev/null
  local s0 r0 s1 r1
  redis-cli -p "$redis_port" CONFIG RESETSTAT >/dev/null
  s0=$(ticks "$pid"); r0=$(ticks "$redis_pid")
  wrk "${args[@]}" "$url" >"$tmp/wrk.out"
  s1=$(ticks "$pid"); r1=$(ticks "$redis_pid")
  redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' | grep '^cmdstat_' >"$tmp/cmdstats.$name"
  if grep -q 'Non-2xx' "$tmp/wrk.out"; then
    echo "$name: some answers were not 2xx:" >&2
    cat "$tmp/wrk.out" >&2
    exit 1
  fi
  local requests rps p50 p99
  requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$tmp/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")
  awk -v n="$name" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v req="$requests" \
    -v s=$((s1 - s0)) -v r=$((r1 - r0)) -v hz="$hz" \
    'BEGIN { printf "%s %.0f %s %s %.1f %.1f\n", n, rps, p50, p99, s / hz / req * 1e6, r / hz / req * 1e6 }' \
    >>"$tmp/results"
  echo "$name $requests" >>"$tmp/requests"
}

# Redis commands per request of the run NAME, and Redis's own time per call (usec_per_call:
# the command's execution, without reading, parsing and answering).
commands() { # name, label
  local requests
  requests=$(awk -v n="$1" '$1 == n {print $2}' "$tmp/requests")
  echo "$2: Redis commands per request (calls/request, µs/call inside Redis):"
  awk -F'[:=,]' -v req="$requests" '{
    calls = $3; usec = $7
    if (calls / req >= 0.01) printf "    %-20s %6.2f  %6.2f\n", substr($1, 9), calls / req, usec
  }' "$tmp/cmdstats.$1"
}

if [ -n "${BENCH_PROFILE:-}" ]; then
  need perf linux-perf
  command -v inferno-flamegraph >/dev/null || { echo "inferno is missing: cargo install inferno --locked" >&2; exit 1; }
  # BENCH_PROFILE_LIVEZ=1 profiles GET /livez instead: the floor, to subtract stack by stack.
  if [ "${BENCH_PROFILE_LIVEZ:-0}" = 1 ]; then
    profiled=(livez "$base/livez")
  else
    profiled=("cached GET /api/v1/dashboard/stats" -H "Cookie: $portal_cookie" "$stats")
  fi
  wrk -t "$wrk_threads" -c "$conns" -d "$((secs + 4))s" "${profiled[@]:1}" >"$tmp/wrk.out" &
  wrk_pid=$!
  sleep 2
  perf record -e cpu-clock -F 999 -g --call-graph dwarf,32768 -p "$portal_pid" -o "$tmp/perf.data" -- sleep "$secs" 2>"$tmp/perf.log"
  wait "$wrk_pid"
  grep -E 'requests in|Requests/sec' "$tmp/wrk.out"
  perf script -i "$tmp/perf.data" 2>/dev/null | inferno-collapse-perf >"$tmp/folded"
  mkdir -p "$(dirname "$BENCH_PROFILE")"
  inferno-flamegraph --title "agent-portal: ${profiled[0]} (wrk -c$conns, perf cpu-clock 999 Hz)" \
    --width 1600 <"$tmp/folded" >"$BENCH_PROFILE"
  folded="$target/$(basename "${BENCH_PROFILE%.svg}").folded"
  cp "$tmp/folded" "$folded"
  echo "flame graph: $BENCH_PROFILE (folded stacks: $folded)"
  exit 0
fi

echo "bench-vs-express: $runs runs; wrk -t$wrk_threads -c$conns -d${secs}s; redis-server $(redis-server --version | awk '{print $3}'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq 1 "$runs"); do
  measure "run$run:livez" "$base/livez" "$portal_pid"
  measure "run$run:service" "$stats" "$portal_pid" "$portal_cookie"
  [ -z "$express_pid" ] || measure "run$run:express" "$express_stats" "$express_pid" "$express_cookie"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- report ----------------------------------------------------------------------------------
echo
printf '%-42s %20s %18s %18s %26s %24s\n' "" "req/s" "p50" "p99" "server CPU µs/request" "Redis CPU µs/request"
summary() { # what, label
  grep ":$1 " "$tmp/results" | awk -v label="$2" '
    function stat(col,   i, j, n, v, t, out) {
      n = 0
      for (i = 1; i <= NR; i++) v[++n] = row[i, col]
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
      return sprintf("%s/%s/%s", v[1], v[int((n + 1) / 2)], v[n])
    }
    { for (c = 2; c <= 6; c++) row[NR, c] = $c }
    END { printf "%-42s %20s %18s %18s %26s %24s\n", label " (min/median/max)", stat(2), stat(3), stat(4), stat(5), stat(6) }'
}
summary livez "service GET /livez (HTTP floor)"
summary service "service cached GET /dashboard/stats"
[ -z "$express_pid" ] || summary express "Express cached GET /dashboard/stats"

# Ratios from one run: the run with the median service req/s.
median_run=$(grep ':service ' "$tmp/results" | sort -k2 -n | awk -v n="$runs" 'NR == int((n + 1) / 2) {split($1, a, ":"); print a[1]}')
row() { grep "^$median_run:$1 " "$tmp/results"; }
echo
echo "ratios from $median_run (the median run):"
service=$(row service); livez=$(row livez)
awk -v s="$service" -v l="$livez" 'BEGIN {
  split(s, a, " "); split(l, b, " ")
  printf "  server CPU per cached request / per /livez: %.2f (%s µs / %s µs; must be ≤ 2)\n", a[5] / b[5], a[5], b[5]
  printf "  Redis CPU per cached request: %s µs (must be ≤ 12)\n", a[6]
}'
if [ -n "$express_pid" ]; then
  express=$(row express)
  awk -v s="$service" -v e="$express" 'BEGIN {
    split(s, a, " "); split(e, b, " ")
    printf "  throughput service / Express: %.2f (%s / %s req/s; must be ≥ 8)\n", a[2] / b[2], a[2], b[2]
    printf "  server CPU per request Express / service: %.1f; Redis CPU per request Express / service: %.1f\n", b[5] / a[5], b[6] / a[6]
  }'
fi
echo
commands "$median_run:service" "service"
[ -z "$express_pid" ] || commands "$median_run:express" "Express"
