//! The OpenAPI document, collected by utoipa-actix-web from the very `service(...)` calls that
//! register the handlers, so it cannot drift from the routes.
//!
//! Each handler documents what is particular to it (its 2xx body, its own refusals); what
//! the edge answers for every route of a kind is added here once, by `EdgeResponses`: the
//! session's 401, 429 and 503, the CSRF token's 403, the JSON body's 400, 413 and 415, the
//! tenant guard's 400 and 403, the head limits' 414 and 431 and the unexpected 500, each with
//! the error body and, for 429, its `Retry-After` and `RateLimit-*` headers.
//!
//! The same document gives each path's methods for `Allow` (`RouteTable`).

use crate::error::{ErrorBody, ErrorCode, FieldProblem};
use crate::routes::{auth, dashboard, health, history, index, onboarding, widget};
use crate::state::AppState;
use actix_web::dev::ResourceDef;
use actix_web::http::header::HeaderValue;
use actix_web::{HttpResponse, get, web};
use utoipa::OpenApi;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ArrayItems, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

/// The API's name.
pub(crate) const TITLE: &str = "Agent Portal Service";
/// The API's version (`info.version`).
pub(crate) const VERSION: &str = "1.0.0";
/// Where the document is served.
pub(crate) const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agent Portal Service",
        description = "Backend of the WhatsApp ↔ Genesys Cloud agent portal.\n\n\
            Sign in through `GET /api/v1/auth/login` (a browser flow that sets the `sessionId` \
            cookie); `GET /api/v1/auth/me` returns the session's `csrfToken`, which every \
            POST must send as `X-CSRF-Token`. Errors have one body: \
            `{\"error\", \"code\", \"details\"?, \"correlationId\"}`.",
        version = "1.0.0"
    ),
    tags(
        (name = "auth", description = "Sign-in with Genesys Cloud, the session, WebSocket tickets"),
        (name = "onboarding", description = "The five-step wizard that creates and activates a tenant"),
        (name = "dashboard", description = "The tenant's message figures"),
        (name = "history", description = "The tenant's conversations and their messages"),
        (name = "widget", description = "Sending from the agent widget"),
        (name = "realtime", description = "The live WebSocket (docs/websocket-protocol.md)"),
        (name = "operations", description = "Health, metrics, this document"),
    ),
    components(schemas(ErrorBody, ErrorCode, FieldProblem)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// The session cookie and the CSRF header.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi
            .components
            .get_or_insert_with(utoipa::openapi::Components::new);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "sessionId",
                "Signed session cookie set by /api/v1/auth/callback (a browser sends it by \
                 itself; the interactive documentation uses the page's own cookie)",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The csrfToken of GET /api/v1/auth/me; required, with the session, on every \
                 POST",
            ))),
        );
    }
}

/// What the edge answers for every route of a kind (see the module docs).
struct EdgeResponses;

/// The facts about an operation the edge's answers depend on.
struct Kind {
    /// Needs a session (its security names `session`).
    session: bool,
    /// A state-changing method: CSRF token and a JSON body.
    state_changing: bool,
    /// Names a tenant in its path or query.
    tenant_param: bool,
}

impl Kind {
    fn of(method: &str, op: &Operation) -> Self {
        let session = op.security.as_ref().is_some_and(|requirements| {
            requirements
                .iter()
                .any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("session").is_some()))
        });
        let tenant_param = op.parameters.iter().flatten().any(|p| {
            matches!(p, RefOr::T(p) if p.name == crate::tenant_guard::TENANT_ID
                && matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
        });
        Self {
            session,
            state_changing: matches!(method, "post" | "put" | "patch" | "delete"),
            tenant_param,
        }
    }
}

impl utoipa::Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for (method, op) in [
                ("get", item.get.as_mut()),
                ("post", item.post.as_mut()),
                ("put", item.put.as_mut()),
                ("patch", item.patch.as_mut()),
                ("delete", item.delete.as_mut()),
            ] {
                if let Some(op) = op {
                    let kind = Kind::of(method, op);
                    edge_responses(op, &kind);
                }
            }
        }
    }
}

