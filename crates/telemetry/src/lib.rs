//! The Prometheus recorder of the domain's [`Telemetry`] port: [`PrometheusTelemetry`] owns a
//! prometheus-client [`Registry`] and renders it for `/metrics` in the OpenMetrics text format
//! or the Prometheus text format 0.0.4 ([`MetricsFormat`]; both pass `promtool check
//! metrics`/a Prometheus scrape).
//!
//! # Metrics
//! The spec's four (§15.2):
//! - `portal_active_sessions_total` (typed `unknown`/`untyped`: a gauge by meaning, but the
//!   spec's name ends in `_total`, which Prometheus keeps for counters): sessions created minus
//!   sessions ended by sign-ins and sign-outs **seen by this instance** (the session store has
//!   no cheap count). Expiries and other instances' sign-ins are not included: sum over
//!   instances for a rough total.
//! - `portal_api_latency_seconds{method,path,status}` (histogram): `path` is the route
//!   template (`/api/v1/conversations/{conversationId}`) or `unmatched`, never the raw path.
//! - `portal_onboarding_completions_total{status}`, `portal_cache_hits_total{cache_type,result}`.
//!
//! Plus: `portal_downstream_request_duration_seconds{service,operation,outcome}` (histogram),
//! `portal_circuit_state{service}` (0 closed, 1 half-open, 2 open: the last transition
//! reported under that name, or the state a [`Source`] reads at scrape time), `portal_websocket_connections`,
//! `portal_websocket_slow_consumers_total`, `portal_rate_limited_total{scope}`,
//! `portal_audit_fallback_total{reason}` (audit entries that went to the log, `audit=true`,
//! because the store was down or the queue full), and
//! `portal_redis_pool_{size,available,waiting}` and `portal_redis_refused_total` (store
//! operations refused because Redis was unreachable: an outage is counted, not logged per
//! request) when the server registers a Redis source; and the standard `process_*` metrics
//! (CPU seconds, resident and virtual memory, open and maximum file descriptors, start time)
//! read from `/proc/self` at scrape time.
//!
//! Latency histograms have buckets from 50 µs to 10 s.
//!
//! Gauges that mirror someone else's state (WebSocket connections, Redis pool, slow consumers)
//! are filled at scrape time by the [`Source`]s the server adds with
//! [`PrometheusTelemetry::add_source`]; nothing polls in the background.
//!
//! # Layout
//! - `lib.rs`: [`PrometheusTelemetry`], the recorder of the port.
//! - `metrics`: the label sets, the metrics and their registration.
//! - `scrape`: [`Source`] and the [`Scrape`] setters a source may call.
//! - `process`: the `process_*` collector.
//! - `exposition`: the Prometheus text format, converted from prometheus-client's OpenMetrics.
//!
//! # Dependencies
//! `portal-domain` (the port) and prometheus-client. No I/O but reading `/proc/self` while a
//! scrape is rendered.

mod exposition;
mod metrics;
mod process;
mod scrape;
#[cfg(test)]
mod tests;

pub use scrape::{Scrape, Source};

use metrics::{
    ApiLabels, CacheLabels, DownstreamLabels, Metrics, ReasonLabels, ScopeLabels, ServiceLabels,
    StatusLabels, circuit_value, method_label,
};
use portal_domain::ports::stores::CacheKind;
use portal_domain::ports::system::{CacheResult, CircuitState, MetricsFormat, Telemetry};
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

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
        let (metrics, mut registry) = Metrics::registered(redis_pool);
        registry.register_collector(Box::new(process::ProcessCollector::default()));
        Self {
            registry,
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

    /// Runs the sources, then encodes the registry in `format`.
    pub fn encode(&self, format: MetricsFormat) -> String {
        let openmetrics = self.encode_openmetrics();
        match format {
            MetricsFormat::OpenMetrics => openmetrics,
            MetricsFormat::PrometheusText => exposition::to_prometheus_text(&openmetrics),
        }
    }

    /// Runs the sources, then encodes the registry (OpenMetrics text, ends with `# EOF`).
    fn encode_openmetrics(&self) -> String {
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

    fn audit_fallback(&self, reason: &'static str) {
        self.metrics
            .audit_fallback
            .get_or_create(&ReasonLabels { reason })
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
        self.metrics.active_sessions.0.inc();
    }

    fn session_ended(&self) {
        // Never below zero: this instance may end sessions another one created.
        let g = &self.metrics.active_sessions.0;
        if g.get() > 0 {
            g.dec();
        }
    }

    fn render(&self, format: MetricsFormat) -> Option<String> {
        Some(self.encode(format))
    }
}
