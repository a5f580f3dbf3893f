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

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use portal_api::middleware::{EdgeFuture, RequestScopeInfo};
use portal_outbound::context::RequestContext;
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
    Registry::default()
        .with(filter(&logging.level))
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

// ---------------------------------------------------------------------------------------
// JSON lines

/// tracing-subscriber's JSON line (`Format<Json>` with the current span and the span list:
/// `timestamp`, `level`, `fields`, `target`, `span`, `spans`), with `request_id`, `trace_id`
/// and `span_id` added at the top level.
///
/// Written here rather than by tracing-subscriber's formatter, which parses each enclosing
/// span's stored fields back into a map for every line: a span's fields are already one JSON
/// object ([`JsonSpanFields`]), so they are copied as they are, with the span's `name` added.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime;
        let meta = event.metadata();
        let mut line = String::with_capacity(1024);
        let mut timestamp = String::new();
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.push_str("{\"timestamp\":");
        push_json_str(&mut line, &timestamp);
        line.push_str(",\"level\":");
        push_json_str(&mut line, meta.level().as_str());
        line.push_str(",\"fields\":");
        let mut fields = String::new();
        ctx.format_fields(Writer::new(&mut fields), event)?;
        line.push_str(if fields.is_empty() { "{}" } else { &fields });
        line.push_str(",\"target\":");
        push_json_str(&mut line, meta.target());
        let current = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = &current {
            line.push_str(",\"span\":");
            push_span::<S, N>(&mut line, span);
        }
        if current.is_some()
            && let Some(leaf) = ctx.lookup_current()
        {
            line.push_str(",\"spans\":[");
            for (i, span) in leaf.scope().from_root().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                push_span::<S, N>(&mut line, &span);
            }
            line.push(']');
        }
        let ids = line_ids(ctx);
        if let Some(request) = &ids.request {
            line.push_str(",\"request_id\":");
            push_json_str(&mut line, &request.request_id);
        }
        if let (Some(trace), Some(span)) = (&ids.trace_id, &ids.span_id) {
            line.push_str(",\"trace_id\":");
            push_json_str(&mut line, trace);
            line.push_str(",\"span_id\":");
            push_json_str(&mut line, span);
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// `value` as a JSON string.
fn push_json_str(line: &mut String, value: &str) {
    match serde_json::to_string(value) {
        Ok(quoted) => line.push_str(&quoted),
        Err(_) => line.push_str("\"\""),
    }
}

/// A span as tracing-subscriber's JSON format writes it: its fields and its `name`.
fn push_span<S, N>(line: &mut String, span: &tracing_subscriber::registry::SpanRef<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    let extensions = span.extensions();
    let fields = extensions
        .get::<FormattedFields<N>>()
        .map(|f| f.fields.trim())
        .and_then(|f| f.strip_suffix('}'))
        .map(str::trim_end)
        .filter(|f| f.starts_with('{'));
    match fields {
        Some(object) if object.len() > 1 => {
            line.push_str(object);
            line.push(',');
        }
        _ => line.push('{'),
    }
    line.push_str("\"name\":");
    push_json_str(line, span.metadata().name());
    line.push('}');
}

/// Fields as one JSON object, the same as tracing-subscriber's `JsonFields` writes them
/// (strings, numbers and booleans as such, anything else as its `Debug` text, `r#` stripped
/// from names), written straight into the line instead of through a map of JSON values.
/// Recording more fields into a span (`Span::record`: the request span gets `user_id`,
/// `tenant_id`, its status...) appends them to the span's object instead of parsing it and
/// writing it again (tracing-subscriber's way, a tenth of a cached request's CPU); a field
/// recorded a second time goes that slow way, so every key stays unique.
struct JsonSpanFields;

/// Writes `"name":value` pairs, comma-separated, into a string.
struct JsonObjectVisitor<'a> {
    out: &'a mut String,
    /// The names written, to find a key recorded again.
    names: Vec<&'static str>,
}

impl JsonObjectVisitor<'_> {
    fn key(&mut self, field: &Field) {
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.names.push(field.name());
        if !self.out.is_empty() {
            self.out.push(',');
        }
        push_json_str(self.out, name);
        self.out.push(':');
    }
}

