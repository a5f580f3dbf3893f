//! The outbound queue, kept in memory.

use crate::lock;
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::OutboundMessage;
use portal_domain::ports::stores::OutboundQueue;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Messages kept before the oldest are dropped (the embedded default has no consumer).
const DEFAULT_RETAIN: usize = 10_000;

#[derive(Debug, Default)]
struct Inner {
    /// (entry ID, message), oldest first.
    entries: VecDeque<(String, OutboundMessage)>,
    /// Sequence number of the last entry, for Redis-stream-like IDs (`0-<seq>`).
    seq: u64,
}

/// [`OutboundQueue`] in memory: keeps the last 10,000 messages for inspection.
#[derive(Debug)]
pub struct MemoryOutboundQueue {
    inner: Mutex<Inner>,
    /// How many messages to keep.
    retain: usize,
}

impl Default for MemoryOutboundQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryOutboundQueue {
    /// An empty queue keeping the last 10,000 messages.
    pub fn new() -> Self {
        Self::with_retention(DEFAULT_RETAIN)
    }

    /// An empty queue keeping the last `retain` (at least 1) messages.
    pub fn with_retention(retain: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            retain: retain.max(1),
        }
    }

    /// The queued messages, oldest first.
    pub fn messages(&self) -> Vec<OutboundMessage> {
        lock(&self.inner)
            .entries
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Removes and returns every queued message, oldest first (a consumer's read).
    pub fn drain(&self) -> Vec<(String, OutboundMessage)> {
        lock(&self.inner).entries.drain(..).collect()
    }
}

#[async_trait]
impl OutboundQueue for MemoryOutboundQueue {
    async fn enqueue(&self, message: &OutboundMessage) -> Result<String, StoreError> {
        let mut inner = lock(&self.inner);
        inner.seq += 1;
        let id = format!("0-{}", inner.seq);
        if inner.entries.len() >= self.retain {
            inner.entries.pop_front();
            tracing::warn!(
                retain = self.retain,
                "in-memory outbound queue full; oldest message dropped"
            );
        }
        inner.entries.push_back((id.clone(), message.clone()));
        Ok(id)
    }
}
