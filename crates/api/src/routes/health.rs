//! `/health` (Appendix B), `/livez`, `/readyz`.
//!
//! `/health` runs every probe (2 s each, concurrently): `checks.<name>` is `ok`/`error`,
//! `details.<name>` its latency and reason, `circuits.<service>` each circuit breaker's state
//! (`closed`, `open`, `half_open`; the worst when several breakers share a name). An open
//! circuit does not make the service degraded by itself: the dependency's probe does.
//! `/readyz` is 200 only once start-up is done and the probes required for readiness (Redis,
//! when configured) answer.

use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use portal_domain::ports::system::{CircuitState, HealthProbe, HealthStatus};
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
pub(crate) struct HealthResponse {
    /// `ok` or `degraded`.
    #[schema(pattern = "^(ok|degraded)$")]
    pub status: String,
    /// Now (RFC 3339).
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Seconds since start.
    pub uptime: f64,
    /// Each dependency: `ok` or `error`.
    pub checks: BTreeMap<String, String>,
    /// Each dependency's probe latency and, when it failed, why.
    pub details: BTreeMap<String, CheckDetail>,
    /// Each downstream's circuit breaker: `closed`, `open` or `half_open`.
    pub circuits: BTreeMap<String, String>,
}

/// One probe's result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckDetail {
    /// How long the probe took (milliseconds).
    pub latency_ms: u64,
    /// Why it failed (absent when ok).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

async fn run(
    probes: &[Arc<dyn HealthProbe>],
    only_required: bool,
) -> BTreeMap<String, HealthStatus> {
    let checks = probes
        .iter()
        .filter(|p| !only_required || p.required_for_readiness())
        .map(|p| async move {
            let status = tokio::time::timeout(PROBE_TIMEOUT, p.check())
                .await
                .unwrap_or_else(|_| HealthStatus {
                    ok: false,
                    latency: PROBE_TIMEOUT,
                    detail: Some("timed out".into()),
                });
            if !status.ok {
                tracing::warn!(
                    dependency = p.name(),
                    detail = status.detail.as_deref(),
                    "health check failed"
                );
            }
            (p.name().to_owned(), status)
        });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .collect()
}

fn severity(s: CircuitState) -> u8 {
    match s {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
    }
}

/// Each breaker's state by name, the worst when several share a name.
fn circuits(state: &AppState) -> BTreeMap<String, String> {
    let mut worst: BTreeMap<&'static str, CircuitState> = BTreeMap::new();
    for b in &state.0.circuits {
        let s = b.state();
        worst
            .entry(b.name())
            .and_modify(|w| {
                if severity(s) > severity(*w) {
                    *w = s;
                }
            })
            .or_insert(s);
    }
    worst
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.as_str().to_owned()))
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
pub(crate) async fn health(state: web::Data<AppState>) -> HttpResponse {
    let results = run(&state.0.probes, false).await;
    let healthy = results.values().all(|s| s.ok);
    let body = HealthResponse {
        status: if healthy { "ok" } else { "degraded" }.into(),
        timestamp: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
        uptime: state.0.started.elapsed().as_secs_f64(),
        checks: results
            .iter()
            .map(|(k, s)| (k.clone(), if s.ok { "ok" } else { "error" }.to_owned()))
            .collect(),
        details: results
            .into_iter()
            .map(|(k, s)| {
                let detail = CheckDetail {
                    latency_ms: u64::try_from(s.latency.as_millis()).unwrap_or(u64::MAX),
                    detail: if s.ok { None } else { s.detail },
                };
                (k, detail)
            })
            .collect(),
        circuits: circuits(&state),
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// What a probe says.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProbeStatus {
    /// `/livez`: the process answers.
    Ok,
    /// `/readyz`: ready to serve.
    Ready,
    /// `/readyz`: start-up is not done.
    Starting,
    /// `/readyz`: a dependency required to serve fails.
    NotReady,
}

/// `GET /livez`, `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProbeResponse {
    /// The verdict.
    pub status: ProbeStatus,
}

fn probe(status: ProbeStatus) -> ProbeResponse {
    ProbeResponse { status }
}

/// Liveness: the process answers.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Alive (`ok`)", body = ProbeResponse))
)]
#[get("/livez")]
pub(crate) async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(probe(ProbeStatus::Ok))
}

/// Readiness: the dependencies required to serve answer.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready (`ready`)", body = ProbeResponse),
        (status = 503, description = "Starting (`starting`), or a required dependency fails (`not_ready`)", body = ProbeResponse),
    )
)]
#[get("/readyz")]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !state.0.ready.load(std::sync::atomic::Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable().json(probe(ProbeStatus::Starting));
    }
    let results = run(&state.0.probes, true).await;
    if results.values().all(|s| s.ok) {
        HttpResponse::Ok().json(probe(ProbeStatus::Ready))
    } else {
        HttpResponse::ServiceUnavailable().json(probe(ProbeStatus::NotReady))
    }
}
