//! JSON lines (`LOG_FORMAT=json`).

use super::*;

/// tracing-subscriber's JSON line (`Format<Json>` with the current span and the span list:
/// `timestamp`, `level`, `fields`, `target`, `span`, `spans`), with `request_id`, `trace_id`
/// and `span_id` added at the top level.
///
/// Written here rather than by tracing-subscriber's formatter, which parses each enclosing
/// span's stored fields back into a map for every line: a span's fields are already one JSON
/// object ([`JsonSpanFields`]), so they are copied as they are, with the span's `name` added.
pub(super) struct JsonLine;

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

/// `value` as a JSON string, escaped exactly as serde_json escapes it (quote, backslash and
/// control characters; nothing else), written straight into `line`.
pub(super) fn push_json_str(line: &mut String, value: &str) {
    line.push('"');
    push_escaped(line, value);
    line.push('"');
}

/// The inside of a JSON string: `value` with quote, backslash and control characters escaped.
/// Every byte escaped is ASCII, so the slices between them stay on character boundaries.
fn push_escaped(line: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, byte) in value.bytes().enumerate() {
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        line.push_str(&value[start..i]);
        if short.is_empty() {
            line.push_str("\\u00");
            line.push(char::from(HEX[usize::from(byte >> 4)]));
            line.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            line.push_str(short);
        }
        start = i + 1;
    }
    line.push_str(&value[start..]);
}

/// Escapes what is written through it into a JSON string's inside (a `Debug` value).
struct Escaping<'a>(&'a mut String);

impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

/// A span as tracing-subscriber's JSON format writes it: its fields and its `name`.
pub(super) fn push_span<S, N>(
    line: &mut String,
    span: &tracing_subscriber::registry::SpanRef<'_, S>,
) where
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
pub(super) struct JsonSpanFields;

/// Writes `"name":value` pairs, comma-separated, into a string.
pub(super) struct JsonObjectVisitor<'a> {
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
        use std::fmt::Write;
        self.key(field);
        self.out.push('"');
        let _ = write!(Escaping(self.out), "{value:?}");
        self.out.push('"');
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        use std::fmt::Write;
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        use std::fmt::Write;
        self.key(field);
        let _ = write!(self.out, "{value}");
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
pub(super) fn json_pairs(fields: impl RecordFields) -> (String, Vec<&'static str>) {
    let mut out = String::with_capacity(256);
    let mut visitor = JsonObjectVisitor {
        out: &mut out,
        names: Vec::new(),
    };
    fields.record(&mut visitor);
    let names = visitor.names;
    (out, names)
}

/// Whether the JSON object `object` has the key `name` (`"name":` somewhere in it).
fn has_key(object: &str, name: &str) -> bool {
    object
        .match_indices(name)
        .any(|(at, _)| object[..at].ends_with('"') && object[at + name.len()..].starts_with("\":"))
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
            has_key(&current.fields, name)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string is written as serde_json writes it: all control characters, quotes,
    /// backslashes, non-ASCII text, and text around them.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let controls: String = (0u8..0x20).map(char::from).collect();
        for value in [
            "",
            "plain",
            "say \"hi\"\\ now",
            "tab\there\r\nnext",
            "é, 漢字, 🙂 and \u{7f}",
            &controls,
            "\u{1}start",
            "end\u{1f}",
        ] {
            let mut line = String::new();
            push_json_str(&mut line, value);
            assert_eq!(line, serde_json::to_string(value).unwrap(), "{value:?}");
        }
    }

    #[test]
    fn a_key_is_found_only_as_a_key() {
        let object = r#"{"user_id":"u-1","status":"user","x":1}"#;
        assert!(has_key(object, "user_id"));
        assert!(has_key(object, "x"));
        assert!(!has_key(object, "user"), "a value, not a key");
        assert!(!has_key(object, "id"), "the end of a key, not a key");
    }
}
