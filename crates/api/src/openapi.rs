//! The OpenAPI document, collected by utoipa-actix-web from the very `service(...)` calls that
//! register the handlers, so it cannot drift from the routes.

use crate::error::{ErrorBody, ErrorCode, FieldProblem};
use crate::routes::{auth, health};
use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agent Portal Service",
        description = "Backend of the WhatsApp ↔ Genesys Cloud agent portal.",
        version = "1.0.0"
    ),
    components(schemas(ErrorBody, ErrorCode, FieldProblem)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

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
                "Signed session cookie set by /api/v1/auth/callback",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The csrfToken of /api/v1/auth/me; required on POST/PUT/PATCH/DELETE",
            ))),
        );
    }
}

/// Every documented route. Used both to serve and to document.
pub(crate) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(auth::login)
        .service(auth::callback)
        .service(auth::refresh)
        .service(auth::logout)
        .service(auth::me)
        .service(auth::ws_ticket)
        .service(health::health)
        .service(health::livez)
        .service(health::readyz)
        .service(crate::routes::metrics::metrics)
        .service(crate::routes::dashboard::stats)
        .service(crate::routes::dashboard::refresh)
        .service(crate::routes::dashboard::range)
        .service(crate::routes::history::threads)
        .service(crate::routes::history::messages)
        .service(crate::routes::widget::send)
        .service(crate::routes::ws::portal)
        .service(crate::routes::ws::presence::presence)
        .service(crate::routes::onboarding::step1)
        .service(crate::routes::onboarding::step2)
        .service(crate::routes::onboarding::step3)
        .service(crate::routes::onboarding::validate)
        .service(crate::routes::onboarding::complete)
        .service(crate::routes::onboarding::status)
        .service(openapi_json);
}

/// The OpenAPI document of the built-in routes.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, api) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    api
}

/// This document.
#[utoipa::path(tag = "operations", responses((status = 200, description = "OpenAPI 3.1 document")))]
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
