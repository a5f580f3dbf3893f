//! The Prometheus text format 0.0.4, made from prometheus-client's OpenMetrics text (the
//! only text encoding it has).
//!
//! The two formats differ where a scraper or `promtool check metrics` would notice:
//! - a counter family is named without `_total` in OpenMetrics (`# TYPE x counter`, samples
//!   `x_total`) and with it in the text format (`# TYPE x_total counter`): left as it is, the
//!   text parser sees an empty family `x` and an untyped `x_total` without HELP;
//! - `unknown` is `untyped`; `info` is a gauge named `x_info`;
//! - no `# UNIT` lines, no `# EOF`, no exemplars, no `_created` samples.

/// `openmetrics` (one complete OpenMetrics exposition) in the Prometheus text format.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The family being read: its OpenMetrics name, and its HELP text until TYPE names it.
    let mut family = "";
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            family = name;
            help = Some(text);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family = name;
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            let text = help.take().unwrap_or("");
            out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
            out.push_str(&format!("# TYPE {name}{suffix} {kind}\n"));
        } else if line.starts_with('#') {
            // `# UNIT`, `# EOF`: OpenMetrics only.
        } else if !line.is_empty() {
            let sample = line
                .split_once(" # ")
                .map_or(line, |(sample, _exemplar)| sample);
            let name = sample.split(['{', ' ']).next().unwrap_or("");
            if name.strip_prefix(family) == Some("_created") {
                continue;
            }
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_total_name_and_openmetrics_only_lines_go() {
        let om = "# HELP portal_cache_hits Cache lookups.\n\
                  # TYPE portal_cache_hits counter\n\
                  portal_cache_hits_total{result=\"hit\"} 3\n\
                  portal_cache_hits_created{result=\"hit\"} 1700000000.0\n\
                  # HELP portal_active_sessions_total Sessions.\n\
                  # TYPE portal_active_sessions_total unknown\n\
                  portal_active_sessions_total 2\n\
                  # HELP req_seconds Latency.\n\
                  # TYPE req_seconds histogram\n\
                  # UNIT req_seconds seconds\n\
                  req_seconds_bucket{le=\"+Inf\"} 1 # {trace_id=\"abc\"} 0.2\n\
                  req_seconds_sum 0.2\n\
                  req_seconds_count 1\n\
                  # EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP portal_cache_hits_total Cache lookups.\n\
             # TYPE portal_cache_hits_total counter\n\
             portal_cache_hits_total{result=\"hit\"} 3\n\
             # HELP portal_active_sessions_total Sessions.\n\
             # TYPE portal_active_sessions_total untyped\n\
             portal_active_sessions_total 2\n\
             # HELP req_seconds Latency.\n\
             # TYPE req_seconds histogram\n\
             req_seconds_bucket{le=\"+Inf\"} 1\n\
             req_seconds_sum 0.2\n\
             req_seconds_count 1\n"
        );
    }

    #[test]
    fn an_info_metric_is_a_gauge() {
        let om = "# HELP build Build.\n# TYPE build info\nbuild_info{version=\"1\"} 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP build_info Build.\n# TYPE build_info gauge\nbuild_info{version=\"1\"} 1\n"
        );
    }
}
