//! Each tenant's recent events, in memory.

use crate::lock;
use crate::ttl::{TtlMap, deadline};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::{EventId, TenantEvent, TenantId};
use portal_domain::ports::realtime::{EventHistory, EventKey, Recorded, Retention, Since};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// One tenant's history.
#[derive(Debug, Default)]
struct Tenant {
    /// Oldest first: (ID, when recorded, event).
    events: VecDeque<(EventId, Instant, TenantEvent)>,
    /// Until when the history lives without another append (a Redis key's TTL).
    expires: Option<Instant>,
    /// The last ID given, kept across expiry so IDs keep increasing.
    last: Option<EventId>,
    /// Keys recorded within the dedup window, with their ID.
    keys: TtlMap<(String, u32), EventId>,
}

/// [`EventHistory`] in memory, with the Redis adapter's rules: IDs `<unix ms>-<seq>`, trimming
/// by length and age at each append, and a tenant whose last append is older than
/// `max_age` keeps nothing.
#[derive(Debug, Default)]
pub struct MemoryEventHistory {
    tenants: Mutex<HashMap<TenantId, Tenant>>,
}

impl MemoryEventHistory {
    /// No history.
    pub fn new() -> Self {
        Self::default()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Tenant {
    fn expire(&mut self, now: Instant) {
        if self.expires.is_some_and(|at| at <= now) {
            self.events.clear();
            self.expires = None;
        }
    }
}

#[async_trait]
impl EventHistory for MemoryEventHistory {
    async fn append(
        &self,
        key: &EventKey,
        event: &TenantEvent,
        retention: Retention,
    ) -> Result<EventId, StoreError> {
        let now = Instant::now();
        let mut tenants = lock(&self.tenants);
        let tenant = tenants.entry(key.tenant).or_default();
        tenant.expire(now);
        let dedup = (key.digest.clone(), key.occurrence);
        if let Some(id) = tenant.keys.get(&dedup, now) {
            return Ok(*id);
        }
        let ms = unix_ms();
        let id = match tenant.last {
            Some(last) if last.millis() >= ms => last.next(),
            _ => EventId::new(ms, 0),
        };
        tenant.last = Some(id);
        tenant.events.push_back((id, now, event.clone()));
        tenant
            .keys
            .insert(dedup, id, deadline(now, retention.dedup_window), now);
        let max = retention.max_events as usize;
        while tenant.events.len() > max {
            tenant.events.pop_front();
        }
        while tenant
            .events
            .front()
            .is_some_and(|(_, at, _)| now.duration_since(*at) > retention.max_age)
        {
            tenant.events.pop_front();
        }
        tenant.expires = Some(deadline(now, retention.max_age));
        Ok(id)
    }

    async fn since(
        &self,
        tenant: TenantId,
        since: EventId,
        limit: u32,
    ) -> Result<Since, StoreError> {
        let now = Instant::now();
        let mut tenants = lock(&self.tenants);
        let Some(history) = tenants.get_mut(&tenant) else {
            return Ok(Since::Gap);
        };
        history.expire(now);
        let Some(at) = history.events.iter().position(|(id, _, _)| *id == since) else {
            return Ok(Since::Gap);
        };
        let after = history.events.len() - at - 1;
        if after > limit as usize {
            return Ok(Since::Gap);
        }
        Ok(Since::Events(
            history
                .events
                .iter()
                .skip(at + 1)
                .map(|(id, _, event)| Recorded {
                    id: *id,
                    event: event.clone(),
                })
                .collect(),
        ))
    }
}
