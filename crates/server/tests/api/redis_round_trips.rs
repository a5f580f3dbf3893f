//! Redis round trips of a cached `GET /api/v1/dashboard/stats` with a valid session: one per
//! request (the session read with the API rate-limit hit pipelined into it; the cache entry is
//! read from Redis at most once per `METRICS_NEAR_FOR` per instance and key, and served from
//! the instance's memory in between), and the per-user API limit still shared by every
//! instance, on one node, a Sentinel-managed master and a Cluster.
//!
//! On a Cluster the session and the user's limit live in different slots (usually on two
//! masters): the two commands go out at the same time, each to its master (one round trip of
//! latency, two socket reads when the masters differ). The test checks the commands (no
//! `MOVED` retry, no `CROSSSLOT`, one of each per request) and at most 2 reads per request
//! summed over the nodes; portal-redis's `tests/topologies.rs` checks, with one master paused,
//! that the session read does not wait for the limit hit.
//!
//! # How round trips are counted
//! Against a real `redis-server` (portal-redis's harness), from `INFO` deltas around 100
//! sequential requests (one at a time, so no two requests' commands can share a network read):
//! - `INFO commandstats` gives the calls per command: we expect exactly one `HMGET` (session)
//!   and one rate-limit hit (`SET`, `INCRBY`, `PTTL`) per request, an `MGET`
//!   (cache entry + generation) at most once per started `METRICS_NEAR_FOR` of the run (plus
//!   one), and nothing else but the health monitor's `PING`s and our own `INFO`s.
//! - `INFO stats` `total_reads_processed` counts the reads Redis did on client sockets: a
//!   pipeline is written by the client in one go and read by Redis in one read, so this is
//!   the number of round trips. Minus the `PING`s (one read each), our `INFO`s and the `MGET`s,
//!   it must be at most 1 per request: the `HMGET` and the hit (one pipeline), with a few reads of
//!   slack for background noise (2 round trips per request would add 100).

#![allow(clippy::print_stdout)] // measured figures, shown with --nocapture

use crate::helpers::*;
use crate::redis_support::{Deployment, on_topologies};
use portal_domain::dashboard::METRICS_NEAR_FOR;
use portal_server::Settings;
use reqwest::{Client, StatusCode};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Counters that moved between two `command_calls` snapshots.
fn delta(after: &HashMap<String, u64>, before: &HashMap<String, u64>) -> HashMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .collect()
}

/// How long an instance may take to see Redis answer (until then its limiter limits in
/// process).
const HEALTHY_WITHIN: Duration = Duration::from_secs(5);

