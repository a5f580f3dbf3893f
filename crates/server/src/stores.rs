//! Which store adapters back the ports: the in-memory ones (embedded default) or Redis (one
//! node, a Cluster or a Sentinel-managed master: [`crate::configuration::RedisConfig`]).
//!
//! [`Stores`] holds the domain's `StorePorts` (memory: `portal_memory::stores()`, Redis: every
//! port from one `RedisStores`), so the wiring in [`crate::startup`] reads the same either way.
//!
//! With Redis:
//! - every port comes from one `portal_redis::RedisStores` (one shared connection per worker
//!   thread, plus the Pub/Sub one);
//! - start-up connects once and refuses a Redis that is not the configured topology (a Cluster
//!   node or a Sentinel given as `REDIS_URL`, ...); an unreachable Redis is not refused (the
//!   service starts degraded);
//! - the `redis` health probe is registered (`/health` shows it, `/readyz` depends on it);
//! - the rate limiter is a [`FallbackRateLimiter`]: Redis while it is healthy, an in-process
//!   limiter while it is not (degraded mode, spec 003), so sign-in stays rate-limited
//!   per instance during an outage;
//! - session, onboarding and cache operations are not masked: a Redis failure becomes
//!   `StoreError::Unavailable`, which the API maps to 503 `SERVICE_UNAVAILABLE`, so
//!   session-protected routes fail closed. Each command runs under the connect + command
//!   deadline (`REDIS_CONNECT_TIMEOUT_MS` + `REDIS_COMMAND_TIMEOUT_MS`), so no request hangs.
//!
//! Outbound queue: `outbound` is the Redis Stream `outbound.message`. While the downstreams
//! are simulated (sandbox), the wiring must use `portal_sandbox::Platform::delivery(event_bus)`
//! instead, so widget sends are still "delivered" and their status events are published on
//! the (Redis) event bus, reaching every instance. `outbound` stays available for real mode.

use crate::configuration::Settings;
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::StorePorts;
use portal_domain::ports::stores::{RateDecision, RateLimiter, RatePolicy};
use portal_domain::ports::system::{HealthProbe, HealthStatus};
use portal_redis::{RedisHealth, RedisSettings, RedisStores};
use std::sync::Arc;
use std::time::Duration;

/// How often the Redis health monitor pings: an outage (or recovery) is noticed within about
/// twice this, well inside the 2 s the spec allows.
pub const REDIS_PING_INTERVAL: Duration = Duration::from_millis(500);

/// One adapter per store port, plus the probe saying whether they answer.
#[derive(Clone)]
pub struct Stores {
    /// The ports. With Redis, the rate limiter falls back to an in-process limiter while
    /// Redis is down; `outbound` is the real queue (sandbox downstreams use
    /// `Platform::delivery(event_bus)` instead, see the module docs).
    pub ports: StorePorts,
    /// The store's health probe (`store` for memory, `redis` for Redis).
    pub probe: Arc<dyn HealthProbe>,
    /// Redis liveness, when Redis is used.
    pub redis_health: Option<RedisHealth>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("redis_health", &self.redis_health)
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// The in-memory stores (embedded default).
    pub fn memory() -> Self {
        Self {
            ports: portal_memory::stores(),
            probe: Arc::new(MemoryProbe),
            redis_health: None,
        }
    }

    /// Every port on Redis. Needs a Tokio runtime (the health monitor is a task). Tries to
    /// connect once (within the connect deadline) to check the topology, and refuses a
    /// mismatch; otherwise does not wait for Redis: until the first ping answers the service is
    /// "degraded" (fails closed, limits in process).
    pub async fn redis(settings: RedisSettings) -> Result<Self, StoreError> {
        let redis = RedisStores::connect(settings)?;
        redis
            .check_topology()
            .await
            .map_err(StoreError::Unavailable)?;
        let health = redis.health(REDIS_PING_INTERVAL);
        let shared = Arc::new(redis);
        let mut ports = StorePorts::all_from(shared.clone());
        ports.rate_limiter = Arc::new(FallbackRateLimiter::new(shared, health.clone()));
        Ok(Self {
            ports,
            probe: Arc::new(health.clone()),
            redis_health: Some(health),
        })
    }

    /// Redis when the settings name it, memory otherwise.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match settings.redis.settings() {
            Some(redis) => {
                let topology = redis.topology.name();
                Self::redis(redis)
                    .await
                    .map_err(|e| anyhow::anyhow!("Redis ({topology}): {e}"))
            }
            None => Ok(Self::memory()),
        }
    }

    /// Whether the ports are on Redis.
    pub fn is_redis(&self) -> bool {
        self.redis_health.is_some()
    }
}

