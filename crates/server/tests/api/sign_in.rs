//! The sign-in chain for every demo user, refresh and logout, and every way to break it.

use crate::helpers::*;
use reqwest::StatusCode;

const ACME: &str = "7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e";
const GLOBEX: &str = "2f9a61d8-5b7c-4e21-9d03-6a8b4f0910be";

#[tokio::test]
async fn every_demo_user_signs_in_refreshes_and_logs_out() {
    let cases = [
        ("admin@acme.example", "/dashboard", "admin", Some(ACME)),
        ("agent@acme.example", "/dashboard", "agent", Some(ACME)),
        ("viewer@acme.example", "/dashboard", "viewer", Some(ACME)),
        ("admin@globex.example", "/dashboard", "admin", Some(GLOBEX)),
        ("new@newco.example", "/onboarding", "admin", None),
    ];
    let app = spawn_app().await;
    for (email, landing, role, tenant) in cases {
        let client = new_client();
        // Arrange / Act: login → simulated Genesys → callback.
        let authorize_url = app.start_login(&client, Some(email)).await;
        assert!(
            authorize_url.starts_with(&app.url("/_sandbox/genesys/oauth/authorize")),
            "{authorize_url}"
        );
        assert_eq!(
            query_param(&authorize_url, "code_challenge_method").as_deref(),
            Some("S256")
        );
        let callback_url = app.authorize(&client, &authorize_url).await;
        assert!(callback_url.starts_with(&app.url("/api/v1/auth/callback")));
        let res = client.get(&callback_url).send().await.unwrap();

        // Assert: landed on the frontend with a hardened session cookie.
        assert_eq!(res.status(), StatusCode::FOUND, "{email}");
        assert_eq!(location(&res), format!("{FRONTEND}{landing}"), "{email}");
        let cookie = set_cookie(&res, "sessionId").expect("session cookie");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
            assert!(cookie.contains(attr), "{attr} missing: {cookie}");
        }
        let old_cookie = cookie.split(';').next().unwrap().to_owned();

        let me: serde_json::Value = app.me(&client).await.json().await.unwrap();
        assert_eq!(me["email"], email);
        assert_eq!(me["role"], role);
        assert_eq!(me["tenantId"].as_str(), tenant, "{email}");
        assert_eq!(me["onboardingRequired"], tenant.is_none());
        let csrf = me["csrfToken"].as_str().unwrap().to_owned();

        let res = client
            .post(app.url("/api/v1/auth/refresh"))
            .header("X-CSRF-Token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{email}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["success"], true);
        assert!(body["expiresAt"].is_string());

        let res = client
            .post(app.url("/api/v1/auth/logout"))
            .header("X-CSRF-Token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(set_cookie(&res, "sessionId").unwrap().contains("Max-Age=0"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["success"], true);

        // The browser dropped the cookie; a replay of the old one finds no session.
        assert_error(app.me(&client).await, 401, "NO_SESSION").await;
        let replay = new_client()
            .get(app.url("/api/v1/auth/me"))
            .header("Cookie", &old_cookie)
            .send()
            .await
            .unwrap();
        assert_error(replay, 401, "SESSION_EXPIRED").await;
    }
}

#[tokio::test]
async fn return_to_is_honoured() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/v1/auth/login?returnTo=/history"))
        .send()
        .await
        .unwrap();
    let callback = app.authorize(&app.client, &location(&res)).await;
    let res = app.client.get(callback).send().await.unwrap();
    assert_eq!(location(&res), format!("{FRONTEND}/history"));
}

#[tokio::test]
async fn callback_without_state_is_invalid_state() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/v1/auth/callback?code=abc"))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "INVALID_STATE").await;
}

#[tokio::test]
async fn callback_without_code_is_validation_failed() {
    let app = spawn_app().await;
    let authorize = app.start_login(&app.client, None).await;
    let state = query_param(&authorize, "state").unwrap();
    let res = app
        .client
        .get(app.url(&format!("/api/v1/auth/callback?state={state}")))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "VALIDATION_FAILED").await;
}

