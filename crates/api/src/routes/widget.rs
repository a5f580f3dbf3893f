//! `POST /api/v1/widget/send` (spec §9.2, decisions §6): the agent widget's send. The same
//! validation and error mapping serve the WebSocket's `send_message` ([`super::ws`]).

use crate::body::IntoDto;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::Authenticated;
use crate::input::{Problems, schema};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, post, web};
use portal_domain::auth::Capability;
use portal_domain::model::ConversationId;
use portal_domain::widget::{
    IdempotencyKey, MediaUrl, MessageText, SendError, SendReceipt, SendRequest,
};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// Body of `POST /api/v1/widget/send`; over the socket, the `data` of `send_message`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendBody {
    /// The conversation (UUID).
    #[schema(schema_with = schema::conversation_id, required = true)]
    pub conversation_id: Option<String>,
    /// The message ([`MessageText`]).
    #[schema(schema_with = schema::message_text, required = true)]
    pub text: Option<String>,
    /// Optional attachment ([`MediaUrl`]).
    #[schema(schema_with = schema::media_url)]
    pub media_url: Option<String>,
}

impl SendBody {
    /// The send, or every refused field. `idempotency_key` is `(field, value)`: the
    /// `Idempotency-Key` header over REST, `clientMessageId` over the socket.
    pub(crate) fn try_into_domain(
        self,
        idempotency_key: Option<(&str, &str)>,
    ) -> Result<SendRequest, Problems> {
        let mut p = Problems::default();
        let conversation_id = p.required("conversationId", self.conversation_id, |c| {
            c.parse::<ConversationId>()
                .map_err(|_| "conversationId must be a UUID")
        });
        let text = p.required("text", self.text, MessageText::parse);
        let media_url = p.optional("mediaUrl", self.media_url, |u| MediaUrl::parse(&u));
        let idempotency_key = match idempotency_key {
            None => Some(None),
            Some((field, raw)) => p.optional(field, Some(raw), IdempotencyKey::parse),
        };
        match (conversation_id, text, media_url, idempotency_key) {
            (Some(conversation_id), Some(text), Some(media_url), Some(idempotency_key)) => {
                Ok(SendRequest {
                    conversation_id,
                    text,
                    media_url,
                    idempotency_key,
                })
            }
            _ => Err(p),
        }
    }
}

/// Response of `POST /api/v1/widget/send` (spec §9.2).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SendResponse {
    /// Always true.
    pub success: bool,
    /// ID of the queued message (the same for a retried `Idempotency-Key`).
    pub message_id: String,
    /// Always `queued`.
    #[schema(pattern = "^queued$")]
    pub status: String,
    /// When it was queued (RFC 3339).
    #[schema(format = DateTime)]
    pub queued_at: String,
}

impl From<SendReceipt> for SendResponse {
    fn from(receipt: SendReceipt) -> Self {
        Self {
            success: true,
            message_id: receipt.message_id.as_str().to_owned(),
            status: receipt.status,
            queued_at: rfc3339(receipt.queued_at),
        }
    }
}

/// The code and public message of a refused send: 404, 403 `TENANT_MISMATCH`, 409 (closed
/// or in progress), 503.
pub(crate) fn refusal(e: &SendError) -> (ErrorCode, &'static str) {
    match e {
        SendError::NotFound => (ErrorCode::NotFound, "Conversation not found"),
        SendError::TenantMismatch => (
            ErrorCode::TenantMismatch,
            "Conversation belongs to another tenant",
        ),
        SendError::ConversationClosed => (ErrorCode::Conflict, "Conversation is not active"),
        SendError::InProgress => (
            ErrorCode::Conflict,
            "A send with this idempotency key is in progress",
        ),
        SendError::Unavailable(_) => (
            ErrorCode::ServiceUnavailable,
            "Service temporarily unavailable; nothing was sent",
        ),
    }
}

/// [`refusal`] as an [`ApiError`] (a dependency failure keeps its cause for the log).
pub(crate) fn send_error(e: SendError) -> ApiError {
    let (code, message) = refusal(&e);
    match e {
        SendError::Unavailable(cause) => ApiError::new(code, message).with_cause(cause),
        _ => ApiError::new(code, message),
    }
}

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Sends a message from the agent widget.
#[utoipa::path(
    tag = "widget",
    security(("session" = [], "csrf" = [])),
    request_body = SendBody,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,128}$", description = "1-128 visible ASCII characters; a retry with the same key returns the first result")),
    responses(
        (status = 200, description = "Queued for delivery (or the first result of this Idempotency-Key)", body = SendResponse),
        (status = 400, description = "VALIDATION_FAILED: every refused field in details.fields", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: a viewer; TENANT_MISMATCH: another tenant's conversation", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such conversation", body = ErrorBody),
        (status = 409, description = "CONFLICT: the conversation is closed, or this Idempotency-Key is in progress", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: nothing was sent", body = ErrorBody),
    )
)]
#[post("/api/v1/widget/send")]
pub(crate) async fn send(
    mut auth: Authenticated,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = auth
        .require(Capability::SendMessages)?
        .ok_or_else(|| ApiError::internal("send capability without a tenant"))?;
    let key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::validation("Idempotency-Key", "must be visible ASCII characters")
        })?),
    };
    let request = auth
        .body
        .take()
        .into_dto::<SendBody>()?
        .try_into_domain(key.map(|k| ("Idempotency-Key", k)))?;
    let receipt = state
        .widget()
        .send(&auth.current, tenant, request)
        .await
        .map_err(send_error)?;
    Ok(HttpResponse::Ok().json(SendResponse::from(receipt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(conversation_id: &str, text: &str, media_url: Option<&str>) -> SendBody {
        SendBody {
            conversation_id: Some(conversation_id.into()),
            text: Some(text.into()),
            media_url: media_url.map(str::to_owned),
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = body("not-a-uuid", "", Some("http://x.example/a.png"))
            .try_into_domain(Some(("Idempotency-Key", "has space")))
            .unwrap_err()
            .into_vec();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["conversationId", "text", "mediaUrl", "Idempotency-Key"]
        );
    }

    #[test]
    fn refusals_map_to_the_documented_codes_and_hide_causes() {
        use actix_web::ResponseError;
        let cases = [
            (SendError::NotFound, 404, ErrorCode::NotFound),
            (SendError::TenantMismatch, 403, ErrorCode::TenantMismatch),
            (SendError::ConversationClosed, 409, ErrorCode::Conflict),
            (SendError::InProgress, 409, ErrorCode::Conflict),
            (
                SendError::Unavailable("redis: connection refused".into()),
                503,
                ErrorCode::ServiceUnavailable,
            ),
        ];
        for (e, status, code) in cases {
            let api = send_error(e);
            assert_eq!(api.code(), code);
            assert_eq!(api.status_code().as_u16(), status);
            assert!(!api.to_string().contains("redis"), "{api}");
        }
    }

    #[test]
    fn a_valid_send_passes() {
        let id = uuid::Uuid::new_v4().to_string();
        let r = body(&id, "Hello", Some("https://x.example/a.png"))
            .try_into_domain(None)
            .unwrap();
        assert_eq!(r.text.as_str(), "Hello");
        assert!(r.idempotency_key.is_none());
    }
}
