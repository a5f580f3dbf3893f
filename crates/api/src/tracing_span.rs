//! The request's root span, made by tracing-actix-web's [`TracingLogger`] with
//! [`RequestSpan`] as its [`RootSpanBuilder`]: one span per request, entered while the request
//! is handled and while its body streams, named and attributed as OpenTelemetry's stable HTTP
//! server semantic conventions say, so Tempo, Jaeger or any OTLP backend shows what it
//! expects:
//!
//! - name `{METHOD} {http.route}` (`GET /api/v1/dashboard/stats`; just `{METHOD}` when no route
//!   matched; `HTTP` for an unknown method), kind SERVER;
//! - `http.request.method` (`_OTHER` for an unknown method, with `http.request.method_original`),
//!   `http.route` (the template), `url.path` (never the query string: it may carry OAuth codes),
//!   `url.scheme`, `server.address`, `server.port`, `client.address` (the peer, or the
//!   forwarded client behind a trusted proxy), `network.protocol.version`,
//!   `user_agent.original`, then `http.response.status_code`;
//! - status ERROR and `error.type` (the status code) on a 5xx, left unset otherwise (4xx is the
//!   client's error, not the server's);
//! - integers as `i64` (tracing-opentelemetry exports an unsigned value as text);
//! - our own `request_id`, and `user_id`/`tenant_id` once the session is known, so every log
//!   line inside carries them.
//!
//! With an OpenTelemetry layer installed, the incoming W3C `traceparent` (through the global
//! propagator the binary installs) becomes the span's parent, before the span starts.
//!
//! (tracing-actix-web's own `DefaultRootSpanBuilder` uses the older attribute names and puts
//! the query string in `http.target`, hence this builder.)
//!
//! [`TracingLogger`]: tracing_actix_web::TracingLogger

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::http::{Method, Version, header};
use actix_web::{HttpMessage, web};
use opentelemetry::propagation::Extractor;
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::RootSpanBuilder;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The request ID of a request (see [`request_id`]).
#[derive(Debug, Clone)]
struct RequestId(String);

const MAX_REQUEST_ID_LEN: usize = 128;

/// Accepts a client's `X-Request-ID` when it is 1–128 visible ASCII characters.
fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok =
        !s.is_empty() && s.len() <= MAX_REQUEST_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| s.to_owned())
}

/// The request's ID: the caller's sane `X-Request-ID`, or a fresh UUID; worked out once per
/// request (the root span and the edge middleware both ask).
pub(crate) fn request_id(req: &ServiceRequest) -> String {
    if let Some(RequestId(id)) = req.extensions().get::<RequestId>() {
        return id.clone();
    }
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    id
}

/// The root span builder (see the module docs).
#[derive(Debug)]
pub(crate) struct RequestSpan;

/// `http.request.method`: the method, or `_OTHER` for one HTTP does not define (a client may
/// invent methods; the span name and metrics must not grow with them).
fn known_method(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return None,
    })
}

fn protocol_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// `(url.scheme, server.address, server.port)` as the client addressed us: from the
/// forwarded headers only when the peer is a trusted proxy, else from `Host`.
fn public_address(req: &ServiceRequest, trusted_peer: bool) -> (String, String, Option<u16>) {
    let (scheme, host) = if trusted_peer {
        let info = req.connection_info();
        (info.scheme().to_owned(), info.host().to_owned())
    } else {
        let scheme = if req.app_config().secure() {
            "https"
        } else {
            "http"
        };
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (scheme.to_owned(), host)
    };
    let (address, port) = split_host_port(&host);
    (scheme, address.to_owned(), port)
}

/// `example.com:8080` → (`example.com`, 8080); `[::1]:80` → (`::1`, 80); no port → `None`.
fn split_host_port(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (ip, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, port.parse().ok()),
        _ => (host, None),
    }
}

/// The request headers as OpenTelemetry's propagators read them.
struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let request_id = request_id(req);
        let method = known_method(req.method());
        let route = req.match_pattern();
        let name = match (method, &route) {
            (Some(m), Some(r)) => format!("{m} {r}"),
            (Some(m), None) => m.to_owned(),
            (None, _) => "HTTP".to_owned(),
        };
        let state = req.app_data::<web::Data<AppState>>();
        let peer = req.peer_addr().map(|a| a.ip());
        let trusted_peer = match (&state, peer) {
            (Some(s), Some(ip)) => s.web().trusted_proxies.iter().any(|p| p.contains(ip)),
            _ => false,
        };
        let client = match &state {
            Some(s) => crate::forwarded::client_ip(req.request(), s.web()),
            None => peer,
        };
        let (scheme, address, port) = public_address(req, trusted_peer);
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = %name,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method.unwrap_or("_OTHER"),
            http.request.method_original = Empty,
            http.route = route.as_deref(),
            http.response.status_code = Empty,
            url.path = req.path(),
            url.scheme = scheme.as_str(),
            server.address = address.as_str(),
            server.port = port.map(i64::from),
            client.address = client.map(tracing::field::display),
            network.protocol.version = protocol_version(req.version()),
            user_agent.original = user_agent,
            error.type = Empty,
            request_id = %request_id,
            user_id = Empty,
            tenant_id = Empty,
        );
        if method.is_none() {
            span.record("http.request.method_original", req.method().as_str());
        }
        // The caller's trace becomes the parent, before the span starts (a no-op without an
        // OpenTelemetry layer, whose absence is the error ignored here).
        let parent =
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
        let _ = span.set_parent(parent);
        span
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(res) => res.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_must_be_short_and_visible() {
        assert_eq!(
            sane_request_id(&HeaderValue::from_static("abc-123")).as_deref(),
            Some("abc-123")
        );
        assert!(sane_request_id(&HeaderValue::from_static("has space")).is_none());
        assert!(sane_request_id(&HeaderValue::from_static("")).is_none());
        let long = "a".repeat(129);
        assert!(sane_request_id(&HeaderValue::from_str(&long).unwrap()).is_none());
    }

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("localhost:8080"), ("localhost", Some(8080)));
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("[::1]:80"), ("::1", Some(80)));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }
}
