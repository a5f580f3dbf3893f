//! The simulated Auth Service over HTTP (`/api/v1/auth/...`).

use super::{Sims, bearer, error, unavailable};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use portal_domain::ports::downstream::{AuthServiceError, CodeExchange, TokenSet};
use portal_domain::secret::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

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
        AuthServiceError::InvalidGrant => {
            error(StatusCode::UNAUTHORIZED, "invalid_grant", "invalid grant")
        }
        AuthServiceError::Unauthorized => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid access token",
        ),
        AuthServiceError::Failure(_) => unavailable(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ValidateBody {
    token: String,
    code_verifier: String,
    redirect_uri: String,
}

pub(super) async fn validate(sims: web::Data<Sims>, body: web::Json<ValidateBody>) -> HttpResponse {
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

pub(super) async fn profile(sims: web::Data<Sims>, req: HttpRequest) -> HttpResponse {
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
pub(super) struct RefreshBody {
    refresh_token: String,
}

pub(super) async fn refresh(sims: web::Data<Sims>, body: web::Json<RefreshBody>) -> HttpResponse {
    let token = SecretString::from(body.into_inner().refresh_token);
    match sims.auth.refresh(&token).await {
        Ok(t) => tokens(t),
        Err(e) => auth_error(e),
    }
}
