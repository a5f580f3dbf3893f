//! The Prometheus recorder of the domain's [`Telemetry`] port: [`PrometheusTelemetry`] owns a
//! prometheus-client [`Registry`] and renders it in the OpenMetrics text format for `/metrics`.
//!
//! # Metrics
//! The spec's four (§15.2):
//! - `portal_active_sessions_total` (gauge): sessions created minus sessions ended by sign-ins
//!   and sign-outs **seen by this instance** (the session store has no cheap count). Expiries
//!   and other instances' sign-ins are not included: sum over instances for a rough total.
//! - `portal_api_latency_seconds{method,path,status}` (histogram): `path` is the route
//!   template (`/api/v1/conversations/{conversationId}`) or `unmatched`, never the raw path.
//! - `portal_onboarding_completions_total{status}`, `portal_cache_hits_total{cache_type,result}`.
//!
//! Plus: `portal_downstream_request_duration_seconds{service,operation,outcome}` (histogram),
//! `portal_circuit_state{service}` (0 closed, 1 half-open, 2 open: the last transition
//! reported under that name, or the state a [`Source`] reads at scrape time), `portal_websocket_connections`,
//! `portal_websocket_slow_consumers_total`, `portal_rate_limited_total{scope}`, and
//! `portal_redis_pool_{size,available,waiting}` and `portal_redis_refused_total` (store
//! operations refused because Redis was unreachable: an outage is counted, not logged per
//! request) when the server registers a Redis source.
//!
//! Gauges that mirror someone else's state (WebSocket connections, Redis pool, slow consumers)
//! are filled at scrape time by the [`Source`]s the server adds with
//! [`PrometheusTelemetry::add_source`]; nothing polls in the background.
//!
//! # Layout
//! One module: the recorder, its label sets and the scrape-time [`Scrape`] setters.
//!
//! # Dependencies
//! `portal-domain` (the port) and prometheus-client. No I/O.

use portal_domain::ports::stores::CacheKind;
use portal_domain::ports::system::{CacheResult, CircuitState, Telemetry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// The content type of [`PrometheusTelemetry::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Request latency buckets (seconds): 5 ms … 10 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    method: String,
    path: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache_type: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DownstreamLabels {
    service: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A scrape-time reader of someone else's state (the WebSocket hub, the Redis pool).
pub type Source = Box<dyn Fn(&Scrape<'_>) + Send + Sync>;

/// What a [`Source`] may set while `/metrics` is rendered.
pub struct Scrape<'a> {
    metrics: &'a Metrics,
}

impl fmt::Debug for Scrape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Scrape<'_> {
    /// Open WebSocket connections of this instance.
    pub fn websocket_connections(&self, n: u64) {
        self.metrics
            .ws_connections
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Total slow consumers dropped since start (a monotonic count; the counter follows it).
    pub fn websocket_slow_consumers(&self, total: u64) {
        follow(&self.metrics.ws_slow_consumers, total);
    }

    /// Total store operations refused because Redis was unreachable (monotonic).
    pub fn redis_refused(&self, total: u64) {
        follow(&self.metrics.redis_refused, total);
    }

    /// A circuit breaker's current state (`portal_circuit_state{service}`).
    pub fn circuit(&self, service: &'static str, state: CircuitState) {
        self.metrics
            .circuit
            .get_or_create(&ServiceLabels { service })
            .set(circuit_value(state));
    }

    /// The Redis pool: connections open, idle, and callers waiting for one.
    pub fn redis_pool(&self, size: usize, available: usize, waiting: usize) {
        let set = |g: &Gauge, v: usize| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.metrics.redis_pool_size, size);
        set(&self.metrics.redis_pool_available, available);
        set(&self.metrics.redis_pool_waiting, waiting);
    }
}

/// Moves a counter up to a monotonic total read from elsewhere.
fn follow(c: &Counter, total: u64) {
    let seen = c.get();
    if total > seen {
        c.inc_by(total - seen);
    }
}

struct Metrics {
    active_sessions: Gauge,
    api_latency: HistogramFamily<ApiLabels>,
    onboarding: Family<StatusLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
    downstream: HistogramFamily<DownstreamLabels>,
    circuit: Family<ServiceLabels, Gauge>,
    ws_connections: Gauge,
    ws_slow_consumers: Counter,
    rate_limited: Family<ScopeLabels, Counter>,
    redis_pool_size: Gauge,
    redis_pool_available: Gauge,
    redis_pool_waiting: Gauge,
    redis_refused: Counter,
}

/// The Prometheus recorder (see the crate docs). Share it as `Arc<dyn Telemetry>`.
pub struct PrometheusTelemetry {
    registry: Registry,
    metrics: Metrics,
    /// Scrape-time readers; behind a lock because the server adds them after building the
    /// recorder (the hub and the pool exist later than the use cases that report here).
    sources: Mutex<Vec<Source>>,
}

impl fmt::Debug for PrometheusTelemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusTelemetry")
            .finish_non_exhaustive()
    }
}

impl Default for PrometheusTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusTelemetry {
    /// A recorder with every metric registered (and the Redis pool gauges only once a source
    /// sets them: see [`PrometheusTelemetry::with_redis_pool`]).
    pub fn new() -> Self {
        Self::build(false)
    }

