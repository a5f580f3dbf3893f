//! The stored wizard state and its transitions.
//!
//! [`Progress`] is built so that an illegal wizard cannot be written down: a WhatsApp setup
//! exists only next to a Genesys setup, a completion only after a *passed* validation, and a
//! finished wizard keeps no credentials at all. The transition methods enforce the ordering
//! rules of decisions §5: steps in order, and re-submitting step N discards everything after N.

use super::input::CompanyName;
use crate::model::{Ciphertext, Email, Region, TenantId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Step 1's organisation details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDetails {
    /// 2-100 characters.
    pub company_name: CompanyName,
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

/// One integration check's verdict (spec §6.5 `success` / `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The integration answered as expected.
    Success,
    /// It did not (refused credentials, timeout, outage).
    Failed,
}

impl CheckStatus {
    /// The wire name (`success`, `failed`), for log lines too.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Success => "success",
            CheckStatus::Failed => "failed",
        }
    }
}

/// One integration check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Verdict.
    pub status: CheckStatus,
    /// Human-readable detail (`Connected to Acme`); never contains a credential.
    pub message: String,
}

impl CheckResult {
    /// Whether the check passed.
    pub(crate) fn passed(&self) -> bool {
        self.status == CheckStatus::Success
    }
}

/// Step 4's recorded result: both integrations, tested together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRecord {
    /// Genesys Cloud: token and organisation.
    pub genesys: CheckResult,
    /// WhatsApp: the phone number with the token.
    pub whatsapp: CheckResult,
    /// When the checks ran.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
}

impl ValidationRecord {
    /// Whether both checks passed.
    pub(crate) fn passed(&self) -> bool {
        self.genesys.passed() && self.whatsapp.passed()
    }
}

/// The webhook configuration generated once at completion, secrets encrypted.
///
/// Kept in the state so that a retried completion returns exactly the same values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedWebhooks {
    /// `{BASE_URL}/webhooks/genesys/{tenantId}`.
    pub genesys_url: String,
    /// `{BASE_URL}/webhooks/meta/{tenantId}`.
    pub meta_url: String,
    /// 256-bit hex secret, encrypted for (tenant, `webhooks.secret`).
    pub secret: Ciphertext,
    /// Meta verify token, encrypted for (tenant, `webhooks.verifyToken`).
    pub verify_token: Ciphertext,
}

/// What is left of a finished wizard: enough to answer a retried `complete` identically,
/// and no integration credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionReceipt {
    /// The webhook configuration the Tenant Service received.
    pub webhooks: SealedWebhooks,
    /// Who completed it.
    pub(crate) completed_by: UserId,
    /// When the Tenant Service accepted the configuration.
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) completed_at: OffsetDateTime,
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
    /// Steps 1-3 done, not validated since.
    WhatsApp {
        /// Step 2.
        genesys: GenesysSetup,
        /// Step 3.
        whatsapp: WhatsAppSetup,
    },
    /// Steps 1-3 done and step 4 ran on exactly these credentials (passed or not).
    Validated {
        /// Step 2.
        genesys: GenesysSetup,
        /// Step 3.
        whatsapp: WhatsAppSetup,
        /// Step 4's result.
        validation: ValidationRecord,
    },
    /// Step 5 started: the webhook secrets exist; the Tenant Service may or may not have them.
    Completing {
        /// Step 2.
        genesys: GenesysSetup,
        /// Step 3.
        whatsapp: WhatsAppSetup,
        /// When the (passed) validation ran.
        #[serde(with = "time::serde::rfc3339")]
        validated_at: OffsetDateTime,
        /// Generated once; reused by every retry.
        webhooks: SealedWebhooks,
        /// `onboardedAt` sent to the Tenant Service, fixed so a retried update is identical.
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
    },
    /// Step 5 done: the Tenant Service has the configuration and the tenant is active.
    Completed {
        /// What a retried completion returns.
        receipt: CompletionReceipt,
    },
}

/// A submission that the wizard's current step does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must complete step {} first (last completed step: {current})", current + 1)]
pub struct StepOutOfOrder {
    /// The last completed step (0-5).
    pub current: u8,
}

impl Progress {
    /// The steps done, in order (spec `completedSteps`).
    pub fn completed_steps(&self) -> Vec<u8> {
        (1..=self.current_step()).collect()
    }

    /// The last completed step (spec `step`): 1-5.
    pub fn current_step(&self) -> u8 {
        match self {
            Progress::Organization => 1,
            Progress::Genesys { .. } => 2,
            Progress::WhatsApp { .. } => 3,
            Progress::Validated { validation, .. } if validation.passed() => 4,
            Progress::Validated { .. } => 3,
            Progress::Completing { .. } => 4,
            Progress::Completed { .. } => 5,
        }
    }

    /// Step 2's setup, while the wizard holds one.
    pub fn genesys(&self) -> Option<&GenesysSetup> {
        match self {
            Progress::Genesys { genesys }
            | Progress::WhatsApp { genesys, .. }
            | Progress::Validated { genesys, .. }
            | Progress::Completing { genesys, .. } => Some(genesys),
            Progress::Organization | Progress::Completed { .. } => None,
        }
    }

    /// Step 3's setup, while the wizard holds one.
    pub fn whatsapp(&self) -> Option<&WhatsAppSetup> {
        match self {
            Progress::WhatsApp { whatsapp, .. }
            | Progress::Validated { whatsapp, .. }
            | Progress::Completing { whatsapp, .. } => Some(whatsapp),
            _ => None,
        }
    }

