//! The wizard's response bodies (spec §6.2-§6.7): what the handlers serialise and what the
//! OpenAPI document describes, each built from the domain value the use case returns.
//!
//! The UI text of the answers (`success`, `nextStep`, the webhook instructions) lives here,
//! not in the domain. Only [`CompletionResponse`] carries secrets (the webhook secret and
//! Meta's verify token, which the user must copy into Genesys and Meta): they are
//! [`SecretString`]s, redacted in `Debug` and written out only by `Serialize`.

use portal_domain::model::{Email, Region, TenantId, TenantStatus};
use portal_domain::onboarding::{
    CheckStatus, CompanyName, Completion, OnboardingState, ValidationRecord,
};
use portal_domain::secret::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use utoipa::ToSchema;

const GENESYS_INSTRUCTIONS: &str =
    "Configure this URL in Genesys Cloud > Admin > Integrations > Custom Webhooks";
const META_INSTRUCTIONS: &str =
    "Configure this URL in Meta Business Suite > WhatsApp > Settings > Webhooks";
const SECRET_NOTE: &str =
    "Save the webhook secret securely - it will be used to verify incoming webhook requests";
const COMPLETED: &str = "Onboarding completed successfully";

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// Step 1's `data`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrganizationSummary {
    /// Company name.
    #[schema(value_type = String)]
    pub company_name: CompanyName,
    /// Region.
    #[schema(value_type = String)]
    pub region: Region,
}

/// Answer to step 1.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Step1Response {
    /// Always true.
    pub success: bool,
    /// The tenant created (or updated on a repeated step 1).
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// 1.
    pub current_step: u8,
    /// 2.
    pub(crate) next_step: u8,
    /// What was recorded.
    pub data: OrganizationSummary,
}

impl From<&OnboardingState> for Step1Response {
    fn from(state: &OnboardingState) -> Self {
        Self {
            success: true,
            tenant_id: state.tenant_id,
            current_step: 1,
            next_step: 2,
            data: OrganizationSummary {
                company_name: state.organization.company_name.clone(),
                region: state.organization.region,
            },
        }
    }
}

/// Answer to steps 2 and 3.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StepResponse {
    /// Always true.
    pub success: bool,
    /// The tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// 2 or 3.
    pub current_step: u8,
    /// 3 or 4.
    pub(crate) next_step: u8,
    /// The integration accepted the credentials.
    pub validated: bool,
    /// Step 3 only: the display phone number Meta reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub phone_number: Option<String>,
}

impl From<&OnboardingState> for StepResponse {
    /// The state just saved by step 2 or 3 (a refused check is an error, so `validated`).
    fn from(state: &OnboardingState) -> Self {
        let step = state.progress.current_step();
        Self {
            success: true,
            tenant_id: state.tenant_id,
            current_step: step,
            next_step: step + 1,
            validated: true,
            phone_number: state
                .progress
                .whatsapp()
                .and_then(|w| w.phone_number.clone()),
        }
    }
}

/// Per-integration messages of step 4.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ValidationDetails {
    /// Genesys detail (`Connected to ...` or why not).
    pub genesys: String,
    /// WhatsApp detail.
    pub whatsapp: String,
}

/// Answer to step 4: each integration reported separately.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ValidationResponse {
    /// `success` or `failed`.
    #[schema(value_type = String)]
    pub genesys: CheckStatus,
    /// `success` or `failed`.
    #[schema(value_type = String)]
    pub whatsapp: CheckStatus,
    /// Messages.
    pub details: ValidationDetails,
}

impl From<&ValidationRecord> for ValidationResponse {
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
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GenesysWebhook {
    /// `{BASE_URL}/webhooks/genesys/{tenantId}`.
    pub url: String,
    /// Where to configure it.
    #[schema(value_type = String)]
    pub(crate) instructions: &'static str,
}

/// Meta webhook instructions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetaWebhook {
    /// `{BASE_URL}/webhooks/meta/{tenantId}`.
    pub url: String,
    /// The verify token Meta echoes when subscribing.
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub verify_token: SecretString,
    /// Where to configure it.
    #[schema(value_type = String)]
    pub(crate) instructions: &'static str,
}

