//! Sign-in with Genesys Cloud (OAuth 2.0 code flow with PKCE), sessions, CSRF, roles and
//! WebSocket tickets (spec §5, decisions §4).
//!
//! The flow: [`Authenticator::begin_login`] stores a pending login under the SHA-256 of a
//! random `state`, bound to a pre-login cookie, and returns the authorize URL with the PKCE
//! challenge. [`Authenticator::complete_login`] consumes the state once, exchanges the code
//! (with the verifier) through the Auth Service port, fetches the profile, resolves the tenant
//! through the Tenant Service port and creates a session under a fresh ID. Every protected
//! request then goes through [`Authenticator::authenticate`].

use crate::crypto::{TokenDeriver, sha256_hex};
use crate::error::StoreError;
use crate::model::{Ciphertext, Session, SessionId, SessionKey, TenantId, TenantStatus, UserId};
use crate::ports::downstream::{AuthService, AuthServiceError, CodeExchange, TenantService};
use crate::ports::stores::{
    EventBus, OneTimePurpose, OneTimeStore, RateDecision, RatePolicy, SessionStore,
};
use crate::ports::system::{Cipher, Clock, EncryptionContext, Random, RandomExt};
use crate::secret::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Sign-in and session settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Genesys authorize endpoint (`https://login.{domain}/oauth/authorize`).
    pub authorize_url: Url,
    /// The portal's Genesys OAuth client ID.
    pub client_id: String,
    /// `GENESYS_REDIRECT_URI`: this service's callback.
    pub redirect_uri: String,
    /// Absolute session lifetime (24 h).
    pub session_ttl: Duration,
    /// How long a started login may take (5 min).
    pub pending_login_ttl: Duration,
    /// Minimum interval between `lastActivity` writes (1 min).
    pub activity_write_interval: Duration,
    /// WebSocket ticket lifetime (30 s).
    pub ws_ticket_ttl: Duration,
}

impl AuthSettings {
    /// The spec's lifetimes with the given endpoints.
    pub fn new(authorize_url: Url, client_id: String, redirect_uri: String) -> Self {
        Self {
            authorize_url,
            client_id,
            redirect_uri,
            session_ttl: Duration::from_secs(24 * 3600),
            pending_login_ttl: Duration::from_secs(300),
            activity_write_interval: Duration::from_secs(60),
            ws_ticket_ttl: Duration::from_secs(30),
        }
    }
}

/// The rate limits of decisions §8 (all configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Sign-in attempts per client IP (10 per 15 min).
    pub auth: RatePolicy,
    /// Failed onboarding attempts per tenant or user (5 per 15 min).
    pub onboarding: RatePolicy,
    /// API requests per user (100 per minute).
    pub api: RatePolicy,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            auth: RatePolicy {
                limit: 10,
                window: Duration::from_secs(15 * 60),
            },
            onboarding: RatePolicy {
                limit: 5,
                window: Duration::from_secs(15 * 60),
            },
            api: RatePolicy {
                limit: 100,
                window: Duration::from_secs(60),
            },
        }
    }
}

/// What a handler needs to send the browser to Genesys.
#[derive(Debug)]
pub struct LoginStart {
    /// The authorize URL, with state and PKCE challenge.
    pub redirect_url: Url,
    /// Value of the short-lived pre-login cookie that binds the callback to this browser.
    pub binding: SecretString,
}

/// Stored server-side under the SHA-256 of `state`.
#[derive(Debug, Serialize, Deserialize)]
struct PendingLogin {
    /// SHA-256 of the pre-login cookie.
    binding_hash: String,
    /// The PKCE verifier, encrypted (bound to the state digest).
    verifier: Ciphertext,
    /// Where to send the user after sign-in (a path on the frontend).
    return_to: Option<String>,
}

/// The query of Genesys's redirect to the callback.
#[derive(Debug, Default)]
pub struct CallbackParams {
    /// Authorization code.
    pub code: Option<SecretString>,
    /// The state we sent.
    pub state: Option<String>,
    /// OAuth error, when the user or Genesys refused.
    pub error: Option<String>,
}

/// A completed sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The new session ID, for the cookie.
    pub session_id: SessionId,
    /// The session.
    pub session: Session,
    /// Frontend path to land on (`/dashboard` by default, `/onboarding` for a new tenant).
    pub return_to: String,
}

