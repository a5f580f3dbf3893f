//! Real-time events (spec §10.2, decisions §7) and their place in a tenant's history.

use super::{ConversationId, Direction, MessageId, MessageStatus, SessionKey, TenantId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

/// An event's position in its tenant's history: `<milliseconds>-<sequence>`, the form of a
/// Redis Stream ID. IDs increase within a tenant (compare them as values, not as text:
/// `10-0` comes after `9-0`); every instance delivers an event with the same ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    ms: u64,
    seq: u64,
}

impl EventId {
    /// The ID `<ms>-<seq>`.
    pub fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// The milliseconds part (the time the history recorded the event, in Unix ms).
    pub fn millis(self) -> u64 {
        self.ms
    }

    /// The sequence part (events recorded in the same millisecond).
    pub fn sequence(self) -> u64 {
        self.seq
    }

    /// The smallest ID after this one.
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Why a text is not an [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event id is two decimal numbers joined by '-', e.g. 1767225600000-0")]
pub struct EventIdError;

impl FromStr for EventId {
    type Err = EventIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').ok_or(EventIdError)?;
        let number = |t: &str| {
            if t.is_empty() || t.len() > 20 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(EventIdError);
            }
            t.parse::<u64>().map_err(|_| EventIdError)
        };
        Ok(Self {
            ms: number(ms)?,
            seq: number(seq)?,
        })
    }
}

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
    /// The customer's WhatsApp ID (phone number), when the publisher includes it: the sender
    /// of an inbound message, the recipient of an outbound one. Personal data: shown to each
    /// reader as [`super::customer_number_for`] their role allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
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
    fn event_ids_parse_strictly_and_order_as_numbers() {
        let a: EventId = "9-5".parse().unwrap();
        let b: EventId = "10-0".parse().unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "10-0");
        assert_eq!(a.next(), EventId::new(9, 6));
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "a-1",
            "1-1-1",
            "+1-0",
            "1 -0",
            "99999999999999999999999-0",
        ] {
            assert_eq!(bad.parse::<EventId>(), Err(EventIdError), "{bad:?}");
        }
    }

    #[test]
    fn a_message_without_wa_id_still_decodes() {
        let tenant_id = TenantId::new_random();
        let payload = br#"{"direction":"inbound","conversation_id":"0b7e6f4e-3c1a-4f7e-9a55-2f4c8d1e000a","message_id":"m1","status":"received","timestamp":"2026-02-12T08:30:00Z"}"#;
        let Some(TenantEvent::Message { update, .. }) =
            TenantEvent::decode(&format!("tenant.{tenant_id}.messages"), payload)
        else {
            panic!("decodes");
        };
        assert_eq!(update.wa_id, None);
    }

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
