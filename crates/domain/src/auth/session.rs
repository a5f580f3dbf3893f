//! A request's session: resolving it (with the piggybacked API rate-limit hit), refreshing,
//! ending and binding it to a tenant.

use super::{Authenticator, CurrentSession, REFRESH_FIELD, to_time};
use crate::error::StoreError;
use crate::model::{Session, SessionId, SessionKey, TenantId, UserId};
use crate::ports::downstream::AuthServiceError;
use crate::ports::stores::{RateDecision, RatePolicy};
use crate::ports::system::EncryptionContext;
use std::time::Duration;

/// Why a request's session was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown, malformed, revoked or expired (`SESSION_EXPIRED`, 401).
    #[error("session expired or invalid")]
    Expired,
    /// The session store is unavailable: fail closed (`SERVICE_UNAVAILABLE`, 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No refresh token, or the Auth Service refused it (`REFRESH_FAILED`, 401).
    #[error("token refresh failed")]
    Rejected,
    /// The session ended meanwhile (`SESSION_EXPIRED`, 401).
    #[error("session expired")]
    SessionGone,
    /// The Auth Service could not be reached (`SERVICE_UNAVAILABLE`, 503).
    #[error("auth service unavailable: {0}")]
    Unavailable(crate::error::DownstreamFailure),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Authenticator {
    /// Resolves the session of a request from its (already signature-checked) cookie value.
    pub async fn authenticate(&self, raw_session_id: &str) -> Result<CurrentSession, SessionError> {
        let id = SessionId::parse(raw_session_id).ok_or(SessionError::Expired)?;
        self.authenticate_key(id.key()).await
    }

    /// [`Self::authenticate`] plus one hit of the per-user rate limit `rate_key(user)` under
    /// `policy`, in as few store round trips as possible.
    ///
    /// Once this instance has seen the session, it knows its user (a session's user never
    /// changes), so the hit rides in the session read's round trip
    /// (`SessionStore::get_and_hit`) and the decision is returned. The first request of a
    /// session on an instance (or a store that cannot combine) returns `None`: the caller
    /// applies the limit itself. A missing session, or one whose user is not the remembered
    /// one, discards the piggybacked decision; the session checks themselves are exactly those
    /// of [`Self::authenticate`] (the session is read on every request, so a logout on any
    /// instance is seen at once).
    pub async fn authenticate_limited(
        &self,
        raw_session_id: &str,
        rate_key: impl Fn(&UserId) -> String,
        policy: RatePolicy,
    ) -> Result<(CurrentSession, Option<RateDecision>), SessionError> {
        let id = SessionId::parse(raw_session_id).ok_or(SessionError::Expired)?;
        let key = id.key();
        let Some(user) = self.memo.user(&key) else {
            let current = self.authenticate_key(key).await?;
            return Ok((current, None));
        };
        let (session, decision) = self
            .sessions
            .get_and_hit(&key, &rate_key(&user), policy)
            .await?;
        let Some(session) = session else {
            self.memo.forget(&key);
            return Err(SessionError::Expired);
        };
        let decision = decision.filter(|_| session.user_id == user);
        let current = self.check_session(key, session).await?;
        Ok((current, decision))
    }

    /// Resolves a session by its store key (WebSocket re-checks, tickets).
    pub async fn authenticate_key(&self, key: SessionKey) -> Result<CurrentSession, SessionError> {
        let Some(session) = self.sessions.get(&key).await? else {
            self.memo.forget(&key);
            return Err(SessionError::Expired);
        };
        self.check_session(key, session).await
    }

    /// Expiry and the (at most once per interval) `lastActivity` write of a session just read.
    async fn check_session(
        &self,
        key: SessionKey,
        session: Session,
    ) -> Result<CurrentSession, SessionError> {
        self.memo.remember(&key, &session.user_id);
        let now = self.clock.now();
        if session.is_expired(now) {
            tracing::info!(session = key.short(), "session expired");
            self.memo.forget(&key);
            self.sessions.delete(&key).await?;
            return Err(SessionError::Expired);
        }
        let mut session = session;
        let interval = to_time(self.settings.activity_write_interval);
        if now - session.last_activity >= interval && self.memo.claim_touch(&key, now, interval) {
            // Best effort: a missed activity write must not fail the request.
            if let Err(e) = self.sessions.touch(&key, now).await {
                tracing::warn!(error = %e, "could not record session activity");
            } else {
                session.last_activity = now;
            }
        }
        Ok(CurrentSession { key, session })
    }

    /// Refreshes the user's tokens with the Auth Service and extends the session.
    pub async fn refresh(&self, current: &CurrentSession) -> Result<Session, RefreshError> {
        let mut session = current.session.clone();
        let context = EncryptionContext::user(&session.user_id, REFRESH_FIELD);
        let stored = session
            .refresh_token
            .as_ref()
            .ok_or(RefreshError::Rejected)?;
        let refresh_token = self.cipher.decrypt(stored, &context).map_err(|e| {
            tracing::warn!(error = %e, "stored refresh token unreadable");
            RefreshError::Rejected
        })?;
        let tokens = self
            .auth_service
            .refresh(&refresh_token)
            .await
            .map_err(|e| match e {
                AuthServiceError::Failure(f) => RefreshError::Unavailable(f),
                _ => RefreshError::Rejected,
            })?;
        let now = self.clock.now();
        if let Some(rt) = tokens.refresh_token.as_ref() {
            session.refresh_token = Some(self.cipher.encrypt(rt, &context));
        }
        session.expires_at = now + to_time(self.settings.session_ttl);
        session.last_activity = now;
        if !self
            .sessions
            .replace(&current.key, &session, self.settings.session_ttl)
            .await?
        {
            return Err(RefreshError::SessionGone);
        }
        tracing::info!(session = current.key.short(), "session refreshed");
        Ok(session)
    }

    /// Ends the session and tells every instance to close its sockets.
    pub async fn logout(&self, current: &CurrentSession) -> Result<(), StoreError> {
        self.memo.forget(&current.key);
        self.sessions.delete(&current.key).await?;
        self.announce_revocation(&current.key).await;
        tracing::info!(session = current.key.short(), user_id = %current.session.user_id, "logged out");
        Ok(())
    }

    /// Ends every session of the user ("log out everywhere"); returns how many ended.
    ///
    /// Not routed yet: the sessions issue adds `POST /api/v1/auth/logout-all` on it (and the
    /// admin's "end this user's sessions"); kept, with [`SessionStore::delete_all_for_user`]
    /// under it, for that.
    ///
    /// [`SessionStore::delete_all_for_user`]: crate::ports::stores::SessionStore::delete_all_for_user
    pub async fn logout_everywhere(&self, user: &UserId) -> Result<usize, StoreError> {
        let keys = self.sessions.delete_all_for_user(user).await?;
        for key in &keys {
            self.announce_revocation(key).await;
        }
        Ok(keys.len())
    }

    async fn announce_revocation(&self, key: &SessionKey) {
        if let Err(e) = self.bus.publish_revocation(key).await {
            // The session is gone from the store already; sockets elsewhere notice at their
            // next session re-check.
            tracing::warn!(error = %e, "could not announce session revocation");
        }
    }

    /// Binds the session to a tenant (onboarding step 1 and completion).
    pub(crate) async fn bind_tenant(
        &self,
        key: &SessionKey,
        tenant: TenantId,
        onboarding_only: bool,
    ) -> Result<Session, SessionError> {
        let mut session = self.sessions.get(key).await?.ok_or(SessionError::Expired)?;
        session.tenant_id = Some(tenant);
        session.onboarding_only = onboarding_only;
        let remaining = session.expires_at - self.clock.now();
        let ttl = Duration::try_from(remaining).map_err(|_| SessionError::Expired)?;
        if !self.sessions.replace(key, &session, ttl).await? {
            return Err(SessionError::Expired);
        }
        Ok(session)
    }
}
