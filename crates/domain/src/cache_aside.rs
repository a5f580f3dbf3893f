//! Cache-aside reads that survive stampedes and outages (decisions §6, spec 003).
//!
//! [`CacheAside::get`] serves a cached value while it is fresh; on a miss, one fetch per key
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
//! - [`ReadPorts`]: what a cached read use case talks to (the dashboard, history).
//! - [`CacheAsideConfig`]: TTLs and timings.
//! - [`CacheAside`]: the component, one per cached value type.
//! - [`Cached`]: a value and whether it is stale.

use crate::error::DownstreamFailure;
use crate::ports::stores::{Cache, CacheEntry, CacheKey, CacheLookup, Lock, LockToken};
use crate::ports::system::{CacheResult, Clock, Telemetry};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The text form of a cache key, as the spec's Redis key patterns write it (§4.2.3, §4.2.4).
pub fn key_name(key: &CacheKey) -> String {
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

/// The name of the distributed lock that guards a key's fetch.
pub fn lock_name(key: &CacheKey) -> String {
    format!("fetch:{}", key_name(key))
}

/// TTLs and timings of a cache-aside view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheAsideConfig {
    /// How long a fetched value is served without asking the source again.
    pub fresh_for: Duration,
    /// How long the store keeps a value: the stale fallback during an outage.
    pub retain_for: Duration,
    /// Expiry of the fetch lock, so a crashed holder cannot block the key for long. Longer
    /// than a whole fetch at the edge (three attempts of the State Manager's 5-second
    /// deadline plus their backoffs), so it does not expire under a live holder.
    pub lock_ttl: Duration,
    /// How long a caller that lost the lock polls the cache before fetching itself.
    pub wait_for_holder: Duration,
    /// Poll interval while waiting for the lock holder.
    pub poll_every: Duration,
}

impl CacheAsideConfig {
    /// Settings for a view cached `fresh_for`; stale values are kept 24 hours.
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            retain_for: Duration::from_secs(24 * 3600),
            lock_ttl: Duration::from_secs(20),
            wait_for_holder: Duration::from_millis(250),
            poll_every: Duration::from_millis(50),
        }
    }
}

/// A value from a cache-aside read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached<T> {
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
pub type Fetch<T> = BoxFuture<'static, Result<T, DownstreamFailure>>;

type FlightResult<T> = Result<(Cached<T>, CacheResult), CacheAsideError>;
type Flight<T> = Shared<BoxFuture<'static, FlightResult<T>>>;

/// In-flight fetches of one instance, by key and the generation they were started for (so a
/// caller arriving after an invalidation never joins a fetch of pre-invalidation data).
struct Flights<T> {
    next_id: u64,
    by_key: HashMap<(CacheKey, u64), (u64, Flight<T>)>,
}

struct Inner<T> {
    cache: Arc<dyn Cache>,
    lock: Arc<dyn Lock>,
    clock: Arc<dyn Clock>,
    telemetry: Arc<dyn Telemetry>,
    config: CacheAsideConfig,
    flights: Mutex<Flights<T>>,
}

/// What a cached read use case over the State Manager talks to ([`crate::dashboard::Dashboard`],
/// [`crate::history::History`]): the source, the cache and lock of the cache-aside views, the
/// clock and telemetry.
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
}

impl std::fmt::Debug for ReadPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPorts").finish_non_exhaustive()
    }
}