    /// A recorder that also exports the Redis pool gauges.
    pub fn with_redis_pool() -> Self {
        Self::build(true)
    }

    fn build(redis_pool: bool) -> Self {
        let metrics = Metrics {
            active_sessions: Gauge::default(),
            api_latency: Family::new_with_constructor(latency_histogram),
            onboarding: Family::default(),
            cache: Family::default(),
            downstream: Family::new_with_constructor(latency_histogram),
            circuit: Family::default(),
            ws_connections: Gauge::default(),
            ws_slow_consumers: Counter::default(),
            rate_limited: Family::default(),
            redis_pool_size: Gauge::default(),
            redis_pool_available: Gauge::default(),
            redis_pool_waiting: Gauge::default(),
            redis_refused: Counter::default(),
        };
        let mut r = Registry::default();
        // Counters get their `_total` suffix from the encoder.
        r.register(
            "portal_active_sessions_total",
            "Sessions created minus ended by sign-ins and sign-outs on this instance",
            metrics.active_sessions.clone(),
        );
        r.register(
            "portal_api_latency_seconds",
            "API latency by method, route template and status",
            metrics.api_latency.clone(),
        );
        r.register(
            "portal_onboarding_completions",
            "Completed onboardings by status",
            metrics.onboarding.clone(),
        );
        r.register(
            "portal_cache_hits",
            "Cache lookups by cache type and result (hit, miss, stale)",
            metrics.cache.clone(),
        );
        r.register(
            "portal_downstream_request_duration_seconds",
            "Downstream call attempts by service, operation and outcome",
            metrics.downstream.clone(),
        );
        r.register(
            "portal_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            metrics.circuit.clone(),
        );
        r.register(
            "portal_websocket_connections",
            "Open WebSocket connections on this instance",
            metrics.ws_connections.clone(),
        );
        r.register(
            "portal_websocket_slow_consumers",
            "WebSocket clients disconnected for not keeping up",
            metrics.ws_slow_consumers.clone(),
        );
        r.register(
            "portal_rate_limited",
            "Requests refused by a rate limit, by scope",
            metrics.rate_limited.clone(),
        );
        if redis_pool {
            r.register(
                "portal_redis_pool_size",
                "Redis connections open",
                metrics.redis_pool_size.clone(),
            );
            r.register(
                "portal_redis_pool_available",
                "Redis connections idle in the pool",
                metrics.redis_pool_available.clone(),
            );
            r.register(
                "portal_redis_pool_waiting",
                "Callers waiting for a Redis connection",
                metrics.redis_pool_waiting.clone(),
            );
            r.register(
                "portal_redis_refused",
                "Store operations refused because Redis was unreachable, timed out or failing over",
                metrics.redis_refused.clone(),
            );
        }
        Self {
            registry: r,
            metrics,
            sources: Mutex::new(Vec::new()),
        }
    }

    /// Adds a scrape-time reader.
    pub fn add_source(&self, source: impl Fn(&Scrape<'_>) + Send + Sync + 'static) {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(source));
    }

    /// Runs the sources, then encodes the registry (OpenMetrics text, ends with `# EOF`).
    pub fn encode(&self) -> String {
        {
            let scrape = Scrape {
                metrics: &self.metrics,
            };
            let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            for s in sources.iter() {
                s(&scrape);
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing to a String cannot fail; keep whatever was written.
            out.push_str("# EOF\n");
        }
        out
    }
}

fn circuit_value(state: CircuitState) -> i64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
    }
}

/// The `method` label: a standard method, or `OTHER`. HTTP lets a client invent methods,
/// and each new label value is a new series kept for the life of the process.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

impl Telemetry for PrometheusTelemetry {
    fn cache_lookup(&self, cache: CacheKind, result: CacheResult) {
        self.metrics
            .cache
            .get_or_create(&CacheLabels {
                cache_type: cache.as_str(),
                result: result.as_str(),
            })
            .inc();
    }

    fn onboarding_completed(&self, status: &'static str) {
        self.metrics
            .onboarding
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    fn downstream_call(
        &self,
        service: &'static str,
        operation: &'static str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        self.metrics
            .downstream
            .get_or_create(&DownstreamLabels {
                service,
                operation,
                outcome,
            })
            .observe(elapsed.as_secs_f64());
    }

    fn circuit_state(&self, service: &'static str, state: CircuitState) {
        self.metrics
            .circuit
            .get_or_create(&ServiceLabels { service })
            .set(circuit_value(state));
    }

    fn rate_limited(&self, scope: &'static str) {
        self.metrics
            .rate_limited
            .get_or_create(&ScopeLabels { scope })
            .inc();
    }

    fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.metrics
            .api_latency
            .get_or_create(&ApiLabels {
                method: method_label(method).to_owned(),
                path: route.to_owned(),
                status,
            })
            .observe(elapsed.as_secs_f64());
    }

    fn session_started(&self) {
        self.metrics.active_sessions.inc();
    }

    fn session_ended(&self) {
        // Never below zero: this instance may end sessions another one created.
        let g = &self.metrics.active_sessions;
        if g.get() > 0 {
            g.dec();
        }
    }

    fn render(&self) -> Option<String> {
        Some(self.encode())
    }
}

#[cfg(test)]
mod tests {
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
}
