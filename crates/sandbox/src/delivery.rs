//! Simulated outbound delivery (decisions §3): a widget send is recorded in the State Manager
//! simulation at once (so it shows in the history and the metrics), then "delivered": a
//! `message_update` and `status_update`s `sent` → `delivered` → `read` on the tenant's channels,
//! [`STEP`] apart, all within 2 s.

use crate::demo::DemoConversation;
use crate::platform::SimState;
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::{
    Conversation, ConversationStatus, Direction, Message, MessageStatus, MessageUpdate,
    OutboundMessage, StatusUpdate, TenantEvent,
};
use portal_domain::ports::stores::{EventBus, OutboundQueue};
use std::sync::Arc;
use std::time::Duration;

/// Time between two delivery steps (first event after one step; `read` after three).
pub(crate) const STEP: Duration = Duration::from_millis(300);

/// The simulated outbound queue and its delivery worker.
#[derive(Clone)]
pub(crate) struct SimDelivery {
    state: Arc<SimState>,
    /// Where the delivery events go (the tenant's real-time channels).
    bus: Arc<dyn EventBus>,
}

impl std::fmt::Debug for SimDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDelivery").finish_non_exhaustive()
    }
}

impl SimDelivery {
    /// Over the shared state, publishing on `bus`.
    pub(crate) fn new(state: Arc<SimState>, bus: Arc<dyn EventBus>) -> Self {
        Self { state, bus }
    }

    /// Records the message (status `queued`); returns its entry ID and whether it is new.
    fn record(&self, message: &OutboundMessage) -> (String, bool) {
        let now = self.state.now();
        let mut inner = self.state.lock();
        if let Some(entry) = inner.outbound_entries.get(message.message_id.as_str()) {
            return (entry.clone(), false);
        }
        inner.outbound_seq += 1;
        let entry = format!(
            "{}-{}",
            (now.unix_timestamp_nanos() / 1_000_000).max(0),
            inner.outbound_seq
        );
        inner
            .outbound_entries
            .insert(message.message_id.as_str().to_owned(), entry.clone());
        let conversation = inner
            .conversations
            .entry(message.conversation_id)
            .or_insert_with(|| DemoConversation {
                // A conversation the simulation did not know: the queue accepts it anyway,
                // as the real stream would.
                conversation: Conversation {
                    id: message.conversation_id,
                    tenant_id: message.tenant_id,
                    wa_id: message.wa_id.clone(),
                    status: ConversationStatus::Active,
                    created_at: message.timestamp,
                    last_activity: message.timestamp,
                },
                messages: Vec::new(),
            });
        conversation.messages.push(Message {
            message_id: message.message_id.clone(),
            direction: Direction::Outbound,
            text: Some(message.text.clone()),
            media_url: message.media_url.clone(),
            status: MessageStatus::Queued,
            timestamp: message.timestamp,
            error: None,
        });
        conversation.conversation.last_activity = conversation
            .conversation
            .last_activity
            .max(message.timestamp);
        (entry, true)
    }

    fn set_status(&self, message: &OutboundMessage, status: MessageStatus) {
        let mut inner = self.state.lock();
        if let Some(m) = inner
            .conversations
            .get_mut(&message.conversation_id)
            .and_then(|c| {
                c.messages
                    .iter_mut()
                    .find(|m| m.message_id == message.message_id)
            })
        {
            m.status = status;
        }
    }

    async fn publish(&self, event: TenantEvent) {
        if let Err(e) = self.bus.publish(&event).await {
            tracing::warn!(error = %e, channel = %event.channel(), "simulated delivery event lost");
        }
    }

    async fn deliver(self, message: OutboundMessage) {
        let tenant_id = message.tenant_id;
        tokio::time::sleep(STEP).await;
        self.set_status(&message, MessageStatus::Sent);
        self.publish(TenantEvent::Message {
            tenant_id,
            update: MessageUpdate {
                direction: Direction::Outbound,
                conversation_id: message.conversation_id,
                message_id: message.message_id.clone(),
                text: Some(message.text.clone()),
                status: MessageStatus::Sent,
                timestamp: self.state.now(),
                wa_id: Some(message.wa_id.clone()),
            },
        })
        .await;
        for (i, status) in [
            MessageStatus::Sent,
            MessageStatus::Delivered,
            MessageStatus::Read,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                tokio::time::sleep(STEP).await;
            }
            self.set_status(&message, status);
            self.publish(status_event(&message, status, &self.state))
                .await;
        }
    }
}

