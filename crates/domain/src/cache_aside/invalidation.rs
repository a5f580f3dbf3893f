//! Making a tenant's cached views stale when its traffic changes them (spec §13.1): a
//! generation bump per tenant and kind (no `KEYS`), on refresh and on bus events, and the
//! instance's near caches of those views dropped.

use super::Forget;
use crate::error::StoreError;
use crate::model::{BusEvent, TenantEvent, TenantId};
use crate::ports::stores::{Cache, CacheKind};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::Arc;

/// Makes a tenant's cached views stale when its traffic changes them (spec §13.1).
#[derive(Clone)]
pub struct CacheInvalidation {
    cache: Arc<dyn Cache>,
    /// The near caches of this instance's views.
    near: Vec<Arc<dyn Forget>>,
}

impl std::fmt::Debug for CacheInvalidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheInvalidation").finish_non_exhaustive()
    }
}

impl CacheInvalidation {
    /// Over `cache`.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self {
            cache,
            near: Vec::new(),
        }
    }

    /// Also drops what `near` keeps of an invalidated view.
    pub(crate) fn with_near(mut self, near: Arc<dyn Forget>) -> Self {
        self.near.push(near);
        self
    }

    /// Invalidates every kind in `kinds` for `tenant`; tries all, returns the first error.
    pub async fn invalidate(
        &self,
        tenant: TenantId,
        kinds: &[CacheKind],
    ) -> Result<(), StoreError> {
        let mut first_error = None;
        for kind in kinds {
            if let Err(e) = self.cache.invalidate(tenant, *kind).await {
                tracing::warn!(tenant_id = %tenant, cache = kind.as_str(), error = %e, "cache invalidation failed");
                first_error.get_or_insert(e);
            }
            // After the bump: a read starting now sees the new generation, one that started
            // before keeps nothing (near's epoch).
            for near in &self.near {
                near.forget(tenant, *kind);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The caches an event makes stale: a status change moves the metrics and a
    /// conversation's last activity; a message changes the conversation list.
    pub(crate) fn kinds_for(event: &TenantEvent) -> &'static [CacheKind] {
        match event {
            TenantEvent::Status { .. } => &[CacheKind::Metrics, CacheKind::Conversations],
            TenantEvent::Message { .. } => &[CacheKind::Conversations],
        }
    }

    /// Applies one event. Failures are logged: the entries still expire with their TTL.
    pub(crate) async fn on_event(&self, event: &TenantEvent) {
        let _ = self
            .invalidate(event.tenant_id(), Self::kinds_for(event))
            .await;
    }

    /// Applies every tenant event of the instance's bus subscription until it ends.
    pub async fn run(&self, mut events: BoxStream<'static, BusEvent>) {
        while let Some(event) = events.next().await {
            if let BusEvent::Tenant(event) = event {
                self.on_event(&event).await;
            }
        }
        tracing::info!("event subscription ended; cache invalidation stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_aside::test_support::{FakeCache, message_event, status_event};

    #[tokio::test]
    async fn bus_events_invalidate_only_their_tenants_caches() {
        let cache = Arc::new(FakeCache::default());
        let invalidation = CacheInvalidation::new(cache.clone());
        let (t1, t2) = (TenantId::new_random(), TenantId::new_random());
        let events = futures::stream::iter(vec![
            BusEvent::Tenant(status_event(t1)),
            BusEvent::Tenant(message_event(t1)),
            BusEvent::SessionRevoked(crate::model::SessionKey::from_hex("ab".repeat(32))),
            BusEvent::Tenant(message_event(t2)),
        ])
        .boxed();
        invalidation.run(events).await;
        assert_eq!(cache.generation(t1, CacheKind::Metrics), 1);
        assert_eq!(cache.generation(t1, CacheKind::Conversations), 2);
        assert_eq!(cache.generation(t2, CacheKind::Metrics), 0);
        assert_eq!(cache.generation(t2, CacheKind::Conversations), 1);
    }
}
