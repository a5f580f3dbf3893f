//! The HTTP sandbox of the whole platform: every simulator served over HTTP with the paths and
//! JSON shapes the real adapters call, plus per-route fault injection.
//!
//! | route (fault key) | paths |
//! | --- | --- |
//! | `authService` | `POST /api/v1/auth/validate`, `GET /api/v1/auth/profile`, `POST /api/v1/auth/refresh` |
//! | `tenantService` | `POST /api/v1/tenants`, `GET`/`PUT /api/v1/tenants/{id}`, `GET /api/v1/tenants/by-user/{userId}`, `POST /api/v1/tenants/validate` |
//! | `stateManager` | `GET /api/v1/conversations`, `/{id}`, `/{id}/messages`, `GET /api/v1/metrics/{tenantId}` |
//! | `genesys` | `GET /genesys/oauth/authorize` (login page), `POST /genesys/oauth/token`, `GET /genesys/api/v2/organizations/me` |
//! | `meta` | `GET /meta/{version}/{phoneNumberId}` |
//!
//! `GET /health` and the admin endpoints (`GET`/`PUT`/`DELETE /_admin/faults`) are never
//! faulted. A fault adds latency, fails a share of requests with 503, or hangs (a timeout).

use crate::Platform;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use portal_domain::model::{
    ConversationId, ConversationQuery, ConversationStatus, DateRange, Email, GenesysConfig,
    NewTenant, Period, Region, TenantId, TenantStatus, TenantUpdate, UserId, WebhookConfig,
    WhatsAppConfig,
};
use portal_domain::ports::downstream::{
    AuthService, AuthServiceError, CodeExchange, CredentialCheck, GenesysCloud, GenesysError,
    StateManager, StateManagerError, TenantService, TenantServiceError, TokenSet, WhatsApp,
    WhatsAppError,
};
use portal_domain::secret::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Client ID the sandbox's Genesys login page accepts by default (the service's default too).
pub const DEFAULT_CLIENT_ID: &str = "agent-portal-sandbox";

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
    pub fn of_path(path: &str) -> Option<Self> {
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
    pub error_rate: f64,
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

/// How the sandbox is served.
#[derive(Debug, Clone)]
pub struct Options {
    /// The only client ID the Genesys login page accepts.
    pub client_id: String,
    /// Faults in force from the start.
    pub faults: Vec<Fault>,
    /// HTTP workers (default 1: the sandbox is light).
    pub workers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
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
    let client_id = options.client_id;
    let server = HttpServer::new(move || {
        let login_auth = sims.platform.auth();
        let client_id = client_id.clone();
        App::new()
            .app_data(sims.clone())
            .app_data(web::Data::new(table.clone()))
            .wrap(from_fn(inject_faults))
            .configure(move |cfg| routes(cfg, login_auth, client_id))
    })
    .workers(options.workers.max(1))
    .listen(listener)?
    .run();
    Ok(Sandbox { server, faults })
}

/// Every route of the sandbox (the fault middleware and the app data are added by the caller).
fn routes(cfg: &mut web::ServiceConfig, login_auth: Arc<crate::SimAuthService>, client_id: String) {
    cfg.route("/health", web::get().to(health))
        .service(
            web::resource("/_admin/faults")
                .route(web::get().to(list_faults))
                .route(web::put().to(put_fault))
                .route(web::delete().to(delete_faults)),
        )
        .service(
            web::scope("/api/v1/auth")
                .route("/validate", web::post().to(auth_validate))
                .route("/profile", web::get().to(auth_profile))
                .route("/refresh", web::post().to(auth_refresh)),
        )
        .service(
            web::scope("/api/v1/tenants")
                .route("", web::post().to(tenant_create))
                .route("/validate", web::post().to(tenant_validate))
                .route("/by-user/{user}", web::get().to(tenant_by_user))
                .route("/{id}", web::get().to(tenant_get))
                .route("/{id}", web::put().to(tenant_update)),
        )
        .route("/api/v1/conversations", web::get().to(sm_conversations))
        .route("/api/v1/conversations/{id}", web::get().to(sm_conversation))
        .route(
            "/api/v1/conversations/{id}/messages",
            web::get().to(sm_messages),
        )
        .route("/api/v1/metrics/{tenant}", web::get().to(sm_metrics))
        .service(
            web::scope("/genesys")
                .configure(move |c| crate::genesys_login(c, login_auth, client_id))
                .route("/oauth/token", web::post().to(genesys_token))
                .route(
                    "/api/v2/organizations/me",
                    web::get().to(genesys_organization),
                ),
        )
        .route("/meta/{version}/{id}", web::get().to(meta_phone_number));
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

async fn inject_faults(
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

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "service": "portal-sandbox"}))
}

