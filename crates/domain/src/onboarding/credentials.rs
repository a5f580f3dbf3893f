//! Steps 2 and 3: Genesys and WhatsApp credentials, each checked with the integration before
//! it is recorded (secret encrypted); and the credential checks step 4 runs again.

use super::error::OnboardingError;
use super::input::{FieldError, GenesysCredentials, WhatsAppCredentials};
use super::state::{GenesysSetup, OnboardingState, WhatsAppSetup};
use super::usecase::{Onboarding, fields};
use crate::audit::{AuditAction, AuditEvent};
use crate::auth::CurrentSession;
use crate::model::TenantId;
use crate::ports::downstream::{GenesysError, WhatsAppError};
use crate::secret::SecretString;

/// How one credential check ended.
pub(super) enum Check<T> {
    Passed(T),
    /// The credentials were refused: counts against the failed-attempt limit.
    Refused(FieldError),
    /// The check could not be made (timeout, outage): does not count.
    Unreachable(String),
}

impl Onboarding {
    /// Step 2: checks the Genesys credentials with a client-credentials grant and records
    /// them (secret encrypted). Resets steps 3-5. Refused credentials leave the state as it
    /// was and count as a failed attempt. Audited with the check's result and the fields that
    /// changed.
    pub async fn step2(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
        credentials: GenesysCredentials,
    ) -> Result<OnboardingState, OnboardingError> {
        let result = self.genesys_step(current, requested, credentials).await;
        self.audit_step(
            current,
            AuditAction::OnboardingGenesys,
            &result,
            audit_check,
        );
        result.map(|(state, _)| state)
    }

    async fn genesys_step(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
        credentials: GenesysCredentials,
    ) -> Result<(OnboardingState, Vec<&'static str>), OnboardingError> {
        let tenant = self.wizard_tenant(current, requested)?;
        let loaded = self.load(tenant).await?;
        loaded.value.progress.check_genesys_allowed()?;
        let key = self.limit_key(tenant);
        self.check_limit(&key).await?;

        let check = self.check_genesys_token(&credentials).await;
        self.settle(&key, check, "genesys").await?;

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
        let changed = match loaded.value.progress.genesys() {
            None => vec!["clientId", "clientSecret", "region"],
            Some(old) => [
                ("clientId", old.client_id != setup.client_id),
                (
                    "clientSecret",
                    self.secret_changed(
                        tenant,
                        fields::GENESYS_CLIENT_SECRET,
                        &old.client_secret,
                        credentials.client_secret.secret(),
                    ),
                ),
                ("region", old.region != setup.region),
            ]
            .into_iter()
            .filter_map(|(name, changed)| changed.then_some(name))
            .collect(),
        };
        let mut state = loaded.value;
        state.progress = state.progress.submit_genesys(setup)?;
        state.last_updated = now;
        self.save(&state, Some(loaded.version)).await?;
        tracing::info!(tenant_id = %tenant, region = %credentials.region, "onboarding step 2 completed");
        Ok((state, changed))
    }

    /// Step 3: checks the WhatsApp token against the phone number and records them (token
    /// encrypted) with the display number. Resets steps 4-5. Audited like step 2.
    pub async fn step3(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
        credentials: WhatsAppCredentials,
    ) -> Result<OnboardingState, OnboardingError> {
        let result = self.whatsapp_step(current, requested, credentials).await;
        self.audit_step(
            current,
            AuditAction::OnboardingWhatsApp,
            &result,
            audit_check,
        );
        result.map(|(state, _)| state)
    }

    async fn whatsapp_step(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
        credentials: WhatsAppCredentials,
    ) -> Result<(OnboardingState, Vec<&'static str>), OnboardingError> {
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
        let phone_number = self.settle(&key, check, "whatsapp").await?;

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
        let changed = match loaded.value.progress.whatsapp() {
            None => vec!["phoneNumberId", "systemUserToken"],
            Some(old) => [
                (
                    "phoneNumberId",
                    old.phone_number_id != setup.phone_number_id,
                ),
                (
                    "systemUserToken",
                    self.secret_changed(
                        tenant,
                        fields::WHATSAPP_TOKEN,
                        &old.system_user_token,
                        credentials.system_user_token.secret(),
                    ),
                ),
            ]
            .into_iter()
            .filter_map(|(name, changed)| changed.then_some(name))
            .collect(),
        };
        let mut state = loaded.value;
        state.progress = state.progress.submit_whatsapp(setup)?;
        state.last_updated = now;
        self.save(&state, Some(loaded.version)).await?;
        tracing::info!(tenant_id = %tenant, phone_number_id = credentials.phone_number_id.as_str(), "onboarding step 3 completed");
        Ok((state, changed))
    }

    /// A step's check as its outcome: refused credentials count against the failed-attempt
    /// limit (`key`) and are a validation error; an unreachable `service` is unavailable.
    async fn settle<T>(
        &self,
        key: &str,
        check: Check<T>,
        service: &'static str,
    ) -> Result<T, OnboardingError> {
        match check {
            Check::Passed(value) => Ok(value),
            Check::Refused(e) => {
                self.record_failure(key).await;
                Err(OnboardingError::Validation { errors: vec![e] })
            }
            Check::Unreachable(reason) => Err(OnboardingError::Unavailable { service, reason }),
        }
    }

    pub(super) async fn check_genesys_token(&self, c: &GenesysCredentials) -> Check<()> {
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

    pub(super) async fn check_genesys_org(
        &self,
        g: &GenesysSetup,
        secret: &SecretString,
    ) -> Check<String> {
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

    pub(super) async fn check_whatsapp(
        &self,
        phone_number_id: &str,
        token: &SecretString,
    ) -> Check<String> {
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

/// A credentials step's audit details: the check's result, and the fields that changed (on
/// success) or were refused (on failure).
fn audit_check(
    event: AuditEvent,
    outcome: Result<&(OnboardingState, Vec<&'static str>), &OnboardingError>,
) -> AuditEvent {
    match outcome {
        Ok((_, changed)) => event.detail("check", "passed").fields_changed(changed),
        Err(e) => match e.check() {
            Some(check) => event.detail("check", check).detail("fields", e.fields()),
            None => event,
        },
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
