//! What every black-box test shares: [`spawn_app`] (the real application on a free port, on
//! the workspace's test clock; [`with_redis`] puts it on a Redis deployment of
//! `redis_support`), [`TestApp`] with the sign-in chain, CSRF and WebSocket helpers, the
//! error-body assertion, the captured logs, the in-process platform sandbox and the
//! `agent-portal` binary as a child process.
//!
//! # Output
//! One subscriber per test binary, the binary's own (`get_subscriber`) with tracing on: every
//! log line (JSON, `debug`) is kept in memory for the tests that read logs
//! ([`captured_logs`], [`OwnLogs`]), and echoed to stdout only when `TEST_LOG` is set
//! (`TEST_LOG=1 cargo test ... -- --nocapture`); otherwise a test run prints nothing but the
//! test harness's lines. The same goes for the child processes' output. Every finished span
//! is kept by OpenTelemetry's in-memory exporter ([`finished_spans`]).

use futures::{SinkExt, StreamExt};
use portal_domain::model::{ConversationId, ConversationStatus, TenantId};
use portal_domain::ports::system::SystemClock;
use portal_domain::secret::SecretString;
use portal_memory::ManualClock;
use portal_sandbox::demo;
use portal_server::configuration::RedisConfig;
use portal_server::realtime::Realtime;
use portal_server::{Application, Overrides, Settings};
use reqwest::{Client, Response, StatusCode, header};
use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The frontend origin of the default settings (CORS, redirects after sign-in).
pub(crate) const FRONTEND: &str = "http://localhost:3000";

// ---------------------------------------------------------------------------------------
// Logs

/// Where the subscriber writes: memory, and stdout with `TEST_LOG`.
#[derive(Clone)]
struct LogSink {
    lines: Arc<Mutex<Vec<Line>>>,
    echo: bool,
}

/// One line of log (the subscriber writes each event at once) and the thread that wrote it.
struct Line {
    thread: ThreadId,
    text: String,
}

impl LogSink {
    fn lines(&self) -> MutexGuard<'_, Vec<Line>> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines().push(Line {
            thread: std::thread::current().id(),
            text: String::from_utf8_lossy(buf).into_owned(),
        });
        if self.echo {
            std::io::stdout().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogSink;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn test_log() -> bool {
    std::env::var_os("TEST_LOG").is_some()
}

/// What the test binary's one subscriber writes to.
struct Captured {
    logs: LogSink,
    spans: opentelemetry_sdk::trace::InMemorySpanExporter,
}

/// Installs the binary's subscriber once (every spawn calls it): JSON lines at `debug`, and
/// OpenTelemetry spans into memory (the propagator installed as with OTLP on).
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let logs = LogSink {
            lines: Arc::default(),
            echo: test_log(),
        };
        let spans = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let logging = portal_server::telemetry::Logging {
            level: "debug".into(),
            format: portal_server::telemetry::LogFormat::Json,
            ansi: false,
        };
        portal_server::telemetry::init_subscriber(portal_server::telemetry::get_subscriber(
            &logging,
            logs.clone(),
            Some(&provider),
        ))
        .expect("the only subscriber of this test binary");
        // The provider lives as long as the binary (the layer holds a tracer of it).
        std::mem::forget(provider);
        Captured { logs, spans }
    })
}

/// Every span this test binary has finished so far (all tests: filter by an attribute
/// unique to yours, such as the request ID).
pub(crate) fn finished_spans() -> Vec<opentelemetry_sdk::trace::SpanData> {
    captured()
        .spans
        .get_finished_spans()
        .expect("the in-memory exporter answers")
}

/// Every log line this test binary has written so far (all tests: filter by request ID,
/// user or anything else unique to yours, or read [`OwnLogs`]).
pub(crate) fn captured_logs() -> String {
    captured()
        .logs
        .lines()
        .iter()
        .map(|l| l.text.as_str())
        .collect()
}