/// A cache-aside view of values of type `T` (stored as JSON).
///
/// Cheap to clone; clones share their in-flight fetches.
pub struct CacheAside<T> {
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
    pub fn new(
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
                flights: Mutex::new(Flights {
                    next_id: 0,
                    by_key: HashMap::new(),
                }),
            }),
        }
    }

    /// Reads `key`: the cached value while fresh, else the source's through `fetch` (once per
    /// key across callers and instances), else the last known value marked stale.
    ///
    /// `fetch` is only called by the caller that starts a flight, so a hit neither allocates
    /// nor clones anything for it.
    ///
    /// Cancellation-safe: the fetch runs as its own task, so dropping a caller (even the one
    /// that started it) neither cancels it for the others nor leaves the lock held.
    pub async fn get(
        &self,
        key: CacheKey,
        fetch: impl FnOnce() -> Fetch<T>,
    ) -> Result<Cached<T>, CacheAsideError> {
        let kind = key.kind();
        let lookup = self.inner.lookup(&key).await;
        if let Some(value) = self.inner.fresh_value(&lookup) {
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

    fn join_or_start(
        &self,
        key: CacheKey,
        lookup: CacheLookup,
        fetch: impl FnOnce() -> Fetch<T>,
    ) -> Flight<T> {
        let mut flights = self.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (key.clone(), lookup.generation);
        if let Some((_, flight)) = flights.by_key.get(&slot) {
            return flight.clone();
        }
        let id = flights.next_id;
        flights.next_id = flights.next_id.wrapping_add(1);
        let inner = Arc::clone(&self.inner);
        let task_slot = slot.clone();
        let fetch = fetch();
        // The fill runs in the span of the request that started it, so its logs carry that
        // request's ID and its downstream call that request's trace context.
        let handle = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let result = inner.fill(&key, lookup, fetch).await;
                let mut flights = inner.flights.lock().unwrap_or_else(|p| p.into_inner());
                if flights
                    .by_key
                    .get(&task_slot)
                    .is_some_and(|(i, _)| *i == id)
                {
                    flights.by_key.remove(&task_slot);
                }
                result
            },
            tracing::Span::current(),
        ));
        let flight = async move {
            match handle.await {
                Ok(result) => result,
                Err(e) => Err(CacheAsideError::Internal(format!("fetch task failed: {e}"))),
            }
        }
        .boxed()
        .shared();
        flights.by_key.insert(slot, (id, flight.clone()));
        flight
    }
}

impl<T> Inner<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    async fn lookup(&self, key: &CacheKey) -> CacheLookup {
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

    fn decode(&self, entry: &CacheEntry) -> Option<T> {
        match serde_json::from_str(&entry.value) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "cached value does not decode; ignoring it");
                None
            }
        }
    }

    fn is_fresh(&self, entry: &CacheEntry, generation: u64) -> bool {
        entry.generation == generation && self.clock.now() < entry.stored_at + self.config.fresh_for
    }

    fn fresh_value(&self, lookup: &CacheLookup) -> Option<T> {
        lookup
            .entry
            .as_ref()
            .filter(|e| self.is_fresh(e, lookup.generation))
            .and_then(|e| self.decode(e))
    }

    /// One flight: lock, (re)check, fetch, write, release; or wait for the holder.
    async fn fill(&self, key: &CacheKey, lookup: CacheLookup, fetch: Fetch<T>) -> FlightResult<T> {
        let lock_name = lock_name(key);
        let mut token = self.try_lock(&lock_name).await;
        if matches!(token, LockAttempt::Busy) {
            // Another instance is fetching: give it a moment to fill the cache.
            let waited_until = tokio::time::Instant::now() + self.config.wait_for_holder;
            while tokio::time::Instant::now() < waited_until {
                tokio::time::sleep(self.config.poll_every).await;
                let latest = self.lookup(key).await;
                if let Some(value) = self.fresh_value(&latest) {
                    return Ok((
                        Cached {
                            value,
                            stale: false,
                        },
                        CacheResult::Hit,
                    ));
                }
            }
            tracing::debug!(key = %key_name(key), "lock holder did not fill the cache in time; fetching");
            token = self.try_lock(&lock_name).await;
        } else if matches!(token, LockAttempt::Held(_)) {
            // Someone may have filled the cache between our read and our lock.
            let latest = self.lookup(key).await;
            if let Some(value) = self.fresh_value(&latest) {
                self.release(&lock_name, &token).await;
                return Ok((
                    Cached {
                        value,
                        stale: false,
                    },
                    CacheResult::Hit,
                ));
            }
        }

        let result = self.fetch_and_store(key, &lookup, fetch).await;
        self.release(&lock_name, &token).await;
        result
    }

    async fn fetch_and_store(
        &self,
        key: &CacheKey,
        lookup: &CacheLookup,
        fetch: Fetch<T>,
    ) -> FlightResult<T> {
        match fetch.await {
            Ok(value) => {
                match serde_json::to_string(&value) {
                    Ok(json) => {
                        let entry = CacheEntry {
                            value: json,
                            stored_at: self.clock.now(),
                            generation: lookup.generation,
                        };
                        if let Err(e) = self.cache.put(key, &entry, self.config.retain_for).await {
                            tracing::warn!(cache = key.kind().as_str(), error = %e, "cache write failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "value does not serialise; not cached"),
                }
                Ok((
                    Cached {
                        value,
                        stale: false,
                    },
                    CacheResult::Miss,
                ))
            }
            Err(failure) => {
                let stale = lookup
                    .entry
                    .as_ref()
                    .and_then(|e| self.decode(e).map(|v| (v, e.stored_at)));
                match stale {
                    Some((value, stored_at)) => {
                        tracing::warn!(
                            cache = key.kind().as_str(),
                            error = %failure,
                            stored_at = %stored_at,
                            "source unavailable; serving the last known value"
                        );
                        Ok((Cached { value, stale: true }, CacheResult::Stale))
                    }
                    None => {
                        tracing::warn!(
                            cache = key.kind().as_str(),
                            error = %failure,
                            "source unavailable and nothing cached"
                        );
                        Err(CacheAsideError::Unavailable(failure))
                    }
                }
            }
        }
    }

    async fn try_lock(&self, name: &str) -> LockAttempt {
        match self.lock.try_acquire(name, self.config.lock_ttl).await {
            Ok(Some(token)) => LockAttempt::Held(token),
            Ok(None) => LockAttempt::Busy,
            Err(e) => {
                tracing::warn!(error = %e, "fetch lock unavailable; relying on the in-process single flight");
                LockAttempt::NoLock
            }
        }
    }

    async fn release(&self, name: &str, attempt: &LockAttempt) {
        if let LockAttempt::Held(token) = attempt {
            match self.lock.release(name, token).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!("fetch lock had expired before release");
                }
                Err(e) => tracing::warn!(error = %e, "fetch lock release failed; it will expire"),
            }
        }
    }
}

