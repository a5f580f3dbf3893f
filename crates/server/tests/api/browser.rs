//! The whole browser flow in a real headless Chromium (Debian's `chromium`, driven over
//! WebDriver by `chromedriver`; `scripts/test.sh` installs both): a small frontend page
//! (`browser/index.html`) served on the frontend's origin signs in through the simulated SSO
//! and lands back on it, reads `/auth/me`, the dashboard and the history with
//! `credentials: 'include'`, sends from the widget with `X-CSRF-Token` (a CORS preflight),
//! follows the WebSocket through `sent` → `delivered` → `read`, and logs out, which closes the
//! socket with `session_expired`; the same page on another origin is refused (CORS and the
//! WebSocket `Origin` check).

use crate::helpers::*;
use fantoccini::{Client, ClientBuilder};
use portal_server::Settings;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;

const PAGE: &str = include_str!("browser/index.html");

/// A program the test needs, by the name Debian installs it under.
fn program(name: &str, package: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !path.is_empty(),
        "`{name}` is not installed: Debian's `{package}` package (`bash scripts/test.sh` \
         installs it)"
    );
    path
}

/// The frontend: the page on every path, and `/config.js` naming the service; on two
/// listeners (the frontend's origin and a foreign one).
fn serve_frontend(api: String, listeners: Vec<std::net::TcpListener>) {
    use actix_web::{App, HttpResponse, web};
    let config = format!("window.PORTAL_API = {};\n", json!(api));
    let mut server = actix_web::HttpServer::new(move || {
        let config = config.clone();
        App::new()
            .route(
                "/config.js",
                web::get().to(move || {
                    let config = config.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("text/javascript")
                            .body(config)
                    }
                }),
            )
            .default_service(web::to(|| async {
                HttpResponse::Ok().content_type("text/html").body(PAGE)
            }))
    })
    .workers(1)
    .disable_signals();
    for l in listeners {
        server = server.listen(l).unwrap();
    }
    tokio::spawn(server.run());
}

fn free_listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// `chromedriver` on a free port, ready for sessions.
async fn chromedriver() -> (tokio::process::Child, String) {
    let driver = program("chromedriver", "chromium-driver");
    let (_, port) = free_listener();
    let child = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if let Ok(res) = reqwest::get(format!("{url}/status")).await
            && res.status().is_success()
        {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not come up on {url}");
}

/// The browser's profile directory; dropped (also when the test fails), it ends every process
/// started with that profile (Chromium outlives a killed chromedriver) and removes it.
struct Profile(std::path::PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let flag = format!("--user-data-dir={}", self.0.display());
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if cmdline.split(|b| *b == 0).any(|arg| arg == flag.as_bytes()) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid])
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A headless Chromium with a fresh profile. Background networking and component updates
/// off: this machine reaches no network but loopback.
async fn chromium(driver: &str, profile: &std::path::Path) -> Client {
    let binary = program("chromium", "chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a Chromium session")
}

