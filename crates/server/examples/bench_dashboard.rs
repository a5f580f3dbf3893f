//! `just bench-dashboard`: load test of a cached `GET /api/v1/dashboard/stats` on the embedded
//! default, over loopback HTTP, with a real signed-in session. Prints figures; asserts
//! nothing about time.
//!
//! Phases:
//! 1. **Max throughput**: `BENCH_CONNECTIONS` (64) closed-loop connections for `BENCH_SECS`
//!    (10) seconds → requests/s, p50/p99 latency, server CPU per request (the service runs on
//!    threads of its own: `support::spawn_server`), store round trips and State Manager calls
//!    per request (counted by wrappers around the ports); then the same service's `GET
//!    /livez` floor (req/s, p99, server CPU per request).
//! 2. **Half that rate**, open loop (latency measured from each request's scheduled start, so
//!    a stall is not hidden) → p50/p99.
//! 3. **Cold key**: 1,000 concurrent requests for a period never fetched → State Manager calls
//!    (expected: exactly 1).
//!
//! The load generator (reqwest, in this process) shares the machine's cores with the server
//! (`BENCH_SERVER_WORKERS`, default 1 worker thread).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

mod support;

use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, DateRange, Message, Period,
    RawMetrics, Session, SessionKey, TenantId, UserId,
};
use portal_domain::ports::downstream::{StateManager, StateManagerError};
use portal_domain::ports::stores::{
    Cache, CacheEntry, CacheKey, CacheKind, CacheLookup, Lock, LockToken, RateDecision,
    RateLimiter, RatePolicy, SessionStore,
};
use portal_server::stores::Stores;
use portal_server::{Application, Overrides, Settings};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{
    client, env, get, measured_rate, ms, percentile, print_floor, sign_in, spawn_server,
};
use time::OffsetDateTime;

/// Calls through the wrapped ports.
#[derive(Default)]
struct Counters {
    store: AtomicU64,
    downstream: AtomicU64,
}

impl Counters {
    fn store(&self) {
        self.store.fetch_add(1, Ordering::Relaxed);
    }
    fn snapshot(&self) -> (u64, u64) {
        (
            self.store.load(Ordering::Relaxed),
            self.downstream.load(Ordering::Relaxed),
        )
    }
}

struct CountingSessions(Arc<dyn SessionStore>, Arc<Counters>);

#[async_trait]
impl SessionStore for CountingSessions {
    async fn create(&self, k: &SessionKey, s: &Session, ttl: Duration) -> Result<(), StoreError> {
        self.1.store();
        self.0.create(k, s, ttl).await
    }
    async fn get(&self, k: &SessionKey) -> Result<Option<Session>, StoreError> {
        self.1.store();
        self.0.get(k).await
    }
    async fn replace(
        &self,
        k: &SessionKey,
        s: &Session,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.1.store();
        self.0.replace(k, s, ttl).await
    }
    async fn touch(&self, k: &SessionKey, at: OffsetDateTime) -> Result<(), StoreError> {
        self.1.store();
        self.0.touch(k, at).await
    }
    async fn delete(&self, k: &SessionKey) -> Result<(), StoreError> {
        self.1.store();
        self.0.delete(k).await
    }
    async fn list_for_user(&self, u: &UserId) -> Result<Vec<(SessionKey, Session)>, StoreError> {
        self.1.store();
        self.0.list_for_user(u).await
    }
    async fn delete_all_for_user(&self, u: &UserId) -> Result<Vec<SessionKey>, StoreError> {
        self.1.store();
        self.0.delete_all_for_user(u).await
    }
}

struct CountingLimiter(Arc<dyn RateLimiter>, Arc<Counters>);

#[async_trait]
impl RateLimiter for CountingLimiter {
    async fn hit(&self, k: &str, p: RatePolicy, cost: u32) -> Result<RateDecision, StoreError> {
        self.1.store();
        self.0.hit(k, p, cost).await
    }
}

struct CountingCache(Arc<dyn Cache>, Arc<Counters>);

