//! HTTP adapter for Genesys Cloud's public API ([`GenesysCloud`], spec §6.3, §6.5).
//!
//! - `POST {login}/oauth/token`, form body `grant_type=client_credentials`, HTTP Basic client
//!   auth (10 s, never retried) → `{access_token, expires_in}`; 400/401 with
//!   `error: invalid_client` (or any 401) → [`GenesysError::InvalidClient`] with Genesys's
//!   description;
//! - `GET {api}/api/v2/organizations/me` with Bearer (5 s, retried) → `{id, name}`;
//!   401 → `InvalidClient`, 403 → [`GenesysError::Forbidden`].
//!
//! `{login}` is `https://login.{region domain}` and `{api}` `https://api.{region domain}`
//! (decisions §4), unless overrides are configured (`GENESYS_LOGIN_BASE_URL`,
//! `GENESYS_API_BASE_URL`) for a sandbox or a proxy: then every region uses them.
//!
//! # Layout
//! Everything is in this file: [`HttpGenesysCloud`], [`Endpoints`], [`Timeouts`].
//!
//! # Dependencies
//! `portal-domain` (the port), `portal-outbound` (all HTTP plumbing), serde.

use async_trait::async_trait;
use portal_domain::model::Region;
use portal_domain::ports::downstream::{
    GenesysCloud, GenesysError, GenesysOrganization, GenesysToken,
};
use portal_domain::secret::{SecretString, mask};
use portal_outbound::{Call, CallError, Downstream, join_url};
use serde::Deserialize;
use std::time::Duration;
use url::Url;

/// The service name in logs, metrics and `/health`.
pub const SERVICE: &str = "genesysCloud";

/// Per-endpoint deadlines (spec §6.3, §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `POST /oauth/token`.
    pub token: Duration,
    /// `GET /api/v2/organizations/me`.
    pub organization: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            token: Duration::from_secs(10),
            organization: Duration::from_secs(5),
        }
    }
}

/// Where the login and API hosts are. `None` = derived from the region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Replaces `https://login.{domain}` for every region.
    pub login_base: Option<Url>,
    /// Replaces `https://api.{domain}` for every region.
    pub api_base: Option<Url>,
}

/// Genesys Cloud over HTTP.
#[derive(Debug, Clone)]
pub struct HttpGenesysCloud {
    /// Its base URL is not used: each call's host depends on the region (or the overrides).
    downstream: Downstream,
    endpoints: Endpoints,
    timeouts: Timeouts,
}

impl HttpGenesysCloud {
    /// An adapter over `downstream`, with these endpoints.
    pub fn new(downstream: Downstream, endpoints: Endpoints) -> Self {
        Self {
            downstream,
            endpoints,
            timeouts: Timeouts::default(),
        }
    }

    /// Replaces the deadlines.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    fn base(&self, over: Option<&Url>, derived: String) -> Result<Url, GenesysError> {
        match over {
            Some(url) => Ok(url.clone()),
            None => Url::parse(&derived).map_err(|_| {
                GenesysError::Failure(portal_domain::DownstreamFailure::Protocol(
                    "invalid Genesys base URL".into(),
                ))
            }),
        }
    }
}

fn failure(e: CallError) -> GenesysError {
    GenesysError::Failure(e.into_failure())
}

fn described(body: &portal_outbound::ErrorBody, fallback: &str) -> String {
    body.message().unwrap_or_else(|| fallback.to_owned())
}

#[derive(Deserialize)]
struct TokenDto {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

#[derive(Deserialize)]
struct OrganizationDto {
    id: String,
    name: String,
}

#[async_trait]
impl GenesysCloud for HttpGenesysCloud {
    async fn client_credentials(
        &self,
        region: Region,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<GenesysToken, GenesysError> {
        let base = self.base(self.endpoints.login_base.as_ref(), region.login_base_url())?;
        let call = Call::post("client_credentials", join_url(&base, &["oauth", "token"]))
            .timeout(self.timeouts.token)
            .basic_auth(client_id, client_secret)
            .form([("grant_type", "client_credentials")]);
        let reply = self.downstream.send(call).await.map_err(|e| match e {
            CallError::Unauthorized(ref body) => {
                GenesysError::InvalidClient(described(body, "client authentication failed"))
            }
            CallError::BadRequest { ref body, .. }
                if body.code().as_deref() == Some("invalid_client") =>
            {
                GenesysError::InvalidClient(described(body, "invalid client credentials"))
            }
            CallError::Forbidden(ref body) => {
                GenesysError::Forbidden(described(body, "client not allowed"))
            }
            other => failure(other),
        })?;
        let dto: TokenDto = reply.json("token response").map_err(failure)?;
        if dto.access_token.is_empty() {
            return Err(failure(CallError::Malformed(
                "token response: empty access_token".into(),
            )));
        }
        tracing::info!(
            client_id = %mask(client_id),
            region = region.as_str(),
            expires_in = dto.expires_in,
            "Genesys client credentials accepted"
        );
        Ok(GenesysToken {
            access_token: SecretString::from(dto.access_token),
            expires_in: dto.expires_in,
        })
    }

    async fn organization(
        &self,
        region: Region,
        token: &SecretString,
    ) -> Result<GenesysOrganization, GenesysError> {
        let base = self.base(self.endpoints.api_base.as_ref(), region.api_base_url())?;
        let call = Call::get(
            "get_organization",
            join_url(&base, &["api", "v2", "organizations", "me"]),
        )
        .timeout(self.timeouts.organization)
        .bearer(token);
        let reply = self.downstream.send(call).await.map_err(|e| match e {
            CallError::Unauthorized(ref body) => {
                GenesysError::InvalidClient(described(body, "access token refused"))
            }
            CallError::Forbidden(ref body) => {
                GenesysError::Forbidden(described(body, "missing permission"))
            }
            other => failure(other),
        })?;
        let dto: OrganizationDto = reply.json("organization").map_err(failure)?;
        Ok(GenesysOrganization {
            id: dto.id,
            name: dto.name,
        })
    }
}
