//! HTTP adapter for the State Manager port ([`StateManager`], spec §3.1.3).
//!
//! - `GET /api/v1/conversations?tenantId&page&limit&status` (5 s): pagination at the top
//!   level (`{data, page, limit, total}`) or nested (`{data, pagination: {page, limit, total}}`);
//! - `GET /api/v1/conversations/:id` (5 s): `tenant_id` or `tenantId`; 404 → `NotFound`;
//! - `GET /api/v1/conversations/:id/messages` (5 s): a bare array, `{data: [...]}` or
//!   `{messages: [...]}`;
//! - `GET /api/v1/metrics/:tenantId?period` and `?startDate&endDate` (`YYYY-MM-DD`) (3 s):
//!   camelCase fields as spec §3.2 step 4 (a missing counter reads as 0).
//!
//! All calls are GETs: retried on 502/503/504, 429, timeouts and connect errors. Field names
//! are accepted in snake_case and camelCase.
//!
//! # Layout
//! Everything is in this file: [`HttpStateManager`], its [`Timeouts`], and the wire DTOs.
//!
//! # Dependencies
//! `portal-domain` (the port), `portal-outbound` (all HTTP plumbing), serde, time.

use async_trait::async_trait;
use portal_domain::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, ConversationStatus,
    ConversationSummary, DateRange, Direction, Message, MessageId, MessageStatus, Period,
    RawMetrics, TenantId,
};
use portal_domain::ports::downstream::{StateManager, StateManagerError};
use portal_outbound::{Call, CallError, Downstream};
use serde::Deserialize;
use std::time::Duration;
use time::OffsetDateTime;

/// The service name in logs, metrics and `/health`.
pub const SERVICE: &str = "stateManager";

/// Per-endpoint deadlines (spec §3.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Conversation list and single conversation.
    pub conversations: Duration,
    /// Messages of a conversation.
    pub messages: Duration,
    /// Metrics.
    pub metrics: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            conversations: Duration::from_secs(5),
            messages: Duration::from_secs(5),
            metrics: Duration::from_secs(3),
        }
    }
}

/// The State Manager over HTTP.
#[derive(Debug, Clone)]
pub struct HttpStateManager {
    downstream: Downstream,
    timeouts: Timeouts,
}

impl HttpStateManager {
    /// An adapter over `downstream` (whose base URL is `STATE_MANAGER_URL`).
    pub fn new(downstream: Downstream) -> Self {
        Self {
            downstream,
            timeouts: Timeouts::default(),
        }
    }

    /// Replaces the deadlines.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    async fn get(&self, call: Call) -> Result<portal_outbound::Reply, StateManagerError> {
        self.downstream.send(call).await.map_err(map_error)
    }

    async fn metrics_call(&self, call: Call) -> Result<RawMetrics, StateManagerError> {
        let reply = self.get(call.timeout(self.timeouts.metrics)).await?;
        let dto: MetricsDto = reply.json_data("metrics").map_err(failure)?;
        Ok(dto.into())
    }
}

fn failure(e: CallError) -> StateManagerError {
    StateManagerError::Failure(e.into_failure())
}

fn map_error(e: CallError) -> StateManagerError {
    match e {
        CallError::NotFound(_) => StateManagerError::NotFound,
        other => failure(other),
    }
}

#[derive(Deserialize)]
struct PaginationDto {
    page: Option<u32>,
    limit: Option<u32>,
    total: Option<u64>,
}

#[derive(Deserialize)]
struct ListDto {
    data: Vec<SummaryDto>,
    page: Option<u32>,
    limit: Option<u32>,
    total: Option<u64>,
    pagination: Option<PaginationDto>,
}

#[derive(Deserialize)]
struct SummaryDto {
    #[serde(alias = "waId")]
    wa_id: String,
    #[serde(alias = "conversationId", alias = "id")]
    conversation_id: ConversationId,
    #[serde(alias = "lastActivity", with = "time::serde::rfc3339")]
    last_activity: OffsetDateTime,
    status: ConversationStatus,
    #[serde(alias = "messageCount", default)]
    message_count: u64,
}

