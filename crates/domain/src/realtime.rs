//! Real-time fan-out (spec §10, decisions §7): one bus subscription per instance, dispatched to
//! the local sockets of the event's tenant only.
//!
//! Each socket registers with the [`Hub`] and gets a bounded queue of frames. An event is
//! serialised **once** into a shared `Arc<str>` frame and offered to every socket of its tenant
//! with `try_send`: a socket whose queue is full is a slow consumer and is told to close (1013)
//! instead of letting memory grow. A session revocation tells that session's sockets to close
//! with `session_expired`. The WebSocket glue lives in `portal-api`; this module knows no HTTP.

use crate::model::{BusEvent, SessionKey, TenantEvent, TenantId};
use futures::{Stream, StreamExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{Notify, mpsc};

/// Why the hub wants a socket closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The socket's queue overflowed (close code 1013, "try again later").
    SlowConsumer,
    /// The session ended (logout or expiry): send `session_expired`, then close.
    SessionEnded,
    /// The instance is shutting down (close code 1001, "going away").
    Shutdown,
}

impl CloseReason {
    fn code(self) -> u8 {
        match self {
            CloseReason::SlowConsumer => 1,
            CloseReason::SessionEnded => 2,
            CloseReason::Shutdown => 3,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(CloseReason::SlowConsumer),
            2 => Some(CloseReason::SessionEnded),
            3 => Some(CloseReason::Shutdown),
            _ => None,
        }
    }
}

/// Tells one socket task to close, and why.
#[derive(Debug, Default)]
pub struct CloseSignal {
    reason: AtomicU8,
    notify: Notify,
}

impl CloseSignal {
    /// Asks the socket to close; the first reason wins.
    pub fn close(&self, reason: CloseReason) {
        if self
            .reason
            .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }
    /// The reason, once closing was asked for.
    pub fn reason(&self) -> Option<CloseReason> {
        CloseReason::from_code(self.reason.load(Ordering::Acquire))
    }
    /// Resolves when closing is asked for (immediately if it already was).
    pub async fn closed(&self) -> CloseReason {
        loop {
            let notified = self.notify.notified();
            if let Some(r) = self.reason() {
                return r;
            }
            notified.await;
        }
    }
}

struct Conn {
    session: SessionKey,
    frames: mpsc::Sender<Arc<str>>,
    signal: Arc<CloseSignal>,
}

#[derive(Default)]
struct Registry {
    by_tenant: HashMap<TenantId, HashMap<u64, Conn>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Sockets currently registered.
    pub connections: AtomicU64,
    /// Sockets closed for being too slow.
    pub slow_consumers_dropped: AtomicU64,
    /// Frames handed to socket queues.
    pub(crate) frames_queued: AtomicU64,
}

/// The instance's registry of sockets by tenant.
pub struct Hub {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    queue_capacity: usize,
    stats: HubStats,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("queue_capacity", &self.queue_capacity)
            .finish_non_exhaustive()
    }
}

/// A registered socket: its frame queue and close signal. Unregisters on drop.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    tenant: TenantId,
    id: u64,
    /// Frames to write to the socket, in order.
    pub frames: mpsc::Receiver<Arc<str>>,
    /// Set when the hub wants the socket closed.
    pub signal: Arc<CloseSignal>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unregister(self.tenant, self.id);
    }
}

/// The JSON text frame of a tenant event (`{"event": ..., "data": {...}}`, spec §10.2 fields).
pub(crate) fn event_frame(event: &TenantEvent) -> String {
    let value = match event {
        TenantEvent::Message { update, .. } => json!({
            "event": "message_update",
            "data": {
                "type": update.direction,
                "conversation_id": update.conversation_id,
                "message_id": update.message_id,
                "text": update.text,
                "status": update.status,
                "timestamp": update.timestamp.format(&time::format_description::well_known::Rfc3339).ok(),
            }
        }),
        TenantEvent::Status { update, .. } => json!({
            "event": "status_update",
            "data": {
                "message_id": update.message_id,
                "status": update.status,
                "timestamp": update.timestamp.format(&time::format_description::well_known::Rfc3339).ok(),
            }
        }),
    };
    value.to_string()
}

impl Hub {
    /// A hub whose sockets each queue at most `queue_capacity` frames.
    pub fn new(queue_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            registry: RwLock::new(Registry::default()),
            next_id: AtomicU64::new(1),
            queue_capacity: queue_capacity.max(1),
            stats: HubStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a socket of `tenant` opened by the session `session`.
    pub fn register(self: &Arc<Self>, tenant: TenantId, session: SessionKey) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let signal = Arc::new(CloseSignal::default());
        self.write().by_tenant.entry(tenant).or_default().insert(
            id,
            Conn {
                session,
                frames: tx,
                signal: signal.clone(),
            },
        );
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        Subscription {
            hub: self.clone(),
            tenant,
            id,
            frames: rx,
            signal,
        }
    }

