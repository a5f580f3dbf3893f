//! Conversation history (spec §8, §4.2.4, §13.2).
//!
//! [`History::threads`] serves a page of the tenant's conversation list from the cache (fresh
//! for 5 minutes) through `CacheAside` (single flight, lock, stale fallback, 503 when there
//! is nothing). [`History::messages`] checks that the conversation belongs to the caller's
//! tenant before reading its messages; `conversation_for_tenant` is that check on its own,
//! for other use cases (widget send). Each read is one call of the State Manager port; its
//! deadline, retries and breaker are the outbound edge's.

use crate::audit::{AuditAction, AuditEvent, AuditOutcome, Auditor};
use crate::auth::CurrentSession;
use crate::cache_aside::{CacheAside, CacheAsideConfig, CacheAsideError, Cached, ReadPorts};
use crate::error::DownstreamFailure;
use crate::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, ConversationStatus,
    ConversationSummary, Message, TenantId,
};
use crate::ports::downstream::{StateManager, StateManagerError};
use crate::ports::stores::CacheKey;
use futures::FutureExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// How long a conversation-list page is served from the cache (spec §13.1).
pub(crate) const CONVERSATIONS_FRESH_FOR: Duration = Duration::from_secs(300);

/// A refused query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The parameter.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: &'static str,
}

/// Validates the conversation-list parameters (spec §8.1): `page` 1-100,000 (default 1), `limit`
/// 1-100 (default 20), `status` `active` or `closed` (default: both). Reports every bad field.
pub fn parse_query(
    page: Option<i64>,
    limit: Option<i64>,
    status: Option<&str>,
) -> Result<ConversationQuery, Vec<FieldError>> {
    let mut errors = Vec::new();
    let page = match page {
        None => Some(1),
        Some(p) => u32::try_from(p)
            .ok()
            .filter(|p| (1..=ConversationQuery::MAX_PAGE).contains(p)),
    };
    if page.is_none() {
        errors.push(FieldError {
            field: "page",
            message: "page must be between 1 and 100000",
        });
    }
    let limit = match limit {
        None => Some(ConversationQuery::DEFAULT_LIMIT),
        Some(l) => u32::try_from(l)
            .ok()
            .filter(|l| (1..=ConversationQuery::MAX_LIMIT).contains(l)),
    };
    if limit.is_none() {
        errors.push(FieldError {
            field: "limit",
            message: "limit must be between 1 and 100",
        });
    }
    let status = match status {
        None => Ok(None),
        Some(s) => s.parse::<ConversationStatus>().map(Some),
    };
    if status.is_err() {
        errors.push(FieldError {
            field: "status",
            message: "status must be \"active\" or \"closed\"",
        });
    }
    match (page, limit, status) {
        (Some(page), Some(limit), Ok(status)) if errors.is_empty() => Ok(ConversationQuery {
            page,
            limit,
            status,
        }),
        _ => Err(errors),
    }
}

/// Pagination block of a list response (spec §8.1, §13.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Page (1-based).
    pub page: u32,
    /// Page size.
    pub limit: u32,
    /// Rows across all pages.
    pub total: u64,
    /// `ceil(total / limit)`.
    pub total_pages: u64,
    /// A later page exists.
    pub has_next: bool,
    /// An earlier page exists.
    pub has_prev: bool,
}

/// `GET /api/v1/history/threads` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadsPage {
    /// The rows.
    pub data: Vec<ConversationSummary>,
    /// Where this page is.
    pub pagination: Pagination,
    /// Present (and `true`) only when the State Manager failed and this is the last known
    /// page.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

impl From<Cached<ConversationPage>> for ThreadsPage {
    fn from(c: Cached<ConversationPage>) -> Self {
        let p = c.value;
        let pagination = Pagination {
            page: p.page,
            limit: p.limit,
            total: p.total,
            total_pages: p.total_pages(),
            has_next: p.has_next(),
            has_prev: p.has_prev(),
        };
        Self {
            data: p.data,
            pagination,
            stale: c.stale,
        }
    }
}

