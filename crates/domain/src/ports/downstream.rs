//! Downstream service ports: the platform's services and the two public APIs.
//!
//! Each port's error enum has the business outcomes the domain acts on, plus
//! `Failure(DownstreamFailure)` for everything that says "the call did not work".

use crate::error::DownstreamFailure;
use crate::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, DateRange, Message,
    NewTenant, Period, RawMetrics, Region, Tenant, TenantId, TenantUpdate, UserId, UserProfile,
};
use crate::secret::SecretString;
use async_trait::async_trait;
use time::OffsetDateTime;

/// Tokens the Auth Service issued for a user.
#[derive(Debug)]
pub struct TokenSet {
    /// Access token for the Auth Service's profile endpoint.
    pub access_token: SecretString,
    /// Refresh token, when issued.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires.
    pub expires_at: OffsetDateTime,
}

/// An authorization code to exchange (with its PKCE verifier).
#[derive(Debug)]
pub struct CodeExchange {
    /// The code from the callback.
    pub code: SecretString,
    /// The PKCE verifier the challenge was derived from.
    pub code_verifier: SecretString,
    /// The redirect URI the code was issued for.
    pub redirect_uri: String,
}

/// Auth Service failures.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthServiceError {
    /// The code or refresh token is unknown, used, expired, or its PKCE verifier is wrong.
    #[error("invalid grant")]
    InvalidGrant,
    /// The access token was refused.
    #[error("unauthorized")]
    Unauthorized,
    /// The call failed.
    #[error(transparent)]
    Failure(#[from] DownstreamFailure),
}

/// The Auth Service (spec §3.1.1): code exchange, profiles, refresh.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait AuthService: Send + Sync {
    /// `POST /api/v1/auth/validate`: exchanges an authorization code. Never retried.
    async fn exchange_code(&self, exchange: CodeExchange) -> Result<TokenSet, AuthServiceError>;
    /// `GET /api/v1/auth/profile` with the access token.
    async fn profile(&self, access_token: &SecretString) -> Result<UserProfile, AuthServiceError>;
    /// `POST /api/v1/auth/refresh`.
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, AuthServiceError>;
}

/// Tenant Service failures.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TenantServiceError {
    /// No such tenant.
    #[error("tenant not found")]
    NotFound,
    /// The service refused the request (HTTP 400/409/422) with this reason.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The call failed.
    #[error(transparent)]
    Failure(#[from] DownstreamFailure),
}

/// The Tenant Service (spec §3.1.2): tenant configuration CRUD.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait TenantService: Send + Sync {
    /// `POST /api/v1/tenants` with status `onboarding`. Never retried.
    async fn create(&self, tenant: &NewTenant) -> Result<Tenant, TenantServiceError>;
    /// `PUT /api/v1/tenants/:id` (idempotent: the same update twice leaves the same tenant).
    async fn update(
        &self,
        id: TenantId,
        update: &TenantUpdate,
    ) -> Result<Tenant, TenantServiceError>;
    /// `GET /api/v1/tenants/by-user/:userId`; `Ok(None)` when the user has no tenant.
    async fn by_user(&self, user: &UserId) -> Result<Option<Tenant>, TenantServiceError>;
}

/// State Manager failures.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StateManagerError {
    /// No such conversation.
    #[error("not found")]
    NotFound,
    /// The call failed.
    #[error(transparent)]
    Failure(#[from] DownstreamFailure),
}

/// The State Manager (spec §3.1.3): conversations, messages, metrics.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait StateManager: Send + Sync {
    /// `GET /api/v1/conversations?tenantId&page&limit&status`.
    async fn conversations(
        &self,
        tenant: TenantId,
        query: ConversationQuery,
    ) -> Result<ConversationPage, StateManagerError>;
    /// `GET /api/v1/conversations/:id`.
    async fn conversation(&self, id: ConversationId) -> Result<Conversation, StateManagerError>;
    /// `GET /api/v1/conversations/:id/messages`.
    async fn messages(&self, id: ConversationId) -> Result<Vec<Message>, StateManagerError>;
    /// `GET /api/v1/metrics/:tenantId?period`.
    async fn metrics(
        &self,
        tenant: TenantId,
        period: Period,
    ) -> Result<RawMetrics, StateManagerError>;
    /// `GET /api/v1/metrics/:tenantId?startDate&endDate`.
    async fn metrics_range(
        &self,
        tenant: TenantId,
        range: DateRange,
    ) -> Result<RawMetrics, StateManagerError>;
}

/// A Genesys access token from the client-credentials grant.
#[derive(Debug)]
pub struct GenesysToken {
    /// The token.
    pub access_token: SecretString,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// A Genesys organisation (`GET /api/v2/organizations/me`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesysOrganization {
    /// Organisation ID.
    pub id: String,
    /// Organisation name.
    pub name: String,
}

/// Genesys Cloud failures.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GenesysError {
    /// The client ID or secret was refused (`invalid_client`), with Genesys's description.
    #[error("invalid client credentials: {0}")]
    InvalidClient(String),
    /// Authenticated but not allowed (missing permission or scope).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The call failed.
    #[error(transparent)]
    Failure(#[from] DownstreamFailure),
}

/// Genesys Cloud's public API, for credential validation (spec §6.3, §6.5).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait GenesysCloud: Send + Sync {
    /// Client-credentials grant at `https://login.{domain}/oauth/token` (form body, Basic auth).
    async fn client_credentials(
        &self,
        region: Region,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<GenesysToken, GenesysError>;
    /// `GET https://api.{domain}/api/v2/organizations/me`.
    async fn organization(
        &self,
        region: Region,
        token: &SecretString,
    ) -> Result<GenesysOrganization, GenesysError>;
}

/// A WhatsApp business phone number as Meta describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumberInfo {
    /// Phone number ID.
    pub id: String,
    /// E.g. `+1 555-0100`.
    pub display_phone_number: String,
    /// The verified business name.
    pub verified_name: Option<String>,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`.
    pub quality_rating: Option<String>,
}

/// Meta Graph failures.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WhatsAppError {
    /// The token was refused (401, `OAuthException`), with Meta's message.
    #[error("invalid access token: {0}")]
    InvalidToken(String),
    /// The token lacks permission for the number (403).
    #[error("insufficient permissions: {0}")]
    Forbidden(String),
    /// No such phone number ID (404), or Meta returned another number's ID.
    #[error("phone number not found")]
    NotFound,
    /// The call failed.
    #[error(transparent)]
    Failure(#[from] DownstreamFailure),
}

/// Meta's WhatsApp Cloud API, for credential validation (spec §6.4).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait WhatsApp: Send + Sync {
    /// `GET /{version}/{phoneNumberId}?fields=id,display_phone_number,verified_name,quality_rating`.
    async fn phone_number(
        &self,
        phone_number_id: &str,
        token: &SecretString,
    ) -> Result<PhoneNumberInfo, WhatsAppError>;
}
