//! System facilities: time, randomness, encryption, telemetry, health.

use crate::model::Ciphertext;
use crate::secret::SecretString;
use async_trait::async_trait;
use std::time::Duration;
use time::OffsetDateTime;

/// Wall-clock time. Tests substitute a controllable clock.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A cryptographically secure random source.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Random: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// Helpers over any [`Random`].
pub trait RandomExt {
    /// `N` random bytes.
    fn bytes<const N: usize>(&self) -> [u8; N];
    /// A random token: `N` bytes, base64url.
    fn token<const N: usize>(&self) -> SecretString;
    /// A random token: `N` bytes, lowercase hex.
    fn hex_token<const N: usize>(&self) -> SecretString;
    /// A random UUID v4.
    fn uuid(&self) -> uuid::Uuid;
}

impl<R: Random + ?Sized> RandomExt for R {
    fn bytes<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }
    fn token<const N: usize>(&self) -> SecretString {
        SecretString::from(crate::crypto::b64url(&self.bytes::<N>()))
    }
    fn hex_token<const N: usize>(&self) -> SecretString {
        SecretString::from(hex::encode(self.bytes::<N>()))
    }
    fn uuid(&self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.bytes::<16>()).into_uuid()
    }
}

/// What a ciphertext is bound to: decrypting it under any other context fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionContext {
    /// The owner: `tenant:{id}` or `user:{id}`.
    pub scope: String,
    /// The field: `genesys.clientSecret`, `whatsapp.systemUserToken`, ...
    pub field: &'static str,
}

impl EncryptionContext {
    /// A tenant's field.
    pub fn tenant(tenant: crate::model::TenantId, field: &'static str) -> Self {
        Self {
            scope: format!("tenant:{tenant}"),
            field,
        }
    }
    /// A user's field.
    pub fn user(user: &crate::model::UserId, field: &'static str) -> Self {
        Self {
            scope: format!("user:{user}"),
            field,
        }
    }
    /// A purpose-scoped field not tied to a tenant or user (e.g. a pending login).
    pub fn purpose(scope: &str, field: &'static str) -> Self {
        Self {
            scope: scope.to_owned(),
            field,
        }
    }
    /// The associated data authenticated with the ciphertext.
    pub fn aad(&self) -> Vec<u8> {
        format!("{}\u{0}{}", self.scope, self.field).into_bytes()
    }
}

/// Why decryption failed. Deliberately vague: no oracle for attackers.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    /// Not of the `v1.<kid>.<data>` shape.
    #[error("malformed ciphertext")]
    Malformed,
    /// Encrypted under a key this instance does not have.
    #[error("unknown key id")]
    UnknownKey,
    /// Tampered, moved to another context, or wrong key.
    #[error("ciphertext failed authentication")]
    Rejected,
}

/// Authenticated encryption of secrets at rest (AES-256-GCM, decisions §5).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Cipher: Send + Sync {
    /// Encrypts under the current key with a fresh random nonce.
    fn encrypt(&self, plaintext: &SecretString, context: &EncryptionContext) -> Ciphertext;
    /// Decrypts; fails if the ciphertext, its context or its key does not match.
    fn decrypt(
        &self,
        ciphertext: &Ciphertext,
        context: &EncryptionContext,
    ) -> Result<SecretString, CipherError>;
}

/// The outcome of a cache lookup, for `portal_cache_hits_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Fresh entry served.
    Hit,
    /// No usable entry: fetched.
    Miss,
    /// Source failed: a stale entry served.
    Stale,
}

impl CacheResult {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Stale => "stale",
        }
    }
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls are refused without being made.
    Open,
    /// A few trial calls are let through.
    HalfOpen,
}

impl CircuitState {
    /// Name for health output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// Business and operational counters the domain reports. Every method has a no-op default,
/// so a recorder implements only what it exports.
pub trait Telemetry: Send + Sync {
    /// A cache lookup ended (`portal_cache_hits_total{cache_type, result}`).
    fn cache_lookup(&self, _cache: crate::ports::stores::CacheKind, _result: CacheResult) {}
    /// An onboarding completed (`portal_onboarding_completions_total{status}`).
    fn onboarding_completed(&self, _status: &'static str) {}
    /// A downstream call ended.
    fn downstream_call(
        &self,
        _service: &'static str,
        _operation: &'static str,
        _outcome: &'static str,
        _elapsed: Duration,
    ) {
    }
    /// A circuit breaker changed state.
    fn circuit_state(&self, _service: &'static str, _state: CircuitState) {}
    /// A request was refused by a rate limit.
    fn rate_limited(&self, _scope: &'static str) {}
    /// An HTTP request finished (`portal_api_latency_seconds{method, path, status}`). `route`
    /// is the route template (`/api/v1/conversations/{conversationId}`) or `unmatched`, never
    /// the raw path.
    fn http_request(&self, _method: &str, _route: &str, _status: u16, _elapsed: Duration) {}
    /// A sign-in on this instance created a session (`portal_active_sessions_total`).
    fn session_started(&self) {}
    /// A sign-out on this instance ended a session.
    fn session_ended(&self) {}
    /// An audit entry could not be stored (store down, queue full) and went to the log with
    /// `audit=true` instead (`portal_audit_fallback_total{reason}`).
    fn audit_fallback(&self, _reason: &'static str) {}
    /// The recorder's exposition for `/metrics` in `format`; `None` when it exports nothing.
    fn render(&self, _format: MetricsFormat) -> Option<String> {
        None
    }
}

/// The exposition formats `/metrics` answers in (chosen by the scraper's `Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), what `promtool check
    /// metrics` and scrapers that do not ask for OpenMetrics read.
    PrometheusText,
}

/// Telemetry that records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopTelemetry;

impl Telemetry for NoopTelemetry {}

/// The result of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthStatus {
    /// Whether the dependency answered.
    pub ok: bool,
    /// How long it took to answer.
    pub latency: Duration,
    /// A short reason when not ok.
    pub detail: Option<String>,
}

/// A dependency that can report its health (`/health`, `/readyz`).
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// The dependency's name in `/health` (`redis`, `authService`, ...).
    fn name(&self) -> &'static str;
    /// Whether `/readyz` depends on it.
    fn required_for_readiness(&self) -> bool {
        false
    }
    /// Checks the dependency.
    async fn check(&self) -> HealthStatus;
}
