//! A request's session: resolving it (with the piggybacked API rate-limit hit), refreshing
//! (single flight across instances), ending and binding it to a tenant.

use super::{Authenticator, CurrentSession, REFRESH_FIELD, to_time};
use crate::audit::{AuditAction, AuditEvent, AuditOutcome};
use crate::error::StoreError;
use crate::model::{Session, SessionId, SessionKey, TenantId, UserId};
use crate::ports::downstream::AuthServiceError;
use crate::ports::stores::{LockToken, RateDecision, RatePolicy};
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
    /// Another refresh of this session did not finish in time (`SERVICE_UNAVAILABLE`, 503).
    #[error("another refresh of this session is still running")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RefreshError {
    /// A short name for the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            RefreshError::Rejected => "rejected",
            RefreshError::SessionGone => "session_gone",
            RefreshError::Unavailable(_) => "auth_service_unavailable",
            RefreshError::Busy => "busy",
            RefreshError::Store(_) => "store_unavailable",
        }
    }
}

/// The name of a session's refresh lock.
fn refresh_lock_name(key: &SessionKey) -> String {
    format!("refresh:{}", key.as_str())
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
        Ok(CurrentSession::new(key, session))
    }

    /// Refreshes the user's tokens with the Auth Service and extends the session: once per
    /// session however many tabs and instances ask at the same time.
    ///
    /// Single flight across instances: the refresh lock of the session (`refresh:<key>`) is
    /// taken with a lease that its holder renews while the Auth Service call runs, so a slow
    /// call never lets a second caller redeem the same refresh token; the rotated token is
    /// stored before the lock is released. The others wait (up to `refresh_wait`, else
    /// [`RefreshError::Busy`]) and return the session the holder stored; a holder that died
    /// frees the lock when its lease runs out, and a waiter takes over. A refresh asked for
    /// within `refresh_reuse` of the last one returns that one's session without a call.
    /// Every refresh is audited.
    pub async fn refresh(&self, current: &CurrentSession) -> Result<Session, RefreshError> {
        let result = self.refresh_single_flight(current).await;
        let event = match &result {
            Ok((_, redeemed)) => {
                AuditEvent::by(current, AuditAction::Refresh, AuditOutcome::Success)
                    .detail("redeemed", *redeemed)
            }
            Err(e) => AuditEvent::by(current, AuditAction::Refresh, AuditOutcome::Failure)
                .reason(e.reason()),
        };
        self.auditor
            .record(event.target(self.session_target(&current.key)));
        result.map(|(session, _)| session)
    }

    /// The refreshed session, and whether this call redeemed the refresh token.
    async fn refresh_single_flight(
        &self,
        current: &CurrentSession,
    ) -> Result<(Session, bool), RefreshError> {
        let key = &current.key;
        let lock = refresh_lock_name(key);
        let deadline = tokio::time::Instant::now() + self.settings.refresh_wait;
        loop {
            let stored = self
                .sessions
                .get(key)
                .await?
                .ok_or(RefreshError::SessionGone)?;
            if self.recently_refreshed(&stored) {
                return Ok((stored, false));
            }
            if let Some(token) = self
                .lock
                .try_acquire(&lock, self.settings.refresh_lease)
                .await?
            {
                let result = self.refresh_holding(key, &lock, &token).await;
                match self.lock.release(&lock, &token).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        session = key.short(),
                        "the refresh lease ran out before the refresh finished"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "refresh lock release failed; it will expire")
                    }
                }
                return result;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    session = key.short(),
                    "gave up waiting for another refresh of this session"
                );
                return Err(RefreshError::Busy);
            }
            tokio::time::sleep(self.settings.refresh_poll).await;
        }
    }

    /// Whether the session was refreshed so recently that a refresh returns it as it is.
    fn recently_refreshed(&self, session: &Session) -> bool {
        session
            .refreshed_at
            .is_some_and(|at| self.clock.now() - at < to_time(self.settings.refresh_reuse))
    }

    /// The refresh itself, under the session's refresh lock.
    async fn refresh_holding(
        &self,
        key: &SessionKey,
        lock: &str,
        token: &LockToken,
    ) -> Result<(Session, bool), RefreshError> {
        // Read under the lock: the previous holder may have finished just before we took it.
        let mut session = self
            .sessions
            .get(key)
            .await?
            .ok_or(RefreshError::SessionGone)?;
        if self.recently_refreshed(&session) {
            return Ok((session, false));
        }
        let context = EncryptionContext::user(&session.user_id, REFRESH_FIELD);
        let stored = session
            .refresh_token
            .as_ref()
            .ok_or(RefreshError::Rejected)?;
        let refresh_token = self.cipher.decrypt(stored, &context).map_err(|e| {
            tracing::warn!(error = %e, "stored refresh token unreadable");
            RefreshError::Rejected
        })?;
        let call = self.auth_service.refresh(&refresh_token);
        let tokens = match self.keeping_lease(lock, token, call).await {
            Ok(tokens) => tokens,
            Err(AuthServiceError::Failure(f)) => return Err(RefreshError::Unavailable(f)),
            Err(_) => {
                // Refused: if our lease ran out and another instance redeemed the token
                // meanwhile, its session is the answer.
                if let Some(theirs) = self.sessions.get(key).await?
                    && theirs.refreshed_at != session.refreshed_at
                    && self.recently_refreshed(&theirs)
                {
                    return Ok((theirs, false));
                }
                return Err(RefreshError::Rejected);
            }
        };
        let now = self.clock.now();
        if let Some(rt) = tokens.refresh_token.as_ref() {
            session.refresh_token = Some(self.cipher.encrypt(rt, &context));
        }
        session.expires_at = now + to_time(self.settings.session_ttl);
        session.last_activity = now;
        session.refreshed_at = Some(now);
        if !self
            .sessions
            .replace(key, &session, self.settings.session_ttl)
            .await?
        {
            return Err(RefreshError::SessionGone);
        }
        tracing::info!(session = key.short(), "session refreshed");
        Ok((session, true))
    }

    /// Runs `call` while renewing the lease of `lock` every third of it. A lost lease (it ran
    /// out, e.g. the store was unreachable for a while) stops the renewals; the call goes on.
    async fn keeping_lease<T>(
        &self,
        lock: &str,
        token: &LockToken,
        call: impl std::future::Future<Output = T>,
    ) -> T {
        let lease = self.settings.refresh_lease;
        let renewing = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                match self.lock.renew(lock, token, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("refresh lease lost while the Auth Service call runs");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "refresh lease renewal failed; retrying"),
                }
            }
        };
        tokio::pin!(call);
        tokio::select! {
            result = &mut call => return result,
            () = renewing => {}
        }
        call.await
    }

    /// Signs out: ends the session, everywhere (its sockets close on every instance).
    pub async fn logout(&self, current: &CurrentSession) -> Result<(), StoreError> {
        self.end_session_key(
            &current.key,
            AuditEvent::by(current, AuditAction::SignOut, AuditOutcome::Success),
        )
        .await?;
        tracing::info!(session = current.key.short(), user_id = %current.session.user_id, "logged out");
        Ok(())
    }

    /// Ends a session: gone from the store, forgotten by this instance, announced on the bus
    /// (every instance closes its sockets), and `event` recorded with the session as target.
    pub(super) async fn end_session_key(
        &self,
        key: &SessionKey,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        self.memo.forget(key);
        self.sessions.delete(key).await?;
        self.announce_revocation(key).await;
        self.auditor.record(event.target(self.session_target(key)));
        Ok(())
    }

    pub(super) async fn announce_revocation(&self, key: &SessionKey) {
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
