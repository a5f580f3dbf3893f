//! `/api/v1/history/*` (spec §8): the tenant's conversation list (cached, paginated) and one
//! conversation's messages (after checking it belongs to the session's tenant).
//!
//! Any role of an onboarded tenant may read; viewers see customers' numbers masked
//! (`1555•••829`), admins and agents whole. The tenant always comes from the session; a
//! conversation of another tenant is 403 `TENANT_MISMATCH` (logged and audited by the use case
//! as a security event).

use crate::error::{ApiError, ErrorBody, ErrorCode, FieldProblem};
use crate::extract::Authenticated;
use crate::routes::dashboard::tenant_for;
use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use portal_domain::auth::Capability;
use portal_domain::cache_aside::CacheAsideError;
use portal_domain::history::{AccessError, ConversationMessages, ThreadsPage, parse_query};
use portal_domain::model::{
    ConversationId, ConversationQuery, ConversationStatus, ConversationSummary, Direction, Message,
    MessageStatus, Role, customer_number_for,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /api/v1/history/threads`. Values are read as text so that `limit=abc` is
/// reported against its own field. Documented by hand ([`IntoParams`] below) so that the
/// bounds shown are the domain's constants.
#[derive(Debug, Deserialize)]
pub(crate) struct ThreadsQuery {
    /// Page number (default 1; bounds: [`ConversationQuery`]'s constants).
    pub page: Option<String>,
    /// Page size (default and maximum: [`ConversationQuery`]'s constants).
    pub limit: Option<String>,
    /// `active` or `closed` (default: both).
    pub status: Option<String>,
}

impl IntoParams for ThreadsQuery {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let integer = |max: u32| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                .minimum(Some(1))
                .maximum(Some(max))
                .build()
        };
        let param = |name: &str, description: String, schema: Object| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(parameter_in().unwrap_or(ParameterIn::Query))
                .description(Some(description))
                .required(Required::False)
                .schema(Some(schema))
                .build()
        };
        vec![
            param(
                "page",
                format!(
                    "Page number, 1-{} (default 1).",
                    ConversationQuery::MAX_PAGE
                ),
                integer(ConversationQuery::MAX_PAGE),
            ),
            param(
                "limit",
                format!(
                    "Page size, 1-{} (default {}).",
                    ConversationQuery::MAX_LIMIT,
                    ConversationQuery::DEFAULT_LIMIT
                ),
                integer(ConversationQuery::MAX_LIMIT),
            ),
            param(
                "status",
                "`active` or `closed` (default: both).".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["active", "closed"]))
                    .build(),
            ),
        ]
    }
}

/// Path of `GET /api/v1/history/threads/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ThreadPath {
    /// The conversation ID (UUID).
    #[param(format = Uuid)]
    pub id: String,
}

/// A decimal integer as JSON writes one: an optional `-` and digits, nothing else (no sign
/// `+`, no white space, no fraction). A number too large for `i64` is still a number: it is
/// out of range.
fn integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<i64>().unwrap_or(if s.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    }))
}

/// Open or closed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ThreadStatus {
    /// Open: messages may be sent.
    Active,
    /// Closed: read-only history.
    Closed,
}

impl From<ConversationStatus> for ThreadStatus {
    fn from(s: ConversationStatus) -> Self {
        match s {
            ConversationStatus::Active => Self::Active,
            ConversationStatus::Closed => Self::Closed,
        }
    }
}

/// One conversation of the list (spec §8.1).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ThreadRow {
    /// The customer's WhatsApp ID.
    pub wa_id: String,
    /// The conversation.
    #[schema(value_type = String, format = Uuid)]
    pub conversation_id: ConversationId,
    /// Its last message.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_activity: OffsetDateTime,
    /// Open or closed.
    pub status: ThreadStatus,
    /// Number of messages.
    pub message_count: u64,
}

impl From<&ConversationSummary> for ThreadRow {
    fn from(c: &ConversationSummary) -> Self {
        Self {
            wa_id: c.wa_id.clone(),
            conversation_id: c.conversation_id,
            last_activity: c.last_activity,
            status: c.status.into(),
            message_count: c.message_count,
        }
    }
}

/// Where a page is (spec §8.1, §13.2).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageInfo {
    /// This page (1-based).
    pub page: u32,
    /// Page size.
    pub limit: u32,
    /// Conversations across all pages.
    pub total: u64,
    /// `ceil(total / limit)`.
    pub total_pages: u64,
    /// A later page exists.
    pub has_next: bool,
    /// An earlier page exists.
    pub has_prev: bool,
}

