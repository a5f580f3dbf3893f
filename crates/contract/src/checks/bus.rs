use crate::fixtures::{message_event, session_key, status_event};
use crate::{Stores, Waiter};
use futures::StreamExt;
use futures::stream::BoxStream;
use portal_domain::model::{BusEvent, TenantId};
use std::time::Duration;

/// How long a published event may take to arrive.
const DELIVERY: Duration = Duration::from_secs(5);

/// Reads `stream` until every event in `expected` has arrived (ignoring other tests' traffic
/// on a shared bus), in order.
async fn receive_all(stream: &mut BoxStream<'static, BusEvent>, expected: &[BusEvent]) {
    let mut pending = expected.iter().peekable();
    let read = async {
        while let Some(want) = pending.peek() {
            match stream.next().await {
                Some(event) if &event == *want => {
                    pending.next();
                }
                Some(_) => {}
                None => panic!("the subscription ended"),
            }
        }
    };
    if tokio::time::timeout(DELIVERY, read).await.is_err() {
        panic!("events not delivered within {DELIVERY:?}: expected {expected:?}");
    }
}

/// Every subscriber receives tenant events (messages and statuses) and revocations published
/// after it subscribed.
pub async fn bus_delivers_events_and_revocations_to_every_subscriber(s: &Stores, _w: &Waiter) {
    let mut first = s.event_bus.subscribe().await.expect("subscribe");
    let mut second = s.event_bus.subscribe().await.expect("subscribe");
    let tenant = TenantId::new_random();
    let (message, status, revoked) = (message_event(tenant), status_event(tenant), session_key());

    s.event_bus
        .publish(&message)
        .await
        .expect("publish message");
    s.event_bus.publish(&status).await.expect("publish status");
    s.event_bus
        .publish_revocation(&revoked)
        .await
        .expect("publish revocation");

    let expected = [
        BusEvent::Tenant(message),
        BusEvent::Tenant(status),
        BusEvent::SessionRevoked(revoked),
    ];
    receive_all(&mut first, &expected).await;
    receive_all(&mut second, &expected).await;
}