/// Why a callback failed. [`CallbackError::InvalidState`] and
/// [`CallbackError::MissingCode`] are answered with 400; the rest redirect the browser to
/// `/login?error={reason}`.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// `state` missing, unknown, already used, expired, or not bound to this browser.
    #[error("invalid or expired state parameter")]
    InvalidState,
    /// No `code` and no `error`.
    #[error("missing authorization code")]
    MissingCode,
    /// Genesys reported an error (e.g. `access_denied`).
    #[error("identity provider error: {0}")]
    Provider(String),
    /// The code was refused or could not be exchanged.
    #[error("token validation failed: {0}")]
    TokenValidation(AuthServiceError),
    /// The profile could not be read.
    #[error("profile retrieval failed: {0}")]
    Profile(AuthServiceError),
    /// The Tenant Service could not resolve the user's tenant.
    #[error("tenant resolution failed: {0}")]
    Tenant(crate::ports::downstream::TenantServiceError),
    /// The user's tenant is suspended.
    #[error("tenant suspended")]
    TenantSuspended,
    /// The session could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CallbackError {
    /// The `error` query value of the `/login` redirect (spec §5.1 names).
    pub fn reason(&self) -> String {
        match self {
            CallbackError::InvalidState => "invalid_state".into(),
            CallbackError::MissingCode => "missing_code".into(),
            CallbackError::Provider(e) => e.clone(),
            CallbackError::TokenValidation(_) => "token_validation_failed".into(),
            CallbackError::Profile(_) => "profile_retrieval_failed".into(),
            CallbackError::Tenant(_) => "tenant_resolution_failed".into(),
            CallbackError::TenantSuspended => "tenant_suspended".into(),
            CallbackError::Store(_) => "unexpected_error".into(),
        }
    }
}

/// Why a request's session was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown, malformed, revoked or expired (`SESSION_EXPIRED`, 401).
    #[error("session expired or invalid")]
    Expired,
    /// The session store is unavailable: fail closed (`SERVICE_UNAVAILABLE`, 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No refresh token, or the Auth Service refused it (`REFRESH_FAILED`, 401).
    #[error("token refresh failed")]
    Rejected,
    /// The session ended meanwhile (`SESSION_EXPIRED`, 401).
    #[error("session expired")]
    SessionGone,
    /// The Auth Service could not be reached (`SERVICE_UNAVAILABLE`, 503).
    #[error("auth service unavailable: {0}")]
    Unavailable(crate::error::DownstreamFailure),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Something a session may be allowed to do (decisions §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Dashboard stats, refresh and ranges.
    ViewDashboard,
    /// Conversation history.
    ViewHistory,
    /// Sending from the agent widget.
    SendMessages,
    /// The real-time monitoring socket.
    Monitor,
    /// The onboarding wizard.
    Onboard,
}

/// Why a session may not do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    /// The role lacks the right (`FORBIDDEN`, 403).
    #[error("your role does not allow this")]
    Role,
    /// The tenant has not finished onboarding (`FORBIDDEN`, 403).
    #[error("finish onboarding first")]
    OnboardingIncomplete,
}

/// An authenticated request's session.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    /// The store key (hash of the cookie's session ID).
    pub key: SessionKey,
    /// The session.
    pub session: Session,
}

impl CurrentSession {
    /// Checks a capability; returns the tenant the session acts for (for tenant-scoped
    /// capabilities) or `None` (onboarding before step 1).
    pub fn authorize(&self, capability: Capability) -> Result<Option<TenantId>, AccessDenied> {
        let s = &self.session;
        use crate::model::Role::*;
        match capability {
            Capability::Onboard => {
                if s.onboarding_only || s.role == Admin {
                    Ok(s.tenant_id)
                } else {
                    Err(AccessDenied::Role)
                }
            }
            _ => {
                let tenant = s
                    .active_tenant()
                    .ok_or(AccessDenied::OnboardingIncomplete)?;
                let allowed = match capability {
                    Capability::SendMessages => matches!(s.role, Admin | Agent),
                    _ => true,
                };
                if allowed {
                    Ok(Some(tenant))
                } else {
                    Err(AccessDenied::Role)
                }
            }
        }
    }
}

