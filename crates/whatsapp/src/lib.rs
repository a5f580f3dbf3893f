//! HTTP adapter for Meta's WhatsApp Cloud API ([`WhatsApp`], spec §6.4).
//!
//! `GET {graph}/{version}/{phoneNumberId}?fields=id,display_phone_number,verified_name,quality_rating`
//! with `Authorization: Bearer <system-user token>` (10 s, retried). `{graph}` defaults to
//! `https://graph.facebook.com` (`META_GRAPH_BASE_URL` overrides it), `{version}` to `v18.0`.
//!
//! Errors: 401, or any error whose `error.type` is `OAuthException` →
//! [`WhatsAppError::InvalidToken`] with Meta's message; 403 → [`WhatsAppError::Forbidden`];
//! 404, a 400 `GraphMethodException` (Meta's "object does not exist"), or an answer for
//! another ID → [`WhatsAppError::NotFound`].
//!
//! # Layout
//! Everything is in this file: [`HttpWhatsApp`] and its settings.
//!
//! # Dependencies
//! `portal-domain` (the port), `portal-outbound` (all HTTP plumbing), serde.

use async_trait::async_trait;
use portal_domain::ports::downstream::{PhoneNumberInfo, WhatsApp, WhatsAppError};
use portal_domain::secret::SecretString;
use portal_outbound::{Call, CallError, Downstream, ErrorBody};
use serde::Deserialize;
use std::time::Duration;

/// The service name in logs, metrics and `/health`.
pub const SERVICE: &str = "metaGraph";

/// Default Graph API base URL.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";

/// Default Graph API version.
pub(crate) const DEFAULT_API_VERSION: &str = "v18.0";

/// Default deadline of the phone-number lookup.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const FIELDS: &str = "id,display_phone_number,verified_name,quality_rating";

/// Meta's Graph API over HTTP.
#[derive(Debug, Clone)]
pub struct HttpWhatsApp {
    /// Its base URL is the Graph API's (`https://graph.facebook.com` or an override).
    downstream: Downstream,
    /// Graph API version path segment, e.g. `v18.0`.
    version: String,
    timeout: Duration,
}

impl HttpWhatsApp {
    /// An adapter over `downstream`, using API version `v18.0` and a 10 s deadline.
    pub fn new(downstream: Downstream) -> Self {
        Self {
            downstream,
            version: DEFAULT_API_VERSION.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Uses another Graph API version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Replaces the deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

fn message(body: &ErrorBody, fallback: &str) -> String {
    body.message().unwrap_or_else(|| fallback.to_owned())
}

fn map_error(e: CallError) -> WhatsAppError {
    match e {
        CallError::Unauthorized(ref body) => {
            WhatsAppError::InvalidToken(message(body, "invalid access token"))
        }
        CallError::BadRequest { ref body, .. } | CallError::Forbidden(ref body)
            if body.code().as_deref() == Some("OAuthException") =>
        {
            WhatsAppError::InvalidToken(message(body, "invalid access token"))
        }
        CallError::Forbidden(ref body) => {
            WhatsAppError::Forbidden(message(body, "insufficient permissions"))
        }
        CallError::NotFound(_) => WhatsAppError::NotFound,
        CallError::BadRequest { ref body, .. }
            if body.code().as_deref() == Some("GraphMethodException") =>
        {
            WhatsAppError::NotFound
        }
        other => WhatsAppError::Failure(other.into_failure()),
    }
}

#[derive(Deserialize)]
struct PhoneDto {
    id: String,
    #[serde(default)]
    display_phone_number: String,
    #[serde(default)]
    verified_name: Option<String>,
    #[serde(default)]
    quality_rating: Option<String>,
}

#[async_trait]
impl WhatsApp for HttpWhatsApp {
    async fn phone_number(
        &self,
        phone_number_id: &str,
        token: &SecretString,
    ) -> Result<PhoneNumberInfo, WhatsAppError> {
        if phone_number_id.trim().is_empty() {
            return Err(WhatsAppError::NotFound);
        }
        let call = Call::get(
            "get_phone_number",
            self.downstream.url(&[&self.version, phone_number_id]),
        )
        .query([("fields", FIELDS)])
        .timeout(self.timeout)
        .bearer(token);
        let reply = self.downstream.send(call).await.map_err(map_error)?;
        let dto: PhoneDto = reply
            .json("phone number")
            .map_err(|e| WhatsAppError::Failure(e.into_failure()))?;
        if dto.id != phone_number_id {
            return Err(WhatsAppError::NotFound);
        }
        Ok(PhoneNumberInfo {
            id: dto.id,
            display_phone_number: dto.display_phone_number,
            verified_name: dto.verified_name,
            quality_rating: dto.quality_rating,
        })
    }
}
