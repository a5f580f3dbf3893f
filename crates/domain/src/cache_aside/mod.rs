//! Cache-aside reads that survive stampedes and outages (decisions §6, spec 003).
//!
//! `CacheAside::get` serves a cached value while it is fresh; on a miss, one fetch per key
//! runs per instance (**single flight**: concurrent callers share its result) and one per key
//! across instances (**distributed lock** `fetch:<cache key>`: the holder fetches and writes
//! the cache, the others poll the cache for a short while and only then fetch themselves).
//! The fetch is one call of the source's port: its deadline, retries and circuit breaker are
//! the outbound edge's (`portal-outbound`'s `Guard`), not this module's. When the source fails
//! (or its circuit is open), the last known value is served marked stale; with none, the
//! caller gets [`CacheAsideError::Unavailable`] (503), never made-up zeros.
//!
//! A cache store failure is treated as a miss (and logged): the source stays protected by the
//! single flight (and, at the edge, by its breaker).
//!
//! # Layout
//! - this file: `CacheAside::get` (the hit path), [`ReadPorts`] (what a cached read use case
//!   talks to: the dashboard, history), `CacheAsideConfig` (TTLs and timings), `Cached`
//!   (a value and whether it is stale), and reading the cache (a store failure is a miss).
//! - `single_flight`: one fetch per key and generation in this instance, run as its own task.
//! - `lock`: one fetch per key across instances (`fetch:<cache key>`), or a short wait for
//!   the instance holding it.
//! - `stale`: the fetch itself, the cache write, and the stale fallback.
//! - `invalidation`: [`CacheInvalidation`], generation bumps on refresh and on bus events.
//! - `near`: the near cache, fresh values kept in the instance for `near_for` (off unless a
//!   view's config sets it), dropped by this instance's invalidations.

mod invalidation;
mod lock;
mod near;
mod single_flight;
mod stale;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

pub use invalidation::CacheInvalidation;
pub(crate) use near::Forget;

use crate::error::DownstreamFailure;
use crate::ports::stores::{Cache, CacheEntry, CacheKey, CacheLookup, Lock};
use crate::ports::system::{CacheResult, Clock, Telemetry};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The text form of a cache key, as the spec's Redis key patterns write it (§4.2.3, §4.2.4).
pub(crate) fn key_name(key: &CacheKey) -> String {
    match key {
        CacheKey::Metrics { tenant, period } => format!("metrics:{tenant}:{period}"),
        CacheKey::Conversations {
            tenant,
            page,
            limit,
            status,
        } => format!("conversations:{tenant}:{page}:{limit}:{status}"),
    }
}

/// The name of the distributed lock that guards a key's fetch for one cache generation (as
/// the single flight is per key and generation: a fetch started before an invalidation must not
/// hold up the fetch of the new generation, whose waiters could never see it fill the cache).
pub(crate) fn lock_name(key: &CacheKey, generation: u64) -> String {
    format!("fetch:{}:g{generation}", key_name(key))
}

/// TTLs and timings of a cache-aside view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheAsideConfig {
    /// How long a fetched value is served without asking the source again.
    pub(crate) fresh_for: Duration,
    /// How long the store keeps a value: the stale fallback during an outage.
    pub(crate) retain_for: Duration,
    /// Expiry of the fetch lock, so a crashed holder cannot block the key for long. Longer
    /// than a whole fetch at the edge (three attempts of the State Manager's 5-second
    /// deadline plus their backoffs), so it does not expire under a live holder.
    pub(crate) lock_ttl: Duration,
    /// How long a caller that lost the lock polls the cache before fetching itself.
    pub(crate) wait_for_holder: Duration,
    /// Poll interval while waiting for the lock holder.
    pub(crate) poll_every: Duration,
    /// How long a fresh value read from the store is served from the instance's memory
    /// (`near`); zero (the default) reads the store every time.
    pub(crate) near_for: Duration,
}

impl CacheAsideConfig {
    /// Settings for a view cached `fresh_for`; stale values are kept 24 hours.
    pub(crate) fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            retain_for: Duration::from_secs(24 * 3600),
            lock_ttl: Duration::from_secs(20),
            wait_for_holder: Duration::from_millis(250),
            poll_every: Duration::from_millis(50),
            near_for: Duration::ZERO,
        }
    }
}

/// A value from a cache-aside read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cached<T> {
    /// The value.
    pub value: T,
    /// `true` when the source could not be reached and this is the last known value.
    pub stale: bool,
}

/// Why a cache-aside read produced nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheAsideError {
    /// The source failed (or its circuit is open) and no earlier value is kept
    /// (`SERVICE_UNAVAILABLE`, 503).
    #[error("source unavailable: {0}")]
    Unavailable(DownstreamFailure),
    /// The fetch itself broke (a bug or a panic in the fetch task), not the source.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One read of the source (a single port call; the edge retries it if it may).
pub(crate) type Fetch<T> = BoxFuture<'static, Result<T, DownstreamFailure>>;

struct Inner<T> {
    cache: Arc<dyn Cache>,
    lock: Arc<dyn Lock>,
    clock: Arc<dyn Clock>,
    telemetry: Arc<dyn Telemetry>,
    config: CacheAsideConfig,
    /// This instance's fetches in flight.
    flights: Mutex<single_flight::Flights<T>>,
    /// Fresh values kept in the instance.
    near: Arc<near::Near<T>>,
}

