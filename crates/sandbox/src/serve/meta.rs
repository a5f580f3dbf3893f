//! The simulated Meta Graph API over HTTP (`/meta/{version}/{phoneNumberId}`).

use super::{Sims, bearer, unavailable};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use portal_domain::ports::downstream::WhatsAppError;
use serde_json::json;

fn meta_error(status: StatusCode, kind: &str, code: u32, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"message": message, "type": kind, "code": code}
    }))
}

pub(super) async fn phone_number(
    sims: web::Data<Sims>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (_version, id) = path.into_inner();
    let Some(token) = bearer(&req) else {
        return meta_error(
            StatusCode::UNAUTHORIZED,
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
        Err(WhatsAppError::InvalidToken(m)) => {
            meta_error(StatusCode::UNAUTHORIZED, "OAuthException", 190, &m)
        }
        Err(WhatsAppError::Forbidden(m)) => {
            meta_error(StatusCode::FORBIDDEN, "PermissionException", 200, &m)
        }
        Err(WhatsAppError::NotFound) => meta_error(
            StatusCode::BAD_REQUEST,
            "GraphMethodException",
            100,
            "Unsupported get request. Object does not exist",
        ),
        Err(WhatsAppError::Failure(_)) => unavailable(),
    }
}
