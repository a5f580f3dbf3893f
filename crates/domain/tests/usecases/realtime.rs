//! The real-time hub over the in-memory history and presence: IDs shared by instances,
//! recovery that costs one history read per position however many sockets ask, no gap and no
//! duplicate at the seam, and honest gaps.

use async_trait::async_trait;
use futures::StreamExt;
use portal_domain::StoreError;
use portal_domain::model::{
    BusEvent, EventId, MessageId, MessageStatus, SessionKey, StatusUpdate, TenantEvent, TenantId,
    UserId,
};
use portal_domain::ports::realtime::{
    EventHistory, EventKey, InstanceId, Retention, Since, SocketCaps, SocketOwner,
};
use portal_domain::realtime::{Hub, HubPorts, HubSettings, LiveEvent, Replay, Subscription};
use portal_memory::{MemoryEventHistory, MemoryPresence};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// The memory history, counting reads, optionally holding them until released, optionally
/// failing appends.
#[derive(Default)]
struct Observed {
    inner: MemoryEventHistory,
    reads: AtomicUsize,
    hold_reads: AtomicBool,
    released: Notify,
    fail_appends: AtomicBool,
}

#[async_trait]
impl EventHistory for Observed {
    async fn append(
        &self,
        key: &EventKey,
        event: &TenantEvent,
        retention: Retention,
    ) -> Result<EventId, StoreError> {
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("down".into()));
        }
        self.inner.append(key, event, retention).await
    }

    async fn since(
        &self,
        tenant: TenantId,
        since: EventId,
        limit: u32,
    ) -> Result<Since, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.hold_reads.load(Ordering::SeqCst) {
            self.released.notified().await;
        }
        self.inner.since(tenant, since, limit).await
    }
}

const RETENTION: Retention = Retention {
    max_events: 1000,
    max_age: Duration::from_secs(300),
    dedup_window: Duration::from_secs(60),
};

/// A hub fed by the returned sender (its bus), over `history`.
fn hub(history: Arc<dyn EventHistory>) -> (Arc<Hub>, mpsc::UnboundedSender<BusEvent>) {
    let hub = Hub::new(
        HubSettings {
            queue_capacity: 256,
            retention: RETENTION,
            caps: SocketCaps {
                per_session: 10_000,
                per_user: 10_000,
            },
            max_sockets: 10_000,
        },
        HubPorts {
            history,
            presence: Arc::new(MemoryPresence::new()),
            instance: InstanceId::from_random(rand_bytes()),
        },
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let events =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
            .boxed();
    tokio::spawn(hub.clone().run(events));
    (hub, tx)
}

fn rand_bytes() -> [u8; 8] {
    let id = uuid::Uuid::new_v4();
    let mut out = [0; 8];
    out.copy_from_slice(&id.as_bytes()[..8]);
    out
}

fn status(tenant: TenantId, message: &str) -> BusEvent {
    BusEvent::Tenant(TenantEvent::Status {
        tenant_id: tenant,
        update: StatusUpdate {
            message_id: MessageId::parse(message).unwrap(),
            status: MessageStatus::Delivered,
            timestamp: time::macros::datetime!(2026-02-12 08:30 UTC),
            conversation_id: None,
        },
    })
}

async fn socket(hub: &Arc<Hub>, tenant: TenantId) -> Subscription {
    hub.admit(SocketOwner {
        tenant,
        user: UserId::parse("agent").unwrap(),
        session: SessionKey::from_hex("ab"),
    })
    .await
    .unwrap()
    .register()
}

/// The next `n` live events of a socket.
async fn live(socket: &mut Subscription, n: usize) -> Vec<Arc<LiveEvent>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let event = tokio::time::timeout(Duration::from_secs(5), socket.frames.recv())
            .await
            .expect("an event within 5 s")
            .expect("open");
        out.push(event);
    }
    out
}

fn message_ids(events: &[Arc<LiveEvent>]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e.event() {
            TenantEvent::Status { update, .. } => update.message_id.as_str().to_owned(),
            TenantEvent::Message { update, .. } => update.message_id.as_str().to_owned(),
        })
        .collect()
}

fn events(replay: Replay) -> Vec<Arc<LiveEvent>> {
    match replay {
        Replay::Events(events) => events,
        Replay::Gap => panic!("a gap"),
    }
}

#[tokio::test]
async fn instances_give_each_event_one_id_and_a_repeated_payload_is_a_second_event() {
    let history: Arc<dyn EventHistory> = Arc::new(MemoryEventHistory::new());
    let (a, to_a) = hub(history.clone());
    let (b, to_b) = hub(history.clone());
    let tenant = TenantId::new_random();
    let mut on_a = socket(&a, tenant).await;
    let mut on_b = socket(&b, tenant).await;
    // Every instance receives every message, in the same order; "m1" is published twice.
    for m in ["m1", "m1", "m2"] {
        to_a.send(status(tenant, m)).unwrap();
        to_b.send(status(tenant, m)).unwrap();
    }
    let seen_a = live(&mut on_a, 3).await;
    let seen_b = live(&mut on_b, 3).await;
    let ids = |events: &[Arc<LiveEvent>]| -> Vec<EventId> {
        events.iter().map(|e| e.id().unwrap()).collect()
    };
    assert_eq!(ids(&seen_a), ids(&seen_b));
    assert!(ids(&seen_a).windows(2).all(|w| w[0] < w[1]));
    let first = seen_a[0].id().unwrap();
    let before = EventId::new(first.millis(), first.sequence());
    assert_eq!(
        history.since(tenant, before, 10).await.unwrap(),
        Since::Events(
            seen_a[1..]
                .iter()
                .map(|e| portal_domain::ports::realtime::Recorded {
                    id: e.id().unwrap(),
                    event: e.event().clone()
                })
                .collect()
        ),
        "recorded once each, the repeat too"
    );
}

