//! Observability, black-box over HTTP: `/metrics` parses as Prometheus text and
//! moves with requests (route templates, never raw paths, as labels); a request's log lines
//! share its request ID; an incoming `traceparent` reaches the downstream (wiremock) with the
//! same trace ID; `/health` reports circuit states, and an open one.

use crate::helpers::*;
use portal_server::Settings;
use std::collections::HashMap;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// A small parser of the Prometheus/OpenMetrics text format: `# ...` lines, `name value`,
/// `name{k="v",...} value`. Panics on anything else (that is the assertion).
fn parse_metrics(text: &str) -> Vec<Sample> {
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), HashMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = HashMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (k, after) = rest.split_once("=\"").expect("label=\"value\"");
                    let end = after.find('"').expect("closing quote");
                    labels.insert(k.to_owned(), after[..end].to_owned());
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name.to_owned(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let res = reqwest::Client::new()
        .get(app.url("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    parse_metrics(&res.text().await.unwrap())
}

const STATS: &str = "/api/v1/dashboard/stats";

#[tokio::test]
async fn metrics_parse_and_move_with_route_templates_as_labels() {
    let app = spawn_app().await;
    app.sign_in("agent@acme.example").await;
    // A raw path with an ID that matches no route, and one that does.
    let unknown = "/api/v1/nothing/4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
    assert_eq!(
        app.client
            .get(app.url(unknown))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let before = scrape(&app).await;
    let latency = [("method", "GET"), ("path", STATS), ("status", "200")];
    let count = |s: &[Sample]| value(s, "portal_api_latency_seconds_count", &latency);
    let hits = |s: &[Sample]| value(s, "portal_cache_hits_total", &[("result", "hit")]);
    for _ in 0..3 {
        let res = app.client.get(app.url(STATS)).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let after = scrape(&app).await;

    assert_eq!(
        count(&after) - count(&before),
        3.0,
        "three more stats requests"
    );
    assert!(hits(&after) > hits(&before), "the cache served hits");
    assert!(
        value(
            &after,
            "portal_cache_hits_total",
            &[("cache_type", "metrics")]
        ) >= 3.0,
        "every lookup is counted by cache type"
    );
    // The spec's four and the extras are all exported.
    for name in [
        "portal_active_sessions_total",
        "portal_websocket_connections",
        "portal_websocket_slow_consumers_total",
    ] {
        assert!(after.iter().any(|s| s.name == name), "{name} exported");
    }
    assert!(
        value(&after, "portal_active_sessions_total", &[]) >= 1.0,
        "the sign-in counted"
    );
    assert!(
        value(
            &after,
            "portal_api_latency_seconds_count",
            &[("path", "unmatched")]
        ) >= 1.0,
        "an unmatched route is labelled `unmatched`"
    );
    for s in after.iter().filter(|s| s.labels.contains_key("path")) {
        let path = &s.labels["path"];
        assert!(
            path == "unmatched" || path.starts_with('/'),
            "path label {path:?}"
        );
        assert!(
            !path.contains("4bf92f35"),
            "no raw path with an ID as a label: {path:?}"
        );
    }
    // The metrics endpoint does not count itself.
    assert_eq!(
        value(
            &after,
            "portal_api_latency_seconds_count",
            &[("path", "/metrics")]
        ),
        0.0
    );
}

#[tokio::test]
async fn metrics_can_be_disabled() {
    let app = spawn_app_with(|s| Settings {
        metrics_enabled: false,
        ..s
    })
    .await;
    let res = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(res.status(), 404);
}

// ---------------------------------------------------------------------------------------
// Logs

#[tokio::test]
async fn a_requests_log_lines_share_its_request_id() {
    // A failing State Manager: the request logs its downstream attempts, from the
    // single-flight fill task too.
    let (app, _sm) = with_failing_state_manager().await;
    app.sign_in("agent@acme.example").await;
    let request_id = format!("obs-{}", uuid::Uuid::new_v4());
    let res = app
        .client
        .get(app.url(STATS))
        .header("X-Request-ID", &request_id)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert!(status >= 500, "the State Manager fails: {status}");
    assert_eq!(res.headers()["x-request-id"], request_id.as_str());

    let text = captured_logs();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.contains(&request_id))
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
    assert!(
        lines.len() >= 2,
        "the request logged more than its summary line: {lines:#?}"
    );
    // Every line of a State Manager attempt (logged inside its `downstream_call` span, from
    // any test of this binary: they all read it while serving a request) names the request
    // it served among its enclosing spans. (Other tests call the Genesys and Meta adapters
    // directly, outside any request.)
    let all: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let request_of = |line: &serde_json::Value| -> Option<String> {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|s| s["request_id"].as_str().map(str::to_owned))
    };
    let attempts: Vec<&serde_json::Value> = all
        .iter()
        .filter(|l| {
            l["fields"]["message"] == "downstream call failed"
                && l["fields"]["service"] == portal_state_manager::SERVICE
        })
        .collect();
    assert!(
        attempts
            .iter()
            .any(|l| request_of(l).as_deref() == Some(request_id.as_str())),
        "this request's failed attempts are logged with its ID"
    );
    for line in &attempts {
        assert_eq!(line["span"]["name"], "downstream_call", "{line}");
        assert!(request_of(line).is_some(), "a request ID: {line}");
    }
    for line in &lines {
        assert_eq!(
            request_of(line).as_deref(),
            Some(request_id.as_str()),
            "{line}"
        );
        assert_eq!(line["request_id"], request_id.as_str(), "top level: {line}");
    }
    let finished = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request finished")
        .expect("the summary line");
    assert_eq!(finished["fields"]["status"], status, "an integer");
    let span = &finished["span"];
    assert_eq!(span["http.request.method"], "GET");
    assert_eq!(span["http.route"], STATS, "the route template");
    assert_eq!(span["url.path"], STATS);
    assert!(span["user_id"].is_string(), "the user: {span}");
    assert!(span["tenant_id"].is_string(), "the tenant: {span}");
}

// ---------------------------------------------------------------------------------------
// Trace propagation and circuits, with the State Manager on wiremock

async fn with_failing_state_manager() -> (TestApp, MockServer) {
    let sm = failing_service(500).await;
    let uri = sm.uri();
    let app = spawn_app_with(move |s| Settings {
        state_manager_url: Some(uri),
        state_manager_breaker_min_calls: 2,
        state_manager_breaker_open_secs: 600,
        rate_limit_api_max: 10_000,
        ..s
    })
    .await;
    (app, sm)
}

#[tokio::test]
async fn an_incoming_traceparent_reaches_the_downstream_call() {
    // As in production, a subscriber is installed (`spawn_app` does): the request's span
    // carries the context into the single-flight fill task.
    let (app, sm) = with_failing_state_manager().await;
    app.sign_in("agent@acme.example").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let request_id = format!("trace-{}", uuid::Uuid::new_v4());
    app.client
        .get(app.url(STATS))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .header("X-Request-ID", &request_id)
        .send()
        .await
        .unwrap();

    let seen = sm.received_requests().await.unwrap();
    assert!(!seen.is_empty(), "the State Manager was called");
    for r in &seen {
        let tp = r.headers["traceparent"].to_str().unwrap();
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(parts[1], trace_id, "same trace ID downstream: {tp}");
        assert_eq!(r.headers["x-request-id"], request_id.as_str());
    }
}

async fn health(app: &TestApp) -> (u16, serde_json::Value) {
    let res = reqwest::get(app.url("/health")).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn health_reports_circuit_states_and_an_open_one() {
    let app = spawn_app().await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["store"], "ok");
    assert!(body["details"]["store"]["latencyMs"].is_u64(), "{body}");
    // One circuit per downstream, simulated ones included, named as the service.
    let circuits = body["circuits"].as_object().unwrap();
    let names: Vec<&str> = circuits.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "authService",
            "genesysCloud",
            "metaGraph",
            "stateManager",
            "tenantService"
        ],
        "{body}"
    );
    assert!(circuits.values().all(|s| s == "closed"), "{body}");
    let metrics = scrape(&app).await;
    assert!(
        metrics.iter().any(|s| s.name == "portal_circuit_state"
            && s.labels.get("service").map(String::as_str) == Some("stateManager")
            && s.value == 0.0),
        "a closed circuit is exported before any transition"
    );

    let (app, _sm) = with_failing_state_manager().await;
    app.sign_in("agent@acme.example").await;
    let mut open = false;
    for _ in 0..10 {
        app.client.get(app.url(STATS)).send().await.unwrap();
        let (_, body) = health(&app).await;
        if body["circuits"]["stateManager"] == "open" {
            open = true;
            break;
        }
    }
    assert!(
        open,
        "the State Manager's circuit opened and /health says so"
    );
    let (status, body) = health(&app).await;
    assert_eq!(
        body["circuits"].as_object().unwrap().len(),
        5,
        "one breaker per downstream, not a second one for the State Manager: {body}"
    );
    assert_eq!(
        status, 200,
        "an open circuit alone does not degrade /health"
    );
    let metrics = scrape(&app).await;
    assert_eq!(
        value(
            &metrics,
            "portal_circuit_state",
            &[("service", "stateManager")]
        ),
        2.0,
        "the gauge says open"
    );
    assert!(
        value(
            &metrics,
            "portal_downstream_request_duration_seconds_count",
            &[("service", "stateManager")]
        ) >= 1.0,
        "downstream calls are timed"
    );
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "an open circuit does not make the instance unready"
    );
}

