//! The JSON-body rules of every route, in one place: a state-changing request may carry a
//! body, and when it does it must be JSON (`Content-Type: application/json` or `…+json`,
//! UTF-8; else 415 `UNSUPPORTED_MEDIA_TYPE`), at most `BODY_LIMIT_BYTES` (else 413
//! `PAYLOAD_TOO_LARGE`, refused from `Content-Length` before reading when it is declared),
//! well-formed JSON and an object (else 400 `VALIDATION_FAILED`). No route falls back to
//! `{}` for a body it cannot read; an empty body is "no body".
//!
//! [`Authenticated`](crate::extract::Authenticated) reads the body with [`read_object`] once
//! the session, CSRF token and rate limit have passed (so an anonymous caller learns nothing
//! about bodies), then the tenant guard looks at its `tenantId`, and the handler converts it
//! into its request DTO with [`JsonObject::into_dto`] or [`JsonObject::into_optional_dto`].

use crate::error::ApiError;
use actix_web::HttpRequest;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::BytesMut;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A request's JSON object body.
pub(crate) type JsonObject = Map<String, Value>;

/// Converting the body into a request DTO.
pub(crate) trait IntoDto {
    /// The DTO of a route whose body is required: no body → 400.
    fn into_dto<T: DeserializeOwned>(self) -> Result<T, ApiError>;
    /// The DTO of a route whose body is optional: no body → `T::default()`.
    fn into_optional_dto<T: DeserializeOwned + Default>(self) -> Result<T, ApiError>;
}

impl IntoDto for Option<JsonObject> {
    fn into_dto<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        match self {
            Some(object) => dto(object),
            None => Err(ApiError::validation(
                "body",
                "A JSON object body is required",
            )),
        }
    }

    fn into_optional_dto<T: DeserializeOwned + Default>(self) -> Result<T, ApiError> {
        self.map_or_else(|| Ok(T::default()), dto)
    }
}

/// The DTO from the object. Every DTO field is an optional string, so the only refusal left is
/// a field of another JSON type; serde's message is not sent (it can quote the input).
fn dto<T: DeserializeOwned>(object: JsonObject) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(object)).map_err(|e| {
        ApiError::validation("body", "Every field must be a string (or null)").with_cause(e)
    })
}

/// Whether a `Content-Type` names JSON in UTF-8: `application/json` or `application/…+json`,
/// with no `charset` parameter or `charset=utf-8`.
fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    json && parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    })
}

/// Reads the body of `req` (see the module docs): `None` when there is none.
pub(crate) async fn read_object(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Option<JsonObject>, ApiError> {
    let headers = req.headers();
    let declared: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let announced = declared.map_or_else(
        || headers.contains_key(header::TRANSFER_ENCODING),
        |n| n > 0,
    );
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json);
    if announced && !json {
        return Err(ApiError::unsupported_media_type());
    }
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let mut bytes = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::validation("body", "The request body could not be read").with_cause(e)
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    if !json {
        return Err(ApiError::unsupported_media_type());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(_) => Err(ApiError::validation(
            "body",
            "The request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::validation(
            "body",
            format!("Malformed JSON at line {} column {}", e.line(), e.column()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_in_utf8_only() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "text/json",
            "application/jsonp",
            "",
        ] {
            assert!(!is_json(refused), "{refused}");
        }
    }
}
