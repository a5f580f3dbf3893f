//! Issue 12 item 6: during a Redis outage the service logs one line per change of state, not
//! one per refused request, and counts the refusals (`portal_redis_refused_total`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

#[path = "api/helpers.rs"]
mod helpers;

use helpers::*;
use portal_redis::RedisServer;
use portal_server::Settings;
use portal_server::configuration::RedisConfig;
use reqwest::StatusCode;
use std::time::{Duration, Instant};

/// Lines at WARN or ERROR the binary logged after its first `from` bytes of log.
fn loud_lines(from: usize) -> Vec<String> {
    let all = captured_logs();
    all.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .map(str::to_owned)
        .collect()
}

fn refused_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("portal_redis_refused_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn an_outage_logs_each_change_of_state_once_and_counts_refused_requests() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let app = spawn_app_with(move |s| Settings {
        redis: RedisConfig {
            connect_timeout_ms: 300,
            command_timeout_ms: 300,
            ..RedisConfig::single(url)
        },
        ..s
    })
    .await;
    let wait_for = |want: StatusCode| {
        let app = &app;
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            while app
                .client
                .get(app.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status()
                != want
            {
                assert!(Instant::now() < deadline, "/readyz never {want}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(StatusCode::OK).await;
    app.sign_in("agent@acme.example").await;

    let before = captured_logs().len();
    redis.stop().await;
    wait_for(StatusCode::SERVICE_UNAVAILABLE).await;
    const REQUESTS: u64 = 60;
    for _ in 0..REQUESTS {
        let res = app
            .client
            .get(app.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        refused_total(&metrics) >= REQUESTS,
        "every refused request is counted:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("redis"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let loud = loud_lines(before);
    // "redis is unreachable", "event bus subscription lost": a few lines, not one per request.
    assert!(
        loud.len() <= 4,
        "{} WARN/ERROR lines for an outage with {REQUESTS} refused requests:\n{}",
        loud.len(),
        loud.join("\n")
    );
    assert!(
        loud.iter().any(|l| l.contains("redis is unreachable")),
        "{loud:?}"
    );

    redis.restart().await;
    wait_for(StatusCode::OK).await;
    assert!(
        loud_lines(before).len() <= 4,
        "recovering adds no warning: {:?}",
        loud_lines(before)
    );
}
