//! The one error type of the HTTP layer: every refusal leaves as spec §11.2's body
//! `{"error", "code", "details"?, "correlationId"}` with the matching status.
//!
//! [`ApiError::error_response`](actix_web::ResponseError::error_response) renders the body
//! without `correlationId` and attaches an [`ErrorPayload`] to the response; the request-ID
//! middleware re-renders it with the request's ID (it is the correlation ID), so handlers and
//! extractors never need the request to fail.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use portal_domain::auth::{AccessDenied, CallbackError, RefreshError, SessionError};
use portal_domain::error::StoreError;
use portal_domain::ports::stores::RateDecision;
use serde::Serialize;
use std::fmt;

/// The machine-readable error codes (spec §11.2 plus decisions §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ErrorCode {
    /// No session cookie (401).
    NoSession,
    /// Unknown, tampered or expired session (401).
    SessionExpired,
    /// The Auth Service failed (500).
    AuthError,
    /// The Auth Service refused the refresh (401).
    RefreshFailed,
    /// Missing or wrong `X-CSRF-Token` (403).
    CsrfFailed,
    /// The role lacks the right (403).
    Forbidden,
    /// A tenant ID other than the session's (403).
    TenantIsolationViolation,
    /// A resource of another tenant (403).
    TenantMismatch,
    /// Unknown resource or route (404).
    NotFound,
    /// Wrong HTTP method for the route (405).
    MethodNotAllowed,
    /// Concurrent update lost (409).
    Conflict,
    /// Bad input (400); `details` lists the fields.
    ValidationFailed,
    /// Onboarding step out of order (400).
    InvalidStep,
    /// OAuth `state` missing, unknown, replayed or not bound to this browser (400).
    InvalidState,
    /// Body above the limit (413).
    PayloadTooLarge,
    /// A body that is not JSON on a route that takes JSON (415).
    UnsupportedMediaType,
    /// Request target longer than the limit (414).
    UriTooLong,
    /// Too many header fields, or too many bytes of them (431).
    HeadersTooLarge,
    /// Too many requests (429).
    RateLimitExceeded,
    /// A dependency is down (503).
    ServiceUnavailable,
    /// Anything unexpected (500).
    InternalError,
}

impl ErrorCode {
    /// The HTTP status of the code.
    pub(crate) fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            NoSession | SessionExpired | RefreshFailed => StatusCode::UNAUTHORIZED,
            AuthError | InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            CsrfFailed | Forbidden | TenantIsolationViolation | TenantMismatch => {
                StatusCode::FORBIDDEN
            }
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict => StatusCode::CONFLICT,
            ValidationFailed | InvalidStep | InvalidState => StatusCode::BAD_REQUEST,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The wire name (`SESSION_EXPIRED`, ...).
    pub(crate) fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            NoSession => "NO_SESSION",
            SessionExpired => "SESSION_EXPIRED",
            AuthError => "AUTH_ERROR",
            RefreshFailed => "REFRESH_FAILED",
            CsrfFailed => "CSRF_FAILED",
            Forbidden => "FORBIDDEN",
            TenantIsolationViolation => "TENANT_ISOLATION_VIOLATION",
            TenantMismatch => "TENANT_MISMATCH",
            NotFound => "NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Conflict => "CONFLICT",
            ValidationFailed => "VALIDATION_FAILED",
            InvalidStep => "INVALID_STEP",
            InvalidState => "INVALID_STATE",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            UriTooLong => "URI_TOO_LONG",
            HeadersTooLarge => "HEADERS_TOO_LARGE",
            RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ServiceUnavailable => "SERVICE_UNAVAILABLE",
            InternalError => "INTERNAL_ERROR",
        }
    }
}

/// The error body of every refusal (spec §11.2).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    /// Human-readable message (never internal text).
    pub error: String,
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Context for some codes: the refused fields of `VALIDATION_FAILED`, the wizard's step of
    /// `INVALID_STEP`, the saved wizard of `CONFLICT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub details: Option<ErrorDetails>,
    /// The request's `X-Request-ID` (the caller's, or one generated for the request): quote
    /// it when reporting a problem, it finds the request's log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = true)]
    pub(crate) correlation_id: Option<String>,
}

