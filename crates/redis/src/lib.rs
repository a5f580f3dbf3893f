//! Redis adapters for every store port of `portal_domain::ports::stores`, on a
//! deadpool-redis pool (redis 1.8), plus a health monitor and a test harness.
//!
//! One [`RedisStores`] value implements `SessionStore`, `OneTimeStore`, `OnboardingStore`,
//! `Cache`, `Lock`, `RateLimiter`, `IdempotencyStore`, `EventBus` and `OutboundQueue`; wrap it in
//! an `Arc` and hand it out as each `Arc<dyn Port>`. Every command runs under a deadline and every
//! Redis failure becomes `StoreError::Unavailable` (or `Corrupt` for undecodable values) with a
//! short message naming the operation only: no key, value or secret.
//!
//! Keys follow spec §4.2 with a Redis Cluster hash tag (`session:{<sha256>}`,
//! `metrics:{<tenant>}:week`, ...), so multi-key reads such as the cache's entry + generation
//! `MGET` stay in one slot.
//!
//! Needs Redis 6.2 or later (`GETDEL`, `TIME` inside scripts). Key
//! names are Cluster-ready; the pool itself is a single-endpoint (or Sentinel-fronted) pool.
//!
//! # Layout
//! - [`config`]: [`RedisSettings`] and [`url_from_parts`] (the `REDIS_HOST`/... variables).
//! - `keys`: key and channel names.
//! - `session`, `onboarding`, `cache`, `coordination` (one-time tokens, lock, rate limiter,
//!   idempotency), `bus` (pub/sub and the outbound stream): the port implementations.
//! - [`health`]: [`RedisHealth`], a background PING monitor and `HealthProbe`.
//! - `harness` (feature `test-harness`): `RedisServer`, a throw-away `redis-server`, and
//!   `RedisCounters`, its `INFO` counters read over one kept-open connection.
//!
//! # Dependencies
//! The domain crate, deadpool-redis/redis, tokio, serde. No HTTP, no other adapter.

mod bus;
mod cache;
pub mod config;
mod coordination;
mod error;
pub mod health;
mod keys;
mod onboarding;
mod session;

#[cfg(feature = "test-harness")]
mod harness;

pub use config::{RedisSettings, url_from_parts};
#[cfg(feature = "test-harness")]
pub use harness::{RedisCounters, RedisServer};
pub use health::RedisHealth;

use deadpool_redis::Pool;
use keys::Keys;
use portal_domain::StoreError;
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, ScriptInvocation};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Every store port on one Redis deployment. Cheap to clone.
#[derive(Clone)]
pub struct RedisStores {
    inner: Arc<Inner>,
}

struct Inner {
    /// Multiplexed connections for every command except pub/sub.
    pool: Pool,
    /// Opens the dedicated pub/sub connection, which is not pooled.
    client: redis::Client,
    keys: Keys,
    /// Bounds waiting for a pooled connection (and opening the pub/sub one).
    connect_timeout: Duration,
    /// With `connect_timeout`, the deadline of one operation, pool wait included.
    command_timeout: Duration,
    /// The instance's single pub/sub subscription, shared by every `subscribe` caller.
    bus: tokio::sync::Mutex<Option<bus::Subscription>>,
    /// A multiplexed connection (taken from the pool once) shared by every command. Checking a
    /// connection out of the pool for each command would cost deadpool-redis's recycle check
    /// (`UNWATCH` + `PING`), one more round trip per command. Dropped on a connection error or
    /// a timeout, so the next command takes a fresh one from the pool. Safe to share: no
    /// command here uses `WATCH` or blocks (`MULTI` pipelines are sent in one piece).
    shared: std::sync::Mutex<Option<MultiplexedConnection>>,
}

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStores")
            .field("keys", &self.inner.keys)
            .field("pool", &self.inner.pool.status())
            .finish_non_exhaustive()
    }
}

impl RedisStores {
    /// Builds the pool. Connections are opened lazily: this fails only on a malformed URL, so a
    /// service can start while Redis is still coming up (the health monitor says when it is).
    pub fn connect(settings: RedisSettings) -> Result<Self, StoreError> {
        let pool = config::pool(&settings)?;
        let client = config::client(&settings)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                client,
                keys: Keys::new(settings.key_prefix.as_deref()),
                connect_timeout: settings.connect_timeout,
                command_timeout: settings.command_timeout,
                bus: tokio::sync::Mutex::new(None),
                shared: std::sync::Mutex::new(None),
            }),
        })
    }

    /// A health monitor pinging this deployment every `interval`.
    pub fn health(&self, interval: Duration) -> RedisHealth {
        RedisHealth::start(
            self.inner.pool.clone(),
            interval,
            self.inner.command_timeout,
        )
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn deadline(&self) -> Duration {
        self.inner.connect_timeout + self.inner.command_timeout
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.inner
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shared multiplexed connection, taking one from the pool when there is none.
    async fn conn(&self, op: &'static str) -> Result<MultiplexedConnection, StoreError> {
        if let Some(conn) = self.shared().clone() {
            return Ok(conn);
        }
        let pooled = self.inner.pool.get().await.map_err(|e| match e {
            deadpool_redis::PoolError::Backend(e) => error::unavailable(op, &e),
            deadpool_redis::PoolError::Timeout(_) => error::timed_out(op),
            _ => error::no_connection(op),
        })?;
        let conn = deadpool_redis::Connection::take(pooled);
        *self.shared() = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the shared connection after a failure that may have broken it.
    fn failed(&self, op: &'static str, e: &redis::RedisError) -> StoreError {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            self.shared().take();
        }
        error::unavailable(op, e)
    }

    fn timed_out(&self, op: &'static str) -> StoreError {
        self.shared().take();
        error::timed_out(op)
    }

    /// Runs one command (or a `MULTI` pipeline) under the deadline.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let fut = async {
            let mut conn = self.conn(op).await?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| self.failed(op, &e))
        };
        tokio::time::timeout(self.deadline(), fut)
            .instrument(store_span(op))
            .await
            .map_err(|_| self.timed_out(op))?
    }

    /// Runs a pipeline under the deadline.
    pub(crate) async fn pipe<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let fut = async {
            let mut conn = self.conn(op).await?;
            pipe.query_async::<T>(&mut conn)
                .await
                .map_err(|e| self.failed(op, &e))
        };
        tokio::time::timeout(self.deadline(), fut)
            .instrument(store_span(op))
            .await
            .map_err(|_| self.timed_out(op))?
    }

    /// Runs a Lua script (`EVALSHA`, loading it on `NOSCRIPT`) under the deadline.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let fut = async {
            let mut conn = self.conn(op).await?;
            script
                .invoke_async::<T>(&mut conn)
                .await
                .map_err(|e| self.failed(op, &e))
        };
        tokio::time::timeout(self.deadline(), fut)
            .instrument(store_span(op))
            .await
            .map_err(|_| self.timed_out(op))?
    }
}

/// The span around one store round trip (exported over OTLP as a client span; `op` is the
/// store operation, e.g. `session get`, never a key or a value).
fn store_span(op: &'static str) -> tracing::Span {
    tracing::info_span!(
        "store",
        otel.kind = "client",
        db.system = "redis",
        db.operation = op
    )
}

/// Milliseconds for `PX`/`PEXPIRE`, at least 1 (Redis refuses 0).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(sub) = self.bus.get_mut().take() {
            sub.task.abort();
        }
    }
}
