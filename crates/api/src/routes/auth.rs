//! `/api/v1/auth/*`: sign-in (login, callback), refresh, logout, me, WebSocket ticket.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    AuthRateLimited, Authenticated, login_cookie, login_cookie_removal, session_cookie,
    session_cookie_removal, signed_cookie,
};
use crate::state::{AppState, LOGIN_COOKIE};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use portal_domain::auth::{CallbackError, CallbackParams};
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

/// `GET /api/v1/auth/me`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeResponse {
    /// Genesys user ID.
    pub user_id: String,
    /// The tenant; null before onboarding step 1.
    pub tenant_id: Option<String>,
    /// `admin`, `agent` or `viewer`.
    pub role: String,
    /// E-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Session expiry (RFC 3339).
    pub expires_at: String,
    /// True while the tenant has not finished onboarding.
    pub(crate) onboarding_required: bool,
    /// Send back as `X-CSRF-Token` on every POST/PUT/PATCH/DELETE.
    pub csrf_token: String,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshResponse {
    /// Always true.
    pub success: bool,
    /// New session expiry (RFC 3339).
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
        (status = 302, description = "Redirect to the Genesys authorize endpoint; sets the pre-login cookie. Or, when the request came to another loopback host name than `BASE_URL`'s (`127.0.0.1` for `localhost`), a redirect to the same path on `BASE_URL`"),
        (status = 429, description = "Too many sign-in attempts", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
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
        (status = 302, description = "Signed in: sets `sessionId` and redirects to the frontend; or a failure redirect to `/login?error=`"),
        (status = 400, description = "INVALID_STATE or VALIDATION_FAILED (missing code)", body = ErrorBody),
        (status = 429, description = "Too many sign-in attempts", body = ErrorBody),
    )
)]
#[get("/api/v1/auth/callback")]
pub(crate) async fn callback(
    _limit: AuthRateLimited,
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
    let outcome = state
        .auth()
        .complete_login(binding.as_ref().map(|b| b.expose_secret()), params)
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
        Err(CallbackError::InvalidState) => Err(ApiError::new(
            crate::error::ErrorCode::InvalidState,
            "Invalid or expired state parameter",
        )
        .with_cookie(login_cookie_removal(web))),
        Err(CallbackError::MissingCode) => {
            Err(ApiError::validation("code", "Missing authorization code")
                .with_cookie(login_cookie_removal(web)))
        }
        Err(e) => {
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
    security(("session" = []), ("csrf" = [])),
    responses(
        (status = 200, body = RefreshResponse),
        (status = 401, description = "NO_SESSION, SESSION_EXPIRED or REFRESH_FAILED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED", body = ErrorBody),
        (status = 503, description = "Auth Service or store unavailable", body = ErrorBody),
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
        .json(RefreshResponse {
            success: true,
            expires_at: rfc3339(session.expires_at),
        }))
}

/// Ends the session.
#[utoipa::path(
    tag = "auth",
    security(("session" = []), ("csrf" = [])),
    responses(
        (status = 200, body = LogoutResponse),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
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
        (status = 200, body = MeResponse),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
    )
)]
#[get("/api/v1/auth/me")]
pub(crate) async fn me(auth: Authenticated, state: web::Data<AppState>) -> HttpResponse {
    let s = &auth.current.session;
    HttpResponse::Ok().json(MeResponse {
        user_id: s.user_id.to_string(),
        tenant_id: s.tenant_id.map(|t| t.to_string()),
        role: s.role.as_str().to_owned(),
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
    security(("session" = []), ("csrf" = [])),
    responses(
        (status = 200, body = WsTicketResponse),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED", body = ErrorBody),
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
