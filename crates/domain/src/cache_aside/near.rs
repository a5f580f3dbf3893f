//! The near cache: fresh values kept in the instance for at most `near_for`, so a hot key
//! costs no store round trip (and no decoding) on most reads.
//!
//! Correctness: only fresh values are kept, never longer than their freshness; this
//! instance's invalidations (refresh, bus events: every instance applies every event) drop
//! them at once, and a read that raced an invalidation does not keep what it read. What is
//! not seen here is another instance's manual refresh: this instance serves its near value
//! for at most `near_for` after it (the bound documented in docs/performance.md).

use crate::model::TenantId;
use crate::ports::stores::{CacheKey, CacheKind};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// At this many entries, a new one first drops the expired ones (and all, if none expired).
const MAX_ENTRIES: usize = 4096;

/// Something holding values of a tenant's views, which an invalidation must drop.
pub(crate) trait Forget: Send + Sync {
    /// Drops what is kept of `tenant`'s `kind` view.
    fn forget(&self, tenant: TenantId, kind: CacheKind);
}

/// The values of one cache-aside view.
pub(super) struct Near<T> {
    near_for: Duration,
    inner: Mutex<Entries<T>>,
}

struct Entries<T> {
    /// Value, the instant it stops being served, and the end of its freshness (wall clock:
    /// the view's clock, which tests move on their own).
    by_key: HashMap<CacheKey, (T, Instant, OffsetDateTime)>,
    /// Bumped by every invalidation: a read started before one must not keep its value.
    epoch: u64,
}

impl<T> Near<T> {
    /// Keeps values for `near_for` (zero: keeps nothing).
    pub(super) fn new(near_for: Duration) -> Self {
        Self {
            near_for,
            inner: Mutex::new(Entries {
                by_key: HashMap::new(),
                epoch: 0,
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Clone> Near<T> {
    /// The kept value of `key` while within its time and still fresh at `now`; otherwise
    /// the invalidation epoch, to pass to [`Self::keep`] after reading the store.
    pub(super) fn get(&self, key: &CacheKey, now: OffsetDateTime) -> Result<T, u64> {
        let entries = self.entries();
        match entries.by_key.get(key) {
            Some((value, until, fresh_until)) if Instant::now() < *until && now < *fresh_until => {
                Ok(value.clone())
            }
            _ => Err(entries.epoch),
        }
    }

    /// Keeps `value` of `key` (fresh until `fresh_until`) for `near_for`, unless an
    /// invalidation happened since `epoch` was read.
    pub(super) fn keep(&self, key: &CacheKey, value: &T, fresh_until: OffsetDateTime, epoch: u64) {
        if self.near_for.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.epoch != epoch {
            return;
        }
        if entries.by_key.len() >= MAX_ENTRIES && !entries.by_key.contains_key(key) {
            entries.by_key.retain(|_, (_, until, _)| *until > now);
            if entries.by_key.len() >= MAX_ENTRIES {
                entries.by_key.clear();
            }
        }
        let until = now + self.near_for;
        entries
            .by_key
            .insert(key.clone(), (value.clone(), until, fresh_until));
    }
}

impl<T: Send> Forget for Near<T> {
    fn forget(&self, tenant: TenantId, kind: CacheKind) {
        let mut entries = self.entries();
        entries.epoch += 1;
        entries
            .by_key
            .retain(|k, _| k.tenant() != tenant || k.kind() != kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Period;

    fn key(tenant: TenantId) -> CacheKey {
        CacheKey::Metrics {
            tenant,
            period: Period::Today,
        }
    }

    const T0: OffsetDateTime = time::macros::datetime!(2026-11-29 08:00 UTC);
    const FRESH_UNTIL: OffsetDateTime = time::macros::datetime!(2026-11-29 08:10 UTC);

    #[tokio::test(start_paused = true)]
    async fn a_read_that_raced_an_invalidation_keeps_nothing() {
        let near = Near::new(Duration::from_secs(1));
        let tenant = TenantId::new_random();
        let epoch = near.get(&key(tenant), T0).expect_err("empty");
        // The store read is in flight when the invalidation lands.
        near.forget(tenant, CacheKind::Metrics);
        near.keep(&key(tenant), &1u8, FRESH_UNTIL, epoch);
        assert!(near.get(&key(tenant), T0).is_err());
        let epoch = near.get(&key(tenant), T0).expect_err("empty");
        near.keep(&key(tenant), &2u8, FRESH_UNTIL, epoch);
        assert_eq!(near.get(&key(tenant), T0), Ok(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_is_never_served_past_near_for_or_its_freshness_nor_when_disabled() {
        let near = Near::new(Duration::from_secs(1));
        let t = TenantId::new_random();
        near.keep(&key(t), &1u8, FRESH_UNTIL, 0);
        assert!(near.get(&key(t), FRESH_UNTIL).is_err(), "no longer fresh");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(near.get(&key(t), T0).is_err(), "near_for over");
        let off = Near::new(Duration::ZERO);
        off.keep(&key(t), &1u8, FRESH_UNTIL, 0);
        assert!(off.get(&key(t), T0).is_err());
    }
}
