//! The fetch, the cache write, and the stale fallback: when the source fails (or its
//! circuit is open), the last known value is served marked stale; with none, the read is
//! [`CacheAsideError::Unavailable`].

use super::single_flight::FlightResult;
use super::{CacheAsideError, Cached, Fetch, Inner};
use crate::ports::stores::{CacheEntry, CacheKey, CacheLookup};
use crate::ports::system::CacheResult;
use serde::Serialize;
use serde::de::DeserializeOwned;

impl<T> Inner<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    pub(super) async fn fetch_and_store(
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
}
