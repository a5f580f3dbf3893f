//! `Cache`: entries under `metrics:{<tenant>}:<period>` / `conversations:{<tenant>}:...`, a
//! generation counter per tenant and kind under `cache_gen:{<tenant>}:<kind>`. Reads are one
//! `MGET` (same slot thanks to the tag); invalidation is one `INCR` (never `KEYS`/`SCAN`).
//!
//! Generation counters have no TTL: if one expired while older entries survived, those entries
//! would look newer than the reset counter and be served as fresh.

use crate::{RedisStores, error, millis};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::TenantId;
use portal_domain::ports::stores::{Cache, CacheEntry, CacheKey, CacheKind, CacheLookup};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEntry {
    value: String,
    #[serde(with = "time::serde::rfc3339")]
    stored_at: OffsetDateTime,
    generation: u64,
}

#[async_trait]
impl Cache for RedisStores {
    async fn get(&self, key: &CacheKey) -> Result<CacheLookup, StoreError> {
        let entry_key = self.keys().cache(key);
        let gen_key = self.keys().cache_generation(key.tenant(), key.kind());
        let (raw, generation): (Option<String>, Option<String>) = self
            .read("cache get", redis::cmd("MGET").arg(entry_key).arg(gen_key))
            .await?;
        let generation = match generation {
            Some(g) => g.parse().map_err(|_| error::corrupt("cache generation"))?,
            None => 0,
        };
        let entry = match raw {
            Some(raw) => {
                let stored: StoredEntry =
                    serde_json::from_str(&raw).map_err(|_| error::corrupt("cache entry"))?;
                Some(CacheEntry {
                    value: stored.value,
                    stored_at: stored.stored_at,
                    generation: stored.generation,
                })
            }
            None => None,
        };
        Ok(CacheLookup { entry, generation })
    }

    async fn put(
        &self,
        key: &CacheKey,
        entry: &CacheEntry,
        retain: Duration,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(&StoredEntry {
            value: entry.value.clone(),
            stored_at: entry.stored_at,
            generation: entry.generation,
        })
        .map_err(|_| StoreError::Corrupt("cache entry not encodable".into()))?;
        self.query::<()>(
            "cache put",
            redis::cmd("SET")
                .arg(self.keys().cache(key))
                .arg(json)
                .arg("PX")
                .arg(millis(retain)),
        )
        .await
    }

    async fn invalidate(&self, tenant: TenantId, kind: CacheKind) -> Result<u64, StoreError> {
        self.query(
            "cache invalidate",
            redis::cmd("INCR").arg(self.keys().cache_generation(tenant, kind)),
        )
        .await
    }
}
