//! Shared by `websocket.rs` and `widget.rs`: the real application on a free port (kept
//! reachable: its hub and event bus), demo sign-ins, and a tokio-tungstenite client.

#![allow(dead_code)] // each test binary uses a different part

use futures::{SinkExt, StreamExt};
use portal_domain::model::{ConversationId, ConversationStatus, TenantId};
use portal_domain::ports::system::Clock;
use portal_sandbox::demo;
use portal_server::realtime::Realtime;
use portal_server::{Application, Overrides, Settings};
use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) const FRONTEND: &str = "http://localhost:3000";

/// The system clock plus an offset tests can advance.
#[derive(Default)]
pub(crate) struct TestClock(Mutex<time::Duration>);

impl TestClock {
    pub(crate) fn advance(&self, by: time::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *self.0.lock().unwrap()
    }
}

pub(crate) struct RtApp {
    pub address: String,
    pub port: u16,
    pub realtime: Realtime,
    pub clock: Arc<TestClock>,
}

pub(crate) async fn spawn() -> RtApp {
    spawn_with(|s| s).await
}

pub(crate) async fn spawn_with(tweak: impl FnOnce(Settings) -> Settings) -> RtApp {
    spawn_with_overrides(tweak, Overrides::default()).await
}

/// [`spawn_with`], with test doubles wrapped around ports (the clock is the app's own).
#[allow(dead_code)] // not every test binary uses it
pub(crate) async fn spawn_with_overrides(
    tweak: impl FnOnce(Settings) -> Settings,
    overrides: Overrides,
) -> RtApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = tweak(Settings {
        port: 0,
        workers: Some(1),
        ..Settings::default()
    });
    let clock = Arc::new(TestClock::default());
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
    RtApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        realtime,
        clock,
    }
}

/// A signed-in demo user: a cookie-keeping client, the raw cookie and the CSRF token.
pub(crate) struct User {
    pub client: Client,
    /// `sessionId=...` for the WebSocket upgrade.
    pub cookie: String,
    pub csrf: String,
}

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

impl RtApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub(crate) fn ws_url(&self, tenant: TenantId) -> String {
        format!("ws://127.0.0.1:{}/tenant/{tenant}/portal", self.port)
    }

    pub(crate) async fn sign_in(&self, email: &str) -> User {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        let res = client
            .get(self.url(&format!("/api/v1/auth/login?login_hint={email}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
        let res = client.get(location(&res)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
        let res = client.get(location(&res)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
        let cookie = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("sessionId="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let me: Value = client
            .get(self.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let csrf = me["csrfToken"].as_str().unwrap().to_owned();
        User {
            client,
            cookie,
            csrf,
        }
    }

    /// Upgrades with optional cookie, Origin and ticket; the refusal's status and body on error.
    pub(crate) async fn try_connect(
        &self,
        tenant: TenantId,
        cookie: Option<&str>,
        origin: Option<&str>,
        ticket: Option<&str>,
    ) -> Result<Ws, (u16, Value)> {
        let mut url = self.ws_url(tenant);
        if let Some(t) = ticket {
            url = format!("{url}?ticket={t}");
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
                Err((status, body))
            }
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
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

pub(crate) fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(header::LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
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
            None => return Some(Next::Closed(None)),
            Some(Err(_)) => return Some(Next::Closed(None)),
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
