//! The plumbing of a call: correlation headers, status mapping, retries, deadlines, body
//! caps, the breaker.

use crate::helpers::{Recorder, downstream_at};
use portal_domain::ports::system::CircuitState;
use portal_domain::resilience::BreakerConfig;
use portal_outbound::context::{self, RequestContext};
use portal_outbound::{Call, CallError, Downstream};
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn downstream_with(server: &MockServer, breaker: BreakerConfig) -> (Downstream, Arc<Recorder>) {
    downstream_at(server, "", "svc", breaker)
}

fn downstream(server: &MockServer) -> (Downstream, Arc<Recorder>) {
    downstream_with(
        server,
        BreakerConfig {
            minimum_calls: 100,
            window: 100,
            ..BreakerConfig::default()
        },
    )
}

#[tokio::test]
async fn request_context_is_forwarded_as_correlation_headers() {
    let server = MockServer::start().await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    Mock::given(method("GET"))
        .and(path("/ping"))
        .and(header("x-request-id", "req-123"))
        .and(header("traceparent", tp))
        .and(header("tracestate", "vendor=abc"))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
        .expect(1)
        .mount(&server)
        .await;
    let (ds, telemetry) = downstream(&server);

    let ctx = RequestContext::new("req-123")
        .with_traceparent(Some(tp))
        .with_tracestate(Some("vendor=abc"));
    let reply = context::scope(ctx, ds.send(Call::get("ping", ds.url(&["ping"]))))
        .await
        .unwrap();

    assert_eq!(reply.status(), 200);
    let v: serde_json::Value = reply.json("ping").unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(
        telemetry.calls.lock().unwrap()[0],
        ("svc", "ping", "success")
    );
}

#[tokio::test]
async fn without_context_a_request_id_and_fresh_traceparent_are_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header_exists("x-request-id"))
        .and(header_exists("traceparent"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let (ds, _) = downstream(&server);

    ds.send(Call::get("ping", ds.url(&["ping"]))).await.unwrap();

    let received = server.received_requests().await.unwrap();
    let tp = received[0]
        .headers
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(context::is_valid_traceparent(tp), "{tp}");
}

#[tokio::test]
async fn otel_span_context_wins_and_the_call_is_a_child_of_it() {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (ds, _) = downstream(&server);
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), incoming.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let span = tracing::info_span!("request");
    span.set_parent(parent).unwrap();
    // The task-local carries a different trace: the live OTel context must win.
    let ctx = RequestContext::new("r1").with_traceparent(Some(
        "00-11111111111111111111111111111111-2222222222222222-01",
    ));
    context::scope(
        ctx,
        ds.send(Call::get("ping", ds.url(&["ping"])))
            .instrument(span),
    )
    .await
    .unwrap();

    let received = server.received_requests().await.unwrap();
    let tp = received[0]
        .headers
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts[1], "0af7651916cd43dd8448eb211c80319c", "same trace");
    assert_ne!(parts[2], "b7ad6b7169203331", "a new child span id");
    assert_eq!(received[0].headers.get("x-request-id").unwrap(), "r1");
}

#[tokio::test]
async fn statuses_are_classified() {
    let server = MockServer::start().await;
    for (code, body) in [
        (400, r#"{"message":"bad field"}"#),
        (401, r#"{"error":"invalid_token"}"#),
        (403, "{}"),
        (404, "{}"),
        (409, r#"{"message":"exists"}"#),
        (422, "{}"),
        (418, "{}"),
        (500, "{}"),
    ] {
        Mock::given(path(format!("/s/{code}")))
            .respond_with(ResponseTemplate::new(code).set_body_string(body))
            .mount(&server)
            .await;
    }
    let (ds, _) = downstream(&server);
    let call = |code: &str| ds.send(Call::post("op", ds.url(&["s", code])));

    match call("400").await.unwrap_err() {
        CallError::BadRequest { status: 400, body } => {
            assert_eq!(body.message().as_deref(), Some("bad field"))
        }
        e => panic!("{e:?}"),
    }
    match call("401").await.unwrap_err() {
        CallError::Unauthorized(body) => assert_eq!(body.code().as_deref(), Some("invalid_token")),
        e => panic!("{e:?}"),
    }
    assert!(matches!(call("403").await, Err(CallError::Forbidden(_))));
    assert!(matches!(call("404").await, Err(CallError::NotFound(_))));
    assert!(matches!(call("409").await, Err(CallError::Conflict(_))));
    assert!(matches!(
        call("422").await,
        Err(CallError::BadRequest { status: 422, .. })
    ));
    assert_eq!(
        call("418").await.unwrap_err(),
        CallError::UnexpectedStatus { status: 418 }
    );
    assert_eq!(
        call("500").await.unwrap_err(),
        CallError::Server { status: 500 }
    );
}

#[tokio::test]
async fn idempotent_get_is_retried_on_503_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let (ds, telemetry) = downstream(&server);

    let reply = ds.send(Call::get("get", ds.url(&["x"]))).await;

    assert!(reply.is_ok());
    assert_eq!(telemetry.outcomes(), ["server_error", "success"]);
    // Both attempts carry the same correlation headers.
    let received = server.received_requests().await.unwrap();
    assert_eq!(
        received[0].headers.get("traceparent"),
        received[1].headers.get("traceparent")
    );
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(502))
        .expect(3)
        .mount(&server)
        .await;
    let (ds, _) = downstream(&server);

    let err = ds.send(Call::put("put", ds.url(&["x"]))).await.unwrap_err();

    assert_eq!(err, CallError::Server { status: 502 });
}

#[tokio::test]
async fn post_is_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let (ds, _) = downstream(&server);

    let err = ds
        .send(Call::post("create", ds.url(&["x"])))
        .await
        .unwrap_err();

    assert_eq!(err, CallError::Server { status: 503 });
}

