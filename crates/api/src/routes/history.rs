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
use portal_domain::model::{ConversationId, ConversationQuery, Role, customer_number_for};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};

/// Query of `GET /api/v1/history/threads`. Values are read as text so that `limit=abc` is
/// reported against its own field. Documented by hand ([`IntoParams`] below) so that the
/// bounds shown are the domain's constants.
#[derive(Debug, Deserialize)]
pub(crate) struct ThreadsQuery {
    /// Page number, ≥ 1 (default 1).
    pub page: Option<String>,
    /// Page size (default and maximum: [`ConversationQuery`]'s constants).
    pub limit: Option<String>,
    /// `active` or `closed` (default: both).
    pub status: Option<String>,
}

impl IntoParams for ThreadsQuery {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let integer = |max: Option<u32>| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                .minimum(Some(1))
                .maximum(max)
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
                "Page number, ≥ 1 (default 1).".into(),
                integer(None),
            ),
            param(
                "limit",
                format!(
                    "Page size, 1-{} (default {}).",
                    ConversationQuery::MAX_LIMIT,
                    ConversationQuery::DEFAULT_LIMIT
                ),
                integer(Some(ConversationQuery::MAX_LIMIT)),
            ),
            param(
                "status",
                "`active` or `closed` (default: both).".into(),
                ObjectBuilder::new().schema_type(Type::String).build(),
            ),
        ]
    }
}

/// Path of `GET /api/v1/history/threads/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ThreadPath {
    /// The conversation ID (UUID).
    pub id: String,
}

/// Validates the list parameters, reporting every bad field.
pub(crate) fn parse_threads_query(q: &ThreadsQuery) -> Result<ConversationQuery, ApiError> {
    let mut problems = Vec::new();
    let mut int = |field: &str, raw: Option<&str>| match raw {
        None => None,
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
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
        (status = 200, description = "`{data: [{wa_id, conversation_id, last_activity, status, message_count}], pagination: {page, limit, total, totalPages, hasNext, hasPrev}}`; `\"stale\": true` when the State Manager is failing", body = Object),
        (status = 400, description = "Bad `page`, `limit` or `status` (`VALIDATION_FAILED`)", body = ErrorBody),
        (status = 401, description = "No or expired session", body = ErrorBody),
        (status = 403, description = "Onboarding not finished", body = ErrorBody),
        (status = 503, description = "State Manager failing and nothing cached", body = ErrorBody),
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
    Ok(HttpResponse::Ok().json(threads_for(auth.current.session.role, page)))
}

/// A conversation's messages (spec §8.2).
#[utoipa::path(
    tag = "history",
    params(ThreadPath),
    security(("session" = [])),
    responses(
        (status = 200, description = "`{conversation_id, wa_id, messages: [{message_id, direction, text, media_url, status, timestamp, error}]}`", body = Object),
        (status = 400, description = "The ID is not a UUID (`VALIDATION_FAILED`)", body = ErrorBody),
        (status = 401, description = "No or expired session", body = ErrorBody),
        (status = 403, description = "Another tenant's conversation (`TENANT_MISMATCH`), or onboarding not finished", body = ErrorBody),
        (status = 404, description = "No such conversation (`NOT_FOUND`)", body = ErrorBody),
        (status = 503, description = "State Manager failing", body = ErrorBody),
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
    Ok(HttpResponse::Ok().json(messages_for(auth.current.session.role, body)))
}

/// The conversation list as `role` may see it: customer numbers whole for admins and agents,
/// masked for viewers (the domain's rule, applied here once for this output).
fn threads_for(role: Role, mut page: ThreadsPage) -> ThreadsPage {
    for row in &mut page.data {
        row.wa_id = customer_number_for(role, &row.wa_id).into_owned();
    }
    page
}

/// A conversation's messages as `role` may see them (the customer's number, as above).
fn messages_for(role: Role, mut body: ConversationMessages) -> ConversationMessages {
    body.wa_id = customer_number_for(role, &body.wa_id).into_owned();
    body
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
            assert_eq!(messages_for(role, body.clone()).wa_id, shown);
        }
    }
}
