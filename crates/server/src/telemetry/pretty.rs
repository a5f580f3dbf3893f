//! Pretty lines (`LOG_FORMAT=pretty`).

use super::*;

/// `12:04:05.123  INFO request finished status=200 elapsed_ms=0  GET /api/v1/auth/me
/// request_id=…`: the event's message and fields, then its request.
pub(super) struct PrettyLine;

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