    /// The recorded validation, if step 4 ran on the current credentials.
    pub fn validation(&self) -> Option<&ValidationRecord> {
        match self {
            Progress::Validated { validation, .. } => Some(validation),
            _ => None,
        }
    }

    fn refuse_if_completed(&self) -> Result<(), StepOutOfOrder> {
        match self {
            Progress::Completed { .. } => Err(StepOutOfOrder { current: 5 }),
            _ => Ok(()),
        }
    }

    /// Whether step 2 may be submitted now (any time before completion).
    pub(crate) fn check_genesys_allowed(&self) -> Result<(), StepOutOfOrder> {
        self.refuse_if_completed()
    }

    /// Step 2 (again): keeps step 1, discards steps 3-5.
    pub(crate) fn submit_genesys(&self, genesys: GenesysSetup) -> Result<Progress, StepOutOfOrder> {
        self.check_genesys_allowed()?;
        Ok(Progress::Genesys { genesys })
    }

    /// Whether step 3 may be submitted now (step 2 done, not completed).
    pub(crate) fn check_whatsapp_allowed(&self) -> Result<(), StepOutOfOrder> {
        self.refuse_if_completed()?;
        match self.genesys() {
            Some(_) => Ok(()),
            None => Err(StepOutOfOrder {
                current: self.current_step(),
            }),
        }
    }

    /// Step 3 (again): keeps steps 1-2, discards steps 4-5.
    pub(crate) fn submit_whatsapp(
        &self,
        whatsapp: WhatsAppSetup,
    ) -> Result<Progress, StepOutOfOrder> {
        self.check_whatsapp_allowed()?;
        let genesys = self
            .genesys()
            .cloned()
            .ok_or(StepOutOfOrder { current: 1 })?;
        Ok(Progress::WhatsApp { genesys, whatsapp })
    }

    /// Whether step 4 may run now (steps 1-3 done, not completed).
    pub(crate) fn check_validation_allowed(
        &self,
    ) -> Result<(&GenesysSetup, &WhatsAppSetup), StepOutOfOrder> {
        self.refuse_if_completed()?;
        match (self.genesys(), self.whatsapp()) {
            (Some(g), Some(w)) => Ok((g, w)),
            _ => Err(StepOutOfOrder {
                current: self.current_step(),
            }),
        }
    }

    /// Step 4: records the result for the current credentials. A completion in progress is
    /// left alone (its secrets must survive), so this returns it unchanged.
    pub(crate) fn record_validation(
        &self,
        validation: ValidationRecord,
    ) -> Result<Progress, StepOutOfOrder> {
        let (genesys, whatsapp) = self.check_validation_allowed()?;
        if matches!(self, Progress::Completing { .. }) {
            return Ok(self.clone());
        }
        Ok(Progress::Validated {
            genesys: genesys.clone(),
            whatsapp: whatsapp.clone(),
            validation,
        })
    }

    /// Step 5 begins: only from a passed validation.
    pub(crate) fn begin_completion(
        &self,
        webhooks: SealedWebhooks,
        started_at: OffsetDateTime,
    ) -> Result<Progress, StepOutOfOrder> {
        match self {
            Progress::Validated {
                genesys,
                whatsapp,
                validation,
            } if validation.passed() => Ok(Progress::Completing {
                genesys: genesys.clone(),
                whatsapp: whatsapp.clone(),
                validated_at: validation.checked_at,
                webhooks,
                started_at,
            }),
            other => Err(StepOutOfOrder {
                current: other.current_step(),
            }),
        }
    }

    /// Step 5 done: the credentials are dropped, the receipt kept.
    pub fn finish(
        &self,
        completed_by: UserId,
        completed_at: OffsetDateTime,
    ) -> Result<Progress, StepOutOfOrder> {
        match self {
            Progress::Completing { webhooks, .. } => Ok(Progress::Completed {
                receipt: CompletionReceipt {
                    webhooks: webhooks.clone(),
                    completed_by,
                    completed_at,
                },
            }),
            other => Err(StepOutOfOrder {
                current: other.current_step(),
            }),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_can_only_begin_from_a_passed_validation() {
        let now = OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
        let g = GenesysSetup {
            client_id: "client-id-0001".into(),
            client_secret: Ciphertext("v1.test.0".into()),
            region: Region::UsEast1,
            validated_at: now,
        };
        let w = WhatsAppSetup {
            phone_number_id: "1".into(),
            system_user_token: Ciphertext("v1.test.1".into()),
            phone_number: None,
            validated_at: now,
        };
        let hooks = SealedWebhooks {
            genesys_url: "g".into(),
            meta_url: "m".into(),
            secret: Ciphertext("v1.test.2".into()),
            verify_token: Ciphertext("v1.test.3".into()),
        };
        let result = |status| CheckResult {
            status,
            message: String::new(),
        };
        let failed = Progress::WhatsApp {
            genesys: g.clone(),
            whatsapp: w.clone(),
        }
        .record_validation(ValidationRecord {
            genesys: result(CheckStatus::Success),
            whatsapp: result(CheckStatus::Failed),
            checked_at: now,
        })
        .unwrap();

        assert_eq!(
            failed.begin_completion(hooks.clone(), now),
            Err(StepOutOfOrder { current: 3 })
        );
        assert!(
            Progress::WhatsApp {
                genesys: g,
                whatsapp: w
            }
            .begin_completion(hooks, now)
            .is_err()
        );
        assert_eq!(
            Progress::Organization.finish(UserId::parse("u").unwrap(), now),
            Err(StepOutOfOrder { current: 1 })
        );
    }
}
