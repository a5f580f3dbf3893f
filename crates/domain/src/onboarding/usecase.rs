//! The onboarding use case: the five steps, driven by the API layer.
//!
//! Every mutation is load → check the step → (call downstream) → conditional save with the
//! version read, so two tabs never lose an update: the second writer gets
//! [`OnboardingError::Conflict`] with the current state. Every save resets the 1-hour TTL.
//!
//! # Completion and its retries
//! `complete` moves through persisted phases, each of which a retry resumes from:
//! 1. `Validated` (passed) → the webhook secret and verify token are generated **once**,
//!    encrypted, and saved as `Completing` *before* the Tenant Service is called.
//! 2. `Completing` → `TenantService::update` (an idempotent PUT, the same body every time:
//!    even `onboardedAt` is fixed in the state) → the state is replaced by `Completed`, a
//!    receipt holding only the sealed webhook configuration (no integration credential).
//! 3. `Completed` → the session is bound to the now active tenant and the response is built
//!    from the receipt.
//!
//! A failure at any point (Tenant Service, receipt write, session bind) leaves a phase from
//! which a retried `complete` returns the same webhook secret; no phase creates a tenant. The
//! receipt expires with the usual TTL (1 hour after completion); instead of deleting the state
//! at once (spec §6.6), this keeps a retry answerable. `status` treats a receipt as "no active
//! onboarding" (404), as if it had been deleted.

use super::input::{FieldError, GenesysCredentials, WhatsAppCredentials};
use super::state::{
    CheckResult, CheckStatus, GenesysSetup, OnboardingState, OrganizationDetails, Progress,
    SealedWebhooks, StepOutOfOrder, ValidationRecord, WhatsAppSetup,
};
use crate::auth::{AccessDenied, Authenticator, Capability, CurrentSession, SessionError};
use crate::error::StoreError;
use crate::model::{Ciphertext, NewTenant, TenantId, TenantStatus, TenantUpdate, UserId};
use crate::model::{GenesysConfig, WebhookConfig, WhatsAppConfig};
use crate::ports::downstream::{
    GenesysCloud, GenesysError, TenantService, TenantServiceError, WhatsApp, WhatsAppError,
};
use crate::ports::stores::{
    Lock, OnboardingStore, RateLimiter, RatePolicy, SaveOutcome, Versioned,
};
use crate::ports::system::{Cipher, Clock, EncryptionContext, Random, RandomExt, Telemetry};
use crate::secret::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// Encryption field names (the second half of the associated data).
pub mod fields {
    /// Genesys client secret.
    pub const GENESYS_CLIENT_SECRET: &str = "genesys.clientSecret";
    /// WhatsApp system-user token.
    pub const WHATSAPP_TOKEN: &str = "whatsapp.systemUserToken";
    /// Webhook signing secret.
    pub const WEBHOOK_SECRET: &str = "webhooks.secret";
    /// Meta verify token.
    pub const WEBHOOK_VERIFY_TOKEN: &str = "webhooks.verifyToken";
}

/// Why a wizard request was refused. The API maps each variant to one status and code.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    /// Input or credentials refused (`VALIDATION_FAILED`, 400); the state is unchanged.
    #[error("validation failed")]
    Validation {
        /// One entry per refused field or integration.
        errors: Vec<FieldError>,
    },
    /// A step submitted before the previous one is done (`INVALID_STEP`, 400).
    #[error("must complete step {} first", current + 1)]
    InvalidStep {
        /// The last completed step (0 = none, 5 = completed).
        current: u8,
    },
    /// No wizard state: never started or expired after 1 hour (`SESSION_EXPIRED`, 400).
    #[error("onboarding session expired")]
    SessionExpired,
    /// Another request changed the wizard first (`CONFLICT`, 409), with what it holds now.
    #[error("the onboarding state changed concurrently")]
    Conflict {
        /// The state the other request saved.
        current: Box<OnboardingState>,
    },
    /// No active onboarding for this tenant (`NOT_FOUND`, 404).
    #[error("no active onboarding session")]
    NotFound,
    /// Too many failed credential checks (429).
    #[error("too many failed attempts")]
    RateLimited {
        /// When the next attempt may be made.
        retry_after: Duration,
    },
    /// The request names a tenant that is not the session's (`TENANT_MISMATCH`, 403).
    #[error("tenant does not match the session")]
    TenantIsolation,
    /// The login session ended (logout elsewhere) before it could be bound to the tenant
    /// (`SESSION_EXPIRED`, 401: sign in again; the wizard state is kept).
    #[error("login session ended")]
    SignedOut,
    /// The session may not onboard (`FORBIDDEN`, 403).
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    /// A downstream service failed or refused (`SERVICE_UNAVAILABLE`, 503). The reason is for
    /// logs only.
    #[error("{service} unavailable: {reason}")]
    Unavailable {
        /// `tenantService`, `genesys`, `whatsapp`.
        service: &'static str,
        /// Internal reason (never a credential).
        reason: String,
    },
    /// The store failed (`SERVICE_UNAVAILABLE`, 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<StepOutOfOrder> for OnboardingError {
    fn from(e: StepOutOfOrder) -> Self {
        OnboardingError::InvalidStep { current: e.current }
    }
}

