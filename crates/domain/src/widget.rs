//! Agent widget sends (spec §9.2, decisions §6).
//!
//! A send is checked (the conversation exists, belongs to the agent's tenant and is active:
//! [`conversation_for_tenant`], one call of the State Manager port, whose deadline, retries
//! and breaker are the outbound edge's),
//! made idempotent (`Idempotency-Key` over REST, `clientMessageId` over the socket: a retry
//! returns the first result and never queues a second message) and appended to the outbound
//! queue. A failed append leaves nothing behind: the idempotency claim is released and the
//! caller gets [`SendError::Unavailable`].

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

/// A message body: 1-4096 characters, not only white space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Longest body, in characters.
    pub const MAX_CHARS: usize = 4096;

    /// Validates the body.
    pub fn parse(text: impl Into<String>) -> Result<Self, &'static str> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err("text must not be empty");
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err("text must be at most 4096 characters");
        }
        Ok(Self(text))
    }
    /// The body.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A media attachment URL: absolute `https`, at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUrl(String);

impl MediaUrl {
    /// Validates the URL.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.len() > 2048 {
            return Err("mediaUrl must be at most 2048 characters");
        }
        match url::Url::parse(raw) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {
                Ok(Self(u.to_string()))
            }
            Ok(_) => Err("mediaUrl must be an https URL"),
            Err(_) => Err("mediaUrl must be a valid URL"),
        }
    }
    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen idempotency key: 1-128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates the key.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("idempotency key must be 1-128 visible ASCII characters");
        }
        Ok(Self(raw.to_owned()))
    }
}

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
    ) -> Self {
        Self {
            state_manager,
            queue,
            idempotency,
            random,
            clock,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// Sends a message for `agent` of `tenant`.
    pub async fn send(
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
mod tests {
    use super::*;

    use crate::model::{Conversation, ConversationStatus};
    use crate::ports::downstream::{MockStateManager, StateManagerError};
    use crate::ports::stores::{MockIdempotencyStore, MockOutboundQueue};
    use crate::ports::system::SystemClock;
    use std::sync::Mutex;

    struct SeqRandom(Mutex<u8>);
    impl Random for SeqRandom {
        fn fill(&self, buf: &mut [u8]) {
            let mut n = self.0.lock().unwrap();
            *n += 1;
            buf.fill(*n);
        }
    }

    fn conversation(tenant: TenantId, status: ConversationStatus) -> Conversation {
        let now = OffsetDateTime::now_utc();
        Conversation {
            id: ConversationId::new_random(),
            tenant_id: tenant,
            wa_id: "15550100".into(),
            status,
            created_at: now,
            last_activity: now,
        }
    }

    fn widget(sm: MockStateManager, q: MockOutboundQueue, idem: MockIdempotencyStore) -> Widget {
        Widget::new(
            Arc::new(sm),
            Arc::new(q),
            Arc::new(idem),
            Arc::new(SeqRandom(Mutex::new(0))),
            Arc::new(SystemClock),
        )
    }

    fn request(key: Option<&str>) -> SendRequest {
        SendRequest {
            conversation_id: ConversationId::new_random(),
            text: MessageText::parse("Hello").unwrap(),
            media_url: None,
            idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        }
    }

    fn state_manager(c: Conversation) -> MockStateManager {
        let mut sm = MockStateManager::new();
        sm.expect_conversation().returning(move |_| Ok(c.clone()));
        sm
    }

    #[tokio::test]
    async fn queues_one_message_and_records_the_result() {
        let tenant = TenantId::new_random();
        let mut q = MockOutboundQueue::new();
        q.expect_enqueue()
            .times(1)
            .withf(move |m| m.tenant_id == tenant && m.text == "Hello" && m.source == "widget")
            .returning(|_| Ok("1-0".into()));
        let mut idem = MockIdempotencyStore::new();
        idem.expect_claim()
            .times(1)
            .returning(|_, _| Ok(IdempotencyClaim::Claimed));
        idem.expect_finish().times(1).returning(|_, _, _| Ok(()));
        let w = widget(
            state_manager(conversation(tenant, ConversationStatus::Active)),
            q,
            idem,
        );
        let receipt = w
            .send(
                tenant,
                &UserId::parse("agent").unwrap(),
                request(Some("k1")),
            )
            .await
            .unwrap();
        assert_eq!(receipt.status, "queued");
    }

    #[tokio::test]
    async fn a_retried_key_returns_the_first_result_without_queueing() {
        let tenant = TenantId::new_random();
        let first = SendReceipt {
            message_id: MessageId::parse("first").unwrap(),
            status: "queued".into(),
            queued_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_string(&first).unwrap();
        let mut q = MockOutboundQueue::new();
        q.expect_enqueue().never();
        let mut idem = MockIdempotencyStore::new();
        idem.expect_claim()
            .returning(move |_, _| Ok(IdempotencyClaim::Done(json.clone())));
        let w = widget(
            state_manager(conversation(tenant, ConversationStatus::Active)),
            q,
            idem,
        );
        let receipt = w
            .send(
                tenant,
                &UserId::parse("agent").unwrap(),
                request(Some("k1")),
            )
            .await
            .unwrap();
        assert_eq!(receipt, first);
    }

    #[tokio::test]
    async fn another_tenants_or_a_closed_conversation_is_refused_without_queueing() {
        let tenant = TenantId::new_random();
        for (conv, expect_mismatch) in [
            (
                conversation(TenantId::new_random(), ConversationStatus::Active),
                true,
            ),
            (conversation(tenant, ConversationStatus::Closed), false),
        ] {
            let mut q = MockOutboundQueue::new();
            q.expect_enqueue().never();
            let mut idem = MockIdempotencyStore::new();
            idem.expect_claim().never();
            let w = widget(state_manager(conv), q, idem);
            let err = w
                .send(tenant, &UserId::parse("agent").unwrap(), request(Some("k")))
                .await
                .unwrap_err();
            if expect_mismatch {
                assert!(matches!(err, SendError::TenantMismatch), "{err:?}");
            } else {
                assert!(matches!(err, SendError::ConversationClosed), "{err:?}");
            }
        }
    }

    #[tokio::test]
    async fn unknown_conversation_is_not_found() {
        let mut sm = MockStateManager::new();
        sm.expect_conversation()
            .returning(|_| Err(StateManagerError::NotFound));
        let w = widget(sm, MockOutboundQueue::new(), MockIdempotencyStore::new());
        let err = w
            .send(
                TenantId::new_random(),
                &UserId::parse("a").unwrap(),
                request(None),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::NotFound));
    }

    #[tokio::test]
    async fn a_failing_conversation_check_is_one_call_and_queues_nothing() {
        let mut sm = MockStateManager::new();
        sm.expect_conversation()
            .times(1)
            .returning(|_| Err(DownstreamFailure::Timeout.into()));
        let mut q = MockOutboundQueue::new();
        q.expect_enqueue().never();
        let mut idem = MockIdempotencyStore::new();
        idem.expect_claim().never();
        let err = widget(sm, q, idem)
            .send(
                TenantId::new_random(),
                &UserId::parse("a").unwrap(),
                request(Some("k")),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_failed_enqueue_releases_the_claim_so_a_retry_can_send() {
        let tenant = TenantId::new_random();
        let mut q = MockOutboundQueue::new();
        q.expect_enqueue()
            .returning(|_| Err(StoreError::Unavailable("down".into())));
        let mut idem = MockIdempotencyStore::new();
        idem.expect_claim()
            .returning(|_, _| Ok(IdempotencyClaim::Claimed));
        idem.expect_abandon().times(1).returning(|_| Ok(()));
        idem.expect_finish().never();
        let w = widget(
            state_manager(conversation(tenant, ConversationStatus::Active)),
            q,
            idem,
        );
        let err = w
            .send(tenant, &UserId::parse("agent").unwrap(), request(Some("k")))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Unavailable(_)));
    }

    #[tokio::test]
    async fn a_key_in_progress_is_a_conflict() {
        let tenant = TenantId::new_random();
        let mut q = MockOutboundQueue::new();
        q.expect_enqueue().never();
        let mut idem = MockIdempotencyStore::new();
        idem.expect_claim()
            .returning(|_, _| Ok(IdempotencyClaim::InProgress));
        let w = widget(
            state_manager(conversation(tenant, ConversationStatus::Active)),
            q,
            idem,
        );
        let err = w
            .send(tenant, &UserId::parse("agent").unwrap(), request(Some("k")))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::InProgress));
    }

    #[test]
    fn text_rules() {
        assert!(MessageText::parse("hi").is_ok());
        assert!(MessageText::parse("").is_err());
        assert!(MessageText::parse("   ").is_err());
        assert!(MessageText::parse("é".repeat(4096)).is_ok());
        assert!(MessageText::parse("a".repeat(4097)).is_err());
    }

    #[test]
    fn media_url_must_be_https() {
        assert!(MediaUrl::parse("https://example.com/a.jpg").is_ok());
        for bad in [
            "http://example.com/a.jpg",
            "ftp://x.example/a",
            "not a url",
            "https://",
        ] {
            assert!(MediaUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idempotency_key_rules() {
        assert!(IdempotencyKey::parse("abc-123").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
    }
}