impl Visit for JsonObjectVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.key(field);
        push_json_str(self.out, &format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.out.push_str(&value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.out.push_str(&value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        match serde_json::Number::from_f64(value) {
            Some(n) => self.out.push_str(&n.to_string()),
            None => self.out.push_str("null"),
        }
    }
}

/// The `"name":value` pairs of `fields` (no braces), and the names.
fn json_pairs(fields: impl RecordFields) -> (String, Vec<&'static str>) {
    let mut out = String::with_capacity(256);
    let mut visitor = JsonObjectVisitor {
        out: &mut out,
        names: Vec::new(),
    };
    fields.record(&mut visitor);
    let names = visitor.names;
    (out, names)
}

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let (pairs, _) = json_pairs(fields);
        writer.write_char('{')?;
        writer.write_str(&pairs)?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let (pairs, names) = json_pairs(fields);
        if pairs.is_empty() {
            return Ok(());
        }
        let Some(object) = current.fields.trim_end().strip_suffix('}') else {
            current.fields = format!("{{{pairs}}}");
            return Ok(());
        };
        let seen = names.iter().any(|name| {
            let name = name.strip_prefix("r#").unwrap_or(name);
            current.fields.contains(&format!("\"{name}\":"))
        });
        if seen {
            // A key recorded again: merge (the later value wins), as JsonFields does.
            let mut map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&current.fields).map_err(|_| std::fmt::Error)?;
            let more: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&format!("{{{pairs}}}")).map_err(|_| std::fmt::Error)?;
            map.extend(more);
            current.fields = serde_json::to_string(&map).map_err(|_| std::fmt::Error)?;
            return Ok(());
        }
        let end = object.len();
        let empty = object.trim_end().ends_with('{');
        current.fields.truncate(end);
        if !empty {
            current.fields.push(',');
        }
        current.fields.push_str(&pairs);
        current.fields.push('}');
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Pretty lines

/// `12:04:05.123  INFO request finished status=200 elapsed_ms=0  GET /api/v1/auth/me
/// request_id=…`: the event's message and fields, then its request.
struct PrettyLine;

impl<S, N> FormatEvent<S, N> for PrettyLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let ansi = writer.has_ansi_escapes();
        let paint = |code: &str, text: &str| {
            if ansi {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_owned()
            }
        };
        let now = time::OffsetDateTime::now_utc();
        let level = *event.metadata().level();
        let (colour, name) = match level {
            tracing::Level::ERROR => ("31", "ERROR"),
            tracing::Level::WARN => ("33", " WARN"),
            tracing::Level::INFO => ("32", " INFO"),
            tracing::Level::DEBUG => ("34", "DEBUG"),
            tracing::Level::TRACE => ("35", "TRACE"),
        };
        write!(
            writer,
            "{} {} ",
            paint(
                "2",
                &format!(
                    "{:02}:{:02}:{:02}.{:03}",
                    now.hour(),
                    now.minute(),
                    now.second(),
                    now.millisecond()
                )
            ),
            paint(colour, name)
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        let ids = line_ids(ctx);
        if let Some(request) = ids.request {
            let what = request.name.unwrap_or_default();
            write!(
                writer,
                "  {}",
                paint("2", &format!("{what} request_id={}", request.request_id))
            )?;
        }
        if let Some(trace) = ids.trace_id {
            write!(writer, " {}", paint("2", &format!("trace_id={trace}")))?;
        }
        writeln!(writer)
    }
}

// ---------------------------------------------------------------------------------------
// OTLP

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

    /// The tracer provider, for [`get_subscriber`].
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
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

/// The resource spans are exported with: the SDK's detectors (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`, the SDK's own attributes), with `service.name` =
/// [`SERVICE_NAME`] when neither variable names one (the SDK would say `unknown_service`).
fn resource() -> opentelemetry_sdk::Resource {
    use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector};
    let key = opentelemetry::Key::from_static_str("service.name");
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|n| !n.trim().is_empty())
        || EnvResourceDetector::new().detect().get(&key).is_some();
    let builder = opentelemetry_sdk::Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name(SERVICE_NAME).build()
    }
}

/// The OTLP exporter when `endpoint` (`OTEL_EXPORTER_OTLP_ENDPOINT`) or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set: batches of spans over OTLP/HTTP from a
/// background thread with the blocking client. An empty guard otherwise.
pub fn otlp_exporter(endpoint: Option<&str>) -> anyhow::Result<TelemetryGuard> {
    let endpoint = endpoint.map(str::trim).filter(|e| !e.is_empty());
    // The signal-specific variable wins, as the OpenTelemetry specification says; the
    // exporter reads it itself when no endpoint is given here.
    let traces_endpoint =
        std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_ok_and(|e| !e.trim().is_empty());
    if endpoint.is_none() && !traces_endpoint {
        return Ok(TelemetryGuard::default());
    }
    use opentelemetry_otlp::WithExportConfig;
    // The exporter's reqwest client needs rustls's provider (reqwest panics without).
    portal_outbound::install_crypto_provider();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let (Some(endpoint), false) = (endpoint, traces_endpoint) {
        exporter = exporter.with_endpoint(traces_url(endpoint));
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter.build()?)
        .with_resource(resource())
        .build();
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
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

    #[test]
    fn fields_recorded_later_join_the_spans_object_and_a_key_recorded_again_keeps_the_last_value() {
        let lines = Lines::default();
        let sink = lines.clone();
        let logging = Logging {
            level: "info".into(),
            format: LogFormat::Json,
            ansi: false,
        };
        let subscriber = get_subscriber(&logging, move || sink.clone(), None);
        tracing::subscriber::with_default(subscriber, || {
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
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
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
}