/// `GET /api/v1/history/threads/:id/messages` response (spec §8.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversationMessages {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The customer's WhatsApp ID.
    pub wa_id: String,
    /// Its messages, as the State Manager orders them.
    pub messages: Vec<Message>,
}

/// Why a conversation could not be used by the caller's tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No such conversation (`NOT_FOUND`, 404).
    #[error("conversation not found")]
    NotFound,
    /// It belongs to another tenant (`TENANT_MISMATCH`, 403).
    #[error("conversation belongs to another tenant")]
    TenantMismatch,
    /// It is closed and the operation needs an active one (`CONFLICT`, 409).
    #[error("conversation is closed")]
    Closed,
    /// The State Manager failed (`SERVICE_UNAVAILABLE`, 503).
    #[error("state manager unavailable: {0}")]
    Unavailable(DownstreamFailure),
}

/// Fetches conversation `id` and checks it belongs to `tenant` (and, with `require_active`,
/// that it is open). A mismatch is logged as a security event with both tenants.
pub(crate) async fn conversation_for_tenant(
    state_manager: &dyn StateManager,
    tenant: TenantId,
    id: ConversationId,
    require_active: bool,
) -> Result<Conversation, AccessError> {
    let conversation = state_manager.conversation(id).await.map_err(access_error)?;
    if conversation.tenant_id != tenant {
        tracing::warn!(
            security_event = "tenant_mismatch",
            tenant_id = %tenant,
            conversation_tenant_id = %conversation.tenant_id,
            conversation_id = %id,
            "access to another tenant's conversation refused"
        );
        return Err(AccessError::TenantMismatch);
    }
    if require_active && conversation.status != ConversationStatus::Active {
        return Err(AccessError::Closed);
    }
    Ok(conversation)
}

fn access_error(e: StateManagerError) -> AccessError {
    match e {
        StateManagerError::NotFound => AccessError::NotFound,
        StateManagerError::Failure(f) => AccessError::Unavailable(f),
    }
}

