//! What `/metrics` renders for what the recorder was told.

use super::*;

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn invented_methods_share_one_label_value() {
    let t = PrometheusTelemetry::new();
    for m in ["FOO", "BAR1", "X-ANYTHING"] {
        t.http_request(m, "unmatched", 404, Duration::from_millis(1));
    }
    let text = t.render().unwrap();
    assert!(
        line(
            &text,
            "portal_api_latency_seconds_count{method=\"OTHER\",path=\"unmatched\",status=\"404\"} 3"
        )
        .is_some(),
        "{text}"
    );
    assert!(!text.contains("FOO"), "{text}");
}

#[test]
fn renders_the_spec_metrics_with_route_templates() {
    let t = PrometheusTelemetry::new();
    t.http_request(
        "GET",
        "/api/v1/conversations/{conversationId}",
        200,
        Duration::from_millis(3),
    );
    t.cache_lookup(CacheKind::Metrics, CacheResult::Hit);
    t.onboarding_completed("success");
    t.rate_limited("auth");
    t.audit_fallback("store_unavailable");
    t.circuit_state("state_manager", CircuitState::Open);
    t.session_started();
    let text = t.render().unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        line(
            &text,
            "portal_api_latency_seconds_count{method=\"GET\",path=\"/api/v1/conversations/{conversationId}\",status=\"200\"} 1"
        )
        .is_some(),
        "{text}"
    );
    assert!(line(&text, "portal_cache_hits_total{").is_some(), "{text}");
    assert!(
        line(
            &text,
            "portal_onboarding_completions_total{status=\"success\"} 1"
        )
        .is_some()
    );
    assert!(line(&text, "portal_rate_limited_total{scope=\"auth\"} 1").is_some());
    assert!(
        line(
            &text,
            "portal_audit_fallback_total{reason=\"store_unavailable\"} 1"
        )
        .is_some()
    );
    assert!(line(&text, "portal_circuit_state{service=\"state_manager\"} 2").is_some());
    assert!(
        line(&text, "portal_active_sessions_total 1").is_some(),
        "{text}"
    );
    assert!(!text.contains("portal_redis_pool"), "no pool, no gauges");
}

#[test]
fn sources_fill_gauges_at_scrape_time() {
    let t = PrometheusTelemetry::with_redis_pool();
    t.add_source(|s| {
        s.websocket_connections(3);
        s.websocket_slow_consumers(2);
        s.redis_pool(4, 1, 0);
        s.redis_refused(7);
    });
    let text = t.encode();
    assert!(
        line(&text, "portal_websocket_connections 3").is_some(),
        "{text}"
    );
    assert!(line(&text, "portal_websocket_slow_consumers_total 2").is_some());
    assert!(line(&text, "portal_redis_pool_size 4").is_some());
    assert!(
        line(&text, "portal_redis_refused_total 7").is_some(),
        "{text}"
    );
    // A monotonic source does not double-count on the next scrape.
    let text = t.encode();
    assert!(line(&text, "portal_websocket_slow_consumers_total 2").is_some());
}

#[test]
fn active_sessions_never_go_negative() {
    let t = PrometheusTelemetry::new();
    t.session_ended();
    t.session_started();
    let text = t.encode();
    assert!(
        line(&text, "portal_active_sessions_total 1").is_some(),
        "{text}"
    );
}
