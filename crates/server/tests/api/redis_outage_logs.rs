//! Issue 12 item 6: during a Redis outage the service logs one line per change of state, not
//! one per refused request, and counts the refusals (`portal_redis_refused_total`).

use crate::helpers::*;
use crate::redis_support::Deployment;
use reqwest::StatusCode;
use std::time::Duration;

/// How long the service may take to notice Redis going or coming back (spec: 2 s), plus slack
/// for a loaded test machine.
const NOTICE: Duration = Duration::from_secs(5);

/// The lines at WARN or ERROR among `lines`.
fn loud(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
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
    let mut redis = Deployment::single().await;
    let app = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;
    app.wait_for("/readyz", StatusCode::OK, NOTICE).await;
    app.sign_in("agent@acme.example").await;

    // Other tests log at the same time: count only this instance's lines.
    let logs = OwnLogs::start();
    redis.node().stop().await;
    app.wait_for("/readyz", StatusCode::SERVICE_UNAVAILABLE, NOTICE)
        .await;
    const REQUESTS: u64 = 60;
    for _ in 0..REQUESTS {
        let res = app
            .client
            .get(app.url("/api/v1/auth/me"))
            .header("X-Request-ID", &logs.request_id)
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
    let lines = logs.lines();
    assert!(
        lines
            .iter()
            .filter(|l| l.contains(&logs.request_id))
            .count()
            >= REQUESTS as usize,
        "each refused request logged its summary (the instance's lines are read)"
    );
    let outage = loud(lines);
    // "redis is unreachable", "event bus subscription lost": a few lines, not one per request.
    assert!(
        outage.len() <= 4,
        "{} WARN/ERROR lines for an outage with {REQUESTS} refused requests:\n{}",
        outage.len(),
        outage.join("\n")
    );
    assert!(
        outage.iter().any(|l| l.contains("redis is unreachable")),
        "{outage:?}"
    );

    redis.restart().await;
    app.wait_for("/readyz", StatusCode::OK, NOTICE).await;
    let after = loud(logs.lines());
    assert!(after.len() <= 4, "recovering adds no warning: {after:?}");
}
