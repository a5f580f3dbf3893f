//! [`RedisHealth`]: a background task PINGs Redis every interval (500 ms by default) **through
//! the connection the requests use** (every master of a Cluster), so the service knows within
//! about a second when Redis goes away or comes back (degraded mode, `/readyz`), without waiting
//! for a request to fail; and a connection broken by a restart or failover is replaced by the
//! ping, before `/readyz` turns green, not by the next request.
//!
//! Each change of state is logged once (`redis is unreachable` / `redis is reachable`); the
//! operations refused meanwhile are counted, not logged ([`RedisHealth::refused_total`]).

use crate::RedisStores;
use async_trait::async_trait;
use portal_domain::ports::system::{HealthProbe, HealthStatus};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The default ping interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);
/// A ping slower than this counts as a failure.
const MAX_PING_TIMEOUT: Duration = Duration::from_secs(1);

struct State {
    healthy: AtomicBool,
    /// Whether an outage was logged yet (the first one is logged even with no success before).
    seen_down: AtomicBool,
    /// Latency of the last successful ping, in microseconds.
    latency_us: AtomicU64,
}

/// Aborts the ping task when the last [`RedisHealth`] clone goes.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Redis liveness, refreshed in the background. Cheap to clone.
#[derive(Clone)]
pub struct RedisHealth {
    /// Held weakly: the health monitor does not keep the stores alive.
    stores: std::sync::Weak<crate::Inner>,
    state: Arc<State>,
    timeout: Duration,
    _task: Arc<TaskGuard>,
}

impl fmt::Debug for RedisHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHealth")
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

/// Why Redis is unhealthy (the topology mismatch's own message, or a short reason).
async fn ping(
    stores: &std::sync::Weak<crate::Inner>,
    timeout: Duration,
) -> Result<Duration, String> {
    let Some(stores) = RedisStores::from_weak(stores) else {
        return Err("stopped".into());
    };
    let started = Instant::now();
    match stores.ping(timeout).await {
        Ok(()) => Ok(started.elapsed()),
        Err(reason) => Err(stores
            .mismatch()
            .map_or_else(|| reason.to_owned(), |m| format!("wrong topology: {m}"))),
    }
}

impl RedisHealth {
    /// Starts pinging. Unhealthy until the first ping answers.
    pub(crate) fn start(
        stores: &RedisStores,
        interval: Duration,
        command_timeout: Duration,
    ) -> Self {
        let stores = stores.weak();
        let timeout = command_timeout.min(MAX_PING_TIMEOUT);
        let state = Arc::new(State {
            healthy: AtomicBool::new(false),
            seen_down: AtomicBool::new(false),
            latency_us: AtomicU64::new(0),
        });
        let task = tokio::spawn({
            let stores = stores.clone();
            let state = state.clone();
            async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let result = ping(&stores, timeout).await;
                    record(&state, &result);
                }
            }
        });
        Self {
            stores,
            state,
            timeout,
            _task: Arc::new(TaskGuard(task)),
        }
    }

    /// Whether the last ping answered.
    pub fn is_healthy(&self) -> bool {
        self.state.healthy.load(Ordering::Relaxed)
    }

    /// Latency of the last successful ping.
    pub fn last_latency(&self) -> Duration {
        Duration::from_micros(self.state.latency_us.load(Ordering::Relaxed))
    }
    /// The connection pool's usage now: `(size, available, waiting)` (`/metrics`).
    pub fn pool_status(&self) -> (usize, usize, usize) {
        RedisStores::from_weak(&self.stores).map_or((0, 0, 0), |s| s.pool_status())
    }

    /// Store operations refused so far because Redis was unreachable, timed out or in a
    /// failover (`portal_redis_refused_total`): during an outage they are counted, not logged.
    pub fn refused_total(&self) -> u64 {
        RedisStores::from_weak(&self.stores).map_or(0, |s| s.refused_total())
    }
}

fn record(state: &State, result: &Result<Duration, String>) {
    let was = state.healthy.load(Ordering::Relaxed);
    match result {
        Ok(latency) => {
            state.latency_us.store(
                u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            state.healthy.store(true, Ordering::Relaxed);
            if !was {
                tracing::info!("redis is reachable");
            }
        }
        Err(reason) => {
            state.healthy.store(false, Ordering::Relaxed);
            // Also the first failure after start-up, so a Redis that never answered is logged.
            if was || !state.seen_down.swap(true, Ordering::Relaxed) {
                tracing::warn!(reason = %reason, "redis is unreachable");
            }
        }
    }
}

#[async_trait]
impl HealthProbe for RedisHealth {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn required_for_readiness(&self) -> bool {
        true
    }

    async fn check(&self) -> HealthStatus {
        let started = Instant::now();
        let result = ping(&self.stores, self.timeout).await;
        record(&self.state, &result);
        match result {
            Ok(latency) => HealthStatus {
                ok: true,
                latency,
                detail: None,
            },
            Err(reason) => HealthStatus {
                ok: false,
                latency: started.elapsed(),
                detail: Some(reason),
            },
        }
    }
}