/// The in-memory stores always answer.
struct MemoryProbe;

#[async_trait]
impl HealthProbe for MemoryProbe {
    fn name(&self) -> &'static str {
        "store"
    }
    fn required_for_readiness(&self) -> bool {
        true
    }
    async fn check(&self) -> HealthStatus {
        HealthStatus {
            ok: true,
            latency: Duration::ZERO,
            detail: None,
        }
    }
}

/// Degraded-mode rate limiting: the shared limiter while its store is healthy, an
/// in-process limiter while it is not or when a call fails.
///
/// The fallback counts per instance only (each instance allows up to the limit during an
/// outage) and starts empty; that is the spec's trade-off: keep limiting without Redis, and
/// never refuse everything because Redis is down.
pub struct FallbackRateLimiter {
    primary: Arc<dyn RateLimiter>,
    fallback: portal_memory::MemoryRateLimiter,
    /// Whether `primary` is worth asking (skips a doomed round trip during an outage).
    healthy: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl FallbackRateLimiter {
    /// Redis's limiter, falling back while `health` says Redis is down.
    pub fn new(primary: Arc<dyn RateLimiter>, health: RedisHealth) -> Self {
        Self::with_check(primary, move || health.is_healthy())
    }

    /// Any limiter, with any health check (tests).
    pub fn with_check(
        primary: Arc<dyn RateLimiter>,
        healthy: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            primary,
            fallback: portal_memory::MemoryRateLimiter::new(),
            healthy: Arc::new(healthy),
        }
    }
}

impl std::fmt::Debug for FallbackRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackRateLimiter")
            .field("healthy", &(self.healthy)())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimiter for FallbackRateLimiter {
    async fn hit(
        &self,
        key: &str,
        policy: RatePolicy,
        cost: u32,
    ) -> Result<RateDecision, StoreError> {
        if (self.healthy)() {
            match self.primary.hit(key, policy, cost).await {
                Ok(decision) => return Ok(decision),
                Err(e) => {
                    // Counted by the store (`portal_redis_refused_total`); the health monitor
                    // logs the outage once.
                    tracing::debug!(error = %e, "shared rate limiter failed; limiting in process");
                }
            }
        }
        self.fallback.hit(key, policy, cost).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn policy(limit: u32) -> RatePolicy {
        RatePolicy {
            limit,
            window: Duration::from_secs(60),
        }
    }

    /// A primary that refuses everything (so its answers are recognisable) or fails.
    struct Primary {
        fail: AtomicBool,
    }

    #[async_trait]
    impl RateLimiter for Primary {
        async fn hit(&self, _: &str, _: RatePolicy, _: u32) -> Result<RateDecision, StoreError> {
            if self.fail.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("down".into()))
            } else {
                Ok(RateDecision {
                    allowed: false,
                    limit: 1,
                    remaining: 0,
                    reset_after: Duration::from_secs(1),
                })
            }
        }
    }

    fn load(pairs: &[(&str, &str)]) -> Settings {
        let env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(Some(env)).unwrap()
    }

    #[test]
    fn a_zero_pool_is_refused() {
        let env = [("REDIS_POOL_SIZE", "0")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let err = Settings::load_from(Some(env)).unwrap_err();
        assert!(err.to_string().contains("REDIS_POOL_SIZE"), "{err}");
    }

    #[tokio::test]
    async fn a_malformed_redis_url_is_refused_without_echoing_it() {
        let err = Stores::from_settings(&load(&[("REDIS_URL", "http://user:hunter2@x")]))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("Redis (single)"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn healthy_primary_decides() {
        let primary = Arc::new(Primary {
            fail: AtomicBool::new(false),
        });
        let limiter = FallbackRateLimiter::with_check(primary, || true);
        assert!(!limiter.hit("k", policy(5), 1).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn unhealthy_primary_is_skipped_and_the_local_limit_still_holds() {
        let primary = Arc::new(Primary {
            fail: AtomicBool::new(false),
        });
        let limiter = FallbackRateLimiter::with_check(primary, || false);
        for _ in 0..3 {
            assert!(limiter.hit("k", policy(3), 1).await.unwrap().allowed);
        }
        assert!(!limiter.hit("k", policy(3), 1).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn a_failing_primary_falls_back_instead_of_erroring() {
        let primary = Arc::new(Primary {
            fail: AtomicBool::new(true),
        });
        let limiter = FallbackRateLimiter::with_check(primary, || true);
        let first = limiter.hit("k", policy(1), 1).await.unwrap();
        assert!(first.allowed);
        assert!(!limiter.hit("k", policy(1), 1).await.unwrap().allowed);
    }
}
