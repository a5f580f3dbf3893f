//! [`Downstream`]: one downstream service over HTTP; each call goes through its [`Guard`].

use crate::call::{Call, Reply};
use crate::error::{CallError, ErrorBody};
use crate::guard::{Guard, Operation};
use crate::propagation::{self, Correlation};
use bytes::{Bytes, BytesMut};
use portal_domain::resilience::CircuitBreaker;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use url::Url;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A downstream service over HTTP: its base URL, the shared client, its [`Guard`] (deadline,
/// retries, breaker, telemetry) and body cap. Cheap to share behind an `Arc` (or clone).
#[derive(Clone)]
pub struct Downstream {
    base_url: Url,
    client: reqwest::Client,
    /// Every call goes through it; its breaker is shared with `/health` and metrics.
    guard: Guard,
    /// Largest response body read; a longer one is [`CallError::TooLarge`].
    max_body_bytes: usize,
}

impl std::fmt::Debug for Downstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downstream")
            .field("base_url", &self.base_url.as_str())
            .field("guard", &self.guard)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl Downstream {
    /// The downstream `guard` names, at `base_url`, with a 1 MiB body cap.
    pub fn new(base_url: Url, client: reqwest::Client, guard: Guard) -> Self {
        Self {
            base_url,
            client,
            guard,
            max_body_bytes: crate::DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Replaces the body cap.
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// The service name.
    pub fn name(&self) -> &'static str {
        self.guard.service()
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The service's circuit breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        self.guard.breaker()
    }

    /// The shared HTTP client (the health probe calls around the breaker with it).
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `base_url` followed by `segments`, each percent-encoded as one path segment.
    pub fn url(&self, segments: &[&str]) -> Url {
        join_url(&self.base_url, segments)
    }

    /// Makes the call through the guard (breaker permit, per-attempt deadline, retries for
    /// retryable calls) with correlation headers and a capped body. `Ok` only for a 2xx;
    /// everything else is classified.
    pub async fn send(&self, call: Call) -> Result<Reply, CallError> {
        if let Some(reason) = call.invalid.clone() {
            return Err(CallError::InvalidRequest(reason));
        }
        // An HTTP client span as OpenTelemetry's semantic conventions name it (one per logical
        // call, its retries included: `http.request.resend_count`).
        let span = tracing::info_span!(
            "downstream_call",
            otel.name = %call.method,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %call.method,
            server.address = call.url.host_str().unwrap_or(""),
            server.port = call.url.port_or_known_default().map(i64::from),
            url.full = %url_without_secrets(&call.url),
            http.response.status_code = tracing::field::Empty,
            http.request.resend_count = tracing::field::Empty,
            error.type = tracing::field::Empty,
            peer.service = self.name(),
            service = self.name(),
            operation = call.operation,
        );
        let (result, attempts) = async {
            // Computed inside the call's span, so an OTel parent makes this call a child span.
            let correlation = propagation::outgoing();
            let operation = Operation {
                name: call.operation,
                deadline: call.timeout,
                idempotent: call.retryable,
            };
            self.guard
                .run_counted(operation, || self.attempt(&call, &correlation))
                .await
        }
        .instrument(span.clone())
        .await;
        if attempts > 1 {
            span.record("http.request.resend_count", i64::from(attempts - 1));
        }
        match &result {
            Ok(reply) => {
                span.record("http.response.status_code", i64::from(reply.status));
            }
            Err(e) => crate::guard::record_failure(&span, e),
        }
        result
    }

    async fn attempt(&self, call: &Call, correlation: &Correlation) -> Result<Reply, CallError> {
        let mut headers = call.headers.clone();
        insert_text(&mut headers, X_REQUEST_ID, &correlation.request_id);
        insert_text(&mut headers, TRACEPARENT, &correlation.traceparent);
        if let Some(state) = &correlation.tracestate {
            insert_text(&mut headers, TRACESTATE, state);
        }
        let mut request = self
            .client
            .request(call.method.clone(), call.url.clone())
            .headers(headers);
        if let Some((content_type, body)) = &call.body {
            request = request
                .header(CONTENT_TYPE, content_type.clone())
                .body(body.clone());
        }
        let limit = self.max_body_bytes;
        let mut response = request.send().await.map_err(classify_transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if response.status().is_success() {
            let body = read_capped(&mut response, limit).await?;
            Ok(Reply {
                status,
                headers,
                body,
            })
        } else {
            let retry_after = parse_retry_after(&headers);
            // An error body that is too long or cut off only loses its explanation.
            let body = match read_capped(&mut response, limit).await {
                Ok(bytes) => ErrorBody::from_bytes(&bytes),
                Err(CallError::Timeout) => return Err(CallError::Timeout),
                Err(_) => ErrorBody::default(),
            };
            Err(CallError::from_status(status, body, retry_after))
        }
    }
}

/// `url` as a span may show it (`url.full`): no user or password, every query value replaced
/// by `REDACTED` (a query may carry a token; its keys are kept, they say what was asked).
pub(crate) fn url_without_secrets(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if url.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        shown
            .query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|k| (k.as_str(), "REDACTED")));
    }
    shown.to_string()
}

/// `base` followed by `segments`, each percent-encoded as one path segment (a `/` inside a
/// segment cannot change the path). A trailing empty segment of `base` is dropped first.
pub fn join_url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

fn insert_text(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn classify_transport(e: reqwest::Error) -> CallError {
    if e.is_timeout() {
        CallError::Timeout
    } else if e.is_builder() {
        CallError::InvalidRequest(e.without_url().to_string())
    } else {
        CallError::Connect
    }
}

/// Reads the body chunk by chunk, refusing it as soon as it exceeds `limit`.
async fn read_capped(response: &mut reqwest::Response, limit: usize) -> Result<Bytes, CallError> {
    if let Some(len) = response.content_length()
        && len > limit as u64
    {
        return Err(CallError::TooLarge { limit });
    }
    let initial = response
        .content_length()
        .map_or(0, |l| l as usize)
        .min(limit);
    let mut buf = BytesMut::with_capacity(initial);
    while let Some(chunk) = response.chunk().await.map_err(classify_transport)? {
        if buf.len() + chunk.len() > limit {
            return Err(CallError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `Retry-After` in its delta-seconds form (the HTTP-date form is ignored: backoff applies).
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_urls_keep_no_secret() {
        let url = Url::parse(
            "https://user:pw@graph.example/v18.0/123?access_token=EAAG-secret&fields=id",
        )
        .unwrap();
        assert_eq!(
            url_without_secrets(&url),
            "https://graph.example/v18.0/123?access_token=REDACTED&fields=REDACTED"
        );
        let plain = Url::parse("http://state-manager:8080/conversations/abc").unwrap();
        assert_eq!(url_without_secrets(&plain), plain.as_str());
    }

    #[test]
    fn join_encodes_each_segment() {
        let base = Url::parse("http://svc.test/prefix/").unwrap();
        assert_eq!(
            join_url(&base, &["api", "v1", "users", "a/b c"]).as_str(),
            "http://svc.test/prefix/api/v1/users/a%2Fb%20c"
        );
        let base = Url::parse("http://svc.test").unwrap();
        assert_eq!(join_url(&base, &["x"]).as_str(), "http://svc.test/x");
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), None);
    }
}