/// `details` of an error body; which parts appear depends on the code.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorDetails {
    /// `VALIDATION_FAILED`: every refused field, in request order.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub fields: Option<Vec<FieldProblem>>,
    /// `INVALID_STEP`: the last completed wizard step (0-5).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 5)]
    pub current_step: Option<u8>,
    /// `CONFLICT`: the wizard as the concurrent request saved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<crate::routes::onboarding::response::StatusResponse>)]
    pub current: Option<serde_json::Value>,
    /// `RATE_LIMIT_EXCEEDED` over a WebSocket connection cap: which cap was reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub limit: Option<ConnectionCap>,
    /// `RATE_LIMIT_EXCEEDED` over a WebSocket connection cap: the cap's maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub max: Option<u64>,
}

/// The WebSocket connection caps (`details.limit` of an upgrade refused over one).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConnectionCap {
    /// Sockets of one session, across instances.
    Session,
    /// Sockets of one user, across instances.
    User,
    /// Sockets on this instance.
    Instance,
}

impl ConnectionCap {
    /// The name in `details.limit` (and in the log line).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConnectionCap::Session => "session",
            ConnectionCap::User => "user",
            ConnectionCap::Instance => "instance",
        }
    }
}

/// Attached to an error response so the outer middleware can add the correlation ID.
#[derive(Debug, Clone)]
pub(crate) struct ErrorPayload(pub ErrorBody);

/// One field's validation problem (`details` of `VALIDATION_FAILED`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct FieldProblem {
    /// The field (JSON path or query parameter), empty for the whole body.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// An HTTP-layer error: a code, a public message, optional details, and a private cause that
