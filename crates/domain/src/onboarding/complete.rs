//! Step 5: the configuration persisted at the Tenant Service, the tenant activated.
//!
//! # Completion and its retries
//! `complete` moves through persisted phases, each of which a retry resumes from:
//! 1. `Validated` (passed) → the webhook secret and verify token are generated **once**,
//!    encrypted, and saved as `Completing` *before* the Tenant Service is called.
//! 2. `Completing` → `TenantService::update` (an idempotent PUT, the same body every time:
//!    even `onboardedAt` is fixed in the state) → the state is replaced by `Completed`, a
//!    receipt holding only the sealed webhook configuration (no integration credential).
//! 3. `Completed` → the session is bound to the now active tenant and the answer is built
//!    from the receipt.
//!
//! A failure at any point (Tenant Service, receipt write, session bind) leaves a phase from
//! which a retried `complete` returns the same webhook secret; no phase creates a tenant. The
//! receipt expires with the usual TTL (1 hour after completion); instead of deleting the state
//! at once (spec §6.6), this keeps a retry answerable. `status` treats a receipt as "no active
//! onboarding" (404), as if it had been deleted.

use super::error::{OnboardingError, tenant_failure};
use super::input::FieldError;
use super::state::{OnboardingState, Progress, SealedWebhooks, StepOutOfOrder};
use super::usecase::{Onboarding, fields};
use crate::audit::AuditAction;
use crate::auth::CurrentSession;
use crate::model::{GenesysConfig, TenantId, TenantStatus, TenantUpdate, UserId};
use crate::model::{WebhookConfig, WhatsAppConfig};
use crate::ports::stores::{SaveOutcome, Versioned};
use crate::ports::system::RandomExt;

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

/// The wizard as loaded, with the version its next save must expect.
type Loaded = Versioned<OnboardingState>;

impl Onboarding {
    /// Step 5: persists the configuration at the Tenant Service and activates the tenant.
    /// Safe to retry after any failure: see the module documentation. Audited (never the
    /// webhook secrets).
    pub async fn complete(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
        base_url: &url::Url,
    ) -> Result<Completion, OnboardingError> {
        let result = self.completion(current, requested, base_url).await;
        self.audit_step(
            current,
            AuditAction::OnboardingCompleted,
            &result,
            |event, outcome| match outcome {
                Ok(done) => event.target(format!("tenant:{}", done.tenant_id)),
                Err(e) => event.detail("fields", e.fields()),
            },
        );
        result
    }

    async fn completion(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
        base_url: &url::Url,
    ) -> Result<Completion, OnboardingError> {
        let tenant = self.wizard_tenant(current, requested)?;
        let loaded = self.load(tenant).await?;
        let loaded = self.ensure_validated(tenant, loaded).await?;
        let loaded = self.seal_webhooks(tenant, loaded, base_url).await?;
        let loaded = self
            .persist_configuration(tenant, &current.session.user_id, loaded)
            .await?;
        let Progress::Completed { receipt } = &loaded.value.progress else {
            return Err(out_of_order(&loaded.value));
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

    /// Phase 1: a passed validation of the current credentials, running it if there is none.
    /// A failed one refuses the completion, naming each failed integration.
    async fn ensure_validated(
        &self,
        tenant: TenantId,
        mut loaded: Loaded,
    ) -> Result<Loaded, OnboardingError> {
        let needs_validation = match &loaded.value.progress {
            Progress::WhatsApp { .. } => true,
            Progress::Validated { validation, .. } => !validation.passed(),
            Progress::Organization | Progress::Genesys { .. } => {
                return Err(out_of_order(&loaded.value));
            }
            Progress::Completing { .. } | Progress::Completed { .. } => false,
        };
        if !needs_validation {
            return Ok(loaded);
        }
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
        loaded.value.last_updated = record.checked_at;
        loaded.value.progress = loaded.value.progress.record_validation(record)?;
        loaded.version = version;
        Ok(loaded)
    }

    /// Phase 2: the webhook secrets, generated once and saved before anyone else sees them.
    async fn seal_webhooks(
        &self,
        tenant: TenantId,
        loaded: Loaded,
        base_url: &url::Url,
    ) -> Result<Loaded, OnboardingError> {
        if !matches!(loaded.value.progress, Progress::Validated { .. }) {
            return Ok(loaded);
        }
        let now = self.ports.clock.now();
        let webhooks = self.generate_webhooks(tenant, base_url);
        let mut state = loaded.value;
        state.progress = state.progress.begin_completion(webhooks, now)?;
        state.last_updated = now;
        let version = self.save(&state, Some(loaded.version)).await?;
        Ok(Versioned {
            version,
            value: state,
        })
    }

    /// Phase 3: the Tenant Service gets the configuration, then the state becomes the receipt.
    /// A concurrent completion that wrote its receipt first is as good as this one.
    async fn persist_configuration(
        &self,
        tenant: TenantId,
        user: &UserId,
        loaded: Loaded,
    ) -> Result<Loaded, OnboardingError> {
        if !matches!(loaded.value.progress, Progress::Completing { .. }) {
            return Ok(loaded);
        }
        let update = self.final_update(&loaded.value, user)?;
        self.ports
            .tenants
            .update(tenant, &update)
            .await
            .map_err(|e| tenant_failure(e, false))?;
        drop(update);
        tracing::info!(tenant_id = %tenant, tenant_status = "active", "tenant configuration persisted");
        let now = self.ports.clock.now();
        let mut state = loaded.value;
        state.progress = state.progress.finish(user.clone(), now)?;
        state.last_updated = now;
        let outcome = self
            .ports
            .store
            .save(
                tenant,
                &state,
                Some(loaded.version),
                self.settings.state_ttl,
            )
            .await?;
        match outcome {
            SaveOutcome::Saved(version) => {
                self.ports.telemetry.onboarding_completed("success");
                Ok(Versioned {
                    version,
                    value: state,
                })
            }
            SaveOutcome::Conflict(Some(other))
                if matches!(other.value.progress, Progress::Completed { .. }) =>
            {
                Ok(other)
            }
            SaveOutcome::Conflict(Some(other)) => Err(OnboardingError::Conflict {
                current: Box::new(other.value),
            }),
            SaveOutcome::Conflict(None) => Err(OnboardingError::SessionExpired),
        }
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
}

/// The wizard is not at a step from which completion can go on.
fn out_of_order(state: &OnboardingState) -> OnboardingError {
    StepOutOfOrder {
        current: state.progress.current_step(),
    }
    .into()
}
