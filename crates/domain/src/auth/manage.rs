//! The sessions a user can see and end: where they are signed in (each session under an
//! opaque public handle, never its ID or store key), ending one, ending all; an admin ending
//! every session of a user of their tenant; and the per-user cap on live sessions.
//!
//! Every ended session goes the way of a logout: gone from the store, announced on the event
//! bus (so its WebSockets close on every instance), and audited with who ended it.

use super::{AccessDenied, Authenticator, Capability, CurrentSession};
use crate::audit::{AuditAction, AuditEvent, AuditOutcome};
use crate::crypto::constant_time_eq;
use crate::error::{DownstreamFailure, StoreError};
use crate::model::{ClientInfo, Session, SessionKey, UserId};
use crate::ports::downstream::TenantServiceError;
use time::OffsetDateTime;

/// Key-derivation purpose of public session handles.
const HANDLE_PURPOSE: &str = "session-handle";

/// One of the user's sessions, as they see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The opaque public handle that names it (to end it).
    pub handle: String,
    /// Signed in at.
    pub created_at: OffsetDateTime,
    /// Last request seen (written at most once a minute).
    pub last_activity: OffsetDateTime,
    /// The device: user agent, network.
    pub client: ClientInfo,
    /// Whether it is the session of the request asking.
    pub current: bool,
}

/// Why sessions could not be ended.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// No live session of the caller has this handle (`NOT_FOUND`, 404).
    #[error("no such session")]
    NotFound,
    /// Not an admin of an onboarded tenant (`FORBIDDEN`, 403).
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    /// The user is not in the admin's tenant (`TENANT_MISMATCH`, 403).
    #[error("the user belongs to another tenant")]
    OtherTenant,
    /// The Tenant Service could not say whose user it is (`SERVICE_UNAVAILABLE`, 503).
    #[error("tenant service unavailable: {0}")]
    Unavailable(DownstreamFailure),
    /// The store failed (`SERVICE_UNAVAILABLE`, 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a session was ended (`details.reason` of its audit entry).
#[derive(Debug, Clone, Copy)]
enum Ended {
    /// The user ended it (from another device, or this one).
    ByUser,
    /// The user signed out everywhere.
    Everywhere,
    /// An admin of the user's tenant ended it.
    ByAdmin,
    /// A new sign-in went beyond the per-user cap and this was the least recently active.
    Cap,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::ByUser => "user",
            Ended::Everywhere => "logout_all",
            Ended::ByAdmin => "admin",
            Ended::Cap => "session_cap",
        }
    }
}

impl Authenticator {
    /// The public handle of a session: an HMAC of its store key under the cookie secret.
    /// Stable for the session's life, meaningless without the secret, and neither the session
    /// ID nor its key.
    pub fn session_handle(&self, key: &SessionKey) -> String {
        self.csrf.derive(HANDLE_PURPOSE, key.as_str().as_bytes())
    }

    /// A session as an audit target.
    pub(super) fn session_target(&self, key: &SessionKey) -> String {
        format!("session:{}", self.session_handle(key))
    }

    /// The caller's live sessions, the most recently active first.
    pub async fn sessions_of(
        &self,
        current: &CurrentSession,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut listed = self
            .sessions
            .list_for_user(&current.session.user_id)
            .await?;
        listed.sort_by_key(|(_, s)| std::cmp::Reverse(s.last_activity));
        Ok(listed
            .into_iter()
            .map(|(key, session)| SessionSummary {
                handle: self.session_handle(&key),
                created_at: session.created_at,
                last_activity: session.last_activity,
                client: session.client,
                current: key == current.key,
            })
            .collect())
    }

    /// Ends the caller's session named `handle` (possibly the caller's own); returns whether
    /// it was the current one.
    pub async fn end_session(
        &self,
        current: &CurrentSession,
        handle: &str,
    ) -> Result<bool, ManageError> {
        let listed = self
            .sessions
            .list_for_user(&current.session.user_id)
            .await?;
        let (key, _) = listed
            .into_iter()
            .find(|(key, _)| {
                constant_time_eq(self.session_handle(key).as_bytes(), handle.as_bytes())
            })
            .ok_or(ManageError::NotFound)?;
        self.end_session_key(&key, ended_by(current, Ended::ByUser))
            .await?;
        tracing::info!(session = key.short(), user_id = %current.session.user_id, "session ended by its user");
        Ok(key == current.key)
    }

