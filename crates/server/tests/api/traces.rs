//! Spans as an OpenTelemetry backend receives them: the request's server span (name
//! `{METHOD} {route}`, kind SERVER, the stable HTTP semantic-convention attributes, ERROR
//! only on a 5xx, the caller's trace continued), a downstream call's client span (error
//! status when every attempt failed) and a Redis round trip's span; read from the test
//! binary's in-memory exporter. And the binary itself exporting over OTLP/HTTP to an
//! in-process receiver, under `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.

use crate::helpers::*;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_sdk::trace::SpanData;
use portal_server::Settings;
use std::time::Duration;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a OtelValue> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attr(span, key)
        .map(|v| v.as_str().into_owned())
        .unwrap_or_default()
}

fn int(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key)? {
        OtelValue::I64(i) => Some(*i),
        _ => None,
    }
}

/// The server span of the request sent with `X-Request-ID: id`.
fn server_span(id: &str) -> SpanData {
    finished_spans()
        .into_iter()
        .find(|s| s.span_kind == SpanKind::Server && text(s, "request_id") == id)
        .unwrap_or_else(|| panic!("no server span for {id}"))
}

async fn get(app: &TestApp, client: &reqwest::Client, path: &str, id: &str) -> u16 {
    client
        .get(app.url(path))
        .header("X-Request-ID", id)
        .header("User-Agent", "traces-test/1.0")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn new_id(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4())
}

#[tokio::test]
async fn the_request_span_follows_the_http_server_conventions() {
    let app = spawn_app().await;
    app.sign_in("agent@acme.example").await;
    let id = new_id("server-span");
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let res = app
        .client
        .get(app.url("/api/v1/dashboard/stats?period=week"))
        .header("X-Request-ID", &id)
        .header("User-Agent", "traces-test/1.0")
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let span = server_span(&id);
    assert_eq!(span.name, "GET /api/v1/dashboard/stats");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.status, Status::Unset, "a 200 leaves the status unset");
    assert_eq!(text(&span, "http.request.method"), "GET");
    assert_eq!(text(&span, "http.route"), "/api/v1/dashboard/stats");
    assert_eq!(
        int(&span, "http.response.status_code"),
        Some(200),
        "an integer"
    );
    assert_eq!(
        text(&span, "url.path"),
        "/api/v1/dashboard/stats",
        "no query"
    );
    assert_eq!(text(&span, "url.scheme"), "http");
    assert_eq!(text(&span, "server.address"), "localhost");
    assert_eq!(int(&span, "server.port"), Some(i64::from(app.port)));
    assert_eq!(text(&span, "client.address"), "127.0.0.1");
    assert_eq!(text(&span, "user_agent.original"), "traces-test/1.0");
    assert_eq!(text(&span, "network.protocol.version"), "1.1");
    assert!(!text(&span, "user_id").is_empty(), "the session's user");
    assert!(!text(&span, "tenant_id").is_empty(), "the session's tenant");
    // The caller's trace goes on, with this span as a child of the caller's.
    assert_eq!(span.span_context.trace_id().to_string(), caller_trace);
    assert_eq!(span.parent_span_id.to_string(), caller_span);
    for (key, _) in span.attributes.iter().map(|kv| (kv.key.as_str(), ())) {
        assert!(
            !["method", "path", "status", "route"].contains(&key),
            "no home-made attribute names: {key}"
        );
    }
}

#[tokio::test]
async fn server_errors_are_marked_and_client_errors_are_not() {
    // A State Manager failing with 503 (retried): the stats read answers 503.
    let sm = failing_service(503).await;
    let uri = sm.uri();
    let app = spawn_app_with(move |s| Settings {
        state_manager_url: Some(uri),
        ..s
    })
    .await;
    app.sign_in("agent@acme.example").await;
    let failed = new_id("server-error");
    let status = get(&app, &app.client, "/api/v1/dashboard/stats", &failed).await;
    assert!(status >= 500, "{status}");
    let span = server_span(&failed);
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );
    assert_eq!(text(&span, "error.type"), status.to_string());

    // Its downstream call: a client span, child of the request's, failed after its retries.
    let calls: Vec<SpanData> = finished_spans()
        .into_iter()
        .filter(|s| {
            s.span_kind == SpanKind::Client
                && s.span_context.trace_id() == span.span_context.trace_id()
                && text(s, "service") == "stateManager"
        })
        .collect();
    assert!(!calls.is_empty(), "the State Manager call is traced");
    for call in &calls {
        assert_eq!(
            call.name, "GET",
            "HTTP client spans are named by the method"
        );
        assert_eq!(text(call, "http.request.method"), "GET");
        assert_eq!(text(call, "server.address"), "127.0.0.1");
        assert!(
            text(call, "url.full").starts_with(&sm.uri()),
            "{:?}",
            call.attributes
        );
        assert_eq!(int(call, "http.response.status_code"), Some(503));
        assert_eq!(text(call, "error.type"), "503");
        assert!(
            matches!(call.status, Status::Error { .. }),
            "{:?}",
            call.status
        );
        assert_eq!(
            int(call, "http.request.resend_count"),
            Some(2),
            "3 attempts"
        );
    }

    // A 401 and an unmatched path: the client's errors, status left unset.
    let refused = new_id("client-error");
    assert_eq!(
        get(&app, &new_client(), "/api/v1/auth/me", &refused).await,
        401
    );
    let span = server_span(&refused);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(int(&span, "http.response.status_code"), Some(401));
    let unmatched = new_id("unmatched");
    assert_eq!(
        get(&app, &new_client(), "/api/v1/no-such-thing", &unmatched).await,
        404
    );
    let span = server_span(&unmatched);
    assert_eq!(span.name, "GET", "no route: the method alone");
    assert!(attr(&span, "http.route").is_none());
}