/// The outcome of trying the fetch lock.
enum LockAttempt {
    /// We hold it.
    Held(LockToken),
    /// Another fetcher holds it.
    Busy,
    /// The lock store failed: proceed without it.
    NoLock,
}

/// In-memory doubles of the cache and lock ports for this crate's tests (the `portal-memory`
/// adapters live downstream of the domain), and a clock driven by tokio's paused time.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::error::StoreError;
    use crate::model::TenantId;
    use crate::ports::stores::CacheKind;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use time::OffsetDateTime;

    /// A cache with generations; `down` makes every call fail.
    #[derive(Default)]
    pub(crate) struct FakeCache {
        pub(crate) entries: Mutex<HashMap<CacheKey, CacheEntry>>,
        pub(crate) generations: Mutex<HashMap<(TenantId, CacheKind), u64>>,
        pub(crate) down: AtomicBool,
    }

    impl FakeCache {
        pub(crate) fn generation(&self, tenant: TenantId, kind: CacheKind) -> u64 {
            *self
                .generations
                .lock()
                .unwrap()
                .get(&(tenant, kind))
                .unwrap_or(&0)
        }
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("cache down".into()))
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl Cache for FakeCache {
        async fn get(&self, key: &CacheKey) -> Result<CacheLookup, StoreError> {
            self.check()?;
            Ok(CacheLookup {
                entry: self.entries.lock().unwrap().get(key).cloned(),
                generation: self.generation(key.tenant(), key.kind()),
            })
        }
        async fn put(
            &self,
            key: &CacheKey,
            entry: &CacheEntry,
            _retain: Duration,
        ) -> Result<(), StoreError> {
            self.check()?;
            self.entries
                .lock()
                .unwrap()
                .insert(key.clone(), entry.clone());
            Ok(())
        }
        async fn invalidate(&self, tenant: TenantId, kind: CacheKind) -> Result<u64, StoreError> {
            self.check()?;
            let mut g = self.generations.lock().unwrap();
            let n = g.entry((tenant, kind)).or_insert(0);
            *n += 1;
            Ok(*n)
        }
    }

    /// A lock without expiry (tests release explicitly); `down` makes every call fail.
    #[derive(Default)]
    pub(crate) struct FakeLock {
        pub(crate) held: Mutex<HashMap<String, String>>,
        next: AtomicU64,
        pub(crate) down: AtomicBool,
        pub(crate) acquired: AtomicUsize,
    }

    #[async_trait]
    impl Lock for FakeLock {
        async fn try_acquire(
            &self,
            name: &str,
            _ttl: Duration,
        ) -> Result<Option<LockToken>, StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("lock down".into()));
            }
            let mut held = self.held.lock().unwrap();
            if held.contains_key(name) {
                return Ok(None);
            }
            let token = self.next.fetch_add(1, Ordering::SeqCst).to_string();
            held.insert(name.to_owned(), token.clone());
            self.acquired.fetch_add(1, Ordering::SeqCst);
            Ok(Some(LockToken(token)))
        }
        async fn release(&self, name: &str, token: &LockToken) -> Result<bool, StoreError> {
            let mut held = self.held.lock().unwrap();
            if held.get(name) == Some(&token.0) {
                held.remove(name);
                Ok(true)
            } else {
                Ok(false)
            }
        }
    }

    /// Wall-clock time that moves with tokio's (paused) clock.
    pub(crate) struct TokioClock {
        start: tokio::time::Instant,
        base: OffsetDateTime,
    }

    impl TokioClock {
        pub(crate) fn new() -> Self {
            Self {
                start: tokio::time::Instant::now(),
                base: time::macros::datetime!(2026-02-12 08:30 UTC),
            }
        }
    }

    impl Clock for TokioClock {
        fn now(&self) -> OffsetDateTime {
            self.base + (tokio::time::Instant::now() - self.start)
        }
    }

    /// Counts cache lookups by result.
    #[derive(Default)]
    pub(crate) struct CountingTelemetry {
        pub(crate) results: Mutex<Vec<CacheResult>>,
    }

    impl CountingTelemetry {
        pub(crate) fn count(&self, r: CacheResult) -> usize {
            self.results
                .lock()
                .unwrap()
                .iter()
                .filter(|x| **x == r)
                .count()
        }
    }

    impl Telemetry for CountingTelemetry {
        fn cache_lookup(&self, _cache: crate::ports::stores::CacheKind, result: CacheResult) {
            self.results.lock().unwrap().push(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::model::{Period, TenantId};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    struct Rig {
        cache: Arc<FakeCache>,
        lock: Arc<FakeLock>,
        clock: Arc<TokioClock>,
        telemetry: Arc<CountingTelemetry>,
    }

    impl Rig {
        fn new() -> Self {
            Self {
                cache: Arc::default(),
                lock: Arc::default(),
                clock: Arc::new(TokioClock::new()),
                telemetry: Arc::default(),
            }
        }
        /// Another instance: same stores, its own single flight.
        fn instance(&self) -> CacheAside<u64> {
            CacheAside::new(
                self.cache.clone(),
                self.lock.clone(),
                self.clock.clone(),
                self.telemetry.clone(),
                CacheAsideConfig::new(Duration::from_secs(600)),
            )
        }
    }

    fn key(tenant: TenantId) -> CacheKey {
        CacheKey::Metrics {
            tenant,
            period: Period::Today,
        }
    }

    /// A source that takes `delay`, counts its calls and answers `value` (or fails).
    type Source = Arc<dyn Fn() -> Fetch<u64> + Send + Sync>;

    fn source(
        calls: Arc<AtomicUsize>,
        delay: Duration,
        value: u64,
        fail: Arc<AtomicBool>,
    ) -> Source {
        Arc::new(move || {
            let calls = calls.clone();
            let fail = fail.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                if fail.load(Ordering::SeqCst) {
                    Err(DownstreamFailure::Unavailable { status: Some(502) })
                } else {
                    Ok(value)
                }
            }
            .boxed()
        })
    }

    #[test]
    fn key_and_lock_names_follow_the_spec_patterns() {
        let t: TenantId = "6f1c2a7e-0000-4000-8000-000000000001".parse().unwrap();
        assert_eq!(
            lock_name(&key(t)),
            "fetch:metrics:6f1c2a7e-0000-4000-8000-000000000001:today"
        );
        let k = CacheKey::Conversations {
            tenant: t,
            page: 2,
            limit: 20,
            status: "all",
        };
        assert_eq!(
            key_name(&k),
            "conversations:6f1c2a7e-0000-4000-8000-000000000001:2:20:all"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_instances_with_many_concurrent_misses_call_the_source_once() {
        let rig = Rig::new();
        let (a, b) = (rig.instance(), rig.instance());
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = source(calls.clone(), Duration::from_millis(100), 7, Arc::default());
        let tenant = TenantId::new_random();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let view = if i % 2 == 0 { a.clone() } else { b.clone() };
            let fetch = fetch.clone();
            tasks.push(tokio::spawn(
                async move { view.get(key(tenant), &*fetch).await },
            ));
        }
        for t in tasks {
            let got = t.await.unwrap().unwrap();
            assert_eq!(
                got,
                Cached {
                    value: 7,
                    stale: false
                }
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(rig.lock.held.lock().unwrap().is_empty(), "lock released");
        // A later request is a plain hit.
        a.get(key(tenant), &*fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(rig.telemetry.count(CacheResult::Hit) >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_the_value_another_instance_writes_without_calling() {
        let rig = Rig::new();
        let view = rig.instance();
        let tenant = TenantId::new_random();
        // "Another instance" holds the fetch lock and writes the cache 120 ms later.
        rig.lock
            .held
            .lock()
            .unwrap()
            .insert(lock_name(&key(tenant)), "other".into());
        let (cache, clock) = (rig.cache.clone(), rig.clock.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(120)).await;
            let entry = CacheEntry {
                value: "42".into(),
                stored_at: clock.now(),
                generation: 0,
            };
            cache
                .put(&key(tenant), &entry, Duration::from_secs(60))
                .await
                .unwrap();
        });
        let calls = Arc::new(AtomicUsize::new(0));
        let got = view
            .get(
                key(tenant),
                &*source(calls.clone(), Duration::ZERO, 1, Arc::default()),
            )
            .await
            .unwrap();
        assert_eq!(
            got,
            Cached {
                value: 42,
                stale: false
            }
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_fetches_itself_when_the_holder_never_writes() {
        let rig = Rig::new();
        let view = rig.instance();
        let tenant = TenantId::new_random();
        rig.lock
            .held
            .lock()
            .unwrap()
            .insert(lock_name(&key(tenant)), "crashed".into());
        let calls = Arc::new(AtomicUsize::new(0));
        let started = tokio::time::Instant::now();
        let got = view
            .get(
                key(tenant),
                &*source(calls.clone(), Duration::ZERO, 9, Arc::default()),
            )
            .await
            .unwrap();
        assert_eq!(got.value, 9);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_millis(400),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cache_outage_is_a_miss_but_the_source_still_sees_one_call() {
        let rig = Rig::new();
        rig.cache.down.store(true, Ordering::SeqCst);
        rig.lock.down.store(true, Ordering::SeqCst);
        let view = rig.instance();
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = source(calls.clone(), Duration::from_millis(50), 3, Arc::default());
        let tenant = TenantId::new_random();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (view, fetch) = (view.clone(), fetch.clone());
                tokio::spawn(async move { view.get(key(tenant), &*fetch).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().value, 3);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_caller_that_started_the_fetch_does_not_cancel_it() {
        let rig = Rig::new();
        let view = rig.instance();
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = source(calls.clone(), Duration::from_millis(100), 5, Arc::default());
        let tenant = TenantId::new_random();
        let leader = {
            let (view, fetch) = (view.clone(), fetch.clone());
            tokio::spawn(async move { view.get(key(tenant), &*fetch).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let follower = {
            let (view, fetch) = (view.clone(), fetch.clone());
            tokio::spawn(async move { view.get(key(tenant), &*fetch).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        leader.abort();
        assert_eq!(follower.await.unwrap().unwrap().value, 5);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(rig.cache.entries.lock().unwrap().contains_key(&key(tenant)));
        assert!(rig.lock.held.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_source_failing_serves_the_last_value_as_stale_or_nothing() {
        let rig = Rig::new();
        let view = rig.instance();
        let calls = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let fetch = source(calls.clone(), Duration::ZERO, 11, fail.clone());
        let (known, unknown) = (TenantId::new_random(), TenantId::new_random());
        view.get(key(known), &*fetch).await.unwrap();

        tokio::time::advance(Duration::from_secs(601)).await;
        fail.store(true, Ordering::SeqCst);
        let got = view.get(key(known), &*fetch).await.unwrap();
        assert_eq!(
            got,
            Cached {
                value: 11,
                stale: true
            }
        );
        assert_eq!(rig.telemetry.count(CacheResult::Stale), 1);

        let err = view.get(key(unknown), &*fetch).await.unwrap_err();
        assert!(matches!(err, CacheAsideError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_invalidated_entry_is_fetched_again() {
        let rig = Rig::new();
        let view = rig.instance();
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = source(calls.clone(), Duration::ZERO, 1, Arc::default());
        let tenant = TenantId::new_random();
        view.get(key(tenant), &*fetch).await.unwrap();
        view.get(key(tenant), &*fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        rig.cache
            .invalidate(tenant, crate::ports::stores::CacheKind::Metrics)
            .await
            .unwrap();
        view.get(key(tenant), &*fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        view.get(key(tenant), &*fetch).await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the new entry carries the new generation"
        );
    }
}
