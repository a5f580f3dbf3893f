//! The one outer middleware: request ID, the request-head limits (414, 431 in the error
//! format), `HEAD` answered as `GET` without the body, CORS for `FRONTEND_URL`, security
//! headers, `RateLimit-*` headers, and the error-body finisher (adds `correlationId`, turns
//! actix's own bare 404/405/4xx/5xx into the JSON error format, keeping their `Allow`).
//!
//! Observability: it runs inside the request's root span (`crate::tracing_span`, around it),
//! where the session extractor records `user_id` and `tenant_id`, and writes the
//! `request finished` line (`status`, `elapsed_ms`).
//! The latency goes to [`Telemetry::http_request`](portal_domain::ports::system::Telemetry)
//! labelled with the route template (never the raw path; `/metrics` itself is not recorded).
//! The binary may wrap each request's handling in a `RequestScope` (it sets the outbound
//! request context and the span's OpenTelemetry parent from the incoming `traceparent`).

use crate::error::{ApiError, ErrorCode, ErrorPayload, rate_limit_headers};
use crate::extract::RateInfo;
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use futures::future::LocalBoxFuture;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The handling of one request, as the `RequestScope` hook sees it.
pub type EdgeFuture = LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>;

/// What a `RequestScope` learns about the request it wraps.
#[derive(Debug, Clone)]
pub struct RequestScopeInfo {
    /// The request ID (the caller's sane `X-Request-ID`, or a fresh UUID).
    pub request_id: String,
    /// The incoming W3C `traceparent` header, unvalidated.
    pub traceparent: Option<String>,
    /// The incoming W3C `tracestate` header, unvalidated.
    pub tracestate: Option<String>,
    /// The request's span (not yet entered): a hook may set its OpenTelemetry parent.
    pub span: tracing::Span,
}

/// Wraps each request's handling (the binary sets task-locals such as the outbound request
/// context with it). Set with [`AppStateBuilder::request_scope`](crate::AppStateBuilder::request_scope).
pub(crate) type RequestScope =
    Arc<dyn Fn(&RequestScopeInfo, EdgeFuture) -> EdgeFuture + Send + Sync>;

/// The request's ID, in its extensions: extractors put it into the audit trail's entries
/// (their correlation ID).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The route label of requests no route matched.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

fn header_string(req: &ServiceRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn cors_headers(h: &mut HeaderMap, origin: &HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "X-Request-ID, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After",
        ),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn security_headers(h: &mut HeaderMap, csp: &HeaderValue) {
    let set = |h: &mut HeaderMap, name: HeaderName, v: &'static str| {
        h.insert(name, HeaderValue::from_static(v));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains; preload",
    );
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
}

