//! `just bench-redis`: load test of a cached `GET /api/v1/dashboard/stats` with a valid session
//! against **Redis**, compared with `redis-benchmark` GET on the same
//! `redis-server` in the same run. Prints figures; asserts nothing about time.
//!
//! 1. Starts a throw-away `redis-server` (portal-redis's harness), the service on it with the
//!    embedded (simulated) downstreams and the API rate limit raised out of the way, signs in
//!    and warms the cache (and the instance's session → user memo).
//! 2. Closed loop: `BENCH_CONNECTIONS` (64) connections for `BENCH_SECS` (10) s → requests/s,
//!    p50/p99, and from `INFO commandstats` deltas: Redis commands per request and round trips
//!    per request. A round trip is one exchange on the connection: the session `HMGET` and the
//!    rate-limit hit (`SET`, `INCRBY`, `PTTL`) go in one pipeline (one round trip), the cache
//!    `MGET` in another; so round trips = the `HMGET`s (or the hits' `INCRBY`s, if more) + the
//!    `MGET`s. That they really
//!    share one network read is checked by `tests/api/redis_round_trips.rs` (which counts Redis's
//!    `total_reads_processed` with one request at a time); the socket reads per request printed
//!    here are lower under load, as the multiplexed connection also batches concurrent
//!    requests' commands.
//! 3. `redis-benchmark -p <port> -t get -n 200000 -c 50 -q` and the same with `-P 1` (the
//!    default pipelining of 1, spelled out) → GET requests/s and the ratio service ÷ Redis.
//! 4. The same closed loop on a 3-master Redis Cluster (issue 12; `BENCH_CLUSTER=false` skips
//!    it): requests/s, p50/p99, commands and round trips of latency per cached request (the
//!    session `HMGET` and the limit hit go out together, to their two masters, then the
//!    `MGET`), socket reads summed over the masters.
//!
//! Both runs print the Redis CPU per request (`utime + stime` of every `redis-server`, from
//! `/proc/<pid>/stat`, over the run, divided by the requests), the service's CPU per request
//! (its threads' times from `/proc/self/task`: it runs on a runtime of its own, see
//! `support::spawn_server`), and the same service's `GET /livez` floor measured right after.
//!
//! The load generator (reqwest, in this process), the service (`BENCH_SERVER_WORKERS`, 1
//! worker) and `redis-server` share the machine's cores.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

mod support;

use portal_domain::secret::SecretString;
use portal_redis::{RedisCluster, RedisCounters, RedisServer, Security};
use portal_server::configuration::RedisConfig;
use portal_server::{Application, Settings};
use reqwest::{Client, StatusCode};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{
    clock_ticks, env, get, measured_rate, ms, percentile, print_floor, sign_in, spawn_server,
};

/// Calls per command, plus `total_reads_processed` under the key `reads`.
async fn redis_counters(counters: &mut RedisCounters) -> HashMap<String, u64> {
    let mut counts = counters.command_calls().await;
    let reads = counters.reads_processed().await;
    counts.insert("reads".into(), reads);
    counts
}

fn delta(after: &HashMap<String, u64>, before: &HashMap<String, u64>, k: &str) -> u64 {
    after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0)
}

