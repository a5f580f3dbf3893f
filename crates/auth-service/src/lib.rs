//! HTTP adapter for the Auth Service port ([`AuthService`], spec §3.1.1).
//!
//! - `POST {base}/api/v1/auth/validate` `{token, codeVerifier, redirectUri}` (3 s, never
//!   retried) → `{accessToken, refreshToken?, expiresAt}`;
//! - `GET {base}/api/v1/auth/profile` with `Authorization: Bearer` (2 s, retried) →
//!   `{userId, email, name, tenantId?, role?}`;
//! - `POST {base}/api/v1/auth/refresh` `{refreshToken}` (3 s, never retried).
//!
//! 400/401 mean [`AuthServiceError::InvalidGrant`] for the exchange and the refresh, and
//! [`AuthServiceError::Unauthorized`] for the profile; everything else that fails is
//! [`AuthServiceError::Failure`]. Bodies of these calls are never logged (they carry codes and
//! tokens); responses wrapped as `{"data": {...}}` are accepted too.
//!
//! # Layout
//! Everything is in this file: [`HttpAuthService`], its [`Timeouts`], and the wire DTOs.
//!
//! # Dependencies
//! `portal-domain` (the port), `portal-outbound` (all HTTP plumbing), serde, time.

use async_trait::async_trait;
use portal_domain::model::UserProfile;
use portal_domain::ports::downstream::{AuthService, AuthServiceError, CodeExchange, TokenSet};
use portal_domain::secret::{ExposeSecret, SecretString};
use portal_outbound::{Call, CallError, Downstream};
use serde::Deserialize;
use std::time::Duration;
use time::OffsetDateTime;

/// The service name in logs, metrics and `/health`.
pub const SERVICE: &str = "authService";

/// Per-endpoint deadlines (spec §3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `POST /api/v1/auth/validate`.
    pub validate: Duration,
    /// `GET /api/v1/auth/profile`.
    pub profile: Duration,
    /// `POST /api/v1/auth/refresh`.
    pub refresh: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            validate: Duration::from_secs(3),
            profile: Duration::from_secs(2),
            refresh: Duration::from_secs(3),
        }
    }
}

/// The Auth Service over HTTP.
#[derive(Debug, Clone)]
pub struct HttpAuthService {
    downstream: Downstream,
    timeouts: Timeouts,
}

impl HttpAuthService {
    /// An adapter over `downstream` (whose base URL is `AUTH_SERVICE_URL`).
    pub fn new(downstream: Downstream) -> Self {
        Self {
            downstream,
            timeouts: Timeouts::default(),
        }
    }

    /// Replaces the deadlines.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    async fn token_call(&self, call: Call) -> Result<TokenSet, AuthServiceError> {
        let reply = self.downstream.send(call).await.map_err(grant_error)?;
        let dto: TokenDto = reply.json_data("token response").map_err(failure)?;
        dto.into_token_set()
    }
}

fn failure(e: CallError) -> AuthServiceError {
    AuthServiceError::Failure(e.into_failure())
}

fn grant_error(e: CallError) -> AuthServiceError {
    match e {
        CallError::BadRequest { status: 400, .. } | CallError::Unauthorized(_) => {
            AuthServiceError::InvalidGrant
        }
        other => failure(other),
    }
}

/// When the access token expires: RFC 3339 text or Unix seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum Expiry {
    Text(String),
    Unix(i64),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenDto {
    /// The spec's validate answer may say `valid: false` with a 200.
    #[serde(default)]
    valid: Option<bool>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_at: Option<Expiry>,
    /// Some deployments answer with a lifetime instead of an instant.
    #[serde(default)]
    expires_in: Option<i64>,
}

impl TokenDto {
    fn into_token_set(self) -> Result<TokenSet, AuthServiceError> {
        if self.valid == Some(false) {
            return Err(AuthServiceError::InvalidGrant);
        }
        let malformed =
            |what: &str| failure(CallError::Malformed(format!("token response: {what}")));
        let access_token = self
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| malformed("missing accessToken"))?;
        let expires_at = match (self.expires_at, self.expires_in) {
            (Some(Expiry::Text(s)), _) => {
                OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| malformed("expiresAt is not RFC 3339"))?
            }
            (Some(Expiry::Unix(secs)), _) => OffsetDateTime::from_unix_timestamp(secs)
                .map_err(|_| malformed("expiresAt out of range"))?,
            (None, Some(secs)) => OffsetDateTime::now_utc() + time::Duration::seconds(secs),
            (None, None) => return Err(malformed("missing expiresAt")),
        };
        Ok(TokenSet {
            access_token: SecretString::from(access_token),
            refresh_token: self
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            expires_at,
        })
    }
}

#[async_trait]
impl AuthService for HttpAuthService {
    async fn exchange_code(&self, exchange: CodeExchange) -> Result<TokenSet, AuthServiceError> {
        let body = serde_json::json!({
            "token": exchange.code.expose_secret(),
            "codeVerifier": exchange.code_verifier.expose_secret(),
            "redirectUri": exchange.redirect_uri,
        });
        let call = Call::post(
            "validate_token",
            self.downstream.url(&["api", "v1", "auth", "validate"]),
        )
        .timeout(self.timeouts.validate)
        .json(&body);
        self.token_call(call).await
    }

    async fn profile(&self, access_token: &SecretString) -> Result<UserProfile, AuthServiceError> {
        let call = Call::get(
            "get_profile",
            self.downstream.url(&["api", "v1", "auth", "profile"]),
        )
        .timeout(self.timeouts.profile)
        .bearer(access_token);
        let reply = self.downstream.send(call).await.map_err(|e| match e {
            CallError::BadRequest { status: 400, .. } | CallError::Unauthorized(_) => {
                AuthServiceError::Unauthorized
            }
            other => failure(other),
        })?;
        reply.json_data("profile").map_err(failure)
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, AuthServiceError> {
        let body = serde_json::json!({ "refreshToken": refresh_token.expose_secret() });
        let call = Call::post(
            "refresh_token",
            self.downstream.url(&["api", "v1", "auth", "refresh"]),
        )
        .timeout(self.timeouts.refresh)
        .json(&body);
        self.token_call(call).await
    }
}
