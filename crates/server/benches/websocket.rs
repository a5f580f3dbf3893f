//! `just bench-ws`: the WebSocket benchmark of issue 5 on the embedded default, in process, on
//! a loopback port. Prints figures against the targets; asserts nothing about time.
//!
//! Phases:
//! 1. **Sockets**: `BENCH_SOCKETS` (10,000) concurrent sockets, each authenticated with its own
//!    single-use ticket (`POST /api/v1/auth/ws-ticket`) from one session per demo tenant:
//!    `BENCH_FANOUT_SOCKETS` (1,000) of Acme, the rest of Globex. Resident memory per socket =
//!    (VmRSS after − VmRSS before) / sockets. **The clients live in this process too**, so the
//!    figure covers both ends of each connection (server socket + tokio-tungstenite client with
//!    4 KiB buffers + one client task): an upper bound of the server's cost per socket.
//! 2. **Fan-out latency**: `BENCH_EVENTS` (50) status events for Acme, one at a time, published
//!    on the instance's event bus; each client timestamps arrival → p50/p99/max of the time
//!    until the **last** of the 1,000 Acme sockets has the event, and over all deliveries.
//! 3. **Throughput**: bursts of `BENCH_BURST` (100) events (below the per-socket queue of 256)
//!    for `BENCH_SECS` (5) seconds; frames received across the Acme clients per second.
//!
//! Globex's sockets count every frame they receive: any Acme event there is reported as a leak.
//! Raise the open-file limit first (`ulimit -n`; the just recipe does): each socket needs two
//! descriptors in this process; the bench lowers the socket count to fit, with a message.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use futures::{StreamExt, stream};
use portal_domain::model::{MessageId, MessageStatus, StatusUpdate, TenantEvent, TenantId};
use portal_sandbox::demo;
use portal_server::{Application, Overrides, Settings};
use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const FRONTEND: &str = "http://localhost:3000";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `/proc/self/status`, opened once at start: while 10,000 sockets are open the process may
/// have no file descriptor left to open it again (an earlier run read 0 KiB that way).
static PROC_STATUS: std::sync::OnceLock<Option<std::sync::Mutex<std::fs::File>>> =
    std::sync::OnceLock::new();

