//! What every black-box test shares: [`spawn_app`] (the real application on a free port, on
//! the workspace's test clock), [`TestApp`] with the sign-in chain, CSRF and WebSocket
//! helpers, the error-body assertion, the captured logs, the in-process platform sandbox and
//! the `agent-portal` binary as a child process.
//!
//! # Output
//! One subscriber per test binary: every log line (JSON, `debug`) is kept in memory for the
//! tests that read logs ([`captured_logs`]), and echoed to stdout only when `TEST_LOG` is set
//! (`TEST_LOG=1 cargo test ... -- --nocapture`); otherwise a test run prints nothing but the
//! test harness's lines. The same goes for the child processes' output.

// TODO(lead): journey_sandbox.rs (left to the Redis topology branch) still includes this file
// with `#[path]` and uses a part of it; remove this line once it is a module of this binary.
#![allow(dead_code)]

use futures::{SinkExt, StreamExt};
use portal_domain::model::{ConversationId, ConversationStatus, TenantId};
use portal_domain::ports::system::SystemClock;
use portal_memory::ManualClock;
use portal_sandbox::demo;
use portal_server::realtime::Realtime;
use portal_server::{Application, Overrides, Settings};
use reqwest::{Client, Response, StatusCode, header};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
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
    lines: Arc<Mutex<Vec<u8>>>,
    echo: bool,
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
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

/// Installs the binary's subscriber once (every spawn calls it); returns its sink.
fn logs() -> &'static LogSink {
    static LOGS: OnceLock<LogSink> = OnceLock::new();
    LOGS.get_or_init(|| {
        let sink = LogSink {
            lines: Arc::default(),
            echo: test_log(),
        };
        portal_server::telemetry::init_subscriber(portal_server::telemetry::get_subscriber(
            "debug",
            sink.clone(),
        ))
        .expect("the only subscriber of this test binary");
        sink
    })
}

/// Every log line this test binary has written so far (all tests: filter by request ID,
/// user or anything else unique to yours).
pub(crate) fn captured_logs() -> String {
    let sink = logs();
    let bytes = sink
        .lines
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    String::from_utf8(bytes).expect("UTF-8 log lines")
}

/// What every test needs once per process, whatever it starts: the log subscriber, and
/// rustls's crypto provider (reqwest, in the service and in the tests, has none built in).
fn init() {
    logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// ---------------------------------------------------------------------------------------
// The application

/// The running application, and what tests drive it with.
pub(crate) struct TestApp {
    /// `http://127.0.0.1:<port>`.
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
    });
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
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: new_client(),
        clock,
        realtime,
    }
}

/// A client like a browser's: cookie store, no automatic redirects.
pub(crate) fn new_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
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
        let res = self.sign_in_with(&client, email).await.response;
        assert_eq!(res.status(), StatusCode::FOUND, "{email} signs in");
        let cookie = set_cookie(&res, "sessionId")
            .and_then(|c| c.split(';').next().map(str::to_owned))
            .expect("a session cookie");
        let csrf = self.csrf(&client).await;
        User {
            client,
            cookie,
            csrf,
        }
    }

    pub(crate) async fn me(&self, client: &Client) -> Response {
        client
            .get(self.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
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
        format!("ws://127.0.0.1:{}/tenant/{tenant}/portal", self.port)
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
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with exactly `env` (nothing inherited; `PORT=0`) and reads its port from
/// the start-up log line; panics with its stderr when it does not come up. Its output is
/// echoed only with `TEST_LOG`.
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
    let (tx, rx) = std::sync::mpsc::channel();
    // Read to the end (a full pipe would block the child), reporting the port when logged.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if echo {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "agent-portal listening"
            {
                let _ = tx.send(v["fields"]["port"].as_u64());
            }
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
        Ok(Some(port)) => Portal {
            child,
            port: u16::try_from(port).unwrap(),
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
