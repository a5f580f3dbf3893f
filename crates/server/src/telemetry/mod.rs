//! Logging and tracing.
//!
//! **Logs** ([`get_subscriber`]), filtered by `LOG_LEVEL` (or `RUST_LOG`), in one of two
//! formats ([`LogFormat`], `LOG_FORMAT`):
//! - `json`: one JSON object per line, as tracing-subscriber writes them (`timestamp`,
//!   `level`, `fields` with `message`, `target`, `span`: the innermost span, `spans`: every
//!   enclosing one, root first) plus, at the top level, `request_id` on every line written
//!   while serving a request and, with tracing on, `trace_id` and `span_id` of the span the
//!   line was written in (what Loki, Elasticsearch or Grafana use to jump from a log line to
//!   its trace);
//! - `pretty`: one short human-readable line per event (time, level, message and fields, the
//!   request's method and route and its ID), coloured only when `ansi` is set (a terminal).
//!
//! The Redis adapter's `store` spans (one per round trip) are created only for traces: without
//! OTLP, log lines name the request's span.
//!
//! **Traces** ([`otlp_exporter`]): with `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans go over
//! OTLP/HTTP (protobuf) through tracing-opentelemetry; the standard `OTEL_*` variables the
//! OpenTelemetry SDK reads are honoured (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`/`_ARG`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`); the service name is
//! `agent-portal` unless one of the first two names another. Without an endpoint there is no
//! OpenTelemetry layer at all: no cost.
//!
//! Trace context: the API's root span takes the incoming `traceparent` as its parent (through
//! the W3C propagator installed here); [`request_scope`] runs each request inside the outbound
//! crate's [`RequestContext`](portal_outbound::context::RequestContext), so downstream calls
//! carry the request ID, and the incoming `traceparent` when no span context is active.
//!
//! # Layout
//! - here: the subscriber, what a log line knows about its request, [`request_scope`];
//! - `json`: the JSON line and the span fields behind it (written directly, not re-parsed);
//! - `pretty`: the one-line human-readable format;
//! - `otlp`: the OTLP exporter and the resource.

mod batch;
mod json;
mod otlp;
mod pretty;

pub use batch::{BatchedLines, write_lines_per_turn};
#[cfg(test)]
use otlp::traces_url;
pub use otlp::{TelemetryGuard, otlp_exporter};

use json::{JsonLine, JsonSpanFields};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use portal_api::middleware::{EdgeFuture, RequestScopeInfo};
use portal_outbound::context::RequestContext;
use pretty::PrettyLine;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The service name spans are exported under, unless `OTEL_SERVICE_NAME` or
/// `OTEL_RESOURCE_ATTRIBUTES` names another.
pub(crate) const SERVICE_NAME: &str = "agent-portal";

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (log shippers, production).
    Json,
    /// One human-readable line per event (a developer's terminal).
    Pretty,
}

/// What [`get_subscriber`] needs to know.
#[derive(Debug, Clone)]
pub struct Logging {
    /// A tracing filter (`info`, `portal_api=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
    /// The line format.
    pub format: LogFormat,
    /// ANSI colours (pretty format on a terminal only).
    pub ansi: bool,
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The subscriber: the filter, the log layer in `logging.format` writing to `sink`, and,
/// with `tracer`, the OpenTelemetry layer (whose span IDs the log lines then carry).
pub fn get_subscriber<Sink>(
    logging: &Logging,
    sink: Sink,
    tracer: Option<&SdkTracerProvider>,
) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let log_layer = match logging.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonSpanFields)
            .event_format(JsonLine)
            .with_ansi(false)
            .with_writer(sink)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .event_format(PrettyLine)
            .with_ansi(logging.ansi)
            .with_writer(sink)
            .boxed(),
    };
    let otel = tracer.map(|provider| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME))
    });
    // Without OTLP, nothing wants the Redis adapter's `store` spans (one per round trip: a
    // client call in a trace); they are not created at all, a few µs saved per round trip. A
    // line written inside one then names the request's span, as its request ID does anyway.
    let no_store_spans = otel.is_none().then(|| {
        tracing_subscriber::filter::filter_fn(|meta| {
            !(meta.is_span() && meta.name() == "store" && meta.target().starts_with("portal_redis"))
        })
    });
    Registry::default()
        .with(filter(&logging.level))
        .with(no_store_spans)
        .with(RequestSpans)
        .with(log_layer)
        .with(otel)
}

