//! Metrics wiring: the [`PrometheusTelemetry`] recorder every port reports to, and the
//! scrape-time sources it reads (the WebSocket hub's counters, the Redis pool, the circuit
//! breakers' states).
//!
//! `/metrics` is served on the main port (no separate admin port): block it for the public at
//! the reverse proxy (deploy/nginx.conf does). `METRICS_ENABLED=false` wires no recorder.

use crate::stores::Stores;
use portal_domain::ports::system::CircuitState;
use portal_domain::realtime::Hub;
use portal_domain::resilience::CircuitBreaker;
use portal_telemetry::PrometheusTelemetry;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The recorder, with the Redis pool gauges when the stores are on Redis.
pub(crate) fn recorder(stores: &Stores) -> PrometheusTelemetry {
    match &stores.redis_health {
        Some(health) => {
            let recorder = PrometheusTelemetry::with_redis_pool();
            let health = health.clone();
            recorder.add_source(move |scrape| {
                let (size, available, waiting) = health.pool_status();
                scrape.redis_pool(size, available, waiting);
                scrape.redis_refused(health.refused_total());
            });
            recorder
        }
        None => PrometheusTelemetry::new(),
    }
}

/// Exports the hub's open sockets and dropped slow consumers.
pub(crate) fn websocket_source(recorder: &PrometheusTelemetry, hub: &Arc<Hub>) {
    let hub = hub.clone();
    recorder.add_source(move |scrape| {
        let stats = hub.stats();
        scrape.websocket_connections(stats.connections.load(Ordering::Relaxed));
        scrape.websocket_slow_consumers(stats.slow_consumers_dropped.load(Ordering::Relaxed));
    });
}

/// Exports every breaker's current state at scrape time (`portal_circuit_state`, the worst
/// when several share a name), so a closed circuit shows before any transition and an
/// expired open period reads as half-open.
pub(crate) fn circuit_source(recorder: &PrometheusTelemetry, breakers: Vec<Arc<CircuitBreaker>>) {
    recorder.add_source(move |scrape| {
        let mut worst: BTreeMap<&'static str, CircuitState> = BTreeMap::new();
        for b in &breakers {
            let s = b.state();
            let w = worst.entry(b.name()).or_insert(s);
            if rank(s) > rank(*w) {
                *w = s;
            }
        }
        for (name, state) in worst {
            scrape.circuit(name, state);
        }
    });
}

fn rank(s: CircuitState) -> u8 {
    match s {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
    }
}
