//! The onboarding use case: its ports, settings, and what every step shares (whose wizard
//! it is, loading and saving the state, encrypting secrets, the failed-attempt limit).
//!
//! Every mutation is load → check the step → (call downstream) → conditional save with the
//! version read, so two tabs never lose an update: the second writer gets
//! [`OnboardingError::Conflict`] with the current state. Every save resets the 1-hour TTL.

use super::error::OnboardingError;
use super::state::{OnboardingState, Progress};
use crate::audit::{AuditAction, AuditEvent, AuditOutcome, Auditor};
use crate::auth::{Authenticator, Capability, CurrentSession};
use crate::error::StoreError;
use crate::model::{Ciphertext, TenantId};
use crate::ports::downstream::{GenesysCloud, TenantService, WhatsApp};
use crate::ports::stores::{
    Lock, OnboardingStore, RateLimiter, RatePolicy, SaveOutcome, Versioned,
};
use crate::ports::system::{Cipher, Clock, EncryptionContext, Random, Telemetry};
use crate::secret::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// Encryption field names (the second half of the associated data).
pub mod fields {
    /// Genesys client secret.
    pub const GENESYS_CLIENT_SECRET: &str = "genesys.clientSecret";
    /// WhatsApp system-user token.
    pub(crate) const WHATSAPP_TOKEN: &str = "whatsapp.systemUserToken";
    /// Webhook signing secret.
    pub const WEBHOOK_SECRET: &str = "webhooks.secret";
    /// Meta verify token.
    pub(crate) const WEBHOOK_VERIFY_TOKEN: &str = "webhooks.verifyToken";
}

/// Wizard settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnboardingSettings {
    /// Wizard state lifetime after its last update (1 hour).
    pub state_ttl: Duration,
    /// Deadline of each credential check (10 s).
    pub check_timeout: Duration,
    /// Failed credential checks allowed per tenant or user (5 per 15 minutes).
    pub failed_attempts: RatePolicy,
}

impl Default for OnboardingSettings {
    fn default() -> Self {
        Self {
            state_ttl: Duration::from_secs(3600),
            check_timeout: Duration::from_secs(10),
            failed_attempts: crate::auth::RateLimits::default().onboarding,
        }
    }
}

/// The ports the wizard uses.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct OnboardingPorts {
    /// Wizard state.
    pub store: Arc<dyn OnboardingStore>,
    /// Tenant Service.
    pub tenants: Arc<dyn TenantService>,
    /// Genesys Cloud (step 2, step 4).
    pub genesys: Arc<dyn GenesysCloud>,
    /// Meta WhatsApp (step 3, step 4).
    pub whatsapp: Arc<dyn WhatsApp>,
    /// Encrypts credentials and webhook secrets at rest.
    pub cipher: Arc<dyn Cipher>,
    /// Webhook secrets.
    pub random: Arc<dyn Random>,
    /// Timestamps.
    pub clock: Arc<dyn Clock>,
    /// Completion counter.
    pub telemetry: Arc<dyn Telemetry>,
    /// Failed-attempt limit.
    pub limiter: Arc<dyn RateLimiter>,
    /// Binds sessions to the tenant (step 1, completion).
    pub authenticator: Arc<Authenticator>,
    /// Serialises tenant creation per user: two tabs submitting step 1 at once for a user
    /// without a tenant must not create two tenants.
    pub lock: Arc<dyn Lock>,
    /// Each step and its outcome (which fields changed, never their values).
    pub auditor: Arc<Auditor>,
}

/// The onboarding wizard use case (spec §6, decisions §5).
pub struct Onboarding {
    pub(super) ports: OnboardingPorts,
    pub(super) settings: OnboardingSettings,
}