async fn list_faults(faults: web::Data<Faults>) -> HttpResponse {
    HttpResponse::Ok().json(faults.all())
}

async fn put_fault(faults: web::Data<Faults>, body: web::Json<Fault>) -> HttpResponse {
    match faults.set(body.into_inner()) {
        Ok(()) => HttpResponse::Ok().json(faults.all()),
        Err(e) => HttpResponse::BadRequest().json(json!({"error": "bad_request", "message": e})),
    }
}

#[derive(Deserialize)]
struct RouteQuery {
    route: Option<Route>,
}

async fn delete_faults(faults: web::Data<Faults>, q: web::Query<RouteQuery>) -> HttpResponse {
    faults.clear(q.route);
    HttpResponse::NoContent().finish()
}

// ---- helpers ----

fn error(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": code, "message": message}))
}

fn unavailable() -> HttpResponse {
    error(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
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

fn tokens(t: TokenSet) -> HttpResponse {
    let expires_at = t.expires_at.format(&Rfc3339).unwrap_or_default();
    HttpResponse::Ok().json(json!({
        "accessToken": t.access_token.expose_secret(),
        "refreshToken": t.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()),
        "expiresAt": expires_at,
    }))
}

fn auth_error(e: AuthServiceError) -> HttpResponse {
    match e {
        AuthServiceError::InvalidGrant => error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "invalid grant",
        ),
        AuthServiceError::Unauthorized => error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid access token",
        ),
        AuthServiceError::Failure(_) => unavailable(),
    }
}

fn tenant_error(e: TenantServiceError) -> HttpResponse {
    match e {
        TenantServiceError::NotFound => error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "tenant not found",
        ),
        TenantServiceError::Rejected(reason) => {
            error(actix_web::http::StatusCode::CONFLICT, "rejected", &reason)
        }
        TenantServiceError::Failure(_) => unavailable(),
    }
}

fn sm_error(e: StateManagerError) -> HttpResponse {
    match e {
        StateManagerError::NotFound => error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "not found",
        ),
        StateManagerError::Failure(_) => unavailable(),
    }
}

fn bad_request(message: &str) -> HttpResponse {
    error(
        actix_web::http::StatusCode::BAD_REQUEST,
        "bad_request",
        message,
    )
}

// ---- Auth Service ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValidateBody {
    token: String,
    code_verifier: String,
    redirect_uri: String,
}

async fn auth_validate(sims: web::Data<Sims>, body: web::Json<ValidateBody>) -> HttpResponse {
    let b = body.into_inner();
    let exchange = CodeExchange {
        code: SecretString::from(b.token),
        code_verifier: SecretString::from(b.code_verifier),
        redirect_uri: b.redirect_uri,
    };
    match sims.auth.exchange_code(exchange).await {
        Ok(t) => tokens(t),
        Err(e) => auth_error(e),
    }
}

