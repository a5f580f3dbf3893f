//! The registry of live sockets, in memory (one process: every "instance" is a caller's
//! [`InstanceId`], as on Redis).

use crate::lock;
use crate::ttl::deadline;
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::{SessionKey, TenantId, UserId};
use portal_domain::ports::realtime::{
    Admission, InstanceId, OwnerSockets, Presence, SocketCaps, SocketOwner, TenantPresence,
};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Sockets per owner (a session or a user), per instance.
type Counts<K> = HashMap<K, HashMap<InstanceId, u32>>;

/// One tenant's entries.
#[derive(Debug, Default)]
struct Tenant {
    /// Instances with entries, and until when they count as live.
    live: HashMap<InstanceId, Instant>,
    sessions: Counts<SessionKey>,
    users: Counts<UserId>,
}

impl Tenant {
    /// Drops instances (and their counts) whose entries expired.
    fn expire(&mut self, now: Instant) {
        self.live.retain(|_, until| *until > now);
        let live = &self.live;
        keep_instances(&mut self.sessions, |i| live.contains_key(i));
        keep_instances(&mut self.users, |i| live.contains_key(i));
    }

    /// `who`'s sockets on live instances.
    fn total<K: Eq + Hash>(&self, counts: &Counts<K>, who: &K, now: Instant) -> u32 {
        counts.get(who).map_or(0, |per_instance| {
            per_instance
                .iter()
                .filter(|(i, _)| self.live.get(*i).is_some_and(|until| *until > now))
                .map(|(_, n)| *n)
                .sum()
        })
    }
}

/// Keeps the non-zero counts of the instances `keep` accepts (and owners with any left).
fn keep_instances<K>(counts: &mut Counts<K>, keep: impl Fn(&InstanceId) -> bool) {
    counts.retain(|_, per_instance| {
        per_instance.retain(|i, n| *n > 0 && keep(i));
        !per_instance.is_empty()
    });
}

/// Adds `delta` (never below zero) to `who`'s sockets on `instance`.
fn add<K: Eq + Hash>(counts: &mut Counts<K>, who: K, instance: &InstanceId, delta: i64) {
    let per_instance = counts.entry(who).or_default();
    let n = per_instance.entry(instance.clone()).or_default();
    *n = u32::try_from((i64::from(*n) + delta).max(0)).unwrap_or(u32::MAX);
}

/// [`Presence`] in memory, with the Redis adapter's rules.
#[derive(Debug, Default)]
pub struct MemoryPresence {
    tenants: Mutex<HashMap<TenantId, Tenant>>,
}

impl MemoryPresence {
    /// No sockets.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn admit(
        &self,
        instance: &InstanceId,
        owner: &SocketOwner,
        caps: SocketCaps,
        ttl: Duration,
    ) -> Result<Admission, StoreError> {
        let now = Instant::now();
        let mut tenants = lock(&self.tenants);
        let tenant = tenants.entry(owner.tenant).or_default();
        tenant.expire(now);
        tenant.live.insert(instance.clone(), deadline(now, ttl));
        if tenant.total(&tenant.sessions, &owner.session, now) >= caps.per_session {
            return Ok(Admission::SessionFull);
        }
        if tenant.total(&tenant.users, &owner.user, now) >= caps.per_user {
            return Ok(Admission::UserFull);
        }
        add(&mut tenant.sessions, owner.session.clone(), instance, 1);
        add(&mut tenant.users, owner.user.clone(), instance, 1);
        Ok(Admission::Admitted)
    }

    async fn release(&self, instance: &InstanceId, owner: &SocketOwner) -> Result<(), StoreError> {
        let mut tenants = lock(&self.tenants);
        if let Some(tenant) = tenants.get_mut(&owner.tenant) {
            add(&mut tenant.sessions, owner.session.clone(), instance, -1);
            add(&mut tenant.users, owner.user.clone(), instance, -1);
            let live = &tenant.live;
            keep_instances(&mut tenant.sessions, |i| live.contains_key(i));
            keep_instances(&mut tenant.users, |i| live.contains_key(i));
        }
        Ok(())
    }

    async fn refresh(
        &self,
        instance: &InstanceId,
        tenant: TenantId,
        owners: &[OwnerSockets],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut tenants = lock(&self.tenants);
        let t = tenants.entry(tenant).or_default();
        t.expire(now);
        t.live.insert(instance.clone(), deadline(now, ttl));
        keep_instances(&mut t.sessions, |i| i != instance);
        keep_instances(&mut t.users, |i| i != instance);
        for o in owners {
            let n = i64::from(o.sockets);
            add(&mut t.sessions, o.owner.session.clone(), instance, n);
            add(&mut t.users, o.owner.user.clone(), instance, n);
        }
        Ok(())
    }

    async fn tenant(&self, tenant: TenantId) -> Result<TenantPresence, StoreError> {
        let now = Instant::now();
        let tenants = lock(&self.tenants);
        let Some(t) = tenants.get(&tenant) else {
            return Ok(TenantPresence::default());
        };
        let mut users: Vec<(UserId, u32)> = t
            .users
            .keys()
            .map(|user| (user.clone(), t.total(&t.users, user, now)))
            .filter(|(_, n)| *n > 0)
            .collect();
        users.sort();
        Ok(TenantPresence { users })
    }
}
