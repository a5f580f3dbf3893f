//! Per-route fault injection: the fault table, the middleware that applies it, and the admin
//! endpoints (`GET`/`PUT`/`DELETE /_admin/faults`) that change it.

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a `timeout` fault holds a request before answering 504: longer than any adapter
/// deadline, so the caller times out first.
const HANG: Duration = Duration::from_secs(120);

/// A downstream the sandbox serves; the key of its faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Route {
    /// `/api/v1/auth/...`
    AuthService,
    /// `/api/v1/tenants...`
    TenantService,
    /// `/api/v1/conversations...` and `/api/v1/metrics/...`
    StateManager,
    /// `/genesys/...`
    Genesys,
    /// `/meta/...`
    Meta,
}

impl Route {
    /// The route a request path belongs to, if any.
    pub(crate) fn of_path(path: &str) -> Option<Self> {
        let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
        if under("/api/v1/auth") {
            Some(Route::AuthService)
        } else if under("/api/v1/tenants") {
            Some(Route::TenantService)
        } else if under("/api/v1/conversations") || under("/api/v1/metrics") {
            Some(Route::StateManager)
        } else if under("/genesys") {
            Some(Route::Genesys)
        } else if under("/meta") {
            Some(Route::Meta)
        } else {
            None
        }
    }
}

/// One route's injected fault (`PUT /_admin/faults` body, and `SANDBOX_FAULTS` entries).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Which downstream.
    pub route: Route,
    /// Share of requests answered with 503, 0 to 1.
    #[serde(default)]
    pub(crate) error_rate: f64,
    /// Added latency before answering, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Hang every request (the caller's deadline fires).
    #[serde(default)]
    pub timeout: bool,
}

impl Fault {
    fn is_valid(&self) -> bool {
        (0.0..=1.0).contains(&self.error_rate) && self.latency_ms <= 600_000
    }
}

/// The faults in force, shared by the middleware and the admin endpoint.
#[derive(Debug, Default, Clone)]
pub struct Faults(Arc<RwLock<HashMap<Route, Fault>>>);

impl Faults {
    /// Sets (replaces) the fault of `fault.route`. Refuses an error rate outside 0-1.
    pub fn set(&self, fault: Fault) -> Result<(), &'static str> {
        if !fault.is_valid() {
            return Err("errorRate must be within 0-1 and latencyMs at most 600000");
        }
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fault.route, fault);
        Ok(())
    }

    /// Removes one route's fault, or every fault.
    pub fn clear(&self, route: Option<Route>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match route {
            Some(r) => {
                map.remove(&r);
            }
            None => map.clear(),
        }
    }

    /// The fault of `route`, if any.
    pub fn get(&self, route: Route) -> Option<Fault> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&route)
            .copied()
    }

    fn all(&self) -> Vec<Fault> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .copied()
            .collect()
    }
}

/// Parses `SANDBOX_FAULTS` (a JSON array of [`Fault`]s).
pub fn faults_from_json(text: &str) -> Result<Vec<Fault>, serde_json::Error> {
    serde_json::from_str(text)
}

fn chance() -> f64 {
    let mut b = [0u8; 4];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

pub(super) async fn inject_faults(
    req: ServiceRequest,
    next: Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<
    ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    let fault = Route::of_path(req.path())
        .and_then(|r| req.app_data::<web::Data<Faults>>().and_then(|f| f.get(r)));
    if let Some(fault) = fault {
        if fault.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
        }
        if fault.timeout {
            tokio::time::sleep(HANG).await;
            let resp = HttpResponse::GatewayTimeout().json(json!({"error": "injected timeout"}));
            return Ok(req.into_response(resp).map_into_right_body());
        }
        if fault.error_rate > 0.0 && chance() < fault.error_rate {
            let resp = HttpResponse::ServiceUnavailable()
                .json(json!({"error": "service_unavailable", "message": "injected fault"}));
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

pub(super) async fn list(faults: web::Data<Faults>) -> HttpResponse {
    HttpResponse::Ok().json(faults.all())
}

pub(super) async fn put(faults: web::Data<Faults>, body: web::Json<Fault>) -> HttpResponse {
    match faults.set(body.into_inner()) {
        Ok(()) => HttpResponse::Ok().json(faults.all()),
        Err(e) => HttpResponse::BadRequest().json(json!({"error": "bad_request", "message": e})),
    }
}

#[derive(Deserialize)]
pub(super) struct RouteQuery {
    route: Option<Route>,
}

pub(super) async fn delete(faults: web::Data<Faults>, q: web::Query<RouteQuery>) -> HttpResponse {
    faults.clear(q.route);
    HttpResponse::NoContent().finish()
}
