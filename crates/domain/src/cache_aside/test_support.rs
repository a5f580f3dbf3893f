//! In-memory doubles of the cache and lock ports for this crate's tests (the `portal-memory`
//! adapters live downstream of the domain), and a clock driven by tokio's paused time.

use super::*;
use crate::error::StoreError;
use crate::model::{MessageId, MessageStatus, MessageUpdate, StatusUpdate, TenantEvent, TenantId};
use crate::ports::stores::{CacheKind, LockToken};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// A cache with generations; `down` makes every call fail.
#[derive(Default)]
pub(crate) struct FakeCache {
    pub(crate) entries: Mutex<HashMap<CacheKey, CacheEntry>>,
    pub(crate) generations: Mutex<HashMap<(TenantId, CacheKind), u64>>,
    pub(crate) down: AtomicBool,
}

impl FakeCache {
    pub(crate) fn generation(&self, tenant: TenantId, kind: CacheKind) -> u64 {
        *self
            .generations
            .lock()
            .unwrap()
            .get(&(tenant, kind))
            .unwrap_or(&0)
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("cache down".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Cache for FakeCache {
    async fn get(&self, key: &CacheKey) -> Result<CacheLookup, StoreError> {
        self.check()?;
        Ok(CacheLookup {
            entry: self.entries.lock().unwrap().get(key).cloned(),
            generation: self.generation(key.tenant(), key.kind()),
        })
    }
    async fn put(
        &self,
        key: &CacheKey,
        entry: &CacheEntry,
        _retain: Duration,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.entries
            .lock()
            .unwrap()
            .insert(key.clone(), entry.clone());
        Ok(())
    }
    async fn invalidate(&self, tenant: TenantId, kind: CacheKind) -> Result<u64, StoreError> {
        self.check()?;
        let mut g = self.generations.lock().unwrap();
        let n = g.entry((tenant, kind)).or_insert(0);
        *n += 1;
        Ok(*n)
    }
}

/// A lock without expiry (tests release explicitly); `down` makes every call fail.
#[derive(Default)]
pub(crate) struct FakeLock {
    pub(crate) held: Mutex<HashMap<String, String>>,
    next: AtomicU64,
    pub(crate) down: AtomicBool,
    pub(crate) acquired: AtomicUsize,
}

#[async_trait]
impl Lock for FakeLock {
    async fn try_acquire(
        &self,
        name: &str,
        _ttl: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("lock down".into()));
        }
        let mut held = self.held.lock().unwrap();
        if held.contains_key(name) {
            return Ok(None);
        }
        let token = self.next.fetch_add(1, Ordering::SeqCst).to_string();
        held.insert(name.to_owned(), token.clone());
        self.acquired.fetch_add(1, Ordering::SeqCst);
        Ok(Some(LockToken(token)))
    }
    async fn renew(
        &self,
        name: &str,
        token: &LockToken,
        _ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.held.lock().unwrap().get(name) == Some(&token.0))
    }
    async fn release(&self, name: &str, token: &LockToken) -> Result<bool, StoreError> {
        let mut held = self.held.lock().unwrap();
        if held.get(name) == Some(&token.0) {
            held.remove(name);
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// Wall-clock time that moves with tokio's (paused) clock.
///
/// Not the workspace's `portal_memory::ManualClock`, on purpose: the cache-aside tests
/// advance one clock (`tokio::time::advance`) and need the freshness (wall clock), the fake
/// cache's retention and the lock's wait (tokio time) to move together; a clock that moves
/// only when told would have to be advanced twice, in step, in every test. (The domain's
/// unit tests could not use it anyway: `portal-memory` depends on this crate.)
pub(crate) struct TokioClock {
    start: tokio::time::Instant,
    base: OffsetDateTime,
}

impl TokioClock {
    pub(crate) fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            base: time::macros::datetime!(2026-02-12 08:30 UTC),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.base + (tokio::time::Instant::now() - self.start)
    }
}

/// Counts cache lookups by result.
#[derive(Default)]
pub(crate) struct CountingTelemetry {
    pub(crate) results: Mutex<Vec<CacheResult>>,
}

impl CountingTelemetry {
    pub(crate) fn count(&self, r: CacheResult) -> usize {
        self.results
            .lock()
            .unwrap()
            .iter()
            .filter(|x| **x == r)
            .count()
    }
}

impl Telemetry for CountingTelemetry {
    fn cache_lookup(&self, _cache: crate::ports::stores::CacheKind, result: CacheResult) {
        self.results.lock().unwrap().push(result);
    }
}

/// A delivery-status event of `tenant`.
pub(crate) fn status_event(tenant: TenantId) -> TenantEvent {
    TenantEvent::Status {
        tenant_id: tenant,
        update: StatusUpdate {
            message_id: MessageId::parse("m1").unwrap(),
            status: MessageStatus::Delivered,
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
            conversation_id: None,
        },
    }
}

/// A new-message event of `tenant`.
pub(crate) fn message_event(tenant: TenantId) -> TenantEvent {
    TenantEvent::Message {
        tenant_id: tenant,
        update: MessageUpdate {
            direction: crate::model::Direction::Inbound,
            conversation_id: crate::model::ConversationId::new_random(),
            message_id: MessageId::parse("m2").unwrap(),
            text: Some("hi".into()),
            status: MessageStatus::Received,
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
            wa_id: None,
        },
    }
}
