//! Store ports: everything the service keeps in Redis (or in memory in the embedded default).
//!
//! Every method fails with [`StoreError`]; the domain treats a store failure as "fail closed".
//! Keys are built by the adapters from the typed arguments (spec §4.2 patterns, with the
//! tenant or the session hash as Redis Cluster hash tag).

use crate::error::StoreError;
use crate::model::{BusEvent, OutboundMessage, Period, Session, SessionKey, TenantId, UserId};
use crate::onboarding::OnboardingState;
use async_trait::async_trait;
use futures::stream::BoxStream;
use std::time::Duration;
use time::OffsetDateTime;

/// Sessions, keyed by [`SessionKey`] (SHA-256 of the session ID), with a per-user index.
///
/// Contract:
/// - `create` stores the session with the TTL and adds it to the user's index.
/// - `get` returns `None` for unknown or TTL-expired keys.
/// - `replace` overwrites an existing session (keeping it in the index) and returns `false`
///   without writing if the key no longer exists (a concurrent logout wins).
/// - `touch` sets `lastActivity` only, leaving the TTL alone; a no-op on missing keys.
/// - `delete` removes the session and its index entry; idempotent.
/// - `list_for_user` returns the user's live sessions with their keys (any order).
/// - `delete_all_for_user` removes every session of the user and returns the keys of those
///   that were live ("log out everywhere").
/// - The per-user index never outgrows the live sessions: an entry whose session expired or
///   was deleted is dropped at the latest by the next write to that user's index (`create`,
///   `replace`) or by `list_for_user`, so a user signing in and out for ever keeps an index
///   of at most their live sessions.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create(
        &self,
        key: &SessionKey,
        session: &Session,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Reads a session.
    async fn get(&self, key: &SessionKey) -> Result<Option<Session>, StoreError>;
    /// Overwrites an existing session; `false` if it is gone.
    async fn replace(
        &self,
        key: &SessionKey,
        session: &Session,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Records activity without rewriting the whole session.
    async fn touch(&self, key: &SessionKey, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Deletes a session.
    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError>;
    /// The user's live sessions.
    async fn list_for_user(&self, user: &UserId) -> Result<Vec<(SessionKey, Session)>, StoreError>;
    /// Deletes all of a user's sessions ("log out everywhere").
    async fn delete_all_for_user(&self, user: &UserId) -> Result<Vec<SessionKey>, StoreError>;
    /// Reads a session and, in the same store round trip, records one hit (`cost = 1`) of
    /// `rate_key` under `policy` on the store's shared rate limiter: the very counter
    /// [`RateLimiter::hit`] with the same key uses (so a request may be limited either way).
    ///
    /// The hit is recorded whether or not the session exists (the two are independent
    /// commands of one pipeline; a caller that finds no session discards the decision). The
    /// decision is `None` when the store cannot combine the two, or when its limiter part
    /// failed: the caller then applies the limit itself. The default does exactly that
    /// (a plain [`Self::get`]), so wrappers and test doubles need not implement it.
    async fn get_and_hit(
        &self,
        key: &SessionKey,
        rate_key: &str,
        policy: RatePolicy,
    ) -> Result<(Option<Session>, Option<RateDecision>), StoreError> {
        let _ = (rate_key, policy);
        Ok((self.get(key).await?, None))
    }
}

/// What a single-use token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OneTimePurpose {
    /// A pending OAuth login (state → verifier, binding, redirect). 5 minutes.
    OAuthState,
    /// A WebSocket ticket (→ session). 30 seconds.
    WsTicket,
}

impl OneTimePurpose {
    /// Key prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            OneTimePurpose::OAuthState => "oauth_state",
            OneTimePurpose::WsTicket => "ws_ticket",
        }
    }
}

/// Single-use tokens: the OAuth-state store and the WebSocket-ticket store.
///
/// Contract: `take` returns the payload at most once, atomically (two racing `take`s of one
/// token: exactly one gets it), and `None` after the TTL. `digest` is the SHA-256 (hex) of the
/// token, never the token itself.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OneTimeStore: Send + Sync {
    /// Stores a payload under a token digest.
    async fn put(
        &self,
        purpose: OneTimePurpose,
        digest: &str,
        payload: &str,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Gets and deletes, atomically.
    async fn take(
        &self,
        purpose: OneTimePurpose,
        digest: &str,
    ) -> Result<Option<String>, StoreError>;
}

/// A stored value with its optimistic-concurrency version.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// Incremented by every successful save; 1 after the first.
    pub version: u64,
    /// The value.
    pub value: T,
}

/// What a conditional save did.
#[derive(Debug, Clone, PartialEq)]
pub enum SaveOutcome<T> {
    /// Written; the new version.
    Saved(u64),
    /// Someone else saved first: the current value (or `None` if it is gone).
    Conflict(Option<Versioned<T>>),
}

