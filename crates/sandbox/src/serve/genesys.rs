//! The simulated Genesys Cloud public API over HTTP (`/genesys/oauth/token`,
//! `/genesys/api/v2/organizations/me`; the login page is [`crate::genesys_login`]).

use super::{Sims, basic, bearer, unavailable};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use portal_domain::model::Region;
use portal_domain::ports::downstream::GenesysError;
use portal_domain::secret::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: String,
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": code, "error_description": description}))
}

pub(super) async fn token(
    sims: web::Data<Sims>,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    if form.grant_type != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let Some((client_id, secret)) = basic(&req) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
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
        GenesysError::InvalidClient(m) => {
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &m)
        }
        GenesysError::Forbidden(m) => oauth_error(StatusCode::FORBIDDEN, "forbidden", &m),
        GenesysError::Failure(_) => unavailable(),
    }
}

pub(super) async fn organization(sims: web::Data<Sims>, req: HttpRequest) -> HttpResponse {
    let Some(token) = bearer(&req) else {
        return genesys_error(GenesysError::InvalidClient("bearer token required".into()));
    };
    match sims.genesys.organization(Region::UsEast1, &token).await {
        Ok(o) => HttpResponse::Ok().json(json!({"id": o.id, "name": o.name})),
        Err(e) => genesys_error(e),
    }
}