/// The sign-in and session use cases.
pub struct Authenticator {
    settings: AuthSettings,
    sessions: Arc<dyn SessionStore>,
    one_time: Arc<dyn OneTimeStore>,
    auth_service: Arc<dyn AuthService>,
    tenants: Arc<dyn TenantService>,
    bus: Arc<dyn EventBus>,
    cipher: Arc<dyn Cipher>,
    random: Arc<dyn Random>,
    clock: Arc<dyn Clock>,
    /// Derives per-session CSRF tokens; keyed by the cookie secret.
    csrf: TokenDeriver,
    /// Session key → user ID of sessions seen on this instance, so the API rate-limit hit can
    /// ride in the session read's round trip ([`Authenticator::authenticate_limited`]).
    memo: SessionMemo,
}

/// Entries of one [`SessionMemo`] generation.
const MEMO_GENERATION: usize = 50_000;

/// What this instance remembers of a session it has seen.
#[derive(Debug, Clone)]
struct MemoEntry {
    /// A session's user never changes.
    user: UserId,
    /// When this instance last wrote (or decided to write) `lastActivity`: concurrent requests
    /// of one session on one instance write it once per interval, not once each.
    touched: Option<time::OffsetDateTime>,
}

/// A bounded map session key → [`MemoEntry`]: two generations of at most
/// [`MEMO_GENERATION`] entries; when the young one fills up it becomes the old one and the
/// previous old one is dropped (an approximate LRU: a hit in the old generation moves the
/// entry to the young one). Losing an entry costs one ordinary (unpiggybacked) request.
#[derive(Debug, Default)]
struct SessionMemo {
    maps: std::sync::Mutex<[std::collections::HashMap<SessionKey, MemoEntry>; 2]>,
}

impl SessionMemo {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut [std::collections::HashMap<SessionKey, MemoEntry>; 2]) -> R,
    ) -> R {
        let mut maps = self
            .maps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut maps)
    }

    fn insert(
        maps: &mut [std::collections::HashMap<SessionKey, MemoEntry>; 2],
        key: SessionKey,
        entry: MemoEntry,
    ) {
        if maps[0].len() >= MEMO_GENERATION && !maps[0].contains_key(&key) {
            maps[1] = std::mem::take(&mut maps[0]);
        }
        maps[0].insert(key, entry);
    }

    fn user(&self, key: &SessionKey) -> Option<UserId> {
        self.with(|maps| {
            if let Some(e) = maps[0].get(key) {
                return Some(e.user.clone());
            }
            let e = maps[1].remove(key)?;
            let user = e.user.clone();
            Self::insert(maps, key.clone(), e);
            Some(user)
        })
    }

    fn remember(&self, key: &SessionKey, user: &UserId) {
        self.with(|maps| {
            if maps[0].get(key).is_some_and(|e| &e.user == user) {
                return;
            }
            let touched = maps[1]
                .remove(key)
                .filter(|e| &e.user == user)
                .and_then(|e| e.touched);
            Self::insert(
                maps,
                key.clone(),
                MemoEntry {
                    user: user.clone(),
                    touched,
                },
            );
        });
    }

    fn forget(&self, key: &SessionKey) {
        self.with(|maps| {
            maps[0].remove(key);
            maps[1].remove(key);
        });
    }

    /// Whether this request should write `lastActivity`: not if this instance did within
    /// `interval`. Claims the write when it answers `true`.
    fn claim_touch(
        &self,
        key: &SessionKey,
        now: time::OffsetDateTime,
        interval: time::Duration,
    ) -> bool {
        self.with(|maps| {
            let [young, old] = maps;
            let Some(e) = young.get_mut(key).or_else(|| old.get_mut(key)) else {
                return true;
            };
            if e.touched.is_some_and(|t| now - t < interval) {
                return false;
            }
            e.touched = Some(now);
            true
        })
    }
}