/// Onboarding wizard state, keyed by tenant (spec §4.2.2), with optimistic concurrency.
///
/// Contract: `save` with `expected = None` creates only if absent; with `Some(v)` writes only
/// if the stored version is `v`. The check and the write are one atomic step. Every save
/// resets the TTL (1 hour from the last update).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OnboardingStore: Send + Sync {
    /// Reads the state.
    async fn load(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Versioned<OnboardingState>>, StoreError>;
    /// Conditionally writes the state.
    async fn save(
        &self,
        tenant: TenantId,
        state: &OnboardingState,
        expected: Option<u64>,
        ttl: Duration,
    ) -> Result<SaveOutcome<OnboardingState>, StoreError>;
}

/// Which cached view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// `metrics:{tenant}:{period}`.
    Metrics {
        /// Tenant.
        tenant: TenantId,
        /// Period.
        period: Period,
    },
    /// `conversations:{tenant}:{page}:{limit}:{status}`.
    Conversations {
        /// Tenant.
        tenant: TenantId,
        /// Page.
        page: u32,
        /// Page size.
        limit: u32,
        /// `active`, `closed` or `all`.
        status: &'static str,
    },
}

impl CacheKey {
    /// The tenant the entry belongs to.
    pub fn tenant(&self) -> TenantId {
        match self {
            CacheKey::Metrics { tenant, .. } | CacheKey::Conversations { tenant, .. } => *tenant,
        }
    }
    /// The cache family, for metrics labels and invalidation scopes.
    pub fn kind(&self) -> CacheKind {
        match self {
            CacheKey::Metrics { .. } => CacheKind::Metrics,
            CacheKey::Conversations { .. } => CacheKind::Conversations,
        }
    }
}

/// A cache family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKind {
    /// Dashboard metrics.
    Metrics,
    /// Conversation list pages.
    Conversations,
}

impl CacheKind {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Metrics => "metrics",
            CacheKind::Conversations => "conversations",
        }
    }
}

/// A cached value, with what the domain needs to judge its freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The JSON value.
    pub value: String,
    /// When it was fetched from the source.
    pub stored_at: OffsetDateTime,
    /// The tenant's cache generation (of this kind) when the fetch started.
    pub generation: u64,
}

/// The result of a cache read: the entry (if any) and the tenant's current generation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheLookup {
    /// The entry, fresh or stale.
    pub entry: Option<CacheEntry>,
    /// The tenant's current generation for this kind. An entry of an older generation is stale.
    pub generation: u64,
}

/// Metrics and conversation caches with generation-based invalidation (never `KEYS`).
///
/// Contract: `get` returns the entry and the current generation in one round trip; `put`
/// keeps the entry for `retain` (longer than the fresh TTL, so a last known good value
/// survives an outage); `invalidate` bumps the tenant's generation of that kind, which makes
/// every existing entry stale at once.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync {
    /// Reads an entry and the generation.
    async fn get(&self, key: &CacheKey) -> Result<CacheLookup, StoreError>;
    /// Writes an entry.
    async fn put(
        &self,
        key: &CacheKey,
        entry: &CacheEntry,
        retain: Duration,
    ) -> Result<(), StoreError>;
    /// Makes all of a tenant's entries of a kind stale; returns the new generation.
    async fn invalidate(&self, tenant: TenantId, kind: CacheKind) -> Result<u64, StoreError>;
}

/// Proof of holding a lock: the random value the lock was set with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub String);

/// A distributed mutual-exclusion lock with expiry (a lease).
///
/// Contract: `try_acquire` succeeds for exactly one caller while the lock is held and not
/// expired, and each acquisition gets a new token (the fencing token); `renew` extends the
/// lease to `ttl` from now only if `token` still owns the lock and says whether it did (a
/// holder whose lease ran out, and was perhaps taken over, learns it has lost the lock);
/// `release` deletes the lock only if `token` still owns it (never another holder's) and says
/// whether it did.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Lock: Send + Sync {
    /// Tries once to take the lock.
    async fn try_acquire(&self, name: &str, ttl: Duration)
    -> Result<Option<LockToken>, StoreError>;
    /// Extends the lease of a lock held with `token` to `ttl` from now.
    async fn renew(&self, name: &str, token: &LockToken, ttl: Duration)
    -> Result<bool, StoreError>;
    /// Releases a lock held with `token`.
    async fn release(&self, name: &str, token: &LockToken) -> Result<bool, StoreError>;
}

/// A rate limit: `limit` units per `window`, counted in fixed windows
/// ([`RatePolicy::fixed_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RatePolicy {
    /// Units allowed per window.
    pub limit: u32,
    /// Window length.
    pub window: Duration,
}

