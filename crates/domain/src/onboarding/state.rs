//! The stored wizard state. A starting shape: the onboarding work refines it.

use crate::model::{Ciphertext, Email, Region, TenantId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Step 1's organisation details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDetails {
    /// 2-100 characters.
    pub company_name: String,
    /// Genesys region.
    pub region: Region,
    /// Contact e-mail.
    pub contact_email: Email,
}

/// Step 2's verified Genesys credentials (secret encrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenesysSetup {
    /// OAuth client ID.
    pub client_id: String,
    /// Client secret, encrypted for (tenant, `genesys.clientSecret`).
    pub client_secret: Ciphertext,
    /// Region.
    pub region: Region,
    /// When Genesys accepted them.
    #[serde(with = "time::serde::rfc3339")]
    pub validated_at: OffsetDateTime,
}

/// Step 3's verified WhatsApp credentials (token encrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatsAppSetup {
    /// Meta phone number ID.
    pub phone_number_id: String,
    /// System-user token, encrypted for (tenant, `whatsapp.systemUserToken`).
    pub system_user_token: Ciphertext,
    /// Display phone number Meta reported.
    pub phone_number: Option<String>,
    /// When Meta accepted them.
    #[serde(with = "time::serde::rfc3339")]
    pub validated_at: OffsetDateTime,
}

/// The wizard's progress: a type in which skipping a step cannot be expressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "camelCase")]
pub enum Progress {
    /// Step 1 done.
    Organization,
    /// Steps 1-2 done.
    Genesys {
        /// Step 2.
        genesys: GenesysSetup,
    },
    /// Steps 1-3 done.
    WhatsApp {
        /// Step 2.
        genesys: GenesysSetup,
        /// Step 3.
        whatsapp: WhatsAppSetup,
    },
}

/// The wizard state stored under `onboarding:{tenantId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnboardingState {
    /// Tenant being onboarded.
    pub tenant_id: TenantId,
    /// Who started it.
    pub started_by: UserId,
    /// Step 1.
    pub organization: OrganizationDetails,
    /// Steps 2 onwards.
    pub progress: Progress,
    /// When the wizard started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub last_updated: OffsetDateTime,
}
