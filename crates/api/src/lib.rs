//! The HTTP layer of the Agent Portal Service (actix-web): maps requests to the domain's use
//! cases, and nothing more. Handlers hold no business rules.
//!
//! # Layout
//! - `state`: [`AppState`] (every use case, the real-time hub, limiter, telemetry, probes,
//!   web settings) and its builder, which cannot be started without the use cases.
//! - `error`: `ApiError`, the one error type, rendered as spec §11.2's body.
//! - [`middleware`]: the outer middleware (request ID, tracing span, CORS, security headers,
//!   `RateLimit-*` headers, error-body finishing).
//! - `extract`: `Authenticated` (session cookie, CSRF, API rate limit, role and tenant
//!   checks), `AuthRateLimited`, client IP, signed cookies.
//! - [`routes`]: one module per area (`auth`, `onboarding`, `dashboard`, `history`,
//!   `widget`, the `/tenant/{tenantId}/portal` WebSocket in [`routes::ws`], `health`,
//!   `metrics`), each with its handlers and the request and response DTOs they use.
//! - `input`: converting request DTOs into domain values with every field's problem
//!   reported (`Problems`), and the OpenAPI schemas of the domain's input rules.
//! - [`openapi`]: the OpenAPI document, collected from the registered handlers.
//! - [`connections`]: the server's open connections (counted for shutdown; each one's socket
//!   for the WebSocket's prompt close).
//!
//! # Entry points
//! [`app`] builds the `App` for one worker (the server runs it, one per worker, in its
//! `HttpServer`), [`configure`] registers everything on a `ServiceConfig`.
//!
//! # Dependencies
//! `portal-domain` (ports and use cases), actix-web, utoipa. No adapter crate: the binary
//! (`portal-server`) wires adapters into [`AppState`].

pub mod connections;
mod error;
mod extract;
pub(crate) mod input;
pub mod middleware;
pub mod openapi;
pub mod routes;
mod state;

pub use state::{AppState, AppStateBuilder, TrustedProxy, UseCases, WebSettings};

pub(crate) use error::ApiError;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, web};

/// Registers the routes, the extractor configuration and the app state.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    let limit = state.web().body_limit;
    cfg.app_data(web::Data::new(state.clone()))
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(move |err, _req| error::json_error(err, limit).into()),
        )
        .app_data(web::QueryConfig::default().error_handler(|err, _req| {
            ApiError::validation("query", "Invalid query parameters")
                .with_cause(err)
                .into()
        }))
        .app_data(web::PathConfig::default().error_handler(|err, _req| {
            ApiError::validation("path", "Invalid path parameter")
                .with_cause(err)
                .into()
        }))
        .app_data(web::FormConfig::default().limit(limit));
    utoipa_actix_web::service_config::ServiceConfig::new(cfg).configure(openapi::routes);
    cfg.default_service(web::to(fallback));
}

/// Unknown path → 404 `NOT_FOUND`; known path, wrong method → 405 `METHOD_NOT_ALLOWED`.
async fn fallback(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    if req.resource_map().has_resource(req.path()) {
        Err(ApiError::method_not_allowed())
    } else {
        Err(ApiError::not_found())
    }
}

/// The application for one worker.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(actix_web::middleware::from_fn(middleware::edge))
        .wrap_fn(|req, srv| {
            connections::forget_socket_unless_upgrade(req.request());
            actix_web::dev::Service::call(srv, req)
        })
        .configure(move |cfg| configure(cfg, state))
}
