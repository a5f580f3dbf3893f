//! Metrics wiring: the [`PrometheusTelemetry`] recorder every port reports to, and the
//! scrape-time sources it reads (the WebSocket hub's counters, the Redis pool).
//!
//! `/metrics` is served on the main port (no separate admin port): block it for the public at
//! the reverse proxy (deploy/nginx.conf does). `METRICS_ENABLED=false` wires no recorder.

use crate::stores::Stores;
use portal_domain::realtime::Hub;
use portal_telemetry::PrometheusTelemetry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The recorder, with the Redis pool gauges when the stores are on Redis.
pub fn recorder(stores: &Stores) -> PrometheusTelemetry {
    match &stores.redis_health {
        Some(health) => {
            let recorder = PrometheusTelemetry::with_redis_pool();
            let health = health.clone();
            recorder.add_source(move |scrape| {
                let (size, available, waiting) = health.pool_status();
                scrape.redis_pool(size, available, waiting);
            });
            recorder
        }
        None => PrometheusTelemetry::new(),
    }
}

/// Exports the hub's open sockets and dropped slow consumers.
pub fn websocket_source(recorder: &PrometheusTelemetry, hub: &Arc<Hub>) {
    let hub = hub.clone();
    recorder.add_source(move |scrape| {
        let stats = hub.stats();
        scrape.websocket_connections(stats.connections.load(Ordering::Relaxed));
        scrape.websocket_slow_consumers(stats.slow_consumers_dropped.load(Ordering::Relaxed));
    });
}
