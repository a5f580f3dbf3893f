//! Metrics and conversation caches with generation-based invalidation.

use crate::lock;
use crate::ttl::{TtlMap, deadline};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::TenantId;
use portal_domain::ports::stores::{Cache, CacheEntry, CacheKey, CacheKind, CacheLookup};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Inner {
    entries: TtlMap<CacheKey, CacheEntry>,
    /// Current generation per (tenant, kind); absent means 0. Never expires (one integer per
    /// tenant and kind), like the Redis generation counters.
    generations: HashMap<(TenantId, CacheKind), u64>,
}

/// [`Cache`] in memory.
#[derive(Debug, Default)]
pub struct MemoryCache {
    inner: Mutex<Inner>,
}

impl MemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &CacheKey) -> Result<CacheLookup, StoreError> {
        let now = Instant::now();
        let inner = lock(&self.inner);
        Ok(CacheLookup {
            entry: inner.entries.get(key, now).cloned(),
            generation: inner
                .generations
                .get(&(key.tenant(), key.kind()))
                .copied()
                .unwrap_or(0),
        })
    }

    async fn put(
        &self,
        key: &CacheKey,
        entry: &CacheEntry,
        retain: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        lock(&self.inner)
            .entries
            .insert(key.clone(), entry.clone(), deadline(now, retain), now);
        Ok(())
    }

    async fn invalidate(&self, tenant: TenantId, kind: CacheKind) -> Result<u64, StoreError> {
        let mut inner = lock(&self.inner);
        let generation = inner.generations.entry((tenant, kind)).or_insert(0);
        *generation += 1;
        Ok(*generation)
    }
}
