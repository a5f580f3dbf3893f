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
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// One tenant's entries.
#[derive(Debug, Default)]
struct Tenant {
    /// Instances with entries, and until when they count as live.
    live: HashMap<InstanceId, Instant>,
    sessions: HashMap<(SessionKey, InstanceId), u32>,
    users: HashMap<(UserId, InstanceId), u32>,
}

impl Tenant {
    fn is_live(&self, instance: &InstanceId, now: Instant) -> bool {
        self.live.get(instance).is_some_and(|until| *until > now)
    }

    fn total<K: Eq + std::hash::Hash + Clone>(
        &self,
        counts: &HashMap<(K, InstanceId), u32>,
        who: &K,
        now: Instant,
    ) -> u32 {
        counts
            .iter()
            .filter(|((k, instance), _)| k == who && self.is_live(instance, now))
            .map(|(_, n)| *n)
            .sum()
    }

    /// Drops instances (and their counts) whose entries expired.
    fn expire(&mut self, now: Instant) {
        self.live.retain(|_, until| *until > now);
        let live = &self.live;
        self.sessions.retain(|(_, i), _| live.contains_key(i));
        self.users.retain(|(_, i), _| live.contains_key(i));
    }
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

fn add<K: Eq + std::hash::Hash>(counts: &mut HashMap<K, u32>, key: K, delta: i64) {
    let n = counts.entry(key).or_default();
    *n = u32::try_from((i64::from(*n) + delta).max(0)).unwrap_or(u32::MAX);
}

fn drop_zeros<K>(counts: &mut HashMap<K, u32>) {
    counts.retain(|_, n| *n > 0);
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
        add(
            &mut tenant.sessions,
            (owner.session.clone(), instance.clone()),
            1,
        );
        add(&mut tenant.users, (owner.user.clone(), instance.clone()), 1);
        Ok(Admission::Admitted)
    }

    async fn release(&self, instance: &InstanceId, owner: &SocketOwner) -> Result<(), StoreError> {
        let mut tenants = lock(&self.tenants);
        if let Some(tenant) = tenants.get_mut(&owner.tenant) {
            add(
                &mut tenant.sessions,
                (owner.session.clone(), instance.clone()),
                -1,
            );
            add(
                &mut tenant.users,
                (owner.user.clone(), instance.clone()),
                -1,
            );
            drop_zeros(&mut tenant.sessions);
            drop_zeros(&mut tenant.users);
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
        t.sessions.retain(|(_, i), _| i != instance);
        t.users.retain(|(_, i), _| i != instance);
        for o in owners {
            add(
                &mut t.sessions,
                (o.owner.session.clone(), instance.clone()),
                i64::from(o.sockets),
            );
            add(
                &mut t.users,
                (o.owner.user.clone(), instance.clone()),
                i64::from(o.sockets),
            );
        }
        drop_zeros(&mut t.sessions);
        drop_zeros(&mut t.users);
        Ok(())
    }

    async fn tenant(&self, tenant: TenantId) -> Result<TenantPresence, StoreError> {
        let now = Instant::now();
        let tenants = lock(&self.tenants);
        let Some(t) = tenants.get(&tenant) else {
            return Ok(TenantPresence::default());
        };
        let mut users: BTreeMap<&str, (UserId, u32)> = BTreeMap::new();
        for ((user, instance), n) in &t.users {
            if *n > 0 && t.is_live(instance, now) {
                users.entry(user.as_str()).or_insert((user.clone(), 0)).1 += n;
            }
        }
        Ok(TenantPresence {
            users: users.into_values().collect(),
        })
    }
}
