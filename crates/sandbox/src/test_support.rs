//! Test doubles shared by this crate's unit tests: the demo platform on the workspace's test
//! clock (`portal_memory::ManualClock`) and a recording event bus.

use crate::platform::Platform;
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use portal_domain::StoreError;
use portal_domain::model::{BusEvent, SessionKey, TenantEvent};
use portal_domain::ports::stores::EventBus;
use portal_memory::ManualClock;
use std::sync::{Arc, Mutex};

/// The test clock stopped mid-morning, so "today" has demo traffic.
pub(crate) fn demo_start() -> Arc<ManualClock> {
    ManualClock::at(time::macros::datetime!(2026-02-12 09:30 UTC))
}

/// The demo platform on a fixed clock.
pub(crate) fn platform_at(clock: Arc<ManualClock>) -> (Platform, Arc<ManualClock>) {
    (Platform::demo(clock.clone()), clock)
}

/// An event bus that records what is published and when (tokio time, so paused tests work).
#[derive(Debug, Default)]
pub(crate) struct RecordingBus(Mutex<Vec<(tokio::time::Instant, TenantEvent)>>);

impl RecordingBus {
    pub(crate) fn events(&self) -> Vec<(tokio::time::Instant, TenantEvent)> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, event: &TenantEvent) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), event.clone()));
        Ok(())
    }
    async fn publish_revocation(&self, _key: &SessionKey) -> Result<(), StoreError> {
        Ok(())
    }
    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>, StoreError> {
        Ok(futures::stream::empty().boxed())
    }
}
