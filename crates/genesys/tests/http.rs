//! The Genesys Cloud adapter against a wiremock server (standing in via the base URL overrides).

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic

use portal_domain::DownstreamFailure;
use portal_domain::model::Region;
use portal_domain::ports::downstream::{GenesysCloud, GenesysError};
use portal_domain::secret::{ExposeSecret, secret};
use portal_genesys::{Endpoints, HttpGenesysCloud, SERVICE, Timeouts};
use portal_outbound::context::{self, RequestContext};
use portal_outbound::testing;
use serde_json::json;
use std::time::Duration;
use url::Url;
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn setup() -> (MockServer, HttpGenesysCloud) {
    let server = MockServer::start().await;
    let ds = testing::downstream(SERVICE, &server.uri(), testing::breaker_after(3));
    let base = Url::parse(&server.uri()).unwrap();
    let svc = HttpGenesysCloud::new(
        ds,
        Endpoints {
            login_base: Some(base.clone()),
            api_base: Some(base),
        },
    )
    .with_timeouts(Timeouts {
        token: Duration::from_millis(200),
        organization: Duration::from_millis(200),
    });
    (server, svc)
}

#[tokio::test]
async fn token_uses_a_form_body_and_basic_auth() {
    let (server, svc) = setup().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        // base64("cid:csecret")
        .and(header("authorization", "Basic Y2lkOmNzZWNyZXQ="))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(header("x-request-id", "req-g"))
        .and(header("traceparent", TP))
        .and(body_string("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "gat", "token_type": "bearer", "expires_in": 86399
        })))
        .expect(1)
        .mount(&server)
        .await;

    let ctx = RequestContext::new("req-g").with_traceparent(Some(TP));
    let token = context::scope(
        ctx,
        svc.client_credentials(Region::EuWest1, "cid", &secret("csecret")),
    )
    .await
    .unwrap();

    assert_eq!(token.access_token.expose_secret(), "gat");
    assert_eq!(token.expires_in, 86399);
}

#[tokio::test]
async fn invalid_client_carries_the_description() {
    for status in [400, 401] {
        let (server, svc) = setup().await;
        Mock::given(path("/oauth/token"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "error": "invalid_client", "error_description": "client not found"
            })))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            svc.client_credentials(Region::UsEast1, "cid", &secret("bad"))
                .await
                .unwrap_err(),
            GenesysError::InvalidClient("client not found".into()),
            "{status}"
        );
    }
}

#[tokio::test]
async fn token_failures_are_not_retried_and_map_to_failures() {
    let cases: [(ResponseTemplate, DownstreamFailure); 4] = [
        (
            ResponseTemplate::new(503),
            DownstreamFailure::Unavailable { status: Some(503) },
        ),
        (
            ResponseTemplate::new(429),
            DownstreamFailure::RateLimited { retry_after: None },
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_millis(500)),
            DownstreamFailure::Timeout,
        ),
        (
            ResponseTemplate::new(400).set_body_json(json!({"error": "unsupported_grant_type"})),
            DownstreamFailure::Protocol("request refused (status 400)".into()),
        ),
    ];
    for (template, expected) in cases {
        let (server, svc) = setup().await;
        Mock::given(path("/oauth/token"))
            .respond_with(template)
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            svc.client_credentials(Region::UsEast1, "cid", &secret("s"))
                .await
                .unwrap_err(),
            GenesysError::Failure(expected)
        );
    }
}

#[tokio::test]
async fn malformed_token_response_is_a_protocol_failure() {
    let (server, svc) = setup().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"token\":1}"))
        .mount(&server)
        .await;
    assert!(matches!(
        svc.client_credentials(Region::UsEast1, "cid", &secret("s"))
            .await,
        Err(GenesysError::Failure(DownstreamFailure::Protocol(_)))
    ));
}

#[tokio::test]
async fn organization_with_bearer_and_its_errors() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/organizations/me"))
        .and(header("authorization", "Bearer good"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "org-1", "name": "Acme"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/organizations/me"))
        .and(header("authorization", "Bearer limited"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "missing organization:view"})),
        )
        .mount(&server)
        .await;

    let org = svc
        .organization(Region::UsEast1, &secret("good"))
        .await
        .unwrap();
    assert_eq!((org.id.as_str(), org.name.as_str()), ("org-1", "Acme"));
    assert_eq!(
        svc.organization(Region::UsEast1, &secret("limited"))
            .await
            .unwrap_err(),
        GenesysError::Forbidden("missing organization:view".into())
    );
}

#[tokio::test]
async fn organization_get_is_retried_after_503() {
    let (server, svc) = setup().await;
    Mock::given(path("/api/v2/organizations/me"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/organizations/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "o", "name": "n"})))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    assert!(
        svc.organization(Region::UsEast1, &secret("t"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn breaker_opens_and_calls_stop() {
    let (server, svc) = setup().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;
    for _ in 0..3 {
        svc.client_credentials(Region::UsEast1, "c", &secret("s"))
            .await
            .unwrap_err();
    }
    assert_eq!(
        svc.client_credentials(Region::UsEast1, "c", &secret("s"))
            .await
            .unwrap_err(),
        GenesysError::Failure(DownstreamFailure::CircuitOpen)
    );
}
