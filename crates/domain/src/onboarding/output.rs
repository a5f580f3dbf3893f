//! The wizard's answers, shaped as the spec's response bodies (§6.2-§6.7) so the API layer
//! only serialises them.
//!
//! Only [`CompletionOutput`] carries secrets (the webhook secret and Meta verify token, which
//! the user must copy into Genesys and Meta): they are [`SecretString`]s, redacted in `Debug`,
//! and written out only by `Serialize`.

use super::state::{
    CheckStatus, CompanyName, OnboardingState, OrganizationDetails, ValidationRecord,
};
use crate::model::{Region, TenantId, TenantStatus};
use crate::secret::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use time::OffsetDateTime;

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// Step 1's `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSummary {
    /// Company name.
    pub company_name: CompanyName,
    /// Region.
    pub region: Region,
}

/// Answer to step 1 (§6.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step1Output {
    /// Always true.
    pub success: bool,
    /// The tenant created or updated.
    pub tenant_id: TenantId,
    /// 1.
    pub current_step: u8,
    /// 2.
    pub next_step: u8,
    /// What was recorded.
    pub data: OrganizationSummary,
}

/// Answer to step 2 (§6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step2Output {
    /// Always true.
    pub success: bool,
    /// Tenant.
    pub tenant_id: TenantId,
    /// 2.
    pub current_step: u8,
    /// 3.
    pub next_step: u8,
    /// Genesys accepted the credentials.
    pub validated: bool,
}

/// Answer to step 3 (§6.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step3Output {
    /// Always true.
    pub success: bool,
    /// Tenant.
    pub tenant_id: TenantId,
    /// 3.
    pub current_step: u8,
    /// 4.
    pub next_step: u8,
    /// Meta accepted the token for the number.
    pub validated: bool,
    /// The display phone number Meta reported.
    pub phone_number: Option<String>,
}

/// Per-integration details of step 4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationDetails {
    /// Genesys detail.
    pub genesys: String,
    /// WhatsApp detail.
    pub whatsapp: String,
}

/// Answer to step 4 (§6.5): each integration reported separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationOutput {
    /// `success` or `failed`.
    pub genesys: CheckStatus,
    /// `success` or `failed`.
    pub whatsapp: CheckStatus,
    /// Messages.
    pub details: ValidationDetails,
}

impl From<&ValidationRecord> for ValidationOutput {
    fn from(r: &ValidationRecord) -> Self {
        Self {
            genesys: r.genesys.status,
            whatsapp: r.whatsapp.status,
            details: ValidationDetails {
                genesys: r.genesys.message.clone(),
                whatsapp: r.whatsapp.message.clone(),
            },
        }
    }
}

/// Genesys webhook instructions.
#[derive(Debug, Clone, Serialize)]
pub struct GenesysWebhookOutput {
    /// Where Genesys should post.
    pub url: String,
    /// Where to configure it.
    pub instructions: &'static str,
}

/// Meta webhook instructions.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaWebhookOutput {
    /// Where Meta should post.
    pub url: String,
    /// The verify token Meta echoes during subscription.
    #[serde(serialize_with = "expose")]
    pub verify_token: SecretString,
    /// Where to configure it.
    pub instructions: &'static str,
}

/// The webhook block of §6.6.
#[derive(Debug, Clone, Serialize)]
pub struct WebhooksOutput {
    /// Genesys.
    pub genesys: GenesysWebhookOutput,
    /// Meta.
    pub meta: MetaWebhookOutput,
    /// The shared webhook secret (256-bit, hex). Identical on every retried completion.
    #[serde(serialize_with = "expose")]
    pub secret: SecretString,
    /// Advice to store the secret.
    pub note: &'static str,
}

/// Answer to step 5 (§6.6).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionOutput {
    /// Always true.
    pub success: bool,
    /// `Onboarding completed successfully`.
    pub message: &'static str,
    /// Tenant.
    pub tenant_id: TenantId,
    /// `active`.
    pub status: TenantStatus,
    /// What to configure at Genesys and Meta.
    pub webhooks: WebhooksOutput,
}

/// Resumable progress (§6.7), without any secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnboardingStatus {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Last completed step.
    pub current_step: u8,
    /// Steps done.
    pub completed_steps: Vec<u8>,
    /// Step 1's data.
    pub organization_details: OrganizationDetails,
    /// Step 2 done.
    pub genesys_configured: bool,
    /// Step 3 done.
    pub whatsapp_configured: bool,
    /// Step 4 passed on the current credentials.
    pub validated: bool,
    /// Wizard start.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change (the 1-hour expiry counts from here).
    #[serde(with = "time::serde::rfc3339")]
    pub last_updated: OffsetDateTime,
}

impl From<&OnboardingState> for OnboardingStatus {
    fn from(s: &OnboardingState) -> Self {
        Self {
            tenant_id: s.tenant_id,
            current_step: s.progress.current_step(),
            completed_steps: s.progress.completed_steps(),
            organization_details: s.organization.clone(),
            genesys_configured: s.progress.current_step() >= 2,
            whatsapp_configured: s.progress.current_step() >= 3,
            validated: s.progress.current_step() >= 4,
            created_at: s.created_at,
            last_updated: s.last_updated,
        }
    }
}
