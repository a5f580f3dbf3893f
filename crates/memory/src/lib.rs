//! In-memory adapters of every store port in
//! [`portal_domain::ports::stores`]: used by domain tests and by the embedded default
//! (`cargo run` with no Redis), and the workspace's test clock, [`ManualClock`].
//!
//! Each adapter keeps its state behind one `std::sync::Mutex` held only for a few map
//! operations (never across an `.await`), so every method completes without yielding. Expiry
//! follows [`tokio::time::Instant`], so tests drive TTLs with `tokio::time::pause()` and
//! `advance()`; expired entries behave exactly as absent ones and are purged lazily (a sweep
//! runs on write once a map has doubled since the last sweep), which bounds memory.
//!
//! All adapters pass the shared `portal-contract` suite (`tests/stores/contract.rs`), the same suite
//! the Redis adapters pass.
//!
//! # Layout
//! - [`MemoryStores`]: one of each adapter, as `Arc<dyn Port>`, for wiring.
//! - [`MemorySessionStore`], [`MemoryOneTimeStore`], [`MemoryOnboardingStore`],
//!   [`MemoryCache`], [`MemoryLock`], [`MemoryRateLimiter`] (GCRA, exact),
//!   [`MemoryIdempotencyStore`], [`MemoryEventBus`] (a `tokio::sync::broadcast`),
//!   [`MemoryAuditLog`] (a list per trail),
//!   [`MemoryOutboundQueue`] (keeps what it is given; [`MemoryOutboundQueue::messages`] lets
//!   tests look).
//! - `ttl`: the expiring map most adapters share.
//! - [`ManualClock`]: the one settable [`Clock`](portal_domain::ports::system::Clock) of the
//!   workspace's tests (wall-clock time that moves only when told).
//!
//! # Dependencies
//! The domain, tokio (`sync`, `time`), futures, uuid, tracing. Nothing that does I/O.

mod audit;
mod bus;
mod cache;
mod clock;
mod idempotency;
mod lock;
mod onboarding;
mod one_time;
mod outbound;
mod rate;
mod session;
mod ttl;

pub use audit::MemoryAuditLog;
pub use bus::MemoryEventBus;
pub use cache::MemoryCache;
pub use clock::ManualClock;
pub use idempotency::MemoryIdempotencyStore;
pub use lock::MemoryLock;
pub use onboarding::MemoryOnboardingStore;
pub use one_time::MemoryOneTimeStore;
pub use outbound::MemoryOutboundQueue;
pub use rate::MemoryRateLimiter;
pub use session::MemorySessionStore;

use portal_domain::ports::stores::{
    AuditLog, Cache, EventBus, IdempotencyStore, Lock, OnboardingStore, OneTimeStore,
    OutboundQueue, RateLimiter, SessionStore,
};
use std::sync::Arc;

/// One of each in-memory store, ready to hand to the use cases.
#[derive(Clone)]
pub struct MemoryStores {
    /// Sessions and the per-user index.
    pub sessions: Arc<dyn SessionStore>,
    /// OAuth states and WebSocket tickets.
    pub one_time: Arc<dyn OneTimeStore>,
    /// Onboarding wizard state.
    pub onboarding: Arc<dyn OnboardingStore>,
    /// Metrics and conversation caches.
    pub cache: Arc<dyn Cache>,
    /// Locks (cache fill single flight).
    pub lock: Arc<dyn Lock>,
    /// Rate limits. The session store's `get_and_hit` records on this same limiter.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Idempotency records of widget sends.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The instance's event bus.
    pub event_bus: Arc<dyn EventBus>,
    /// The outbound queue, as the port.
    pub outbound: Arc<dyn OutboundQueue>,
    /// The same outbound queue, concretely: the embedded default and tests read what was sent.
    pub outbound_queue: Arc<MemoryOutboundQueue>,
    /// The audit trails.
    pub audit: Arc<dyn AuditLog>,
}

impl MemoryStores {
    /// Fresh, empty stores.
    pub fn new() -> Self {
        let outbound_queue = Arc::new(MemoryOutboundQueue::new());
        let rate_limiter = Arc::new(MemoryRateLimiter::new());
        Self {
            sessions: Arc::new(MemorySessionStore::with_limiter(rate_limiter.clone())),
            one_time: Arc::new(MemoryOneTimeStore::new()),
            onboarding: Arc::new(MemoryOnboardingStore::new()),
            cache: Arc::new(MemoryCache::new()),
            lock: Arc::new(MemoryLock::new()),
            rate_limiter,
            idempotency: Arc::new(MemoryIdempotencyStore::new()),
            event_bus: Arc::new(MemoryEventBus::new()),
            outbound: outbound_queue.clone(),
            outbound_queue,
            audit: Arc::new(MemoryAuditLog::new()),
        }
    }
}

impl Default for MemoryStores {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStores").finish_non_exhaustive()
    }
}

/// Locks a mutex, recovering from poisoning: every critical section leaves the maps
/// consistent, so a panic elsewhere must not take the stores down.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