/// The lines one test's instances log from [`OwnLogs::start`] on, told apart from the lines
/// of the tests running at the same time: those written on the test's own thread (a
/// `#[tokio::test]` runs there, on a current-thread runtime, everything its instances spawn:
/// the Redis health monitor, the bus subscription...) or on a worker thread of its instances
/// (their handlers; [`spawn_app`] gives each instance one), which it knows from the requests
/// the test sent with `X-Request-ID: `[`request_id`](Self::request_id) (at least one per
/// instance).
pub(crate) struct OwnLogs {
    /// Lines before it are not this test's.
    from: usize,
    thread: ThreadId,
    pub(crate) request_id: String,
}

impl OwnLogs {
    pub(crate) fn start() -> Self {
        Self {
            from: captured().logs.lines().len(),
            thread: std::thread::current().id(),
            request_id: format!("own-logs-{}", uuid::Uuid::new_v4()),
        }
    }

    /// The test's lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        let lines = captured().logs.lines();
        let tag = format!("\"request_id\":\"{}\"", self.request_id);
        let workers: HashSet<ThreadId> = lines
            .iter()
            .filter(|l| l.text.contains(&tag))
            .map(|l| l.thread)
            .collect();
        lines
            .get(self.from..)
            .unwrap_or_default()
            .iter()
            .filter(|l| l.thread == self.thread || workers.contains(&l.thread))
            .map(|l| l.text.trim_end().to_owned())
            .collect()
    }
}

/// What every test needs once per process, whatever it starts: the log subscriber, and
/// rustls's crypto provider (reqwest, in the service and in the tests, has none built in).
fn init() {
    captured();
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// ---------------------------------------------------------------------------------------
// The application

/// The running application, and what tests drive it with.
pub(crate) struct TestApp {
    /// `http://localhost:<port>`: the host name of the default `BASE_URL` (a sign-in started on
    /// `127.0.0.1` is first redirected there).
    pub(crate) address: String,
    pub(crate) port: u16,
    /// A browser: cookie store, no automatic redirects (each hop of a sign-in is visible).
    pub(crate) client: Client,
    /// The application's clock (starts at the current time; moves only when advanced).
    pub(crate) clock: Arc<ManualClock>,
    /// The hub, the widget and the event bus (tests publish on it).
    pub(crate) realtime: Realtime,
}

/// The embedded default (memory stores, simulated downstreams) on a free port, one worker.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with_overrides(|s| s, Overrides::default()).await
}

/// [`spawn_app`] with the per-user API limit raised, for tests that make more than 100
/// requests a minute (one per route and case).
pub(crate) async fn spawn_unthrottled_app() -> TestApp {
    spawn_app_with(|s| Settings {
        rate_limit_api_max: 10_000,
        ..s
    })
    .await
}

/// [`spawn_app`] with settings changed by `tweak` (a Redis URL, downstream URLs, limits...).
pub(crate) async fn spawn_app_with(tweak: impl FnOnce(Settings) -> Settings) -> TestApp {
    spawn_app_with_overrides(tweak, Overrides::default()).await
}

/// [`spawn_app_with`], and test doubles wrapped around ports (`overrides`; its clock is
/// always the test clock).
pub(crate) async fn spawn_app_with_overrides(
    tweak: impl FnOnce(Settings) -> Settings,
    overrides: Overrides,
) -> TestApp {
    init();
    let settings = tweak(Settings {
        port: 0,
        workers: Some(1),
        ..Settings::default()
    })
    .validated()
    .expect("valid settings");
    let clock = ManualClock::now_utc();
    let app = Application::build_with(
        settings,
        Overrides {
            clock: Some(clock.clone()),
            ..overrides
        },
    )
    .await
    .expect("application builds");
    let port = app.port();
    let realtime = app.realtime().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://localhost:{port}"),
        port,
        client: new_client(),
        clock,
        realtime,
    }
}

/// What every instance of one deployment shares (so a session, a ciphertext or an audit
/// entry made by one is good on the others).
const SHARED_COOKIE_SECRET: &str = "shared-test-cookie-secret-0123456789abcdef";
const SHARED_ENCRYPTION_KEY: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const SHARED_AUDIT_KEY: &str = "shared-test-audit-hmac-key-0123456789abcdef";

