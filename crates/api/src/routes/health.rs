//! `/health` (Appendix B), `/livez`, `/readyz`.

use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use portal_domain::ports::system::HealthProbe;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` or `degraded`.
    pub status: String,
    /// Now (RFC 3339).
    pub timestamp: String,
    /// Seconds since start.
    pub uptime: f64,
    /// Each dependency: `ok` or `error`.
    pub checks: BTreeMap<String, String>,
}

async fn run(probes: &[Arc<dyn HealthProbe>], only_required: bool) -> BTreeMap<String, bool> {
    let checks = probes
        .iter()
        .filter(|p| !only_required || p.required_for_readiness())
        .map(|p| async move {
            let ok = tokio::time::timeout(PROBE_TIMEOUT, p.check())
                .await
                .is_ok_and(|s| s.ok);
            if !ok {
                tracing::warn!(dependency = p.name(), "health check failed");
            }
            (p.name().to_owned(), ok)
        });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .collect()
}

/// Dependency health (200 ok / 503 degraded).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "All dependencies answer", body = HealthResponse),
        (status = 503, description = "At least one dependency fails", body = HealthResponse),
    )
)]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let results = run(&state.0.probes, false).await;
    let healthy = results.values().all(|ok| *ok);
    let body = HealthResponse {
        status: if healthy { "ok" } else { "degraded" }.into(),
        timestamp: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
        uptime: state.0.started.elapsed().as_secs_f64(),
        checks: results
            .into_iter()
            .map(|(k, ok)| (k, if ok { "ok" } else { "error" }.to_owned()))
            .collect(),
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Liveness: the process answers.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Alive")))]
#[get("/livez")]
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the dependencies required to serve answer.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "A required dependency fails"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let results = run(&state.0.probes, true).await;
    if results.values().all(|ok| *ok) {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "not_ready" }))
    }
}
