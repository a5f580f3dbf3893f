//! A map whose entries expire, on the tokio clock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;
use tokio::time::Instant;

/// The smallest size at which a sweep of expired entries runs.
pub(crate) const MIN_PURGE_LEN: usize = 1024;

/// `now + ttl`, saturating far in the future instead of overflowing.
pub(crate) fn deadline(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// A `HashMap` of values with deadlines. Expired entries are invisible to every read and are
/// swept on insert once the map has doubled since the previous sweep (amortised O(1)).
#[derive(Debug)]
pub(crate) struct TtlMap<K, V> {
    map: HashMap<K, (V, Instant)>,
    /// The size at which the next insert sweeps expired entries.
    purge_at: usize,
}

impl<K: Eq + Hash, V> Default for TtlMap<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            purge_at: MIN_PURGE_LEN,
        }
    }
}

impl<K: Eq + Hash, V> TtlMap<K, V> {
    /// The live value under `key`.
    pub(crate) fn get<Q>(&self, key: &Q, now: Instant) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .get(key)
            .filter(|(_, at)| *at > now)
            .map(|(v, _)| v)
    }

    /// The live value under `key`, mutably (its deadline is left alone).
    pub(crate) fn get_mut<Q>(&mut self, key: &Q, now: Instant) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .get_mut(key)
            .filter(|(_, at)| *at > now)
            .map(|(v, _)| v)
    }

    /// Stores `value` until `expires_at`, replacing any previous value.
    pub(crate) fn insert(&mut self, key: K, value: V, expires_at: Instant, now: Instant) {
        self.purge_if_due(now, |_, _| {});
        self.map.insert(key, (value, expires_at));
    }

    /// Removes `key`; returns the value if it was live.
    pub(crate) fn remove<Q>(&mut self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .remove(key)
            .filter(|(_, at)| *at > now)
            .map(|(v, _)| v)
    }

    /// Sweeps expired entries if the map has grown enough since the last sweep, handing each
    /// removed entry to `on_expired` (for secondary indexes).
    pub(crate) fn purge_if_due(&mut self, now: Instant, mut on_expired: impl FnMut(K, V)) {
        if self.map.len() < self.purge_at {
            return;
        }
        for (k, (v, _)) in self.map.extract_if(|_, (_, at)| *at <= now) {
            on_expired(k, v);
        }
        self.purge_at = (self.map.len() * 2).max(MIN_PURGE_LEN);
    }

    /// Entries held, live or not yet swept.
    #[cfg(test)]
    pub(crate) fn raw_len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_invisible_and_swept_when_the_map_grows() {
        let mut m = TtlMap::default();
        let now = Instant::now();
        for i in 0..MIN_PURGE_LEN {
            m.insert(i, i, now + Duration::from_secs(1), now);
        }
        assert_eq!(m.get(&1, now), Some(&1));
        tokio::time::advance(Duration::from_secs(1)).await;
        let later = Instant::now();
        assert_eq!(m.get(&1, later), None);
        m.insert(usize::MAX, 0, later + Duration::from_secs(1), later);
        assert_eq!(m.raw_len(), 1);
        assert_eq!(m.remove(&usize::MAX, later), Some(0));
    }
}
