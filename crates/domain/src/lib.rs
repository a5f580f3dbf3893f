//! The Agent Portal Service's domain: the model, the rules and the ports.
//!
//! This crate knows nothing of HTTP, Redis or any network: it depends on no I/O crate. The
//! outside world reaches it through the **ports** (traits in [`ports`]), which adapter crates
//! implement (`portal-memory`, `portal-redis`, the HTTP adapters, `portal-crypto`), and it is
//! driven by the **use cases**, which the `portal-api` crate calls from its handlers.
//!
//! # Layout
//! - [`model`]: validated value types (IDs, emails, regions, roles), sessions, tenants,
//!   conversations, metrics, real-time events, and the onboarding state machine.
//! - [`ports`]: every trait the domain needs from the outside, grouped as stores
//!   ([`ports::stores`]), downstream services ([`ports::downstream`]) and system facilities
//!   ([`ports::system`]: clock, randomness, cipher, telemetry).
//! - [`error`]: the errors ports report; each use case has its own error enum next to it.
//! - [`secret`]: secret-bearing types that redact themselves and zero their memory on drop.
//! - [`crypto`]: pure computations (hashes, HMAC-derived tokens, PKCE) that need no key store.
//! - [`resilience`]: the circuit breaker shared by every downstream call.
//! - [`auth`]: sign-in, sessions (refresh, listing and ending them), CSRF, WebSocket tickets.
//! - [`audit`]: the tamper-evident audit trail (HMAC-chained entries per tenant).
//! - [`onboarding`], [`dashboard`], [`history`], [`widget`]: the remaining use cases.
//! - [`realtime`]: the per-instance WebSocket fan-out hub.
//!
//! # Dependencies
//! Allowed: serde, time, uuid, tokio's `sync`/`time`/`rt`/`macros` (no `net`, no `signal`),
//! futures, ring (hashes and HMAC only), secrecy. Anything that opens a socket belongs in an
//! adapter.

pub mod audit;
pub mod auth;
pub mod cache_aside;
pub mod crypto;
pub mod dashboard;
pub mod error;
pub mod history;
pub mod model;
pub mod onboarding;
pub mod ports;
pub mod realtime;
pub mod resilience;
pub mod secret;
pub mod widget;

pub use error::{DownstreamFailure, StoreError};
