//! `just bench-ws`: the WebSocket benchmark on the embedded default, on a loopback
//! port. Prints figures against the targets; asserts nothing about time.
//!
//! Two processes: this one runs the **server** (the embedded default, one instance) and
//! publishes events on its event bus; it re-executes itself with `BENCH_ROLE=clients` to run
//! the **clients** (tokio-tungstenite) in a child process, so the server's resident memory is
//! measured alone and each process needs only one descriptor per socket. They coordinate over
//! the child's stdin/stdout, one command or reply per line; times cross the process boundary
//! as wall-clock nanoseconds (one machine, one clock).
//!
//! Phases:
//! 1. **Sockets**: `BENCH_SOCKETS` (10,000) concurrent sockets, each authenticated with its own
//!    single-use ticket (`POST /api/v1/auth/ws-ticket`) from one session per demo tenant:
//!    `BENCH_FANOUT_SOCKETS` (1,000) of Acme, the rest of Globex. Resident memory per socket =
//!    (server VmRSS with the sockets open − server VmRSS before) / sockets.
//! 2. **Fan-out latency**: `BENCH_EVENTS` (50) status events for Acme, one at a time; the time
//!    from publish until the **last** of the 1,000 Acme sockets has the event → p50/p99/max,
//!    and the same over every single delivery.
//! 3. **Throughput**: bursts of `BENCH_BURST` (100) events (below the per-socket queue of 256)
//!    for `BENCH_SECS` (5) seconds; frames received across the Acme clients per second.
//! 4. **Mass reconnect** (a deploy; `BENCH_RECONNECT=false` skips it): on a throw-away
//!    `redis-server`, instance A holds `BENCH_RECONNECT_SOCKETS` (1,000) Acme sockets that all
//!    saw one event; A closes them (1001, as at shutdown), `BENCH_MISSED` (20) events are
//!    published, and every socket reconnects **at once** to a fresh instance B with
//!    `?since=<last id>`. Reported: time until all have `recovered`, whether each got exactly
//!    the missed events, and the history reads: `XRANGE` calls on Redis (`INFO commandstats`)
//!    and B's own count, against the target of ≤ 10 per instance.
//!
//! Globex's sockets count every frame they receive: any Acme event there is reported as a leak.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

// The binary's allocator (crates/server/src/main.rs), so memory per socket is what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use futures::{StreamExt, stream};
use portal_domain::model::{MessageId, MessageStatus, StatusUpdate, TenantEvent, TenantId};
use portal_sandbox::demo;
use portal_server::{Application, Overrides, Settings};
use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const FRONTEND: &str = "http://localhost:3000";
/// Shared by the Redis instances of phase 4 (a deployment's instances share their secrets).
const COOKIE_SECRET: &str = "bench-websocket-cookie-secret-0123456789abcdef";
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

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

/// Wall-clock nanoseconds: comparable between the two processes of one machine.
fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Descriptors the server holds per WebSocket: the socket, and the duplicate it keeps to close
/// the connection promptly (`portal_api::connections`).
const SERVER_FDS_PER_SOCKET: usize = 2;

