//! Agent widget sends (spec §9.2, decisions §6).
//!
//! A send is checked (the conversation exists, belongs to the agent's tenant and is active:
//! `conversation_for_tenant`, one call of the State Manager port, whose deadline, retries
//! and breaker are the outbound edge's),
//! made idempotent (`Idempotency-Key` over REST, `clientMessageId` over the socket: a retry
//! returns the first result and never queues a second message) and appended to the outbound
//! queue. A failed append leaves nothing behind: the idempotency claim is released and the
//! caller gets [`SendError::Unavailable`].

use crate::audit::{AuditAction, AuditEvent, AuditOutcome, Auditor};
use crate::auth::CurrentSession;
use crate::crypto::sha256_hex;
use crate::error::{DownstreamFailure, StoreError};
use crate::history::{AccessError, conversation_for_tenant};
use crate::model::{ConversationId, MessageId, OutboundMessage, TenantId, UserId};
use crate::ports::downstream::StateManager;
use crate::ports::stores::{IdempotencyClaim, IdempotencyStore, OutboundQueue};
use crate::ports::system::{Clock, Random, RandomExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

mod input;

pub use input::{IdempotencyKey, MediaUrl, MessageText};

/// A validated send.
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// Target conversation.
    pub conversation_id: ConversationId,
    /// Body.
    pub text: MessageText,
    /// Optional attachment.
    pub media_url: Option<MediaUrl>,
    /// Makes retries safe.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The result of a send (spec §9.2 response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReceipt {
    /// ID of the queued message.
    pub message_id: MessageId,
    /// Always `queued`.
    pub status: String,
    /// When it was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
}

/// Why a send was refused.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No such conversation (`NOT_FOUND`, 404).
    #[error("conversation not found")]
    NotFound,
    /// The conversation belongs to another tenant (`TENANT_MISMATCH`, 403).
    #[error("conversation belongs to another tenant")]
    TenantMismatch,
    /// The conversation is closed (`CONFLICT`, 409).
    #[error("conversation is closed")]
    ConversationClosed,
    /// The same idempotency key is being processed by another request (`CONFLICT`, 409).
    #[error("a send with this idempotency key is in progress")]
    InProgress,
    /// A dependency failed; nothing was sent (`SERVICE_UNAVAILABLE`, 503).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl SendError {
    /// A short name for the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            SendError::NotFound => "not_found",
            SendError::TenantMismatch => "tenant_mismatch",
            SendError::ConversationClosed => "conversation_closed",
            SendError::InProgress => "in_progress",
            SendError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<StoreError> for SendError {
    fn from(e: StoreError) -> Self {
        SendError::Unavailable(e.to_string())
    }
}

impl From<DownstreamFailure> for SendError {
    fn from(e: DownstreamFailure) -> Self {
        SendError::Unavailable(e.to_string())
    }
}

/// The widget-send use case.
pub struct Widget {
    state_manager: Arc<dyn StateManager>,
    queue: Arc<dyn OutboundQueue>,
    idempotency: Arc<dyn IdempotencyStore>,
    random: Arc<dyn Random>,
    clock: Arc<dyn Clock>,
    /// Each send (conversation and message IDs, never the text).
    auditor: Arc<Auditor>,
    /// How long a finished send is remembered for retries.
    idempotency_ttl: Duration,
}

impl std::fmt::Debug for Widget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Widget").finish_non_exhaustive()
    }
}