#[tokio::test]
async fn a_500_is_not_retried_even_for_get() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let (ds, _) = downstream(&server);
    assert!(ds.send(Call::get("get", ds.url(&["x"]))).await.is_err());
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured_up_to_the_cap() {
    let server = MockServer::start().await;
    Mock::given(path("/short"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/short"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(path("/long"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let (ds, _) = downstream(&server);

    assert!(ds.send(Call::get("s", ds.url(&["short"]))).await.is_ok());
    assert_eq!(
        ds.send(Call::get("l", ds.url(&["long"])))
            .await
            .unwrap_err(),
        CallError::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
}

#[tokio::test]
async fn slow_answer_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
        .expect(1)
        .mount(&server)
        .await;
    let (ds, telemetry) = downstream(&server);

    let err = ds
        .send(Call::post("slow", ds.url(&["x"])).timeout(Duration::from_millis(50)))
        .await
        .unwrap_err();

    assert_eq!(err, CallError::Timeout);
    assert_eq!(telemetry.outcomes(), ["timeout"]);
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(4096)))
        .mount(&server)
        .await;
    let (ds, _) = downstream(&server);
    let ds = ds.with_max_body_bytes(1024);

    let err = ds.send(Call::get("big", ds.url(&["x"]))).await.unwrap_err();

    assert_eq!(err, CallError::TooLarge { limit: 1024 });
}

#[tokio::test]
async fn malformed_body_is_reported_by_the_decoder() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
        .mount(&server)
        .await;
    let (ds, _) = downstream(&server);

    let reply = ds.send(Call::get("m", ds.url(&["x"]))).await.unwrap();

    assert!(matches!(
        reply.json::<serde_json::Value>("thing"),
        Err(CallError::Malformed(_))
    ));
}

#[tokio::test]
async fn unreachable_service_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let server = MockServer::start().await;
    let (ds, _) = downstream(&server);
    let url = Url::parse(&format!("http://{addr}/x")).unwrap();

    let err = ds.send(Call::post("c", url)).await.unwrap_err();

    assert_eq!(err, CallError::Connect);
}

#[tokio::test]
async fn breaker_opens_after_the_threshold_and_stops_calling() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;
    let (ds, telemetry) = downstream_with(
        &server,
        BreakerConfig {
            minimum_calls: 3,
            failure_rate_threshold: 0.5,
            window: 10,
            open_for: Duration::from_secs(60),
            half_open_probes: 1,
        },
    );

    for _ in 0..3 {
        assert_eq!(
            ds.send(Call::post("op", ds.url(&["x"]))).await.unwrap_err(),
            CallError::Server { status: 500 }
        );
    }
    assert_eq!(ds.breaker().state(), CircuitState::Open);
    for _ in 0..5 {
        assert_eq!(
            ds.send(Call::post("op", ds.url(&["x"]))).await.unwrap_err(),
            CallError::CircuitOpen
        );
    }
    assert_eq!(telemetry.outcomes().last(), Some(&"circuit_open"));
    // `expect(3)` is verified when the server drops: no call was made while open.
}

#[tokio::test]
async fn caller_errors_do_not_open_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .expect(6)
        .mount(&server)
        .await;
    let (ds, _) = downstream_with(
        &server,
        BreakerConfig {
            minimum_calls: 2,
            ..BreakerConfig::default()
        },
    );

    for _ in 0..6 {
        assert!(matches!(
            ds.send(Call::get("op", ds.url(&["x"]))).await,
            Err(CallError::NotFound(_))
        ));
    }
    assert_eq!(ds.breaker().state(), CircuitState::Closed);
}

#[tokio::test]
async fn bodies_and_auth_are_sent_as_given() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", "Basic dXNlcjpwYXNz"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(|req: &Request| {
            assert_eq!(req.body, b"grant_type=client_credentials&x=a+b%26c");
            ResponseTemplate::new(200)
        })
        .expect(1)
        .mount(&server)
        .await;
    let (ds, _) = downstream(&server);

    ds.send(
        Call::post("token", ds.url(&["t"]))
            .basic_auth("user", &portal_domain::secret::secret("pass"))
            .form([("grant_type", "client_credentials"), ("x", "a b&c")]),
    )
    .await
    .unwrap();
}
