//! Sessions with a per-user index.

use crate::MemoryRateLimiter;
use crate::lock;
use crate::ttl::{TtlMap, deadline};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::{Session, SessionKey, UserId};
use portal_domain::ports::stores::{RateDecision, RateLimiter, RatePolicy, SessionStore};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Inner {
    sessions: TtlMap<SessionKey, Session>,
    /// user → keys of their sessions. Entries of expired sessions are dropped whenever that
    /// user's index is written or listed ([`Inner::live_keys`]), and by the sweep.
    by_user: HashMap<UserId, HashSet<SessionKey>>,
}

impl Inner {
    fn index(&mut self, user: &UserId, key: &SessionKey) {
        let now = Instant::now();
        self.live_keys(user, now);
        self.by_user
            .entry(user.clone())
            .or_default()
            .insert(key.clone());
    }

    /// The user's indexed keys whose sessions are live, the others dropped from the index.
    fn live_keys(&mut self, user: &UserId, now: Instant) -> Vec<SessionKey> {
        let Some(keys) = self.by_user.get_mut(user) else {
            return Vec::new();
        };
        let sessions = &self.sessions;
        keys.retain(|k| sessions.get(k, now).is_some());
        let live: Vec<SessionKey> = keys.iter().cloned().collect();
        if live.is_empty() {
            self.by_user.remove(user);
        }
        live
    }

    fn unindex(&mut self, user: &UserId, key: &SessionKey) {
        if let Some(keys) = self.by_user.get_mut(user) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_user.remove(user);
            }
        }
    }

    fn purge(&mut self, now: Instant) {
        let mut expired = Vec::new();
        self.sessions
            .purge_if_due(now, |k, s| expired.push((s.user_id, k)));
        for (user, key) in expired {
            self.unindex(&user, &key);
        }
    }
}

/// [`SessionStore`] in memory.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    inner: Mutex<Inner>,
    /// The limiter `get_and_hit` records on: the same one the wiring hands out as the
    /// `RateLimiter` port, so both ways of hitting a key share one counter. Without one,
    /// `get_and_hit` is a plain `get` (decision `None`).
    limiter: Option<Arc<MemoryRateLimiter>>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose `get_and_hit` records hits on `limiter`.
    pub(crate) fn with_limiter(limiter: Arc<MemoryRateLimiter>) -> Self {
        Self {
            inner: Mutex::default(),
            limiter: Some(limiter),
        }
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(
        &self,
        key: &SessionKey,
        session: &Session,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        inner.purge(now);
        if let Some(old) = inner.sessions.remove(key, now) {
            inner.unindex(&old.user_id, key);
        }
        inner.index(&session.user_id, key);
        inner
            .sessions
            .insert(key.clone(), session.clone(), deadline(now, ttl), now);
        Ok(())
    }

    async fn get(&self, key: &SessionKey) -> Result<Option<Session>, StoreError> {
        let now = Instant::now();
        Ok(lock(&self.inner).sessions.get(key, now).cloned())
    }

    /// Both, one after the other (nothing to save in memory); the hit is recorded whether or
    /// not the session exists, as with Redis.
    async fn get_and_hit(
        &self,
        key: &SessionKey,
        rate_key: &str,
        policy: RatePolicy,
    ) -> Result<(Option<Session>, Option<RateDecision>), StoreError> {
        let session = self.get(key).await?;
        let decision = match &self.limiter {
            Some(limiter) => Some(limiter.hit(rate_key, policy, 1).await?),
            None => None,
        };
        Ok((session, decision))
    }

    async fn replace(
        &self,
        key: &SessionKey,
        session: &Session,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let Some(old) = inner.sessions.remove(key, now) else {
            return Ok(false);
        };
        if old.user_id != session.user_id {
            inner.unindex(&old.user_id, key);
            inner.index(&session.user_id, key);
        }
        inner
            .sessions
            .insert(key.clone(), session.clone(), deadline(now, ttl), now);
        Ok(true)
    }

    async fn touch(&self, key: &SessionKey, at: OffsetDateTime) -> Result<(), StoreError> {
        let now = Instant::now();
        if let Some(s) = lock(&self.inner).sessions.get_mut(key, now) {
            s.last_activity = at;
        }
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        if let Some(old) = inner.sessions.remove(key, now) {
            inner.unindex(&old.user_id, key);
        }
        Ok(())
    }

    async fn list_for_user(&self, user: &UserId) -> Result<Vec<(SessionKey, Session)>, StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let keys = inner.live_keys(user, now);
        Ok(keys
            .into_iter()
            .filter_map(|k| {
                let session = inner.sessions.get(&k, now).cloned()?;
                Some((k, session))
            })
            .collect())
    }

    async fn delete_all_for_user(&self, user: &UserId) -> Result<Vec<SessionKey>, StoreError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let keys = inner.by_user.remove(user).unwrap_or_default();
        Ok(keys
            .into_iter()
            .filter(|k| inner.sessions.remove(k, now).is_some())
            .collect())
    }
}

#[cfg(test)]
impl MemorySessionStore {
    /// Entries in `user`'s index, live or not.
    pub(crate) fn index_len(&self, user: &UserId) -> usize {
        lock(&self.inner).by_user.get(user).map_or(0, HashSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_contract::fixtures::session;
    use portal_domain::model::TenantId;

    fn key(n: u32) -> SessionKey {
        SessionKey::from_hex(format!("{n:064x}"))
    }

    /// 50 sign-ins of one user, each session living a minute: the index holds the live
    /// ones only, never the 50.
    #[tokio::test(start_paused = true)]
    async fn the_index_never_outgrows_the_live_sessions() {
        let store = MemorySessionStore::new();
        let user = UserId::parse("u").unwrap();
        for n in 0..50 {
            store
                .create(
                    &key(n),
                    &session(&user, TenantId::new_random()),
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
            tokio::time::advance(Duration::from_secs(20)).await;
        }
        assert!(store.index_len(&user) <= 3, "{}", store.index_len(&user));
        assert_eq!(store.list_for_user(&user).await.unwrap().len(), 2);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(store.list_for_user(&user).await.unwrap().is_empty());
        assert_eq!(store.index_len(&user), 0);
    }
}