#[cfg(test)]
impl SessionMemo {
    fn len(&self) -> usize {
        self.with(|maps| maps[0].len() + maps[1].len())
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The ports the authenticator uses.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct AuthPorts {
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// OAuth states and WebSocket tickets.
    pub one_time: Arc<dyn OneTimeStore>,
    /// Auth Service.
    pub auth_service: Arc<dyn AuthService>,
    /// Tenant Service.
    pub tenants: Arc<dyn TenantService>,
    /// Event bus (session revocations).
    pub bus: Arc<dyn EventBus>,
    /// Cipher (refresh tokens, PKCE verifiers).
    pub cipher: Arc<dyn Cipher>,
    /// Randomness.
    pub random: Arc<dyn Random>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
}

const CSRF_PURPOSE: &str = "csrf";
const REFRESH_FIELD: &str = "refreshToken";

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

impl Authenticator {
    /// Builds the use case. `csrf_key` is secret key material (derived from `COOKIE_SECRET`).
    pub fn new(settings: AuthSettings, ports: AuthPorts, csrf_key: &[u8]) -> Self {
        Self {
            settings,
            sessions: ports.sessions,
            one_time: ports.one_time,
            auth_service: ports.auth_service,
            tenants: ports.tenants,
            bus: ports.bus,
            cipher: ports.cipher,
            random: ports.random,
            clock: ports.clock,
            csrf: TokenDeriver::new(csrf_key),
            memo: SessionMemo::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Starts a sign-in: stores the pending login and returns where to send the browser.
    ///
    /// `login_hint` is passed through to Genesys; `return_to` (a frontend path starting with
    /// `/`) is where the user lands afterwards.
    pub async fn begin_login(
        &self,
        login_hint: Option<&str>,
        return_to: Option<&str>,
    ) -> Result<LoginStart, StoreError> {
        let state = self.random.token::<32>();
        let verifier = self.random.token::<32>();
        let binding = self.random.token::<32>();
        let state_digest = sha256_hex(state.expose_secret().as_bytes());
        let pending = PendingLogin {
            binding_hash: sha256_hex(binding.expose_secret().as_bytes()),
            verifier: self
                .cipher
                .encrypt(&verifier, &pending_context(&state_digest)),
            return_to: return_to
                .filter(|p| is_safe_return_path(p))
                .map(str::to_owned),
        };
        let payload =
            serde_json::to_string(&pending).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.one_time
            .put(
                OneTimePurpose::OAuthState,
                &state_digest,
                &payload,
                self.settings.pending_login_ttl,
            )
            .await?;

        let mut url = self.settings.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.settings.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", &self.settings.redirect_uri)
                .append_pair("state", state.expose_secret())
                .append_pair(
                    "code_challenge",
                    &crate::crypto::pkce_challenge(verifier.expose_secret()),
                )
                .append_pair("code_challenge_method", "S256");
            if let Some(hint) = login_hint.filter(|h| !h.is_empty() && h.len() <= 254) {
                q.append_pair("login_hint", hint);
            }
        }
        tracing::info!(state = %crate::secret::mask(&state_digest), "sign-in started");
        Ok(LoginStart {
            redirect_url: url,
            binding,
        })
    }

    /// Completes a sign-in from Genesys's redirect. `binding` is the pre-login cookie.
    pub async fn complete_login(
        &self,
        binding: Option<&str>,
        params: CallbackParams,
    ) -> Result<SignedIn, CallbackError> {
        // 1. The state: present, known, unused, and bound to this browser. Taken (deleted)
        //    before anything else, so it can never be replayed.
        let state = params
            .state
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(CallbackError::InvalidState)?;
        let digest = sha256_hex(state.as_bytes());
        let payload = self
            .one_time
            .take(OneTimePurpose::OAuthState, &digest)
            .await?
            .ok_or(CallbackError::InvalidState)?;
        let pending: PendingLogin =
            serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let bound = binding.is_some_and(|b| {
            crate::crypto::constant_time_eq(
                sha256_hex(b.as_bytes()).as_bytes(),
                pending.binding_hash.as_bytes(),
            )
        });
        if !bound {
            tracing::warn!("sign-in callback not bound to the browser that started it");
            return Err(CallbackError::InvalidState);
        }

        // 2. Provider errors, then the code.
        if let Some(error) = params.error {
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            tracing::warn!(%error, "identity provider refused the sign-in");
            return Err(CallbackError::Provider(if error.is_empty() {
                "access_denied".into()
            } else {
                error
            }));
        }
        let code = params.code.ok_or(CallbackError::MissingCode)?;
        let verifier = self
            .cipher
            .decrypt(&pending.verifier, &pending_context(&digest))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;

        // 3. Exchange, profile, tenant.
        let tokens = self
            .auth_service
            .exchange_code(CodeExchange {
                code,
                code_verifier: verifier,
                redirect_uri: self.settings.redirect_uri.clone(),
            })
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "authorization code refused");
                CallbackError::TokenValidation(e)
            })?;
        let profile = self
            .auth_service
            .profile(&tokens.access_token)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "profile retrieval failed");
                CallbackError::Profile(e)
            })?;
        let tenant = self.tenants.by_user(&profile.user_id).await.map_err(|e| {
            tracing::warn!(error = %e, user_id = %profile.user_id, "tenant resolution failed");
            CallbackError::Tenant(e)
        })?;
        let (tenant_id, onboarding_only) = match tenant {
            Some(t) if t.status == TenantStatus::Suspended => {
                return Err(CallbackError::TenantSuspended);
            }
            Some(t) => (Some(t.id), t.status != TenantStatus::Active),
            None => (None, true),
        };

        // 4. A new session under a fresh ID.
        let now = self.clock.now();
        let session = Session {
            refresh_token: tokens.refresh_token.as_ref().map(|rt| {
                self.cipher.encrypt(
                    rt,
                    &EncryptionContext::user(&profile.user_id, REFRESH_FIELD),
                )
            }),
            user_id: profile.user_id,
            tenant_id,
            role: profile.role,
            email: profile.email,
            name: profile.name,
            onboarding_only,
            created_at: now,
            expires_at: now + to_time(self.settings.session_ttl),
            last_activity: now,
        };
        let session_id = SessionId::from_random(self.random.bytes::<32>());
        let key = session_id.key();
        self.sessions
            .create(&key, &session, self.settings.session_ttl)
            .await?;
        tracing::info!(
            session = key.short(),
            user_id = %session.user_id,
            tenant_id = ?session.tenant_id,
            onboarding_only,
            "session created"
        );
        let return_to = match (&pending.return_to, onboarding_only) {
            (Some(path), false) => path.clone(),
            (_, true) => "/onboarding".to_owned(),
            (None, false) => "/dashboard".to_owned(),
        };
        Ok(SignedIn {
            session_id,
            session,
            return_to,
        })
    }

    /// Resolves the session of a request from its (already signature-checked) cookie value.
    pub async fn authenticate(&self, raw_session_id: &str) -> Result<CurrentSession, SessionError> {
        let id = SessionId::parse(raw_session_id).ok_or(SessionError::Expired)?;
        self.authenticate_key(id.key()).await
    }

    /// [`Self::authenticate`] plus one hit of the per-user rate limit `rate_key(user)` under
    /// `policy`, in as few store round trips as possible.
    ///
    /// Once this instance has seen the session, it knows its user (a session's user never
    /// changes), so the hit rides in the session read's round trip
    /// ([`SessionStore::get_and_hit`]) and the decision is returned. The first request of a
    /// session on an instance (or a store that cannot combine) returns `None`: the caller
    /// applies the limit itself. A missing session, or one whose user is not the remembered
    /// one, discards the piggybacked decision; the session checks themselves are exactly those
    /// of [`Self::authenticate`] (the session is read on every request, so a logout on any
    /// instance is seen at once).
    pub async fn authenticate_limited(
        &self,
        raw_session_id: &str,
        rate_key: impl Fn(&UserId) -> String,
        policy: RatePolicy,
    ) -> Result<(CurrentSession, Option<RateDecision>), SessionError> {
        let id = SessionId::parse(raw_session_id).ok_or(SessionError::Expired)?;
        let key = id.key();
        let Some(user) = self.memo.user(&key) else {
            let current = self.authenticate_key(key).await?;
            return Ok((current, None));
        };
        let (session, decision) = self
            .sessions
            .get_and_hit(&key, &rate_key(&user), policy)
            .await?;
        let Some(session) = session else {
            self.memo.forget(&key);
            return Err(SessionError::Expired);
        };
        let decision = decision.filter(|_| session.user_id == user);
        let current = self.check_session(key, session).await?;
        Ok((current, decision))
    }

    /// Resolves a session by its store key (WebSocket re-checks, tickets).
    pub async fn authenticate_key(&self, key: SessionKey) -> Result<CurrentSession, SessionError> {
        let Some(session) = self.sessions.get(&key).await? else {
            self.memo.forget(&key);
            return Err(SessionError::Expired);
        };
        self.check_session(key, session).await
    }

    /// Expiry and the (at most once per interval) `lastActivity` write of a session just read.
    async fn check_session(
        &self,
        key: SessionKey,
        session: Session,
    ) -> Result<CurrentSession, SessionError> {
        self.memo.remember(&key, &session.user_id);
        let now = self.clock.now();
        if session.is_expired(now) {
            tracing::info!(session = key.short(), "session expired");
            self.memo.forget(&key);
            self.sessions.delete(&key).await?;
            return Err(SessionError::Expired);
        }
        let mut session = session;
        let interval = to_time(self.settings.activity_write_interval);
        if now - session.last_activity >= interval && self.memo.claim_touch(&key, now, interval) {
            // Best effort: a missed activity write must not fail the request.
            if let Err(e) = self.sessions.touch(&key, now).await {
                tracing::warn!(error = %e, "could not record session activity");
            } else {
                session.last_activity = now;
            }
        }
        Ok(CurrentSession { key, session })
    }

    /// The session's CSRF token (`X-CSRF-Token`).
    pub fn csrf_token(&self, current: &CurrentSession) -> String {
        self.csrf
            .derive(CSRF_PURPOSE, current.key.as_str().as_bytes())
    }

    /// Checks a presented CSRF token in constant time.
    pub fn verify_csrf(&self, current: &CurrentSession, presented: Option<&str>) -> bool {
        presented.is_some_and(|t| {
            self.csrf
                .verify(CSRF_PURPOSE, current.key.as_str().as_bytes(), t)
        })
    }

    /// Refreshes the user's tokens with the Auth Service and extends the session.
    pub async fn refresh(&self, current: &CurrentSession) -> Result<Session, RefreshError> {
        let mut session = current.session.clone();
        let context = EncryptionContext::user(&session.user_id, REFRESH_FIELD);
        let stored = session
            .refresh_token
            .as_ref()
            .ok_or(RefreshError::Rejected)?;
        let refresh_token = self.cipher.decrypt(stored, &context).map_err(|e| {
            tracing::warn!(error = %e, "stored refresh token unreadable");
            RefreshError::Rejected
        })?;
        let tokens = self
            .auth_service
            .refresh(&refresh_token)
            .await
            .map_err(|e| match e {
                AuthServiceError::Failure(f) => RefreshError::Unavailable(f),
                _ => RefreshError::Rejected,
            })?;
        let now = self.clock.now();
        if let Some(rt) = tokens.refresh_token.as_ref() {
            session.refresh_token = Some(self.cipher.encrypt(rt, &context));
        }
        session.expires_at = now + to_time(self.settings.session_ttl);
        session.last_activity = now;
        if !self
            .sessions
            .replace(&current.key, &session, self.settings.session_ttl)
            .await?
        {
            return Err(RefreshError::SessionGone);
        }
        tracing::info!(session = current.key.short(), "session refreshed");
        Ok(session)
    }

    /// Ends the session and tells every instance to close its sockets.
    pub async fn logout(&self, current: &CurrentSession) -> Result<(), StoreError> {
        self.memo.forget(&current.key);
        self.sessions.delete(&current.key).await?;
        self.announce_revocation(&current.key).await;
        tracing::info!(session = current.key.short(), user_id = %current.session.user_id, "logged out");
        Ok(())
    }

    /// Ends every session of the user ("log out everywhere"); returns how many ended.
    pub async fn logout_everywhere(&self, user: &UserId) -> Result<usize, StoreError> {
        let keys = self.sessions.delete_all_for_user(user).await?;
        for key in &keys {
            self.announce_revocation(key).await;
        }
        Ok(keys.len())
    }

    async fn announce_revocation(&self, key: &SessionKey) {
        if let Err(e) = self.bus.publish_revocation(key).await {
            // The session is gone from the store already; sockets elsewhere notice at their
            // next session re-check.
            tracing::warn!(error = %e, "could not announce session revocation");
        }
    }

    /// Binds the session to a tenant (onboarding step 1 and completion).
    pub async fn bind_tenant(
        &self,
        key: &SessionKey,
        tenant: TenantId,
        onboarding_only: bool,
    ) -> Result<Session, SessionError> {
        let mut session = self.sessions.get(key).await?.ok_or(SessionError::Expired)?;
        session.tenant_id = Some(tenant);
        session.onboarding_only = onboarding_only;
        let remaining = session.expires_at - self.clock.now();
        let ttl = Duration::try_from(remaining).map_err(|_| SessionError::Expired)?;
        if !self.sessions.replace(key, &session, ttl).await? {
            return Err(SessionError::Expired);
        }
        Ok(session)
    }

    /// Issues a single-use WebSocket ticket for the session (`POST /api/v1/auth/ws-ticket`).
    pub async fn issue_ws_ticket(
        &self,
        current: &CurrentSession,
    ) -> Result<SecretString, StoreError> {
        let ticket = self.random.token::<32>();
        self.one_time
            .put(
                OneTimePurpose::WsTicket,
                &sha256_hex(ticket.expose_secret().as_bytes()),
                current.key.as_str(),
                self.settings.ws_ticket_ttl,
            )
            .await?;
        Ok(ticket)
    }

    /// Redeems a WebSocket ticket (once) for its session.
    pub async fn redeem_ws_ticket(&self, ticket: &str) -> Result<CurrentSession, SessionError> {
        if ticket.is_empty() || ticket.len() > 128 {
            return Err(SessionError::Expired);
        }
        let key = self
            .one_time
            .take(OneTimePurpose::WsTicket, &sha256_hex(ticket.as_bytes()))
            .await?
            .ok_or(SessionError::Expired)?;
        self.authenticate_key(SessionKey::from_hex(key)).await
    }
}