#[derive(Deserialize)]
struct ConversationDto {
    #[serde(alias = "conversationId", alias = "conversation_id")]
    id: ConversationId,
    #[serde(alias = "tenantId")]
    tenant_id: TenantId,
    #[serde(alias = "waId")]
    wa_id: String,
    status: ConversationStatus,
    #[serde(alias = "createdAt", with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(alias = "lastActivity", default, with = "time::serde::rfc3339::option")]
    last_activity: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct MessageDto {
    #[serde(alias = "messageId", alias = "id")]
    message_id: MessageId,
    direction: Direction,
    #[serde(default)]
    text: Option<String>,
    #[serde(alias = "mediaUrl", default)]
    media_url: Option<String>,
    status: MessageStatus,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MessagesDto {
    Bare(Vec<MessageDto>),
    Data { data: Vec<MessageDto> },
    Messages { messages: Vec<MessageDto> },
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MetricsDto {
    total_messages: u64,
    sent: u64,
    delivered: u64,
    read: u64,
    failed: u64,
    active_conversations: u64,
    distinct_wa_ids: u64,
}

impl From<MetricsDto> for RawMetrics {
    fn from(m: MetricsDto) -> Self {
        RawMetrics {
            total_messages: m.total_messages,
            sent: m.sent,
            delivered: m.delivered,
            read: m.read,
            failed: m.failed,
            active_conversations: m.active_conversations,
            distinct_wa_ids: m.distinct_wa_ids,
        }
    }
}

fn ymd(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[async_trait]
impl StateManager for HttpStateManager {
    async fn conversations(
        &self,
        tenant: TenantId,
        query: ConversationQuery,
    ) -> Result<ConversationPage, StateManagerError> {
        let tenant = tenant.to_string();
        let page = query.page.to_string();
        let limit = query.limit.to_string();
        let mut params = vec![
            ("tenantId", tenant.as_str()),
            ("page", page.as_str()),
            ("limit", limit.as_str()),
        ];
        if let Some(status) = query.status {
            params.push(("status", status.as_str()));
        }
        let call = Call::get(
            "get_conversations",
            self.downstream.url(&["api", "v1", "conversations"]),
        )
        .query(params)
        .timeout(self.timeouts.conversations);
        let reply = self.get(call).await?;
        let dto: ListDto = reply.json("conversation list").map_err(failure)?;
        let nested = dto.pagination.as_ref();
        let data: Vec<ConversationSummary> = dto
            .data
            .into_iter()
            .map(|s| ConversationSummary {
                wa_id: s.wa_id,
                conversation_id: s.conversation_id,
                last_activity: s.last_activity,
                status: s.status,
                message_count: s.message_count,
            })
            .collect();
        let total = dto
            .total
            .or_else(|| nested.and_then(|p| p.total))
            .unwrap_or(data.len() as u64);
        Ok(ConversationPage {
            page: dto
                .page
                .or_else(|| nested.and_then(|p| p.page))
                .unwrap_or(query.page),
            limit: dto
                .limit
                .or_else(|| nested.and_then(|p| p.limit))
                .unwrap_or(query.limit),
            total,
            data,
        })
    }

    async fn conversation(&self, id: ConversationId) -> Result<Conversation, StateManagerError> {
        let id = id.to_string();
        let call = Call::get(
            "get_conversation",
            self.downstream.url(&["api", "v1", "conversations", &id]),
        )
        .timeout(self.timeouts.conversations);
        let reply = self.get(call).await?;
        let c: ConversationDto = reply.json_data("conversation").map_err(failure)?;
        Ok(Conversation {
            id: c.id,
            tenant_id: c.tenant_id,
            wa_id: c.wa_id,
            status: c.status,
            created_at: c.created_at,
            last_activity: c.last_activity.unwrap_or(c.created_at),
        })
    }

    async fn messages(&self, id: ConversationId) -> Result<Vec<Message>, StateManagerError> {
        let id = id.to_string();
        let call = Call::get(
            "get_messages",
            self.downstream
                .url(&["api", "v1", "conversations", &id, "messages"]),
        )
        .timeout(self.timeouts.messages);
        let reply = self.get(call).await?;
        let dto: MessagesDto = reply.json("messages").map_err(failure)?;
        let list = match dto {
            MessagesDto::Bare(l)
            | MessagesDto::Data { data: l }
            | MessagesDto::Messages { messages: l } => l,
        };
        Ok(list
            .into_iter()
            .map(|m| Message {
                message_id: m.message_id,
                direction: m.direction,
                text: m.text,
                media_url: m.media_url,
                status: m.status,
                timestamp: m.timestamp,
                error: m.error,
            })
            .collect())
    }

    async fn metrics(
        &self,
        tenant: TenantId,
        period: Period,
    ) -> Result<RawMetrics, StateManagerError> {
        let tenant = tenant.to_string();
        let call = Call::get(
            "get_metrics",
            self.downstream.url(&["api", "v1", "metrics", &tenant]),
        )
        .query([("period", period.as_str())]);
        self.metrics_call(call).await
    }

    async fn metrics_range(
        &self,
        tenant: TenantId,
        range: DateRange,
    ) -> Result<RawMetrics, StateManagerError> {
        let tenant = tenant.to_string();
        let (start, end) = (ymd(range.start()), ymd(range.end()));
        let call = Call::get(
            "get_metrics_range",
            self.downstream.url(&["api", "v1", "metrics", &tenant]),
        )
        .query([("startDate", start.as_str()), ("endDate", end.as_str())]);
        self.metrics_call(call).await
    }
}
