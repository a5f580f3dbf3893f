//! What this instance remembers of the sessions it has seen: each one's user (so the API
//! rate-limit hit can ride in the session read, [`super::Authenticator::authenticate_limited`])
//! and when it last wrote `lastActivity`.

use crate::model::{SessionKey, UserId};

/// Entries of one [`SessionMemo`] generation.
pub(super) const MEMO_GENERATION: usize = 50_000;

/// What this instance remembers of a session it has seen.
#[derive(Debug, Clone)]
pub(super) struct MemoEntry {
    /// A session's user never changes.
    user: UserId,
    /// When this instance last wrote (or decided to write) `lastActivity`: concurrent requests
    /// of one session on one instance write it once per interval, not once each.
    touched: Option<time::OffsetDateTime>,
}

/// A bounded map session key → [`MemoEntry`]: two generations of at most
/// [`MEMO_GENERATION`] entries; when the young one fills up it becomes the old one and the
/// previous old one is dropped (an approximate LRU: a hit in the old generation moves the
/// entry to the young one). Losing an entry costs one ordinary (unpiggybacked) request.
#[derive(Debug, Default)]
pub(super) struct SessionMemo {
    maps: std::sync::Mutex<[std::collections::HashMap<SessionKey, MemoEntry>; 2]>,
}

impl SessionMemo {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut [std::collections::HashMap<SessionKey, MemoEntry>; 2]) -> R,
    ) -> R {
        let mut maps = self
            .maps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut maps)
    }

    fn insert(
        maps: &mut [std::collections::HashMap<SessionKey, MemoEntry>; 2],
        key: SessionKey,
        entry: MemoEntry,
    ) {
        if maps[0].len() >= MEMO_GENERATION && !maps[0].contains_key(&key) {
            maps[1] = std::mem::take(&mut maps[0]);
        }
        maps[0].insert(key, entry);
    }

    pub(super) fn user(&self, key: &SessionKey) -> Option<UserId> {
        self.with(|maps| {
            if let Some(e) = maps[0].get(key) {
                return Some(e.user.clone());
            }
            let e = maps[1].remove(key)?;
            let user = e.user.clone();
            Self::insert(maps, key.clone(), e);
            Some(user)
        })
    }

    pub(super) fn remember(&self, key: &SessionKey, user: &UserId) {
        self.with(|maps| {
            if maps[0].get(key).is_some_and(|e| &e.user == user) {
                return;
            }
            let touched = maps[1]
                .remove(key)
                .filter(|e| &e.user == user)
                .and_then(|e| e.touched);
            Self::insert(
                maps,
                key.clone(),
                MemoEntry {
                    user: user.clone(),
                    touched,
                },
            );
        });
    }

    pub(super) fn forget(&self, key: &SessionKey) {
        self.with(|maps| {
            maps[0].remove(key);
            maps[1].remove(key);
        });
    }

    /// Whether this request should write `lastActivity`: not if this instance did within
    /// `interval`. Claims the write when it answers `true`.
    pub(super) fn claim_touch(
        &self,
        key: &SessionKey,
        now: time::OffsetDateTime,
        interval: time::Duration,
    ) -> bool {
        self.with(|maps| {
            let [young, old] = maps;
            let Some(e) = young.get_mut(key).or_else(|| old.get_mut(key)) else {
                return true;
            };
            if e.touched.is_some_and(|t| now - t < interval) {
                return false;
            }
            e.touched = Some(now);
            true
        })
    }
}

#[cfg(test)]
impl SessionMemo {
    pub(super) fn len(&self) -> usize {
        self.with(|maps| maps[0].len() + maps[1].len())
    }
}