/// The conversation-history use case.
pub struct History {
    threads: CacheAside<ConversationPage>,
    state_manager: Arc<dyn StateManager>,
    auditor: Arc<Auditor>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl History {
    /// Builds the use case with the spec's timings (pages cached 5 minutes).
    pub fn new(ports: ReadPorts) -> Self {
        Self::with_config(ports, CacheAsideConfig::new(CONVERSATIONS_FRESH_FOR))
    }

    /// Builds the use case with explicit cache timings.
    pub(crate) fn with_config(ports: ReadPorts, config: CacheAsideConfig) -> Self {
        Self {
            threads: ports.cache_aside(config),
            state_manager: ports.state_manager,
            auditor: ports.auditor,
        }
    }

    /// A page of the tenant's conversations (spec §8.1).
    pub async fn threads(
        &self,
        tenant: TenantId,
        query: ConversationQuery,
    ) -> Result<ThreadsPage, CacheAsideError> {
        let fetch = || {
            let state_manager = Arc::clone(&self.state_manager);
            async move {
                tracing::info!(
                    tenant_id = %tenant,
                    page = query.page,
                    limit = query.limit,
                    conversation_status = query.status.map(|s| s.as_str()),
                    "fetching conversations from the State Manager"
                );
                state_manager
                    .conversations(tenant, query)
                    .await
                    .map_err(|e| match e {
                        StateManagerError::Failure(f) => f,
                        StateManagerError::NotFound => {
                            DownstreamFailure::Protocol("conversation list not found".to_owned())
                        }
                    })
            }
            .boxed()
        };
        let key = CacheKey::Conversations {
            tenant,
            page: query.page,
            limit: query.limit,
            status: query.status.map_or("all", ConversationStatus::as_str),
        };
        Ok(self.threads.get(key, fetch).await?.into())
    }

    /// Checks that conversation `id` belongs to `tenant` (and, with `require_active`, is open).
    pub(crate) async fn conversation_for_tenant(
        &self,
        tenant: TenantId,
        id: ConversationId,
        require_active: bool,
    ) -> Result<Conversation, AccessError> {
        conversation_for_tenant(self.state_manager.as_ref(), tenant, id, require_active).await
    }

    /// A conversation's messages, after checking it belongs to `tenant` (spec §8.2); one of
    /// another tenant is refused and the refusal audited. Never [`AccessError::Closed`]:
    /// closed conversations keep a readable history.
    pub async fn messages(
        &self,
        current: &CurrentSession,
        tenant: TenantId,
        id: ConversationId,
    ) -> Result<ConversationMessages, AccessError> {
        let conversation = match self.conversation_for_tenant(tenant, id, false).await {
            Err(AccessError::TenantMismatch) => {
                self.auditor.record(
                    AuditEvent::by(
                        current,
                        AuditAction::TenantIsolationRefused,
                        AuditOutcome::Refused,
                    )
                    .target(format!("conversation:{id}"))
                    .reason("history"),
                );
                return Err(AccessError::TenantMismatch);
            }
            other => other?,
        };
        let messages = self
            .state_manager
            .messages(id)
            .await
            .map_err(access_error)?;
        Ok(ConversationMessages {
            conversation_id: id,
            wa_id: conversation.wa_id,
            messages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_aside::test_support::{CountingTelemetry, FakeCache, FakeLock, TokioClock};
    use crate::model::{Direction, MessageId, MessageStatus};
    use crate::ports::downstream::MockStateManager;
    use time::OffsetDateTime;

    fn history(sm: MockStateManager) -> History {
        History::new(ReadPorts {
            state_manager: Arc::new(sm),
            cache: Arc::new(FakeCache::default()),
            lock: Arc::new(FakeLock::default()),
            clock: Arc::new(TokioClock::new()),
            telemetry: Arc::new(CountingTelemetry::default()),
            auditor: crate::audit::test_support::discarding(),
        })
    }

    fn summary(n: u64) -> ConversationSummary {
        ConversationSummary {
            wa_id: format!("1555010{n}"),
            conversation_id: ConversationId::new_random(),
            last_activity: OffsetDateTime::UNIX_EPOCH,
            status: ConversationStatus::Active,
            message_count: n,
        }
    }

    fn conversation(tenant: TenantId, id: ConversationId) -> Conversation {
        Conversation {
            id,
            tenant_id: tenant,
            wa_id: "15550100".into(),
            status: ConversationStatus::Closed,
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_activity: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn query_defaults_and_limits() {
        assert_eq!(
            parse_query(None, None, None),
            Ok(ConversationQuery {
                page: 1,
                limit: 20,
                status: None
            })
        );
        assert_eq!(
            parse_query(Some(3), Some(100), Some("closed")),
            Ok(ConversationQuery {
                page: 3,
                limit: 100,
                status: Some(ConversationStatus::Closed)
            })
        );
        let errors = parse_query(Some(0), Some(101), Some("open")).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["page", "limit", "status"]);
        assert!(parse_query(Some(-1), None, None).is_err());
        assert!(parse_query(None, Some(0), None).is_err());
        assert!(parse_query(Some(i64::MAX), None, None).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn threads_are_paginated_and_cached_per_query() {
        let tenant = TenantId::new_random();
        let mut sm = MockStateManager::new();
        sm.expect_conversations()
            .withf(move |t, q| *t == tenant && q.page == 2 && q.limit == 20)
            .times(1)
            .returning(|_, q| {
                Ok(ConversationPage {
                    data: vec![summary(1), summary(2)],
                    page: q.page,
                    limit: q.limit,
                    total: 45,
                })
            });
        let h = history(sm);
        let query = parse_query(Some(2), None, None).unwrap();
        let page = h.threads(tenant, query).await.unwrap();
        assert_eq!(
            page.pagination,
            Pagination {
                page: 2,
                limit: 20,
                total: 45,
                total_pages: 3,
                has_next: true,
                has_prev: true
            }
        );
        let again = h.threads(tenant, query).await.unwrap();
        assert_eq!(again, page, "second read served from the cache");

        let json = serde_json::to_value(&page).unwrap();
        assert_eq!(json["pagination"]["totalPages"], 3);
        assert_eq!(json["pagination"]["hasNext"], true);
        assert_eq!(json["data"][0]["wa_id"], "15550101");
        assert!(json.get("stale").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn threads_with_nothing_cached_and_the_state_manager_down_are_unavailable() {
        let mut sm = MockStateManager::new();
        sm.expect_conversations()
            .returning(|_, _| Err(DownstreamFailure::Timeout.into()));
        let err = history(sm)
            .threads(
                TenantId::new_random(),
                parse_query(None, None, None).unwrap(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CacheAsideError::Unavailable(_)));
    }

    #[tokio::test]
    async fn messages_of_an_own_conversation_are_returned_even_when_closed() {
        let (tenant, id) = (TenantId::new_random(), ConversationId::new_random());
        let mut sm = MockStateManager::new();
        sm.expect_conversation()
            .returning(move |id| Ok(conversation(tenant, id)));
        sm.expect_messages().times(1).returning(|_| {
            Ok(vec![Message {
                message_id: MessageId::parse("msg-1").unwrap(),
                direction: Direction::Inbound,
                text: Some("Hello, I need help".into()),
                media_url: None,
                status: MessageStatus::Read,
                timestamp: OffsetDateTime::UNIX_EPOCH,
                error: None,
            }])
        });
        let body = history(sm)
            .messages(
                &crate::audit::test_support::signed_in("viewer", crate::model::Role::Viewer),
                tenant,
                id,
            )
            .await
            .unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["conversation_id"], id.to_string());
        assert_eq!(json["wa_id"], "15550100");
        assert_eq!(json["messages"][0]["message_id"], "msg-1");
        assert_eq!(json["messages"][0]["media_url"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn another_tenants_conversation_is_refused_before_reading_messages() {
        let mut sm = MockStateManager::new();
        sm.expect_conversation()
            .returning(|id| Ok(conversation(TenantId::new_random(), id)));
        sm.expect_messages().never();
        let err = history(sm)
            .messages(
                &crate::audit::test_support::signed_in("viewer", crate::model::Role::Viewer),
                TenantId::new_random(),
                ConversationId::new_random(),
            )
            .await
            .unwrap_err();
        assert_eq!(err, AccessError::TenantMismatch);
    }

    #[tokio::test]
    async fn an_unknown_conversation_is_not_found() {
        let mut sm = MockStateManager::new();
        sm.expect_conversation()
            .returning(|_| Err(StateManagerError::NotFound));
        sm.expect_messages().never();
        let err = history(sm)
            .messages(
                &crate::audit::test_support::signed_in("viewer", crate::model::Role::Viewer),
                TenantId::new_random(),
                ConversationId::new_random(),
            )
            .await
            .unwrap_err();
        assert_eq!(err, AccessError::NotFound);
    }

    #[tokio::test]
    async fn a_failing_conversation_read_is_one_call_and_unavailable() {
        let mut sm = MockStateManager::new();
        sm.expect_conversation()
            .times(1)
            .returning(|_| Err(DownstreamFailure::Unavailable { status: Some(503) }.into()));
        sm.expect_messages().never();
        let err = history(sm)
            .messages(
                &crate::audit::test_support::signed_in("viewer", crate::model::Role::Viewer),
                TenantId::new_random(),
                ConversationId::new_random(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err,
            AccessError::Unavailable(DownstreamFailure::Unavailable { status: Some(503) })
        );
    }

    #[tokio::test]
    async fn an_active_conversation_can_be_required() {
        let tenant = TenantId::new_random();
        let mut sm = MockStateManager::new();
        sm.expect_conversation()
            .returning(move |id| Ok(conversation(tenant, id)));
        let h = history(sm);
        let id = ConversationId::new_random();
        assert!(h.conversation_for_tenant(tenant, id, false).await.is_ok());
        assert_eq!(
            h.conversation_for_tenant(tenant, id, true).await,
            Err(AccessError::Closed)
        );
    }
}
