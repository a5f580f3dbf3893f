//! Step 4: both integrations tested in parallel with the stored credentials, the result
//! recorded. A failed check is part of the answer, not an error.

use super::credentials::Check;
use super::error::OnboardingError;
use super::state::{
    CheckResult, CheckStatus, GenesysSetup, OnboardingState, ValidationRecord, WhatsAppSetup,
};
use super::usecase::{Onboarding, fields};
use crate::audit::{AuditAction, AuditEvent, AuditOutcome};
use crate::auth::CurrentSession;
use crate::model::TenantId;
use crate::ports::stores::Versioned;

impl Onboarding {
    /// Step 4: tests both integrations in parallel with the stored credentials and records
    /// the result. A failed check is reported in the answer, not as an error. Audited with
    /// each integration's result.
    pub async fn validate(
        &self,
        current: &CurrentSession,
        requested: Option<TenantId>,
    ) -> Result<ValidationRecord, OnboardingError> {
        let result = async {
            let tenant = self.wizard_tenant(current, requested)?;
            let loaded = self.load(tenant).await?;
            let (record, _) = self.run_validation(tenant, loaded).await?;
            Ok(record)
        }
        .await;
        match &result {
            Ok(record) => {
                let outcome = if record.passed() {
                    AuditOutcome::Success
                } else {
                    AuditOutcome::Failure
                };
                self.ports.auditor.record(
                    AuditEvent::by(current, AuditAction::OnboardingValidation, outcome)
                        .detail("genesys", status(record.genesys.status))
                        .detail("whatsapp", status(record.whatsapp.status)),
                );
            }
            Err(_) => self.audit_step(
                current,
                AuditAction::OnboardingValidation,
                &result,
                |e, _| e,
            ),
        }
        result
    }

    /// Runs step 4 on `loaded` and saves the result; returns it with the new version.
    pub(super) async fn run_validation(
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
            genesys = record.genesys.status.as_str(),
            whatsapp = record.whatsapp.status.as_str(),
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

/// A check's verdict as the trail names it.
fn status(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Success => "success",
        CheckStatus::Failed => "failed",
    }
}