impl RatePolicy {
    /// The rule of every [`RateLimiter`]: a fixed window per key, as the spec's
    /// express-rate-limit counts (§12.2). A key's window opens at its first recorded hit and
    /// lasts `window`; every hit in it adds its `cost`, refused ones too (a client hammering a
    /// full window earns nothing, and the window does not move); a hit is allowed while the
    /// window's count, this hit included, is at most `limit`. `cost = 0` records nothing and
    /// reports whether one more unit would fit. Over any stretch of one window at most
    /// `2 × limit` units pass (the end of one window and the start of the next), as with the
    /// spec's limiter.
    ///
    /// Takes the window's count (after this hit; for `cost = 0`, so far) and the time left in
    /// the window (`None` when no window is open: a report on an idle key, or a window that
    /// closed as it was counted). `reset_after` is the time left: `Retry-After` for a refusal,
    /// `RateLimit-Reset` otherwise.
    ///
    /// The Redis adapter counts with `INCRBY` (`portal-redis`'s `coordination.rs`); the
    /// contract suite holds both adapters to this rule.
    pub fn fixed_window(self, count: u64, cost: u32, left: Option<Duration>) -> RateDecision {
        let limit = u64::from(self.limit);
        let allowed = if cost == 0 {
            count < limit
        } else {
            count <= limit
        };
        let reset_after = match left {
            Some(left) => left.min(self.window),
            None if cost == 0 => Duration::ZERO,
            None => self.window,
        };
        RateDecision {
            allowed,
            limit: self.limit,
            remaining: u32::try_from(limit.saturating_sub(count)).unwrap_or(u32::MAX),
            reset_after,
        }
    }
}

/// A rate limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the hit was allowed (and recorded).
    pub allowed: bool,
    /// The policy's limit, for `RateLimit-Limit`.
    pub limit: u32,
    /// Units left in the window after this hit, for `RateLimit-Remaining`.
    pub remaining: u32,
    /// Time until the window has room again (`Retry-After`) or fully resets (`RateLimit-Reset`).
    pub reset_after: Duration,
}

/// A rate limiter shared by all instances.
///
/// Contract: `hit` applies [`RatePolicy::fixed_window`] to the key's window atomically: with
/// `cost ≥ 1` it adds the units to the window (opening one when none is open) and decides on
/// the new count; `cost = 0` only reports. Exact under concurrency: 1,000 racing hits against
/// a limit of 100 per hour allow exactly 100.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Records `cost` units for `key` under `policy`, or only checks when `cost == 0`.
    async fn hit(
        &self,
        key: &str,
        policy: RatePolicy,
        cost: u32,
    ) -> Result<RateDecision, StoreError>;
}

/// The state of an idempotent operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key was free and is now reserved by the caller.
    Claimed,
    /// Another request holds the key and has not finished.
    InProgress,
    /// The operation finished before: its recorded result (JSON).
    Done(String),
}

/// Idempotency records for widget sends (`Idempotency-Key`, `clientMessageId`).
///
/// Contract: `claim` atomically reserves a free key for `ttl`; `finish` records the result
/// (kept for `ttl`); `abandon` frees a reservation whose operation failed, so a retry can run.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Reserves `key` or reports its state.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<IdempotencyClaim, StoreError>;
    /// Records the result of the operation reserved under `key`.
    async fn finish(&self, key: &str, result: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Frees a reservation.
    async fn abandon(&self, key: &str) -> Result<(), StoreError>;
}

/// The instance-wide event bus (Redis Pub/Sub in production).
///
/// Contract: `subscribe` opens **one** subscription receiving every tenant's events and
/// session revocations, published by any instance (or by other services); the real adapter
/// reconnects and resubscribes by itself. `publish_*` deliver to every current subscriber.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes a tenant event on its channel.
    async fn publish(&self, event: &crate::model::TenantEvent) -> Result<(), StoreError>;
    /// Announces that a session ended, so every instance closes its sockets.
    async fn publish_revocation(&self, key: &SessionKey) -> Result<(), StoreError>;
    /// Opens the instance's subscription.
    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>, StoreError>;
}

/// The outbound message queue (Redis Stream `outbound.message`).
///
/// Contract: `enqueue` durably appends the message (or fails without appending) and returns the
/// entry ID.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OutboundQueue: Send + Sync {
    /// Appends a message.
    async fn enqueue(&self, message: &OutboundMessage) -> Result<String, StoreError>;
}

/// Whose audit trail: a tenant's, or the platform's (what happens before a user has a tenant:
/// failed or rate-limited sign-ins, a new user's first steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditScope {
    /// The tenant's trail (what its admins read).
    Tenant(TenantId),
    /// Everything without a tenant (read by operators in the store, not over the API).
    Platform,
}

/// Where an entry is in its trail, as the store orders them (a Redis Stream ID,
/// `<milliseconds>-<sequence>`). Opaque to the domain; the API hands it out as the page cursor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditCursor(pub String);

