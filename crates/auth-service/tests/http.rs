//! The Auth Service adapter against a wiremock server.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic

use portal_auth_service::{HttpAuthService, SERVICE, Timeouts};
use portal_domain::DownstreamFailure;
use portal_domain::model::Role;
use portal_domain::ports::downstream::{AuthService, AuthServiceError, CodeExchange};
use portal_domain::secret::{ExposeSecret, secret};
use portal_outbound::context::{self, RequestContext};
use portal_outbound::testing;
use serde_json::json;
use std::time::Duration;
use time::macros::datetime;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn setup() -> (MockServer, HttpAuthService) {
    let server = MockServer::start().await;
    let ds = testing::downstream(SERVICE, &server.uri(), testing::breaker_after(3));
    let svc = HttpAuthService::new(ds).with_timeouts(Timeouts {
        validate: Duration::from_millis(200),
        profile: Duration::from_millis(200),
        refresh: Duration::from_millis(200),
    });
    (server, svc)
}

fn exchange() -> CodeExchange {
    CodeExchange {
        code: secret("code-abc"),
        code_verifier: secret("verifier-xyz"),
        redirect_uri: "https://portal.example/api/v1/auth/callback".into(),
    }
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn code_exchange_sends_the_code_verifier_and_redirect_and_reads_tokens() {
    let (server, svc) = setup().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/auth/validate"))
        .and(header("content-type", "application/json"))
        .and(header("x-request-id", "req-7"))
        .and(header("traceparent", TP))
        .and(body_json(json!({
            "token": "code-abc",
            "codeVerifier": "verifier-xyz",
            "redirectUri": "https://portal.example/api/v1/auth/callback"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "accessToken": "at-1", "refreshToken": "rt-1", "expiresAt": "2026-02-12T10:00:00Z"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let ctx = RequestContext::new("req-7").with_traceparent(Some(TP));
    let tokens = context::scope(ctx, svc.exchange_code(exchange()))
        .await
        .unwrap();

    assert_eq!(tokens.access_token.expose_secret(), "at-1");
    assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "rt-1");
    assert_eq!(tokens.expires_at, datetime!(2026-02-12 10:00:00 UTC));
}

#[tokio::test]
async fn refused_code_is_an_invalid_grant_and_never_retried() {
    for status in [400, 401] {
        let (server, svc) = setup().await;
        Mock::given(path("/api/v1/auth/validate"))
            .respond_with(
                ResponseTemplate::new(status).set_body_json(json!({"error": "invalid_grant"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            svc.exchange_code(exchange()).await.unwrap_err(),
            AuthServiceError::InvalidGrant,
            "{status}"
        );
    }
}

#[tokio::test]
async fn exchange_is_not_retried_on_503() {
    let (server, svc) = setup().await;
    Mock::given(path("/api/v1/auth/validate"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        svc.exchange_code(exchange()).await.unwrap_err(),
        AuthServiceError::Failure(DownstreamFailure::Unavailable { status: Some(503) })
    );
}

#[tokio::test]
async fn valid_false_is_an_invalid_grant() {
    let (server, svc) = setup().await;
    Mock::given(path("/api/v1/auth/validate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"valid": false})))
        .mount(&server)
        .await;
    assert_eq!(
        svc.exchange_code(exchange()).await.unwrap_err(),
        AuthServiceError::InvalidGrant
    );
}

#[tokio::test]
async fn profile_uses_the_bearer_token_and_defaults_the_role() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/auth/profile"))
        .and(header("authorization", "Bearer at-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "userId": "u-1", "email": "agent@acme.example", "name": "Agent",
            "tenantId": "6f1c2b8e-8f4e-4c53-9a57-4f3f0f0b8a11"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let profile = svc.profile(&secret("at-1")).await.unwrap();

    assert_eq!(profile.user_id.as_str(), "u-1");
    assert_eq!(profile.role, Role::Agent);
    assert!(profile.tenant_id.is_some());
}

#[tokio::test]
async fn profile_with_a_refused_token_is_unauthorized() {
    let (server, svc) = setup().await;
    Mock::given(path("/api/v1/auth/profile"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    assert_eq!(
        svc.profile(&secret("old")).await.unwrap_err(),
        AuthServiceError::Unauthorized
    );
}

#[tokio::test]
async fn profile_is_retried_after_a_503() {
    let (server, svc) = setup().await;
    Mock::given(path("/api/v1/auth/profile"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/auth/profile"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "userId": "u-1", "email": "admin@acme.example", "name": "A", "role": "admin"
        })))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(svc.profile(&secret("t")).await.unwrap().role, Role::Admin);
}

#[tokio::test]
async fn profile_errors_map_to_failures() {
    let cases: [(ResponseTemplate, DownstreamFailure); 4] = [
        (
            ResponseTemplate::new(500),
            DownstreamFailure::Unavailable { status: Some(500) },
        ),
        (
            ResponseTemplate::new(429),
            DownstreamFailure::RateLimited { retry_after: None },
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_millis(600)),
            DownstreamFailure::Timeout,
        ),
        (
            ResponseTemplate::new(403),
            DownstreamFailure::Protocol("forbidden".into()),
        ),
    ];
    for (template, expected) in cases {
        let (server, svc) = setup().await;
        Mock::given(path("/api/v1/auth/profile"))
            .respond_with(template)
            .mount(&server)
            .await;
        assert_eq!(
            svc.profile(&secret("t")).await.unwrap_err(),
            AuthServiceError::Failure(expected)
        );
    }
}

#[tokio::test]
async fn malformed_and_oversized_profiles_are_protocol_errors() {
    let (server, svc) = setup().await;
    Mock::given(path("/api/v1/auth/profile"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"userId\": 5}"))
        .mount(&server)
        .await;
    assert!(matches!(
        svc.profile(&secret("t")).await,
        Err(AuthServiceError::Failure(DownstreamFailure::Protocol(_)))
    ));

    let server = MockServer::start().await;
    let ds = testing::downstream(SERVICE, &server.uri(), testing::breaker_after(3))
        .with_max_body_bytes(64);
    let svc = HttpAuthService::new(ds);
    Mock::given(path("/api/v1/auth/profile"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(1000)))
        .mount(&server)
        .await;
    assert!(matches!(
        svc.profile(&secret("t")).await,
        Err(AuthServiceError::Failure(DownstreamFailure::Protocol(_)))
    ));
}

#[tokio::test]
async fn refresh_posts_the_refresh_token() {
    let (server, svc) = setup().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/auth/refresh"))
        .and(body_json(json!({"refreshToken": "rt-1"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"accessToken": "at-2", "expiresAt": 1_770_890_400}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let tokens = svc.refresh(&secret("rt-1")).await.unwrap();

    assert_eq!(tokens.access_token.expose_secret(), "at-2");
    assert!(tokens.refresh_token.is_none());
    assert_eq!(tokens.expires_at.unix_timestamp(), 1_770_890_400);
}

#[tokio::test]
async fn breaker_opens_after_repeated_failures_and_stops_calling() {
    let (server, svc) = setup().await;
    Mock::given(path("/api/v1/auth/refresh"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;
    for _ in 0..3 {
        svc.refresh(&secret("rt")).await.unwrap_err();
    }
    assert_eq!(
        svc.refresh(&secret("rt")).await.unwrap_err(),
        AuthServiceError::Failure(DownstreamFailure::CircuitOpen)
    );
}