/// is logged once and never sent.
pub(crate) struct ApiError {
    code: ErrorCode,
    message: String,
    /// (Boxed: keeps `ApiError` small.)
    details: Option<Box<ErrorDetails>>,
    /// Logged with the response; never serialised. (`Box<str>`: keeps `ApiError` small.)
    cause: Option<Box<str>>,
    /// For 429: the refusing limiter's decision (`Retry-After`, `RateLimit-*`).
    rate: Option<RateDecision>,
    /// Cookies to set with the error (e.g. removal of a dead session cookie).
    cookies: Vec<Cookie<'static>>,
    /// A status other than the code's usual one (the wizard's `SESSION_EXPIRED` is a 400).
    status: Option<StatusCode>,
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ApiError {
    /// An error with a public message.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            cause: None,
            rate: None,
            cookies: Vec::new(),
            status: None,
        }
    }

    /// Overrides the code's usual status (spec §6.3: an expired wizard is 400
    /// `SESSION_EXPIRED`, unlike an expired login session's 401).
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds public details.
    pub(crate) fn with_details(mut self, details: ErrorDetails) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// Adds a private cause (logged, never sent).
    pub(crate) fn with_cause(mut self, cause: impl fmt::Display) -> Self {
        self.cause = Some(cause.to_string().into_boxed_str());
        self
    }

    /// Adds a cookie to the response (e.g. a removal).
    pub(crate) fn with_cookie(mut self, cookie: Cookie<'static>) -> Self {
        self.cookies.push(cookie);
        self
    }

    /// The code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> ErrorCode {
        self.code
    }

    /// `NO_SESSION`.
    pub(crate) fn no_session() -> Self {
        Self::new(ErrorCode::NoSession, "Authentication required")
    }

    /// `SESSION_EXPIRED`.
    pub(crate) fn session_expired() -> Self {
        Self::new(ErrorCode::SessionExpired, "Session expired or invalid")
    }

    /// `CSRF_FAILED`.
    pub(crate) fn csrf_failed() -> Self {
        Self::new(ErrorCode::CsrfFailed, "Missing or invalid CSRF token")
    }

    /// `NOT_FOUND`.
    pub(crate) fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "Resource not found")
    }

    /// `METHOD_NOT_ALLOWED`.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "Method not allowed for this resource",
        )
    }

    /// `VALIDATION_FAILED` with one problem.
    pub(crate) fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation_list(vec![FieldProblem {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// `VALIDATION_FAILED` with a list of problems.
    pub(crate) fn validation_list(problems: Vec<FieldProblem>) -> Self {
        let details = ErrorDetails {
            fields: Some(problems),
            ..ErrorDetails::default()
        };
        Self::new(ErrorCode::ValidationFailed, "Input validation failed").with_details(details)
    }

    /// `PAYLOAD_TOO_LARGE`.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("Request body exceeds {limit} bytes"),
        )
    }

    /// `RATE_LIMIT_EXCEEDED` with the refusing limiter's own `Retry-After` and `RateLimit-*`
    /// (the edge does not overwrite them with another limiter's).
    pub(crate) fn rate_limited(decision: RateDecision) -> Self {
        let mut e = Self::new(
            ErrorCode::RateLimitExceeded,
            "Too many requests, please try again later",
        );
        e.rate = Some(decision);
        e
    }

    /// `UNSUPPORTED_MEDIA_TYPE`.
    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            "The request body must be JSON (Content-Type: application/json)",
        )
    }

    /// `SERVICE_UNAVAILABLE` with a private cause.
    pub(crate) fn unavailable(cause: impl fmt::Display) -> Self {
        Self::new(
            ErrorCode::ServiceUnavailable,
            "Service temporarily unavailable",
        )
        .with_cause(cause)
    }

    /// `INTERNAL_ERROR` with a private cause.
    pub(crate) fn internal(cause: impl fmt::Display) -> Self {
        Self::new(ErrorCode::InternalError, "An unexpected error occurred").with_cause(cause)
    }

    /// `FORBIDDEN` for a role or onboarding refusal.
    pub(crate) fn forbidden(denied: AccessDenied) -> Self {
        Self::new(ErrorCode::Forbidden, denied.to_string())
    }

    /// `TENANT_ISOLATION_VIOLATION`.
    pub(crate) fn tenant_isolation() -> Self {
        Self::new(
            ErrorCode::TenantIsolationViolation,
            "Access to another tenant's data is not allowed",
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.code.status())
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match (&self.cause, status.is_server_error()) {
            // A dependency that is down (Redis, a circuit open): its own monitor logs each
            // change of state once and counts the refusals; a line per request would flood
            // the logs during an outage (issue 12).
            (Some(cause), true) if self.code == ErrorCode::ServiceUnavailable => {
                tracing::debug!(code = self.code.as_str(), status = status.as_u16(), cause = %cause, "request refused: dependency unavailable")
            }
            (Some(cause), true) => {
                tracing::error!(code = self.code.as_str(), status = status.as_u16(), cause = %cause, "request failed")
            }
            (Some(cause), false) => {
                tracing::info!(code = self.code.as_str(), status = status.as_u16(), cause = %cause, "request refused")
            }
            (None, _) => tracing::info!(
                code = self.code.as_str(),
                status = status.as_u16(),
                "request refused"
            ),
        }
        let body = ErrorBody {
            error: self.message.clone(),
            code: self.code,
            details: self.details.as_deref().cloned(),
            correlation_id: None,
        };
        let mut res = HttpResponse::build(status);
        if let Some(decision) = self.rate {
            res.insert_header((
                header::RETRY_AFTER,
                HeaderValue::from(decision.reset_after.as_secs().max(1)),
            ));
            for (name, value) in rate_limit_headers(decision) {
                res.insert_header((name, value));
            }
        }
        for c in &self.cookies {
            res.cookie(c.clone());
        }
        let mut res = res.json(&body);
        res.extensions_mut().insert(ErrorPayload(body));
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::unavailable(e)
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Expired => ApiError::session_expired(),
            SessionError::Store(s) => ApiError::unavailable(s),
        }
    }
}

impl From<AccessDenied> for ApiError {
    fn from(e: AccessDenied) -> Self {
        ApiError::forbidden(e)
    }
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::Rejected => {
                ApiError::new(ErrorCode::RefreshFailed, "Token refresh failed")
            }
            RefreshError::SessionGone => ApiError::session_expired(),
            e @ RefreshError::Busy => ApiError::unavailable(e),
            RefreshError::Unavailable(f) => ApiError::unavailable(f),
            RefreshError::Store(s) => ApiError::unavailable(s),
        }
    }
}

impl From<&CallbackError> for ErrorCode {
    fn from(e: &CallbackError) -> Self {
        match e {
            CallbackError::InvalidState => ErrorCode::InvalidState,
            CallbackError::MissingCode => ErrorCode::ValidationFailed,
            CallbackError::Store(_) => ErrorCode::ServiceUnavailable,
            _ => ErrorCode::AuthError,
        }
    }
}

/// The `RateLimit-Limit`, `-Remaining` and `-Reset` headers of a limiter's decision.
pub(crate) fn rate_limit_headers(d: RateDecision) -> [(HeaderName, HeaderValue); 3] {
    [
        (
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(d.limit),
        ),
        (
            HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(d.remaining),
        ),
        (
            HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(d.reset_after.as_secs().max(1)),
        ),
    ]
}
