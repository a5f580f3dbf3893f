//! Sessions a security team trusts, black box: refresh single flight across two instances on
//! Redis (one Auth Service call for 20 concurrent refreshes, also when the Auth Service is
//! slower than the lock's first lease), the sessions a user sees and ends (from another
//! device, on another instance: its socket closes, its cookie gets 401), "log out
//! everywhere", an admin ending a departed agent's sessions in their own tenant only, and the
//! per-user cap.

use crate::helpers::*;
use portal_redis::RedisServer;
use portal_sandbox::demo;
use portal_server::Settings;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How long an ended session's sockets may take to close, on any instance (the 1 s).
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

async fn sessions(app: &TestApp, user: &User) -> Vec<Value> {
    let res = user
        .client
        .get(app.url("/api/v1/auth/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["sessions"].as_array().unwrap().clone()
}

async fn end_session(
    app: &TestApp,
    user: &User,
    handle: &str,
    csrf: Option<&str>,
) -> reqwest::Response {
    let mut req = user
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{handle}")));
    if let Some(token) = csrf {
        req = req.header("x-csrf-token", token);
    }
    req.send().await.unwrap()
}

/// The user's session as `client` presents it on `app`: 200, or the refusal's status.
async fn me_status(app: &TestApp, cookie: &str) -> u16 {
    new_client()
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn ending_a_session_from_another_device_closes_its_socket_on_another_instance() {
    let redis = RedisServer::start().await;
    let (one, two) = (
        spawn_on_redis(&redis.url(), |s| s).await,
        spawn_on_redis(&redis.url(), |s| s).await,
    );
    let laptop = one.signed_in(demo::ACME_AGENT_EMAIL).await;
    let phone = one.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut phone_socket = two.connect(&phone, acme()).await;

    // The laptop lists both sessions (on instance one), without IDs, with their devices.
    let listed = sessions(&one, &laptop).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed.iter().filter(|s| s["current"] == true).count(), 1);
    for s in &listed {
        let handle = s["handle"].as_str().unwrap();
        for cookie in [&laptop.cookie, &phone.cookie] {
            let id = cookie.trim_start_matches("sessionId=");
            assert!(!handle.contains(id) && !id.contains(handle));
        }
        assert_eq!(s["clientIp"], "127.0.0.0/24");
        assert!(s["userAgent"].is_null() || s["userAgent"].is_string());
        for field in ["createdAt", "lastActivity"] {
            assert!(s[field].as_str().is_some_and(|t| t.contains('T')), "{s}");
        }
    }
    let phone_handle = listed.iter().find(|s| s["current"] == false).unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();

    // CSRF is required; then the phone's session ends.
    let res = end_session(&one, &laptop, &phone_handle, None).await;
    assert_error(res, 403, "CSRF_FAILED").await;
    let res = end_session(&one, &laptop, &phone_handle, Some(&laptop.csrf)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        set_cookie(&res, "sessionId").is_none(),
        "the laptop stays signed in"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"success": true, "ended": 1}));

    // Its socket on instance two closes within a second; its cookie is refused there.
    assert_eq!(
        close_code(&mut phone_socket, CLOSE_WITHIN).await,
        Some(1008)
    );
    assert_eq!(me_status(&two, &phone.cookie).await, 401);
    assert_eq!(me_status(&one, &laptop.cookie).await, 200);
    assert_eq!(sessions(&two, &laptop).await.len(), 1);

    // A handle that is not the caller's (ended, unknown) is not found; a malformed one is
    // a validation error.
    let res = end_session(&two, &laptop, &phone_handle, Some(&laptop.csrf)).await;
    assert_error(res, 404, "NOT_FOUND").await;
    let res = end_session(&two, &laptop, "not.a.handle", Some(&laptop.csrf)).await;
    assert_error(res, 400, "VALIDATION_FAILED").await;
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_caller_only() {
    let app = spawn_app().await;
    let first = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let second = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let admin = app.signed_in(demo::ACME_ADMIN_EMAIL).await;
    let mut socket = app.connect(&second, acme()).await;

    let res = first
        .client
        .post(app.url("/api/v1/auth/logout-all"))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "CSRF_FAILED").await;
    let res = first
        .client
        .post(app.url("/api/v1/auth/logout-all"))
        .header("x-csrf-token", &first.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookie(&res, "sessionId").unwrap().contains("Max-Age=0"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ended"], 2);

    assert_eq!(close_code(&mut socket, CLOSE_WITHIN).await, Some(1008));
    for user in [&first, &second] {
        assert_eq!(me_status(&app, &user.cookie).await, 401);
    }
    assert_eq!(me_status(&app, &admin.cookie).await, 200);
}

#[tokio::test]
async fn an_admin_ends_a_departed_agents_sessions_in_their_own_tenant_only() {
    let redis = RedisServer::start().await;
    let (one, two) = (
        spawn_on_redis(&redis.url(), |s| s).await,
        spawn_on_redis(&redis.url(), |s| s).await,
    );
    let admin = one.signed_in(demo::ACME_ADMIN_EMAIL).await;
    let agent = two.signed_in(demo::ACME_AGENT_EMAIL).await;
    let viewer = one.signed_in(demo::ACME_VIEWER_EMAIL).await;
    let globex = one.signed_in(demo::GLOBEX_ADMIN_EMAIL).await;
    let mut agent_socket = two.connect(&agent, acme()).await;
    let agent_id = demo::ACME_AGENT_ID;
    let url = |app: &TestApp| app.url(&format!("/api/v1/admin/users/{agent_id}/sessions"));

    // Another tenant's admin, and a viewer of the agent's own tenant, are refused.
    let res = globex
        .client
        .delete(url(&one))
        .header("x-csrf-token", &globex.csrf)
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "TENANT_MISMATCH").await;
    let res = viewer
        .client
        .delete(url(&one))
        .header("x-csrf-token", &viewer.csrf)
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "FORBIDDEN").await;
    let res = admin.client.delete(url(&one)).send().await.unwrap();
    assert_error(res, 403, "CSRF_FAILED").await;
    assert_eq!(me_status(&two, &agent.cookie).await, 200);

    let res = admin
        .client
        .delete(url(&one))
        .header("x-csrf-token", &admin.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ended"], 1);
    assert_eq!(
        close_code(&mut agent_socket, CLOSE_WITHIN).await,
        Some(1008)
    );
    assert_eq!(me_status(&two, &agent.cookie).await, 401);
    assert_eq!(me_status(&one, &admin.cookie).await, 200);

    let res = admin
        .client
        .delete(one.url("/api/v1/admin/users/bad%0Aid/sessions"))
        .header("x-csrf-token", &admin.csrf)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "VALIDATION_FAILED").await;
}

