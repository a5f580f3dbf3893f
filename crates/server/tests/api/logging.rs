//! A full sign-in's log output (at `debug`) contains no session ID, code, state or token.

use crate::helpers::*;

#[tokio::test]
async fn sign_in_logs_no_secrets() {
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

    // Every test's lines (at debug): none may hold this sign-in's secrets.
    let logs = captured_logs();
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