    fn unregister(&self, tenant: TenantId, id: u64) {
        let mut reg = self.write();
        if let Some(conns) = reg.by_tenant.get_mut(&tenant) {
            if conns.remove(&id).is_some() {
                self.stats.connections.fetch_sub(1, Ordering::Relaxed);
            }
            if conns.is_empty() {
                reg.by_tenant.remove(&tenant);
            }
        }
    }

    /// Number of sockets of a tenant on this instance.
    pub fn connections_of(&self, tenant: TenantId) -> usize {
        self.read().by_tenant.get(&tenant).map_or(0, HashMap::len)
    }

    /// Delivers one bus event to the local sockets it concerns; returns how many got it.
    pub fn dispatch(&self, event: &BusEvent) -> usize {
        match event {
            BusEvent::Tenant(e) => self.fan_out(e.tenant_id(), Arc::from(event_frame(e))),
            BusEvent::SessionRevoked(key) => {
                let reg = self.read();
                let mut n = 0;
                for conn in reg.by_tenant.values().flat_map(HashMap::values) {
                    if &conn.session == key {
                        conn.signal.close(CloseReason::SessionEnded);
                        n += 1;
                    }
                }
                n
            }
        }
    }

    /// Offers a frame to every socket of `tenant`.
    pub(crate) fn fan_out(&self, tenant: TenantId, frame: Arc<str>) -> usize {
        let reg = self.read();
        let Some(conns) = reg.by_tenant.get(&tenant) else {
            return 0;
        };
        let mut delivered = 0;
        for conn in conns.values() {
            match conn.frames.try_send(frame.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if conn.signal.reason().is_none() {
                        self.stats
                            .slow_consumers_dropped
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(tenant_id = %tenant, "slow WebSocket consumer disconnected");
                    }
                    conn.signal.close(CloseReason::SlowConsumer);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        self.stats
            .frames_queued
            .fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    /// Tells every socket to close (graceful shutdown).
    pub fn close_all(&self, reason: CloseReason) {
        for conn in self.read().by_tenant.values().flat_map(HashMap::values) {
            conn.signal.close(reason);
        }
    }

    /// Dispatches the instance's bus subscription until it ends.
    pub async fn run(self: Arc<Self>, mut events: impl Stream<Item = BusEvent> + Unpin) {
        while let Some(event) = events.next().await {
            self.dispatch(&event);
        }
        tracing::warn!("event bus subscription ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MessageId, MessageStatus, StatusUpdate};

    fn status_event(tenant: TenantId, id: &str) -> BusEvent {
        BusEvent::Tenant(TenantEvent::Status {
            tenant_id: tenant,
            update: StatusUpdate {
                message_id: MessageId::parse(id).unwrap(),
                status: MessageStatus::Delivered,
                timestamp: time::macros::datetime!(2026-02-12 08:30 UTC),
                conversation_id: None,
            },
        })
    }

    #[tokio::test]
    async fn events_reach_only_their_tenants_sockets() {
        let hub = Hub::new(8);
        let (a, b) = (TenantId::new_random(), TenantId::new_random());
        let mut sa = hub.register(a, SessionKey::from_hex("sa"));
        let mut sb = hub.register(b, SessionKey::from_hex("sb"));
        assert_eq!(hub.dispatch(&status_event(a, "m1")), 1);
        let frame = sa.frames.recv().await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(v["event"], "status_update");
        assert_eq!(v["data"]["message_id"], "m1");
        assert_eq!(v["data"]["status"], "delivered");
        assert!(
            sb.frames.try_recv().is_err(),
            "tenant B must not see tenant A's event"
        );
    }

    #[tokio::test]
    async fn a_full_queue_marks_the_socket_slow_instead_of_growing() {
        let hub = Hub::new(2);
        let t = TenantId::new_random();
        let s = hub.register(t, SessionKey::from_hex("s"));
        for i in 0..5 {
            hub.dispatch(&status_event(t, &format!("m{i}")));
        }
        assert_eq!(s.signal.reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(
            hub.stats().slow_consumers_dropped.load(Ordering::Relaxed),
            1
        );
        assert_eq!(s.signal.closed().await, CloseReason::SlowConsumer);
    }

    #[tokio::test]
    async fn revocation_closes_only_that_sessions_sockets() {
        let hub = Hub::new(4);
        let t = TenantId::new_random();
        let s1 = hub.register(t, SessionKey::from_hex("one"));
        let s2 = hub.register(t, SessionKey::from_hex("two"));
        assert_eq!(
            hub.dispatch(&BusEvent::SessionRevoked(SessionKey::from_hex("one"))),
            1
        );
        assert_eq!(s1.signal.reason(), Some(CloseReason::SessionEnded));
        assert_eq!(s2.signal.reason(), None);
    }

    #[tokio::test]
    async fn dropping_a_subscription_unregisters_it() {
        let hub = Hub::new(4);
        let t = TenantId::new_random();
        let s = hub.register(t, SessionKey::from_hex("x"));
        assert_eq!(hub.connections_of(t), 1);
        drop(s);
        assert_eq!(hub.connections_of(t), 0);
        assert_eq!(hub.stats().connections.load(Ordering::Relaxed), 0);
    }
}