#[tokio::test]
async fn a_sign_in_beyond_the_cap_ends_the_least_recently_active_session() {
    let app = spawn_app_with(|s| Settings {
        session_max_per_user: 2,
        ..s
    })
    .await;
    let oldest = app.signed_in(demo::ACME_VIEWER_EMAIL).await;
    app.clock.advance(time::Duration::minutes(2));
    let middle = app.signed_in(demo::ACME_VIEWER_EMAIL).await;
    app.clock.advance(time::Duration::minutes(2));
    // The oldest is used again: the middle one is now the least recently active.
    assert_eq!(me_status(&app, &oldest.cookie).await, 200);

    let newest = app.signed_in(demo::ACME_VIEWER_EMAIL).await;

    assert_eq!(me_status(&app, &middle.cookie).await, 401);
    assert_eq!(me_status(&app, &oldest.cookie).await, 200);
    assert_eq!(me_status(&app, &newest.cookie).await, 200);
    assert_eq!(sessions(&app, &newest).await.len(), 2);
}

// ---- refresh single flight ---------------------------------------------------------------

/// The Auth Service on wiremock: any code signs in `user-sf` (no tenant: an onboarding
/// session, which may refresh as well), a refresh takes `delay`.
async fn auth_service(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    let tokens = json!({
        "accessToken": "at-single-flight",
        "refreshToken": "rt-single-flight-1",
        "expiresAt": "2099-01-01T00:00:00Z"
    });
    Mock::given(method("POST"))
        .and(path("/api/v1/auth/validate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tokens.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/auth/profile"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "userId": "user-sf", "email": "sf@newco.example", "name": "Single Flight"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/auth/refresh"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "accessToken": "at-single-flight-2",
                    "refreshToken": "rt-single-flight-2",
                    "expiresAt": "2099-01-01T00:00:00Z"
                }))
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    server
}

/// Signs in on `app` through the Auth Service on wiremock (the authorize redirect is not
/// followed: its `state` goes straight to the callback); returns the browser and its CSRF.
async fn sign_in_over_wiremock(app: &TestApp) -> (Client, String) {
    let client = new_client();
    let authorize = app.start_login(&client, None).await;
    let state = query_param(&authorize, "state").unwrap();
    let res = client
        .get(app.url(&format!(
            "/api/v1/auth/callback?code=any-code&state={state}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(set_cookie(&res, "sessionId").is_some());
    let csrf = app.csrf(&client).await;
    (client, csrf)
}

async fn refresh_calls(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/api/v1/auth/refresh")
        .count()
}

/// Two instances on one Redis, one browser session, 20 refreshes at once spread over both:
/// one Auth Service call, 20 successes with one expiry.
async fn twenty_refreshes(lease: Duration, delay: Duration) {
    let redis = RedisServer::start().await;
    let auth = auth_service(delay).await;
    let settings = |s: Settings| Settings {
        auth_service_url: Some(auth.uri()),
        session_refresh_lease_ms: u64::try_from(lease.as_millis()).unwrap(),
        ..s
    };
    let (one, two) = (
        spawn_on_redis(&redis.url(), settings).await,
        spawn_on_redis(&redis.url(), settings).await,
    );
    let (client, csrf) = sign_in_over_wiremock(&one).await;

    let refreshes = (0..20).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        client
            .post(app.url("/api/v1/auth/refresh"))
            .header("x-csrf-token", &csrf)
            .send()
    });
    let responses = futures::future::join_all(refreshes).await;

    let mut expiries = std::collections::HashSet::new();
    for res in responses {
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        expiries.insert(body["expiresAt"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        refresh_calls(&auth).await,
        1,
        "one redemption of the refresh token"
    );
    assert_eq!(expiries.len(), 1, "every tab got the one refreshed session");
}

#[tokio::test]
async fn twenty_concurrent_refreshes_on_two_instances_call_the_auth_service_once() {
    twenty_refreshes(Duration::from_secs(5), Duration::from_millis(300)).await;
}

#[tokio::test]
async fn an_auth_service_slower_than_the_lease_is_still_called_once() {
    // The lease is renewed every 100 ms while the call takes 1.2 s (4 leases).
    twenty_refreshes(Duration::from_millis(300), Duration::from_millis(1200)).await;
}
