//! `spawn_app()`: the real application on a free port, with a controllable clock, driven over
//! loopback by a reqwest client with a cookie store and no
//! automatic redirects (so each hop of the sign-in chain is visible).

#![allow(dead_code)] // shared by two test binaries, each using a part

use portal_domain::ports::system::Clock;
use portal_server::{Application, Overrides, Settings};
use reqwest::{Client, Response, StatusCode, header};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

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

pub(crate) struct TestApp {
    pub address: String,
    pub client: Client,
    pub clock: Arc<TestClock>,
}

pub(crate) const FRONTEND: &str = "http://localhost:3000";

pub(crate) fn new_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|s| s).await
}

pub(crate) async fn spawn_app_with(tweak: impl FnOnce(Settings) -> Settings) -> TestApp {
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
            ..Overrides::default()
        },
    )
    .await
    .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: new_client(),
        clock,
    }
}

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

/// One sign-in, hop by hop.
pub(crate) struct SignIn {
    /// The authorize URL (carries the state).
    pub authorize_url: String,
    /// The callback URL (carries code and state).
    pub callback_url: String,
    /// The callback's response (302 to the frontend, with the session cookie).
    pub response: Response,
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

    pub(crate) async fn me(&self, client: &Client) -> Response {
        client
            .get(self.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
    }

    /// `/auth/me`'s CSRF token.
    pub(crate) async fn csrf(&self, client: &Client) -> String {
        let body: serde_json::Value = self.me(client).await.json().await.unwrap();
        body["csrfToken"].as_str().unwrap().to_owned()
    }
}

/// Asserts an error response's status and code (and the §11.2 shape); returns the body.
pub(crate) async fn assert_error(res: Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "status for {code}");
    let request_id = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = res.json().await.expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(
        body["correlationId"].as_str(),
        request_id.as_deref(),
        "correlationId is the X-Request-ID"
    );
    body
}