/// Runs `expr` (a promise or a value) in the page; its value, or the error it threw.
async fn js(browser: &Client, expr: &str) -> Result<Value, String> {
    let script = format!(
        "const done = arguments[arguments.length - 1];\n\
         Promise.resolve().then(() => ({expr})).then((v) => done({{ok: v === undefined ? null : v}}), (e) => done({{error: String(e)}}));"
    );
    let answer = browser
        .execute_async(&script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    match answer.get("error") {
        Some(e) => Err(e.as_str().unwrap_or_default().to_owned()),
        None => Ok(answer["ok"].clone()),
    }
}

async fn ok(browser: &Client, expr: &str) -> Value {
    js(browser, expr)
        .await
        .unwrap_or_else(|e| panic!("{expr} failed in the page: {e}"))
}

async fn wait_for_url(browser: &Client, expected: &str) {
    for _ in 0..100 {
        if browser.current_url().await.unwrap().as_str() == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the browser is at {}, not {expected}",
        browser.current_url().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_reads_sends_follows_the_socket_and_logs_out() {
    let (front_listener, front_port) = free_listener();
    let (foreign_listener, foreign_port) = free_listener();
    let frontend = format!("http://localhost:{front_port}");
    let foreign = format!("http://localhost:{foreign_port}");
    let app = spawn_app_with({
        let frontend = frontend.clone();
        move |s| Settings {
            frontend_url: frontend,
            ..s
        }
    })
    .await;
    serve_frontend(app.address.clone(), vec![front_listener, foreign_listener]);
    let (_driver_process, driver) = chromedriver().await;
    let profile =
        Profile(std::env::temp_dir().join(format!("portal-chromium-{}", uuid::Uuid::new_v4())));
    let browser = chromium(&driver, &profile.0).await;

    // Sign in from the frontend: SSO redirect and back to the frontend's /dashboard.
    browser.goto(&format!("{frontend}/")).await.unwrap();
    ok(&browser, "document.getElementById('sign-in').click()").await;
    wait_for_url(&browser, &format!("{frontend}/dashboard")).await;
    let me = ok(&browser, "portal.me()").await;
    assert_eq!(me["status"], 200, "the cookie went with the fetch: {me}");
    assert_eq!(me["body"]["email"], "agent@acme.example");
    let tenant = me["body"]["tenantId"].as_str().unwrap().to_owned();

    // Another origin (same site, another port): the browser may not read the answers, and
    // the socket is refused (403 on the Origin check: the cookie itself is sent).
    browser.goto(&format!("{foreign}/dashboard")).await.unwrap();
    let blocked = js(&browser, "portal.me()").await;
    assert!(
        blocked.as_ref().is_err_and(|e| e.contains("TypeError")),
        "CORS keeps the answer from a foreign origin: {blocked:?}"
    );
    let refused = ok(&browser, &format!("portal.openSocket('{tenant}')")).await;
    assert_ne!(refused, "open", "a foreign origin's socket is refused");

    // Back on the frontend: dashboard, history, a widget send, its delivery live.
    browser
        .goto(&format!("{frontend}/dashboard"))
        .await
        .unwrap();
    assert_eq!(ok(&browser, "portal.me()").await["status"], 200);
    let stats = ok(&browser, "portal.stats()").await;
    assert_eq!(stats["status"], 200, "{stats}");
    assert!(stats["body"]["totalMessages"].is_u64(), "{stats}");
    let threads = ok(&browser, "portal.threads()").await;
    assert_eq!(threads["status"], 200, "{threads}");
    let conversation = threads["body"]["data"][0]["conversation_id"]
        .as_str()
        .expect("an active conversation")
        .to_owned();
    let messages = ok(&browser, &format!("portal.messages('{conversation}')")).await;
    assert_eq!(messages["status"], 200, "{messages}");

    assert_eq!(
        ok(&browser, &format!("portal.openSocket('{tenant}')")).await,
        "open"
    );
    let sent = ok(
        &browser,
        &format!("portal.send('{conversation}', 'Hello from Chromium', 'browser-send-1')"),
    )
    .await;
    assert_eq!(
        sent["status"], 200,
        "preflight passed, CSRF accepted: {sent}"
    );
    let message = sent["body"]["message_id"].as_str().unwrap().to_owned();
    let events = ok(
        &browser,
        &format!(
            "portal.until((evs) => evs.some((e) => e.event === 'status_update' \
             && e.data.message_id === '{message}' && e.data.status === 'read'), 10000)"
        ),
    )
    .await;
    let statuses: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "status_update" && e["data"]["message_id"] == message.as_str())
        .filter_map(|e| e["data"]["status"].as_str())
        .collect();
    assert_eq!(statuses, ["sent", "delivered", "read"], "{events}");

    // Logout closes the socket: `session_expired`, then 1008.
    let out = ok(&browser, "portal.logout()").await;
    assert_eq!(out["status"], 200, "{out}");
    let code = ok(&browser, "portal.closed").await;
    assert_eq!(code, 1008, "closed as a policy end");
    let events = ok(&browser, "portal.events").await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "session_expired"),
        "{events}"
    );
    assert_eq!(ok(&browser, "portal.me()").await["status"], 401);

    browser.close().await.unwrap();
}
