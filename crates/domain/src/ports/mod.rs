//! Every trait the domain needs from the outside world.
//!
//! Ports are `#[async_trait]` traits with `Send + Sync` supertraits, held as `Arc<dyn Port>`.
//! With the `mock` feature (and in this crate's tests) each gets a mockall double
//! (`MockSessionStore`, `MockStateManager`, ...).
//!
//! | port | in-memory adapter | real adapter |
//! | --- | --- | --- |
//! | [`stores::SessionStore`] | `portal-memory` | `portal-redis` |
//! | [`stores::OneTimeStore`] (OAuth state, WebSocket tickets) | `portal-memory` | `portal-redis` |
//! | [`stores::OnboardingStore`] | `portal-memory` | `portal-redis` |
//! | [`stores::Cache`] (metrics, conversations) | `portal-memory` | `portal-redis` |
//! | [`stores::Lock`] | `portal-memory` | `portal-redis` |
//! | [`stores::RateLimiter`] | `portal-memory` | `portal-redis` |
//! | [`stores::IdempotencyStore`] | `portal-memory` | `portal-redis` |
//! | [`stores::EventBus`] | `portal-memory` | `portal-redis` (Pub/Sub) |
//! | [`stores::OutboundQueue`] | `portal-memory` | `portal-redis` (Stream) |
//! | [`stores::AuditLog`] | `portal-memory` | `portal-redis` (a Stream per tenant) |
//! | [`realtime::EventHistory`] (each tenant's recent events) | `portal-memory` | `portal-redis` (Stream per tenant) |
//! | [`realtime::Presence`] (live sockets across instances, connection caps) | `portal-memory` | `portal-redis` |
//! | [`downstream::AuthService`] | `portal-sandbox` (simulated) | `portal-auth-service` |
//! | [`downstream::TenantService`] | `portal-sandbox` | `portal-tenant-service` |
//! | [`downstream::StateManager`] | `portal-sandbox` | `portal-state-manager` |
//! | [`downstream::GenesysCloud`] | `portal-sandbox` | `portal-genesys` |
//! | [`downstream::WhatsApp`] | `portal-sandbox` | `portal-whatsapp` |
//! | [`system::Clock`] | [`system::SystemClock`] | same |
//! | [`system::Random`] | `portal-crypto` | same |
//! | [`system::Cipher`] | `portal-crypto` | same |
//! | [`system::Telemetry`] | [`system::NoopTelemetry`] | `portal-telemetry` (Prometheus) |
//! | [`system::HealthProbe`] | each store/downstream adapter | same |

pub mod downstream;
pub mod realtime;
pub mod stores;
pub mod system;

use realtime::{EventHistory, Presence};
use std::sync::Arc;
use stores::{
    AuditLog, Cache, EventBus, IdempotencyStore, Lock, OnboardingStore, OneTimeStore,
    OutboundQueue, RateLimiter, SessionStore,
};

/// One adapter per store port: what a store backend (memory, Redis) hands the wiring, and what
/// the contract suite checks.
#[derive(Clone)]
pub struct StorePorts {
    /// Sessions and the per-user index.
    pub sessions: Arc<dyn SessionStore>,
    /// OAuth states and WebSocket tickets.
    pub one_time: Arc<dyn OneTimeStore>,
    /// Onboarding wizard state.
    pub onboarding: Arc<dyn OnboardingStore>,
    /// Metrics and conversation caches.
    pub cache: Arc<dyn Cache>,
    /// Locks (cache fill and refresh single flights across instances).
    pub lock: Arc<dyn Lock>,
    /// Rate limits.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Idempotency records of widget sends.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The event bus.
    pub event_bus: Arc<dyn EventBus>,
    /// The outbound queue.
    pub outbound: Arc<dyn OutboundQueue>,
    /// The audit trails.
    pub audit: Arc<dyn AuditLog>,
    /// Each tenant's recent events.
    pub history: Arc<dyn EventHistory>,
    /// The registry of live sockets.
    pub presence: Arc<dyn Presence>,
}

impl StorePorts {
    /// Every port from one value that implements them all (as the Redis adapter does).
    pub fn all_from<S>(shared: Arc<S>) -> Self
    where
        S: SessionStore
            + OneTimeStore
            + OnboardingStore
            + Cache
            + Lock
            + RateLimiter
            + IdempotencyStore
            + EventBus
            + OutboundQueue
            + AuditLog
            + EventHistory
            + Presence
            + 'static,
    {
        Self {
            sessions: shared.clone(),
            one_time: shared.clone(),
            onboarding: shared.clone(),
            cache: shared.clone(),
            lock: shared.clone(),
            rate_limiter: shared.clone(),
            idempotency: shared.clone(),
            event_bus: shared.clone(),
            outbound: shared.clone(),
            audit: shared.clone(),
            history: shared.clone(),
            presence: shared,
        }
    }
}

impl std::fmt::Debug for StorePorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePorts").finish_non_exhaustive()
    }
}
