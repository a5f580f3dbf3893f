//! The metric set: label sets, the metrics themselves and their registration.

use portal_domain::ports::stores::CacheKind;
use portal_domain::ports::system::{CacheResult, CircuitState};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets (seconds) of the API and downstream histograms: 50 µs … 10 s, in 1-2.5-5
/// steps, so a cached request (~0.1 ms) and a slow downstream (seconds) both land in a bucket
/// of their own size and a p99 can be read at either end.
pub(crate) const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ApiLabels {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub(crate) status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheLabels {
    pub(crate) cache_type: &'static str,
    pub(crate) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DownstreamLabels {
    pub(crate) service: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    pub(crate) service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ScopeLabels {
    pub(crate) scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

pub(crate) type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A gauge exported with type `unknown` (`untyped` in the Prometheus text format): the spec's
/// `portal_active_sessions_total` goes up and down, and Prometheus reserves the `_total`
/// suffix for counters (`promtool check metrics` refuses a gauge named so, and accepts an
/// untyped metric), so the spec's name is kept and the type left open.
#[derive(Debug, Clone, Default)]
pub(crate) struct UntypedGauge(pub(crate) Gauge);

impl EncodeMetric for UntypedGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

pub(crate) struct Metrics {
    pub(crate) active_sessions: UntypedGauge,
    pub(crate) api_latency: HistogramFamily<ApiLabels>,
    pub(crate) onboarding: Family<StatusLabels, Counter>,
    pub(crate) cache: Family<CacheLabels, Counter>,
    pub(crate) downstream: HistogramFamily<DownstreamLabels>,
    pub(crate) circuit: Family<ServiceLabels, Gauge>,
    pub(crate) ws_connections: Gauge,
    pub(crate) ws_slow_consumers: Counter,
    pub(crate) rate_limited: Family<ScopeLabels, Counter>,
    pub(crate) audit_fallback: Family<ReasonLabels, Counter>,
    pub(crate) redis_pool_size: Gauge,
    pub(crate) redis_pool_available: Gauge,
    pub(crate) redis_pool_waiting: Gauge,
    pub(crate) redis_refused: Counter,
}

impl Metrics {
    /// Every metric, registered in a new registry (the Redis pool gauges only with
    /// `redis_pool`).
    pub(crate) fn registered(redis_pool: bool) -> (Self, Registry) {
        let metrics = Metrics {
            active_sessions: UntypedGauge::default(),
            api_latency: Family::new_with_constructor(latency_histogram),
            onboarding: Family::default(),
            cache: Family::default(),
            downstream: Family::new_with_constructor(latency_histogram),
            circuit: Family::default(),
            ws_connections: Gauge::default(),
            ws_slow_consumers: Counter::default(),
            rate_limited: Family::default(),
            audit_fallback: Family::default(),
            redis_pool_size: Gauge::default(),
            redis_pool_available: Gauge::default(),
            redis_pool_waiting: Gauge::default(),
            redis_refused: Counter::default(),
        };
        let mut r = Registry::default();
        // Counters get their `_total` suffix from the encoder. The spec's gauge name ends in
        // `_total` already: see `UntypedGauge`.
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
        r.register(
            "portal_audit_fallback",
            "Audit entries logged (audit=true) instead of stored, by reason",
            metrics.audit_fallback.clone(),
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
        metrics.zero_known_series();
        (metrics, r)
    }

    /// Creates the series whose label values are known in advance at zero, as Prometheus
    /// advises: `rate()` and alerts then see a 0 from the start instead of no data until the
    /// first event (and every family is on `/metrics` before anything happened).
    fn zero_known_series(&self) {
        for cache in [CacheKind::Metrics, CacheKind::Conversations] {
            for result in [CacheResult::Hit, CacheResult::Miss, CacheResult::Stale] {
                let _ = self.cache.get_or_create(&CacheLabels {
                    cache_type: cache.as_str(),
                    result: result.as_str(),
                });
            }
        }
        for status in ["success", "failure"] {
            let _ = self.onboarding.get_or_create(&StatusLabels { status });
        }
        for scope in ["auth", "api", "onboarding"] {
            let _ = self.rate_limited.get_or_create(&ScopeLabels { scope });
        }
    }
}

pub(crate) fn circuit_value(state: CircuitState) -> i64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
    }
}

/// The `method` label: a standard method, or `OTHER`. HTTP lets a client invent methods,
/// and each new label value is a new series kept for the life of the process.
pub(crate) fn method_label(method: &str) -> &'static str {
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