#[tokio::test]
async fn a_thousand_sockets_resuming_from_one_position_cost_one_history_read() {
    let history = Arc::new(Observed::default());
    let (hub, bus) = hub(history.clone());
    let tenant = TenantId::new_random();
    let mut first = socket(&hub, tenant).await;
    bus.send(status(tenant, "seen")).unwrap();
    let since = live(&mut first, 1).await[0].id().unwrap();
    for i in 0..5 {
        bus.send(status(tenant, &format!("missed-{i}"))).unwrap();
    }
    live(&mut first, 5).await;

    history.hold_reads.store(true, Ordering::SeqCst);
    let mut sockets = Vec::new();
    for _ in 0..1000 {
        sockets.push(socket(&hub, tenant).await);
    }
    let replays = futures::future::join_all(sockets.iter().map(|s| s.replay(since)));
    let (replays, ()) = tokio::join!(replays, async {
        // Every socket asks before the read answers.
        while history.reads.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        history.released.notify_one();
    });
    for replay in replays {
        assert_eq!(
            message_ids(&events(replay)),
            ["missed-0", "missed-1", "missed-2", "missed-3", "missed-4"]
        );
    }
    assert_eq!(history.reads.load(Ordering::SeqCst), 1);
    assert_eq!(hub.history_reads(), 1);

    // A socket coming later from the same position: the same entry, now with the event
    // delivered since; still no second read.
    history.hold_reads.store(false, Ordering::SeqCst);
    bus.send(status(tenant, "later")).unwrap();
    live(&mut first, 1).await;
    let late = socket(&hub, tenant).await;
    assert_eq!(
        message_ids(&events(late.replay(since).await)),
        [
            "missed-0", "missed-1", "missed-2", "missed-3", "missed-4", "later"
        ]
    );
    assert_eq!(history.reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn events_delivered_while_the_read_is_in_flight_are_neither_lost_nor_doubled() {
    let history = Arc::new(Observed::default());
    let (hub, bus) = hub(history.clone());
    let tenant = TenantId::new_random();
    let mut first = socket(&hub, tenant).await;
    bus.send(status(tenant, "seen")).unwrap();
    let since = live(&mut first, 1).await[0].id().unwrap();
    bus.send(status(tenant, "before-read")).unwrap();
    live(&mut first, 1).await;

    history.hold_reads.store(true, Ordering::SeqCst);
    let asking = socket(&hub, tenant).await;
    let (replay, ()) = tokio::join!(asking.replay(since), async {
        while history.reads.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Recorded before the read looks: in the read *and* delivered meanwhile.
        bus.send(status(tenant, "during-read")).unwrap();
        live(&mut first, 1).await;
        history.released.notify_one();
    });
    assert_eq!(message_ids(&events(replay)), ["before-read", "during-read"]);
    // A socket registered after the read: what the entry lacks, it gets from its queue.
    let mut late = socket(&hub, tenant).await;
    bus.send(status(tenant, "after")).unwrap();
    let queued = live(&mut late, 1).await;
    let replayed = events(late.replay(since).await);
    assert_eq!(
        message_ids(&replayed),
        ["before-read", "during-read", "after"]
    );
    assert_eq!(message_ids(&queued), ["after"]);
    assert_eq!(
        queued[0].id(),
        replayed[2].id(),
        "the socket drops it by id"
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_the_history_could_not_record_makes_earlier_positions_gaps() {
    let history = Arc::new(Observed::default());
    let (hub, bus) = hub(history.clone());
    let tenant = TenantId::new_random();
    let mut s = socket(&hub, tenant).await;
    bus.send(status(tenant, "recorded")).unwrap();
    let before = live(&mut s, 1).await[0].id().unwrap();

    history.fail_appends.store(true, Ordering::SeqCst);
    bus.send(status(tenant, "lost")).unwrap();
    let lost = live(&mut s, 1).await;
    assert_eq!(lost[0].id(), None, "delivered live, without an id");
    assert!(matches!(s.replay(before).await, Replay::Gap));

    history.fail_appends.store(false, Ordering::SeqCst);
    // The history is tried again after its retry delay.
    tokio::time::advance(Duration::from_millis(1100)).await;
    bus.send(status(tenant, "back")).unwrap();
    let back = live(&mut s, 1).await[0].id().expect("recorded again");
    bus.send(status(tenant, "next")).unwrap();
    live(&mut s, 1).await;
    assert!(matches!(s.replay(before).await, Replay::Gap));
    assert_eq!(message_ids(&events(s.replay(back).await)), ["next"]);
}