#[tokio::test]
async fn a_state_from_another_browser_is_refused() {
    let app = spawn_app().await;
    let victim = new_client();
    let attacker = new_client();
    let authorize = app.start_login(&attacker, None).await;
    let callback = app.authorize(&attacker, &authorize).await;
    // The victim has a pre-login cookie of their own, but not the one bound to this state.
    app.start_login(&victim, None).await;
    let res = victim.get(&callback).send().await.unwrap();
    assert_error(res, 400, "INVALID_STATE").await;
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let app = spawn_app().await;
    let first = app.sign_in("admin@acme.example").await;
    assert_eq!(first.response.status(), StatusCode::FOUND);
    let res = app.client.get(&first.callback_url).send().await.unwrap();
    assert_error(res, 400, "INVALID_STATE").await;
}

#[tokio::test]
async fn unknown_and_reused_codes_redirect_to_login_with_an_error() {
    let app = spawn_app().await;
    let expected = format!("{FRONTEND}/login?error=token_validation_failed");

    // Unknown code with a genuine state.
    let authorize = app.start_login(&app.client, None).await;
    let state = query_param(&authorize, "state").unwrap();
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/auth/callback?code=sim_code_bogus&state={state}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), expected);

    // A code that was already used, with a fresh genuine state.
    let done = app.sign_in("agent@acme.example").await;
    let used_code = query_param(&done.callback_url, "code").unwrap();
    let authorize = app.start_login(&app.client, None).await;
    let state = query_param(&authorize, "state").unwrap();
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/auth/callback?code={used_code}&state={state}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), expected);
}

#[tokio::test]
async fn provider_errors_redirect_to_login() {
    let app = spawn_app().await;
    let authorize = app
        .start_login(&app.client, Some("mallory@evil.example"))
        .await;
    let callback = app.authorize(&app.client, &authorize).await;
    let res = app.client.get(callback).send().await.unwrap();
    assert_eq!(
        location(&res),
        format!("{FRONTEND}/login?error=access_denied")
    );
}

