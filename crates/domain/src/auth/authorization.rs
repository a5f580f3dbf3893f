//! What a session may do (decisions §4), and its CSRF token.

use super::Authenticator;
use crate::model::{RequestContext, Session, SessionKey, TenantId};

/// Key-derivation purpose of CSRF tokens.
const CSRF_PURPOSE: &str = "csrf";

/// Something a session may be allowed to do (decisions §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Dashboard stats, refresh and ranges.
    ViewDashboard,
    /// Conversation history.
    ViewHistory,
    /// Sending from the agent widget.
    SendMessages,
    /// The real-time monitoring socket.
    Monitor,
    /// The onboarding wizard.
    Onboard,
    /// Ending another user's sessions (admins, their own tenant's users).
    ManageSessions,
    /// Reading and verifying the tenant's audit trail.
    ReadAudit,
}

/// Why a session may not do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    /// The role lacks the right (`FORBIDDEN`, 403).
    #[error("your role does not allow this")]
    Role,
    /// The tenant has not finished onboarding (`FORBIDDEN`, 403).
    #[error("finish onboarding first")]
    OnboardingIncomplete,
}

/// An authenticated request's session.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    /// The store key (hash of the cookie's session ID).
    pub key: SessionKey,
    /// The session.
    pub session: Session,
    /// The request it came with (client IP, user agent, correlation ID), for the audit
    /// trail. Empty when the session was not resolved from a request (the edge sets it).
    pub context: RequestContext,
}

impl CurrentSession {
    /// A session resolved outside a request.
    pub fn new(key: SessionKey, session: Session) -> Self {
        Self {
            key,
            session,
            context: RequestContext::default(),
        }
    }

    /// The same session, seen with the request of `context`.
    pub fn with_context(mut self, context: RequestContext) -> Self {
        self.context = context;
        self
    }
}

impl CurrentSession {
    /// Checks a capability; returns the tenant the session acts for (for tenant-scoped
    /// capabilities) or `None` (onboarding before step 1).
    pub fn authorize(&self, capability: Capability) -> Result<Option<TenantId>, AccessDenied> {
        let s = &self.session;
        use crate::model::Role::*;
        match capability {
            Capability::Onboard => {
                if s.onboarding_only || s.role == Admin {
                    Ok(s.tenant_id)
                } else {
                    Err(AccessDenied::Role)
                }
            }
            _ => {
                let tenant = s
                    .active_tenant()
                    .ok_or(AccessDenied::OnboardingIncomplete)?;
                let allowed = match capability {
                    Capability::SendMessages => matches!(s.role, Admin | Agent),
                    Capability::ManageSessions | Capability::ReadAudit => s.role == Admin,
                    _ => true,
                };
                if allowed {
                    Ok(Some(tenant))
                } else {
                    Err(AccessDenied::Role)
                }
            }
        }
    }
}

impl Authenticator {
    /// The session's CSRF token (`X-CSRF-Token`).
    pub fn csrf_token(&self, current: &CurrentSession) -> String {
        self.csrf
            .derive(CSRF_PURPOSE, current.key.as_str().as_bytes())
    }

    /// Checks a presented CSRF token in constant time.
    pub fn verify_csrf(&self, current: &CurrentSession, presented: Option<&str>) -> bool {
        presented.is_some_and(|t| {
            self.csrf
                .verify(CSRF_PURPOSE, current.key.as_str().as_bytes(), t)
        })
    }
}