impl From<SessionError> for OnboardingError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Expired => OnboardingError::SignedOut,
            SessionError::Store(s) => OnboardingError::Store(s),
        }
    }
}

/// Maps a Tenant Service error. `echo_reason` is false when the request carried secrets: a
/// refusal message could quote the request, so it is not kept.
fn tenant_failure(e: TenantServiceError, echo_reason: bool) -> OnboardingError {
    let reason = match e {
        TenantServiceError::NotFound => return OnboardingError::NotFound,
        TenantServiceError::Rejected(msg) if echo_reason => format!("rejected: {msg}"),
        TenantServiceError::Rejected(_) => "rejected the request".to_owned(),
        TenantServiceError::Failure(f) => f.to_string(),
    };
    OnboardingError::Unavailable {
        service: "tenantService",
        reason,
    }
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
}

/// How long one step 1 may hold the per-user creation lock (a crashed holder frees it then).
const CREATE_LOCK_TTL: Duration = Duration::from_secs(15);
/// How long a second tab waits for the first one's tenant creation.
const CREATE_LOCK_WAIT: Duration = Duration::from_secs(5);

/// The onboarding wizard use case (spec §6, decisions §5).
pub struct Onboarding {
    ports: OnboardingPorts,
    settings: OnboardingSettings,
}

impl std::fmt::Debug for Onboarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Onboarding")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A finished onboarding: the tenant is active, and these are the webhooks its administrator
/// configures at Genesys and Meta (the same values on every retried completion).
#[derive(Debug)]
pub struct Completion {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its status now: active.
    pub status: TenantStatus,
    /// Where Genesys and Meta post, the shared webhook secret and Meta's verify token.
    pub webhooks: WebhookConfig,
}

/// How one credential check ended.
enum Check<T> {
    Passed(T),
    /// The credentials were refused: counts against the failed-attempt limit.
    Refused(FieldError),
    /// The check could not be made (timeout, outage): does not count.
    Unreachable(String),
}

impl Onboarding {
    /// Builds the use case.
    pub fn new(ports: OnboardingPorts, settings: OnboardingSettings) -> Self {
        Self { ports, settings }
    }

    // ---- step 1 -------------------------------------------------------------------------

    /// Step 1: records the organisation and creates the tenant, or updates the user's
    /// existing one (the session's, else the Tenant Service's for this user). Resets any
    /// later step. Binds the session to the tenant.
    pub async fn step1(
        &self,
        current: &CurrentSession,
        details: OrganizationDetails,
    ) -> Result<OnboardingState, OnboardingError> {
        let session_tenant = current.authorize(Capability::Onboard)?;
        let user = &current.session.user_id;
        // A user without a tenant may have two tabs racing here: only one may create it. The
        // other waits for the lock, then finds the tenant through `by_user` and updates it.
        let creation_lock = match session_tenant {
            Some(_) => None,
            None => Some(self.creation_lock(user).await?),
        };
        let result = self.step1_locked(current, session_tenant, details).await;
        if let Some((name, token)) = creation_lock
            && let Err(e) = self.ports.lock.release(&name, &token).await
        {
            tracing::warn!(error = %e, "could not release the tenant-creation lock");
        }
        result
    }

