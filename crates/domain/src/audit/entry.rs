//! What an audit entry says: who did what to what, with which outcome, from where.
//!
//! An entry never holds a secret, a token, message text or a session ID: targets are public
//! handles and IDs, details are names and outcomes (which fields changed, never their values).
//! [`AuditEvent`] is what a use case hands the [`Auditor`](super::Auditor); it becomes an
//! [`AuditEntry`] (with its ID and time) when recorded.

use crate::auth::CurrentSession;
use crate::model::{Email, RequestContext, Role, TenantId, UserId};
use crate::ports::stores::AuditScope;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    /// A sign-in (the callback) succeeded or failed.
    #[serde(rename = "auth.sign_in")]
    SignIn,
    /// Sign-in refused by the per-IP rate limit.
    #[serde(rename = "auth.sign_in_rate_limited")]
    SignInRateLimited,
    /// A user signed out (`/auth/logout`).
    #[serde(rename = "auth.sign_out")]
    SignOut,
    /// A session was ended by someone (the user from another device, "log out everywhere",
    /// an admin, or the per-user cap); `details.reason` says which.
    #[serde(rename = "auth.session_ended")]
    SessionEnded,
    /// Tokens refreshed (or the refresh refused).
    #[serde(rename = "auth.refresh")]
    Refresh,
    /// A state-changing request without the right `X-CSRF-Token`.
    #[serde(rename = "auth.csrf_refused")]
    CsrfRefused,
    /// A request for another tenant's data refused.
    #[serde(rename = "access.tenant_isolation_refused")]
    TenantIsolationRefused,
    /// Onboarding step 1: the organisation.
    #[serde(rename = "onboarding.organization")]
    OnboardingOrganization,
    /// Onboarding step 2: Genesys credentials (and their check).
    #[serde(rename = "onboarding.genesys_credentials")]
    OnboardingGenesys,
    /// Onboarding step 3: WhatsApp credentials (and their check).
    #[serde(rename = "onboarding.whatsapp_credentials")]
    OnboardingWhatsApp,
    /// Onboarding step 4: both integrations tested.
    #[serde(rename = "onboarding.validation")]
    OnboardingValidation,
    /// Onboarding step 5: the tenant activated.
    #[serde(rename = "onboarding.completed")]
    OnboardingCompleted,
    /// A message sent from the agent widget.
    #[serde(rename = "widget.send")]
    WidgetSend,
    /// The dashboard's cached figures cleared.
    #[serde(rename = "dashboard.cache_refresh")]
    DashboardRefresh,
}

impl AuditAction {
    /// Every action, for the API's `action` filter.
    pub const ALL: [AuditAction; 14] = [
        AuditAction::SignIn,
        AuditAction::SignInRateLimited,
        AuditAction::SignOut,
        AuditAction::SessionEnded,
        AuditAction::Refresh,
        AuditAction::CsrfRefused,
        AuditAction::TenantIsolationRefused,
        AuditAction::OnboardingOrganization,
        AuditAction::OnboardingGenesys,
        AuditAction::OnboardingWhatsApp,
        AuditAction::OnboardingValidation,
        AuditAction::OnboardingCompleted,
        AuditAction::WidgetSend,
        AuditAction::DashboardRefresh,
    ];

    /// The wire name (`auth.sign_in`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::SignIn => "auth.sign_in",
            AuditAction::SignInRateLimited => "auth.sign_in_rate_limited",
            AuditAction::SignOut => "auth.sign_out",
            AuditAction::SessionEnded => "auth.session_ended",
            AuditAction::Refresh => "auth.refresh",
            AuditAction::CsrfRefused => "auth.csrf_refused",
            AuditAction::TenantIsolationRefused => "access.tenant_isolation_refused",
            AuditAction::OnboardingOrganization => "onboarding.organization",
            AuditAction::OnboardingGenesys => "onboarding.genesys_credentials",
            AuditAction::OnboardingWhatsApp => "onboarding.whatsapp_credentials",
            AuditAction::OnboardingValidation => "onboarding.validation",
            AuditAction::OnboardingCompleted => "onboarding.completed",
            AuditAction::WidgetSend => "widget.send",
            AuditAction::DashboardRefresh => "dashboard.cache_refresh",
        }
    }

    /// The action of a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// Done.
    Success,
    /// Attempted and failed (refused credentials, a downstream down, ...).
    Failure,
    /// Not allowed (CSRF, another tenant, a rate limit).
    Refused,
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditActor {
    /// The user.
    pub user_id: UserId,
    /// Their e-mail.
    pub email: Email,
    /// Their role.
    pub role: Role,
}

