//! [`RedisHealth`]: a background task PINGs Redis every interval (500 ms by default), so the
//! service knows within about a second when Redis goes away or comes back (degraded mode,
//! `/readyz`), without waiting for a request to fail.

use async_trait::async_trait;
use deadpool_redis::Pool;
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
    pool: Pool,
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

async fn ping(pool: &Pool, timeout: Duration) -> Result<Duration, &'static str> {
    let started = Instant::now();
    let attempt = async {
        let mut conn = pool.get().await.map_err(|_| "no connection")?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|_| "ping failed")
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(reason)) => Err(reason),
        Err(_) => Err("timeout"),
    }
}

impl RedisHealth {
    /// Starts pinging. Unhealthy until the first ping answers.
    pub(crate) fn start(pool: Pool, interval: Duration, command_timeout: Duration) -> Self {
        let timeout = command_timeout.min(MAX_PING_TIMEOUT);
        let state = Arc::new(State {
            healthy: AtomicBool::new(false),
            latency_us: AtomicU64::new(0),
        });
        let task = tokio::spawn({
            let pool = pool.clone();
            let state = state.clone();
            async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let result = ping(&pool, timeout).await;
                    record(&state, &result);
                }
            }
        });
        Self {
            pool,
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
        let s = self.pool.status();
        (s.size, s.available, s.waiting)
    }
}

fn record(state: &State, result: &Result<Duration, &'static str>) {
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
            if was {
                tracing::warn!(reason, "redis is unreachable");
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
        let result = ping(&self.pool, self.timeout).await;
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
                detail: Some(reason.to_owned()),
            },
        }
    }
}
