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
//! - [`stores`]: one of each adapter, as the domain's `StorePorts`, for wiring and the contract suite.
//! - [`MemorySessionStore`], [`MemoryOneTimeStore`], [`MemoryOnboardingStore`],
//!   [`MemoryCache`], [`MemoryLock`], [`MemoryRateLimiter`] (fixed windows, exact),
//!   [`MemoryIdempotencyStore`], [`MemoryEventBus`] (a `tokio::sync::broadcast`),
//!   [`MemoryAuditLog`] (a list per trail),
//!   [`MemoryOutboundQueue`] (keeps what it is given; [`MemoryOutboundQueue::messages`] lets
//!   tests look).
//! - [`MemoryEventHistory`] (each tenant's recent events), [`MemoryPresence`] (the registry of
//!   live sockets): the real-time ports.
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
mod history;
mod idempotency;
mod lock;
mod onboarding;
mod one_time;
mod outbound;
mod presence;
mod rate;
mod session;
mod ttl;

pub use audit::MemoryAuditLog;
pub use bus::MemoryEventBus;
pub use cache::MemoryCache;
pub use clock::ManualClock;
pub use history::MemoryEventHistory;
pub use idempotency::MemoryIdempotencyStore;
pub use lock::MemoryLock;
pub use onboarding::MemoryOnboardingStore;
pub use one_time::MemoryOneTimeStore;
pub use outbound::MemoryOutboundQueue;
pub use presence::MemoryPresence;
pub use rate::MemoryRateLimiter;
pub use session::MemorySessionStore;

use portal_domain::ports::StorePorts;
use std::sync::Arc;

/// Fresh, empty in-memory stores, one of each, ready to hand to the use cases.
pub fn stores() -> StorePorts {
    let rate_limiter = Arc::new(MemoryRateLimiter::new());
    StorePorts {
        // The session store's `get_and_hit` records on this same limiter.
        sessions: Arc::new(MemorySessionStore::with_limiter(rate_limiter.clone())),
        one_time: Arc::new(MemoryOneTimeStore::new()),
        onboarding: Arc::new(MemoryOnboardingStore::new()),
        cache: Arc::new(MemoryCache::new()),
        lock: Arc::new(MemoryLock::new()),
        rate_limiter,
        idempotency: Arc::new(MemoryIdempotencyStore::new()),
        event_bus: Arc::new(MemoryEventBus::new()),
        outbound: Arc::new(MemoryOutboundQueue::new()),
        audit: Arc::new(MemoryAuditLog::new()),
        history: Arc::new(MemoryEventHistory::new()),
        presence: Arc::new(MemoryPresence::new()),
    }
}

/// Locks a mutex, recovering from poisoning: every critical section leaves the maps
/// consistent, so a panic elsewhere must not take the stores down.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
