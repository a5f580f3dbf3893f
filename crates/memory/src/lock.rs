//! Mutual-exclusion locks with expiry.

use crate::lock;
use crate::ttl::{TtlMap, deadline};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{Lock, LockToken};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// [`Lock`] in memory: name → the holder's random token.
#[derive(Debug, Default)]
pub struct MemoryLock {
    inner: Mutex<TtlMap<String, String>>,
}

impl MemoryLock {
    /// No lock held.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Lock for MemoryLock {
    async fn try_acquire(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        if inner.get(name, now).is_some() {
            return Ok(None);
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        inner.insert(name.to_owned(), token.clone(), deadline(now, ttl), now);
        Ok(Some(LockToken(token)))
    }

    async fn renew(
        &self,
        name: &str,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        if inner.get(name, now) != Some(&token.0) {
            return Ok(false);
        }
        inner.insert(name.to_owned(), token.0.clone(), deadline(now, ttl), now);
        Ok(true)
    }

    async fn release(&self, name: &str, token: &LockToken) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        if inner.get(name, now) == Some(&token.0) {
            inner.remove(name, now);
            Ok(true)
        } else {
            Ok(false)
        }
    }
}
