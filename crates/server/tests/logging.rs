//! A full sign-in's log output contains no session ID, code, state or token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

#[path = "api/helpers.rs"]
mod helpers;

use helpers::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn sign_in_logs_no_secrets() {
    let buffer = Buffer::default();
    portal_server::telemetry::init_subscriber(portal_server::telemetry::get_subscriber(
        "debug",
        buffer.clone(),
    ))
    .unwrap();

    let app = spawn_app().await;
    let signed = app.sign_in("agent@acme.example").await;
    let cookie = set_cookie(&signed.response, "sessionId").unwrap();
    let csrf = app.csrf(&app.client).await;
    app.client
        .post(app.url("/api/v1/auth/refresh"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    app.client
        .post(app.url("/api/v1/auth/logout"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("session created"), "sign-in was logged");
    let session_value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("sessionId=");
    let session_id = &session_value[session_value.len() - 43..];
    let code = query_param(&signed.callback_url, "code").unwrap();
    let state = query_param(&signed.callback_url, "state").unwrap();
    for (what, secret) in [
        ("session id", session_id),
        ("signed cookie", session_value),
        ("code", code.as_str()),
        ("state", state.as_str()),
        ("csrf token", csrf.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} leaked into the logs");
    }
    for prefix in ["sim_at_", "sim_rt_", "sim_code_"] {
        assert!(
            !logs.contains(prefix),
            "a token ({prefix}…) leaked into the logs"
        );
    }
}
