//! The sessions a user can see and end: `GET /api/v1/auth/sessions`,
//! `DELETE /api/v1/auth/sessions/{handle}`, `POST /api/v1/auth/logout-all`; and an admin
//! ending a user's sessions: `DELETE /api/v1/admin/users/{userId}/sessions`.
//!
//! A session is named by its public handle (an HMAC of its store key: neither the session ID
//! nor the key). Every ended session's WebSockets close on every instance, as at logout.
//! State-changing routes need `X-CSRF-Token`.

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{Authenticated, session_cookie_removal};
use crate::state::AppState;
use actix_web::{HttpResponse, delete, get, post, web};
use portal_domain::auth::{ManageError, SessionSummary};
use portal_domain::model::UserId;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

/// The longest handle accepted (a handle is 43 base64url characters).
const MAX_HANDLE_LEN: usize = 64;

/// One of the caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionView {
    /// Opaque public handle: what `DELETE /api/v1/auth/sessions/{handle}` takes. Neither the
    /// session ID nor its store key.
    #[schema(min_length = 1, max_length = 64)]
    pub handle: String,
    /// When it signed in.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Its last request (recorded at most once a minute).
    #[schema(format = DateTime)]
    pub last_activity: String,
    /// The browser's user agent, trimmed to 256 characters.
    #[schema(max_length = 256)]
    pub user_agent: Option<String>,
    /// The client's network: its IP truncated to the /24 (IPv4) or /48 (IPv6).
    #[schema(example = "203.0.113.0/24")]
    pub client_ip: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl From<SessionSummary> for SessionView {
    fn from(s: SessionSummary) -> Self {
        Self {
            handle: s.handle,
            created_at: rfc3339(s.created_at),
            last_activity: rfc3339(s.last_activity),
            user_agent: s.client.user_agent,
            client_ip: s.client.network,
            current: s.current,
        }
    }
}

/// `GET /api/v1/auth/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionsResponse {
    /// The caller's live sessions, the most recently active first.
    pub sessions: Vec<SessionView>,
}

/// What ending sessions did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndedResponse {
    /// Always true.
    pub success: bool,
    /// Sessions ended.
    #[schema(minimum = 0)]
    pub ended: u64,
}

/// Path of `DELETE /api/v1/auth/sessions/{handle}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct HandlePath {
    /// The session's handle (from `GET /api/v1/auth/sessions`).
    pub handle: String,
}

/// Path of `DELETE /api/v1/admin/users/{userId}/sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// The user (Genesys user ID) whose sessions end.
    #[serde(rename = "userId")]
    #[param(rename = "userId")]
    pub user_id: String,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::NotFound => ApiError::new(ErrorCode::NotFound, "No such session"),
            ManageError::Forbidden(denied) => ApiError::forbidden(denied),
            ManageError::OtherTenant => ApiError::new(
                ErrorCode::TenantMismatch,
                "The user does not belong to your tenant",
            ),
            ManageError::Unavailable(f) => ApiError::unavailable(f),
            ManageError::Store(s) => ApiError::unavailable(s),
        }
    }
}

/// The answer to ending sessions; clears the cookie when the caller's own session ended.
fn ended(state: &AppState, ended: usize, own_ended: bool) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    if own_ended {
        res.cookie(session_cookie_removal(state.web()));
    }
    res.json(EndedResponse {
        success: true,
        ended: u64::try_from(ended).unwrap_or(u64::MAX),
    })
}

/// The caller's sessions: where they are signed in.
#[utoipa::path(
    tag = "auth",
    security(("session" = [])),
    responses(
        (status = 200, description = "The caller's live sessions", body = SessionsResponse),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
#[get("/api/v1/auth/sessions")]
pub(crate) async fn list_sessions(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sessions = state.auth().sessions_of(&auth.current).await?;
    Ok(HttpResponse::Ok().json(SessionsResponse {
        sessions: sessions.into_iter().map(SessionView::from).collect(),
    }))
}

/// Ends one of the caller's sessions (another device's, or this one); its WebSockets close
/// on every instance.
#[utoipa::path(
    tag = "auth",
    params(HandlePath),
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Ended; the cookie is cleared when it was this session", body = EndedResponse),
        (status = 400, description = "VALIDATION_FAILED: not a handle", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no live session of the caller has this handle", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
#[delete("/api/v1/auth/sessions/{handle}")]
pub(crate) async fn end_session(
    auth: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<HandlePath>,
) -> Result<HttpResponse, ApiError> {
    let handle = &path.handle;
    let well_formed = !handle.is_empty()
        && handle.len() <= MAX_HANDLE_LEN
        && handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(ApiError::validation("handle", "Not a session handle"));
    }
    let own = state.auth().end_session(&auth.current, handle).await?;
    Ok(ended(&state, 1, own))
}

/// Ends every session of the caller, this one included ("sign out everywhere").
#[utoipa::path(
    tag = "auth",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Every session ended; the cookie is cleared", body = EndedResponse),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/auth/logout-all")]
pub(crate) async fn logout_all(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let count = state.auth().logout_everywhere(&auth.current).await?;
    Ok(ended(&state, count, true))
}

/// An admin ends every session of a user of the admin's tenant (a departed agent); their
/// WebSockets close on every instance.
#[utoipa::path(
    tag = "admin",
    params(UserPath),
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "The user's sessions ended (possibly none)", body = EndedResponse),
        (status = 400, description = "VALIDATION_FAILED: not a user ID", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED; FORBIDDEN (not an admin, or onboarding unfinished); TENANT_MISMATCH (a user of another tenant)", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 503, description = "Tenant Service or session store unavailable", body = ErrorBody),
    )
)]
#[delete("/api/v1/admin/users/{userId}/sessions")]
pub(crate) async fn end_user_sessions(
    auth: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(path.user_id.as_str())
        .map_err(|e| ApiError::validation("userId", e.to_string()))?;
    let count = state.auth().end_user_sessions(&auth.current, &user).await?;
    Ok(ended(&state, count, user == auth.current.session.user_id))
}
