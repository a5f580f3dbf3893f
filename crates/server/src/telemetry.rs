//! Logging and tracing: JSON lines through tracing-subscriber, filtered by `LOG_LEVEL`, each
//! with the current span's fields (the request span carries `request_id`, `method`, `route`,
//! `status`, `user_id`, `tenant_id`); and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans
//! exported over OTLP/HTTP (protobuf) through tracing-opentelemetry.
//!
//! Trace context: [`request_scope`] runs each request inside the outbound crate's
//! [`RequestContext`](portal_outbound::context::RequestContext) (so downstream calls carry the
//! request ID and the incoming `traceparent`) and, with OTLP on, makes the incoming
//! `traceparent` the request span's parent (downstream calls then carry the same trace ID with
//! our span as parent). Without OTLP there is no OpenTelemetry layer at all: no cost.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use portal_api::middleware::{EdgeFuture, RequestScopeInfo};
use portal_outbound::context::RequestContext;
use std::collections::HashMap;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

/// The service name spans are exported under.
pub(crate) const SERVICE_NAME: &str = "agent-portal";

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

fn json_layer<S, Sink>(sink: Sink) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        // Every enclosing span too: a line logged inside a store or downstream-call span
        // still carries the request span's `request_id`, `user_id` and `tenant_id`.
        .with_span_list(true)
        .with_writer(sink)
}

/// A JSON subscriber writing to `sink`, filtered by `RUST_LOG` or else `level`.
pub fn get_subscriber<Sink>(level: &str, sink: Sink) -> impl Subscriber + Send + Sync
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Registry::default()
        .with(filter(level))
        .with(json_layer(sink))
}

/// Keeps the OTLP exporter alive; dropping it (or [`TelemetryGuard::shutdown`]) flushes the
/// spans still buffered. The binary holds it until the server has stopped.
#[derive(Debug, Default)]
#[must_use = "dropping the guard shuts the span exporter down"]
pub struct TelemetryGuard {
    /// `None` without OTLP.
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter (idempotent).
    pub fn shutdown(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            // The subscriber may be gone already: stderr is the one sure place.
            eprintln!("OpenTelemetry shutdown: {e}");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The OTLP/HTTP traces URL for a collector base URL (`http://collector:4318` →
/// `http://collector:4318/v1/traces`); a URL already ending in `/v1/traces` is kept.
pub(crate) fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The JSON subscriber plus, when `otlp_endpoint` is set, the OpenTelemetry layer exporting
/// over OTLP/HTTP in batches (a background thread with the blocking client). Also installs
/// the W3C trace-context propagator globally.
pub fn get_subscriber_with_otlp<Sink>(
    level: &str,
    sink: Sink,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<(impl Subscriber + Send + Sync, TelemetryGuard)>
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let provider = match otlp_endpoint.map(str::trim).filter(|e| !e.is_empty()) {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            // The exporter's reqwest client needs rustls's provider (reqwest panics without).
            portal_outbound::install_crypto_provider();
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(traces_url(endpoint))
                .build()?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(SERVICE_NAME)
                .build();
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(SERVICE_NAME)));
    let subscriber = Registry::default()
        .with(filter(level))
        .with(json_layer(sink))
        .with(otel);
    Ok((subscriber, TelemetryGuard { provider }))
}

/// Installs the subscriber globally (once per process).
pub fn init_subscriber(subscriber: impl Subscriber + Send + Sync) -> anyhow::Result<()> {
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(())
}

/// The API's per-request hook (see the module docs).
pub fn request_scope(info: &RequestScopeInfo, handling: EdgeFuture) -> EdgeFuture {
    let ctx = RequestContext::new(info.request_id.clone())
        .with_traceparent(info.traceparent.as_deref())
        .with_tracestate(info.tracestate.as_deref());
    if let Some(parent) = ctx.traceparent() {
        let mut carrier = HashMap::with_capacity(2);
        carrier.insert("traceparent".to_owned(), parent.to_owned());
        if let Some(state) = ctx.tracestate() {
            carrier.insert("tracestate".to_owned(), state.to_owned());
        }
        let remote = TraceContextPropagator::new().extract(&carrier);
        // Without the OpenTelemetry layer this is a no-op (and an error we ignore).
        let _ = info.span.set_parent(remote);
    }
    portal_outbound::context::attach(&info.span, ctx.clone());
    Box::pin(portal_outbound::context::scope(ctx, handling))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_traces_url() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn with_otlp_the_incoming_traceparent_parents_the_request_span() {
        use opentelemetry::trace::TraceContextExt;
        // Nothing listens on port 9: the export at shutdown fails, quietly.
        let (subscriber, mut guard) =
            get_subscriber_with_otlp("info", std::io::sink, Some("http://127.0.0.1:9")).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("http_request");
            let info = RequestScopeInfo {
                request_id: "r-1".into(),
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
                tracestate: None,
                span: span.clone(),
            };
            let _handling = request_scope(
                &info,
                Box::pin(async { Err(actix_web::error::ErrorInternalServerError("unused")) }),
            );
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            assert_eq!(
                sc.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_ne!(sc.span_id().to_string(), "00f067aa0ba902b7", "our own span");
            // Without the task-local (a spawned task), the span still carries the request ID.
            let _entered = span.enter();
            let ctx = portal_outbound::context::current().expect("attached to the span");
            assert_eq!(ctx.request_id(), "r-1");
        });
        guard.shutdown();
    }

    #[test]
    fn no_endpoint_no_exporter() {
        let (_s, guard) = get_subscriber_with_otlp("info", std::io::sink, None).unwrap();
        assert!(!guard.exporting());
        let (_s, guard) = get_subscriber_with_otlp("info", std::io::sink, Some(" ")).unwrap();
        assert!(!guard.exporting());
    }
}
