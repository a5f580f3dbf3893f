//! Real-time fan-out (spec §10, decisions §7): one bus subscription per instance, each tenant
//! event recorded once in the tenant's history and dispatched to the local sockets of its
//! tenant only, with what a reconnecting socket needs to recover, and the registry of live
//! sockets across instances (presence, connection caps).
//!
//! Each socket registers with the [`Hub`] and gets a bounded queue of events. An event is
//! serialised **once** per audience ([`LiveEvent`]: whole, or with the customer number masked
//! for viewers) and offered to every socket of its tenant with `try_send`: a socket whose
//! queue is full is a slow consumer and is told to close (1013) instead of letting memory
//! grow. A session revocation tells that session's sockets to close with `session_expired`.
//! The WebSocket glue lives in `portal-api`; this module knows no HTTP.
//!
//! # Layout
//! - `frame`: [`LiveEvent`], an event with its ID and its frames.
//! - `sequence`: the [`EventKey`](crate::ports::realtime::EventKey) of an arriving event, the
//!   same on every instance, so the history records it once.
//! - `replay`: [`Replay`], recovering the events after a position, one history read per
//!   position per instance (single flight, then kept up to date).
//! - `signal`: [`CloseSignal`] and [`CloseReason`], telling one socket task to close.
//! - `presence`: the registry of live sockets across instances (admission under the caps,
//!   presence, the periodic refresh).
//! - here: the [`Hub`], its sockets ([`Permit`], [`Subscription`]) and the loop that records
//!   and dispatches the bus's events ([`Hub::run`]).

mod frame;
mod presence;
mod replay;
mod sequence;
mod signal;

pub use frame::LiveEvent;
pub use replay::Replay;
pub use signal::{CloseReason, CloseSignal};

use crate::StoreError;
use crate::model::{BusEvent, EventId, SessionKey, TenantEvent, TenantId, UserId};
use crate::ports::realtime::{
    Admission, EventHistory, InstanceId, OwnerSockets, Presence, Retention, SocketCaps,
    SocketOwner, TenantPresence,
};
use futures::{FutureExt, Stream, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long an instance's registry entries live without a refresh: a crashed instance's
/// sockets disappear from presence (and stop counting against the caps) within this.
pub const PRESENCE_TTL: Duration = Duration::from_secs(60);
/// How often the instance refreshes its registry entries.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(20);
/// How long identical payloads count as repeats of one another, and an event key keeps its
/// ID in the history (every instance records an event within this of the first one).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(60);
/// Tenant events recorded concurrently (in order: the history gives IDs in arrival order).
const RECORD_PIPELINE: usize = 256;
/// After the history failed to record an event, events are delivered without an ID (and
/// recovery answers a gap) for this long before the history is tried again, so an outage
/// does not hold every event for a store deadline.
const HISTORY_RETRY: Duration = Duration::from_secs(1);

/// The hub's limits.
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    /// Events queued per socket before it counts as a slow consumer.
    pub queue_capacity: usize,
    /// How much history each tenant keeps (what a socket can recover).
    pub retention: Retention,
    /// Sockets per session and per user, across every instance.
    pub caps: SocketCaps,
    /// Sockets on this instance.
    pub max_sockets: usize,
}

/// The ports the hub uses.
#[derive(Clone)]
pub struct HubPorts {
    /// Each tenant's recent events.
    pub history: Arc<dyn EventHistory>,
    /// Live sockets across instances.
    pub presence: Arc<dyn Presence>,
    /// This instance, in the registry.
    pub instance: InstanceId,
}

impl std::fmt::Debug for HubPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubPorts")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

struct Conn {
    session: SessionKey,
    user: UserId,
    frames: mpsc::Sender<Arc<LiveEvent>>,
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

/// Why a socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The session holds its cap of sockets (across instances).
    Session(u32),
    /// The user holds its cap of sockets (across instances).
    User(u32),
    /// This instance holds its cap of sockets.
    Instance(usize),
}

/// The instance's registry of sockets by tenant, fed by the bus subscription.
pub struct Hub {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    settings: HubSettings,
    stats: HubStats,
    ports: HubPorts,
    replays: Arc<replay::Replays>,
    /// Sockets admitted on this instance (registered, or about to be).
    admitted: AtomicUsize,
    /// Until when recording is skipped after a failure.
    history_down_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("settings", &self.settings)
            .field("instance", &self.ports.instance)
            .finish_non_exhaustive()
    }
}

/// An admitted socket not yet registered: counted on this instance and in the registry.
/// Dropping it (the upgrade failed) uncounts it.
#[derive(Debug)]
pub struct Permit {
    hub: Arc<Hub>,
    owner: SocketOwner,
    /// Whether dropping the permit must uncount it (not once registered).
    armed: bool,
}