fn pending_context(state_digest: &str) -> EncryptionContext {
    EncryptionContext::purpose(&format!("login:{state_digest}"), "codeVerifier")
}

/// A post-login return path must be a local absolute path (no scheme, no `//host`).
fn is_safe_return_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && p.len() <= 512
        && !p.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    mod piggyback {
        //! `authenticate_limited`: the API rate-limit hit rides in the session read once the
        //! instance knows the session's user.

        use super::super::*;
        use crate::model::{Email, Role};
        use crate::ports::downstream::{MockAuthService, MockTenantService};
        use crate::ports::stores::{MockEventBus, MockOneTimeStore, MockSessionStore};
        use crate::ports::system::{MockCipher, MockClock, MockRandom};
        use std::sync::atomic::{AtomicUsize, Ordering};

        fn now() -> time::OffsetDateTime {
            time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
        }

        fn session(user: &str, last_activity: time::OffsetDateTime) -> Session {
            Session {
                user_id: UserId::parse(user).unwrap(),
                tenant_id: Some(TenantId::new_random()),
                role: Role::Admin,
                email: Email::parse("a@acme.example").unwrap(),
                name: "A".into(),
                onboarding_only: false,
                created_at: now(),
                expires_at: now() + time::Duration::hours(24),
                last_activity,
                refresh_token: None,
            }
        }

        const DECISION: RateDecision = RateDecision {
            allowed: true,
            limit: 100,
            remaining: 42,
            reset_after: Duration::from_secs(60),
        };

        fn policy() -> RatePolicy {
            RateLimits::default().api
        }

        fn rate_key(u: &UserId) -> String {
            format!("api:{u}")
        }

        fn authenticator(sessions: MockSessionStore) -> Authenticator {
            let mut clock = MockClock::new();
            clock.expect_now().returning(now);
            Authenticator::new(
                AuthSettings::new(
                    Url::parse("https://login.example/oauth/authorize").unwrap(),
                    "client".into(),
                    "https://portal.example/cb".into(),
                ),
                AuthPorts {
                    sessions: Arc::new(sessions),
                    one_time: Arc::new(MockOneTimeStore::new()),
                    auth_service: Arc::new(MockAuthService::new()),
                    tenants: Arc::new(MockTenantService::new()),
                    bus: Arc::new(MockEventBus::new()),
                    cipher: Arc::new(MockCipher::new()),
                    random: Arc::new(MockRandom::new()),
                    clock: Arc::new(clock),
                },
                b"csrf key",
            )
        }

        fn raw_id() -> String {
            SessionId::from_random([7; 32]).expose().to_owned()
        }

        #[tokio::test]
        async fn from_the_second_request_the_limit_hit_rides_with_the_session_read() {
            let mut store = MockSessionStore::new();
            store
                .expect_get()
                .times(1)
                .returning(|_| Ok(Some(session("u1", now()))));
            store
                .expect_get_and_hit()
                .withf(|_, key, p| key == "api:u1" && *p == RateLimits::default().api)
                .times(2)
                .returning(|_, _, _| Ok((Some(session("u1", now())), Some(DECISION))));
            let auth = authenticator(store);
            let (first, decision) = auth
                .authenticate_limited(&raw_id(), rate_key, policy())
                .await
                .unwrap();
            assert_eq!(first.session.user_id.as_str(), "u1");
            assert_eq!(
                decision, None,
                "first request: the caller applies the limit"
            );
            for _ in 0..2 {
                let (current, decision) = auth
                    .authenticate_limited(&raw_id(), rate_key, policy())
                    .await
                    .unwrap();
                assert_eq!(current.key, first.key);
                assert_eq!(decision, Some(DECISION));
            }
        }

        #[tokio::test]
        async fn a_vanished_session_is_refused_and_its_user_forgotten() {
            let mut store = MockSessionStore::new();
            let gets = Arc::new(AtomicUsize::new(0));
            let g = gets.clone();
            store.expect_get().times(2).returning(move |_| {
                // First read: live; after the logout elsewhere: gone.
                Ok((g.fetch_add(1, Ordering::SeqCst) == 0).then(|| session("u1", now())))
            });
            store
                .expect_get_and_hit()
                .times(1)
                .returning(|_, _, _| Ok((None, Some(DECISION))));
            let auth = authenticator(store);
            auth.authenticate_limited(&raw_id(), rate_key, policy())
                .await
                .unwrap();
            assert!(matches!(
                auth.authenticate_limited(&raw_id(), rate_key, policy())
                    .await,
                Err(SessionError::Expired)
            ));
            // Forgotten: the next request takes the plain path (the mock allows no more
            // get_and_hit calls).
            assert!(matches!(
                auth.authenticate_limited(&raw_id(), rate_key, policy())
                    .await,
                Err(SessionError::Expired)
            ));
            assert_eq!(gets.load(Ordering::SeqCst), 2);
        }

        #[tokio::test]
        async fn a_decision_for_another_user_is_discarded() {
            let mut store = MockSessionStore::new();
            store
                .expect_get()
                .times(1)
                .returning(|_| Ok(Some(session("u1", now()))));
            store
                .expect_get_and_hit()
                .times(1)
                .returning(|_, _, _| Ok((Some(session("u2", now())), Some(DECISION))));
            let auth = authenticator(store);
            auth.authenticate_limited(&raw_id(), rate_key, policy())
                .await
                .unwrap();
            let (current, decision) = auth
                .authenticate_limited(&raw_id(), rate_key, policy())
                .await
                .unwrap();
            assert_eq!(current.session.user_id.as_str(), "u2");
            assert_eq!(decision, None, "the caller must apply the limit itself");
        }

        #[tokio::test]
        async fn last_activity_is_written_once_per_interval_per_instance_even_when_reads_lag() {
            // The store keeps answering the old lastActivity (as concurrent requests that read
            // before the write landed would see): still only one write.
            let stale = now() - time::Duration::minutes(5);
            let mut store = MockSessionStore::new();
            store
                .expect_get()
                .times(1)
                .returning(move |_| Ok(Some(session("u1", stale))));
            store
                .expect_get_and_hit()
                .times(9)
                .returning(move |_, _, _| Ok((Some(session("u1", stale)), Some(DECISION))));
            store.expect_touch().times(1).returning(|_, _| Ok(()));
            let auth = authenticator(store);
            for _ in 0..10 {
                auth.authenticate_limited(&raw_id(), rate_key, policy())
                    .await
                    .unwrap();
            }
        }

        #[test]
        fn the_memo_is_bounded() {
            let memo = SessionMemo::default();
            let user = UserId::parse("u1").unwrap();
            for i in 0..(2 * MEMO_GENERATION + 10) {
                memo.remember(&SessionKey::from_hex(format!("{i:064x}")), &user);
            }
            assert!(memo.len() <= 2 * MEMO_GENERATION);
            let newest = SessionKey::from_hex(format!("{:064x}", 2 * MEMO_GENERATION + 9));
            assert_eq!(memo.user(&newest), Some(user));
            assert_eq!(
                memo.user(&SessionKey::from_hex(format!("{:064x}", 0))),
                None
            );
        }
    }

    #[test]
    fn return_paths_must_be_local() {
        assert!(is_safe_return_path("/dashboard"));
        assert!(is_safe_return_path("/history?page=2"));
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "dashboard",
            "/a\nb",
        ] {
            assert!(!is_safe_return_path(bad), "{bad}");
        }
    }
}