/// One entry as stored: its content and its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The entry's content (JSON), exactly the bytes the HMAC covers.
    pub entry: String,
    /// Hex HMAC-SHA256 over the previous entry's HMAC and `entry`.
    pub hmac: String,
    /// The HMAC of the entry before it when it was written (empty for the first entry).
    pub prev: String,
}

/// A stored entry and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAudit {
    /// Its position.
    pub cursor: AuditCursor,
    /// What was stored.
    pub record: AuditRecord,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Appended at this position.
    Appended(AuditCursor),
    /// The trail's head is not `record.prev` (another writer appended first): nothing was
    /// written; this is the head to sign against instead.
    Conflict {
        /// The HMAC the next entry must chain to.
        head: String,
    },
}

/// How long a trail keeps its entries: at most `max_entries`, none older than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRetention {
    /// Entries kept per trail.
    pub max_entries: usize,
    /// Age after which entries are dropped.
    pub max_age: Duration,
}

/// Per-scope append-only trails of chained audit entries (a Redis Stream per tenant).
///
/// Contract:
/// - `append` writes `record` at the end of the scope's trail only if the trail's head (the
///   last entry's HMAC; with no entry, the anchor) equals `record.prev`, as one atomic step:
///   of two writers that read the same head, one appends and the other gets
///   [`AppendOutcome::Conflict`] with the new head, so the chain stays linear whatever the
///   number of instances. It then drops entries beyond `retention` (oldest first) and records
///   the HMAC of the last one dropped as the trail's anchor.
/// - `newest` returns entries strictly before `before` (or from the end), newest first;
///   `oldest` entries strictly after `after` (or from the start), oldest first; at most
///   `count` each.
/// - `anchor` is the HMAC the oldest kept entry chains to: empty until something was dropped.
/// - Scopes never see each other's entries. The store never sees the HMAC key.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends if the head is `record.prev`, then applies the retention.
    async fn append(
        &self,
        scope: AuditScope,
        record: &AuditRecord,
        retention: AuditRetention,
    ) -> Result<AppendOutcome, StoreError>;
    /// Newest first, before `before`.
    async fn newest(
        &self,
        scope: AuditScope,
        before: Option<AuditCursor>,
        count: usize,
    ) -> Result<Vec<StoredAudit>, StoreError>;
    /// Oldest first, after `after`.
    async fn oldest(
        &self,
        scope: AuditScope,
        after: Option<AuditCursor>,
        count: usize,
    ) -> Result<Vec<StoredAudit>, StoreError>;
    /// The HMAC the oldest kept entry chains to.
    async fn anchor(&self, scope: AuditScope) -> Result<String, StoreError>;
}

#[cfg(test)]
mod fixed_window_tests {
    use super::*;

    const POLICY: RatePolicy = RatePolicy {
        limit: 3,
        window: Duration::from_secs(60),
    };

    #[test]
    fn hits_are_allowed_up_to_the_limit_then_refused_until_the_window_ends() {
        let left = Some(Duration::from_secs(42));
        for (count, remaining) in [(1, 2), (2, 1), (3, 0)] {
            let d = POLICY.fixed_window(count, 1, left);
            assert!(d.allowed, "hit {count}");
            assert_eq!((d.limit, d.remaining), (3, remaining));
            assert_eq!(d.reset_after, Duration::from_secs(42), "the time left");
        }
        let refused = POLICY.fixed_window(4, 1, left);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.reset_after, Duration::from_secs(42), "Retry-After");
    }

    #[test]
    fn reports_costs_and_closed_windows() {
        let report = POLICY.fixed_window(2, 0, Some(Duration::from_secs(5)));
        assert!(report.allowed, "one more unit fits");
        assert_eq!(report.remaining, 1);
        let full = POLICY.fixed_window(3, 0, Some(Duration::from_secs(5)));
        assert!(!full.allowed, "no unit fits");
        assert_eq!(full.reset_after, Duration::from_secs(5));
        let idle = POLICY.fixed_window(0, 0, None);
        assert!(idle.allowed);
        assert_eq!((idle.remaining, idle.reset_after), (3, Duration::ZERO));
        let two = POLICY.fixed_window(3, 2, Some(Duration::from_secs(9)));
        assert!(two.allowed, "a cost of 2 that ends at the limit fits");
        let over = POLICY.fixed_window(4, 2, Some(Duration::from_secs(9)));
        assert!(!over.allowed);
        // The window closed as the hit was counted: a whole window ahead.
        assert_eq!(POLICY.fixed_window(1, 1, None).reset_after, POLICY.window);
        // Never more than the window, whatever a store reports.
        let long = POLICY.fixed_window(1, 1, Some(Duration::from_secs(600)));
        assert_eq!(long.reset_after, POLICY.window);
    }
}
