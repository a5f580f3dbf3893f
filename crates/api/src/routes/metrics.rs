//! `GET /metrics`: the telemetry recorder's exposition (Prometheus scrapes it).
//!
//! Served on the main port, without authentication or rate limit, and not recorded in its own
//! latency histogram: block it for the public at the reverse proxy (deploy/nginx.conf does).
//! With `METRICS_ENABLED=false` the binary wires a recorder that exports nothing and this
//! answers 404.
//!
//! Content negotiation as Prometheus does it: OpenMetrics 1.0 when the scraper's `Accept`
//! asks for `application/openmetrics-text` at least as much as for anything else (Prometheus
//! does), the Prometheus text format 0.0.4 otherwise (curl, `promtool check metrics`, older
//! scrapers).

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, web};
use portal_domain::ports::system::MetricsFormat;

/// The route.
pub(crate) const PATH: &str = "/metrics";

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metrics in the format the scraper asks for.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The metrics: OpenMetrics 1.0 text when `Accept` asks for `application/openmetrics-text`, else the Prometheus text format 0.0.4", content(
            (String = "application/openmetrics-text"),
            (String = "text/plain"),
        )),
        (status = 404, description = "Metrics are disabled (`METRICS_ENABLED=false`)", body = crate::error::ErrorBody),
    )
)]
#[get("/metrics")]
pub(crate) async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let format = negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let content_type = match format {
        MetricsFormat::OpenMetrics => OPENMETRICS,
        MetricsFormat::PrometheusText => PROMETHEUS_TEXT,
    };
    match state.telemetry().render(format) {
        Some(text) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::VARY, "Accept"))
            .body(text),
        None => ApiError::not_found().error_response(),
    }
}

/// OpenMetrics when `accept` rates `application/openmetrics-text` above zero and no lower
/// than any other media range; the text format otherwise (no `Accept`, `*/*`, `text/plain`).
fn negotiate(accept: Option<&str>) -> MetricsFormat {
    let mut openmetrics = 0.0_f32;
    let mut other = 0.0_f32;
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if media == "application/openmetrics-text" {
            openmetrics = openmetrics.max(q);
        } else if !media.is_empty() {
            other = other.max(q);
        }
    }
    if openmetrics > 0.0 && openmetrics >= other {
        MetricsFormat::OpenMetrics
    } else {
        MetricsFormat::PrometheusText
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_openmetrics_and_everyone_else_the_text_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prometheus)), MetricsFormat::OpenMetrics);
        assert_eq!(
            negotiate(Some("application/openmetrics-text")),
            MetricsFormat::OpenMetrics
        );
        for text in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("text/plain,application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0"),
        ] {
            assert_eq!(negotiate(text), MetricsFormat::PrometheusText, "{text:?}");
        }
    }
}