// ---------------------------------------------------------------------------------------
// OTLP export

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_and_flushed_by_the_guard() {
    let collector = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let mut guard = portal_server::telemetry::otlp_exporter(Some(&collector.uri())).unwrap();
    assert!(guard.exporting());
    let logging = portal_server::telemetry::Logging {
        level: "info".into(),
        format: portal_server::telemetry::LogFormat::Json,
        ansi: false,
    };
    let subscriber =
        portal_server::telemetry::get_subscriber(&logging, std::io::sink, guard.provider());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("exported_span");
        let _entered = span.enter();
        tracing::info!("inside");
    });
    // As main does after the server stopped: flush from the async context.
    guard.shutdown();
    let seen = collector.received_requests().await.unwrap();
    assert!(
        seen.iter()
            .any(|r| r.method.as_str() == "POST" && r.url.path() == "/v1/traces"),
        "the buffered span was exported on shutdown: {seen:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Redis pool gauges

#[tokio::test]
async fn on_redis_the_pool_gauges_are_exported() {
    let redis = portal_redis::RedisServer::start().await;
    let url = redis.url();
    let app = spawn_app_with(move |s| Settings {
        redis: portal_server::configuration::RedisConfig::single(url),
        ..s
    })
    .await;
    app.sign_in("agent@acme.example").await;
    let metrics = scrape(&app).await;
    let size = value(&metrics, "portal_redis_pool_size", &[]);
    let available = value(&metrics, "portal_redis_pool_available", &[]);
    assert!(
        metrics.iter().any(|s| s.name == "portal_redis_pool_size"),
        "the pool size is exported"
    );
    assert!(available <= size, "{available} idle of {size}");
    for name in ["portal_redis_pool_available", "portal_redis_pool_waiting"] {
        assert!(metrics.iter().any(|s| s.name == name), "{name} exported");
    }
}

#[tokio::test]
async fn in_memory_no_pool_gauges() {
    let app = spawn_app().await;
    let metrics = scrape(&app).await;
    assert!(
        !metrics
            .iter()
            .any(|s| s.name.starts_with("portal_redis_pool"))
    );
}
