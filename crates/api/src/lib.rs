//! The HTTP layer of the Agent Portal Service (actix-web): maps requests to the domain's use
//! cases, and nothing more. Handlers hold no business rules.
//!
//! # Layout
//! - `state`: [`AppState`] (every use case, the real-time hub, limiter, telemetry, probes,
//!   web settings) and its builder, which cannot be started without the use cases.
//! - `error`: `ApiError`, the one error type, rendered as spec §11.2's body.
//! - [`middleware`]: the outer middleware (request ID, CORS, security headers,
//!   `RateLimit-*` headers, error-body finishing).
//! - `tracing_span`: the request's root span (OpenTelemetry HTTP server conventions), made by
//!   tracing-actix-web's `TracingLogger` around everything else.
//! - `canonical`: `CanonicalHost`, sending a local sign-in to `BASE_URL`'s host name.
//! - `extract`: `Authenticated` (session cookie, CSRF, API rate limit, the tenant guard, the
//!   JSON body), `AuthRateLimited` (one sign-in counted once), signed cookies.
//! - `body`: the JSON-body rules of every route (415, 413, 400; no fallback to `{}`) and the
//!   conversion into a request DTO.
//! - `tenant_guard`: a `tenantId` in a path, query or body must be the session's tenant (403
//!   `TENANT_ISOLATION_VIOLATION`), decided in one function.
//! - `forwarded`: the client IP behind trusted proxies (`X-Forwarded-For` or `Forwarded`,
//!   read from the right).
//! - [`routes`]: one module per area (`auth`, `sessions` (the user's sessions, an admin
//!   ending a user's), `audit`, `onboarding`, `dashboard`, `history`, `widget`, the `/tenant/{tenantId}/portal` WebSocket in [`routes::ws`], `health`,
//!   `metrics`, `index` (`/`), `docs` (Swagger UI at `/docs/`)), each with its handlers and the
//!   request and response DTOs they use.
//! - `input`: converting request DTOs into domain values with every field's problem
//!   reported (`Problems`), and the OpenAPI schemas of the domain's input rules.
//! - [`openapi`]: the OpenAPI document, collected from the registered handlers, with the
//!   edge's answers added to every operation; each route's methods for `Allow`.
//! - [`connections`]: the server's open connections (counted for shutdown; each one's socket
//!   for the WebSocket's prompt close).
//!
//! # Entry points
//! [`app`] builds the `App` for one worker (the server runs it, one per worker, in its
//! `HttpServer`), [`configure`] registers everything on a `ServiceConfig`.
//!
//! # Dependencies
//! `portal-domain` (ports and use cases), actix-web, utoipa (and utoipa-swagger-ui's vendored
//! Swagger UI), tracing-actix-web and the OpenTelemetry API (the root span's parent). No
//! adapter crate: the binary (`portal-server`) wires adapters into [`AppState`].

mod body;
mod canonical;
pub mod connections;
mod error;
mod extract;
mod forwarded;
pub(crate) mod input;
pub mod middleware;
pub mod openapi;
pub mod routes;
mod state;
mod tenant_guard;
mod tracing_span;

pub use state::{
    AppState, AppStateBuilder, ForwardedHeader, HeadLimits, TrustedProxy, UseCases, WebSettings,
};

pub(crate) use error::ApiError;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, web};

/// Registers the routes, the extractor configuration and the app state.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    let docs = state.web().docs;
    cfg.app_data(web::Data::new(state))
        .app_data(web::QueryConfig::default().error_handler(|err, _req| {
            ApiError::validation("query", "Invalid query parameters")
                .with_cause(err)
                .into()
        }))
        .app_data(web::PathConfig::default().error_handler(|err, _req| {
            ApiError::validation("path", "Invalid path parameter")
                .with_cause(err)
                .into()
        }));
    utoipa_actix_web::service_config::ServiceConfig::new(cfg).configure(openapi::routes);
    if docs {
        routes::docs::configure(cfg);
    }
    cfg.default_service(web::to(fallback));
}

/// Requests no route took: a known path with another method → 405 `METHOD_NOT_ALLOWED` with
/// `Allow` (`OPTIONS` → 204 with `Allow`); an unknown path → 404 `NOT_FOUND`.
async fn fallback(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let Some(allow) = state.routes().allow(req.path()) else {
        return Err(ApiError::not_found());
    };
    let allow = (actix_web::http::header::ALLOW, allow);
    if req.method() == actix_web::http::Method::OPTIONS {
        return Ok(actix_web::HttpResponse::NoContent()
            .insert_header(allow)
            .finish());
    }
    let mut res = actix_web::ResponseError::error_response(&ApiError::method_not_allowed());
    res.headers_mut().insert(allow.0, allow.1);
    Ok(res)
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
        .wrap(tracing_actix_web::TracingLogger::<tracing_span::RequestSpan>::new())
        .wrap_fn(|req, srv| {
            connections::forget_socket_unless_upgrade(req.request());
            actix_web::dev::Service::call(srv, req)
        })
        .configure(move |cfg| configure(cfg, state))
}
