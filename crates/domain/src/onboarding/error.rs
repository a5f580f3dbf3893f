//! Why a wizard request was refused.

use super::input::FieldError;
use super::state::{OnboardingState, StepOutOfOrder};
use crate::auth::{AccessDenied, SessionError};
use crate::error::StoreError;
use crate::ports::downstream::TenantServiceError;
use crate::ports::stores::RateDecision;

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
        /// The failed-attempt limiter's decision: its limit, nothing remaining, and when
        /// the next attempt may be made (`reset_after`), for the answer's own `RateLimit-*`
        /// and `Retry-After`.
        decision: RateDecision,
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

impl OnboardingError {
    /// A short name for the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            OnboardingError::Validation { .. } => "validation_failed",
            OnboardingError::InvalidStep { .. } => "invalid_step",
            OnboardingError::SessionExpired => "wizard_expired",
            OnboardingError::Conflict { .. } => "conflict",
            OnboardingError::NotFound => "not_found",
            OnboardingError::RateLimited { .. } => "rate_limited",
            OnboardingError::TenantIsolation => "tenant_isolation",
            OnboardingError::SignedOut => "signed_out",
            OnboardingError::Forbidden(_) => "forbidden",
            OnboardingError::Unavailable { service, .. } => match *service {
                "genesys" => "genesys_unavailable",
                "whatsapp" => "whatsapp_unavailable",
                _ => "tenant_service_unavailable",
            },
            OnboardingError::Store(_) => "store_unavailable",
        }
    }

    /// How a credential check ended, when this error is one's outcome: `refused` (the
    /// integration said no) or `unreachable`.
    pub(crate) fn check(&self) -> Option<&'static str> {
        match self {
            OnboardingError::Validation { .. } => Some("refused"),
            OnboardingError::Unavailable { service, .. } if *service != "tenantService" => {
                Some("unreachable")
            }
            _ => None,
        }
    }

    /// The fields a validation error names (names only).
    pub(crate) fn fields(&self) -> Vec<&'static str> {
        match self {
            OnboardingError::Validation { errors } => errors.iter().map(|e| e.field).collect(),
            _ => Vec::new(),
        }
    }
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
pub(super) fn tenant_failure(e: TenantServiceError, echo_reason: bool) -> OnboardingError {
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