fn status_event(message: &OutboundMessage, status: MessageStatus, state: &SimState) -> TenantEvent {
    TenantEvent::Status {
        tenant_id: message.tenant_id,
        update: StatusUpdate {
            message_id: message.message_id.clone(),
            status,
            timestamp: state.now(),
            conversation_id: Some(message.conversation_id),
        },
    }
}

#[async_trait]
impl OutboundQueue for SimDelivery {
    async fn enqueue(&self, message: &OutboundMessage) -> Result<String, StoreError> {
        let (entry, new) = self.record(message);
        if new {
            tokio::spawn(self.clone().deliver(message.clone()));
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::acme_tenant_id;
    use crate::test_support::{RecordingBus, demo_start, platform_at};
    use portal_domain::model::{ConversationQuery, MessageId, Period, UserId};

    #[tokio::test(start_paused = true)]
    async fn a_send_is_recorded_then_announced_sent_delivered_read_within_two_seconds() {
        // Arrange: an active Acme conversation.
        let (platform, _) = platform_at(demo_start());
        let bus = Arc::new(RecordingBus::default());
        let queue = platform.delivery(bus.clone());
        let sm = platform.state_manager();
        let tenant = acme_tenant_id();
        let conv = sm
            .conversations(
                tenant,
                ConversationQuery {
                    page: 1,
                    limit: 100,
                    status: Some(ConversationStatus::Active),
                },
            )
            .await
            .unwrap()
            .data[0]
            .clone();
        let before = sm.metrics(tenant, Period::Today).await.unwrap();
        let message = OutboundMessage {
            message_id: MessageId::parse("widget-msg-1").unwrap(),
            tenant_id: tenant,
            conversation_id: conv.conversation_id,
            wa_id: conv.wa_id.clone(),
            text: "Hello from the widget".into(),
            media_url: None,
            source: "widget".into(),
            agent_id: UserId::parse(crate::demo::ACME_AGENT_ID).unwrap(),
            timestamp: platform.state().now(),
        };
        let started = tokio::time::Instant::now();

        // Act
        let entry = queue.enqueue(&message).await.unwrap();
        let again = queue.enqueue(&message).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;

        // Assert: one delivery, in order, within 2 s.
        assert_eq!(entry, again, "a repeated enqueue is not a second message");
        let events = bus.events();
        let kinds: Vec<_> = events
            .iter()
            .map(|(_, e)| match e {
                TenantEvent::Message { update, .. } => ("message_update", update.status),
                TenantEvent::Status { update, .. } => ("status_update", update.status),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("message_update", MessageStatus::Sent),
                ("status_update", MessageStatus::Sent),
                ("status_update", MessageStatus::Delivered),
                ("status_update", MessageStatus::Read),
            ]
        );
        for (at, event) in &events {
            assert!(*at - started < Duration::from_secs(2));
            assert_eq!(event.tenant_id(), tenant);
        }
        if let TenantEvent::Message { update, .. } = &events[0].1 {
            assert_eq!(update.direction, Direction::Outbound);
            assert_eq!(update.conversation_id, conv.conversation_id);
        }

        // The message is in the history, read, and counted in today's metrics.
        let history = sm.messages(conv.conversation_id).await.unwrap();
        let sent = history
            .iter()
            .find(|m| m.message_id == message.message_id)
            .unwrap();
        assert_eq!(sent.status, MessageStatus::Read);
        assert_eq!(
            history
                .iter()
                .filter(|m| m.message_id == message.message_id)
                .count(),
            1
        );
        let after = sm.metrics(tenant, Period::Today).await.unwrap();
        assert_eq!(after.total_messages, before.total_messages + 1);
        assert_eq!(after.read, before.read + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_history_shows_the_send_before_delivery_completes() {
        let (platform, _) = platform_at(demo_start());
        let bus = Arc::new(RecordingBus::default());
        let queue = platform.delivery(bus.clone());
        let sm = platform.state_manager();
        let conversation_id = portal_domain::model::ConversationId::new_random();
        let message = OutboundMessage {
            message_id: MessageId::parse("widget-msg-2").unwrap(),
            tenant_id: acme_tenant_id(),
            conversation_id,
            wa_id: "15550000001".into(),
            text: "hi".into(),
            media_url: None,
            source: "widget".into(),
            agent_id: UserId::parse(crate::demo::ACME_AGENT_ID).unwrap(),
            timestamp: platform.state().now(),
        };
        queue.enqueue(&message).await.unwrap();
        let history = sm.messages(conversation_id).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].status, MessageStatus::Queued);
        assert!(bus.events().is_empty());
    }
}