/// The webhook block of the completion.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Webhooks {
    /// Genesys.
    pub genesys: GenesysWebhook,
    /// Meta.
    pub meta: MetaWebhook,
    /// The 256-bit webhook secret (hex); the same on every retried completion.
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub secret: SecretString,
    /// Advice to store the secret.
    #[schema(value_type = String)]
    pub(crate) note: &'static str,
}

/// Answer to step 5.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CompletionResponse {
    /// Always true.
    pub success: bool,
    /// `Onboarding completed successfully`.
    #[schema(value_type = String)]
    pub message: &'static str,
    /// The tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// `active`.
    #[schema(value_type = String)]
    pub status: TenantStatus,
    /// What to configure at Genesys and Meta.
    pub webhooks: Webhooks,
}

impl From<Completion> for CompletionResponse {
    /// Takes the completion: its secrets move into the answer rather than being copied.
    fn from(c: Completion) -> Self {
        Self {
            success: true,
            message: COMPLETED,
            tenant_id: c.tenant_id,
            status: c.status,
            webhooks: Webhooks {
                genesys: GenesysWebhook {
                    url: c.webhooks.genesys_url,
                    instructions: GENESYS_INSTRUCTIONS,
                },
                meta: MetaWebhook {
                    url: c.webhooks.meta_url,
                    verify_token: c.webhooks.verify_token,
                    instructions: META_INSTRUCTIONS,
                },
                secret: c.webhooks.secret,
                note: SECRET_NOTE,
            },
        }
    }
}

/// Step 1's data as returned by the status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrganizationDetails {
    /// Company name.
    #[schema(value_type = String)]
    pub company_name: CompanyName,
    /// Region.
    #[schema(value_type = String)]
    pub region: Region,
    /// Contact e-mail.
    #[schema(value_type = String)]
    pub contact_email: Email,
}

/// Resumable progress, without any secret (§6.7); also `details.current` of a 409.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusResponse {
    /// The tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Last completed step.
    pub current_step: u8,
    /// Steps done.
    pub completed_steps: Vec<u8>,
    /// Step 1's data.
    pub(crate) organization_details: OrganizationDetails,
    /// Step 2 done.
    pub(crate) genesys_configured: bool,
    /// Step 3 done.
    pub(crate) whatsapp_configured: bool,
    /// Step 4 passed on the current credentials.
    pub validated: bool,
    /// Wizard start (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339); the wizard expires 1 hour after it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub last_updated: OffsetDateTime,
}

impl From<&OnboardingState> for StatusResponse {
    fn from(s: &OnboardingState) -> Self {
        let step = s.progress.current_step();
        Self {
            tenant_id: s.tenant_id,
            current_step: step,
            completed_steps: s.progress.completed_steps(),
            organization_details: OrganizationDetails {
                company_name: s.organization.company_name.clone(),
                region: s.organization.region,
                contact_email: s.organization.contact_email.clone(),
            },
            genesys_configured: step >= 2,
            whatsapp_configured: step >= 3,
            validated: step >= 4,
            created_at: s.created_at,
            last_updated: s.last_updated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::model::{Ciphertext, UserId, WebhookConfig};
    use portal_domain::onboarding::{
        CheckResult, GenesysSetup, OrganizationDetails as Organization, Progress, WhatsAppSetup,
    };
    use portal_domain::secret::secret;

    const TENANT: &str = "7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e";

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000 + secs).unwrap()
    }

    fn state(progress: Progress) -> OnboardingState {
        OnboardingState {
            tenant_id: TENANT.parse().unwrap(),
            started_by: UserId::parse("u1").unwrap(),
            organization: Organization {
                company_name: CompanyName::parse("NewCo Ltd").unwrap(),
                region: Region::EuWest1,
                contact_email: Email::parse("ops@newco.example").unwrap(),
            },
            progress,
            created_at: at(0),
            last_updated: at(60),
        }
    }

    fn genesys() -> GenesysSetup {
        GenesysSetup {
            client_id: "client-id-0001".into(),
            client_secret: Ciphertext("v1.k.sealed".into()),
            region: Region::EuWest1,
            validated_at: at(30),
        }
    }

