//! `GET /`: where to go from here, for a person (an HTML page of links when the browser asks
//! for HTML) or a program (JSON): the interactive documentation, the OpenAPI document, the
//! health endpoint and the metrics (each only when served).

use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IndexResponse {
    /// `Agent Portal Service`.
    pub name: &'static str,
    /// The API version.
    pub version: &'static str,
    /// Where to go.
    pub links: Links,
}

/// The service's entry points (paths on this origin).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Links {
    /// Interactive API documentation (absent when `DOCS_ENABLED=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub docs: Option<&'static str>,
    /// The OpenAPI 3.1 document.
    pub openapi: &'static str,
    /// Dependency health.
    pub health: &'static str,
    /// Prometheus metrics (absent when `METRICS_ENABLED=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub metrics: Option<&'static str>,
}

impl IndexResponse {
    fn of(state: &AppState) -> Self {
        Self {
            name: crate::openapi::TITLE,
            version: crate::openapi::VERSION,
            links: Links {
                docs: state.web().docs.then_some("/docs/"),
                openapi: crate::openapi::DOCUMENT_PATH,
                health: "/health",
                metrics: state.web().metrics.then_some(crate::routes::metrics::PATH),
            },
        }
    }

    /// The same links as a page.
    fn html(&self) -> String {
        let links = &self.links;
        let items: String = [
            links.docs.map(|p| ("Interactive API documentation", p)),
            Some(("OpenAPI document", links.openapi)),
            Some(("Health", links.health)),
            links.metrics.map(|p| ("Metrics", p)),
        ]
        .into_iter()
        .flatten()
        .map(|(label, path)| format!("<li><a href=\"{path}\">{label}</a> <code>{path}</code></li>"))
        .collect();
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name}</title></head>\
             <body><h1>{name}</h1><p>API version {version}.</p><ul>{items}</ul></body></html>",
            name = self.name,
            version = self.version,
        )
    }
}

/// Whether the client prefers HTML (a browser's `Accept: text/html,...`).
fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|range| {
                range
                    .split(';')
                    .next()
                    .is_some_and(|m| m.trim() == "text/html")
            })
        })
}

/// Links to the documentation, the OpenAPI document, health and metrics.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The service's entry points: JSON, or an HTML page of links when the client accepts `text/html`",
            content(
                (IndexResponse = "application/json"),
                (String = "text/html"),
            )
        ),
    )
)]
#[get("/")]
pub(crate) async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let index = IndexResponse::of(&state);
    if wants_html(&req) {
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(index.html())
    } else {
        HttpResponse::Ok().json(index)
    }
}
