//! `/docs`: the interactive API documentation (Swagger UI, its files compiled into the binary:
//! no CDN), reading the served OpenAPI document. "Try it out" calls this same origin, so the
//! browser sends the session cookie of a sign-in; the `csrf` scheme of "Authorize" takes the
//! `csrfToken` of `/api/v1/auth/me` for state-changing calls. `DOCS_ENABLED=false` (the
//! production default) leaves these routes out.

use crate::error::ApiError;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use std::sync::{Arc, LazyLock};
use utoipa_swagger_ui::Config;

/// Where the documentation is served (the page itself is `/docs/`).
pub(crate) const PATH: &str = "/docs";

/// The docs' route patterns (for `Allow`: both take `GET` only).
pub(crate) const PATTERNS: [&str; 2] = [PATH, "/docs/{file:.*}"];

/// Swagger UI's settings: the served document, no external validator badge (it would send
/// the document to a third party), and "Try it out" with the browser's credentials.
static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::new([crate::openapi::DOCUMENT_PATH])
            .validator_url("none")
            .with_credentials(true)
            .try_it_out_enabled(true)
            .display_request_duration(true),
    )
});

/// Registers `/docs` (a redirect to `/docs/`, where the page's relative links work) and the
/// page's files.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(PATTERNS[0]).route(web::get().to(|| async {
        HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, "/docs/"))
            .finish()
    })))
    .service(web::resource(PATTERNS[1]).route(web::get().to(file)));
}

/// One of Swagger UI's files (`index.html` for the page itself).
async fn file(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match utoipa_swagger_ui::serve(&path, CONFIG.clone()) {
        Ok(Some(file)) => Ok(HttpResponse::Ok()
            .content_type(file.content_type)
            .body(file.bytes.into_owned())),
        Ok(None) => Err(ApiError::not_found()),
        Err(e) => Err(ApiError::internal(e)),
    }
}