    async fn creation_lock(
        &self,
        user: &UserId,
    ) -> Result<(String, crate::ports::stores::LockToken), OnboardingError> {
        let name = format!("onboarding:create:{user}");
        let deadline = tokio::time::Instant::now() + CREATE_LOCK_WAIT;
        loop {
            if let Some(token) = self.ports.lock.try_acquire(&name, CREATE_LOCK_TTL).await? {
                return Ok((name, token));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    "another request is still creating this user's tenant".into(),
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn step1_locked(
        &self,
        current: &CurrentSession,
        session_tenant: Option<TenantId>,
        details: OrganizationDetails,
    ) -> Result<OnboardingState, OnboardingError> {
        let user = &current.session.user_id;
        let existing = match session_tenant {
            Some(t) => Some(t),
            None => self
                .ports
                .tenants
                .by_user(user)
                .await
                .map_err(|e| tenant_failure(e, true))?
                .map(|t| t.id),
        };
        let tenant = match existing {
            Some(id) => {
                let update = TenantUpdate {
                    company_name: Some(details.company_name.to_string()),
                    region: Some(details.region),
                    contact_email: Some(details.contact_email.clone()),
                    ..TenantUpdate::default()
                };
                self.ports
                    .tenants
                    .update(id, &update)
                    .await
                    .map_err(|e| tenant_failure(e, true))?
            }
            None => {
                let new = NewTenant {
                    company_name: details.company_name.to_string(),
                    region: details.region,
                    contact_email: details.contact_email.clone(),
                    created_by: user.clone(),
                };
                let created = self
                    .ports
                    .tenants
                    .create(&new)
                    .await
                    .map_err(|e| tenant_failure(e, true))?;
                tracing::info!(tenant_id = %created.id, user_id = %user, "preliminary tenant created");
                created
            }
        };
        let tenant_id = tenant.id;

        let now = self.ports.clock.now();
        let state = match self.ports.store.load(tenant_id).await? {
            Some(Versioned { version, value }) => {
                let state = OnboardingState {
                    organization: details,
                    progress: Progress::Organization,
                    last_updated: now,
                    ..value
                };
                self.save(&state, Some(version)).await?;
                state
            }
            None => {
                let state = OnboardingState {
                    tenant_id,
                    started_by: user.clone(),
                    organization: details,
                    progress: Progress::Organization,
                    created_at: now,
                    last_updated: now,
                };
                self.save(&state, None).await?;
                state
            }
        };

        if current.session.tenant_id != Some(tenant_id) {
            let onboarding_only = tenant.status != TenantStatus::Active;
            self.ports
                .authenticator
                .bind_tenant(&current.key, tenant_id, onboarding_only)
                .await?;
        }
        tracing::info!(tenant_id = %tenant_id, "onboarding step 1 completed");
        Ok(state)
    }

    // ---- step 2 -------------------------------------------------------------------------

    /// Step 2: checks the Genesys credentials with a client-credentials grant and records
    /// them (secret encrypted). Resets steps 3-5. Refused credentials leave the state as it
    /// was and count as a failed attempt.
    pub async fn step2(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
        credentials: GenesysCredentials,
    ) -> Result<OnboardingState, OnboardingError> {
        let tenant = self.wizard_tenant(current, requested)?;
        let loaded = self.load(tenant).await?;
        loaded.value.progress.check_genesys_allowed()?;
        let key = self.limit_key(tenant);
        self.check_limit(&key).await?;

        let check = self.check_genesys_token(&credentials).await;
        self.settle(&key, &check).await;
        match check {
            Check::Passed(()) => {}
            Check::Refused(e) => return Err(OnboardingError::Validation { errors: vec![e] }),
            Check::Unreachable(reason) => {
                return Err(OnboardingError::Unavailable {
                    service: "genesys",
                    reason,
                });
            }
        }

        let now = self.ports.clock.now();
        let setup = GenesysSetup {
            client_id: credentials.client_id.as_str().to_owned(),
            client_secret: self.encrypt(
                tenant,
                fields::GENESYS_CLIENT_SECRET,
                credentials.client_secret.secret(),
            ),
            region: credentials.region,
            validated_at: now,
        };
        let mut state = loaded.value;
        state.progress = state.progress.submit_genesys(setup)?;
        state.last_updated = now;
        self.save(&state, Some(loaded.version)).await?;
        tracing::info!(tenant_id = %tenant, region = %credentials.region, "onboarding step 2 completed");
        Ok(state)
    }

    // ---- step 3 -------------------------------------------------------------------------

    /// Step 3: checks the WhatsApp token against the phone number and records them (token
    /// encrypted) with the display number. Resets steps 4-5.
    pub async fn step3(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
        credentials: WhatsAppCredentials,
    ) -> Result<OnboardingState, OnboardingError> {
        let tenant = self.wizard_tenant(current, requested)?;
        let loaded = self.load(tenant).await?;
        loaded.value.progress.check_whatsapp_allowed()?;
        let key = self.limit_key(tenant);
        self.check_limit(&key).await?;

        let check = self
            .check_whatsapp(
                credentials.phone_number_id.as_str(),
                credentials.system_user_token.secret(),
            )
            .await;
        self.settle(&key, &check).await;
        let phone_number = match check {
            Check::Passed(number) => number,
            Check::Refused(e) => return Err(OnboardingError::Validation { errors: vec![e] }),
            Check::Unreachable(reason) => {
                return Err(OnboardingError::Unavailable {
                    service: "whatsapp",
                    reason,
                });
            }
        };

        let now = self.ports.clock.now();
        let setup = WhatsAppSetup {
            phone_number_id: credentials.phone_number_id.as_str().to_owned(),
            system_user_token: self.encrypt(
                tenant,
                fields::WHATSAPP_TOKEN,
                credentials.system_user_token.secret(),
            ),
            phone_number: Some(phone_number),
            validated_at: now,
        };
        let mut state = loaded.value;
        state.progress = state.progress.submit_whatsapp(setup)?;
        state.last_updated = now;
        self.save(&state, Some(loaded.version)).await?;
        tracing::info!(tenant_id = %tenant, phone_number_id = credentials.phone_number_id.as_str(), "onboarding step 3 completed");
        Ok(state)
    }

    // ---- step 4 -------------------------------------------------------------------------

    /// Step 4: tests both integrations in parallel with the stored credentials and records
    /// the result. A failed check is reported in the answer, not as an error.
    pub async fn validate(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
    ) -> Result<ValidationRecord, OnboardingError> {
        let tenant = self.wizard_tenant(current, requested)?;
        let loaded = self.load(tenant).await?;
        let (record, _) = self.run_validation(tenant, loaded).await?;
        Ok(record)
    }

    /// Runs step 4 on `loaded` and saves the result; returns it with the new version.
    async fn run_validation(
        &self,
        tenant: TenantId,
        loaded: Versioned<OnboardingState>,
    ) -> Result<(ValidationRecord, u64), OnboardingError> {
        let (genesys, whatsapp) = loaded.value.progress.check_validation_allowed()?;
        let key = self.limit_key(tenant);
        self.check_limit(&key).await?;

        let record = self.integration_checks(tenant, genesys, whatsapp).await?;
        let mut state = loaded.value.clone();
        state.progress = state.progress.record_validation(record.clone())?;
        state.last_updated = record.checked_at;
        let version = self.save(&state, Some(loaded.version)).await?;
        tracing::info!(
            tenant_id = %tenant,
            genesys = ?record.genesys.status,
            whatsapp = ?record.whatsapp.status,
            "integration validation ran"
        );
        Ok((record, version))
    }

    /// Decrypts both credentials for the moment of use and runs both checks concurrently,
    /// each under its own deadline. Counts a refusal against the failed-attempt limit.
    async fn integration_checks(
        &self,
        tenant: TenantId,
        genesys: &GenesysSetup,
        whatsapp: &WhatsAppSetup,
    ) -> Result<ValidationRecord, OnboardingError> {
        let secret = self.decrypt(
            tenant,
            fields::GENESYS_CLIENT_SECRET,
            &genesys.client_secret,
        )?;
        let token = self.decrypt(tenant, fields::WHATSAPP_TOKEN, &whatsapp.system_user_token)?;
        let (g, w) = tokio::join!(
            self.check_genesys_org(genesys, &secret),
            self.check_whatsapp(&whatsapp.phone_number_id, &token),
        );
        drop((secret, token));
        let refused = matches!(g, Check::Refused(_)) || matches!(w, Check::Refused(_));
        if refused {
            self.record_failure(&self.limit_key(tenant)).await;
        }
        Ok(ValidationRecord {
            genesys: check_result(g, |name| format!("Connected to {name}")),
            whatsapp: check_result(w, |number| format!("Connected to {number}")),
            checked_at: self.ports.clock.now(),
        })
    }

    // ---- step 5 -------------------------------------------------------------------------

    /// Step 5: persists the configuration at the Tenant Service and activates the tenant.
    /// Safe to retry after any failure: see the module documentation.
    pub async fn complete(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
        base_url: &url::Url,
    ) -> Result<Completion, OnboardingError> {
        let tenant = self.wizard_tenant(current, requested)?;
        let mut loaded = self.load(tenant).await?;

        // 1. A passed validation of the current credentials, running it if there is none.
        let needs_validation = match &loaded.value.progress {
            Progress::WhatsApp { .. } => true,
            Progress::Validated { validation, .. } => !validation.passed(),
            Progress::Organization | Progress::Genesys { .. } => {
                return Err(StepOutOfOrder {
                    current: loaded.value.progress.current_step(),
                }
                .into());
            }
            Progress::Completing { .. } | Progress::Completed { .. } => false,
        };
        if needs_validation {
            let (record, version) = self.run_validation(tenant, loaded.clone()).await?;
            if !record.passed() {
                self.ports.telemetry.onboarding_completed("failure");
                let errors = [("genesys", &record.genesys), ("whatsapp", &record.whatsapp)]
                    .into_iter()
                    .filter(|(_, r)| !r.passed())
                    .map(|(f, r)| FieldError::new(f, r.message.clone()))
                    .collect();
                return Err(OnboardingError::Validation { errors });
            }
            loaded.value.progress = loaded.value.progress.record_validation(record.clone())?;
            loaded.value.last_updated = record.checked_at;
            loaded.version = version;
        }

        // 2. The webhook secrets, generated once and saved before anyone else sees them.
        if matches!(loaded.value.progress, Progress::Validated { .. }) {
            let now = self.ports.clock.now();
            let webhooks = self.generate_webhooks(tenant, base_url);
            let mut state = loaded.value.clone();
            state.progress = state.progress.begin_completion(webhooks, now)?;
            state.last_updated = now;
            loaded.version = self.save(&state, Some(loaded.version)).await?;
            loaded.value = state;
        }

        // 3. The Tenant Service, then the receipt.
        if let Progress::Completing { .. } = &loaded.value.progress {
            let update = self.final_update(&loaded.value, &current.session.user_id)?;
            self.ports
                .tenants
                .update(tenant, &update)
                .await
                .map_err(|e| tenant_failure(e, false))?;
            drop(update);
            tracing::info!(tenant_id = %tenant, status = "active", "tenant configuration persisted");
            let now = self.ports.clock.now();
            let mut state = loaded.value.clone();
            state.progress = state
                .progress
                .finish(current.session.user_id.clone(), now)?;
            state.last_updated = now;
            match self
                .ports
                .store
                .save(
                    tenant,
                    &state,
                    Some(loaded.version),
                    self.settings.state_ttl,
                )
                .await?
            {
                SaveOutcome::Saved(_) => {
                    self.ports.telemetry.onboarding_completed("success");
                    loaded.value = state;
                }
                // A concurrent completion of the same wizard got there first.
                SaveOutcome::Conflict(Some(other))
                    if matches!(other.value.progress, Progress::Completed { .. }) =>
                {
                    loaded = other;
                }
                SaveOutcome::Conflict(Some(other)) => {
                    return Err(OnboardingError::Conflict {
                        current: Box::new(other.value),
                    });
                }
                SaveOutcome::Conflict(None) => return Err(OnboardingError::SessionExpired),
            }
        }

        // 4. The session, and the answer from the receipt.
        let Progress::Completed { receipt } = &loaded.value.progress else {
            return Err(StepOutOfOrder {
                current: loaded.value.progress.current_step(),
            }
            .into());
        };
        if current.session.tenant_id != Some(tenant) || current.session.onboarding_only {
            self.ports
                .authenticator
                .bind_tenant(&current.key, tenant, false)
                .await?;
        }
        Ok(Completion {
            tenant_id: tenant,
            status: TenantStatus::Active,
            webhooks: self.open_webhooks(tenant, &receipt.webhooks)?,
        })
    }

    fn generate_webhooks(&self, tenant: TenantId, base_url: &url::Url) -> SealedWebhooks {
        let base = base_url.as_str().trim_end_matches('/');
        let secret = self.ports.random.hex_token::<32>();
        let verify_token = self.ports.random.hex_token::<16>();
        SealedWebhooks {
            genesys_url: format!("{base}/webhooks/genesys/{tenant}"),
            meta_url: format!("{base}/webhooks/meta/{tenant}"),
            secret: self.encrypt(tenant, fields::WEBHOOK_SECRET, &secret),
            verify_token: self.encrypt(tenant, fields::WEBHOOK_VERIFY_TOKEN, &verify_token),
        }
    }

    /// The webhook configuration with its secrets decrypted.
    fn open_webhooks(
        &self,
        tenant: TenantId,
        sealed: &SealedWebhooks,
    ) -> Result<WebhookConfig, OnboardingError> {
        Ok(WebhookConfig {
            genesys_url: sealed.genesys_url.clone(),
            meta_url: sealed.meta_url.clone(),
            secret: self.decrypt(tenant, fields::WEBHOOK_SECRET, &sealed.secret)?,
            verify_token: self.decrypt(
                tenant,
                fields::WEBHOOK_VERIFY_TOKEN,
                &sealed.verify_token,
            )?,
        })
    }

    /// The full configuration for the Tenant Service, secrets decrypted only into it.
    fn final_update(
        &self,
        state: &OnboardingState,
        user: &UserId,
    ) -> Result<TenantUpdate, OnboardingError> {
        let tenant = state.tenant_id;
        let Progress::Completing {
            genesys,
            whatsapp,
            webhooks,
            started_at,
            ..
        } = &state.progress
        else {
            return Err(StepOutOfOrder {
                current: state.progress.current_step(),
            }
            .into());
        };
        Ok(TenantUpdate {
            company_name: Some(state.organization.company_name.to_string()),
            region: Some(state.organization.region),
            contact_email: Some(state.organization.contact_email.clone()),
            genesys_config: Some(GenesysConfig {
                client_id: genesys.client_id.clone(),
                client_secret: self.decrypt(
                    tenant,
                    fields::GENESYS_CLIENT_SECRET,
                    &genesys.client_secret,
                )?,
                region: genesys.region,
            }),
            whatsapp_config: Some(WhatsAppConfig {
                phone_number_id: whatsapp.phone_number_id.clone(),
                system_user_token: self.decrypt(
                    tenant,
                    fields::WHATSAPP_TOKEN,
                    &whatsapp.system_user_token,
                )?,
                phone_number: whatsapp.phone_number.clone(),
            }),
            webhooks: Some(self.open_webhooks(tenant, webhooks)?),
            status: Some(TenantStatus::Active),
            onboarded_by: Some(user.clone()),
            onboarded_at: Some(*started_at),
        })
    }

    // ---- status -------------------------------------------------------------------------

    /// Resumable progress of `tenant`'s wizard, without secrets (§6.7).
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

    // ---- helpers ------------------------------------------------------------------------

    /// The tenant whose wizard the session may drive; refuses a request naming another.
    fn wizard_tenant(
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
            return Err(OnboardingError::TenantIsolation);
        }
        Ok(tenant)
    }

    async fn load(&self, tenant: TenantId) -> Result<Versioned<OnboardingState>, OnboardingError> {
        self.ports
            .store
            .load(tenant)
            .await?
            .ok_or(OnboardingError::SessionExpired)
    }

    /// Conditional save; every save restarts the TTL.
    async fn save(
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

    fn encrypt(&self, tenant: TenantId, field: &'static str, value: &SecretString) -> Ciphertext {
        self.ports
            .cipher
            .encrypt(value, &EncryptionContext::tenant(tenant, field))
    }

    fn decrypt(
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

    fn limit_key(&self, tenant: TenantId) -> String {
        format!("onboarding:{tenant}")
    }

    /// Refuses the attempt when the failed-attempt budget is spent (checks only).
    async fn check_limit(&self, key: &str) -> Result<(), OnboardingError> {
        let d = self
            .ports
            .limiter
            .hit(key, self.settings.failed_attempts, 0)
            .await?;
        if d.remaining == 0 {
            self.ports.telemetry.rate_limited("onboarding");
            return Err(OnboardingError::RateLimited {
                retry_after: d.reset_after,
            });
        }
        Ok(())
    }

    async fn settle<T>(&self, key: &str, check: &Check<T>) {
        if let Check::Refused(_) = check {
            self.record_failure(key).await;
        }
    }

    /// Best effort: the check before each attempt already fails closed on a store outage.
    async fn record_failure(&self, key: &str) {
        if let Err(e) = self
            .ports
            .limiter
            .hit(key, self.settings.failed_attempts, 1)
            .await
        {
            tracing::warn!(error = %e, "could not record a failed onboarding attempt");
        }
    }

    async fn check_genesys_token(&self, c: &GenesysCredentials) -> Check<()> {
        let call = self.ports.genesys.client_credentials(
            c.region,
            c.client_id.as_str(),
            c.client_secret.secret(),
        );
        match tokio::time::timeout(self.settings.check_timeout, call).await {
            Ok(Ok(_token)) => Check::Passed(()),
            Ok(Err(e)) => genesys_check_failure(e),
            Err(_) => Check::Unreachable("Genesys Cloud did not answer in time".into()),
        }
    }

    async fn check_genesys_org(&self, g: &GenesysSetup, secret: &SecretString) -> Check<String> {
        let call = async {
            let token = self
                .ports
                .genesys
                .client_credentials(g.region, &g.client_id, secret)
                .await?;
            self.ports
                .genesys
                .organization(g.region, &token.access_token)
                .await
        };
        match tokio::time::timeout(self.settings.check_timeout, call).await {
            Ok(Ok(org)) => Check::Passed(org.name),
            Ok(Err(e)) => genesys_check_failure(e),
            Err(_) => Check::Unreachable("Genesys Cloud did not answer in time".into()),
        }
    }

    async fn check_whatsapp(&self, phone_number_id: &str, token: &SecretString) -> Check<String> {
        let call = self.ports.whatsapp.phone_number(phone_number_id, token);
        match tokio::time::timeout(self.settings.check_timeout, call).await {
            Ok(Ok(info)) if info.id == phone_number_id => Check::Passed(info.display_phone_number),
            Ok(Ok(_)) | Ok(Err(WhatsAppError::NotFound)) => Check::Refused(FieldError::new(
                "phoneNumberId",
                "Phone number ID not found",
            )),
            Ok(Err(WhatsAppError::InvalidToken(_))) => Check::Refused(FieldError::new(
                "systemUserToken",
                "Meta refused the system-user token",
            )),
            Ok(Err(WhatsAppError::Forbidden(_))) => Check::Refused(FieldError::new(
                "systemUserToken",
                "Invalid access token or insufficient permissions",
            )),
            Ok(Err(WhatsAppError::Failure(f))) => {
                Check::Unreachable(format!("WhatsApp check failed: {f}"))
            }
            Err(_) => Check::Unreachable("Meta did not answer in time".into()),
        }
    }
}

fn genesys_check_failure<T>(e: GenesysError) -> Check<T> {
    match e {
        GenesysError::InvalidClient(_) => Check::Refused(FieldError::new(
            "clientSecret",
            "Genesys Cloud refused the client ID or secret",
        )),
        GenesysError::Forbidden(_) => Check::Refused(FieldError::new(
            "clientId",
            "The OAuth client lacks the permissions the integration needs",
        )),
        GenesysError::Failure(f) => Check::Unreachable(format!("Genesys check failed: {f}")),
    }
}

fn check_result(check: Check<String>, success: impl FnOnce(String) -> String) -> CheckResult {
    match check {
        Check::Passed(v) => CheckResult {
            status: CheckStatus::Success,
            message: success(v),
        },
        Check::Refused(e) => CheckResult {
            status: CheckStatus::Failed,
            message: e.message,
        },
        Check::Unreachable(reason) => CheckResult {
            status: CheckStatus::Failed,
            message: reason,
        },
    }
}