/// Fits `wanted` sockets of `per_socket` descriptors each under this process's open-file
/// limit.
fn fit_to_open_files(wanted: usize, per_socket: usize, role: &str) -> usize {
    let needed = wanted * per_socket + 256;
    match open_files_limit() {
        Some(limit) if (limit as usize) < needed => {
            let fit = (limit as usize).saturating_sub(256) / per_socket;
            println!(
                "!! {role}: open-file limit {limit} is too low for {wanted} sockets ({per_socket} descriptors each); \
                 running with {fit}. Raise it with `ulimit -n {needed}` (the `just bench-ws` recipe tries)."
            );
            fit
        }
        Some(_) => wanted,
        None => {
            println!("!! {role}: could not read the open-file limit; trying {wanted} sockets");
            wanted
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client process.
// ---------------------------------------------------------------------------------------------

/// What the client tasks report.
struct Shared {
    /// Frames received by Acme's clients.
    acme_frames: AtomicU64,
    /// Frames received by Globex's clients (Acme's events there would be a leak).
    globex_frames: AtomicU64,
    /// Sockets that ended (closed by the server or failed).
    closed: AtomicU64,
    /// Fan-out arrivals: (event index, wall-clock arrival in ns).
    arrivals: mpsc::UnboundedSender<(usize, u64)>,
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
                let at = wall_ns();
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

/// The child: signs in, opens the sockets, then answers the server's commands:
/// - `OPEN n fanout` → opens the sockets → `OPENED n`
/// - `FANOUT e sent_ns` → waits (2 s at most) for event `e` on every Acme socket →
///   `FANOUT got last_ns d1,d2,...` (per-delivery latencies in µs)
/// - `WAIT count` → waits (2 s at most) until Acme's sockets have `count` frames → `AT n`
/// - `STATS` → `STATS globex_frames closed rss_kib`; `CLOSED n` → waits (30 s at most) until
///   `n` sockets have ended → `CLOSED k`; `QUIT` ends the process.
/// - phase 4: `MASS_OPEN base n` → `MASS_OPEN opened`; `MASS_SEEN message` → `MASS_SEEN n`;
///   `MASS_CLOSED` → `MASS_CLOSED n`; `MASS_RECONNECT port missed` → `MASS_RECONNECT true false
///   exact p50_ms max_ms`.
async fn clients_main(base: String, port: u16) {
    let acme = demo::acme_tenant_id();
    let globex = demo::globex_tenant_id();
    let (acme_client, acme_csrf) = sign_in(&base, demo::ACME_AGENT_EMAIL).await;
    let (globex_client, globex_csrf) = sign_in(&base, demo::GLOBEX_ADMIN_EMAIL).await;
    println!("SIGNED_IN");

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
    let mut fanout = 0usize;
    let mut mass: Option<Mass> = None;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["OPEN", n, f] => {
                let sockets: usize = n.parse().unwrap();
                fanout = f.parse::<usize>().unwrap().min(sockets);
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
                            let mut req =
                                format!("ws://127.0.0.1:{port}/tenant/{tenant}/portal?ticket={t}")
                                    .into_client_request()
                                    .unwrap();
                            req.headers_mut()
                                .insert("origin", FRONTEND.parse().unwrap());
                            match tokio_tungstenite::connect_async_with_config(
                                req,
                                Some(config),
                                true,
                            )
                            .await
                            {
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
                println!("OPENED {opened}");
            }
            ["FANOUT", e, sent] => {
                let e: usize = e.parse().unwrap();
                let sent: u64 = sent.parse().unwrap();
                let mut got = 0usize;
                let mut last = 0u64;
                let mut each = Vec::with_capacity(fanout);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while got < fanout {
                    match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                        Ok(Some((n, at))) if n == e => {
                            got += 1;
                            last = last.max(at);
                            each.push(at.saturating_sub(sent) / 1_000);
                        }
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
                let each: Vec<String> = each.iter().map(u64::to_string).collect();
                println!("FANOUT {got} {last} {}", each.join(","));
            }
            ["WAIT", count] => {
                let count: u64 = count.parse().unwrap();
                let deadline = Instant::now() + Duration::from_secs(2);
                while shared.acme_frames.load(Ordering::Relaxed) < count
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                println!("AT {}", shared.acme_frames.load(Ordering::Relaxed));
            }
            ["MASS_OPEN", base_a, n] => {
                let n: usize = n.parse().unwrap();
                mass = Some(Mass::open(base_a, n, config).await);
                println!("MASS_OPEN {}", mass.as_ref().map_or(0, |m| m.opened));
            }
            ["MASS_SEEN", message] => {
                let seen = match mass.as_mut() {
                    Some(m) => m.until_all_saw(message).await,
                    None => 0,
                };
                println!("MASS_SEEN {seen}");
            }
            ["MASS_CLOSED"] => {
                let closed = match mass.as_mut() {
                    Some(m) => m.until_closed().await,
                    None => 0,
                };
                println!("MASS_CLOSED {closed}");
            }
            ["MASS_RECONNECT", port_b, missed] => {
                let missed: usize = missed.parse().unwrap();
                let reply = match mass.as_mut() {
                    Some(m) => m.reconnect(port_b.parse().unwrap(), missed, config).await,
                    None => "0 0 0 0 0".into(),
                };
                println!("MASS_RECONNECT {reply}");
            }
            ["CLOSED", n] => {
                let n: u64 = n.parse().unwrap();
                let deadline = Instant::now() + Duration::from_secs(30);
                while shared.closed.load(Ordering::Relaxed) < n && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                println!("CLOSED {}", shared.closed.load(Ordering::Relaxed));
            }
            ["STATS"] => println!(
                "STATS {} {} {}",
                shared.globex_frames.load(Ordering::Relaxed),
                shared.closed.load(Ordering::Relaxed),
                proc_status_kib("VmRSS:")
            ),
            ["QUIT"] => break,
            _ => eprintln!("clients: unknown command {line:?}"),
        }
    }
}

/// Phase 4's client side: sockets that remember the last event `id` they saw.
struct Mass {
    opened: usize,
    /// Per socket: the last id seen; the message IDs seen; closed.
    state: Vec<Arc<std::sync::Mutex<Seen>>>,
    /// Tickets for the reconnects (fetched before the clock starts).
    tickets: Vec<String>,
}

#[derive(Default)]
struct Seen {
    last_id: Option<String>,
    messages: Vec<String>,
    closed: bool,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(
    port: u16,
    ticket: &str,
    query: &str,
    config: WebSocketConfig,
) -> Option<Socket> {
    let tenant = demo::acme_tenant_id();
    let mut req = format!("ws://127.0.0.1:{port}/tenant/{tenant}/portal?ticket={ticket}{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", FRONTEND.parse().unwrap());
    match tokio_tungstenite::connect_async_with_config(req, Some(config), true).await {
        Ok((ws, _)) => Some(ws),
        Err(e) => {
            eprintln!("mass socket: {e}");
            None
        }
    }
}

/// Reads a socket until it ends, recording ids and message IDs.
async fn track(mut ws: Socket, seen: Arc<std::sync::Mutex<Seen>>) {
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg
            && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
        {
            let mut s = seen.lock().unwrap();
            if let Some(id) = v["id"].as_str() {
                s.last_id = Some(id.to_owned());
            }
            if let Some(m) = v["data"]["message_id"].as_str() {
                s.messages.push(m.to_owned());
            }
        }
    }
    seen.lock().unwrap().closed = true;
}

async fn tickets(base: &str, client: &Client, csrf: &str, n: usize) -> Vec<String> {
    stream::iter(0..n)
        .map(|_| ticket(base, client, csrf))
        .buffer_unordered(64)
        .collect()
        .await
}

impl Mass {
    async fn open(base_a: &str, n: usize, config: WebSocketConfig) -> Self {
        let (client, csrf) = sign_in(base_a, demo::ACME_AGENT_EMAIL).await;
        let port_a: u16 = base_a.rsplit(':').next().unwrap().parse().unwrap();
        let first = tickets(base_a, &client, &csrf, n).await;
        let state: Vec<_> = (0..n).map(|_| Arc::default()).collect();
        let opened = stream::iter(first.iter().zip(&state))
            .map(|(t, seen)| async move {
                match open_socket(port_a, t, "", config).await {
                    Some(ws) => {
                        tokio::spawn(track(ws, Arc::clone(seen)));
                        true
                    }
                    None => false,
                }
            })
            .buffer_unordered(128)
            .filter(|ok| std::future::ready(*ok))
            .count()
            .await;
        // The reconnects' tickets, fetched now so they are not timed.
        let tickets = tickets(base_a, &client, &csrf, n).await;
        Self {
            opened,
            state,
            tickets,
        }
    }

    /// Waits (5 s at most) until every socket saw `message`; how many did.
    async fn until_all_saw(&mut self, message: &str) -> usize {
        let count = || {
            self.state
                .iter()
                .filter(|s| s.lock().unwrap().messages.iter().any(|m| m == message))
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while count() < self.opened && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        count()
    }

    /// Waits (5 s at most) until every socket ended; how many did.
    async fn until_closed(&mut self) -> usize {
        let count = || {
            self.state
                .iter()
                .filter(|s| s.lock().unwrap().closed)
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while count() < self.opened && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        count()
    }

    /// Every socket reconnects at once to `port_b` with `since=<its last id>`; replies
    /// `recovered_true recovered_false exact p50_ms max_ms`.
    async fn reconnect(&mut self, port_b: u16, missed: usize, config: WebSocketConfig) -> String {
        let started = Instant::now();
        let each = self.state.iter().zip(&self.tickets).map(|(seen, ticket)| {
            let since = seen.lock().unwrap().last_id.clone().unwrap_or_default();
            async move {
                let query = format!("&since={since}");
                let mut ws = open_socket(port_b, ticket, &query, config).await?;
                let mut messages = Vec::new();
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(t) = msg else { continue };
                    let v: Value = serde_json::from_str(t.as_str()).ok()?;
                    if v["event"] == "recovered" {
                        let recovered = v["data"]["recovered"].as_bool()?;
                        let exact = messages.len() == missed
                            && messages
                                .iter()
                                .enumerate()
                                .all(|(i, m): (usize, &String)| *m == format!("bm-{i:06}"));
                        return Some((recovered, exact, started.elapsed(), ws));
                    }
                    if let Some(m) = v["data"]["message_id"].as_str() {
                        messages.push(m.to_owned());
                    }
                }
                None
            }
        });
        let results: Vec<_> = futures::future::join_all(each).await;
        let mut times: Vec<Duration> = Vec::new();
        let (mut yes, mut no, mut exact) = (0, 0, 0);
        let mut sockets = Vec::new();
        for (recovered, ok, at, ws) in results.into_iter().flatten() {
            if recovered {
                yes += 1;
            } else {
                no += 1;
            }
            exact += usize::from(ok);
            times.push(at);
            sockets.push(ws);
        }
        times.sort();
        let p50 = percentile(&times, 0.5).as_secs_f64() * 1000.0;
        let max = times.last().copied().unwrap_or_default().as_secs_f64() * 1000.0;
        drop(sockets);
        format!("{yes} {no} {exact} {p50:.1} {max:.1}")
    }
}

// ---------------------------------------------------------------------------------------------
// The server process.
// ---------------------------------------------------------------------------------------------

/// The server's end of the line protocol with the client process.
struct Clients {
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Clients {
    /// Sends a command and returns the reply's words after its keyword.
    async fn ask(&mut self, command: &str, reply: &str) -> Vec<String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        self.expect(reply).await
    }

    /// Reads lines until one starts with `reply`; other lines (messages) are echoed.
    async fn expect(&mut self, reply: &str) -> Vec<String> {
        loop {
            let line =
                self.stdout.next_line().await.unwrap().unwrap_or_else(|| {
                    panic!("the client process ended while waiting for {reply}")
                });
            let mut words = line.split_whitespace();
            if words.next() == Some(reply) {
                return words.map(str::to_owned).collect();
            }
            println!("   clients: {line}");
        }
    }
}

/// An instance of the service on `redis`, with the bench's limits.
async fn redis_instance(redis: &portal_redis::RedisServer) -> Application {
    let settings = Settings {
        port: 0,
        workers: Some(env("BENCH_SERVER_WORKERS", 1)),
        redis: portal_server::configuration::RedisConfig::single(redis.url()),
        cookie_secret: Some(COOKIE_SECRET.into()),
        encryption_key: Some(ENCRYPTION_KEY.into()),
        ..bench_settings()
    };
    Application::build_with(settings, Overrides::default())
        .await
        .expect("application builds on Redis")
}

/// Limits out of the benchmark's way: rate limits and connection caps.
fn bench_settings() -> Settings {
    Settings {
        rate_limit_api_max: 100_000_000,
        rate_limit_auth_max: 1_000_000,
        ws_max_per_session: 1_000_000,
        ws_max_per_user: 1_000_000,
        ws_max_per_instance: 1_000_000,
        ..Settings::default()
    }
}

/// Phase 4 (see the module docs).
async fn mass_reconnect(clients: &mut Clients) {
    let sockets: usize = env("BENCH_RECONNECT_SOCKETS", 1_000);
    let missed: usize = env("BENCH_MISSED", 20);
    let redis = portal_redis::RedisServer::start().await;
    let a = redis_instance(&redis).await;
    let b = redis_instance(&redis).await;
    let (port_a, port_b) = (a.port(), b.port());
    let bus = a.realtime().bus.clone();
    let hub_a = a.realtime().hub.clone();
    let hub_b = b.realtime().hub.clone();
    tokio::spawn(a.run_until_stopped());
    tokio::spawn(b.run_until_stopped());

    let opened: usize = clients
        .ask(
            &format!("MASS_OPEN http://localhost:{port_a} {sockets}"),
            "MASS_OPEN",
        )
        .await[0]
        .parse()
        .unwrap();
    bus.publish(&status_event(demo::acme_tenant_id(), "bm-seen"))
        .await
        .expect("publish");
    let seen: usize = clients.ask("MASS_SEEN bm-seen", "MASS_SEEN").await[0]
        .parse()
        .unwrap();
    hub_a.close_all(portal_domain::realtime::CloseReason::Shutdown);
    let closed: usize = clients.ask("MASS_CLOSED", "MASS_CLOSED").await[0]
        .parse()
        .unwrap();
    for i in 0..missed {
        bus.publish(&status_event(demo::acme_tenant_id(), &format!("bm-{i:06}")))
            .await
            .expect("publish");
    }
    // Every missed event recorded (instance A sees them all) before the clients come back.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut counters = portal_redis::RedisCounters::open(&redis).await;
    let xrange =
        |calls: &std::collections::HashMap<String, u64>| calls.get("xrange").copied().unwrap_or(0);
    let before = xrange(&counters.command_calls().await);
    let reads_b = hub_b.history_reads();
    let reply = clients
        .ask(
            &format!("MASS_RECONNECT {port_b} {missed}"),
            "MASS_RECONNECT",
        )
        .await;
    let after = xrange(&counters.command_calls().await);
    let reads_b = hub_b.history_reads() - reads_b;
    let (yes, no, exact): (usize, usize, usize) = (
        reply[0].parse().unwrap(),
        reply[1].parse().unwrap(),
        reply[2].parse().unwrap(),
    );
    println!(
        "\n== 4. Mass reconnect: {opened} sockets (saw the last event: {seen}, closed with 1001: {closed}) \
         reconnect at once to a fresh instance with ?since=, {missed} events missed"
    );
    println!(
        "   until all have recovered: p50 {} ms, all {} ms; recovered:true {yes}, recovered:false {no}, \
         exactly the {missed} missed events in order: {exact}",
        reply[3], reply[4]
    );
    println!(
        "   history reads: {} XRANGE on Redis, {reads_b} by the instance — target <= 10 per instance: {}",
        after - before,
        verdict(after - before <= 10 && yes == opened && exact == opened)
    );
}

#[tokio::main]
async fn main() {
    // Open /proc/self/status now, while descriptors are plentiful.
    let _ = read_proc_status();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::var("BENCH_ROLE").as_deref() == Ok("clients") {
        let base = std::env::var("BENCH_BASE").unwrap();
        let port = env("BENCH_PORT", 0u16);
        return clients_main(base, port).await;
    }

    let sockets = fit_to_open_files(
        env("BENCH_SOCKETS", 10_000),
        SERVER_FDS_PER_SOCKET,
        "server",
    );
    let fanout: usize = env::<usize>("BENCH_FANOUT_SOCKETS", 1_000).min(sockets);
    let events: usize = env("BENCH_EVENTS", 50);
    let burst: usize = env("BENCH_BURST", 100);
    let secs: u64 = env("BENCH_SECS", 5);
    let workers: usize = env("BENCH_SERVER_WORKERS", 1);

    let settings = Settings {
        port: 0,
        workers: Some(workers),
        ..bench_settings()
    };
    let app = Application::build_with(settings, Overrides::default())
        .await
        .expect("application builds");
    let port = app.port();
    let bus = app.realtime().bus.clone();
    let hub = app.realtime().hub.clone();
    tokio::spawn(app.run_until_stopped());
    let base = format!("http://localhost:{port}");
    println!(
        "WebSocket benchmark: embedded default on 127.0.0.1:{port}, {workers} server worker(s); clients in a child process"
    );

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("BENCH_ROLE", "clients")
        .env("BENCH_BASE", &base)
        .env("BENCH_PORT", port.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the client process starts");
    let mut clients = Clients {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
    };
    clients.expect("SIGNED_IN").await;

    // Phase 1: open the sockets; measure the server's memory only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = proc_status_kib("VmRSS:");
    let started = Instant::now();
    let opened: usize = clients
        .ask(&format!("OPEN {sockets} {fanout}"), "OPENED")
        .await[0]
        .parse()
        .unwrap();
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
        "   server VmRSS {rss_before} KiB -> {rss_after} KiB: {per_socket:.1} KiB per socket \
         — target < 20 KiB: {}",
        verdict(per_socket < 20.0)
    );

    // Phase 2: fan-out latency.
    let mut last = Vec::with_capacity(events);
    let mut all = Vec::with_capacity(events * fanout);
    let mut missing = 0usize;
    for e in 0..events {
        let sent = wall_ns();
        bus.publish(&status_event(demo::acme_tenant_id(), &format!("bf-{e:06}")))
            .await
            .expect("publish");
        let reply = clients.ask(&format!("FANOUT {e} {sent}"), "FANOUT").await;
        let got: usize = reply[0].parse().unwrap();
        let last_ns: u64 = reply[1].parse().unwrap();
        missing += fanout - got;
        last.push(Duration::from_nanos(last_ns.saturating_sub(sent)));
        if let Some(each) = reply.get(2) {
            all.extend(
                each.split(',')
                    .filter_map(|us| us.parse().ok())
                    .map(Duration::from_micros),
            );
        }
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
        verdict(missing == 0 && percentile(&last, 0.99) < Duration::from_millis(50))
    );
    println!(
        "   per delivery: p50 {} p99 {} ({} deliveries missing)",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        missing
    );

    // Phase 3: throughput in bursts; the client process acknowledges each burst.
    let mut frames: u64 = clients.ask("WAIT 0", "AT").await[0].parse().unwrap();
    let start_frames = frames;
    let started = Instant::now();
    let mut published = 0u64;
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let target = frames + (burst * fanout) as u64;
        for _ in 0..burst {
            n += 1;
            bus.publish(&status_event(demo::acme_tenant_id(), &format!("bt-{n}")))
                .await
                .expect("publish");
            published += 1;
        }
        frames = clients.ask(&format!("WAIT {target}"), "AT").await[0]
            .parse()
            .unwrap();
    }
    let elapsed = started.elapsed();
    let delivered = frames - start_frames;
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

    let stats = clients.ask("STATS", "STATS").await;
    println!("\n== Checks");
    println!(
        "   frames on Globex's sockets (must be 0: Acme's events only go to Acme): {}",
        stats[0]
    );
    println!(
        "   sockets closed during the run (e.g. 1013 slow consumer): {}",
        stats[1]
    );
    println!(
        "   server: peak VmHWM {} KiB, threads {}; client process VmRSS {} KiB",
        proc_status_kib("VmHWM:"),
        proc_status_kib("Threads:"),
        stats[2]
    );

    if env("BENCH_RECONNECT", true) {
        // Phase 1's sockets go first: their descriptors are needed for phase 4.
        hub.close_all(portal_domain::realtime::CloseReason::Shutdown);
        clients.ask(&format!("CLOSED {opened}"), "CLOSED").await;
        mass_reconnect(&mut clients).await;
    }
    let _ = clients.stdin.write_all(b"QUIT\n").await;
    let _ = child.wait().await;
}