async fn auth_profile(sims: web::Data<Sims>, req: HttpRequest) -> HttpResponse {
    let Some(token) = bearer(&req) else {
        return auth_error(AuthServiceError::Unauthorized);
    };
    match sims.auth.profile(&token).await {
        Ok(p) => HttpResponse::Ok().json(p),
        Err(e) => auth_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

async fn auth_refresh(sims: web::Data<Sims>, body: web::Json<RefreshBody>) -> HttpResponse {
    let token = SecretString::from(body.into_inner().refresh_token);
    match sims.auth.refresh(&token).await {
        Ok(t) => tokens(t),
        Err(e) => auth_error(e),
    }
}

// ---- Tenant Service ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    company_name: String,
    region: Region,
    contact_email: Email,
    created_by: UserId,
}

async fn tenant_create(sims: web::Data<Sims>, body: web::Json<CreateBody>) -> HttpResponse {
    let b = body.into_inner();
    let new = NewTenant {
        company_name: b.company_name,
        region: b.region,
        contact_email: b.contact_email,
        created_by: b.created_by,
    };
    match sims.tenants.create(&new).await {
        Ok(t) => HttpResponse::Created().json(t),
        Err(e) => tenant_error(e),
    }
}

fn tenant_not_found() -> HttpResponse {
    tenant_error(TenantServiceError::NotFound)
}

async fn tenant_get(sims: web::Data<Sims>, path: web::Path<String>) -> HttpResponse {
    let Ok(id) = path.parse::<TenantId>() else {
        return tenant_not_found();
    };
    match sims.tenants.get(id).await {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(e) => tenant_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenesysConfigBody {
    client_id: String,
    client_secret: String,
    region: Region,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WhatsAppConfigBody {
    phone_number_id: String,
    system_user_token: String,
    #[serde(default)]
    phone_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhooksBody {
    genesys: String,
    meta: String,
    secret: String,
    verify_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    company_name: Option<String>,
    region: Option<Region>,
    contact_email: Option<Email>,
    genesys_config: Option<GenesysConfigBody>,
    whatsapp_config: Option<WhatsAppConfigBody>,
    webhooks: Option<WebhooksBody>,
    status: Option<TenantStatus>,
    onboarded_by: Option<UserId>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    onboarded_at: Option<OffsetDateTime>,
}

impl From<UpdateBody> for TenantUpdate {
    fn from(b: UpdateBody) -> Self {
        TenantUpdate {
            company_name: b.company_name,
            region: b.region,
            contact_email: b.contact_email,
            genesys_config: b.genesys_config.map(|g| GenesysConfig {
                client_id: g.client_id,
                client_secret: SecretString::from(g.client_secret),
                region: g.region,
            }),
            whatsapp_config: b.whatsapp_config.map(|w| WhatsAppConfig {
                phone_number_id: w.phone_number_id,
                system_user_token: SecretString::from(w.system_user_token),
                phone_number: w.phone_number,
            }),
            webhooks: b.webhooks.map(|h| WebhookConfig {
                genesys_url: h.genesys,
                meta_url: h.meta,
                secret: SecretString::from(h.secret),
                verify_token: SecretString::from(h.verify_token),
            }),
            status: b.status,
            onboarded_by: b.onboarded_by,
            onboarded_at: b.onboarded_at,
        }
    }
}

async fn tenant_update(
    sims: web::Data<Sims>,
    path: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> HttpResponse {
    let Ok(id) = path.parse::<TenantId>() else {
        return tenant_not_found();
    };
    let update = TenantUpdate::from(body.into_inner());
    match sims.tenants.update(id, &update).await {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(e) => tenant_error(e),
    }
}

async fn tenant_by_user(sims: web::Data<Sims>, path: web::Path<String>) -> HttpResponse {
    let Ok(user) = UserId::parse(path.into_inner()) else {
        return error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "no tenant",
        );
    };
    match sims.tenants.by_user(&user).await {
        Ok(Some(t)) => HttpResponse::Ok().json(t),
        Ok(None) => error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "no tenant",
        ),
        Err(e) => tenant_error(e),
    }
}

#[derive(Deserialize)]
struct CheckBody {
    r#type: String,
    credentials: HashMap<String, serde_json::Value>,
}

async fn tenant_validate(sims: web::Data<Sims>, body: web::Json<CheckBody>) -> HttpResponse {
    let b = body.into_inner();
    let field = |k: &str| {
        b.credentials
            .get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let check = match b.r#type.as_str() {
        "genesys" => {
            let (Some(client_id), Some(secret), Some(region)) = (
                field("clientId"),
                field("clientSecret"),
                field("region").and_then(|r| r.parse::<Region>().ok()),
            ) else {
                return bad_request("clientId, clientSecret and region are required");
            };
            CredentialCheck::Genesys {
                client_id,
                client_secret: SecretString::from(secret),
                region,
            }
        }
        "whatsapp" => {
            let (Some(phone_number_id), Some(token)) =
                (field("phoneNumberId"), field("systemUserToken"))
            else {
                return bad_request("phoneNumberId and systemUserToken are required");
            };
            CredentialCheck::WhatsApp {
                phone_number_id,
                system_user_token: SecretString::from(token),
            }
        }
        _ => return bad_request("type must be genesys or whatsapp"),
    };
    match sims.tenants.validate_credentials(&check).await {
        Ok(v) => HttpResponse::Ok().json(json!({"valid": v.valid, "message": v.message})),
        Err(e) => tenant_error(e),
    }
}

// ---- State Manager ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    tenant_id: String,
    page: Option<u32>,
    limit: Option<u32>,
    status: Option<ConversationStatus>,
}

async fn sm_conversations(sims: web::Data<Sims>, q: web::Query<ListQuery>) -> HttpResponse {
    let q = q.into_inner();
    let Ok(tenant) = q.tenant_id.parse::<TenantId>() else {
        return bad_request("tenantId is not a tenant ID");
    };
    let query = ConversationQuery {
        page: q.page.unwrap_or(1).max(1),
        limit: q
            .limit
            .unwrap_or(ConversationQuery::DEFAULT_LIMIT)
            .clamp(1, ConversationQuery::MAX_LIMIT),
        status: q.status,
    };
    match sims.state_manager.conversations(tenant, query).await {
        Ok(page) => HttpResponse::Ok().json(page),
        Err(e) => sm_error(e),
    }
}

async fn sm_conversation(sims: web::Data<Sims>, path: web::Path<String>) -> HttpResponse {
    let Ok(id) = path.parse::<ConversationId>() else {
        return sm_error(StateManagerError::NotFound);
    };
    match sims.state_manager.conversation(id).await {
        Ok(c) => HttpResponse::Ok().json(c),
        Err(e) => sm_error(e),
    }
}

async fn sm_messages(sims: web::Data<Sims>, path: web::Path<String>) -> HttpResponse {
    let Ok(id) = path.parse::<ConversationId>() else {
        return sm_error(StateManagerError::NotFound);
    };
    match sims.state_manager.messages(id).await {
        Ok(m) => HttpResponse::Ok().json(json!({ "data": m })),
        Err(e) => sm_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricsQuery {
    period: Option<Period>,
    start_date: Option<String>,
    end_date: Option<String>,
}

fn ymd(s: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format).ok()
}

async fn sm_metrics(
    sims: web::Data<Sims>,
    path: web::Path<String>,
    q: web::Query<MetricsQuery>,
) -> HttpResponse {
    let Ok(tenant) = path.parse::<TenantId>() else {
        return sm_error(StateManagerError::NotFound);
    };
    let q = q.into_inner();
    let result = match (q.start_date.as_deref(), q.end_date.as_deref()) {
        (Some(start), Some(end)) => {
            let today = sims.platform.state().now().date();
            let range = match (ymd(start), ymd(end)) {
                (Some(s), Some(e)) => DateRange::new(s, e, today),
                _ => return bad_request("startDate and endDate must be YYYY-MM-DD"),
            };
            let Ok(range) = range else {
                return bad_request("invalid date range");
            };
            sims.state_manager.metrics_range(tenant, range).await
        }
        _ => {
            sims.state_manager
                .metrics(tenant, q.period.unwrap_or_default())
                .await
        }
    };
    match result {
        Ok(m) => HttpResponse::Ok().json(m),
        Err(e) => sm_error(e),
    }
}

// ---- Genesys Cloud ----

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
}

fn oauth_error(status: actix_web::http::StatusCode, code: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": code, "error_description": description}))
}

async fn genesys_token(
    sims: web::Data<Sims>,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    if form.grant_type != "client_credentials" {
        return oauth_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let Some((client_id, secret)) = basic(&req) else {
        return oauth_error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication is required",
        );
    };
    match sims
        .genesys
        .client_credentials(Region::UsEast1, &client_id, &secret)
        .await
    {
        Ok(t) => HttpResponse::Ok().json(json!({
            "access_token": t.access_token.expose_secret(),
            "token_type": "bearer",
            "expires_in": t.expires_in,
        })),
        Err(e) => genesys_error(e),
    }
}

fn genesys_error(e: GenesysError) -> HttpResponse {
    match e {
        GenesysError::InvalidClient(m) => oauth_error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "invalid_client",
            &m,
        ),
        GenesysError::Forbidden(m) => {
            oauth_error(actix_web::http::StatusCode::FORBIDDEN, "forbidden", &m)
        }
        GenesysError::Failure(_) => unavailable(),
    }
}

async fn genesys_organization(sims: web::Data<Sims>, req: HttpRequest) -> HttpResponse {
    let Some(token) = bearer(&req) else {
        return genesys_error(GenesysError::InvalidClient("bearer token required".into()));
    };
    match sims.genesys.organization(Region::UsEast1, &token).await {
        Ok(o) => HttpResponse::Ok().json(json!({"id": o.id, "name": o.name})),
        Err(e) => genesys_error(e),
    }
}

// ---- Meta Graph ----

fn meta_error(
    status: actix_web::http::StatusCode,
    kind: &str,
    code: u32,
    message: &str,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"message": message, "type": kind, "code": code}
    }))
}

