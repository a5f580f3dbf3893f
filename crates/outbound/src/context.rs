//! The per-request context the API layer sets so outbound calls can carry it on.
//!
//! The API crate wraps each request's handling in [`scope`]:
//!
//! ```text
//! let ctx = RequestContext::new(request_id).with_traceparent(incoming_traceparent);
//! portal_outbound::context::scope(ctx, handler_future).await
//! ```
//!
//! Every downstream call made inside the future (on the same task) then sends that request ID
//! as `X-Request-ID`, and, when no OpenTelemetry span context is active, forwards the incoming
//! `traceparent`/`tracestate` unchanged. Work moved to another task with `tokio::spawn` does not
//! inherit a task-local: wrap the spawned future in [`scope`] again with [`current`].

use std::future::Future;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Correlation data of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    request_id: String,
    /// The caller's W3C `traceparent`, kept only when well-formed.
    traceparent: Option<String>,
    /// The caller's W3C `tracestate`, forwarded with the `traceparent`.
    tracestate: Option<String>,
}

impl RequestContext {
    /// A context with this request ID. An empty, over-long (> 128 characters) or non-printable
    /// ID is replaced by a fresh UUID, so it is always safe to send as a header.
    pub fn new(request_id: impl Into<String>) -> Self {
        let id = request_id.into();
        let request_id = if is_valid_request_id(&id) {
            id
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        Self {
            request_id,
            traceparent: None,
            tracestate: None,
        }
    }

    /// Adds the incoming `traceparent`; a malformed one is ignored.
    pub fn with_traceparent(mut self, traceparent: Option<&str>) -> Self {
        self.traceparent = traceparent
            .map(str::trim)
            .filter(|t| is_valid_traceparent(t))
            .map(str::to_owned);
        self
    }

    /// Adds the incoming `tracestate` (forwarded only together with a valid `traceparent`).
    pub fn with_tracestate(mut self, tracestate: Option<&str>) -> Self {
        self.tracestate = tracestate
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 512 && t.bytes().all(is_header_byte))
            .map(str::to_owned);
        self
    }

    /// The request ID.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The incoming `traceparent`, if valid.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// The incoming `tracestate`, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }
}

/// Runs `fut` with `ctx` as the current request context.
pub async fn scope<F: Future>(ctx: RequestContext, fut: F) -> F::Output {
    CURRENT.scope(ctx, fut).await
}

/// The current request context: the task-local of [`scope`], else the one [`attach`]ed to
/// the current tracing span or one of its parents (work spawned onto another task, e.g. a
/// single-flight cache fill, keeps it when instrumented with the request's span).
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok().or_else(from_span)
}

/// Attaches `ctx` to `span` (needs a `tracing_subscriber::Registry`-based subscriber; without
/// one this does nothing and only [`scope`] carries the context).
pub fn attach(span: &tracing::Span, ctx: RequestContext) {
    use tracing_subscriber::registry::LookupSpan;
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>()
            && let Some(span) = registry.span(id)
        {
            span.extensions_mut().replace(ctx);
        }
    });
}

fn from_span() -> Option<RequestContext> {
    use tracing_subscriber::registry::LookupSpan;
    tracing::Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
            let span = registry.span(id)?;
            span.scope()
                .find_map(|s| s.extensions().get::<RequestContext>().cloned())
        })
        .flatten()
}

fn is_header_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `s` is a version-00 W3C `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`, lowercase,
/// with non-zero trace and parent IDs.
pub fn is_valid_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, len: usize| {
        p.len() == len
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let non_zero = |p: &str| p.bytes().any(|b| b != b'0');
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && non_zero(parts[1])
        && hex(parts[2], 16)
        && non_zero(parts[2])
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_validation() {
        assert!(is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(!is_valid_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn unusable_request_id_is_replaced() {
        assert_eq!(RequestContext::new("req-1").request_id(), "req-1");
        for bad in ["", "a b", "x\ny", &"a".repeat(129)] {
            let ctx = RequestContext::new(bad);
            assert_ne!(ctx.request_id(), bad);
            assert!(uuid::Uuid::parse_str(ctx.request_id()).is_ok());
        }
    }

    #[tokio::test]
    async fn scope_makes_the_context_current_only_inside() {
        assert_eq!(current(), None);
        let ctx = RequestContext::new("r-42").with_traceparent(Some("garbage"));
        let seen = scope(ctx.clone(), async { current() }).await;
        assert_eq!(seen, Some(ctx));
        assert_eq!(seen.and_then(|c| c.traceparent), None);
        assert_eq!(current(), None);
    }
}