/// `GET /api/v1/dashboard/stats` with `session`'s cookie; its status once read to the end.
async fn stats(session: &Client, app: &TestApp) -> StatusCode {
    let res = session
        .get(app.url("/api/v1/dashboard/stats?period=today"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    res.bytes().await.unwrap();
    status
}

on_topologies!(round_trips:
    a_cached_dashboard_request_costs_one_redis_round_trip => Deployment::single(),
    on_sentinel_a_cached_dashboard_request_costs_one_redis_round_trip => Deployment::sentinel(),
    on_a_cluster_a_cached_dashboard_request_costs_one_round_trip_of_latency => Deployment::own_cluster(),
);

/// The commands of one rate-limit hit: `SET NX PX` (opens a window), `INCRBY`, `PTTL`, sent with
/// the session read.
const LIMIT_HIT: [&str; 3] = ["set", "incrby", "pttl"];

async fn round_trips(redis: Deployment) {
    let cluster = redis.name() == "cluster";
    let app = spawn_app_with(|s| Settings {
        rate_limit_api_max: 10_000,
        ..with_redis(s, redis.config())
    })
    .await;
    app.wait_for("/health", StatusCode::OK, HEALTHY_WITHIN)
        .await;
    let admin = app.session("admin@acme.example").await;
    // Warm-up: fills the cache and lets the instance learn the session's user.
    for _ in 0..3 {
        assert_eq!(stats(&admin, &app).await, StatusCode::OK);
    }

    const N: u64 = 100;
    let mut counters = redis.counters().await;
    let nodes = counters.nodes();
    let calls_before = counters.command_calls().await;
    let reads_before = counters.reads_processed().await;
    let started = Instant::now();
    for _ in 0..N {
        assert_eq!(stats(&admin, &app).await, StatusCode::OK);
    }
    let elapsed = started.elapsed();
    let reads_after = counters.reads_processed().await;
    let calls_after = counters.command_calls().await;

    let mut calls = delta(&calls_after, &calls_before);
    let pings = calls.remove("ping").unwrap_or(0);
    // Our INFOs, in order: commandstats (before), stats (before), stats (after), commandstats
    // (after). A command is counted in commandstats once it has run, so the delta holds the
    // first three; the reads delta holds only the third (a read is counted when it happens).
    assert_eq!(calls.remove("info"), Some(3 * nodes), "{calls:?}");
    assert_eq!(
        calls.get("hmget"),
        Some(&N),
        "one session read each: {calls:?}"
    );
    // One limit hit each: a transaction of plain commands, no script.
    for command in LIMIT_HIT {
        assert_eq!(
            calls.get(command),
            Some(&N),
            "one limit hit each ({command}): {calls:?}"
        );
    }
    // The cache entry: read once, then served from the instance for METRICS_NEAR_FOR.
    let mgets = calls.get("mget").copied().unwrap_or(0);
    let near_periods = (elapsed.as_secs_f64() / METRICS_NEAR_FOR.as_secs_f64()).ceil() as u64;
    assert!(
        mgets <= near_periods + 1,
        "at most one cache read per {METRICS_NEAR_FOR:?} ({elapsed:?}): {calls:?}"
    );
    // Deadpool's recycle check (`UNWATCH`) must not appear: commands share one multiplexed
    // connection instead of checking one out of the pool each time.
    let others: Vec<_> = calls
        .keys()
        .filter(|c| !["hmget", "mget"].contains(&c.as_str()))
        .filter(|c| !LIMIT_HIT.contains(&c.as_str()))
        // The cluster client's own topology queries (`CLUSTER SLOTS`/`NODES`), if any.
        .filter(|c| !(cluster && c.as_str() == "cluster"))
        .collect();
    assert!(
        others.is_empty(),
        "no other command on the cached path (no lastActivity write, no lock, no pool recycle): {calls:?}"
    );

    // Reads Redis did in the window: our requests' round trips, one per health PING, and our
    // third INFO. (A PING falling between our first two or last two INFOs would be
    // subtracted without being in the window: an undercount of at most a PING or two, which
    // cannot hide a third round trip per request.)
    let reads = reads_after - reads_before;
    let round_trips = reads.saturating_sub(pings + nodes);
    println!(
        "{N} cached requests in {elapsed:?}: {} commands, {round_trips} round trips ({:.2} per request)",
        (1 + LIMIT_HIT.len() as u64) * N + mgets,
        round_trips as f64 / N as f64
    );
    // A few reads of slack: Redis also counts a read for a new health-check connection or a
    // read event that found nothing; a second round trip per request would add N.
    let per_request = if cluster { 2 } else { 1 };
    assert!(
        round_trips <= per_request * N + mgets + 5 * nodes,
        "{}: {round_trips} reads for {N} cached requests (pings {pings}, reads {reads})",
        redis.name()
    );
}

on_topologies!(api_limit_is_shared:
    the_per_user_api_limit_is_shared_across_instances => Deployment::single(),
    on_a_cluster_the_per_user_api_limit_is_shared_across_instances => Deployment::cluster(),
);

async fn api_limit_is_shared(redis: Deployment) {
    const LIMIT: u32 = 10;
    let limited = |s: Settings| Settings {
        rate_limit_api_max: LIMIT,
        ..with_redis(s, redis.config())
    };
    let (a, b) = (spawn_app_with(limited).await, spawn_app_with(limited).await);
    a.wait_for("/health", StatusCode::OK, HEALTHY_WITHIN).await;
    b.wait_for("/health", StatusCode::OK, HEALTHY_WITHIN).await;
    let admin = a.session("admin@acme.example").await;
    let (mut ok, mut limited) = (0, 0);
    // Alternating instances: each one's first request of the session takes the plain path
    // (separate limiter call), the later ones the pipelined one; all hit the same counter.
    for i in 0..30 {
        let instance = if i % 2 == 0 { &a } else { &b };
        match stats(&admin, instance).await {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        ok, LIMIT,
        "the sum across instances obeys the per-user limit"
    );
    assert_eq!(limited, 30 - LIMIT);
}