async fn meta_phone_number(
    sims: web::Data<Sims>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (_version, id) = path.into_inner();
    let Some(token) = bearer(&req) else {
        return meta_error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "OAuthException",
            190,
            "An access token is required",
        );
    };
    match sims.whatsapp.phone_number(&id, &token).await {
        Ok(p) => HttpResponse::Ok().json(json!({
            "id": p.id,
            "display_phone_number": p.display_phone_number,
            "verified_name": p.verified_name,
            "quality_rating": p.quality_rating,
        })),
        Err(WhatsAppError::InvalidToken(m)) => meta_error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "OAuthException",
            190,
            &m,
        ),
        Err(WhatsAppError::Forbidden(m)) => meta_error(
            actix_web::http::StatusCode::FORBIDDEN,
            "PermissionException",
            200,
            &m,
        ),
        Err(WhatsAppError::NotFound) => meta_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "GraphMethodException",
            100,
            "Unsupported get request. Object does not exist",
        ),
        Err(WhatsAppError::Failure(_)) => unavailable(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::acme_tenant_id;
    use crate::test_support::{FixedClock, platform_at};
    use actix_web::test;

    /// The sandbox's app over a fresh demo platform, as an actix test service.
    macro_rules! app {
        () => {{
            let (platform, _) = platform_at(FixedClock::demo_start());
            let login_auth = platform.auth();
            test::init_service(
                App::new()
                    .app_data(web::Data::new(Sims::new(platform)))
                    .app_data(web::Data::new(Faults::default()))
                    .wrap(from_fn(inject_faults))
                    .configure(move |cfg| routes(cfg, login_auth, DEFAULT_CLIENT_ID.to_owned())),
            )
            .await
        }};
    }

    #[::core::prelude::v1::test]
    fn paths_map_to_their_route_and_admin_paths_to_none() {
        for (path, route) in [
            ("/api/v1/auth/profile", Some(Route::AuthService)),
            ("/api/v1/tenants", Some(Route::TenantService)),
            ("/api/v1/tenants/by-user/u1", Some(Route::TenantService)),
            (
                "/api/v1/conversations/abc/messages",
                Some(Route::StateManager),
            ),
            ("/api/v1/metrics/t1", Some(Route::StateManager)),
            ("/genesys/oauth/token", Some(Route::Genesys)),
            ("/meta/v18.0/123", Some(Route::Meta)),
            ("/api/v1/authx", None),
            ("/health", None),
            ("/_admin/faults", None),
        ] {
            assert_eq!(Route::of_path(path), route, "{path}");
        }
    }

    #[actix_web::test]
    async fn an_error_fault_fails_only_its_route_until_removed_over_the_admin_endpoint() {
        let app = app!();
        let metrics = format!("/api/v1/metrics/{}?period=today", acme_tenant_id());
        let get = |uri: &str| test::TestRequest::get().uri(uri).to_request();

        let ok = test::call_service(&app, get(&metrics)).await;
        assert_eq!(ok.status(), 200);
        let body: serde_json::Value = test::read_body_json(ok).await;
        assert!(body["totalMessages"].as_u64().unwrap() > 0, "{body}");

        let put = test::TestRequest::put()
            .uri("/_admin/faults")
            .set_json(json!({"route": "stateManager", "errorRate": 1.0}))
            .to_request();
        assert_eq!(test::call_service(&app, put).await.status(), 200);
        assert_eq!(test::call_service(&app, get(&metrics)).await.status(), 503);
        // Other routes, /health and the admin endpoint are not affected.
        let tenant = format!("/api/v1/tenants/{}", acme_tenant_id());
        assert_eq!(test::call_service(&app, get(&tenant)).await.status(), 200);
        assert_eq!(test::call_service(&app, get("/health")).await.status(), 200);
        let listed: serde_json::Value =
            test::read_body_json(test::call_service(&app, get("/_admin/faults")).await).await;
        assert_eq!(listed[0]["route"], "stateManager", "{listed}");

        let delete = test::TestRequest::delete()
            .uri("/_admin/faults")
            .to_request();
        assert_eq!(test::call_service(&app, delete).await.status(), 204);
        assert_eq!(test::call_service(&app, get(&metrics)).await.status(), 200);
    }

    #[actix_web::test]
    async fn bad_faults_are_refused() {
        let app = app!();
        for body in [
            json!({"route": "stateManager", "errorRate": 2.0}),
            json!({"route": "nowhere", "errorRate": 0.5}),
        ] {
            let put = test::TestRequest::put()
                .uri("/_admin/faults")
                .set_json(&body)
                .to_request();
            assert_eq!(test::call_service(&app, put).await.status(), 400, "{body}");
        }
        assert!(faults_from_json(r#"[{"route":"meta","timeout":true}]"#).unwrap()[0].timeout);
    }

    #[actix_web::test]
    async fn unknown_ids_are_404_in_the_shapes_the_adapters_read() {
        let app = app!();
        let get = |uri: &str| test::TestRequest::get().uri(uri).to_request();
        let res = test::call_service(&app, get("/api/v1/tenants/not-a-uuid")).await;
        assert_eq!(res.status(), 404);
        let res = test::call_service(&app, get("/api/v1/tenants/by-user/sim-user-nobody")).await;
        assert_eq!(res.status(), 404);
        let res = test::call_service(&app, get("/api/v1/auth/profile")).await;
        assert_eq!(res.status(), 401);
    }
}
