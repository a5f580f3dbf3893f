//! Store ports of the real-time area: each tenant's event history (what a reconnecting socket
//! recovers from) and the registry of live sockets across instances (presence and the
//! connection caps).
//!
//! Like every store port, they fail with [`StoreError`]; keys are built by the adapters with the
//! tenant as Redis Cluster hash tag, so each operation stays in one slot.

use crate::error::StoreError;
use crate::model::{EventId, SessionKey, TenantEvent, TenantId, UserId};
use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

/// What identifies one publication of a tenant event on every instance alike: every instance
/// receives each Pub/Sub message, computes the same key and so gets the same [`EventId`]
/// back from [`EventHistory::append`] (`realtime::sequence` builds it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    /// The tenant whose history records the event.
    pub tenant: TenantId,
    /// Hex digest of the event's channel and payload.
    pub digest: String,
    /// 1 for the first publication of this exact payload within the dedup window, 2 for an
    /// identical one published again on purpose, and so on.
    pub occurrence: u32,
}

/// How much of its history a tenant keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At most this many events (the oldest go first).
    pub max_events: u32,
    /// Events older than this go at the next append; a tenant with no event for this long
    /// keeps none.
    pub max_age: Duration,
    /// How long an [`EventKey`] keeps its ID: an instance that appends the same key within
    /// this window gets the first ID back and appends nothing.
    pub dedup_window: Duration,
}

/// An event as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Its position.
    pub id: EventId,
    /// The event.
    pub event: TenantEvent,
}

/// What the history says about the events after a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// Every event after the position, in order (empty when none followed).
    Events(Vec<Recorded>),
    /// The position is no longer in the history (trimmed or expired), was never in it, or more
    /// events follow it than asked for: the events after it cannot all be given.
    Gap,
}

/// Each tenant's recent events (a Redis Stream per tenant; memory in the embedded default).
///
/// Contract:
/// - `append` with a key not seen within `retention.dedup_window` records the event and
///   returns an ID greater than every ID the tenant's history gave before; with a key already
///   recorded within the window it records nothing and returns that key's ID (the two steps
///   are atomic: of two instances racing with one key, exactly one records). Then the oldest
///   events beyond `retention.max_events` and those older than `retention.max_age` go.
/// - `since(tenant, id, limit)` gives the events recorded after `id`, in order, when `id` is
///   itself still in the history (trimming removes the oldest first, so nothing after it is
///   missing) and at most `limit` follow it; otherwise [`Since::Gap`], never a partial list.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EventHistory: Send + Sync {
    /// Records an event once per key; its ID.
    async fn append(
        &self,
        key: &EventKey,
        event: &TenantEvent,
        retention: Retention,
    ) -> Result<EventId, StoreError>;
    /// The events after `since`, or a gap.
    async fn since(
        &self,
        tenant: TenantId,
        since: EventId,
        limit: u32,
    ) -> Result<Since, StoreError>;
}

/// One running instance of the service (random per process).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    /// From 8 random bytes.
    pub fn from_random(bytes: [u8; 8]) -> Self {
        Self(hex::encode(bytes))
    }
    /// Its text (hex, no `|`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose socket it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SocketOwner {
    /// The tenant the socket listens to.
    pub tenant: TenantId,
    /// The signed-in user.
    pub user: UserId,
    /// The session that opened it (the hash, never the session ID).
    pub session: SessionKey,
}

/// The most sockets one session and one user may hold at once, across every instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketCaps {
    /// Per session (5).
    pub per_session: u32,
    /// Per user (20).
    pub per_user: u32,
}

/// What [`Presence::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted.
    Admitted,
    /// The session already holds [`SocketCaps::per_session`] sockets; nothing was counted.
    SessionFull,
    /// The user already holds [`SocketCaps::per_user`] sockets; nothing was counted.
    UserFull,
}

/// How many sockets of one owner an instance holds (for [`Presence::refresh`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerSockets {
    /// The owner.
    pub owner: SocketOwner,
    /// Its sockets on the instance.
    pub sockets: u32,
}

/// A tenant's live sockets across every live instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantPresence {
    /// Each user with at least one socket, and how many, sorted by user.
    pub users: Vec<(UserId, u32)>,
}

impl TenantPresence {
    /// All the tenant's sockets.
    pub fn sockets(&self) -> u64 {
        self.users.iter().map(|(_, n)| u64::from(*n)).sum()
    }
}

/// The registry of live sockets, shared by every instance: what presence reports and what the
/// per-session and per-user caps count. Each instance's entries live only as long as the
/// instance keeps refreshing them, so a crashed instance's sockets disappear within the TTL.
///
/// Contract:
/// - `admit` counts one socket of `owner` on `instance` unless the owner's session or user
///   already holds its cap across the live instances (check and count are atomic: of many
///   racing admits at the cap, none passes it); it marks `instance` live for `ttl` for the
///   tenant.
/// - `release` uncounts one socket (never below zero).
/// - `refresh` marks `instance` live for `ttl` for the tenant and replaces the instance's
///   counts for it with `owners` (so a lost `release` or a store restart heals); entries of
///   instances no longer live may be dropped.
/// - `tenant` sums the sockets of live instances only, per user.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Presence: Send + Sync {
    /// Counts a socket if the caps allow.
    async fn admit(
        &self,
        instance: &InstanceId,
        owner: &SocketOwner,
        caps: SocketCaps,
        ttl: Duration,
    ) -> Result<Admission, StoreError>;
    /// Uncounts a socket.
    async fn release(&self, instance: &InstanceId, owner: &SocketOwner) -> Result<(), StoreError>;
    /// Keeps the instance's entries of a tenant alive, with these exact counts.
    async fn refresh(
        &self,
        instance: &InstanceId,
        tenant: TenantId,
        owners: &[OwnerSockets],
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// The tenant's live sockets.
    async fn tenant(&self, tenant: TenantId) -> Result<TenantPresence, StoreError>;
}