fn read_proc_status() -> Option<String> {
    use std::io::{Read, Seek};
    let file = PROC_STATUS
        .get_or_init(|| {
            std::fs::File::open("/proc/self/status")
                .ok()
                .map(std::sync::Mutex::new)
        })
        .as_ref()?;
    let mut file = file.lock().ok()?;
    file.rewind().ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// A `/proc/self/status` field in KiB (0 when it cannot be read).
fn proc_status_kib(field: &str) -> u64 {
    read_proc_status()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The soft open-files limit from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISSED" }
}

/// Signs in through the real redirect chain; a cookie-keeping client and its CSRF token.
async fn sign_in(base: &str, email: &str) -> (Client, String) {
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let res = client
        .get(format!("{base}/api/v1/auth/login?login_hint={email}"))
        .send()
        .await
        .unwrap();
    let authorize = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let res = client.get(authorize).send().await.unwrap();
    let callback = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let res = client.get(callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "sign-in");
    let me: Value = client
        .get(format!("{base}/api/v1/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = me["csrfToken"].as_str().unwrap().to_owned();
    (client, csrf)
}

async fn ticket(base: &str, client: &Client, csrf: &str) -> String {
    let res = client
        .post(format!("{base}/api/v1/auth/ws-ticket"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "ws-ticket");
    let body: Value = res.json().await.unwrap();
    body["ticket"].as_str().unwrap().to_owned()
}

fn status_event(tenant: TenantId, id: &str) -> TenantEvent {
    TenantEvent::Status {
        tenant_id: tenant,
        update: StatusUpdate {
            message_id: MessageId::parse(id).unwrap(),
            status: MessageStatus::Delivered,
            timestamp: OffsetDateTime::now_utc(),
            conversation_id: None,
        },
    }
}

/// What the client tasks report.
struct Shared {
    /// Frames received by Acme's clients.
    acme_frames: AtomicU64,
    /// Frames received by Globex's clients (Acme's events there would be a leak).
    globex_frames: AtomicU64,
    /// Sockets that ended (closed by the server or failed).
    closed: AtomicU64,
    /// Fan-out arrivals: (event index, arrival).
    arrivals: mpsc::UnboundedSender<(usize, Instant)>,
}

/// Reads one socket until it ends; fan-out events (`bf-NNNNNN`) are timestamped.
async fn client_task(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    acme: bool,
    shared: Arc<Shared>,
) {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                let at = Instant::now();
                if !acme {
                    shared.globex_frames.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                shared.acme_frames.fetch_add(1, Ordering::Relaxed);
                let s = t.as_str();
                if let Some(i) = s.find("bf-")
                    && let Some(n) = s.get(i + 3..i + 9).and_then(|d| d.parse().ok())
                {
                    let _ = shared.arrivals.send((n, at));
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
}

#[tokio::main]
async fn main() {
    // Open /proc/self/status now, while descriptors are plentiful.
    let _ = read_proc_status();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut sockets: usize = env("BENCH_SOCKETS", 10_000);
    let fanout: usize = env("BENCH_FANOUT_SOCKETS", 1_000);
    let events: usize = env("BENCH_EVENTS", 50);
    let burst: usize = env("BENCH_BURST", 100);
    let secs: u64 = env("BENCH_SECS", 5);
    let workers: usize = env("BENCH_SERVER_WORKERS", 1);

    match open_files_limit() {
        Some(limit) if (limit as usize) < sockets * 2 + 256 => {
            let fit = (limit as usize).saturating_sub(256) / 2;
            println!(
                "!! open-file limit {limit} is too low for {sockets} sockets (two descriptors each, client and server in this process); \
                 running with {fit}. Raise it with `ulimit -n {}` (the `just bench-ws` recipe tries).",
                sockets * 2 + 256
            );
            sockets = fit;
        }
        Some(_) => {}
        None => println!("!! could not read the open-file limit; trying {sockets} sockets"),
    }
    let fanout = fanout.min(sockets);

    let settings = Settings {
        port: 0,
        workers: Some(workers),
        rate_limit_api_max: 100_000_000,
        rate_limit_auth_max: 1_000_000,
        ..Settings::default()
    };
    let app = Application::build_with(settings, Overrides::default())
        .await
        .expect("application builds");
    let port = app.port();
    let bus = app.realtime().bus.clone();
    tokio::spawn(app.run_until_stopped());
    let base = format!("http://127.0.0.1:{port}");
    println!(
        "WebSocket benchmark: embedded default on 127.0.0.1:{port}, {workers} server worker(s); clients in the same process"
    );

    let acme = demo::acme_tenant_id();
    let globex = demo::globex_tenant_id();
    let (acme_client, acme_csrf) = sign_in(&base, demo::ACME_AGENT_EMAIL).await;
    let (globex_client, globex_csrf) = sign_in(&base, demo::GLOBEX_ADMIN_EMAIL).await;

    let (tx, mut arrivals) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        acme_frames: AtomicU64::new(0),
        globex_frames: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        arrivals: tx,
    });
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024);

    // Phase 1: open the sockets.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = proc_status_kib("VmRSS:");
    let started = Instant::now();
    let opened = stream::iter(0..sockets)
        .map(|i| {
            let is_acme = i < fanout;
            let (client, csrf, tenant) = if is_acme {
                (&acme_client, &acme_csrf, acme)
            } else {
                (&globex_client, &globex_csrf, globex)
            };
            let base = &base;
            let shared = shared.clone();
            async move {
                let t = ticket(base, client, csrf).await;
                let mut req = format!("ws://127.0.0.1:{port}/tenant/{tenant}/portal?ticket={t}")
                    .into_client_request()
                    .unwrap();
                req.headers_mut()
                    .insert("origin", FRONTEND.parse().unwrap());
                match tokio_tungstenite::connect_async_with_config(req, Some(config), true).await {
                    Ok((ws, _)) => {
                        tokio::spawn(client_task(ws, is_acme, shared));
                        true
                    }
                    Err(e) => {
                        eprintln!("socket {i}: {e}");
                        false
                    }
                }
            }
        })
        .buffer_unordered(128)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let open_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = proc_status_kib("VmRSS:");
    if rss_before == 0 || rss_after == 0 {
        println!("   (VmRSS could not be read: the memory figure below is not a measurement)");
    }
    let per_socket = (rss_after.saturating_sub(rss_before)) as f64 / opened.max(1) as f64;
    println!(
        "\n== 1. {opened} concurrent authenticated sockets ({fanout} Acme, {} Globex), opened in {:.1} s",
        opened.saturating_sub(fanout),
        open_time.as_secs_f64()
    );
    println!(
        "   VmRSS {rss_before} KiB -> {rss_after} KiB: {per_socket:.1} KiB per socket (both ends, upper bound for the server) \
         — target < 20 KiB: {}",
        verdict(per_socket < 20.0)
    );

    // Phase 2: fan-out latency.
    let mut last = Vec::with_capacity(events);
    let mut all = Vec::with_capacity(events * fanout);
    let mut missing = 0usize;
    for e in 0..events {
        let sent = Instant::now();
        bus.publish(&status_event(acme, &format!("bf-{e:06}")))
            .await
            .expect("publish");
        let mut got = 0usize;
        let mut latest = Duration::ZERO;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while got < fanout {
            match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Ok(Some((n, at))) if n == e => {
                    got += 1;
                    let d = at.saturating_duration_since(sent);
                    latest = latest.max(d);
                    all.push(d);
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        missing += fanout - got;
        last.push(latest);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    last.sort();
    all.sort();
    println!("\n== 2. Fan-out of one event to {fanout} Acme sockets, {events} events");
    println!(
        "   until the last socket has it: p50 {} p99 {} max {} — target p99 < 50 ms: {}",
        ms(percentile(&last, 0.5)),
        ms(percentile(&last, 0.99)),
        ms(last.last().copied().unwrap_or_default()),
        verdict(percentile(&last, 0.99) < Duration::from_millis(50))
    );
    println!(
        "   per delivery: p50 {} p99 {} ({} deliveries missing)",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        missing
    );

    // Phase 3: throughput in bursts.
    let start_frames = shared.acme_frames.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut published = 0u64;
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let target = shared.acme_frames.load(Ordering::Relaxed) + (burst * fanout) as u64;
        for _ in 0..burst {
            n += 1;
            bus.publish(&status_event(acme, &format!("bt-{n}")))
                .await
                .expect("publish");
            published += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while shared.acme_frames.load(Ordering::Relaxed) < target && Instant::now() < deadline {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let elapsed = started.elapsed();
    let delivered = shared.acme_frames.load(Ordering::Relaxed) - start_frames;
    let rate = delivered as f64 / elapsed.as_secs_f64();
    println!(
        "\n== 3. Events delivered to {fanout} Acme sockets, bursts of {burst} for {:.1} s",
        elapsed.as_secs_f64()
    );
    println!(
        "   {published} events published, {delivered} frames received ({} expected): {rate:.0} events/s — target >= 100,000/s: {}",
        published * fanout as u64,
        verdict(rate >= 100_000.0)
    );

    println!("\n== Checks");
    println!(
        "   frames on Globex's sockets (must be 0: Acme's events only go to Acme): {}",
        shared.globex_frames.load(Ordering::Relaxed)
    );
    println!(
        "   sockets closed during the run (e.g. 1013 slow consumer): {}",
        shared.closed.load(Ordering::Relaxed)
    );
    println!(
        "   peak VmHWM {} KiB, threads {}",
        proc_status_kib("VmHWM:"),
        proc_status_kib("Threads:")
    );
}
