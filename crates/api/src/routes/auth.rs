//! `/api/v1/auth/*`: sign-in (login, callback), refresh, logout, me, WebSocket ticket.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    AuthRateLimited, Authenticated, count_failed_sign_in, login_cookie, login_cookie_removal,
    request_context, session_cookie, session_cookie_removal, signed_cookie,
};
use crate::state::{AppState, LOGIN_COOKIE, WebSettings};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use portal_domain::auth::{CallbackError, CallbackParams};
use portal_domain::model::Role;
use portal_domain::secret::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /api/v1/auth/login`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LoginQuery {
    /// E-mail passed to Genesys as `login_hint`.
    pub login_hint: Option<String>,
    /// Frontend path to land on after sign-in (must start with `/`).
    #[serde(rename = "returnTo")]
    #[param(rename = "returnTo")]
    pub return_to: Option<String>,
}

/// Query of Genesys's redirect to `GET /api/v1/auth/callback`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// Authorization code.
    pub code: Option<String>,
    /// The state sent with the authorize request.
    pub state: Option<String>,
    /// OAuth error (e.g. `access_denied`).
    pub error: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackQuery")
            .field("code", &self.code.as_ref().map(|_| "[REDACTED]"))
            .field("state", &self.state.as_ref().map(|_| "[REDACTED]"))
            .field("error", &self.error)
            .finish()
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RoleName {
    /// Everything, including onboarding.
    Admin,
    /// Reads and sends messages.
    Agent,
    /// Reads only.
    Viewer,
}

impl From<Role> for RoleName {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => Self::Admin,
            Role::Agent => Self::Agent,
            Role::Viewer => Self::Viewer,
        }
    }
}

/// `GET /api/v1/auth/me`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeResponse {
    /// Genesys user ID.
    pub user_id: String,
    /// The tenant; null before onboarding step 1.
    #[schema(format = Uuid, required = true)]
    pub tenant_id: Option<String>,
    /// The user's role.
    pub role: RoleName,
    /// E-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Session expiry (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// True while the tenant has not finished onboarding.
    pub(crate) onboarding_required: bool,
    /// Send back as `X-CSRF-Token` on every POST/PUT/PATCH/DELETE.
    pub csrf_token: String,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionRefreshResponse {
    /// Always true.
    pub success: bool,
    /// New session expiry (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// `POST /api/v1/auth/logout`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogoutResponse {
    /// Always true.
    pub success: bool,
    /// Confirmation.
    pub message: String,
}

/// `POST /api/v1/auth/ws-ticket`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WsTicketResponse {
    /// Single-use ticket for `?ticket=` on the WebSocket URL.
    pub ticket: String,
    /// Seconds the ticket stays valid.
    #[schema(minimum = 1)]
    pub expires_in: u64,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn redirect(location: &str) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::Found();
    b.insert_header((header::LOCATION, location.to_owned()));
    b
}

/// Starts the Genesys sign-in.
#[utoipa::path(
    tag = "auth",
    params(LoginQuery),
    responses(
        (status = 302, description = "Redirect to the Genesys authorize endpoint; sets the pre-login cookie. Or, when the request came to another loopback host name than `BASE_URL`'s (`127.0.0.1` for `localhost`), a redirect to the same path on `BASE_URL`",
            headers(("Location" = String, description = "The Genesys authorize URL (or the same path on `BASE_URL`)"))),
        (status = 429, description = "RATE_LIMIT_EXCEEDED: too many sign-ins from this client IP (RATE_LIMIT_AUTH_MAX per RATE_LIMIT_AUTH_WINDOW_SECS)", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the store is unavailable", body = ErrorBody),
    )
)]
#[get("/api/v1/auth/login")]
pub(crate) async fn login(
    _canonical: crate::canonical::CanonicalHost,
    _limit: AuthRateLimited,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, ApiError> {
    let start = state
        .auth()
        .begin_login(query.login_hint.as_deref(), query.return_to.as_deref())
        .await?;
    Ok(redirect(start.redirect_url.as_str())
        .cookie(login_cookie(state.web(), start.binding.expose_secret()))
        .finish())
}

/// Keeps a provider's `error` value to a safe short token for the redirect.
fn sanitize_reason(reason: &str) -> String {
    let s: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if s.is_empty() {
        "unexpected_error".into()
    } else {
        s
    }
}

/// Genesys's redirect back: creates the session.
#[utoipa::path(
    tag = "auth",
    params(CallbackQuery),
    responses(
        (status = 302, description = "Signed in: sets `sessionId` and redirects to the frontend; or a failure redirect to the frontend's `/login?error=`",
            headers(("Location" = String, description = "The frontend page"))),
        (status = 400, description = "INVALID_STATE: state missing, unknown, replayed or from another browser; VALIDATION_FAILED: no code", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED: too many failed sign-ins from this client IP (a failed callback counts against the sign-in limit)", body = ErrorBody),
    )
)]
#[get("/api/v1/auth/callback")]
pub(crate) async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let web = state.web();
    let binding = signed_cookie(&req, web, LOGIN_COOKIE).and_then(Result::ok);
    let query = query.into_inner();
    let params = CallbackParams {
        code: query.code.map(SecretString::from),
        state: query.state,
        error: query.error,
    };
    let context = request_context(&req, web);
    let outcome = state
        .auth()
        .complete_login(
            binding.as_ref().map(|b| b.expose_secret()),
            params,
            &context,
        )
        .await;
    match outcome {
        Ok(signed_in) => {
            let max_age = (signed_in.session.expires_at - OffsetDateTime::now_utc())
                .whole_seconds()
                .max(0);
            let target = web.frontend_path(&signed_in.return_to);
            Ok(redirect(&target)
                .cookie(session_cookie(web, signed_in.session_id.expose(), max_age))
                .cookie(login_cookie_removal(web))
                .finish())
        }
        Err(e) => {
            count_failed_sign_in(&req, &state).await?;
            failed_sign_in(web, e)
        }
    }
}

/// The answer to a failed callback (already counted against the sign-in limit).
fn failed_sign_in(web: &WebSettings, e: CallbackError) -> Result<HttpResponse, ApiError> {
    match e {
        CallbackError::InvalidState => Err(ApiError::new(
            crate::error::ErrorCode::InvalidState,
            "Invalid or expired state parameter",
        )
        .with_cookie(login_cookie_removal(web))),
        CallbackError::MissingCode => {
            Err(ApiError::validation("code", "Missing authorization code")
                .with_cookie(login_cookie_removal(web)))
        }
        e => {
            tracing::warn!(reason = %e.reason(), error = %e, "sign-in failed");
            let reason = sanitize_reason(&e.reason());
            let target = web.frontend_path(&format!("/login?error={reason}"));
            Ok(redirect(&target).cookie(login_cookie_removal(web)).finish())
        }
    }
}

/// Refreshes the user's tokens and extends the session by 24 h.
#[utoipa::path(
    tag = "auth",
    operation_id = "refresh_session",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Tokens refreshed; the session lasts another SESSION_TTL_SECS", body = SessionRefreshResponse),
        (status = 401, description = "REFRESH_FAILED: the Auth Service refused the refresh", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the Auth Service is unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/auth/refresh")]
pub(crate) async fn refresh(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let session = state.auth().refresh(&auth.current).await?;
    let max_age = (session.expires_at - OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0);
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(state.web(), auth.raw_id(), max_age))
        .json(SessionRefreshResponse {
            success: true,
            expires_at: rfc3339(session.expires_at),
        }))
}

/// Ends the session.
#[utoipa::path(
    tag = "auth",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Signed out; the session cookie is cleared", body = LogoutResponse),
    )
)]
#[post("/api/v1/auth/logout")]
pub(crate) async fn logout(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth().logout(&auth.current).await?;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie_removal(state.web()))
        .json(LogoutResponse {
            success: true,
            message: "Logged out successfully".into(),
        }))
}

/// The signed-in user and the session's CSRF token.
#[utoipa::path(
    tag = "auth",
    security(("session" = [])),
    responses(
        (status = 200, description = "The signed-in user and the session's CSRF token", body = MeResponse),
    )
)]
#[get("/api/v1/auth/me")]
pub(crate) async fn me(auth: Authenticated, state: web::Data<AppState>) -> HttpResponse {
    let s = &auth.current.session;
    HttpResponse::Ok().json(MeResponse {
        user_id: s.user_id.to_string(),
        tenant_id: s.tenant_id.map(|t| t.to_string()),
        role: s.role.into(),
        email: s.email.to_string(),
        name: s.name.clone(),
        expires_at: rfc3339(s.expires_at),
        onboarding_required: s.onboarding_only,
        csrf_token: state.auth().csrf_token(&auth.current),
    })
}

/// Issues a single-use 30-second WebSocket ticket.
#[utoipa::path(
    tag = "auth",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "A single-use ticket for the WebSocket URL", body = WsTicketResponse),
    )
)]
#[post("/api/v1/auth/ws-ticket")]
pub(crate) async fn ws_ticket(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ticket = state.auth().issue_ws_ticket(&auth.current).await?;
    Ok(HttpResponse::Ok().json(WsTicketResponse {
        ticket: ticket.expose_secret().to_owned(),
        expires_in: state.auth().settings().ws_ticket_ttl.as_secs(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_reasons_are_sanitized() {
        assert_eq!(sanitize_reason("access_denied"), "access_denied");
        assert_eq!(sanitize_reason("a&b=<script>"), "abscript");
        assert_eq!(sanitize_reason("&&&"), "unexpected_error");
    }
}