/// Installs the subscriber globally (once per process).
pub fn init_subscriber(subscriber: impl Subscriber + Send + Sync) -> anyhow::Result<()> {
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// What a log line knows about its request

/// Kept in the extensions of a span that has a `request_id` field (the request's root span).
#[derive(Debug, Clone, Default)]
struct RequestFields {
    request_id: String,
    /// The span's `otel.name` (`GET /api/v1/dashboard/stats`), for the pretty format.
    name: Option<String>,
}

impl Visit for RequestFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "request_id" => self.request_id = value.to_owned(),
            "otel.name" => self.name = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "request_id" => self.request_id = format!("{value:?}"),
            "otel.name" => self.name = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// Notes the request fields of each new span that has a `request_id`.
struct RequestSpans;

impl<S> Layer<S> for RequestSpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().fields().field("request_id").is_none() {
            return;
        }
        let mut fields = RequestFields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }
}

/// The request, trace and span IDs of the line being written.
#[derive(Debug, Default)]
struct LineIds {
    request: Option<RequestFields>,
    trace_id: Option<String>,
    span_id: Option<String>,
}

fn line_ids<S, N>(ctx: &FmtContext<'_, S, N>) -> LineIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    let Some(scope) = ctx.event_scope() else {
        return LineIds::default();
    };
    let mut ids = LineIds::default();
    for (i, span) in scope.enumerate() {
        if i == 0 {
            // The OpenTelemetry context of the innermost span, when a layer keeps one.
            let otel = tracing::dispatcher::get_default(|dispatch| {
                tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
            });
            if let Some(cx) = otel {
                let sc = cx.span().span_context().clone();
                if sc.is_valid() {
                    ids.trace_id = Some(sc.trace_id().to_string());
                    ids.span_id = Some(sc.span_id().to_string());
                }
            }
        }
        if let Some(fields) = span.extensions().get::<RequestFields>() {
            ids.request = Some(fields.clone());
            break;
        }
    }
    ids
}

/// The API's per-request hook (see the module docs).
pub fn request_scope(info: &RequestScopeInfo, handling: EdgeFuture) -> EdgeFuture {
    let ctx = RequestContext::new(info.request_id.clone())
        .with_traceparent(info.traceparent.as_deref())
        .with_tracestate(info.tracestate.as_deref());
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
    fn no_endpoint_no_exporter() {
        assert!(!otlp_exporter(None).unwrap().exporting());
        assert!(!otlp_exporter(Some(" ")).unwrap().exporting());
    }

    /// The lines written by `get_subscriber`'s JSON layer, as JSON values.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON lines `get_subscriber` (level `info`, no OTLP) writes while `f` runs.
    fn json_lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let lines = Lines::default();
        let sink = lines.clone();
        let logging = Logging {
            level: "info".into(),
            format: LogFormat::Json,
            ansi: false,
        };
        let subscriber = get_subscriber(&logging, move || sink.clone(), None);
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn fields_recorded_later_join_the_spans_object_and_a_key_recorded_again_keeps_the_last_value() {
        let lines = json_lines(|| {
            let span = tracing::info_span!(
                "request",
                method = "GET",
                user_id = tracing::field::Empty,
                status = tracing::field::Empty,
                empty = tracing::field::Empty
            );
            span.record("user_id", "u-1");
            span.record("status", 200);
            span.record("status", 503);
            span.in_scope(|| {
                let inner = tracing::info_span!("bare", late = tracing::field::Empty);
                inner.record("late", "yes \"quoted\"");
                inner.in_scope(|| {
                    tracing::info!(answer = 42, r#type = "t", ok = true, ratio = 0.5, "done")
                });
            });
            tracing::warn!("outside");
        });
        let (line, outside) = (&lines[0], &lines[1]);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "portal_server::telemetry::tests");
        assert_eq!(line["fields"]["message"], "done");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
        assert_eq!(outside["level"], "WARN");
        assert_eq!(outside["fields"], serde_json::json!({"message": "outside"}));
        assert!(outside.get("span").is_none() && outside.get("spans").is_none());
        assert_eq!(
            line["spans"][0],
            serde_json::json!({"name": "request", "method": "GET", "user_id": "u-1", "status": 503})
        );
        assert_eq!(
            line["span"],
            serde_json::json!({"name": "bare", "late": "yes \"quoted\""})
        );
        assert_eq!(
            line["fields"],
            serde_json::json!({"message": "done", "answer": 42, "type": "t", "ok": true, "ratio": 0.5})
        );
    }

    /// Without OTLP a Redis `store` span is not created at all (no layer wants it), and a line
    /// written inside one names the request's span and carries its request ID.
    #[test]
    fn store_spans_are_left_to_traces() {
        let lines = json_lines(|| {
            let request = tracing::info_span!("request", request_id = "r-1");
            request.in_scope(|| {
                let store =
                    tracing::info_span!(target: "portal_redis", "store", otel.name = "session get");
                assert!(
                    store.is_disabled(),
                    "nothing wants a store span without OTLP"
                );
                store.in_scope(|| tracing::warn!("inside"));
            });
        });
        let line = &lines[0];
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["request_id"], "r-1", "{line}");
    }
}