/// `GET /api/v1/history/threads`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ThreadsResponse {
    /// The page's conversations, most recent first.
    pub data: Vec<ThreadRow>,
    /// Where this page is.
    pub pagination: PageInfo,
    /// Present, and `true`, only when the State Manager is failing and this is the last
    /// known page.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub stale: bool,
}

impl From<&ThreadsPage> for ThreadsResponse {
    fn from(p: &ThreadsPage) -> Self {
        let g = &p.pagination;
        Self {
            data: p.data.iter().map(ThreadRow::from).collect(),
            pagination: PageInfo {
                page: g.page,
                limit: g.limit,
                total: g.total,
                total_pages: g.total_pages,
                has_next: g.has_next,
                has_prev: g.has_prev,
            },
            stale: p.stale,
        }
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MessageDirection {
    /// From the customer.
    Inbound,
    /// To the customer.
    Outbound,
}

impl From<Direction> for MessageDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Inbound => Self::Inbound,
            Direction::Outbound => Self::Outbound,
        }
    }
}

/// A message's delivery status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DeliveryStatus {
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

impl From<MessageStatus> for DeliveryStatus {
    fn from(s: MessageStatus) -> Self {
        match s {
            MessageStatus::Queued => Self::Queued,
            MessageStatus::Received => Self::Received,
            MessageStatus::Sent => Self::Sent,
            MessageStatus::Delivered => Self::Delivered,
            MessageStatus::Read => Self::Read,
            MessageStatus::Failed => Self::Failed,
        }
    }
}

/// One message of a conversation (spec §8.2).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessageRow {
    /// The message.
    pub message_id: String,
    /// Inbound or outbound.
    pub direction: MessageDirection,
    /// Its text (null for a media-only message).
    #[schema(required = true)]
    pub text: Option<String>,
    /// Its attachment (null without one).
    #[schema(required = true)]
    pub media_url: Option<String>,
    /// Delivery status.
    pub status: DeliveryStatus,
    /// When it was sent or received.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: OffsetDateTime,
    /// Why it failed (null unless `failed`).
    #[schema(required = true)]
    pub error: Option<String>,
}

impl From<&Message> for MessageRow {
    fn from(m: &Message) -> Self {
        Self {
            message_id: m.message_id.to_string(),
            direction: m.direction.into(),
            text: m.text.clone(),
            media_url: m.media_url.clone(),
            status: m.status.into(),
            timestamp: m.timestamp,
            error: m.error.clone(),
        }
    }
}

/// `GET /api/v1/history/threads/{id}/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessagesResponse {
    /// The conversation.
    #[schema(value_type = String, format = Uuid)]
    pub conversation_id: ConversationId,
    /// The customer's WhatsApp ID.
    pub wa_id: String,
    /// Its messages, oldest first.
    pub messages: Vec<MessageRow>,
}

impl From<&ConversationMessages> for MessagesResponse {
    fn from(c: &ConversationMessages) -> Self {
        Self {
            conversation_id: c.conversation_id,
            wa_id: c.wa_id.clone(),
            messages: c.messages.iter().map(MessageRow::from).collect(),
        }
    }
}

/// Validates the list parameters, reporting every bad field.
pub(crate) fn parse_threads_query(q: &ThreadsQuery) -> Result<ConversationQuery, ApiError> {
    let mut problems = Vec::new();
    let mut int = |field: &str, raw: Option<&str>| match raw {
        None => None,
        Some(s) => match integer(s) {
            Some(n) => Some(n),
            None => {
                problems.push(FieldProblem {
                    field: field.to_owned(),
                    message: format!("{field} must be an integer"),
                });
                // Reported here; keep it out of the range checks below.
                None
            }
        },
    };
    let page = int("page", q.page.as_deref());
    let limit = int("limit", q.limit.as_deref());
    match parse_query(page, limit, q.status.as_deref()) {
        Ok(query) if problems.is_empty() => Ok(query),
        Ok(_) => Err(ApiError::validation_list(problems)),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| FieldProblem {
                field: e.field.to_owned(),
                message: e.message.to_owned(),
            }));
            Err(ApiError::validation_list(problems))
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => ApiError::new(ErrorCode::NotFound, "Conversation not found"),
            AccessError::TenantMismatch => {
                ApiError::new(ErrorCode::TenantMismatch, "Access denied")
            }
            AccessError::Closed => ApiError::new(ErrorCode::Conflict, "Conversation is closed"),
            AccessError::Unavailable(f) => ApiError::unavailable(f),
        }
    }
}

