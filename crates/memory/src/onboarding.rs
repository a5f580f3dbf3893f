//! Onboarding wizard state with optimistic concurrency.

use crate::lock;
use crate::ttl::{TtlMap, deadline};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::TenantId;
use portal_domain::onboarding::OnboardingState;
use portal_domain::ports::stores::{OnboardingStore, SaveOutcome, Versioned};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// [`OnboardingStore`] in memory: the version check and the write happen under one lock.
#[derive(Debug, Default)]
pub struct MemoryOnboardingStore {
    inner: Mutex<TtlMap<TenantId, Versioned<OnboardingState>>>,
}

impl MemoryOnboardingStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl OnboardingStore for MemoryOnboardingStore {
    async fn load(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Versioned<OnboardingState>>, StoreError> {
        let now = Instant::now();
        Ok(lock(&self.inner).get(&tenant, now).cloned())
    }

    async fn save(
        &self,
        tenant: TenantId,
        state: &OnboardingState,
        expected: Option<u64>,
        ttl: Duration,
    ) -> Result<SaveOutcome<OnboardingState>, StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let current = inner.get(&tenant, now);
        let version = match (current, expected) {
            (None, None) => 1,
            (Some(cur), Some(v)) if cur.version == v => v + 1,
            (cur, _) => return Ok(SaveOutcome::Conflict(cur.cloned())),
        };
        inner.insert(
            tenant,
            Versioned {
                version,
                value: state.clone(),
            },
            deadline(now, ttl),
            now,
        );
        Ok(SaveOutcome::Saved(version))
    }
}
