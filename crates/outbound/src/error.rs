//! How an outbound call failed, classified so each adapter can map it to its port's errors.

use portal_domain::DownstreamFailure;
use std::time::Duration;

/// The (capped) body of a non-2xx answer, parsed as JSON when it is JSON.
///
/// Its `Debug` does not print the body: error bodies of auth calls may echo what was sent.
/// Adapters read the fields they need ([`ErrorBody::message`], [`ErrorBody::code`]).
#[derive(Clone, Default, PartialEq)]
pub struct ErrorBody {
    json: Option<serde_json::Value>,
}

impl std::fmt::Debug for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorBody")
            .field("json", &self.json.as_ref().map(|_| "[..]"))
            .finish()
    }
}

impl ErrorBody {
    /// Parses a body; anything that is not JSON gives an empty `ErrorBody`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            json: serde_json::from_slice(bytes).ok(),
        }
    }

    /// The parsed JSON, if the body was JSON.
    pub fn json(&self) -> Option<&serde_json::Value> {
        self.json.as_ref()
    }

    /// A human-readable reason, from the usual fields: `error_description`, `message`,
    /// `error.message`, `error` (when a string), `details`.
    pub fn message(&self) -> Option<String> {
        let json = self.json.as_ref()?;
        let text = |v: Option<&serde_json::Value>| {
            v.and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        text(json.get("error_description"))
            .or_else(|| text(json.get("message")))
            .or_else(|| text(json.get("error").and_then(|e| e.get("message"))))
            .or_else(|| text(json.get("error")))
            .or_else(|| text(json.get("details")))
    }

    /// A machine-readable code: `error` (OAuth style, when a string), `error.type` (Meta
    /// style), or `code`.
    pub fn code(&self) -> Option<String> {
        let json = self.json.as_ref()?;
        json.get("error")
            .and_then(serde_json::Value::as_str)
            .or_else(|| {
                json.get("error")
                    .and_then(|e| e.get("type"))
                    .and_then(serde_json::Value::as_str)
            })
            .or_else(|| json.get("code").and_then(serde_json::Value::as_str))
            .map(str::to_owned)
    }
}

/// A classified outbound call failure. Display texts never contain bodies or secrets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// 400 or 422: the service refused the request's content.
    #[error("request refused (status {status})")]
    BadRequest {
        /// 400 or 422.
        status: u16,
        /// The service's explanation.
        body: ErrorBody,
    },
    /// 401.
    #[error("unauthorized")]
    Unauthorized(ErrorBody),
    /// 403.
    #[error("forbidden")]
    Forbidden(ErrorBody),
    /// 404.
    #[error("not found")]
    NotFound(ErrorBody),
    /// 409.
    #[error("conflict")]
    Conflict(ErrorBody),
    /// 429.
    #[error("rate limited")]
    RateLimited {
        /// The `Retry-After` delay (delta-seconds form), if given.
        retry_after: Option<Duration>,
    },
    /// 5xx.
    #[error("server error (status {status})")]
    Server {
        /// The status.
        status: u16,
    },
    /// Any other non-2xx status (other 4xx, 3xx).
    #[error("unexpected status {status}")]
    UnexpectedStatus {
        /// The status.
        status: u16,
    },
    /// No complete answer within the call's deadline.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made or broke before the answer was complete.
    #[error("connection failed")]
    Connect,
    /// A 2xx body that does not have the expected shape. The text says where, never what.
    #[error("malformed response body: {0}")]
    Malformed(String),
    /// The body exceeded the configured cap.
    #[error("response body exceeds {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// The breaker is open: no call was made.
    #[error("circuit open")]
    CircuitOpen,
    /// The request could not be built (e.g. a header value with forbidden characters).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl CallError {
    /// Classifies a non-2xx status.
    pub(crate) fn from_status(status: u16, body: ErrorBody, retry_after: Option<Duration>) -> Self {
        match status {
            400 | 422 => CallError::BadRequest { status, body },
            401 => CallError::Unauthorized(body),
            403 => CallError::Forbidden(body),
            404 => CallError::NotFound(body),
            409 => CallError::Conflict(body),
            429 => CallError::RateLimited { retry_after },
            500..=599 => CallError::Server { status },
            _ => CallError::UnexpectedStatus { status },
        }
    }

    /// Builds [`CallError::Malformed`] from a serde error without its text, which may quote
    /// parts of the body (tokens, for auth calls).
    pub fn malformed(what: &str, err: &serde_json::Error) -> Self {
        CallError::Malformed(format!(
            "{what}: {:?} error at line {} column {}",
            err.classify(),
            err.line(),
            err.column()
        ))
    }

    /// The HTTP status behind this error, if there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::BadRequest { status, .. }
            | CallError::Server { status }
            | CallError::UnexpectedStatus { status } => Some(*status),
            CallError::Unauthorized(_) => Some(401),
            CallError::Forbidden(_) => Some(403),
            CallError::NotFound(_) => Some(404),
            CallError::Conflict(_) => Some(409),
            CallError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Whether an idempotent call may be retried after this.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::Timeout
                | CallError::Connect
                | CallError::RateLimited { .. }
                | CallError::Server { status: 502..=504 }
        )
    }

    /// Whether this counts as a failure for the service's circuit breaker: 5xx, timeouts,
    /// connection failures and oversized bodies do; a 4xx the caller caused does not.
    pub(crate) fn is_service_fault(&self) -> bool {
        matches!(
            self,
            CallError::Timeout
                | CallError::Connect
                | CallError::Server { .. }
                | CallError::TooLarge { .. }
        )
    }

    /// Label for the `outcome` of the downstream-call metric.
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::BadRequest { .. } => "bad_request",
            CallError::Unauthorized(_) => "unauthorized",
            CallError::Forbidden(_) => "forbidden",
            CallError::NotFound(_) => "not_found",
            CallError::Conflict(_) => "conflict",
            CallError::RateLimited { .. } => "rate_limited",
            CallError::Server { .. } => "server_error",
            CallError::UnexpectedStatus { .. } => "unexpected_status",
            CallError::Timeout => "timeout",
            CallError::Connect => "connect_error",
            CallError::Malformed(_) => "malformed",
            CallError::TooLarge { .. } => "too_large",
            CallError::CircuitOpen => "circuit_open",
            CallError::InvalidRequest(_) => "invalid_request",
        }
    }

    /// The generic failure, for errors an adapter has no business variant for.
    pub fn into_failure(self) -> DownstreamFailure {
        match self {
            CallError::Timeout => DownstreamFailure::Timeout,
            CallError::CircuitOpen => DownstreamFailure::CircuitOpen,
            CallError::RateLimited { retry_after } => {
                DownstreamFailure::RateLimited { retry_after }
            }
            CallError::Server { status } => DownstreamFailure::Unavailable {
                status: Some(status),
            },
            CallError::Connect => DownstreamFailure::Unavailable { status: None },
            other => DownstreamFailure::Protocol(other.to_string()),
        }
    }
}

