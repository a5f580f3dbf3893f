//! Idempotency records.

use crate::lock;
use crate::ttl::{TtlMap, deadline};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{IdempotencyClaim, IdempotencyStore};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
enum Record {
    InProgress,
    Done(String),
}

/// [`IdempotencyStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore {
    inner: Mutex<TtlMap<String, Record>>,
}

impl MemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<IdempotencyClaim, StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        match inner.get(key, now) {
            Some(Record::InProgress) => Ok(IdempotencyClaim::InProgress),
            Some(Record::Done(result)) => Ok(IdempotencyClaim::Done(result.clone())),
            None => {
                inner.insert(key.to_owned(), Record::InProgress, deadline(now, ttl), now);
                Ok(IdempotencyClaim::Claimed)
            }
        }
    }

    async fn finish(&self, key: &str, result: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        lock(&self.inner).insert(
            key.to_owned(),
            Record::Done(result.to_owned()),
            deadline(now, ttl),
            now,
        );
        Ok(())
    }

    async fn abandon(&self, key: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        // Only a reservation is freed: a recorded result stays, so a late abandon cannot
        // reopen a finished operation.
        if matches!(inner.get(key, now), Some(Record::InProgress)) {
            inner.remove(key, now);
        }
        Ok(())
    }
}