fn content_security_policy(frontend_origin: &str) -> HeaderValue {
    let csp = format!(
        "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; \
         img-src 'self' data: https:; connect-src 'self' {frontend_origin}; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// What the edge works out about a request before handling it.
struct Edge {
    request_id: String,
    state: Option<web::Data<AppState>>,
    /// The request's `Origin` when it is the frontend's (CORS applies).
    allowed_origin: Option<HeaderValue>,
    csp: HeaderValue,
}

impl Edge {
    fn of(req: &ServiceRequest) -> Self {
        let request_id = crate::tracing_span::request_id(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let frontend_origin = state.as_ref().map(|s| s.web().frontend_origin());
        let csp = content_security_policy(frontend_origin.as_deref().unwrap_or(""));
        let allowed_origin = req
            .headers()
            .get(header::ORIGIN)
            .filter(|o| {
                frontend_origin
                    .as_deref()
                    .is_some_and(|f| o.as_bytes() == f.as_bytes())
            })
            .cloned();
        Self {
            request_id,
            state,
            allowed_origin,
            csp,
        }
    }

    /// The security headers and the request ID, on every response.
    fn common_headers(&self, h: &mut HeaderMap) {
        security_headers(h, &self.csp);
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            h.insert(HeaderName::from_static("x-request-id"), v);
        }
    }

    /// The answer to a CORS preflight.
    fn preflight(&self) -> HttpResponse {
        let mut res = HttpResponse::NoContent().finish();
        let h = res.headers_mut();
        if let Some(origin) = &self.allowed_origin {
            cors_headers(h, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(
                    "Content-Type, X-CSRF-Token, X-Request-ID, Idempotency-Key",
                ),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        self.common_headers(h);
        res
    }

    /// Runs the handling, wrapped in the binary's [`RequestScope`] when there is one.
    async fn handle(
        &self,
        req: ServiceRequest,
        next: Next<impl MessageBody + 'static>,
        span: &tracing::Span,
    ) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
        let scope = self.state.as_ref().and_then(|s| s.0.request_scope.clone());
        let info = scope.as_ref().map(|_| RequestScopeInfo {
            request_id: self.request_id.clone(),
            traceparent: header_string(&req, "traceparent"),
            tracestate: header_string(&req, "tracestate"),
            span: span.clone(),
        });
        let handling: EdgeFuture = Box::pin(async move {
            next.call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body)
        });
        let handling = match (scope, info) {
            (Some(scope), Some(info)) => scope(&info, handling),
            _ => handling,
        };
        handling.instrument(span.clone()).await
    }

    /// Refuses a request head over the limits (before any routing): a request target over
    /// `max_uri_bytes` → 414, more than `max_headers` header fields or `max_header_bytes` of
    /// them → 431.
    fn head_refusal(&self, req: &ServiceRequest) -> Option<ApiError> {
        let limits = self.state.as_ref()?.web().head_limits;
        let uri = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if uri > limits.max_uri_bytes {
            return Some(ApiError::new(
                ErrorCode::UriTooLong,
                format!("The request target exceeds {} bytes", limits.max_uri_bytes),
            ));
        }
        let headers = req.headers();
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        if headers.len() > limits.max_headers || bytes > limits.max_header_bytes {
            return Some(ApiError::new(
                ErrorCode::HeadersTooLarge,
                format!(
                    "At most {} header fields and {} bytes of them are accepted",
                    limits.max_headers, limits.max_header_bytes
                ),
            ));
        }
        None
    }

    /// Everything after the handling: the error body, the headers, the span and the metric.
    fn finish(
        &self,
        method: &Method,
        res: ServiceResponse<BoxBody>,
        started: Instant,
    ) -> ServiceResponse<BoxBody> {
        let mut res = self.finish_error_body(res);
        self.response_headers(&mut res);
        self.record(method, &res, started.elapsed());
        res
    }

    /// Error bodies get the correlation ID; actix's own bare error responses become the
    /// JSON error format (an `Allow` they carry is kept).
    fn finish_error_body(&self, res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
        let status = res.status();
        let payload = res.response().extensions().get::<ErrorPayload>().cloned();
        if let Some(ErrorPayload(mut body)) = payload {
            body.correlation_id = Some(self.request_id.clone());
            let json = serde_json::to_string(&body).unwrap_or_default();
            return res.map_body(|_, _| BoxBody::new(json));
        }
        let is_json = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !(status.is_client_error() || status.is_server_error()) || is_json {
            return res;
        }
        let err = match status {
            StatusCode::NOT_FOUND => ApiError::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::payload_too_large(self.state.as_ref().map_or(0, |s| s.web().body_limit))
            }
            s if s.is_client_error() => ApiError::validation("request", "Malformed request"),
            _ => ApiError::internal(format!("unhandled {status} response")),
        };
        let allow = res.headers().get(header::ALLOW).cloned();
        let (req, _) = res.into_parts();
        let mut new = err.error_response();
        if let Some(allow) = allow {
            new.headers_mut().insert(header::ALLOW, allow);
        }
        let payload = new.extensions().get::<ErrorPayload>().cloned();
        if let Some(ErrorPayload(mut body)) = payload {
            body.correlation_id = Some(self.request_id.clone());
            let json = serde_json::to_string(&body).unwrap_or_default();
            new = new.set_body(BoxBody::new(json));
        }
        ServiceResponse::new(req, new)
    }

    /// `RateLimit-*` from the request's last rate-limit decision (unless a limiter's 429 set
    /// its own), CORS, and the common ones.
    fn response_headers(&self, res: &mut ServiceResponse<BoxBody>) {
        let rate = res.request().extensions().get::<RateInfo>().copied();
        let h = res.headers_mut();
        if let Some(RateInfo(d)) = rate
            && !h.contains_key("ratelimit-limit")
        {
            for (name, value) in rate_limit_headers(d) {
                h.insert(name, value);
            }
        }
        if let Some(origin) = &self.allowed_origin {
            cors_headers(h, origin);
        }
        self.common_headers(h);
    }

    /// The latency metric, the session counters, the log line.
    fn record(
        &self,
        method: &Method,
        res: &ServiceResponse<BoxBody>,
        elapsed: std::time::Duration,
    ) {
        let status = res.status().as_u16();
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
        if let Some(state) = &self.state
            && route != crate::routes::metrics::PATH
        {
            let telemetry = state.telemetry();
            telemetry.http_request(method.as_str(), &route, status, elapsed);
            count_sessions(telemetry.as_ref(), &route, res);
        }
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            "request finished"
        );
    }
}

/// The outer middleware (see the module docs).
pub async fn edge(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let edge = Edge::of(&req);
    // The root span tracing-actix-web made (`crate::tracing_span`).
    let span = req
        .extensions()
        .get::<tracing_actix_web::RootSpan>()
        .map_or_else(tracing::Span::current, |s| tracing::Span::clone(s));
    let method = req.method().clone();
    let is_preflight = method == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_preflight {
        let res = edge.preflight();
        return Ok(req.into_response(res));
    }
    req.extensions_mut()
        .insert(RequestId(edge.request_id.clone()));
    if let Some(refusal) = edge.head_refusal(&req) {
        let _entered = span.enter();
        let res = req.into_response(refusal.error_response());
        return Ok(edge.finish(&method, res, started));
    }
    // HEAD is GET without the body: the routes are GET routes, and the HTTP/1 codec, which
    // saw the request's real method, sends the head only (with the body's length).
    if method == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    // Handlers and extractors turn their errors into responses inside; an `Err` here could
    // only come from an inner middleware (there is none) and is left to actix.
    let res = edge.handle(req, next, &span).await?;
    let _entered = span.enter();
    Ok(edge.finish(&method, res, started))
}

/// `portal_active_sessions_total` as seen by this instance: a callback that sets the session
/// cookie created one, a successful sign-out ended one.
fn count_sessions(
    telemetry: &dyn portal_domain::ports::system::Telemetry,
    route: &str,
    res: &ServiceResponse<BoxBody>,
) {
    let sets_session = || {
        res.response()
            .cookies()
            .any(|c| c.name() == crate::state::SESSION_COOKIE && !c.value().is_empty())
    };
    match route {
        "/api/v1/auth/callback" if sets_session() => telemetry.session_started(),
        "/api/v1/auth/logout" if res.status().is_success() => telemetry.session_ended(),
        _ => {}
    }
}