impl crate::guard::Fault for CallError {
    fn timeout() -> Self {
        CallError::Timeout
    }
    fn circuit_open() -> Self {
        CallError::CircuitOpen
    }
    fn is_service_fault(&self) -> bool {
        CallError::is_service_fault(self)
    }
    fn is_retryable(&self) -> bool {
        CallError::is_retryable(self)
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
    fn outcome(&self) -> &'static str {
        CallError::outcome(self)
    }
    fn status(&self) -> Option<u16> {
        CallError::status(self)
    }
}

impl From<CallError> for DownstreamFailure {
    fn from(e: CallError) -> Self {
        e.into_failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_finds_common_reason_fields() {
        let b = ErrorBody::from_bytes(br#"{"error":"invalid_client","error_description":"bad"}"#);
        assert_eq!(b.message().as_deref(), Some("bad"));
        assert_eq!(b.code().as_deref(), Some("invalid_client"));
        let b = ErrorBody::from_bytes(
            br#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException"}}"#,
        );
        assert_eq!(b.message().as_deref(), Some("Invalid OAuth access token."));
        assert_eq!(b.code().as_deref(), Some("OAuthException"));
        assert_eq!(ErrorBody::from_bytes(b"<html>").message(), None);
    }

    #[test]
    fn debug_never_prints_the_body() {
        let e = CallError::Unauthorized(ErrorBody::from_bytes(br#"{"token":"s3cr3t"}"#));
        assert!(!format!("{e:?}").contains("s3cr3t"));
        assert!(!e.to_string().contains("s3cr3t"));
    }

    #[test]
    fn malformed_does_not_quote_the_body() {
        let err = serde_json::from_str::<u64>(r#""s3cr3t-token""#).unwrap_err();
        let e = CallError::malformed("token response", &err);
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn generic_failures() {
        assert_eq!(
            CallError::Timeout.into_failure(),
            DownstreamFailure::Timeout
        );
        assert_eq!(
            CallError::Server { status: 503 }.into_failure(),
            DownstreamFailure::Unavailable { status: Some(503) }
        );
        assert_eq!(
            CallError::Connect.into_failure(),
            DownstreamFailure::Unavailable { status: None }
        );
        assert!(matches!(
            CallError::TooLarge { limit: 1 }.into_failure(),
            DownstreamFailure::Protocol(_)
        ));
    }
}
