//! The one error type of the HTTP layer: every refusal leaves as spec §11.2's body
//! `{"error", "code", "details"?, "correlationId"}` with the matching status.
//!
//! [`ApiError::error_response`](actix_web::ResponseError::error_response) renders the body
//! without `correlationId` and attaches an [`ErrorPayload`] to the response; the request-ID
//! middleware re-renders it with the request's ID (it is the correlation ID), so handlers and
//! extractors never need the request to fail.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use portal_domain::auth::{AccessDenied, CallbackError, RefreshError, SessionError};
use portal_domain::error::StoreError;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

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
    /// Optional context, e.g. the per-field problems of `VALIDATION_FAILED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    /// The request's `X-Request-ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) correlation_id: Option<String>,
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
    details: Option<serde_json::Value>,
    /// Logged with the response; never serialised. (`Box<str>`: keeps `ApiError` small.)
    cause: Option<Box<str>>,
    /// For 429: the `Retry-After`.
    retry_after: Option<Duration>,
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
            retry_after: None,
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
    pub(crate) fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
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
        let details = serde_json::json!({ "fields": problems });
        Self::new(ErrorCode::ValidationFailed, "Input validation failed").with_details(details)
    }

    /// `PAYLOAD_TOO_LARGE`.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("Request body exceeds {limit} bytes"),
        )
    }

    /// `RATE_LIMIT_EXCEEDED` with its `Retry-After`.
    pub(crate) fn rate_limited(retry_after: Duration) -> Self {
        let mut e = Self::new(
            ErrorCode::RateLimitExceeded,
            "Too many requests, please try again later",
        );
        e.retry_after = Some(retry_after);
        e
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
            details: self.details.clone(),
            correlation_id: None,
        };
        let mut res = HttpResponse::build(status);
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1);
            res.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
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

/// Maps actix's JSON extractor errors: too large → 413, anything else → 400
/// `VALIDATION_FAILED` with a generic message (serde's text can echo input).
pub(crate) fn json_error(err: actix_web::error::JsonPayloadError, limit: usize) -> ApiError {
    use actix_web::error::JsonPayloadError as J;
    match err {
        J::Overflow { .. } | J::OverflowKnownLength { .. } => ApiError::payload_too_large(limit),
        J::ContentType => ApiError::validation("body", "Content-Type must be application/json"),
        J::Deserialize(e) => {
            let field = if e.is_data() {
                "body"
            } else {
                "body (malformed JSON)"
            };
            ApiError::validation(field, format!("Invalid JSON at line {}", e.line()))
        }
        other => ApiError::validation("body", "Invalid request body").with_cause(other),
    }
}
