//! The event bus, inside one process.

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use portal_domain::StoreError;
use portal_domain::model::{BusEvent, SessionKey, TenantEvent};
use portal_domain::ports::stores::EventBus;
use tokio::sync::broadcast;

/// Events buffered per subscriber before the slowest one starts losing the oldest.
const DEFAULT_CAPACITY: usize = 4096;

/// [`EventBus`] over a `tokio::sync::broadcast` channel.
///
/// Publishing never waits for subscribers: a subscriber that falls more than the capacity
/// behind skips the events it missed (with a warning), as a Redis Pub/Sub client that
/// overflows its buffer would lose them.
#[derive(Debug)]
pub struct MemoryEventBus {
    tx: broadcast::Sender<BusEvent>,
}

impl Default for MemoryEventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEventBus {
    /// A bus buffering up to 4096 events per subscriber.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A bus buffering up to `capacity` (at least 1) events per subscriber.
    pub fn with_capacity(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    fn send(&self, event: BusEvent) {
        // An error only means there is no subscriber: nobody to deliver to.
        let _ = self.tx.send(event);
    }
}

#[async_trait]
impl EventBus for MemoryEventBus {
    async fn publish(&self, event: &TenantEvent) -> Result<(), StoreError> {
        self.send(BusEvent::Tenant(event.clone()));
        Ok(())
    }

    async fn publish_revocation(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.send(BusEvent::SessionRevoked(key.clone()));
        Ok(())
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>, StoreError> {
        let rx = self.tx.subscribe();
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "event bus subscriber lagged; events dropped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed())
    }
}
