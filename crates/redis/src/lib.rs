//! Redis adapters for every store port of `portal_domain::ports::stores`, on a
//! deadpool-redis pool (redis 1.8), plus a health monitor and a test harness.
//!
//! One [`RedisStores`] value implements `SessionStore`, `OneTimeStore`, `OnboardingStore`,
//! `Cache`, `Lock`, `RateLimiter`, `IdempotencyStore`, `EventBus`, `OutboundQueue`,
//! `AuditLog`, `EventHistory` and `Presence`; wrap it in
//! an `Arc` and hand it out as each `Arc<dyn Port>`. Every command runs under a deadline and every
//! Redis failure becomes `StoreError::Unavailable` (or `Corrupt` for undecodable values) with a
//! short message naming the operation only: no key, value or secret.
//!
//! Keys follow spec §4.2 with a Redis Cluster hash tag (`session:{<sha256>}`,
//! `metrics:{<tenant>}:week`, ...), so multi-key reads such as the cache's entry + generation
//! `MGET` stay in one slot.
//!
//! Needs Redis 6.2 or later (`GETDEL`, `TIME` inside scripts); sharded Pub/Sub needs 7.
//!
//! # Topologies
//! One node (`REDIS_URL`), a Cluster (seed nodes) or a Sentinel-managed master, each with ACL
//! user, password, TLS and client certificates ([`RedisSettings`]). The commands of a thread
//! share one connection (`conn`), opened on that thread: a multiplexed connection to the node or
//! master, or the `redis` crate's own cluster connection, which follows `MOVED`/`ASK` and
//! failovers. An actix worker's commands and its connection's driver so stay on one thread.
//! No command spans two Cluster slots: multi-key commands and scripts use keys of one hash
//! tag, and the few operations over several sessions send one command per key on a Cluster
//! (`per_key`).
//!
//! # Failures
//! A broken connection to a node is dropped and replaced, with every other thread's (a new
//! generation); the health monitor pings through its own thread's connection every 500 ms, so
//! after a restart or failover the connections are replaced before `/readyz` turns green and
//! no request pays for finding one dead. A read that fails on a
//! broken connection is retried once on a fresh one. An outage logs one line per state change
//! (the health monitor); each refused operation is counted ([`RedisHealth::refused_total`]).
//!
//! # Layout
//! - [`config`]: [`RedisSettings`], [`Topology`] and [`url_from_parts`] (the `REDIS_HOST`/...
//!   variables).
//! - `conn`: the request connection per topology and the topology check of a new connection.
//! - `keys`: key and channel names.
//! - `session`, `onboarding`, `cache`, `coordination` (one-time tokens, lock, rate limiter,
//!   idempotency), `bus` (pub/sub and the outbound stream), `audit` (a Stream per trail),
//!   `history` (each tenant's event Stream), `presence` (the registry of live sockets): the
//!   port implementations.
//! - [`health`]: [`RedisHealth`], a background PING monitor and `HealthProbe`.
//! - `harness` (feature `test-harness`): `RedisServer`, a throw-away `redis-server`, and
//!   `RedisCounters`, its `INFO` counters read over one kept-open connection.
//!
//! # Dependencies
//! The domain crate, deadpool-redis/redis, tokio, serde. No HTTP, no other adapter.

mod audit;
mod bus;
mod cache;
pub mod config;
mod conn;
mod coordination;
mod error;
pub mod health;
mod history;
mod keys;
mod onboarding;
mod presence;
mod session;

#[cfg(feature = "test-harness")]
mod harness;

pub use config::{PubSubMode, RedisSettings, Topology, parse_node, url_from_parts};
#[cfg(feature = "test-harness")]
pub use harness::{
    ACL_PASSWORD, ACL_USER, RedisCluster, RedisCounters, RedisSentinel, RedisServer,
    SENTINEL_MASTER, Security, TlsFiles, settings_for,
};
pub use health::RedisHealth;
pub use keys::shard_channel;

use conn::{Conn, Connector, Opened};
use keys::Keys;
use portal_domain::StoreError;
use redis::{FromRedisValue, ScriptInvocation};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use thread_local::ThreadLocal;
use tracing::Instrument;

/// A thread's request connection, with the generation it was opened in and the thread that
/// opened it (the `ThreadLocal` slot of a thread that exited goes to a later thread, whose
/// runtime may not be the one the connection's driver runs on).
#[derive(Clone)]
struct Held {
    epoch: u64,
    thread: std::thread::ThreadId,
    conn: Conn,
}