    fn json(value: &impl Serialize) -> String {
        serde_json::to_string(value).unwrap()
    }

    #[test]
    fn step_answers_keep_the_specs_shapes() {
        assert_eq!(
            json(&Step1Response::from(&state(Progress::Organization))),
            format!(
                r#"{{"success":true,"tenantId":"{TENANT}","currentStep":1,"nextStep":2,"data":{{"companyName":"NewCo Ltd","region":"eu-west-1"}}}}"#
            )
        );
        let step2 = state(Progress::Genesys { genesys: genesys() });
        assert_eq!(
            json(&StepResponse::from(&step2)),
            format!(
                r#"{{"success":true,"tenantId":"{TENANT}","currentStep":2,"nextStep":3,"validated":true}}"#
            )
        );
        let step3 = state(Progress::WhatsApp {
            genesys: genesys(),
            whatsapp: WhatsAppSetup {
                phone_number_id: "1065550100".into(),
                system_user_token: Ciphertext("v1.k.sealed2".into()),
                phone_number: Some("+1 555-0100".into()),
                validated_at: at(40),
            },
        });
        assert_eq!(
            json(&StepResponse::from(&step3)),
            format!(
                r#"{{"success":true,"tenantId":"{TENANT}","currentStep":3,"nextStep":4,"validated":true,"phoneNumber":"+1 555-0100"}}"#
            )
        );
        assert_eq!(
            json(&StatusResponse::from(&step3)),
            format!(
                r#"{{"tenantId":"{TENANT}","currentStep":3,"completedSteps":[1,2,3],"organizationDetails":{{"companyName":"NewCo Ltd","region":"eu-west-1","contactEmail":"ops@newco.example"}},"genesysConfigured":true,"whatsappConfigured":true,"validated":false,"createdAt":"2025-06-15T15:06:40Z","lastUpdated":"2025-06-15T15:07:40Z"}}"#
            )
        );
    }

    #[test]
    fn validation_reports_each_integration() {
        let record = ValidationRecord {
            genesys: CheckResult {
                status: CheckStatus::Success,
                message: "Connected to Acme Org".into(),
            },
            whatsapp: CheckResult {
                status: CheckStatus::Failed,
                message: "Meta did not answer in time".into(),
            },
            checked_at: at(0),
        };
        assert_eq!(
            json(&ValidationResponse::from(&record)),
            r#"{"genesys":"success","whatsapp":"failed","details":{"genesys":"Connected to Acme Org","whatsapp":"Meta did not answer in time"}}"#
        );
    }

    #[test]
    fn the_completion_writes_its_secrets_only_into_the_body() {
        let completion = Completion {
            tenant_id: TENANT.parse().unwrap(),
            status: TenantStatus::Active,
            webhooks: WebhookConfig {
                genesys_url: format!("https://portal.example/webhooks/genesys/{TENANT}"),
                meta_url: format!("https://portal.example/webhooks/meta/{TENANT}"),
                secret: secret("ab".repeat(32)),
                verify_token: secret("cd".repeat(16)),
            },
        };
        let body = CompletionResponse::from(completion);
        assert!(
            !format!("{body:?}").contains(&"ab".repeat(32)),
            "Debug redacts"
        );
        assert_eq!(
            json(&body),
            format!(
                concat!(
                    r#"{{"success":true,"message":"Onboarding completed successfully","tenantId":"{t}","status":"active","#,
                    r#""webhooks":{{"genesys":{{"url":"https://portal.example/webhooks/genesys/{t}","instructions":"Configure this URL in Genesys Cloud > Admin > Integrations > Custom Webhooks"}},"#,
                    r#""meta":{{"url":"https://portal.example/webhooks/meta/{t}","verifyToken":"{v}","instructions":"Configure this URL in Meta Business Suite > WhatsApp > Settings > Webhooks"}},"#,
                    r#""secret":"{s}","note":"Save the webhook secret securely - it will be used to verify incoming webhook requests"}}}}"#
                ),
                t = TENANT,
                v = "cd".repeat(16),
                s = "ab".repeat(32)
            )
        );
    }
}