/// One instance of a deployment on the Redis node at `redis_url` (call it again for another
/// instance), with settings changed by `tweak`.
pub(crate) async fn spawn_on_redis(
    redis_url: &str,
    tweak: impl FnOnce(Settings) -> Settings,
) -> TestApp {
    use portal_domain::secret::SecretString;
    let redis = portal_server::configuration::RedisConfig::single(redis_url.to_owned());
    spawn_app_with(|s| {
        tweak(Settings {
            redis,
            cookie_secret: Some(SecretString::from(SHARED_COOKIE_SECRET)),
            encryption_key: Some(SecretString::from(SHARED_ENCRYPTION_KEY)),
            audit_hmac_key: Some(SecretString::from(SHARED_AUDIT_KEY)),
            ..s
        })
    })
    .await
}

/// A client like a browser's: cookie store, no automatic redirects.
pub(crate) fn new_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A client without a cookie store (and no automatic redirects): its requests carry the
/// cookies the test names, whatever the responses set.
pub(crate) fn plain_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Redis

/// The secrets of every instance on Redis, shared as a deployment's replicas share them: a
/// session cookie or CSRF token one instance made is valid on the others.
const COOKIE_SECRET: &str = "instances-share-this-cookie-secret-0123456789";
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// `settings` on the Redis deployment `redis` (stores, event bus, rate limits), with the
/// secrets every instance there shares: `spawn_app_with(|s| with_redis(s, redis.config()))`.
pub(crate) fn with_redis(settings: Settings, redis: RedisConfig) -> Settings {
    Settings {
        redis,
        cookie_secret: Some(SecretString::from(COOKIE_SECRET)),
        encryption_key: Some(SecretString::from(ENCRYPTION_KEY)),
        ..settings
    }
}

// ---------------------------------------------------------------------------------------
// Responses

