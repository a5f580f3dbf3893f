//! One fetch per key across instances: the distributed lock `fetch:<cache key>`. The holder
//! fetches and writes the cache; the others poll the cache for a short while, then fetch
//! themselves. A lock store failure falls back on the in-process single flight.

use super::single_flight::FlightResult;
use super::{Cached, Fetch, Inner, key_name, lock_name};
use crate::ports::stores::{CacheKey, CacheLookup, LockToken};
use crate::ports::system::CacheResult;
use serde::Serialize;
use serde::de::DeserializeOwned;

impl<T> Inner<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// One flight: lock, (re)check, fetch, write, release; or wait for the holder.
    pub(super) async fn fill(
        &self,
        key: &CacheKey,
        lookup: CacheLookup,
        fetch: Fetch<T>,
    ) -> FlightResult<T> {
        let lock_name = lock_name(key, lookup.generation);
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

    pub(super) async fn try_lock(&self, name: &str) -> LockAttempt {
        match self.lock.try_acquire(name, self.config.lock_ttl).await {
            Ok(Some(token)) => LockAttempt::Held(token),
            Ok(None) => LockAttempt::Busy,
            Err(e) => {
                tracing::warn!(error = %e, "fetch lock unavailable; relying on the in-process single flight");
                LockAttempt::NoLock
            }
        }
    }

    pub(super) async fn release(&self, name: &str, attempt: &LockAttempt) {
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
pub(super) enum LockAttempt {
    /// We hold it.
    Held(LockToken),
    /// Another fetcher holds it.
    Busy,
    /// The lock store failed: proceed without it.
    NoLock,
}