impl From<CacheAsideError> for ApiError {
    fn from(e: CacheAsideError) -> Self {
        match e {
            CacheAsideError::Unavailable(f) => ApiError::unavailable(f),
            CacheAsideError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// A page of the tenant's conversations (spec §8.1, with `hasNext`/`hasPrev` of §13.2);
/// cached for 5 minutes.
#[utoipa::path(
    tag = "history",
    params(ThreadsQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "A page of conversations; `\"stale\": true` when the State Manager is failing and this is the last known page", body = ThreadsResponse),
        (status = 400, description = "VALIDATION_FAILED: bad `page`, `limit` or `status`", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: onboarding not finished", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the State Manager is failing and nothing is cached", body = ErrorBody),
    )
)]
#[get("/api/v1/history/threads")]
pub(crate) async fn threads(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ThreadsQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant_for(&auth, Capability::ViewHistory)?;
    let query = parse_threads_query(&query)?;
    let page = state.history().threads(tenant, query).await?;
    Ok(HttpResponse::Ok().json(ThreadsResponse::from(&page).shown_to(auth.current.session.role)))
}

/// A conversation's messages (spec §8.2).
#[utoipa::path(
    tag = "history",
    params(ThreadPath),
    security(("session" = [])),
    responses(
        (status = 200, description = "The conversation's messages", body = MessagesResponse),
        (status = 400, description = "VALIDATION_FAILED: the ID is not a UUID", body = ErrorBody),
        (status = 403, description = "TENANT_MISMATCH: another tenant's conversation; FORBIDDEN: onboarding not finished", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such conversation", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the State Manager is failing", body = ErrorBody),
    )
)]
#[get("/api/v1/history/threads/{id}/messages")]
pub(crate) async fn messages(
    auth: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<ThreadPath>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant_for(&auth, Capability::ViewHistory)?;
    let id = path
        .id
        .parse::<ConversationId>()
        .map_err(|e| ApiError::validation("id", e.to_string()))?;
    let body = state.history().messages(&auth.current, tenant, id).await?;
    Ok(HttpResponse::Ok().json(MessagesResponse::from(&body).shown_to(auth.current.session.role)))
}

impl ThreadsResponse {
    /// The list as `role` may see it: customer numbers whole for admins and agents, masked
    /// for viewers (the domain's rule, applied here once for this output).
    fn shown_to(mut self, role: Role) -> Self {
        for row in &mut self.data {
            row.wa_id = customer_number_for(role, &row.wa_id).into_owned();
        }
        self
    }
}

impl MessagesResponse {
    /// A conversation's messages as `role` may see them (the customer's number, as above).
    fn shown_to(mut self, role: Role) -> Self {
        self.wa_id = customer_number_for(role, &self.wa_id).into_owned();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(page: Option<&str>, limit: Option<&str>, status: Option<&str>) -> ThreadsQuery {
        ThreadsQuery {
            page: page.map(str::to_owned),
            limit: limit.map(str::to_owned),
            status: status.map(str::to_owned),
        }
    }

    #[test]
    fn non_numbers_and_out_of_range_values_are_all_reported() {
        let ok = parse_threads_query(&q(Some("2"), Some("100"), Some("active"))).unwrap();
        assert_eq!((ok.page, ok.limit), (2, 100));
        let defaults = parse_threads_query(&q(None, None, None)).unwrap();
        assert_eq!(
            (defaults.page, defaults.limit, defaults.status),
            (1, 20, None)
        );
        let e = parse_threads_query(&q(Some("0"), Some("abc"), Some("foo"))).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        let e = format!("{e:?}");
        assert!(e.contains("ValidationFailed"), "{e}");
        assert!(parse_threads_query(&q(None, Some("101"), None)).is_err());
        assert!(parse_threads_query(&q(Some(""), None, None)).is_err());
    }

    #[test]
    fn viewers_get_a_masked_number_agents_and_admins_the_whole_one() {
        let body = ConversationMessages {
            conversation_id: ConversationId::new_random(),
            wa_id: "15551234829".into(),
            messages: Vec::new(),
        };
        for (role, shown) in [
            (Role::Viewer, "1555•••829"),
            (Role::Agent, "15551234829"),
            (Role::Admin, "15551234829"),
        ] {
            assert_eq!(MessagesResponse::from(&body).shown_to(role).wa_id, shown);
        }
    }
}