pub(crate) fn location(res: &Response) -> String {
    res.headers()
        .get(header::LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn query_param(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The value a `Set-Cookie` of the response gives `name`.
pub(crate) fn set_cookie(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// Asserts an error response's status and code (and the §11.2 shape); returns the body.
pub(crate) async fn assert_error(res: Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status for {code}");
    let request_id = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = res.json().await.expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(
        body["correlationId"].as_str(),
        request_id.as_deref(),
        "correlationId is the X-Request-ID"
    );
    body
}

/// The `field` names of a `VALIDATION_FAILED` body's `details.fields`, each with a message.
pub(crate) fn problem_fields(body: &Value) -> Vec<String> {
    body["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("details.fields in {body}"))
        .iter()
        .map(|f| {
            assert!(
                f["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{body}"
            );
            f["field"].as_str().unwrap().to_owned()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Signing in

/// One sign-in, hop by hop.
pub(crate) struct SignIn {
    /// The authorize URL (carries the state).
    pub(crate) authorize_url: String,
    /// The callback URL (carries code and state).
    pub(crate) callback_url: String,
    /// The callback's response (302 to the frontend, with the session cookie).
    pub(crate) response: Response,
}

/// A signed-in browser of its own: its client, the raw session cookie and the CSRF token.
pub(crate) struct User {
    pub(crate) client: Client,
    /// `sessionId=...`, for a WebSocket upgrade.
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

/// The `sessionId=...` pair a successful sign-in as `email` set.
fn session_cookie(sign_in: &SignIn, email: &str) -> String {
    let res = &sign_in.response;
    assert_eq!(res.status(), StatusCode::FOUND, "{email} signs in");
    set_cookie(res, "sessionId")
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .expect("a session cookie")
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `/auth/login` → returns the authorize URL (the pre-login cookie is in `client`).
    pub(crate) async fn start_login(&self, client: &Client, hint: Option<&str>) -> String {
        let mut url = self.url("/api/v1/auth/login");
        if let Some(h) = hint {
            url = format!("{url}?login_hint={h}");
        }
        let res = client.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
        location(&res)
    }

    /// The simulated Genesys login → returns the callback URL.
    pub(crate) async fn authorize(&self, client: &Client, authorize_url: &str) -> String {
        let res = client.get(authorize_url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
        location(&res)
    }

    /// The whole chain with the app's client.
    pub(crate) async fn sign_in(&self, hint: &str) -> SignIn {
        self.sign_in_with(&self.client, hint).await
    }

    pub(crate) async fn sign_in_with(&self, client: &Client, hint: &str) -> SignIn {
        let authorize_url = self.start_login(client, Some(hint)).await;
        let callback_url = self.authorize(client, &authorize_url).await;
        let response = client.get(&callback_url).send().await.unwrap();
        SignIn {
            authorize_url,
            callback_url,
            response,
        }
    }

    /// A new browser signed in as `email`.
    pub(crate) async fn signed_in(&self, email: &str) -> User {
        let client = new_client();
        let sign_in = self.sign_in_with(&client, email).await;
        self.user(client, &sign_in, email).await
    }

    /// The browser `client` after `sign_in` as `email`: its session cookie and CSRF token.
    pub(crate) async fn user(&self, client: Client, sign_in: &SignIn, email: &str) -> User {
        let cookie = session_cookie(sign_in, email);
        let csrf = self.csrf(&client).await;
        User {
            client,
            cookie,
            csrf,
        }
    }

    /// A client sending the session of `email` alone with every request: signed in here
    /// with a new browser, nothing else asked (no request against the user's API limit).
    /// Valid on every instance on the same Redis; it has no cookie store, so a logout's
    /// `Set-Cookie` does not take the session away.
    pub(crate) async fn session(&self, email: &str) -> Client {
        let sign_in = self.sign_in_with(&new_client(), email).await;
        let cookie = session_cookie(&sign_in, email);
        let mut headers = header::HeaderMap::new();
        headers.insert(header::COOKIE, cookie.parse().expect("a cookie header"));
        Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap()
    }

    pub(crate) async fn me(&self, client: &Client) -> Response {
        client
            .get(self.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
    }

    /// Polls `GET path` (`/health`, `/readyz`) until it answers `want`; panics after `within`.
    pub(crate) async fn wait_for(
        &self,
        path: &str,
        want: StatusCode,
        within: Duration,
    ) -> Response {
        let client = plain_client();
        let deadline = Instant::now() + within;
        loop {
            let res = client.get(self.url(path)).send().await.unwrap();
            if res.status() == want {
                return res;
            }
            assert!(
                Instant::now() < deadline,
                "{path} on {} never answered {want}",
                self.address
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `/auth/me`'s CSRF token.
    pub(crate) async fn csrf(&self, client: &Client) -> String {
        let body: Value = self.me(client).await.json().await.unwrap();
        body["csrfToken"].as_str().unwrap().to_owned()
    }

    /// The OpenAPI document the running server serves.
    pub(crate) async fn openapi_document(&self) -> Value {
        let res = reqwest::get(self.url("/api/v1/openapi.json"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// `POST /api/v1/dashboard/refresh` with the client's CSRF token.
    pub(crate) async fn refresh_dashboard(&self, client: &Client) -> Response {
        let csrf = self.csrf(client).await;
        client
            .post(self.url("/api/v1/dashboard/refresh"))
            .header("X-CSRF-Token", csrf)
            .send()
            .await
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Demo data

pub(crate) fn acme() -> TenantId {
    demo::acme_tenant_id()
}

pub(crate) fn globex() -> TenantId {
    demo::globex_tenant_id()
}

/// A demo conversation of `tenant` with `status` (the demo data is deterministic).
pub(crate) fn conversation(tenant: TenantId, status: ConversationStatus) -> ConversationId {
    demo::generate(OffsetDateTime::now_utc())
        .conversations
        .iter()
        .enumerate()
        .filter(|(_, c)| c.conversation.tenant_id == tenant && c.conversation.status == status)
        // Indices 0..6 are "today" and depend on the time of day; 5n are always active.
        .find(|(i, _)| status == ConversationStatus::Active || *i % 100 >= 6)
        .map(|(_, c)| c.conversation.id)
        .expect("a demo conversation")
}

// ---------------------------------------------------------------------------------------
// WebSockets

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl TestApp {
    pub(crate) fn ws_url(&self, tenant: TenantId) -> String {
        format!("ws://localhost:{}/tenant/{tenant}/portal", self.port)
    }

    /// Upgrades with optional cookie, Origin and ticket; the refusal's status and body on error.
    pub(crate) async fn try_connect(
        &self,
        tenant: TenantId,
        cookie: Option<&str>,
        origin: Option<&str>,
        ticket: Option<&str>,
    ) -> Result<Ws, (u16, Value)> {
        let query = ticket.map(|t| format!("ticket={t}")).unwrap_or_default();
        self.upgrade(tenant, cookie, origin, &query)
            .await
            .map_err(|res| (res.status, res.body))
    }

    /// Upgrades with optional cookie and Origin and the query string `query` (without `?`);
    /// the whole refusal on error.
    pub(crate) async fn upgrade(
        &self,
        tenant: TenantId,
        cookie: Option<&str>,
        origin: Option<&str>,
        query: &str,
    ) -> Result<Ws, Refused> {
        let mut url = self.ws_url(tenant);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut req = url.into_client_request().unwrap();
        if let Some(c) = cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(res)) => {
                let status = res.status().as_u16();
                let body = res
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err(Refused {
                    status,
                    headers: res.headers().clone(),
                    body,
                })
            }
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }

    /// A browser's socket with a query string (`since=...`).
    pub(crate) async fn connect_with(&self, user: &User, tenant: TenantId, query: &str) -> Ws {
        self.upgrade(tenant, Some(&user.cookie), Some(FRONTEND), query)
            .await
            .unwrap_or_else(|r| panic!("upgrade refused: {} {}", r.status, r.body))
    }

    /// A browser's socket: the user's cookie and the frontend Origin.
    pub(crate) async fn connect(&self, user: &User, tenant: TenantId) -> Ws {
        self.try_connect(tenant, Some(&user.cookie), Some(FRONTEND), None)
            .await
            .expect("upgrade accepted")
    }

    /// `POST /api/v1/auth/ws-ticket`.
    pub(crate) async fn ticket(&self, user: &User) -> String {
        let res = user
            .client
            .post(self.url("/api/v1/auth/ws-ticket"))
            .header("x-csrf-token", &user.csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        body["ticket"].as_str().unwrap().to_owned()
    }
}

/// A refused upgrade.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) status: u16,
    pub(crate) headers: tungstenite::http::HeaderMap,
    pub(crate) body: Value,
}

/// What the server sent next, control frames other than Close skipped.
#[derive(Debug)]
pub(crate) enum Next {
    Event(Value),
    Closed(Option<u16>),
}

/// The next event or close, within `within`.
pub(crate) async fn next(ws: &mut Ws, within: Duration) -> Option<Next> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        match msg {
            None | Some(Err(_)) => return Some(Next::Closed(None)),
            Some(Ok(Message::Text(t))) => {
                return Some(Next::Event(serde_json::from_str(t.as_str()).unwrap()));
            }
            Some(Ok(Message::Close(frame))) => {
                return Some(Next::Closed(frame.map(|f: CloseFrame| u16::from(f.code))));
            }
            Some(Ok(_)) => {}
        }
    }
}

/// The next event (panics on close or timeout).
pub(crate) async fn event(ws: &mut Ws) -> Value {
    match next(ws, Duration::from_secs(5)).await {
        Some(Next::Event(v)) => v,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Events until one named `name` (others skipped).
pub(crate) async fn event_named(ws: &mut Ws, name: &str) -> Value {
    for _ in 0..50 {
        let e = event(ws).await;
        if e["event"] == name {
            return e;
        }
    }
    panic!("no {name} event");
}

/// The next event `name` about the message `message_id` (others skipped), within `within`.
pub(crate) async fn event_about(
    ws: &mut Ws,
    name: &str,
    message_id: &str,
    within: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next(ws, left).await {
            Some(Next::Event(e)) if e["event"] == name && e["data"]["message_id"] == message_id => {
                return e;
            }
            Some(Next::Event(_)) => {}
            other => panic!("no {name} about {message_id} in time: {other:?}"),
        }
    }
}

/// The close code the socket ends with (events before it skipped).
pub(crate) async fn close_code(ws: &mut Ws, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next(ws, left).await {
            Some(Next::Closed(code)) => return code,
            Some(Next::Event(_)) => {}
            None => panic!("the socket did not close in time"),
        }
    }
}

pub(crate) async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Downstreams: wiremock, the platform sandbox, and the binary

/// A platform service on wiremock that is up (its own `GET /health` answers 200) while every
/// API call fails with `status`.
pub(crate) async fn failing_service(status: u16) -> wiremock::MockServer {
    use wiremock::matchers::{any, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(path("/health"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

/// The HTTP sandbox of the whole platform (`portal_sandbox::serve`) in process on a free
/// port, with fault injection at `/_admin/faults`; returns its base URL.
pub(crate) fn start_sandbox() -> String {
    init();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let platform = portal_sandbox::Platform::demo(Arc::new(SystemClock));
    let sandbox = portal_sandbox::serve(listener, platform, portal_sandbox::Options::default())
        .expect("sandbox starts");
    tokio::spawn(sandbox.server);
    address
}

/// The `agent-portal` binary as a child process (killed when dropped).
pub(crate) struct Portal {
    pub(crate) child: Child,
    pub(crate) port: u16,
    /// Every line it has written to stdout so far.
    output: Arc<Mutex<Vec<String>>>,
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Portal {
    /// The lines written to stdout so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The lines written so far, once one of them satisfies `done` (panics after 10 s).
    pub(crate) async fn lines_until(&self, done: impl Fn(&str) -> bool) -> Vec<String> {
        for _ in 0..200 {
            let lines = self.lines();
            if lines.iter().any(|l| done(l)) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the expected line never came:\n{}", self.lines().join("\n"));
    }

    /// `GET path` on `localhost` with `X-Request-ID: id`: its status, and the lines written
    /// until that request's `request finished` line.
    pub(crate) async fn get_logged(&self, path: &str, id: &str) -> (u16, Vec<String>) {
        let status = reqwest::Client::new()
            .get(format!("http://localhost:{}{path}", self.port))
            .header("X-Request-ID", id)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let lines = self
            .lines_until(|l| l.contains(id) && l.contains("request finished"))
            .await;
        (status, lines)
    }
}

/// The port of the start-up line `agent-portal listening`, in either log format.
fn listening_port(line: &str) -> Option<u16> {
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        return (v["fields"]["message"] == "agent-portal listening")
            .then(|| v["fields"]["port"].as_u64())
            .flatten()
            .and_then(|p| u16::try_from(p).ok());
    }
    let (_, rest) = line.split_once("agent-portal listening")?;
    let (_, port) = rest.split_once("port=")?;
    port.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Starts the binary with exactly `env` (nothing inherited; `PORT=0`) and reads its port from
/// the start-up log line; panics with its stderr when it does not come up. Its output is
/// kept ([`Portal::lines`]) and echoed only with `TEST_LOG`.
pub(crate) fn start_portal<K, V>(env: impl IntoIterator<Item = (K, V)>) -> Portal
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    init();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agent-portal"))
        .env_clear()
        .envs(env)
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let echo = test_log();
    let output: Arc<Mutex<Vec<String>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    // Read to the end (a full pipe would block the child), reporting the port when logged.
    let kept = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if echo {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
            if let Some(port) = listening_port(&line) {
                let _ = tx.send(port);
            }
            kept.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        if echo {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        text
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(port) => Portal {
            child,
            port,
            output,
        },
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            // The process is gone, so its stderr is at its end.
            panic!(
                "the service did not start with this environment:\n{}",
                errors.join().unwrap_or_default()
            );
        }
    }
}