/// Every store port on one Redis deployment. Cheap to clone.
#[derive(Clone)]
pub struct RedisStores {
    inner: Arc<Inner>,
}

struct Inner {
    /// Opens the request connections (and the pub/sub one) for the configured topology.
    connector: Connector,
    keys: Keys,
    /// Bounds opening a connection.
    connect_timeout: Duration,
    /// With `connect_timeout`, the deadline of one operation, connecting included.
    command_timeout: Duration,
    /// Classic or sharded Pub/Sub.
    pubsub: config::PubSubMode,
    /// The instance's single pub/sub subscription, shared by every `subscribe` caller.
    bus: tokio::sync::Mutex<Option<bus::Subscription>>,
    /// The connection the commands of each thread share (multiplexed; a Cluster's holds one
    /// per node). One per thread, opened on that thread: the connection's driver task runs on
    /// the runtime of the thread that opened it, so an actix worker (a single-threaded
    /// runtime) hands its commands to a driver on its own thread, with no cross-thread wake-up
    /// per round trip. Checking a connection out of a pool per command would cost
    /// deadpool-redis's recycle check, one more round trip per command. Safe to share: no
    /// command here uses `WATCH` or blocks (`MULTI` pipelines are sent in one piece).
    shared: ThreadLocal<std::sync::Mutex<Option<Held>>>,
    /// The generation of the connections: forgetting a connection after a failure moves it
    /// on, so every thread opens a fresh one at its next command (one broken connection means
    /// the others are likely broken too, after a restart or a failover). A node's connection
    /// is forgotten on a connection error or a timeout; a Cluster connection repairs its node
    /// connections itself and is forgotten only when the health monitor's ping fails.
    epoch: AtomicU64,
    /// The sessions each thread decoded last (`session`).
    decoded: session::DecodedSessions,
    /// Serialises opening connections: during a reconnect storm each thread opens one
    /// connection, not one per waiting request.
    connecting: tokio::sync::Mutex<()>,
    /// Set when Redis answered but is not the configured topology (e.g. a Cluster node given as
    /// `REDIS_URL`): the message says which setting to use. Never cleared.
    mismatch: OnceLock<String>,
    /// Operations refused because Redis was unreachable, timed out or refused a connection
    /// (`portal_redis_refused_total`).
    refused: AtomicU64,
}

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStores")
            .field("keys", &self.inner.keys)
            .field("pool", &self.pool_status())
            .finish_non_exhaustive()
    }
}

/// Whether an error means the connection itself may be broken (as opposed to a command error).
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        // A master demoted to replica (Sentinel failover): ask the Sentinels again.
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

impl RedisStores {
    /// Builds the clients. Connections are opened lazily: this fails only on malformed settings
    /// (or an unreadable certificate file), so a service can start while Redis is still coming
    /// up (the health monitor says when it is). [`RedisStores::check_topology`] connects once.
    pub fn connect(settings: RedisSettings) -> Result<Self, StoreError> {
        if settings.pubsub == config::PubSubMode::Sharded
            && !matches!(settings.topology, Topology::Cluster { .. })
        {
            return Err(StoreError::Unavailable(
                "REDIS_PUBSUB=sharded needs a Cluster (REDIS_CLUSTER_NODES)".into(),
            ));
        }
        let connector = Connector::new(&settings)?;
        Ok(Self {
            inner: Arc::new(Inner {
                connector,
                keys: Keys::new(settings.key_prefix.as_deref()),
                connect_timeout: settings.connect_timeout,
                command_timeout: settings.command_timeout,
                pubsub: settings.pubsub,
                bus: tokio::sync::Mutex::new(None),
                shared: ThreadLocal::new(),
                epoch: AtomicU64::new(0),
                decoded: session::DecodedSessions::default(),
                connecting: tokio::sync::Mutex::new(()),
                mismatch: OnceLock::new(),
                refused: AtomicU64::new(0),
            }),
        })
    }

    /// Connects once (within the connect deadline) and checks that Redis is the configured
    /// topology. `Err` with a message naming the right setting on a mismatch (start-up refuses
    /// it); `Ok` when Redis answered as expected **or** did not answer (the service then starts
    /// degraded and every later connection is checked the same way).
    pub async fn check_topology(&self) -> Result<(), String> {
        match self.conn("connect").await {
            Ok(_) => Ok(()),
            Err(_) => match self.inner.mismatch.get() {
                Some(m) => Err(m.clone()),
                None => Ok(()),
            },
        }
    }