impl std::fmt::Debug for Onboarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Onboarding")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Onboarding {
    /// Builds the use case.
    pub fn new(ports: OnboardingPorts, settings: OnboardingSettings) -> Self {
        Self { ports, settings }
    }

    pub async fn status(
        &self,
        current: &CurrentSession,
        tenant: TenantId,
    ) -> Result<OnboardingState, OnboardingError> {
        let own = self
            .wizard_tenant(current, Some(tenant))
            .map_err(|e| match e {
                OnboardingError::InvalidStep { .. } => OnboardingError::NotFound,
                other => other,
            })?;
        match self.ports.store.load(own).await? {
            Some(v) if !matches!(v.value.progress, Progress::Completed { .. }) => Ok(v.value),
            _ => Err(OnboardingError::NotFound),
        }
    }

    /// The tenant whose wizard the session may drive; refuses a request naming another.
    pub(super) fn wizard_tenant(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
    ) -> Result<TenantId, OnboardingError> {
        let tenant = current
            .authorize(Capability::Onboard)?
            .ok_or(OnboardingError::InvalidStep { current: 0 })?;
        if let Some(requested) = requested
            && requested != tenant
        {
            tracing::warn!(
                security_event = "tenant_mismatch",
                tenant_id = %tenant,
                requested_tenant_id = %requested,
                user_id = %current.session.user_id,
                "onboarding request for another tenant refused"
            );
            self.ports.auditor.record(
                AuditEvent::by(
                    current,
                    AuditAction::TenantIsolationRefused,
                    AuditOutcome::Refused,
                )
                .target(format!("tenant:{requested}"))
                .reason("onboarding"),
            );
            return Err(OnboardingError::TenantIsolation);
        }
        Ok(tenant)
    }

    pub(super) async fn load(
        &self,
        tenant: TenantId,
    ) -> Result<Versioned<OnboardingState>, OnboardingError> {
        self.ports
            .store
            .load(tenant)
            .await?
            .ok_or(OnboardingError::SessionExpired)
    }

    /// Conditional save; every save restarts the TTL.
    pub(super) async fn save(
        &self,
        state: &OnboardingState,
        expected: Option<u64>,
    ) -> Result<u64, OnboardingError> {
        match self
            .ports
            .store
            .save(state.tenant_id, state, expected, self.settings.state_ttl)
            .await?
        {
            SaveOutcome::Saved(v) => Ok(v),
            SaveOutcome::Conflict(Some(other)) => Err(OnboardingError::Conflict {
                current: Box::new(other.value),
            }),
            SaveOutcome::Conflict(None) => Err(OnboardingError::SessionExpired),
        }
    }

    pub(super) fn encrypt(
        &self,
        tenant: TenantId,
        field: &'static str,
        value: &SecretString,
    ) -> Ciphertext {
        self.ports
            .cipher
            .encrypt(value, &EncryptionContext::tenant(tenant, field))
    }

    pub(super) fn decrypt(
        &self,
        tenant: TenantId,
        field: &'static str,
        value: &Ciphertext,
    ) -> Result<SecretString, OnboardingError> {
        self.ports
            .cipher
            .decrypt(value, &EncryptionContext::tenant(tenant, field))
            .map_err(|e| {
                tracing::error!(tenant_id = %tenant, field, error = %e, "stored onboarding secret unreadable");
                OnboardingError::Store(StoreError::Corrupt(format!("{field}: {e}")))
            })
    }

    /// Whether a stored secret differs from a submitted one (an unreadable one counts as
    /// changed). Compared in constant time; neither value leaves this function.
    pub(super) fn secret_changed(
        &self,
        tenant: TenantId,
        field: &'static str,
        stored: &Ciphertext,
        submitted: &SecretString,
    ) -> bool {
        use crate::secret::ExposeSecret;
        self.ports
            .cipher
            .decrypt(stored, &EncryptionContext::tenant(tenant, field))
            .map_or(true, |old| {
                !crate::crypto::constant_time_eq(
                    old.expose_secret().as_bytes(),
                    submitted.expose_secret().as_bytes(),
                )
            })
    }

    /// Records a step's outcome; `details` adds what the success or failure says.
    pub(super) fn audit_step<T>(
        &self,
        current: &CurrentSession,
        action: AuditAction,
        result: &Result<T, OnboardingError>,
        details: impl FnOnce(AuditEvent, Result<&T, &OnboardingError>) -> AuditEvent,
    ) {
        let event = match result {
            Ok(value) => details(
                AuditEvent::by(current, action, AuditOutcome::Success),
                Ok(value),
            ),
            Err(e) => {
                let outcome = match e {
                    OnboardingError::TenantIsolation
                    | OnboardingError::Forbidden(_)
                    | OnboardingError::RateLimited { .. } => AuditOutcome::Refused,
                    _ => AuditOutcome::Failure,
                };
                details(
                    AuditEvent::by(current, action, outcome).reason(e.reason()),
                    Err(e),
                )
            }
        };
        self.ports.auditor.record(event);
    }

    pub(super) fn limit_key(&self, tenant: TenantId) -> String {
        format!("onboarding:{tenant}")
    }

    /// Refuses the attempt when the failed-attempt budget is spent (checks only).
    pub(super) async fn check_limit(&self, key: &str) -> Result<(), OnboardingError> {
        let d = self
            .ports
            .limiter
            .hit(key, self.settings.failed_attempts, 0)
            .await?;
        if d.remaining == 0 {
            self.ports.telemetry.rate_limited("onboarding");
            return Err(OnboardingError::RateLimited { decision: d });
        }
        Ok(())
    }

    /// Best effort: the check before each attempt already fails closed on a store outage.
    pub(super) async fn record_failure(&self, key: &str) {
        if let Err(e) = self
            .ports
            .limiter
            .hit(key, self.settings.failed_attempts, 1)
            .await
        {
            tracing::warn!(error = %e, "could not record a failed onboarding attempt");
        }
    }
}
