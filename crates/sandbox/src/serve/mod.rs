//! The HTTP sandbox of the whole platform: every simulator served over HTTP with the paths and
//! JSON shapes the real adapters call, plus per-route fault injection.
//!
//! | route (fault key) | paths |
//! | --- | --- |
//! | `authService` | `POST /api/v1/auth/validate`, `GET /api/v1/auth/profile`, `POST /api/v1/auth/refresh` |
//! | `tenantService` | `POST /api/v1/tenants`, `PUT /api/v1/tenants/{id}`, `GET /api/v1/tenants/by-user/{userId}` |
//! | `stateManager` | `GET /api/v1/conversations`, `/{id}`, `/{id}/messages`, `GET /api/v1/metrics/{tenantId}` |
//! | `genesys` | `GET /genesys/oauth/authorize` (login page), `POST /genesys/oauth/token`, `GET /genesys/api/v2/organizations/me` |
//! | `meta` | `GET /meta/{version}/{phoneNumberId}` |
//!
//! `GET /health` and the admin endpoints (`GET`/`PUT`/`DELETE /_admin/faults`) are never
//! faulted. A fault adds latency, fails a share of requests with 503, or hangs (a timeout).
//!
//! # Layout
//! - `faults`: [`Route`], [`Fault`], `Faults`, the fault middleware and the admin endpoints.
//! - `auth`, `tenant`, `state_manager`, `genesys`, `meta`: one simulated service each, its
//!   handlers and the JSON shapes its HTTP adapter reads.

mod auth;
mod faults;
mod genesys;
mod meta;
mod state_manager;
mod tenant;
#[cfg(test)]
mod tests;

use faults::Faults;
pub use faults::{Fault, Route, faults_from_json};

use crate::Platform;
use actix_web::dev::Server;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use portal_domain::ports::downstream::{
    AuthService, GenesysCloud, StateManager, TenantService, WhatsApp,
};
use portal_domain::secret::SecretString;
use serde_json::json;
use std::net::TcpListener;
use std::sync::Arc;

/// Client ID the sandbox's Genesys login page accepts by default (the service's default too).
pub(crate) const DEFAULT_CLIENT_ID: &str = "agent-portal-sandbox";

/// Redirect URIs the login page accepts by default: the service's callback on the loopback
/// interface, on any port (RFC 8252 §7.3), as `just dev` and the tests run it.
pub const DEFAULT_REDIRECT_URIS: [&str; 3] = [
    "http://localhost/api/v1/auth/callback",
    "http://127.0.0.1/api/v1/auth/callback",
    "http://[::1]/api/v1/auth/callback",
];

/// How the sandbox is served.
#[derive(Debug, Clone)]
pub struct Options {
    /// The only client ID the Genesys login page accepts.
    pub client_id: String,
    /// The redirect URIs the login page accepts (see [`crate::RegisteredClient`]).
    pub redirect_uris: Vec<String>,
    /// Faults in force from the start.
    pub faults: Vec<Fault>,
    /// HTTP workers (default 1: the sandbox is light).
    pub workers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            redirect_uris: DEFAULT_REDIRECT_URIS.map(str::to_owned).to_vec(),
            faults: Vec::new(),
            workers: 1,
        }
    }
}

/// A started sandbox: the server future and its fault table (tests change faults directly).
pub struct Sandbox {
    /// Await it (or spawn it) to serve.
    pub server: Server,
    /// The faults in force.
    pub faults: Faults,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

struct Sims {
    auth: Arc<dyn AuthService>,
    tenants: Arc<dyn TenantService>,
    state_manager: Arc<dyn StateManager>,
    genesys: Arc<dyn GenesysCloud>,
    whatsapp: Arc<dyn WhatsApp>,
    platform: Platform,
}

impl Sims {
    fn new(platform: Platform) -> Self {
        Self {
            auth: platform.auth_service(),
            tenants: platform.tenant_service(),
            state_manager: platform.state_manager(),
            genesys: platform.genesys(),
            whatsapp: platform.whatsapp(),
            platform,
        }
    }
}

/// Serves `platform` on `listener` (bind port 0 in tests).
pub fn serve(
    listener: TcpListener,
    platform: Platform,
    options: Options,
) -> std::io::Result<Sandbox> {
    let faults = Faults::default();
    for f in &options.faults {
        faults
            .set(*f)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    }
    let sims = web::Data::new(Sims::new(platform));
    let table = faults.clone();
    let client = crate::RegisteredClient {
        client_id: options.client_id,
        redirect_uris: options.redirect_uris,
    };
    let server = HttpServer::new(move || {
        let login_auth = sims.platform.auth();
        let client = client.clone();
        App::new()
            .app_data(sims.clone())
            .app_data(web::Data::new(table.clone()))
            .wrap(from_fn(faults::inject_faults))
            .configure(move |cfg| routes(cfg, login_auth, client))
    })
    .workers(options.workers.max(1))
    .listen(listener)?
    .run();
    Ok(Sandbox { server, faults })
}

/// Every route of the sandbox (the fault middleware and the app data are added by the caller).
fn routes(
    cfg: &mut web::ServiceConfig,
    login_auth: Arc<crate::auth::SimAuthService>,
    client: crate::RegisteredClient,
) {
    cfg.route("/health", web::get().to(health))
        .service(
            web::resource("/_admin/faults")
                .route(web::get().to(faults::list))
                .route(web::put().to(faults::put))
                .route(web::delete().to(faults::delete)),
        )
        .service(
            web::scope("/api/v1/auth")
                .route("/validate", web::post().to(auth::validate))
                .route("/profile", web::get().to(auth::profile))
                .route("/refresh", web::post().to(auth::refresh)),
        )
        .service(
            web::scope("/api/v1/tenants")
                .route("", web::post().to(tenant::create))
                .route("/by-user/{user}", web::get().to(tenant::by_user))
                .route("/{id}", web::put().to(tenant::update)),
        )
        .route(
            "/api/v1/conversations",
            web::get().to(state_manager::conversations),
        )
        .route(
            "/api/v1/conversations/{id}",
            web::get().to(state_manager::conversation),
        )
        .route(
            "/api/v1/conversations/{id}/messages",
            web::get().to(state_manager::messages),
        )
        .route(
            "/api/v1/metrics/{tenant}",
            web::get().to(state_manager::metrics),
        )
        .service(
            web::scope("/genesys")
                .configure(move |c| crate::genesys_login(c, login_auth, client))
                .route("/oauth/token", web::post().to(genesys::token))
                .route(
                    "/api/v2/organizations/me",
                    web::get().to(genesys::organization),
                ),
        )
        .route("/meta/{version}/{id}", web::get().to(meta::phone_number));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "service": "portal-sandbox"}))
}

// ---- replies shared by the simulated services ----

fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": code, "message": message}))
}

fn unavailable() -> HttpResponse {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "simulator unavailable",
    )
}

fn bearer(req: &HttpRequest) -> Option<SecretString> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty()).then(|| SecretString::from(token.to_owned()))
}

fn basic(req: &HttpRequest) -> Option<(String, SecretString)> {
    use base64::Engine as _;
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), SecretString::from(secret.to_owned())))
}

fn bad_request(message: &str) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}