#[async_trait]
impl Cache for CountingCache {
    async fn get(&self, k: &CacheKey) -> Result<CacheLookup, StoreError> {
        self.1.store();
        self.0.get(k).await
    }
    async fn put(&self, k: &CacheKey, e: &CacheEntry, retain: Duration) -> Result<(), StoreError> {
        self.1.store();
        self.0.put(k, e, retain).await
    }
    async fn invalidate(&self, t: TenantId, kind: CacheKind) -> Result<u64, StoreError> {
        self.1.store();
        self.0.invalidate(t, kind).await
    }
}

struct CountingLock(Arc<dyn Lock>, Arc<Counters>);

#[async_trait]
impl Lock for CountingLock {
    async fn try_acquire(&self, n: &str, ttl: Duration) -> Result<Option<LockToken>, StoreError> {
        self.1.store();
        self.0.try_acquire(n, ttl).await
    }
    async fn renew(&self, n: &str, t: &LockToken, ttl: Duration) -> Result<bool, StoreError> {
        self.1.store();
        self.0.renew(n, t, ttl).await
    }
    async fn release(&self, n: &str, t: &LockToken) -> Result<bool, StoreError> {
        self.1.store();
        self.0.release(n, t).await
    }
}

/// Counts every State Manager call; metrics calls take 20 ms, like a real downstream, so the
/// cold-key phase has a window in which the 1,000 requests pile up.
struct CountingStateManager(Arc<dyn StateManager>, Arc<Counters>);

