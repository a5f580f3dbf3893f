//! Single-use tokens.

use crate::lock;
use crate::ttl::{TtlMap, deadline};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{OneTimePurpose, OneTimeStore};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// [`OneTimeStore`] in memory: `take` removes under the lock, so it succeeds at most once.
#[derive(Debug, Default)]
pub struct MemoryOneTimeStore {
    /// (purpose, token digest) → payload.
    inner: Mutex<TtlMap<(OneTimePurpose, String), String>>,
}

impl MemoryOneTimeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl OneTimeStore for MemoryOneTimeStore {
    async fn put(
        &self,
        purpose: OneTimePurpose,
        digest: &str,
        payload: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        lock(&self.inner).insert(
            (purpose, digest.to_owned()),
            payload.to_owned(),
            deadline(now, ttl),
            now,
        );
        Ok(())
    }

    async fn take(
        &self,
        purpose: OneTimePurpose,
        digest: &str,
    ) -> Result<Option<String>, StoreError> {
        let now = Instant::now();
        Ok(lock(&self.inner).remove(&(purpose, digest.to_owned()), now))
    }
}
