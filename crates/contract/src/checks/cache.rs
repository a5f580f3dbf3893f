use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL};
use crate::fixtures::cache_entry;
use crate::{Stores, Waiter};
use portal_domain::model::{Period, TenantId};
use portal_domain::ports::stores::{CacheKey, CacheKind};
use std::time::Duration;

fn metrics(tenant: TenantId) -> CacheKey {
    CacheKey::Metrics {
        tenant,
        period: Period::Today,
    }
}

fn conversations(tenant: TenantId) -> CacheKey {
    CacheKey::Conversations {
        tenant,
        page: 1,
        limit: 20,
        status: "active",
    }
}

/// `get` returns what `put` stored, with the current generation.
pub async fn cache_put_then_get_round_trips(s: &Stores, _w: &Waiter) {
    let key = conversations(TenantId::new_random());
    let empty = s.cache.get(&key).await.expect("get");
    assert_eq!(empty.entry, None);

    let entry = cache_entry("{\"data\":[1,2,3]}", empty.generation);
    s.cache.put(&key, &entry, LONG_TTL).await.expect("put");
    let hit = s.cache.get(&key).await.expect("get");
    assert_eq!(hit.entry, Some(entry));
    assert_eq!(
        hit.generation, empty.generation,
        "nothing invalidated in between"
    );

    let other_page = CacheKey::Conversations {
        tenant: key.tenant(),
        page: 2,
        limit: 20,
        status: "active",
    };
    assert_eq!(s.cache.get(&other_page).await.expect("get").entry, None);
}

/// `invalidate` bumps the tenant's generation of one kind: existing entries become stale
/// (still readable, older generation); other kinds and tenants are untouched.
pub async fn cache_invalidate_makes_entries_stale(s: &Stores, _w: &Waiter) {
    let (tenant, other_tenant) = (TenantId::new_random(), TenantId::new_random());
    let key = metrics(tenant);
    let g0 = s.cache.get(&key).await.expect("get").generation;
    let entry = cache_entry("{\"total\":7}", g0);
    s.cache.put(&key, &entry, LONG_TTL).await.expect("put");
    let conv_g0 = s
        .cache
        .get(&conversations(tenant))
        .await
        .expect("get")
        .generation;
    let other_g0 = s
        .cache
        .get(&metrics(other_tenant))
        .await
        .expect("get")
        .generation;

    let g1 = s
        .cache
        .invalidate(tenant, CacheKind::Metrics)
        .await
        .expect("invalidate");
    assert!(
        g1 > g0,
        "invalidate must raise the generation ({g0} -> {g1})"
    );
    let after = s.cache.get(&key).await.expect("get");
    assert_eq!(after.generation, g1);
    assert_eq!(
        after.entry,
        Some(entry),
        "the stale entry stays as last known good"
    );

    assert_eq!(
        s.cache
            .get(&conversations(tenant))
            .await
            .expect("get")
            .generation,
        conv_g0,
        "another kind is not invalidated"
    );
    assert_eq!(
        s.cache
            .get(&metrics(other_tenant))
            .await
            .expect("get")
            .generation,
        other_g0,
        "another tenant is not invalidated"
    );
    let g2 = s
        .cache
        .invalidate(tenant, CacheKind::Metrics)
        .await
        .expect("invalidate");
    assert!(g2 > g1);
}

/// An entry is kept for `retain`, then gone.
pub async fn cache_entries_expire_after_retain(s: &Stores, w: &Waiter) {
    let key = metrics(TenantId::new_random());
    let entry = cache_entry("{}", 0);
    s.cache.put(&key, &entry, SHORT_TTL).await.expect("put");
    w.wait(Duration::from_millis(100)).await;
    assert_eq!(s.cache.get(&key).await.expect("get").entry, Some(entry));
    w.wait(PAST_SHORT_TTL).await;
    assert_eq!(s.cache.get(&key).await.expect("get").entry, None);
}
