use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL};
use crate::fixtures::status_event;
use crate::{Stores, Waiter};
use futures::future::join_all;
use portal_domain::model::{EventId, TenantEvent, TenantId};
use portal_domain::ports::realtime::{EventKey, Recorded, Retention, Since};

/// A generous retention: nothing is trimmed during a check.
fn keep_all() -> Retention {
    Retention {
        max_events: 1000,
        max_age: LONG_TTL,
        dedup_window: LONG_TTL,
    }
}

/// A key of its own for `event` (first occurrence).
fn key_of(event: &TenantEvent) -> EventKey {
    EventKey {
        tenant: event.tenant_id(),
        digest: crate::fixtures::unique("digest"),
        occurrence: 1,
    }
}

/// Appends `n` fresh events of `tenant`; their IDs and events.
async fn append_n(s: &Stores, tenant: TenantId, n: usize, retention: Retention) -> Vec<Recorded> {
    let mut out = Vec::new();
    for _ in 0..n {
        let event = status_event(tenant);
        let id = s
            .history
            .append(&key_of(&event), &event, retention)
            .await
            .expect("append");
        out.push(Recorded { id, event });
    }
    out
}

async fn since(s: &Stores, tenant: TenantId, id: EventId, limit: u32) -> Since {
    s.history.since(tenant, id, limit).await.expect("since")
}

/// IDs increase; `since` gives exactly the events after a position, in order (none after the
/// last one).
pub async fn history_gives_increasing_ids_and_the_events_after_a_position(s: &Stores, _w: &Waiter) {
    let tenant = TenantId::new_random();
    let recorded = append_n(s, tenant, 5, keep_all()).await;
    for pair in recorded.windows(2) {
        assert!(pair[0].id < pair[1].id, "IDs increase: {pair:?}");
    }
    assert_eq!(
        since(s, tenant, recorded[1].id, 1000).await,
        Since::Events(recorded[2..].to_vec())
    );
    assert_eq!(
        since(s, tenant, recorded[4].id, 1000).await,
        Since::Events(Vec::new())
    );
}

/// One key is recorded once, whoever appends it and however many race; another occurrence
/// of the same payload is another event; a key forgotten after the dedup window is recorded
/// again.
pub async fn history_records_a_key_once(s: &Stores, w: &Waiter) {
    let tenant = TenantId::new_random();
    let before = append_n(s, tenant, 1, keep_all()).await[0].id;
    let event = status_event(tenant);
    let key = key_of(&event);
    let racing = (0..20).map(|_| s.history.append(&key, &event, keep_all()));
    let ids: Vec<EventId> = join_all(racing)
        .await
        .into_iter()
        .map(|r| r.expect("append"))
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one ID for one key: {ids:?}"
    );
    let again = EventKey {
        occurrence: 2,
        ..key.clone()
    };
    let second = s
        .history
        .append(&again, &event, keep_all())
        .await
        .expect("append");
    assert!(second > ids[0]);
    assert_eq!(
        since(s, tenant, before, 1000).await,
        Since::Events(vec![
            Recorded {
                id: ids[0],
                event: event.clone()
            },
            Recorded {
                id: second,
                event: event.clone()
            },
        ]),
        "recorded once per key"
    );

    let short = Retention {
        dedup_window: SHORT_TTL,
        ..keep_all()
    };
    let other = status_event(tenant);
    let k = key_of(&other);
    let first = s.history.append(&k, &other, short).await.expect("append");
    assert_eq!(
        s.history.append(&k, &other, short).await.expect("append"),
        first
    );
    w.wait(PAST_SHORT_TTL).await;
    assert!(
        s.history.append(&k, &other, short).await.expect("append") > first,
        "past the dedup window the key is new again"
    );
}

/// Trimming by length: a position that was trimmed is a gap, never a partial list.
pub async fn history_trimmed_by_length_is_a_gap(s: &Stores, _w: &Waiter) {
    let tenant = TenantId::new_random();
    let three = Retention {
        max_events: 3,
        ..keep_all()
    };
    let recorded = append_n(s, tenant, 5, three).await;
    assert_eq!(since(s, tenant, recorded[0].id, 1000).await, Since::Gap);
    assert_eq!(since(s, tenant, recorded[1].id, 1000).await, Since::Gap);
    assert_eq!(
        since(s, tenant, recorded[2].id, 1000).await,
        Since::Events(recorded[3..].to_vec())
    );
}

/// Trimming by age: an event older than the age is gone at the next append, and a tenant
/// with no append for that long keeps nothing.
pub async fn history_trimmed_by_age_is_a_gap(s: &Stores, w: &Waiter) {
    let tenant = TenantId::new_random();
    let short = Retention {
        max_age: SHORT_TTL,
        ..keep_all()
    };
    let old = append_n(s, tenant, 1, short).await[0].id;
    w.wait(PAST_SHORT_TTL).await;
    let recent = append_n(s, tenant, 2, short).await;
    assert_eq!(since(s, tenant, old, 1000).await, Since::Gap);
    assert_eq!(
        since(s, tenant, recent[0].id, 1000).await,
        Since::Events(recent[1..].to_vec())
    );
    w.wait(PAST_SHORT_TTL).await;
    assert_eq!(since(s, tenant, recent[0].id, 1000).await, Since::Gap);
}

/// A position never given, another tenant's, or one followed by more events than the limit:
/// a gap.
pub async fn history_unknown_positions_and_overlong_replays_are_gaps(s: &Stores, _w: &Waiter) {
    let tenant = TenantId::new_random();
    let recorded = append_n(s, tenant, 5, keep_all()).await;
    let invented = EventId::new(recorded[2].id.millis(), recorded[2].id.sequence() + 1000);
    assert_eq!(since(s, tenant, invented, 1000).await, Since::Gap);
    assert_eq!(since(s, tenant, EventId::new(1, 0), 1000).await, Since::Gap);
    assert_eq!(
        since(s, TenantId::new_random(), recorded[0].id, 1000).await,
        Since::Gap
    );
    assert_eq!(since(s, tenant, recorded[0].id, 3).await, Since::Gap);
    assert_eq!(
        since(s, tenant, recorded[1].id, 3).await,
        Since::Events(recorded[2..].to_vec())
    );
}