impl Permit {
    /// Registers the socket: live events of its tenant queue up from now on.
    pub fn register(mut self) -> Subscription {
        self.armed = false;
        self.hub.register_admitted(self.owner.clone())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.hub.admitted.fetch_sub(1, Ordering::AcqRel);
            self.hub.release(self.owner.clone());
        }
    }
}

/// A registered socket: its event queue and close signal. Unregisters (and uncounts) on drop.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    tenant: TenantId,
    id: u64,
    /// Events to write to the socket, in order.
    pub frames: mpsc::Receiver<Arc<LiveEvent>>,
    /// Set when the hub wants the socket closed.
    pub signal: Arc<CloseSignal>,
}

impl Subscription {
    /// The events of the tenant after `since` (the socket's missed events), or a gap.
    pub async fn replay(&self, since: EventId) -> Replay {
        self.hub
            .replays
            .replay(&self.hub.ports.history, self.tenant, since)
            .await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unregister(self.tenant, self.id);
    }
}

impl Hub {
    /// A hub with these limits over these ports.
    pub fn new(settings: HubSettings, ports: HubPorts) -> Arc<Self> {
        let settings = HubSettings {
            queue_capacity: settings.queue_capacity.max(1),
            ..settings
        };
        Arc::new(Self {
            registry: RwLock::new(Registry::default()),
            next_id: AtomicU64::new(1),
            replays: Arc::new(replay::Replays::new(settings.retention.max_events)),
            settings,
            stats: HubStats::default(),
            ports,
            admitted: AtomicUsize::new(0),
            history_down_until: Mutex::new(None),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// History reads made for recoveries on this instance.
    pub fn history_reads(&self) -> u64 {
        self.replays.reads.load(Ordering::Relaxed)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    fn register_admitted(self: &Arc<Self>, owner: SocketOwner) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.settings.queue_capacity);
        let signal = Arc::new(CloseSignal::default());
        let tenant = owner.tenant;
        self.write().by_tenant.entry(tenant).or_default().insert(
            id,
            Conn {
                session: owner.session,
                user: owner.user,
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
        let removed = {
            let mut reg = self.write();
            let Some(conns) = reg.by_tenant.get_mut(&tenant) else {
                return;
            };
            let removed = conns.remove(&id);
            if conns.is_empty() {
                reg.by_tenant.remove(&tenant);
            }
            removed
        };
        if let Some(conn) = removed {
            self.stats.connections.fetch_sub(1, Ordering::Relaxed);
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            self.release(SocketOwner {
                tenant,
                user: conn.user,
                session: conn.session,
            });
        }
    }

    /// Number of sockets of a tenant on this instance.
    pub fn connections_of(&self, tenant: TenantId) -> usize {
        self.read().by_tenant.get(&tenant).map_or(0, HashMap::len)
    }

    /// Delivers one event to the local sockets of its tenant (and to the tenant's recovery
    /// entries); returns how many sockets got it.
    pub fn deliver(&self, event: Arc<LiveEvent>) -> usize {
        let tenant = event.event().tenant_id();
        let delivered = self.fan_out(tenant, &event);
        if event.id().is_some() {
            self.replays.delivered(tenant, &event);
        }
        delivered
    }

    /// Tells the session's sockets to close with `session_expired`; returns how many.
    pub fn revoke(&self, key: &SessionKey) -> usize {
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

    /// Offers an event to every socket of `tenant`.
    fn fan_out(&self, tenant: TenantId, event: &Arc<LiveEvent>) -> usize {
        let reg = self.read();
        let Some(conns) = reg.by_tenant.get(&tenant) else {
            return 0;
        };
        let mut delivered = 0;
        for conn in conns.values() {
            match conn.frames.try_send(event.clone()) {
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

    /// Records one tenant event in its history; its ID, or `None` when the history could not
    /// record it (the instance then answers a gap for every earlier position of the tenant).
    async fn record(
        &self,
        key: crate::ports::realtime::EventKey,
        event: &TenantEvent,
    ) -> Option<EventId> {
        let tenant = key.tenant;
        let skipping = {
            let down = self
                .history_down_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            down.is_some_and(|until| Instant::now() < until)
        };
        if !skipping {
            match self
                .ports
                .history
                .append(&key, event, self.settings.retention)
                .await
            {
                Ok(id) => {
                    self.replays.recorded(tenant, id);
                    return Some(id);
                }
                Err(e) => {
                    tracing::warn!(tenant_id = %tenant, error = %e, "event history unavailable: events are delivered without an id until it answers");
                    *self
                        .history_down_until
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(Instant::now() + HISTORY_RETRY);
                }
            }
        }
        self.replays.hole(tenant);
        None
    }

    /// Records and dispatches the instance's bus subscription until it ends: each tenant event
    /// gets its ID from the history (several in flight, delivered in arrival order), then goes
    /// to the tenant's sockets; each revocation closes that session's sockets.
    pub async fn run(
        self: Arc<Self>,
        events: impl Stream<Item = BusEvent> + Send + Unpin + 'static,
    ) {
        enum Step {
            Deliver(Arc<LiveEvent>),
            Revoke(SessionKey),
        }
        let mut keys = sequence::EventKeys::new(self.settings.retention.dedup_window);
        let hub = self.clone();
        let mut steps = events
            .map(move |event| match event {
                BusEvent::Tenant(event) => {
                    let key = keys.key(&event);
                    let hub = hub.clone();
                    async move {
                        let id = hub.record(key, &event).await;
                        Step::Deliver(Arc::new(LiveEvent::new(id, event)))
                    }
                    .boxed()
                }
                BusEvent::SessionRevoked(key) => futures::future::ready(Step::Revoke(key)).boxed(),
            })
            .buffered(RECORD_PIPELINE);
        while let Some(step) = steps.next().await {
            match step {
                Step::Deliver(event) => {
                    self.deliver(event);
                }
                Step::Revoke(key) => {
                    self.revoke(&key);
                }
            }
        }
        tracing::warn!("event bus subscription ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MessageId, MessageStatus, StatusUpdate};
    use crate::ports::realtime::{MockEventHistory, MockPresence};

    fn status_event(tenant: TenantId, id: &str) -> Arc<LiveEvent> {
        Arc::new(LiveEvent::new(
            Some(EventId::new(1, 0)),
            TenantEvent::Status {
                tenant_id: tenant,
                update: StatusUpdate {
                    message_id: MessageId::parse(id).unwrap(),
                    status: MessageStatus::Delivered,
                    timestamp: time::macros::datetime!(2026-02-12 08:30 UTC),
                    conversation_id: None,
                },
            },
        ))
    }

    fn hub(queue_capacity: usize, max_sockets: usize) -> Arc<Hub> {
        let mut presence = MockPresence::new();
        presence
            .expect_admit()
            .returning(|_, _, _, _| Ok(Admission::Admitted));
        presence.expect_release().returning(|_, _| Ok(()));
        Hub::new(
            HubSettings {
                queue_capacity,
                retention: Retention {
                    max_events: 100,
                    max_age: Duration::from_secs(60),
                    dedup_window: Duration::from_secs(60),
                },
                caps: SocketCaps {
                    per_session: 5,
                    per_user: 20,
                },
                max_sockets,
            },
            HubPorts {
                history: Arc::new(MockEventHistory::new()),
                presence: Arc::new(presence),
                instance: InstanceId::from_random([1; 8]),
            },
        )
    }

    fn owner(tenant: TenantId, session: &str) -> SocketOwner {
        SocketOwner {
            tenant,
            user: UserId::parse("u1").unwrap(),
            session: SessionKey::from_hex(session),
        }
    }

    async fn open(hub: &Arc<Hub>, tenant: TenantId, session: &str) -> Subscription {
        hub.admit(owner(tenant, session)).await.unwrap().register()
    }

    #[tokio::test]
    async fn events_reach_only_their_tenants_sockets() {
        let hub = hub(8, 100);
        let (a, b) = (TenantId::new_random(), TenantId::new_random());
        let mut sa = open(&hub, a, "sa").await;
        let mut sb = open(&hub, b, "sb").await;
        assert_eq!(hub.deliver(status_event(a, "m1")), 1);
        let event = sa.frames.recv().await.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(event.frame(crate::model::Role::Agent)).unwrap();
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
        let hub = hub(2, 100);
        let t = TenantId::new_random();
        let s = open(&hub, t, "s").await;
        for i in 0..5 {
            hub.deliver(status_event(t, &format!("m{i}")));
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
        let hub = hub(4, 100);
        let t = TenantId::new_random();
        let s1 = open(&hub, t, "one").await;
        let s2 = open(&hub, t, "two").await;
        assert_eq!(hub.revoke(&SessionKey::from_hex("one")), 1);
        assert_eq!(s1.signal.reason(), Some(CloseReason::SessionEnded));
        assert_eq!(s2.signal.reason(), None);
    }

    #[tokio::test]
    async fn dropping_a_subscription_unregisters_it_and_frees_its_slot() {
        let hub = hub(4, 1);
        let t = TenantId::new_random();
        let s = open(&hub, t, "x").await;
        assert_eq!(hub.connections_of(t), 1);
        assert_eq!(
            hub.admit(owner(t, "y")).await.err(),
            Some(Refusal::Instance(1)),
            "the instance's cap counts registered sockets"
        );
        drop(s);
        assert_eq!(hub.connections_of(t), 0);
        assert_eq!(hub.stats().connections.load(Ordering::Relaxed), 0);
        let permit = hub.admit(owner(t, "y")).await.unwrap();
        assert!(
            hub.admit(owner(t, "z")).await.is_err(),
            "an unregistered permit holds its slot"
        );
        drop(permit);
        assert!(hub.admit(owner(t, "z")).await.is_ok());
    }
}