/// Runs `redis-benchmark` GET; its requests/s, or why not.
fn redis_benchmark(port: u16, extra: &[&str]) -> Result<f64, String> {
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "get",
            "-n",
            "200000",
            "-c",
            "50",
            "-q",
        ])
        .args(extra)
        .output()
        .map_err(|e| {
            format!("redis-benchmark not runnable ({e}); install redis-tools (Debian) or redis")
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `-q` prints progress lines separated by '\r'; the last `GET: <n> requests per second`
    // is the result.
    text.split(['\r', '\n'])
        .filter_map(|l| l.trim().strip_prefix("GET: "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
        .ok_or_else(|| format!("unexpected redis-benchmark output: {text:?}"))
}

fn main() -> anyhow::Result<()> {
    let client_threads = env("BENCH_CLIENT_THREADS", 2usize);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()?
        .block_on(run())
}

/// One closed-loop run of the cached request on `redis`; prints its figures, returns req/s.
async fn measure(
    label: &str,
    redis: RedisConfig,
    mut counters: RedisCounters,
    cpu_ticks: impl Fn() -> u64,
) -> anyhow::Result<f64> {
    let secs = env("BENCH_SECS", 10u64);
    let connections = env("BENCH_CONNECTIONS", 64usize);
    let server_workers = env("BENCH_SERVER_WORKERS", 1usize);
    let client_threads = env("BENCH_CLIENT_THREADS", 2usize);
    let settings = Settings {
        port: 0,
        workers: Some(server_workers),
        redis,
        cookie_secret: Some(SecretString::from(
            "bench-redis-cookie-secret-0123456789abcdef",
        )),
        encryption_key: Some(SecretString::from(
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        )),
        // The API limit (100/min per user) would refuse almost every request of a load test;
        // the hit is still made and recorded on every request (one unit a microsecond: a
        // higher limit never refuses, so never writes).
        rate_limit_api_max: 1_000_000,
        rate_limit_api_window_secs: 1,
        ..Settings::default()
    };
    let settings = settings.validated()?;
    let port = spawn_server(move || Application::build(settings)).await?;
    let base = format!("http://localhost:{port}");
    let probe = Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe
        .get(format!("{base}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the service never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cookie = sign_in(&base, "admin@acme.example").await;
    let url = format!("{base}/api/v1/dashboard/stats?period=today");
    println!(
        "\n{label}: {server_workers} server worker(s), {client_threads} client thread(s), {connections} connections, {secs} s"
    );
    // Warm the cache key and the instance's session → user memo.
    let warm = Client::new();
    for _ in 0..3 {
        get(&warm, &url, &cookie).await;
    }

    let before = redis_counters(&mut counters).await;
    let cpu_before = cpu_ticks();
    let (rate, lat, server_cpu) = measured_rate(&url, &cookie, connections, secs).await;
    let cpu = cpu_ticks() - cpu_before;
    let after = redis_counters(&mut counters).await;
    let n = lat.len() as f64;
    let d = |k: &str| delta(&after, &before, k);
    let (hmget, hits, mget) = (d("hmget"), d("incrby"), d("mget"));
    // The commands of a limit hit.
    const HIT: [&str; 3] = ["set", "incrby", "pttl"];
    let in_hits: u64 = HIT.iter().map(|k| d(k)).sum();
    // Sent by the service, minus the health monitor's (`PING`, and `UNWATCH` of the pool's
    // recycle check), the cluster client's topology reads and ours (`INFO`).
    let commands: u64 = after
        .keys()
        .filter(|k| {
            !matches!(
                k.as_str(),
                "reads" | "ping" | "info" | "unwatch" | "cluster"
            )
        })
        .map(|k| d(k))
        .sum();
    // The session read and the limit hit travel together (one pipeline on a node, sent at once
    // to their two masters on a Cluster): one round trip of latency.
    let round_trips = hmget.max(hits) + mget;
    // Our INFOs of `after` were read in the window (and counted as `info` calls).
    let reads = d("reads").saturating_sub(d("ping") + d("info"));
    println!("    requests:             {}", lat.len());
    println!("    throughput:           {rate:.0} requests/s");
    println!(
        "    latency:              p50 {}  p99 {}  max {}",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "    redis commands:       {:.3} per request sent (HMGET {hmget}, limit hits {hits} of {} commands each, MGET {mget}, other {}; health checks excluded)",
        commands as f64 / n,
        HIT.len(),
        commands - hmget - in_hits - mget,
    );
    println!(
        "    redis round trips:    {:.3} per request of latency (session read + limit hit together = 1, MGET = 1)",
        round_trips as f64 / n
    );
    println!(
        "    redis socket reads:   {:.3} per request, summed over the nodes (under load concurrent requests share reads)",
        reads as f64 / n
    );
    println!(
        "    redis CPU:            {:.1} µs per request (utime+stime of every redis-server: {:.2} s)",
        cpu as f64 / clock_ticks() / n * 1e6,
        cpu as f64 / clock_ticks()
    );
    println!(
        "    server CPU:           {server_cpu:.1} µs per request (utime+stime of the service's threads)"
    );
    print_floor(&base, &cookie, connections, secs, server_cpu).await;
    Ok(rate)
}

async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let redis = RedisServer::start().await;
    let counters = RedisCounters::open(&redis).await;
    let rate = measure(
        &format!(
            "[1] cached GET /dashboard/stats on one redis-server (port {})",
            redis.port()
        ),
        RedisConfig::single(redis.url()),
        counters,
        || redis.cpu_ticks(),
    )
    .await?;

    println!("\n[2] redis-benchmark GET on the same redis-server");
    for extra in [&[][..], &["-P", "1"][..]] {
        let label = if extra.is_empty() {
            "-n 200000 -c 50 -q"
        } else {
            "-n 200000 -c 50 -q -P 1"
        };
        match redis_benchmark(redis.port(), extra) {
            Ok(get_rate) => println!(
                "    redis-benchmark {label}: {get_rate:.0} GET/s → service ÷ redis GET = {:.3} ({:.1}% of raw Redis GET throughput)",
                rate / get_rate,
                100.0 * rate / get_rate
            ),
            Err(why) => println!("    redis-benchmark {label}: NOT RUN: {why}"),
        }
    }

    if env("BENCH_CLUSTER", true) {
        let cluster = RedisCluster::start(false, Security::default()).await;
        let counters = RedisCounters::open_all(cluster.nodes()).await;
        measure(
            "[3] cached GET /dashboard/stats on a 3-master Redis Cluster",
            RedisConfig::cluster(&cluster.seeds()),
            counters,
            || cluster.cpu_ticks(),
        )
        .await?;
    }
    Ok(())
}