impl CountingStateManager {
    fn count(&self) {
        self.1.downstream.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl StateManager for CountingStateManager {
    async fn conversations(
        &self,
        t: TenantId,
        q: ConversationQuery,
    ) -> Result<ConversationPage, StateManagerError> {
        self.count();
        self.0.conversations(t, q).await
    }
    async fn conversation(&self, id: ConversationId) -> Result<Conversation, StateManagerError> {
        self.count();
        self.0.conversation(id).await
    }
    async fn messages(&self, id: ConversationId) -> Result<Vec<Message>, StateManagerError> {
        self.count();
        self.0.messages(id).await
    }
    async fn metrics(&self, t: TenantId, p: Period) -> Result<RawMetrics, StateManagerError> {
        self.count();
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.0.metrics(t, p).await
    }
    async fn metrics_range(
        &self,
        t: TenantId,
        r: DateRange,
    ) -> Result<RawMetrics, StateManagerError> {
        self.count();
        self.0.metrics_range(t, r).await
    }
}

/// Open loop at `rate` requests/s; latency from each request's scheduled start.
async fn fixed_rate(
    url: &str,
    cookie: &str,
    connections: usize,
    rate: f64,
    secs: u64,
) -> Vec<Duration> {
    let client = client(connections);
    let per_conn = Duration::from_secs_f64(connections as f64 / rate);
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let (client, url, cookie) = (client.clone(), url.to_owned(), cookie.to_owned());
            // Stagger the connections across one interval.
            let first = started + per_conn.mul_f64(i as f64 / connections as f64);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut due = first;
                while due < end {
                    tokio::time::sleep_until(due.into()).await;
                    get(&client, &url, &cookie).await;
                    lat.push(due.elapsed());
                    due += per_conn;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn main() -> anyhow::Result<()> {
    let client_threads = env("BENCH_CLIENT_THREADS", 2usize);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs = env("BENCH_SECS", 10u64);
    let connections = env("BENCH_CONNECTIONS", 64usize);
    let server_workers = env("BENCH_SERVER_WORKERS", 1usize);
    let cold_requests = env("BENCH_COLD_REQUESTS", 1000usize);
    let client_threads = env("BENCH_CLIENT_THREADS", 2usize);

    let counters = Arc::new(Counters::default());
    let settings = Settings {
        port: 0,
        workers: Some(server_workers),
        // The API limit (100/min per user) would refuse almost every request of a load test;
        // one unit a microsecond is out of the way and still recorded (a higher limit never
        // refuses, so never writes).
        rate_limit_api_max: 1_000_000,
        rate_limit_api_window_secs: 1,
        // `BENCH_METRICS=false` measures without the Prometheus recorder.
        metrics_enabled: env("BENCH_METRICS", true),
        ..Settings::default()
    };
    let overrides = Overrides {
        wrap_stores: Some(Arc::new({
            let c = counters.clone();
            move |mut s: Stores| {
                s.ports.sessions = Arc::new(CountingSessions(s.ports.sessions, c.clone()));
                s.ports.rate_limiter = Arc::new(CountingLimiter(s.ports.rate_limiter, c.clone()));
                s.ports.cache = Arc::new(CountingCache(s.ports.cache, c.clone()));
                s.ports.lock = Arc::new(CountingLock(s.ports.lock, c.clone()));
                s
            }
        })),
        wrap_state_manager: Some(Arc::new({
            let c = counters.clone();
            move |sm| Arc::new(CountingStateManager(sm, c.clone())) as Arc<dyn StateManager>
        })),
        ..Overrides::default()
    };
    let port = spawn_server(move || Application::build_with(settings, overrides)).await?;
    let base = format!("http://localhost:{port}");

    let cookie = sign_in(&base, "admin@acme.example").await;
    let url = format!("{base}/api/v1/dashboard/stats?period=today");
    println!(
        "bench-dashboard: embedded default, {server_workers} server worker(s), {client_threads} client thread(s), {connections} connections, {secs} s per phase"
    );

    // Warm the key (and the connections).
    let warm = client(connections);
    get(&warm, &url, &cookie).await;

    // 1. Max throughput, cached.
    let before = counters.snapshot();
    let (rate, lat, server_cpu) = measured_rate(&url, &cookie, connections, secs).await;
    let after = counters.snapshot();
    let n = lat.len() as f64;
    println!("\n[1] cached GET /dashboard/stats, closed loop");
    println!("    requests:          {}", lat.len());
    println!("    throughput:        {rate:.0} requests/s");
    println!(
        "    latency:           p50 {}  p99 {}  max {}",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "    server CPU:        {server_cpu:.1} µs per request (utime+stime of the service's threads)"
    );
    println!(
        "    store round trips: {:.3} per request (session get, rate-limit hit, cache get)",
        (after.0 - before.0) as f64 / n
    );
    println!(
        "    downstream calls:  {} in total, {:.4} per request",
        after.1 - before.1,
        (after.1 - before.1) as f64 / n
    );
    print_floor(&base, &cookie, connections, secs, server_cpu).await;

    // 2. Half the measured max rate, open loop.
    let half = rate / 2.0;
    let before = counters.snapshot();
    let lat = fixed_rate(&url, &cookie, connections, half, secs).await;
    let after = counters.snapshot();
    println!("\n[2] cached GET /dashboard/stats at {half:.0} requests/s (half of max), open loop");
    println!(
        "    requests:          {} ({:.0}/s achieved)",
        lat.len(),
        lat.len() as f64 / secs as f64
    );
    println!(
        "    latency:           p50 {}  p99 {}  max {}",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!("    downstream calls:  {}", after.1 - before.1);

    // 3. Cold key under concurrent load.
    let cold_url = format!("{base}/api/v1/dashboard/stats?period=week");
    let cold_client = client(cold_requests);
    let barrier = Arc::new(tokio::sync::Barrier::new(cold_requests));
    let before = counters.snapshot();
    let started = Instant::now();
    let tasks: Vec<_> = (0..cold_requests)
        .map(|_| {
            let (client, url, cookie, barrier) = (
                cold_client.clone(),
                cold_url.clone(),
                cookie.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                get(&client, &url, &cookie).await;
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let after = counters.snapshot();
    println!("\n[3] cold key (period=week), {cold_requests} concurrent requests");
    println!("    all answered 200 in {}", ms(started.elapsed()));
    println!(
        "    downstream calls:  {} (State Manager metrics calls for the cold key)",
        after.1 - before.1
    );
    println!(
        "    store round trips: {:.3} per request",
        (after.0 - before.0) as f64 / cold_requests as f64
    );
    Ok(())
}