/// One entry of the trail, as stored (JSON) and as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// A random ID.
    pub id: uuid::Uuid,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What happened.
    pub action: AuditAction,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Who did it; `None` before anyone signed in (a refused sign-in).
    pub actor: Option<AuditActor>,
    /// The tenant it happened in.
    pub tenant_id: Option<TenantId>,
    /// What it was done to: `session:<handle>`, `user:<id>`, `tenant:<id>`,
    /// `conversation:<id>`.
    pub target: Option<String>,
    /// The client's IP.
    pub client_ip: Option<String>,
    /// The client's user agent (trimmed).
    pub user_agent: Option<String>,
    /// The request's ID.
    pub correlation_id: Option<String>,
    /// Names and outcomes: `reason`, `fieldsChanged`, check results, IDs.
    #[serde(default)]
    pub details: Map<String, Value>,
}

impl AuditEntry {
    /// The trail it belongs to.
    pub fn scope(&self) -> AuditScope {
        self.tenant_id
            .map_or(AuditScope::Platform, AuditScope::Tenant)
    }
}

/// Something to record, as a use case or the edge describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub(crate) action: AuditAction,
    pub(crate) outcome: AuditOutcome,
    pub(crate) actor: Option<AuditActor>,
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) target: Option<String>,
    pub(crate) context: RequestContext,
    pub(crate) details: Map<String, Value>,
}

impl AuditEvent {
    /// Done by the signed-in user of `current`, in their tenant, from their request.
    pub fn by(current: &CurrentSession, action: AuditAction, outcome: AuditOutcome) -> Self {
        let s = &current.session;
        Self {
            action,
            outcome,
            actor: Some(AuditActor {
                user_id: s.user_id.clone(),
                email: s.email.clone(),
                role: s.role,
            }),
            tenant_id: s.tenant_id,
            target: None,
            context: current.context.clone(),
            details: Map::new(),
        }
    }

    /// Done by nobody known yet (a refused sign-in), from the request of `context`.
    pub fn anonymous(action: AuditAction, outcome: AuditOutcome, context: &RequestContext) -> Self {
        Self {
            action,
            outcome,
            actor: None,
            tenant_id: None,
            target: None,
            context: context.clone(),
            details: Map::new(),
        }
    }

    /// In `tenant` (when it is not the actor's session's).
    pub fn in_tenant(mut self, tenant: Option<TenantId>) -> Self {
        self.tenant_id = tenant;
        self
    }

    /// What it was done to.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// A detail: a name and a value that is never a secret, a token or message text.
    pub fn detail(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.details.insert(name.to_owned(), value.into());
        self
    }

    /// `details.reason`.
    pub fn reason(self, reason: &'static str) -> Self {
        self.detail("reason", reason)
    }

    /// `details.fieldsChanged`: the names of the fields that changed.
    pub fn fields_changed(self, fields: &[&'static str]) -> Self {
        self.detail("fieldsChanged", fields.to_vec())
    }

    /// The entry, with its ID and time.
    pub(crate) fn into_entry(self, id: uuid::Uuid, time: OffsetDateTime) -> AuditEntry {
        AuditEntry {
            id,
            time,
            action: self.action,
            outcome: self.outcome,
            actor: self.actor,
            tenant_id: self.tenant_id,
            target: self.target,
            client_ip: self.context.client_ip.map(|ip| ip.to_string()),
            user_agent: self.context.user_agent,
            correlation_id: self.context.correlation_id,
            details: self.details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                Value::String(a.as_str().to_owned())
            );
        }
        assert_eq!(AuditAction::parse("auth.nothing"), None);
    }
}
