//! `just bench-capacity`: how many portal users one instance core and one Redis core carry, from
//! a mixed workload of realistic users, at a stated latency target. Prints figures; asserts
//! nothing about time.
//!
//! # The user being modelled
//! A signed-in agent (or admin, or viewer) with the portal open all day: one WebSocket (pinged
//! by the server every 15 s, its session re-checked every 60 s, receiving every event of the
//! tenant), the dashboard's stats every 30 s, a page of conversation history every 60 s, and
//! (agents and admins) a widget send every 3 minutes, which the delivery simulator answers with
//! four events (`message_update`, then `sent`, `delivered`, `read`) to each of the tenant's
//! sockets. Tenants of `BENCH_TENANT_SIZE` (25) users.
//!
//! # How
//! `BENCH_CLIENTS` (50) real clients, each a signed-in session with its own socket, spread over
//! the two demo tenants, stand for `users` users each step: every client runs the schedule
//! `users / clients` times faster, and the server's ping and session re-check intervals are
//! shortened by the same factor, so per modelled user the instance and Redis do exactly the
//! work above (the same requests, pings, session checks and event deliveries per user-minute),
//! and a tenant's events still reach `BENCH_TENANT_SIZE` sockets. What the compression does not
//! reproduce is the memory of idle sockets: `just bench-ws` measures that (about 20 KiB each).
//!
//! Each step (`BENCH_USERS`, default `2000,5000,10000,20000,40000,80000`) starts the release
//! `agent-portal` binary (a child process, so its CPU is its own; embedded downstreams, the
//! shared throw-away `redis-server`) with those intervals, opens the sockets, and runs the
//! schedule open-loop for `BENCH_SECS` (10) s: every request is due at a fixed instant and its
//! latency counts from that instant, so a server falling behind shows in the latency instead
//! of slowing the load. Per step: requests/s, p50/p99/max latency, errors, events delivered,
//! the server's and Redis's CPU (`utime + stime` from `/proc/<pid>/stat`) as cores busy and per
//! request, and the server's resident memory.
//!
//! The capacity figure: the largest step whose p99 is within `BENCH_P99_MS` (50 ms), with no
//! error and every due request sent → users per server core and per Redis core (users divided
//! by the cores each was busy). The load generator, the server and Redis share the machine's
//! cores: the CPU per user is the figure that carries over to other machines.
//!
//! The per-user API rate limit (100/min) is raised out of the way, as each client stands for
//! many users (the hit is still made on every request); so are the sign-in limit and the
//! session and socket caps per user (50 sessions of four demo users).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::StreamExt;
use portal_redis::RedisServer;
use portal_sandbox::demo;
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{clock_ticks, env, ms, percentile, sign_in, stat_cpu_ticks};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const COOKIE_SECRET: &str = "bench-capacity-cookie-secret-0123456789abcdef";
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const FRONTEND: &str = "http://localhost:3000";

/// The modelled user's schedule (seconds between actions) and the server's socket timers.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    dashboard: f64,
    history: f64,
    send: f64,
    ping: f64,
    session_check: f64,
}

impl Schedule {
    fn from_env() -> Self {
        Self {
            dashboard: env("BENCH_DASHBOARD_SECS", 30.0),
            history: env("BENCH_HISTORY_SECS", 60.0),
            send: env("BENCH_SEND_SECS", 180.0),
            ping: 15.0,
            session_check: 60.0,
        }
    }
}

/// One real client: a signed-in session.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
    tenant: portal_domain::model::TenantId,
    /// An active conversation of the tenant when the role may send, else `None`.
    sends_to: Option<String>,
}

/// Which request a latency belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dashboard,
    History,
    Send,
}

#[derive(Debug, Default)]
struct Counters {
    errors: AtomicU64,
    frames: AtomicU64,
}

/// The running `agent-portal` of one step.
struct Portal {
    child: std::process::Child,
    base: String,
    port: u16,
}

impl Portal {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `agent-portal` binary next to this example (`target/release/examples/..` → `release/`).
fn portal_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("agent-portal");
    assert!(
        bin.exists(),
        "{} is missing: `just bench-capacity` builds it (cargo build --release -p portal-server --bin agent-portal)",
        bin.display()
    );
    bin
}