/// Adds the edge's answers to one operation.
fn edge_responses(op: &mut Operation, kind: &Kind) {
    if kind.session {
        answer(
            op,
            401,
            "NO_SESSION: no session cookie; SESSION_EXPIRED: unknown, tampered or expired session",
        );
        answer(
            op,
            429,
            "RATE_LIMIT_EXCEEDED: the user's API limit; Retry-After and RateLimit-* give the limiter's figures",
        );
        answer(
            op,
            503,
            "SERVICE_UNAVAILABLE: the session store is unavailable (sessions fail closed)",
        );
    }
    if kind.session && kind.state_changing {
        answer(op, 403, "CSRF_FAILED: missing or wrong X-CSRF-Token");
    }
    if kind.state_changing {
        answer(
            op,
            400,
            "VALIDATION_FAILED: a body that is not a JSON object, malformed JSON, or a tenantId that is not a UUID",
        );
        answer(
            op,
            403,
            "TENANT_ISOLATION_VIOLATION: the body's tenantId is not the session's tenant",
        );
        answer(
            op,
            413,
            "PAYLOAD_TOO_LARGE: the body exceeds BODY_LIMIT_BYTES (64 KiB)",
        );
        answer(
            op,
            415,
            "UNSUPPORTED_MEDIA_TYPE: a body that is not application/json",
        );
    }
    if kind.tenant_param {
        answer(op, 400, "VALIDATION_FAILED: tenantId is not a UUID");
        answer(
            op,
            403,
            "TENANT_ISOLATION_VIOLATION: tenantId is not the session's tenant",
        );
    }
    answer(
        op,
        414,
        "URI_TOO_LONG: the request target exceeds HTTP_MAX_URI_BYTES",
    );
    answer(
        op,
        431,
        "HEADERS_TOO_LARGE: more than HTTP_MAX_HEADERS header fields or HTTP_MAX_HEADER_BYTES of them",
    );
    answer(
        op,
        500,
        "INTERNAL_ERROR: an unexpected failure (logged with the correlationId)",
    );
    rate_limit_answer_headers(op);
}

/// Adds `cause` to the operation's `status` answer: a new response with the error body, or
/// appended to the description of the one the handler documented (unless it names the code).
fn answer(op: &mut Operation, status: u16, cause: &str) {
    let key = status.to_string();
    match op.responses.responses.get_mut(&key) {
        Some(RefOr::T(response)) => {
            let code = cause.split(':').next().unwrap_or(cause);
            if !response.description.contains(code) {
                response.description = format!("{}; {cause}", response.description);
            }
            if response.content.is_empty() {
                response
                    .content
                    .insert("application/json".into(), error_body().into());
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let response = ResponseBuilder::new()
                .description(cause)
                .content("application/json", error_body())
                .build();
            op.responses.responses.insert(key, RefOr::T(response));
        }
    }
}

/// Every limiter's 429 carries its `Retry-After` and `RateLimit-*`.
fn rate_limit_answer_headers(op: &mut Operation) {
    if let Some(RefOr::T(response)) = op.responses.responses.get_mut("429")
        && response.headers.is_empty()
    {
        response.headers = rate_limit_headers(ResponseBuilder::new()).build().headers;
    }
}

fn error_body() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build()
}

/// `Retry-After` and the `RateLimit-*` headers of a 429.
fn rate_limit_headers(response: ResponseBuilder) -> ResponseBuilder {
    let seconds = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .build()
    };
    [
        ("Retry-After", "Seconds until the limiter has room again"),
        ("RateLimit-Limit", "The limiter's requests per window"),
        ("RateLimit-Remaining", "Requests left in the window (0)"),
        ("RateLimit-Reset", "Seconds until the window resets"),
    ]
    .into_iter()
    .fold(response, |r, (name, description)| {
        r.header(
            name,
            HeaderBuilder::new()
                .schema(Some(seconds()))
                .description(Some(description))
                .build(),
        )
    })
}