/// What a cached read use case over the State Manager talks to ([`crate::dashboard::Dashboard`],
/// [`crate::history::History`]): the source, the cache and lock of the cache-aside views, the
/// clock and telemetry, and the audit trail (cache refreshes, refused cross-tenant reads).
#[derive(Clone)]
pub struct ReadPorts {
    /// The source of the values.
    pub state_manager: Arc<dyn crate::ports::downstream::StateManager>,
    /// Where values are cached.
    pub cache: Arc<dyn Cache>,
    /// The cross-instance single-flight lock.
    pub lock: Arc<dyn Lock>,
    /// Time (tests pause it).
    pub clock: Arc<dyn Clock>,
    /// Cache results and the like.
    pub telemetry: Arc<dyn Telemetry>,
    /// The audit trail.
    pub auditor: Arc<crate::audit::Auditor>,
}

impl std::fmt::Debug for ReadPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPorts").finish_non_exhaustive()
    }
}

impl ReadPorts {
    /// A cache-aside view over these ports' cache, lock, clock and telemetry.
    pub(crate) fn cache_aside<T>(&self, config: CacheAsideConfig) -> CacheAside<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        CacheAside::new(
            Arc::clone(&self.cache),
            Arc::clone(&self.lock),
            Arc::clone(&self.clock),
            Arc::clone(&self.telemetry),
            config,
        )
    }
}

/// A cache-aside view of values of type `T` (stored as JSON).
///
/// Cheap to clone; clones share their in-flight fetches.
pub(crate) struct CacheAside<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for CacheAside<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> std::fmt::Debug for CacheAside<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheAside")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl<T> CacheAside<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Builds the view.
    pub(crate) fn new(
        cache: Arc<dyn Cache>,
        lock: Arc<dyn Lock>,
        clock: Arc<dyn Clock>,
        telemetry: Arc<dyn Telemetry>,
        config: CacheAsideConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cache,
                lock,
                clock,
                telemetry,
                config,
                flights: Mutex::new(single_flight::Flights::default()),
                near: Arc::new(near::Near::new(config.near_for)),
            }),
        }
    }

    /// What an invalidation of this view's keys must reach: its near cache.
    pub(crate) fn near(&self) -> Arc<dyn Forget> {
        self.inner.near.clone()
    }

    /// Reads `key`: the cached value while fresh, else the source's through `fetch` (once per
    /// key across callers and instances), else the last known value marked stale.
    ///
    /// `fetch` is only called by the caller that starts a flight, so a hit neither allocates
    /// nor clones anything for it.
    ///
    /// Cancellation-safe: the fetch runs as its own task, so dropping a caller (even the one
    /// that started it) neither cancels it for the others nor leaves the lock held.
    pub(crate) async fn get(
        &self,
        key: CacheKey,
        fetch: impl FnOnce() -> Fetch<T>,
    ) -> Result<Cached<T>, CacheAsideError> {
        let kind = key.kind();
        let epoch = match self.inner.near.get(&key, self.inner.clock.now()) {
            Ok(value) => {
                self.inner.telemetry.cache_lookup(kind, CacheResult::Hit);
                return Ok(Cached {
                    value,
                    stale: false,
                });
            }
            Err(epoch) => epoch,
        };
        let lookup = self.inner.lookup(&key).await;
        if let Some(value) = self.inner.fresh_value(&lookup) {
            if let Some(entry) = &lookup.entry {
                let fresh_until = entry.stored_at + self.inner.config.fresh_for;
                self.inner.near.keep(&key, &value, fresh_until, epoch);
            }
            self.inner.telemetry.cache_lookup(kind, CacheResult::Hit);
            return Ok(Cached {
                value,
                stale: false,
            });
        }
        let flight = self.join_or_start(key, lookup, fetch);
        let result = flight.await;
        if let Ok((_, outcome)) = &result {
            self.inner.telemetry.cache_lookup(kind, *outcome);
        }
        result.map(|(cached, _)| cached)
    }
}

/// Reading the cache.
impl<T> Inner<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    pub(super) async fn lookup(&self, key: &CacheKey) -> CacheLookup {
        match self.cache.get(key).await {
            Ok(lookup) => lookup,
            Err(e) => {
                tracing::warn!(
                    cache = key.kind().as_str(),
                    error = %e,
                    "cache read failed; treating as a miss"
                );
                CacheLookup::default()
            }
        }
    }

    pub(super) fn decode(&self, entry: &CacheEntry) -> Option<T> {
        match serde_json::from_str(&entry.value) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "cached value does not decode; ignoring it");
                None
            }
        }
    }

    pub(super) fn is_fresh(&self, entry: &CacheEntry, generation: u64) -> bool {
        entry.generation == generation && self.clock.now() < entry.stored_at + self.config.fresh_for
    }

    pub(super) fn fresh_value(&self, lookup: &CacheLookup) -> Option<T> {
        lookup
            .entry
            .as_ref()
            .filter(|e| self.is_fresh(e, lookup.generation))
            .and_then(|e| self.decode(e))
    }
}