    /// A health monitor pinging this deployment every `interval` through a request connection.
    pub fn health(&self, interval: Duration) -> RedisHealth {
        RedisHealth::start(self, interval, self.inner.command_timeout)
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.inner.connector, Connector::Cluster { .. })
    }

    pub(crate) fn weak(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn from_weak(inner: &std::sync::Weak<Inner>) -> Option<Self> {
        inner.upgrade().map(|inner| Self { inner })
    }

    /// Operations refused so far because Redis was unreachable.
    pub(crate) fn refused_total(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Why Redis is unusable for good, when it answered as another topology.
    pub(crate) fn mismatch(&self) -> Option<&str> {
        self.inner.mismatch.get().map(String::as_str)
    }

    pub(crate) fn pool_status(&self) -> (usize, usize, usize) {
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let held = self
            .inner
            .shared
            .iter()
            .filter(|slot| lock(slot).as_ref().is_some_and(|held| held.epoch == epoch))
            .count();
        self.inner.connector.pool_status(held)
    }

    fn deadline(&self) -> Duration {
        self.inner.connect_timeout + self.inner.command_timeout
    }

    pub(crate) fn decoded(&self) -> &session::DecodedSessions {
        &self.inner.decoded
    }

    /// This thread's connection slot.
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        lock(self.inner.shared.get_or(Default::default))
    }

    /// This thread's connection, when it was opened here in the current generation.
    fn held(&self) -> Option<Held> {
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let thread = std::thread::current().id();
        self.slot()
            .as_ref()
            .filter(|held| held.epoch == epoch && held.thread == thread)
            .cloned()
    }

    /// This thread's connection, opening one when there is none.
    async fn conn(&self, op: &'static str) -> Result<Held, StoreError> {
        match self.held() {
            Some(held) => Ok(held),
            // Boxed: opening is rare and its future large; every command's future would
            // otherwise carry (and move) its space.
            None => Box::pin(self.open(op)).await,
        }
    }

    /// Opens this thread's connection (one opening at a time per process).
    async fn open(&self, op: &'static str) -> Result<Held, StoreError> {
        if let Some(m) = self.inner.mismatch.get() {
            return Err(StoreError::Unavailable(format!("redis {op}: {m}")));
        }
        let _one_at_a_time = self.inner.connecting.lock().await;
        if let Some(held) = self.held() {
            return Ok(held);
        }
        // Read before opening: a failure reported while this one opens leaves it stale.
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let opened = tokio::time::timeout(self.inner.connect_timeout, self.inner.connector.open())
            .await
            .unwrap_or_else(|_| Opened::Unavailable(error::timed_out(op)));
        match opened {
            Opened::Ok(conn) => {
                let held = Held {
                    epoch,
                    thread: std::thread::current().id(),
                    conn,
                };
                *self.slot() = Some(held.clone());
                Ok(held)
            }
            Opened::Unavailable(e) => Err(e),
            Opened::Mismatch(m) => {
                if self.inner.mismatch.set(m.clone()).is_ok() {
                    tracing::error!(problem = %m, "redis is not the configured topology");
                }
                Err(StoreError::Unavailable(format!("redis {op}: {m}")))
            }
        }
    }

    /// Forgets the connections of `held`'s generation after a failure that may have broken
    /// them: every thread opens a fresh one at its next command. (Once per generation: the
    /// failures of the other threads' connections of that generation change nothing.)
    fn forget(&self, held: &Held) {
        let next = held.epoch.wrapping_add(1);
        let _ = self.inner.epoch.compare_exchange(
            held.epoch,
            next,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|h| h.epoch == held.epoch) {
            slot.take();
        }
    }

    /// Forgets this thread's connection of the current generation (and so the generation)
    /// when it is a node's: after a timeout, which may mean a dead node.
    fn forget_node(&self) {
        if let Some(held) = self.held().filter(|h| matches!(h.conn, Conn::Node(_))) {
            self.forget(&held);
        }
    }

    fn refuse(&self, e: StoreError) -> StoreError {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
        e
    }

    /// Runs one operation on this thread's connection under the deadline. `read`: the operation
    /// changes nothing, so after a connection error it is retried once on a fresh connection
    /// (a connection found dead costs no failed request).
    async fn run<T, F, Fut>(&self, op: &'static str, read: bool, f: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let mut tries = if read { 2 } else { 1 };
            loop {
                tries -= 1;
                let held = self.conn(op).await?;
                match f(held.conn.clone()).await {
                    Ok(v) => return Ok(v),
                    Err(e) if is_connection_error(&e) => {
                        let node = matches!(held.conn, Conn::Node(_));
                        if node {
                            self.forget(&held);
                        }
                        if tries == 0 || !node {
                            return Err(error::unavailable(op, &e));
                        }
                    }
                    Err(e) => return Err(error::unavailable(op, &e)),
                }
            }
        };
        match tokio::time::timeout(self.deadline(), attempt)
            .instrument(store_span(op))
            .await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.refuse(e)),
            Err(_) => {
                self.forget_node();
                Err(self.refuse(error::timed_out(op)))
            }
        }
    }

    /// Runs one command (or a `MULTI` pipeline) that writes, under the deadline.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.run(op, false, |mut c| async move {
            cmd.query_async::<T>(&mut c).await
        })
        .await
    }

    /// Runs one command that only reads (retried once on a fresh connection).
    pub(crate) async fn read<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.run(op, true, |mut c| async move {
            cmd.query_async::<T>(&mut c).await
        })
        .await
    }

    /// Runs a pipeline under the deadline (its commands must share one slot on a Cluster).
    pub(crate) async fn pipe<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        self.run(op, false, |mut c| async move {
            pipe.query_async::<T>(&mut c).await
        })
        .await
    }

    /// One command per key, each on its own key's slot: one pipeline (one round trip) on a
    /// single node, concurrent commands on a Cluster (where a pipeline may not span slots).
    pub(crate) async fn per_key<T: FromRedisValue + Send>(
        &self,
        op: &'static str,
        read: bool,
        cmds: &[redis::Cmd],
    ) -> Result<Vec<T>, StoreError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        if self.is_cluster() {
            let each = cmds.iter().map(|cmd| {
                self.run(op, read, move |mut c| async move {
                    cmd.query_async::<T>(&mut c).await
                })
            });
            return futures::future::try_join_all(each).await;
        }
        let mut pipe = redis::pipe();
        for cmd in cmds {
            pipe.add_command(cmd.clone());
        }
        self.run(op, read, |mut c| {
            let pipe = &pipe;
            async move { pipe.query_async::<Vec<T>>(&mut c).await }
        })
        .await
    }

    /// Runs a Lua script (`EVALSHA`, loading it on `NOSCRIPT`) under the deadline.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let script = &script;
        self.run(op, false, |mut c| async move {
            script.invoke_async::<T>(&mut c).await
        })
        .await
    }

    /// `PING` through this thread's connection (every master of a Cluster): what the health
    /// monitor and `/readyz` ask.
    pub(crate) async fn ping(&self, timeout: Duration) -> Result<(), &'static str> {
        let attempt = async {
            let held = self.conn("ping").await.map_err(|_| "no connection")?;
            let result = match held.conn.clone() {
                Conn::Node(mut c) => redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .map(drop),
                Conn::Cluster(mut c) => {
                    use redis::cluster_routing::{
                        MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo,
                    };
                    c.route_command(
                        redis::cmd("PING"),
                        RoutingInfo::MultiNode((
                            MultipleNodeRoutingInfo::AllMasters,
                            Some(ResponsePolicy::AllSucceeded),
                        )),
                    )
                    .await
                    .map(drop)
                }
            };
            result.map_err(|e| {
                match held.conn {
                    // A Cluster connection repairs a node's connection but learns a new slot
                    // map only when a keyed command is redirected: a quiet instance (not ready,
                    // so sent no traffic) would never see the promoted replica. Start afresh
                    // from the seeds instead; commands in flight keep the old one.
                    Conn::Cluster(_) => self.forget(&held),
                    Conn::Node(_) if is_connection_error(&e) => self.forget(&held),
                    Conn::Node(_) => {}
                }
                "ping failed"
            })
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => {
                self.forget_node();
                Err("timeout")
            }
        }
    }
}

/// The span around one store round trip, a client span as OpenTelemetry's database
/// conventions name it: named after `op` (the store operation, e.g. `session get`, never a key
/// or a value), `db.system.name` (and the older `db.system` many backends still group by)
/// `redis`, `db.operation.name` = `op`.
fn store_span(op: &'static str) -> tracing::Span {
    tracing::info_span!(
        "store",
        otel.name = op,
        otel.kind = "client",
        db.system.name = "redis",
        db.system = "redis",
        db.operation.name = op
    )
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
