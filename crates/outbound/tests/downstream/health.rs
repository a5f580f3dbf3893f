//! The downstream health probe (`GET {base}/health`) against a real HTTP server (wiremock).

use crate::helpers::downstream_at;
use portal_domain::ports::system::{HealthProbe, NoopTelemetry};
use portal_domain::resilience::BreakerConfig;
use portal_outbound::{Call, ClientConfig, Downstream, Guard, HealthCheck, build_client};
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn downstream(server: &MockServer, breaker: BreakerConfig) -> Downstream {
    downstream_at(server, "/base/", "authService", breaker).0
}

async fn health_answers(server: &MockServer, response: ResponseTemplate) {
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/base/health"))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_2xx_is_healthy_anything_else_names_the_reason() {
    let server = MockServer::start().await;
    let probe = HealthCheck::new(&downstream(&server, BreakerConfig::default()))
        .with_timeout(Duration::from_millis(300));
    assert_eq!(probe.name(), "authService");

    health_answers(&server, ResponseTemplate::new(200)).await;
    let status = probe.check().await;
    assert!(status.ok, "{status:?}");
    assert_eq!(status.detail, None);

    health_answers(&server, ResponseTemplate::new(503)).await;
    let status = probe.check().await;
    assert!(!status.ok);
    assert_eq!(status.detail.as_deref(), Some("status 503"));

    health_answers(
        &server,
        ResponseTemplate::new(200).set_delay(Duration::from_secs(2)),
    )
    .await;
    let status = probe.check().await;
    assert!(!status.ok);
    assert_eq!(status.detail.as_deref(), Some("timeout"));
    assert!(status.latency < Duration::from_secs(2), "{status:?}");
}

#[tokio::test]
async fn an_unreachable_service_is_unhealthy() {
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Downstream::new(
        Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
        build_client(&ClientConfig::default()).unwrap(),
        Guard::new(
            "authService",
            BreakerConfig::default(),
            Arc::new(NoopTelemetry),
        ),
    );
    let status = HealthCheck::new(&d).check().await;
    assert!(!status.ok);
    assert_eq!(status.detail.as_deref(), Some("unreachable"));
}

#[tokio::test]
async fn the_probe_goes_around_an_open_circuit_without_closing_it() {
    let server = MockServer::start().await;
    let d = downstream(
        &server,
        BreakerConfig {
            failure_rate_threshold: 1.0,
            minimum_calls: 1,
            window: 1,
            open_for: Duration::from_secs(60),
            half_open_probes: 1,
        },
    );
    Mock::given(method("GET"))
        .and(path("/base/users/me"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/base/health"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let call = || Call::get("profile", d.url(&["users", "me"])).no_retry();
    assert!(d.send(call()).await.is_err());
    assert!(
        d.breaker().try_acquire().is_err(),
        "one failure opens this breaker"
    );

    let status = HealthCheck::new(&d).check().await;
    assert!(status.ok, "the probe reaches the service: {status:?}");
    assert!(
        d.breaker().try_acquire().is_err(),
        "a healthy probe does not close the circuit"
    );
}