#[tokio::test]
async fn a_successful_downstream_call_and_a_store_round_trip_are_client_spans() {
    let redis = portal_redis::RedisServer::start().await;
    let url = redis.url();
    let sm = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "data": {"activeConversations": 1, "messagesToday": 2, "averageResponseTime": 3}
            })),
        )
        .mount(&sm)
        .await;
    let sm_uri = sm.uri();
    let app = spawn_app_with(move |s| Settings {
        redis: portal_server::configuration::RedisConfig::single(url),
        state_manager_url: Some(sm_uri),
        ..s
    })
    .await;
    app.sign_in("agent@acme.example").await;
    let id = new_id("store-span");
    let _ = get(&app, &app.client, "/api/v1/dashboard/stats", &id).await;
    let request = server_span(&id);
    let trace = request.span_context.trace_id();
    let spans: Vec<SpanData> = finished_spans()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let store = spans
        .iter()
        .find(|s| text(s, "db.system.name") == "redis")
        .expect("a Redis round trip in the request's trace");
    assert_eq!(store.span_kind, SpanKind::Client);
    assert_eq!(text(store, "db.system"), "redis");
    assert!(!text(store, "db.operation.name").is_empty());
    assert_eq!(store.name, text(store, "db.operation.name"));
    let call = spans
        .iter()
        .find(|s| text(s, "service") == "stateManager")
        .expect("the State Manager call in the request's trace");
    assert_eq!(int(call, "http.response.status_code"), Some(200));
    assert_eq!(call.status, Status::Unset);
    assert!(
        attr(call, "http.request.resend_count").is_none(),
        "one attempt"
    );
}

// ---------------------------------------------------------------------------------------
// The binary over OTLP

#[tokio::test]
async fn the_binary_exports_over_otlp_under_the_configured_service_name() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use prost::Message;

    let collector = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let portal = start_portal([
        ("LOG_LEVEL", "info"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.uri().as_str()),
        ("OTEL_SERVICE_NAME", "portal-under-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ]);
    let id = new_id("otlp");
    let (status, lines) = portal.get_logged("/api/v1/auth/me", &id).await;
    assert_eq!(status, 401);

    // Wait for the batch holding this request's span.
    let mut found = None;
    for _ in 0..100 {
        for req in collector.received_requests().await.unwrap_or_default() {
            assert_eq!(req.url.path(), "/v1/traces");
            let export = ExportTraceServiceRequest::decode(req.body.as_slice()).unwrap();
            for resource in export.resource_spans {
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        let ours = span.attributes.iter().any(|kv| {
                            kv.key == "request_id"
                                && matches!(&kv.value.as_ref().and_then(|v| v.value.clone()),
                                    Some(any_value::Value::StringValue(s)) if *s == id)
                        });
                        if ours {
                            found = Some((resource.resource.clone(), span.clone()));
                        }
                    }
                }
            }
        }
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (resource, span) = found.expect("the request's span was exported");
    let resource_attr = |key: &str| {
        resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    };
    assert_eq!(
        resource_attr("service.name"),
        Some(any_value::Value::StringValue("portal-under-test".into()))
    );
    assert_eq!(
        resource_attr("deployment.environment.name"),
        Some(any_value::Value::StringValue("ci".into()))
    );
    assert_eq!(span.name, "GET /api/v1/auth/me");
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");
    let status_code = span
        .attributes
        .iter()
        .find(|kv| kv.key == "http.response.status_code")
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value);
    assert_eq!(status_code, Some(any_value::Value::IntValue(401)));

    // The request's log lines name the exported trace.
    let trace_id = hex::encode(&span.trace_id);
    let line = lines
        .iter()
        .find(|l| l.contains(&id) && l.contains("request finished"))
        .unwrap();
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
}