/// `utime + stime` of a process, in clock ticks.
fn proc_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_cpu_ticks(&stat))
        .unwrap_or(0)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Starts the binary on `redis` with the socket timers of `speedup`, and waits until ready.
async fn start_portal(redis: &RedisServer, schedule: Schedule, speedup: f64) -> Portal {
    let port = free_port();
    let millis = |secs: f64| {
        ((secs * 1000.0 / speedup).round() as u64)
            .max(10)
            .to_string()
    };
    let log =
        std::fs::File::create(std::env::temp_dir().join(format!("bench-capacity-{port}.log")))
            .unwrap();
    let child = Command::new(portal_binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("REDIS_URL", redis.url())
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .env("COOKIE_SECRET", COOKIE_SECRET)
        .env("ENCRYPTION_KEY", ENCRYPTION_KEY)
        .env("RATE_LIMIT_API_MAX", "1000000000")
        .env("RATE_LIMIT_AUTH_MAX", "100000")
        .env("SESSION_MAX_PER_USER", "1000")
        .env("WS_MAX_PER_SESSION", "1000000")
        .env("WS_MAX_PER_USER", "1000000")
        .env("WS_PING_INTERVAL_MS", millis(schedule.ping))
        .env("WS_SESSION_CHECK_MS", millis(schedule.session_check))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("agent-portal starts");
    let base = format!("http://localhost:{port}");
    let probe = Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = probe
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "agent-portal never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Portal { child, base, port }
}

/// An open conversation of `tenant` in the demo data.
fn active_conversation(tenant: portal_domain::model::TenantId) -> String {
    demo::generate(time::OffsetDateTime::now_utc())
        .conversations
        .iter()
        .find(|c| {
            c.conversation.tenant_id == tenant
                && c.conversation.status == portal_domain::model::ConversationStatus::Active
        })
        .map(|c| c.conversation.id.to_string())
        .expect("an active demo conversation")
}

/// Signs in `n` sessions spread over the demo tenants' users.
async fn sign_in_all(base: &str, n: usize) -> Vec<Session> {
    // Per tenant: mostly agents, some admins, a few viewers (acme); globex has an admin.
    let people = [
        demo::ACME_AGENT_EMAIL,
        demo::GLOBEX_ADMIN_EMAIL,
        demo::ACME_ADMIN_EMAIL,
        demo::GLOBEX_ADMIN_EMAIL,
        demo::ACME_AGENT_EMAIL,
        demo::GLOBEX_ADMIN_EMAIL,
        demo::ACME_VIEWER_EMAIL,
        demo::GLOBEX_ADMIN_EMAIL,
    ];
    let http = Client::new();
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let email = people[i % people.len()];
        let cookie = sign_in(base, email).await;
        let me: Value = http
            .get(format!("{base}/api/v1/auth/me"))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let csrf = me["csrfToken"].as_str().expect("csrfToken").to_owned();
        let tenant = if email.ends_with("acme.example") {
            demo::acme_tenant_id()
        } else {
            demo::globex_tenant_id()
        };
        let sends_to = (email != demo::ACME_VIEWER_EMAIL).then(|| active_conversation(tenant));
        sessions.push(Session {
            cookie,
            csrf,
            tenant,
            sends_to,
        });
    }
    sessions
}

/// Opens `session`'s socket; a task reads it (answering pings) and counts frames until `stop`.
async fn open_socket(
    port: u16,
    session: &Session,
    counters: Arc<Counters>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut req = format!("ws://localhost:{port}/tenant/{}/portal", session.tenant)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", session.cookie.parse().unwrap());
    req.headers_mut()
        .insert("origin", FRONTEND.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade accepted");
    tokio::spawn(async move {
        let mut ws = ws;
        let mut stop = stop;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                msg = ws.next() => match msg {
                    Some(Ok(m)) if m.is_text() => {
                        counters.frames.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                },
            }
        }
    })
}

