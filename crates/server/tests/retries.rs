//! One retry layer per downstream call: with the State Manager over HTTP, its adapter retries
//! idempotent reads (3 attempts, full jitter) and the dashboard use case does not retry on top
//! (which would cost 3 × 3 calls per read during an outage).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

#[path = "api/helpers.rs"]
mod helpers;

use helpers::*;
use portal_server::Settings;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_failing_state_manager_read_costs_the_adapters_attempts_only() {
    let sm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("metrics"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&sm)
        .await;
    let uri = sm.uri();
    let app = spawn_app_with(move |s| Settings {
        state_manager_url: Some(uri),
        // Keep the circuit closed: this counts retries, not the breaker.
        state_manager_breaker_min_calls: 100,
        ..s
    })
    .await;
    app.sign_in("agent@acme.example").await;

    let res = app
        .client
        .get(app.url("/api/v1/dashboard/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503, "no figures and no stale copy");

    let calls = sm
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().contains("metrics"))
        .count();
    assert_eq!(
        calls, 3,
        "the adapter's 3 attempts, not 3 per use-case attempt"
    );
}
