//! Conversations and messages (spec §8, §9, §4.2.4).

use super::{ConversationId, MessageId, TenantId, UserId};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use time::OffsetDateTime;

/// Whether a conversation is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    /// Open: messages may be sent.
    Active,
    /// Closed: read-only history.
    Closed,
}

impl ConversationStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Active => "active",
            ConversationStatus::Closed => "closed",
        }
    }
}

impl FromStr for ConversationStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "active" => Ok(Self::Active),
            "closed" => Ok(Self::Closed),
            _ => Err(()),
        }
    }
}

/// A conversation as the State Manager returns it (spec §3.1.3 `getConversation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Conversation ID.
    pub id: ConversationId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The customer's WhatsApp ID.
    pub wa_id: String,
    /// Open or closed.
    pub status: ConversationStatus,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last message time.
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity: OffsetDateTime,
}

/// One row of the conversation list (spec §8.1, §4.2.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// The customer's WhatsApp ID.
    pub wa_id: String,
    /// Conversation ID.
    pub conversation_id: ConversationId,
    /// Last message time.
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity: OffsetDateTime,
    /// Open or closed.
    pub status: ConversationStatus,
    /// Number of messages.
    pub message_count: u64,
}

/// A page of the conversation list plus the total the State Manager reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPage {
    /// The rows.
    pub data: Vec<ConversationSummary>,
    /// Page number (1-based).
    pub page: u32,
    /// Page size.
    pub limit: u32,
    /// Total rows across pages.
    pub total: u64,
}

impl ConversationPage {
    /// `ceil(total / limit)`.
    pub fn total_pages(&self) -> u64 {
        if self.limit == 0 {
            0
        } else {
            self.total.div_ceil(u64::from(self.limit))
        }
    }
    /// Whether a later page exists (spec §13.2).
    pub fn has_next(&self) -> bool {
        u64::from(self.page) * u64::from(self.limit) < self.total
    }
    /// Whether an earlier page exists.
    pub(crate) fn has_prev(&self) -> bool {
        self.page > 1
    }
}

/// A validated conversation-list query (spec §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConversationQuery {
    /// Page, 1-[`Self::MAX_PAGE`].
    pub page: u32,
    /// Page size, 1-100.
    pub limit: u32,
    /// Optional status filter.
    pub status: Option<ConversationStatus>,
}

impl ConversationQuery {
    /// Default page size.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 100;
    /// Largest page number (10 million rows at the largest page size: further than any list
    /// is read, and small enough for every client's 32-bit integers).
    pub const MAX_PAGE: u32 = 100_000;
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer.
    Outbound,
}

/// Delivery status of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Accepted by this service, not yet sent.
    Queued,
    /// Received from the customer.
    Received,
    /// Accepted by WhatsApp.
    Sent,
    /// Delivered to the handset.
    Delivered,
    /// Read by the customer.
    Read,
    /// Failed.
    Failed,
}

/// A message in a conversation's history (spec §8.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Message ID.
    pub message_id: MessageId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Text body.
    #[serde(default)]
    pub text: Option<String>,
    /// Media attachment URL.
    #[serde(default)]
    pub media_url: Option<String>,
    /// Delivery status.
    pub status: MessageStatus,
    /// When it was sent or received.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// Failure reason, for failed messages.
    #[serde(default)]
    pub error: Option<String>,
}

/// A message an agent sends from the widget, as published on the outbound queue (spec §9.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// ID this service assigned.
    pub message_id: MessageId,
    /// Sending tenant.
    pub tenant_id: TenantId,
    /// Target conversation.
    pub conversation_id: ConversationId,
    /// The customer's WhatsApp ID.
    pub wa_id: String,
    /// Text body (1-4096 characters).
    pub text: String,
    /// Optional https media URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// Always `"widget"`.
    pub source: String,
    /// The agent who sent it.
    pub agent_id: UserId,
    /// When it was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_flags() {
        let page = |page, limit, total| ConversationPage {
            data: vec![],
            page,
            limit,
            total,
        };
        let p = page(1, 20, 45);
        assert_eq!(
            (p.total_pages(), p.has_next(), p.has_prev()),
            (3, true, false)
        );
        let p = page(3, 20, 45);
        assert_eq!(
            (p.total_pages(), p.has_next(), p.has_prev()),
            (3, false, true)
        );
        let p = page(1, 20, 0);
        assert_eq!(
            (p.total_pages(), p.has_next(), p.has_prev()),
            (0, false, false)
        );
    }
}