impl Widget {
    /// Builds the use case; finished sends are remembered for 24 hours.
    pub fn new(
        state_manager: Arc<dyn StateManager>,
        queue: Arc<dyn OutboundQueue>,
        idempotency: Arc<dyn IdempotencyStore>,
        random: Arc<dyn Random>,
        clock: Arc<dyn Clock>,
        auditor: Arc<Auditor>,
    ) -> Self {
        Self {
            state_manager,
            queue,
            idempotency,
            random,
            clock,
            auditor,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// Sends a message for the agent of `current`, in `tenant` (the one the session may send
    /// for). Audited: the conversation and message IDs, never the text; a conversation of
    /// another tenant as a tenant-isolation refusal.
    pub async fn send(
        &self,
        current: &CurrentSession,
        tenant: TenantId,
        request: SendRequest,
    ) -> Result<SendReceipt, SendError> {
        let conversation = request.conversation_id;
        let result = self
            .send_as(tenant, &current.session.user_id, request)
            .await;
        let event = match &result {
            Ok(receipt) => AuditEvent::by(current, AuditAction::WidgetSend, AuditOutcome::Success)
                .detail("messageId", receipt.message_id.as_str()),
            Err(SendError::TenantMismatch) => AuditEvent::by(
                current,
                AuditAction::TenantIsolationRefused,
                AuditOutcome::Refused,
            )
            .reason("widget_send"),
            Err(e) => AuditEvent::by(current, AuditAction::WidgetSend, AuditOutcome::Failure)
                .reason(e.reason()),
        };
        self.auditor.record(
            event
                .in_tenant(Some(tenant))
                .target(format!("conversation:{conversation}"))
                .detail("conversationId", conversation.to_string()),
        );
        result
    }

    async fn send_as(
        &self,
        tenant: TenantId,
        agent: &UserId,
        request: SendRequest,
    ) -> Result<SendReceipt, SendError> {
        let conversation = conversation_for_tenant(
            self.state_manager.as_ref(),
            tenant,
            request.conversation_id,
            true,
        )
        .await
        .map_err(|e| match e {
            AccessError::NotFound => SendError::NotFound,
            AccessError::TenantMismatch => SendError::TenantMismatch,
            AccessError::Closed => SendError::ConversationClosed,
            AccessError::Unavailable(f) => f.into(),
        })?;

        // Idempotency keys are scoped to the tenant and the agent, and stored hashed.
        let claim_key = request
            .idempotency_key
            .as_ref()
            .map(|k| sha256_hex(format!("widget\u{0}{tenant}\u{0}{agent}\u{0}{}", k.0).as_bytes()));
        if let Some(key) = &claim_key {
            match self.idempotency.claim(key, self.idempotency_ttl).await? {
                IdempotencyClaim::Claimed => {}
                IdempotencyClaim::InProgress => return Err(SendError::InProgress),
                IdempotencyClaim::Done(json) => {
                    return serde_json::from_str(&json).map_err(|e| {
                        SendError::Unavailable(format!("corrupt idempotency record: {e}"))
                    });
                }
            }
        }

        let now = self.clock.now();
        let message = OutboundMessage {
            message_id: MessageId::parse(self.random.uuid().to_string())
                .map_err(|e| SendError::Unavailable(e.to_string()))?,
            tenant_id: tenant,
            conversation_id: request.conversation_id,
            wa_id: conversation.wa_id,
            text: request.text.0,
            media_url: request.media_url.map(|m| m.0),
            source: "widget".to_owned(),
            agent_id: agent.clone(),
            timestamp: now,
        };
        if let Err(e) = self.queue.enqueue(&message).await {
            if let Some(key) = &claim_key
                && let Err(abandon) = self.idempotency.abandon(key).await
            {
                tracing::warn!(error = %abandon, "could not release idempotency claim");
            }
            tracing::error!(error = %e, "outbound queue refused a widget message");
            return Err(e.into());
        }
        let receipt = SendReceipt {
            message_id: message.message_id,
            status: "queued".to_owned(),
            queued_at: now,
        };
        if let Some(key) = &claim_key {
            let json = serde_json::to_string(&receipt)
                .map_err(|e| SendError::Unavailable(e.to_string()))?;
            // The message is queued: a failure to record the result only weakens
            // idempotency for this key, it must not turn a sent message into an error.
            if let Err(e) = self
                .idempotency
                .finish(key, &json, self.idempotency_ttl)
                .await
            {
                tracing::warn!(error = %e, "could not record idempotent send result");
            }
        }
        tracing::info!(
            message_id = %receipt.message_id,
            conversation_id = %request.conversation_id,
            tenant_id = %tenant,
            agent_id = %agent,
            "widget message queued"
        );
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests;
