//! Behaviour specific to the in-memory adapters (beyond the shared contract).

use futures::StreamExt;
use portal_contract::fixtures::{outbound_message, session_key};
use portal_domain::model::{BusEvent, TenantId};
use portal_domain::ports::stores::{EventBus, OutboundQueue};
use portal_memory::{MemoryEventBus, MemoryOutboundQueue};

#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_block_publishers() {
    let bus = MemoryEventBus::with_capacity(16);
    let mut idle = bus.subscribe().await.unwrap();
    for _ in 0..10_000 {
        bus.publish_revocation(&session_key()).await.unwrap();
    }
    // The slow subscriber lost the oldest events but still receives the newest ones.
    let last = session_key();
    bus.publish_revocation(&last).await.unwrap();
    let mut seen_last = false;
    for _ in 0..16 {
        if idle.next().await == Some(BusEvent::SessionRevoked(last.clone())) {
            seen_last = true;
            break;
        }
    }
    assert!(seen_last);
}

#[tokio::test]
async fn publishing_without_subscribers_succeeds() {
    let bus = MemoryEventBus::new();
    bus.publish_revocation(&session_key()).await.unwrap();
}

#[tokio::test]
async fn outbound_queue_keeps_messages_for_inspection_and_bounds_them() {
    let queue = MemoryOutboundQueue::new();
    let tenant = TenantId::new_random();
    let sent = outbound_message(tenant, "hello");
    let id = queue.enqueue(&sent).await.unwrap();
    assert_eq!(queue.messages(), vec![sent.clone()]);
    assert_eq!(queue.drain(), vec![(id, sent)]);
    assert!(queue.messages().is_empty());

    let small = MemoryOutboundQueue::with_retention(2);
    for text in ["a", "b", "c"] {
        small
            .enqueue(&outbound_message(tenant, text))
            .await
            .unwrap();
    }
    let texts: Vec<_> = small.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["b", "c"]);
}
