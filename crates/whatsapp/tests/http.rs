//! The WhatsApp (Meta Graph) adapter against a wiremock server.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic

use portal_domain::DownstreamFailure;
use portal_domain::ports::downstream::{WhatsApp, WhatsAppError};
use portal_domain::secret::secret;
use portal_outbound::context::{self, RequestContext};
use portal_outbound::testing;
use portal_whatsapp::{HttpWhatsApp, SERVICE};
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn setup() -> (MockServer, HttpWhatsApp) {
    let server = MockServer::start().await;
    let ds = testing::downstream(SERVICE, &server.uri(), testing::breaker_after(3));
    let svc = HttpWhatsApp::new(ds).with_timeout(Duration::from_millis(200));
    (server, svc)
}

#[tokio::test]
async fn phone_number_lookup_sends_fields_and_bearer() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .and(path("/v18.0/1234567890"))
        .and(query_param(
            "fields",
            "id,display_phone_number,verified_name,quality_rating",
        ))
        .and(header("authorization", "Bearer wtoken"))
        .and(header("x-request-id", "req-w"))
        .and(header("traceparent", TP))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "1234567890", "display_phone_number": "+1 555-0100",
            "verified_name": "Acme", "quality_rating": "GREEN"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let ctx = RequestContext::new("req-w").with_traceparent(Some(TP));
    let info = context::scope(ctx, svc.phone_number("1234567890", &secret("wtoken")))
        .await
        .unwrap();

    assert_eq!(info.display_phone_number, "+1 555-0100");
    assert_eq!(info.quality_rating.as_deref(), Some("GREEN"));
}

#[tokio::test]
async fn version_is_configurable() {
    let (server, svc) = setup().await;
    Mock::given(path("/v21.0/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "42"})))
        .expect(1)
        .mount(&server)
        .await;
    assert!(
        svc.with_version("v21.0")
            .phone_number("42", &secret("t"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn error_mapping() {
    let oauth = json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}});
    let cases: [(ResponseTemplate, WhatsAppError); 8] = [
        (
            ResponseTemplate::new(401).set_body_json(oauth.clone()),
            WhatsAppError::InvalidToken("Invalid OAuth access token.".into()),
        ),
        (
            ResponseTemplate::new(400).set_body_json(oauth),
            WhatsAppError::InvalidToken("Invalid OAuth access token.".into()),
        ),
        (
            ResponseTemplate::new(403)
                .set_body_json(json!({"error": {"message": "no permission", "type": "Other"}})),
            WhatsAppError::Forbidden("no permission".into()),
        ),
        (ResponseTemplate::new(404), WhatsAppError::NotFound),
        (
            ResponseTemplate::new(400).set_body_json(json!({
                "error": {"message": "Unsupported get request.", "type": "GraphMethodException"}
            })),
            WhatsAppError::NotFound,
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"id": "999"})),
            WhatsAppError::NotFound,
        ),
        (
            ResponseTemplate::new(500),
            WhatsAppError::Failure(DownstreamFailure::Unavailable { status: Some(500) }),
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_millis(500)),
            WhatsAppError::Failure(DownstreamFailure::Timeout),
        ),
    ];
    for (template, expected) in cases {
        let (server, svc) = setup().await;
        Mock::given(method("GET"))
            .respond_with(template)
            .mount(&server)
            .await;
        assert_eq!(
            svc.phone_number("123", &secret("t")).await.unwrap_err(),
            expected
        );
    }
}

#[tokio::test]
async fn malformed_and_oversized_answers_are_protocol_failures() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("nope"))
        .mount(&server)
        .await;
    assert!(matches!(
        svc.phone_number("123", &secret("t")).await,
        Err(WhatsAppError::Failure(DownstreamFailure::Protocol(_)))
    ));

    let server = MockServer::start().await;
    let svc = HttpWhatsApp::new(
        testing::downstream(SERVICE, &server.uri(), testing::breaker_after(3))
            .with_max_body_bytes(16),
    );
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "123", "display_phone_number": "+1"})),
        )
        .mount(&server)
        .await;
    assert!(matches!(
        svc.phone_number("123", &secret("t")).await,
        Err(WhatsAppError::Failure(DownstreamFailure::Protocol(_)))
    ));
}

#[tokio::test]
async fn lookup_is_retried_after_503_and_breaker_stops_calls() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .and(path("/v18.0/1"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v18.0/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1"})))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    assert!(svc.phone_number("1", &secret("t")).await.is_ok());

    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;
    for _ in 0..3 {
        svc.phone_number("1", &secret("t")).await.unwrap_err();
    }
    assert_eq!(
        svc.phone_number("1", &secret("t")).await.unwrap_err(),
        WhatsAppError::Failure(DownstreamFailure::CircuitOpen)
    );
}
