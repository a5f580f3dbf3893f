//! Cache-aside against in-memory doubles, under tokio's paused clock.

use super::test_support::*;
use super::*;
use crate::model::{Period, TenantId};
use futures::FutureExt;
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
        self.instance_with(CacheAsideConfig::new(Duration::from_secs(600)))
    }

    fn instance_with(&self, config: CacheAsideConfig) -> CacheAside<u64> {
        CacheAside::new(
            self.cache.clone(),
            self.lock.clone(),
            self.clock.clone(),
            self.telemetry.clone(),
            config,
        )
    }

    /// An instance keeping fresh values in memory for 1 s.
    fn near_instance(&self) -> CacheAside<u64> {
        self.instance_with(CacheAsideConfig {
            near_for: NEAR_FOR,
            ..CacheAsideConfig::new(Duration::from_secs(600))
        })
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

fn source(calls: Arc<AtomicUsize>, delay: Duration, value: u64, fail: Arc<AtomicBool>) -> Source {
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
        lock_name(&key(t), 3),
        "fetch:metrics:6f1c2a7e-0000-4000-8000-000000000001:today:g3"
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
        .insert(lock_name(&key(tenant), 0), "other".into());
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
        .insert(lock_name(&key(tenant), 0), "crashed".into());
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

/// Events invalidate a tenant's caches often (every send, every status): a fetch for the new
/// generation starts at once, even while another instance still fetches the old one (it used
/// to wait the holder's whole 250 ms for a value of a generation the holder never writes).
#[tokio::test(start_paused = true)]
async fn a_fetch_after_an_invalidation_does_not_wait_for_the_old_generations_lock() {
    let rig = Rig::new();
    let view = rig.instance();
    let calls = Arc::new(AtomicUsize::new(0));
    let fetch = source(calls.clone(), Duration::ZERO, 2, Arc::default());
    let tenant = TenantId::new_random();
    // "Another instance" is fetching generation 0 (it holds that fetch's lock).
    rig.lock
        .held
        .lock()
        .unwrap()
        .insert(lock_name(&key(tenant), 0), "other".into());
    rig.cache
        .invalidate(tenant, crate::ports::stores::CacheKind::Metrics)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let got = view.get(key(tenant), &*fetch).await.unwrap();
    assert_eq!(got.value, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        started.elapsed() < CacheAsideConfig::new(Duration::from_secs(600)).poll_every,
        "waited {:?} for another generation's fetch",
        started.elapsed()
    );
    // The old generation's fetch keeps its lock; ours was released.
    let held = rig.lock.held.lock().unwrap();
    assert_eq!(held.len(), 1);
    assert!(held.contains_key(&lock_name(&key(tenant), 0)));
}

const NEAR_FOR: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_fresh_value_is_served_from_the_instance_for_near_for_then_read_again() {
    let rig = Rig::new();
    let view = rig.near_instance();
    let calls = Arc::new(AtomicUsize::new(0));
    let fetch = source(calls.clone(), Duration::ZERO, 7, Arc::default());
    let tenant = TenantId::new_random();
    view.get(key(tenant), &*fetch).await.unwrap(); // miss: fetched and stored
    view.get(key(tenant), &*fetch).await.unwrap(); // store hit: kept near
    // The store goes away: the near value still answers, without a store read.
    rig.cache.down.store(true, Ordering::SeqCst);
    tokio::time::advance(NEAR_FOR - Duration::from_millis(10)).await;
    let near = view.get(key(tenant), &*fetch).await.unwrap();
    assert_eq!((near.value, near.stale), (7, false));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Past near_for the store is read again (down: a miss, so the source is called).
    tokio::time::advance(Duration::from_millis(20)).await;
    view.get(key(tenant), &*fetch).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn this_instances_invalidation_drops_the_near_value_at_once() {
    let rig = Rig::new();
    let view = rig.near_instance();
    let invalidation = CacheInvalidation::new(rig.cache.clone()).with_near(view.near());
    let calls = Arc::new(AtomicUsize::new(0));
    let fetch = source(calls.clone(), Duration::ZERO, 1, Arc::default());
    let (tenant, other) = (TenantId::new_random(), TenantId::new_random());
    for t in [tenant, other] {
        view.get(key(t), &*fetch).await.unwrap();
        view.get(key(t), &*fetch).await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    invalidation
        .invalidate(tenant, &[crate::ports::stores::CacheKind::Metrics])
        .await
        .unwrap();
    view.get(key(tenant), &*fetch).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3, "fetched again at once");
    view.get(key(other), &*fetch).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "another tenant's value stays"
    );
}

#[tokio::test(start_paused = true)]
async fn another_instances_refresh_is_seen_within_near_for() {
    let rig = Rig::new();
    let view = rig.near_instance();
    let calls = Arc::new(AtomicUsize::new(0));
    let fetch = source(calls.clone(), Duration::ZERO, 1, Arc::default());
    let tenant = TenantId::new_random();
    view.get(key(tenant), &*fetch).await.unwrap();
    view.get(key(tenant), &*fetch).await.unwrap();
    // Another instance bumps the generation in the store: not seen here yet...
    rig.cache
        .invalidate(tenant, crate::ports::stores::CacheKind::Metrics)
        .await
        .unwrap();
    view.get(key(tenant), &*fetch).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // ...but at most near_for later.
    tokio::time::advance(NEAR_FOR).await;
    view.get(key(tenant), &*fetch).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
