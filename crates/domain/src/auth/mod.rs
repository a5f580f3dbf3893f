//! Sign-in with Genesys Cloud (OAuth 2.0 code flow with PKCE), sessions, CSRF, roles and
//! WebSocket tickets (spec §5, decisions §4).
//!
//! The flow: [`Authenticator::begin_login`] stores a pending login under the SHA-256 of a
//! random `state`, bound to a pre-login cookie, and returns the authorize URL with the PKCE
//! challenge. [`Authenticator::complete_login`] consumes the state once, exchanges the code
//! (with the verifier) through the Auth Service port, fetches the profile, resolves the tenant
//! through the Tenant Service port and creates a session under a fresh ID. Every protected
//! request then goes through [`Authenticator::authenticate`].
//!
//! # Layout
//! - this file: [`Authenticator`] (the use case), its ports and settings, the rate limits.
//! - [`login`]: `begin_login` and `complete_login`, and their types and errors.
//! - [`session`]: resolving a request's session (with the piggybacked API rate-limit hit),
//!   refresh (single flight across instances, under a renewed lease), logout, binding a
//!   session to a tenant.
//! - [`manage`]: the user's sessions (listing, ending one, ending all), an admin ending a
//!   user's sessions, the per-user cap.
//! - `memo`: what the instance remembers of the sessions it has seen.
//! - [`authorization`]: capabilities by role and onboarding, [`CurrentSession`], CSRF.
//! - `tickets`: single-use WebSocket tickets.

use crate::audit::Auditor;
use crate::crypto::TokenDeriver;
use crate::ports::downstream::{AuthService, TenantService};
use crate::ports::stores::{EventBus, Lock, OneTimeStore, RatePolicy, SessionStore};
use crate::ports::system::{Cipher, Clock, Random};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

pub mod authorization;
pub mod login;
pub mod manage;
mod memo;
pub mod session;
mod tickets;

#[cfg(test)]
mod tests;

pub use authorization::{AccessDenied, Capability, CurrentSession};
pub use login::{CallbackError, CallbackParams, LoginStart, SignedIn};
pub use manage::{ManageError, SessionSummary};
pub use session::{RefreshError, SessionError};

use memo::SessionMemo;

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
    pub(crate) pending_login_ttl: Duration,
    /// Minimum interval between `lastActivity` writes (1 min).
    pub(crate) activity_write_interval: Duration,
    /// WebSocket ticket lifetime (30 s).
    pub ws_ticket_ttl: Duration,
    /// How long a refresh holds its session's refresh lock before it must renew it (5 s). The
    /// holder renews it every third of this while the Auth Service call runs, so a slow call
    /// keeps it; a holder that died frees it after this.
    pub refresh_lease: Duration,
    /// How long a refresh waits for another one of the same session (on any instance) before
    /// answering 503 (10 s).
    pub refresh_wait: Duration,
    /// A refresh asked for within this of the previous one returns the session that one left
    /// (10 s): tabs and instances refreshing together redeem the refresh token once.
    pub(crate) refresh_reuse: Duration,
    /// How often a waiting refresh looks again (50 ms).
    pub(crate) refresh_poll: Duration,
    /// Live sessions per user (20): a sign-in beyond it ends the least recently active one.
    pub max_sessions_per_user: usize,
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
            refresh_lease: Duration::from_secs(5),
            refresh_wait: Duration::from_secs(10),
            refresh_reuse: Duration::from_secs(10),
            refresh_poll: Duration::from_millis(50),
            max_sessions_per_user: 20,
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

/// The sign-in and session use cases.
pub struct Authenticator {
    settings: AuthSettings,
    sessions: Arc<dyn SessionStore>,
    one_time: Arc<dyn OneTimeStore>,
    auth_service: Arc<dyn AuthService>,
    tenants: Arc<dyn TenantService>,
    bus: Arc<dyn EventBus>,
    lock: Arc<dyn Lock>,
    auditor: Arc<Auditor>,
    cipher: Arc<dyn Cipher>,
    random: Arc<dyn Random>,
    clock: Arc<dyn Clock>,
    /// Derives per-session CSRF tokens and public session handles; keyed by the cookie
    /// secret.
    csrf: TokenDeriver,
    /// Session key → user ID of sessions seen on this instance, so the API rate-limit hit can
    /// ride in the session read's round trip ([`Authenticator::authenticate_limited`]).
    memo: SessionMemo,
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
    /// The refresh lock (one Auth Service call per session across instances).
    pub lock: Arc<dyn Lock>,
    /// The audit trail.
    pub auditor: Arc<Auditor>,
    /// Cipher (refresh tokens, PKCE verifiers).
    pub cipher: Arc<dyn Cipher>,
    /// Randomness.
    pub random: Arc<dyn Random>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
}

/// Encryption field (second half of the associated data) of a session's refresh token.
const REFRESH_FIELD: &str = "refreshToken";

/// A `std` duration as a `time` one (saturating).
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
            lock: ports.lock,
            auditor: ports.auditor,
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
}
