//! Single flight within one instance: concurrent misses of one key (and cache generation)
//! share one fetch, which runs as its own task so that no caller's cancellation cancels it.

use super::{CacheAside, CacheAsideError, Cached, Fetch};
use crate::ports::stores::{CacheKey, CacheLookup};
use crate::ports::system::CacheResult;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) type FlightResult<T> = Result<(Cached<T>, CacheResult), CacheAsideError>;
pub(super) type Flight<T> = Shared<BoxFuture<'static, FlightResult<T>>>;

/// In-flight fetches of one instance, by key and the generation they were started for (so a
/// caller arriving after an invalidation never joins a fetch of pre-invalidation data).
pub(super) struct Flights<T> {
    next_id: u64,
    by_key: HashMap<(CacheKey, u64), (u64, Flight<T>)>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            next_id: 0,
            by_key: HashMap::new(),
        }
    }
}

impl<T> CacheAside<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The flight of `key` at `lookup`'s generation: the one in progress, or a new one
    /// started with `fetch()`.
    pub(super) fn join_or_start(
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