#[tokio::test]
async fn missing_and_tampered_cookies_are_refused() {
    let app = spawn_app().await;
    assert_error(app.me(&app.client).await, 401, "NO_SESSION").await;

    let signed = app.sign_in("admin@acme.example").await;
    let cookie = set_cookie(&signed.response, "sessionId").unwrap();
    let pair = cookie.split(';').next().unwrap();
    // Flip the last character of the session ID: the signature no longer matches.
    let last = pair.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &pair[..pair.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    let res = new_client()
        .get(app.url("/api/v1/auth/me"))
        .header("Cookie", tampered)
        .send()
        .await
        .unwrap();
    assert!(set_cookie(&res, "sessionId").unwrap().contains("Max-Age=0"));
    assert_error(res, 401, "SESSION_EXPIRED").await;
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = spawn_app().await;
    app.sign_in("admin@acme.example").await;
    assert_eq!(app.me(&app.client).await.status(), StatusCode::OK);
    app.clock.advance(time::Duration::hours(25));
    assert_error(app.me(&app.client).await, 401, "SESSION_EXPIRED").await;
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_token() {
    let app = spawn_app().await;
    app.sign_in("admin@acme.example").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/ws-ticket"))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "CSRF_FAILED").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("X-CSRF-Token", "not-the-token")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "CSRF_FAILED").await;
    // Still signed in; with the right token it works.
    let csrf = app.csrf(&app.client).await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/ws-ticket"))
        .header("X-CSRF-Token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["expiresIn"], 30);
    assert!(body["ticket"].as_str().unwrap().len() >= 32);
}

#[tokio::test]
async fn the_eleventh_sign_in_attempt_from_one_ip_is_rate_limited() {
    let app = spawn_app().await;
    for i in 1..=10 {
        let res = app
            .client
            .get(app.url("/api/v1/auth/login"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "attempt {i}");
        assert_eq!(res.headers()["ratelimit-limit"], "10");
        assert_eq!(
            res.headers()["ratelimit-remaining"].to_str().unwrap(),
            (10 - i).to_string()
        );
    }
    let res = app
        .client
        .get(app.url("/api/v1/auth/login"))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 900, "{retry_after}");
    assert_error(res, 429, "RATE_LIMIT_EXCEEDED").await;
}

#[tokio::test]
async fn one_sign_in_counts_once_against_the_sign_in_limit() {
    let app = spawn_app().await;
    // Ten whole sign-ins (login, Genesys, callback) from one IP: each counts once.
    for i in 1..=10 {
        let client = new_client();
        let res = app
            .sign_in_with(&client, "agent@acme.example")
            .await
            .response;
        assert_eq!(res.status(), StatusCode::FOUND, "sign-in {i}");
        assert!(set_cookie(&res, "sessionId").is_some(), "sign-in {i}");
    }
    let res = app
        .client
        .get(app.url("/api/v1/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["ratelimit-limit"], "10");
    assert_eq!(res.headers()["ratelimit-remaining"], "0");
    assert_error(res, 429, "RATE_LIMIT_EXCEEDED").await;
}

#[tokio::test]
async fn failed_callbacks_count_against_the_sign_in_limit() {
    let app = spawn_app().await;
    for _ in 1..=10 {
        let res = app
            .client
            .get(app.url("/api/v1/auth/callback?code=x&state=guessed"))
            .send()
            .await
            .unwrap();
        assert_error(res, 400, "INVALID_STATE").await;
    }
    let res = app
        .client
        .get(app.url("/api/v1/auth/callback?code=x&state=guessed"))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.headers()["ratelimit-limit"], "10");
    assert_error(res, 429, "RATE_LIMIT_EXCEEDED").await;
}

/// `GET /auth/login` through a trusted proxy on 127.0.0.1 that appends `ip:port`.
async fn login_via_proxy(app: &TestApp, header: &str, value: &str) -> reqwest::Response {
    new_client()
        .get(app.url("/api/v1/auth/login"))
        .header(header, value)
        .send()
        .await
        .unwrap()
}

fn remaining(res: &reqwest::Response) -> u32 {
    res.headers()["ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_client_cannot_choose_its_ip_through_a_proxy_that_appends_ports() {
    let app = spawn_app_with(|s| portal_server::Settings {
        trusted_proxies: "127.0.0.1".into(),
        ..s
    })
    .await;
    // The attacker writes its own left-hand entry each time; the proxy appends the address
    // it saw, with a port. The client is the right-most untrusted entry: always the same.
    for i in 1..=10u32 {
        let value = format!("198.18.0.{i}, 203.0.113.7:{}", 40000 + i);
        let res = login_via_proxy(&app, "x-forwarded-for", &value).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{value}");
        assert_eq!(remaining(&res), 10 - i, "{value}");
    }
    let res = login_via_proxy(&app, "x-forwarded-for", "1.1.1.1, 203.0.113.7:1").await;
    assert_error(res, 429, "RATE_LIMIT_EXCEEDED").await;
    // Another client behind the same proxy (IPv6 with brackets and a port) has its own budget.
    let res = login_via_proxy(&app, "x-forwarded-for", "[2001:db8::7]:443").await;
    assert_eq!(remaining(&res), 9);
    // An untrusted peer's header is not read at all.
    let direct = spawn_app().await;
    for i in 1..=2u32 {
        let res = login_via_proxy(&direct, "x-forwarded-for", &format!("198.18.1.{i}")).await;
        assert_eq!(remaining(&res), 10 - i);
    }
}

#[tokio::test]
async fn the_forwarded_header_is_read_when_configured_and_only_then() {
    let app = spawn_app_with(|s| portal_server::Settings {
        trusted_proxies: "127.0.0.1".into(),
        forwarded_header: "forwarded".into(),
        ..s
    })
    .await;
    for i in 1..=3u32 {
        let res = new_client()
            .get(app.url("/api/v1/auth/login"))
            .header(
                "forwarded",
                format!(r#"for=198.18.2.{i};proto=https, for="[2001:db8::9]:{i}""#),
            )
            // A client's own X-Forwarded-For is not the configured header: ignored.
            .header("x-forwarded-for", format!("198.18.3.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(remaining(&res), 10 - i);
    }
}

#[tokio::test]
async fn the_simulated_login_page_redirects_only_to_the_registered_callback() {
    let app = spawn_app().await;
    let authorize_url = app.start_login(&app.client, None).await;
    let mut url = url::Url::parse(&authorize_url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for evil in [
        "https://evil.example/api/v1/auth/callback",
        &format!("{}/x", app.url("/api/v1/auth/callback")),
        "http://127.0.0.1:1/api/v1/auth/callback",
    ] {
        url.query_pairs_mut().clear().extend_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.as_str(), if k == "redirect_uri" { evil } else { v })),
        );
        let res = app.client.get(url.as_str()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{evil}");
        assert!(res.headers().get("location").is_none(), "{evil}");
    }
    // The registered one still works.
    let callback = app.authorize(&app.client, &authorize_url).await;
    assert!(callback.starts_with(&app.url("/api/v1/auth/callback")));
}