/// Every documented route. Used both to serve and to document.
pub(crate) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(index::index)
        .service(auth::login)
        .service(auth::callback)
        .service(auth::refresh)
        .service(auth::logout)
        .service(auth::me)
        .service(auth::ws_ticket)
        .service(crate::routes::sessions::list_sessions)
        .service(crate::routes::sessions::end_session)
        .service(crate::routes::sessions::logout_all)
        .service(crate::routes::sessions::end_user_sessions)
        .service(crate::routes::audit::list_audit_entries)
        .service(crate::routes::audit::verify_audit_chain)
        .service(health::health)
        .service(health::livez)
        .service(health::readyz)
        .service(crate::routes::metrics::metrics)
        .service(dashboard::stats)
        .service(dashboard::refresh)
        .service(dashboard::range)
        .service(history::threads)
        .service(history::messages)
        .service(widget::send)
        .service(crate::routes::ws::portal)
        .service(crate::routes::ws::presence::presence)
        .service(onboarding::step1)
        .service(onboarding::step2)
        .service(onboarding::step3)
        .service(onboarding::validate)
        .service(onboarding::complete)
        .service(onboarding::status)
        .service(openapi_json);
}

/// The OpenAPI document of the built-in routes.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, api) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    // The edge's answers go to every operation, which exist only now.
    let mut api = api;
    utoipa::Modify::modify(&EdgeResponses, &mut api);
    utoipa::Modify::modify(&CanonicalUuids, &mut api);
    api
}

/// Every `format: uuid` string (parameters, request and response fields) also states the one
/// spelling the IDs accept as a pattern: JSON Schema's `uuid` format is checked loosely or
/// not at all by many validators, so the pattern is what makes the rule exact.
struct CanonicalUuids;

impl utoipa::Modify for CanonicalUuids {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let pattern = crate::input::schema::uuid_pattern();
        if let Some(components) = openapi.components.as_mut() {
            for schema in components.schemas.values_mut() {
                add_uuid_pattern(schema, &pattern);
            }
        }
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(param) = param
                        && let Some(schema) = param.schema.as_mut()
                    {
                        add_uuid_pattern(schema, &pattern);
                    }
                }
            }
        }
    }
}

fn add_uuid_pattern(schema: &mut RefOr<Schema>, pattern: &str) {
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(object) => {
            if object.format == Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)) {
                object.pattern = Some(pattern.to_owned());
            }
            for property in object.properties.values_mut() {
                add_uuid_pattern(property, pattern);
            }
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                add_uuid_pattern(items, pattern);
            }
        }
        Schema::AllOf(all) => all
            .items
            .iter_mut()
            .for_each(|s| add_uuid_pattern(s, pattern)),
        Schema::OneOf(one) => one
            .items
            .iter_mut()
            .for_each(|s| add_uuid_pattern(s, pattern)),
        Schema::AnyOf(any) => any
            .items
            .iter_mut()
            .for_each(|s| add_uuid_pattern(s, pattern)),
        _ => {}
    }
}

/// Each route's methods, for `Allow`: the documented operations (with `HEAD` for `GET`, and
/// `OPTIONS`), plus the documentation pages when served.
#[derive(Debug)]
pub(crate) struct RouteTable(Vec<(ResourceDef, Vec<&'static str>)>);

impl RouteTable {
    pub(crate) fn new(docs: bool) -> Self {
        let mut table: Vec<(ResourceDef, Vec<&'static str>)> = document()
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, present)| present.then_some(m))
                .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        if docs {
            for pattern in crate::routes::docs::PATTERNS {
                table.push((ResourceDef::new(pattern), vec!["GET"]));
            }
        }
        Self(table)
    }

    /// The `Allow` value of `path`; `None` for a path no route serves.
    pub(crate) fn allow(&self, path: &str) -> Option<HeaderValue> {
        let served: Vec<&str> = self
            .0
            .iter()
            .filter(|(def, _)| def.is_match(path))
            .flat_map(|(_, methods)| methods.iter().copied())
            .collect();
        if served.is_empty() {
            return None;
        }
        let allowed = |m: &&str| match *m {
            "HEAD" => served.contains(&"GET"),
            "OPTIONS" => true,
            m => served.contains(&m),
        };
        let methods: Vec<&str> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
            .iter()
            .filter(|m| allowed(m))
            .copied()
            .collect();
        HeaderValue::from_str(&methods.join(", ")).ok()
    }
}

/// This document.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", body = Object),
    )
)]
#[get("/api/v1/openapi.json")]
pub(crate) async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    let json = state
        .0
        .openapi_json
        .get_or_init(|| document().to_json().unwrap_or_else(|_| "{}".into()));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json.clone())
}
