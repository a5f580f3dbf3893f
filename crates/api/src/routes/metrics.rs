//! `GET /metrics`: the telemetry recorder's exposition (Prometheus scrapes it).
//!
//! Served on the main port, without authentication or rate limit, and not recorded in its own
//! latency histogram: block it for the public at the reverse proxy (deploy/nginx.conf does).
//! With `METRICS_ENABLED=false` the binary wires a recorder that exports nothing and this
//! answers 404.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, ResponseError, get, web};

/// The route.
pub(crate) const PATH: &str = "/metrics";

/// The content type prometheus-client's text encoder produces.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metrics in the OpenMetrics text format.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics 1.0 text (Prometheus)", content_type = "application/openmetrics-text"),
        (status = 404, description = "Metrics are disabled (`METRICS_ENABLED=false`)", body = crate::error::ErrorBody),
    )
)]
#[get("/metrics")]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.telemetry().render() {
        Some(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        None => ApiError::not_found().error_response(),
    }
}
