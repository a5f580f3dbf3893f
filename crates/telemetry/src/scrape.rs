//! Scrape-time sources: gauges that mirror someone else's state, set while `/metrics` is
//! rendered.

use crate::metrics::{Metrics, ServiceLabels, circuit_value};
use portal_domain::ports::system::CircuitState;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::fmt;

/// A scrape-time reader of someone else's state (the WebSocket hub, the Redis pool).
pub type Source = Box<dyn Fn(&Scrape<'_>) + Send + Sync>;

/// What a [`Source`] may set while `/metrics` is rendered.
pub struct Scrape<'a> {
    pub(crate) metrics: &'a Metrics,
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
