//! The sandbox on Redis, driven through the service's own Redis adapters (portal-redis): a
//! message the service enqueues on the `outbound.message` Stream is recorded in the sandbox's
//! State Manager and announced on the service's event bus (`message_update`, then `sent`,
//! `delivered`, `read`), also after Redis restarted empty.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use futures::StreamExt;
use futures::stream::BoxStream;
use portal_domain::model::{
    BusEvent, ConversationId, Direction, MessageId, MessageStatus, MessageUpdate, OutboundMessage,
    TenantEvent, TenantId, UserId,
};
use portal_domain::ports::stores::{EventBus, OutboundQueue};
use portal_domain::ports::system::SystemClock;
use portal_domain::secret::SecretString;
use portal_redis::{RedisServer, RedisSettings, RedisStores};
use std::sync::Arc;
use std::time::Duration;

/// Generous: delivery takes about 1 s; a loaded machine may add more.
const WITHIN: Duration = Duration::from_secs(10);

fn message(tenant: TenantId, id: &str) -> OutboundMessage {
    OutboundMessage {
        message_id: MessageId::parse(id).unwrap(),
        tenant_id: tenant,
        conversation_id: ConversationId::new_random(),
        wa_id: "15551234567".into(),
        text: "Hello over Redis".into(),
        media_url: None,
        source: "widget".into(),
        agent_id: UserId::parse(portal_sandbox::demo::ACME_AGENT_ID).unwrap(),
        timestamp: time::OffsetDateTime::now_utc(),
    }
}

/// The service side: its Redis stores (queue and bus).
fn service(redis: &RedisServer) -> RedisStores {
    let mut settings = RedisSettings::new(SecretString::from(redis.url()));
    settings.connect_timeout = Duration::from_millis(500);
    settings.command_timeout = Duration::from_millis(500);
    RedisStores::connect(settings).unwrap()
}

/// The next tenant event of `message_id` (others skipped), as (kind, status).
async fn next_of(
    events: &mut BoxStream<'static, BusEvent>,
    message_id: &MessageId,
) -> (&'static str, MessageStatus, TenantEvent) {
    loop {
        let event = tokio::time::timeout(WITHIN, events.next())
            .await
            .expect("an event in time")
            .expect("the subscription is open");
        let BusEvent::Tenant(event) = event else {
            continue;
        };
        match &event {
            TenantEvent::Message { update, .. } if &update.message_id == message_id => {
                return ("message_update", update.status, event.clone());
            }
            TenantEvent::Status { update, .. } if &update.message_id == message_id => {
                return ("status_update", update.status, event.clone());
            }
            _ => {}
        }
    }
}

async fn assert_delivered(
    events: &mut BoxStream<'static, BusEvent>,
    sent: &OutboundMessage,
) -> Vec<TenantEvent> {
    let mut seen = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let (kind, status, event) = next_of(events, &sent.message_id).await;
        assert_eq!(event.tenant_id(), sent.tenant_id);
        kinds.push((kind, status));
        seen.push(event);
    }
    assert_eq!(
        kinds,
        vec![
            ("message_update", MessageStatus::Sent),
            ("status_update", MessageStatus::Sent),
            ("status_update", MessageStatus::Delivered),
            ("status_update", MessageStatus::Read),
        ]
    );
    seen
}

/// Publishes a probe until the (re)subscribed bus hands it back: the subscription is live.
async fn wait_until_subscribed(bus: &RedisStores, events: &mut BoxStream<'static, BusEvent>) {
    let tenant = TenantId::new_random();
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let probe = TenantEvent::Message {
            tenant_id: tenant,
            update: MessageUpdate {
                direction: Direction::Inbound,
                conversation_id: ConversationId::new_random(),
                message_id: MessageId::parse("probe").unwrap(),
                text: None,
                status: MessageStatus::Delivered,
                timestamp: time::OffsetDateTime::now_utc(),
                wa_id: None,
            },
        };
        let _ = bus.publish(&probe).await;
        let got = tokio::time::timeout(Duration::from_millis(200), async {
            while let Some(e) = events.next().await {
                if matches!(&e, BusEvent::Tenant(t) if t.tenant_id() == tenant) {
                    return;
                }
            }
        })
        .await;
        if got.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bus never resubscribed"
        );
    }
}

#[tokio::test]
async fn a_message_on_the_stream_is_recorded_and_announced_on_the_bus_even_after_a_redis_restart() {
    // Arrange: Redis, the sandbox consuming it, the service's stores subscribed to the bus.
    let mut redis = RedisServer::start().await;
    let platform = portal_sandbox::Platform::demo(Arc::new(SystemClock));
    let _consumer = portal_sandbox::consume_outbound(SecretString::from(redis.url()), &platform)
        .await
        .unwrap();
    let service = service(&redis);
    let mut events = service.subscribe().await.unwrap();
    let tenant = portal_sandbox::demo::acme_tenant_id();

    // Act: the service enqueues a widget send.
    let first = message(tenant, "stream-msg-1");
    service.enqueue(&first).await.unwrap();

    // Assert: announced in order, in the JSON the service's bus decodes, and recorded.
    let seen = assert_delivered(&mut events, &first).await;
    if let TenantEvent::Message { update, .. } = &seen[0] {
        assert_eq!(update.direction, Direction::Outbound);
        assert_eq!(update.conversation_id, first.conversation_id);
        assert_eq!(update.text.as_deref(), Some("Hello over Redis"));
    }
    let history = platform
        .state_manager()
        .messages(first.conversation_id)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].message_id, first.message_id);
    assert_eq!(history[0].status, MessageStatus::Read);

    // A Redis that restarts empty (crash, no persistence): the consumer reconnects and
    // recreates its group; the next message is delivered too.
    redis.kill();
    redis.restart().await;
    wait_until_subscribed(&service, &mut events).await;
    let second = message(tenant, "stream-msg-2");
    service.enqueue(&second).await.unwrap();
    assert_delivered(&mut events, &second).await;
}