/// One request of `kind`; whether it succeeded.
async fn request(http: &Client, base: &str, s: &Session, kind: Kind, n: u64) -> bool {
    let res = match kind {
        Kind::Dashboard => {
            http.get(format!("{base}/api/v1/dashboard/stats?period=today"))
                .header(header::COOKIE, &s.cookie)
                .send()
                .await
        }
        Kind::History => {
            http.get(format!("{base}/api/v1/history/threads?page=1&limit=20"))
                .header(header::COOKIE, &s.cookie)
                .send()
                .await
        }
        Kind::Send => {
            let conversation = s.sends_to.as_deref().unwrap_or_default();
            http.post(format!("{base}/api/v1/widget/send"))
                .header(header::COOKIE, &s.cookie)
                .header("x-csrf-token", &s.csrf)
                .header(
                    "idempotency-key",
                    format!("capacity-{}-{n}", uuid::Uuid::new_v4()),
                )
                .json(&json!({ "conversationId": conversation, "text": "Thanks, on it." }))
                .send()
                .await
        }
    };
    match res {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

/// One client's schedule for `kind`: due every `period`, first at `phase`; the latency of each
/// request counts from when it was due.
#[allow(clippy::too_many_arguments)]
async fn run_schedule(
    http: Client,
    base: String,
    session: Session,
    kind: Kind,
    period: Duration,
    phase: Duration,
    until: tokio::time::Instant,
    counters: Arc<Counters>,
) -> Vec<(Kind, Duration)> {
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut latencies = Vec::new();
    let mut n = 0;
    loop {
        let due = tokio::select! {
            due = timer.tick() => due,
            () = tokio::time::sleep_until(until) => break,
        };
        n += 1;
        if !request(&http, &base, &session, kind, n).await {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        latencies.push((kind, due.elapsed()));
    }
    latencies
}

/// What one step measured.
struct Step {
    users: u64,
    requests: usize,
    due: f64,
    secs: f64,
    latencies: Vec<Duration>,
    per_kind: Vec<(Kind, Duration)>,
    errors: u64,
    frames: u64,
    server_cores: f64,
    redis_cores: f64,
    /// This process (the load): when it is short of CPU, the figures say so.
    load_cores: f64,
    rss_mib: f64,
}

async fn step(redis: &RedisServer, sessions: &[Session], schedule: Schedule, users: u64) -> Step {
    let secs = env("BENCH_SECS", 10u64);
    let clients = sessions.len() as f64;
    let speedup = users as f64 / clients;
    let portal = start_portal(redis, schedule, speedup).await;
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for s in sessions {
        readers.push(open_socket(portal.port, s, counters.clone(), stop_rx.clone()).await);
    }
    let http = Client::builder()
        .pool_max_idle_per_host(sessions.len() * 3)
        .build()
        .unwrap();
    // Warm each tenant's caches (as a portal that has been open for a while has them).
    for s in sessions.iter().take(2) {
        request(&http, &portal.base, s, Kind::Dashboard, 0).await;
        request(&http, &portal.base, s, Kind::History, 0).await;
    }
    counters.errors.store(0, Ordering::Relaxed);
    counters.frames.store(0, Ordering::Relaxed);

    let senders = sessions.iter().filter(|s| s.sends_to.is_some()).count() as f64;
    let hz = clock_ticks();
    let me = std::process::id();
    let (server0, redis0, load0) = (proc_ticks(portal.pid()), redis.cpu_ticks(), proc_ticks(me));
    let started = tokio::time::Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    let mut due = 0.0;
    for (i, s) in sessions.iter().enumerate() {
        let mut kinds = vec![
            (Kind::Dashboard, schedule.dashboard),
            (Kind::History, schedule.history),
        ];
        if s.sends_to.is_some() {
            // Only some clients send: each sends as often as all users' sends need.
            kinds.push((Kind::Send, schedule.send * senders / clients));
        }
        for (kind, every) in kinds {
            let period = Duration::from_secs_f64(every / speedup);
            // Spread over the period, as users' clocks are.
            let phase = period.mul_f64(i as f64 / clients);
            due += secs as f64 / period.as_secs_f64();
            tasks.push(tokio::spawn(run_schedule(
                http.clone(),
                portal.base.clone(),
                s.clone(),
                kind,
                period,
                phase,
                until,
                counters.clone(),
            )));
        }
    }
    let mut per_kind = Vec::new();
    for t in tasks {
        per_kind.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (server1, redis1, load1) = (proc_ticks(portal.pid()), redis.cpu_ticks(), proc_ticks(me));
    let rss_mib = rss_mib(portal.pid());
    let errors = counters.errors.load(Ordering::Relaxed);
    let frames = counters.frames.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    drop(portal);
    let mut latencies: Vec<Duration> = per_kind.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    Step {
        users,
        requests: latencies.len(),
        due,
        secs: elapsed,
        latencies,
        per_kind,
        errors,
        frames,
        server_cores: (server1 - server0) as f64 / hz / elapsed,
        redis_cores: (redis1 - redis0) as f64 / hz / elapsed,
        load_cores: (load1 - load0) as f64 / hz / elapsed,
        rss_mib,
    }
}

fn p99_of(per_kind: &[(Kind, Duration)], kind: Kind) -> Duration {
    let mut v: Vec<Duration> = per_kind
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, d)| *d)
        .collect();
    v.sort();
    percentile(&v, 0.99)
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env("BENCH_CLIENT_THREADS", 2usize))
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let clients = env("BENCH_CLIENTS", 50usize);
    let target = Duration::from_millis(env("BENCH_P99_MS", 50u64));
    let steps: Vec<u64> = std::env::var("BENCH_USERS")
        .unwrap_or_else(|_| "2000,5000,10000,20000,40000,80000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let schedule = Schedule::from_env();
    let redis = RedisServer::start().await;
    let first = start_portal(&redis, schedule, 1.0).await;
    let sessions = sign_in_all(&first.base, clients).await;
    drop(first);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "bench-capacity: {clients} clients ({} per tenant), each user: a socket, stats every {} s, a history page every {} s, a send every {} s; \
         {} s per step; p99 target {}; {cores} cores shared by load, server and Redis; load average before: {}",
        clients / 2,
        schedule.dashboard,
        schedule.history,
        schedule.send,
        env("BENCH_SECS", 10u64),
        ms(target),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!(
        "\n{:>7} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>9} {:>8} {:>11} {:>7} {:>11} {:>8} {:>6}",
        "users",
        "req/s",
        "sent%",
        "p50",
        "p99",
        "p99 stats",
        "p99 hist",
        "p99 send",
        "errors",
        "events/s",
        "server",
        "users/core",
        "Redis",
        "users/core",
        "RSS MiB",
        "load",
    );
    let mut best: Option<Step> = None;
    for users in steps {
        let s = step(&redis, &sessions, schedule, users).await;
        let p99 = percentile(&s.latencies, 0.99);
        let per_core = |cores: f64| s.users as f64 / cores.max(1e-9);
        println!(
            "{:>7} {:>8.0} {:>6.1}% {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>9.0} {:>7.2}c {:>11.0} {:>6.2}c {:>11.0} {:>8.1} {:>5.2}c",
            s.users,
            s.requests as f64 / s.secs,
            100.0 * s.requests as f64 / s.due.max(1.0),
            ms(percentile(&s.latencies, 0.50)),
            ms(p99),
            ms(p99_of(&s.per_kind, Kind::Dashboard)),
            ms(p99_of(&s.per_kind, Kind::History)),
            ms(p99_of(&s.per_kind, Kind::Send)),
            s.errors,
            s.frames as f64 / s.secs,
            s.server_cores,
            per_core(s.server_cores),
            s.redis_cores,
            per_core(s.redis_cores),
            s.rss_mib,
            s.load_cores,
        );
        let within = p99 <= target && s.errors == 0 && s.requests as f64 >= 0.99 * s.due;
        if within {
            best = Some(s);
        }
    }
    println!();
    match best {
        Some(s) => {
            println!(
                "capacity at p99 <= {}: {} users served with the server {:.2} cores busy and Redis {:.2} cores busy",
                ms(target),
                s.users,
                s.server_cores,
                s.redis_cores
            );
            println!(
                "  => {:.0} users per server core, {:.0} users per Redis core (plus ~20 KiB of server memory per user's socket, see bench-ws)",
                s.users as f64 / s.server_cores.max(1e-9),
                s.users as f64 / s.redis_cores.max(1e-9)
            );
        }
        None => println!("no step met p99 <= {} without errors", ms(target)),
    }
    Ok(())
}