    /// Ends every session of the caller, this one included ("log out everywhere"); returns
    /// how many ended.
    pub async fn logout_everywhere(&self, current: &CurrentSession) -> Result<usize, StoreError> {
        self.end_all(&current.session.user_id, current, Ended::Everywhere)
            .await
    }

    /// An admin ends every session of `user`, who must be a user of the admin's tenant;
    /// returns how many ended. Another tenant's user (or a user of no tenant) is refused and
    /// the refusal audited.
    pub async fn end_user_sessions(
        &self,
        admin: &CurrentSession,
        user: &UserId,
    ) -> Result<usize, ManageError> {
        let tenant = admin
            .authorize(Capability::ManageSessions)?
            .ok_or(AccessDenied::OnboardingIncomplete)?;
        let theirs = match self.tenants.by_user(user).await {
            Ok(t) => t.map(|t| t.id),
            Err(TenantServiceError::NotFound) => None,
            Err(TenantServiceError::Failure(f)) => return Err(ManageError::Unavailable(f)),
            Err(TenantServiceError::Rejected(reason)) => {
                return Err(ManageError::Unavailable(DownstreamFailure::Protocol(
                    format!("tenant lookup refused: {reason}"),
                )));
            }
        };
        if theirs != Some(tenant) {
            tracing::warn!(
                security_event = "tenant_mismatch",
                tenant_id = %tenant,
                admin = %admin.session.user_id,
                user_id = %user,
                "ending another tenant's user's sessions refused"
            );
            self.auditor.record(
                AuditEvent::by(
                    admin,
                    AuditAction::TenantIsolationRefused,
                    AuditOutcome::Refused,
                )
                .target(format!("user:{user}"))
                .reason("end_user_sessions"),
            );
            return Err(ManageError::OtherTenant);
        }
        let ended = self.end_all(user, admin, Ended::ByAdmin).await?;
        tracing::info!(tenant_id = %tenant, admin = %admin.session.user_id, user_id = %user, ended, "an admin ended a user's sessions");
        Ok(ended)
    }

    /// Ends every session of `user`, each announced and audited as ended by `by`.
    async fn end_all(
        &self,
        user: &UserId,
        by: &CurrentSession,
        why: Ended,
    ) -> Result<usize, StoreError> {
        let keys = self.sessions.delete_all_for_user(user).await?;
        for key in &keys {
            self.memo.forget(key);
            self.announce_revocation(key).await;
            self.auditor.record(
                ended_by(by, why)
                    .detail("userId", user.as_str())
                    .target(self.session_target(key)),
            );
        }
        Ok(keys.len())
    }

    /// After a sign-in: if the user now has more live sessions than the cap, the least
    /// recently active ones (never the new one) end. Best effort: a store failure here leaves
    /// the user one session over the cap, never without the one just created.
    pub(super) async fn enforce_session_cap(&self, signed_in: &CurrentSession) {
        let cap = self.settings.max_sessions_per_user.max(1);
        let mut others: Vec<(SessionKey, Session)> = match self
            .sessions
            .list_for_user(&signed_in.session.user_id)
            .await
        {
            Ok(listed) => listed
                .into_iter()
                .filter(|(key, _)| *key != signed_in.key)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not check the per-user session cap");
                return;
            }
        };
        if others.len() < cap {
            return;
        }
        others.sort_by_key(|(_, s)| s.last_activity);
        let excess = others.len() + 1 - cap;
        for (key, _) in others.into_iter().take(excess) {
            match self
                .end_session_key(&key, ended_by(signed_in, Ended::Cap))
                .await
            {
                Ok(()) => tracing::info!(
                    session = key.short(),
                    user_id = %signed_in.session.user_id,
                    cap,
                    "least recently active session ended: per-user session cap"
                ),
                Err(e) => tracing::warn!(error = %e, "could not end a session over the cap"),
            }
        }
    }
}

/// The audit event of a session ended by `by` for `why`.
fn ended_by(by: &CurrentSession, why: Ended) -> AuditEvent {
    AuditEvent::by(by, AuditAction::SessionEnded, AuditOutcome::Success).reason(why.as_str())
}
