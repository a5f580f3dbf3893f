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
