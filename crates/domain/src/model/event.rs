//! Real-time events (spec §10.2, decisions §7).

use super::{ConversationId, Direction, MessageId, MessageStatus, SessionKey, TenantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A new or changed message, published on `tenant.{tenantId}.messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageUpdate {
    /// Inbound or outbound (the spec's `type` on the socket).
    pub direction: Direction,
    /// Conversation.
    pub conversation_id: ConversationId,
    /// Message.
    pub message_id: MessageId,
    /// Text body.
    #[serde(default)]
    pub text: Option<String>,
    /// Delivery status.
    pub status: MessageStatus,
    /// Event time.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
}

/// A delivery-status change, published on `tenant.{tenantId}.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// Message.
    pub message_id: MessageId,
    /// New status.
    pub status: MessageStatus,
    /// Event time.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// Conversation, when the publisher includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
}

/// An event about one tenant's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantEvent {
    /// On `tenant.{id}.messages`.
    Message {
        /// The tenant the channel belongs to.
        tenant_id: TenantId,
        /// Payload.
        update: MessageUpdate,
    },
    /// On `tenant.{id}.status`.
    Status {
        /// The tenant the channel belongs to.
        tenant_id: TenantId,
        /// Payload.
        update: StatusUpdate,
    },
}

impl TenantEvent {
    /// The tenant this event belongs to.
    pub fn tenant_id(&self) -> TenantId {
        match self {
            TenantEvent::Message { tenant_id, .. } | TenantEvent::Status { tenant_id, .. } => {
                *tenant_id
            }
        }
    }

    /// The bus channel: `tenant.{id}.messages` or `tenant.{id}.status`.
    pub fn channel(&self) -> String {
        match self {
            TenantEvent::Message { tenant_id, .. } => format!("tenant.{tenant_id}.messages"),
            TenantEvent::Status { tenant_id, .. } => format!("tenant.{tenant_id}.status"),
        }
    }

    /// The JSON payload published on the channel.
    pub fn payload(&self) -> serde_json::Value {
        match self {
            TenantEvent::Message { update, .. } => serde_json::to_value(update),
            TenantEvent::Status { update, .. } => serde_json::to_value(update),
        }
        .unwrap_or(serde_json::Value::Null)
    }

    /// Decodes an event from a channel name and its JSON payload; `None` for channels that are
    /// not tenant event channels or payloads that do not parse.
    pub fn decode(channel: &str, payload: &[u8]) -> Option<Self> {
        let rest = channel.strip_prefix("tenant.")?;
        let (tenant, kind) = rest.rsplit_once('.')?;
        let tenant_id: TenantId = tenant.parse().ok()?;
        match kind {
            "messages" => Some(TenantEvent::Message {
                tenant_id,
                update: serde_json::from_slice(payload).ok()?,
            }),
            "status" => Some(TenantEvent::Status {
                tenant_id,
                update: serde_json::from_slice(payload).ok()?,
            }),
            _ => None,
        }
    }
}

/// Everything that travels on the instance-wide event subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A tenant's traffic event.
    Tenant(TenantEvent),
    /// A session ended (logout or expiry) on some instance: its sockets must close.
    SessionRevoked(SessionKey),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_event_round_trips_through_channel_and_payload() {
        let tenant_id = TenantId::new_random();
        let event = TenantEvent::Status {
            tenant_id,
            update: StatusUpdate {
                message_id: MessageId::parse("m1").unwrap(),
                status: MessageStatus::Delivered,
                timestamp: time::macros::datetime!(2026-02-12 08:30 UTC),
                conversation_id: None,
            },
        };
        assert_eq!(event.channel(), format!("tenant.{tenant_id}.status"));
        let bytes = serde_json::to_vec(&event.payload()).unwrap();
        assert_eq!(TenantEvent::decode(&event.channel(), &bytes), Some(event));
        assert_eq!(
            TenantEvent::decode("tenant.not-a-uuid.status", &bytes),
            None
        );
        assert_eq!(
            TenantEvent::decode(&format!("tenant.{tenant_id}.other"), &bytes),
            None
        );
    }
}
