//! Simulated downstreams for the embedded default (decisions §3): the Auth Service, Tenant
//! Service, State Manager, Genesys Cloud and Meta WhatsApp Cloud API, an outbound delivery
//! worker, and the simulated Genesys login page, all over one in-memory demo data set.
//!
//! Start with [`Platform::demo`], then take each port from it:
//!
//! ```
//! # use std::sync::Arc;
//! # use portal_domain::ports::system::SystemClock;
//! let platform = portal_sandbox::Platform::demo(Arc::new(SystemClock));
//! let state_manager = platform.state_manager(); // Arc<dyn StateManager>
//! let login_codes = platform.auth();            // Arc<SimAuthService>, for the login page
//! # let _ = (state_manager, login_codes);
//! ```
//!
//! # Layout
//! - [`demo`]: the demo tenants, users, conversations and messages (the only place demo data
//!   is written); fixed tenant and user IDs as constants.
//! - `platform`: the shared `SimState` (one `std` mutex, one clock) and [`Platform`].
//! - `auth`: `SimAuthService` (codes, PKCE, signed tokens, profiles; nothing kept per
//!   signed-in user).
//! - `tenant`: the simulated Tenant Service, `SimTenantService`.
//! - `state_manager`: `SimStateManager`, with metrics computed from the messages.
//! - `credentials`: `SimGenesys`, `SimWhatsApp` and their credential rules (`invalid…`
//!   secrets are refused).
//! - `delivery`: `SimDelivery`, the outbound queue that "delivers" widget sends.
//! - `http`: [`genesys_login`], the login page as an actix-web route, for one
//!   [`RegisteredClient`] (its ID and redirect URIs).
//! - [`serve`]: the HTTP sandbox of the whole platform ([`serve()`]), one module per simulated
//!   service, with fault injection; the `portal-sandbox` binary runs it.
//! - `redis_outbound`: given a Redis URL, consumes the service's outbound Stream and delivers
//!   each message with `SimDelivery`, publishing its events on Redis Pub/Sub
//!   ([`consume_outbound`]).
//!
//! The simulators' logic knows nothing of HTTP; only `http` uses actix-web, so serving any
//! simulator over HTTP later is a thin layer over the same types.
//!
//! # Dependencies
//! `portal-domain` (ports and model), tokio (timers for delivery), ring (randomness), actix-web
//! (`http`, [`serve`]), redis and portal-redis (only in `redis_outbound`: the event bus
//! encoding is portal-redis's own). The simulators never call out to the network.

mod auth;
mod credentials;
mod delivery;
pub mod demo;
mod http;
mod platform;
mod redis_outbound;
pub mod serve;
mod state_manager;
mod tenant;

#[cfg(test)]
mod test_support;

pub use http::{RegisteredClient, genesys_login};
pub use platform::Platform;
pub use redis_outbound::{OutboundConsumer, consume_outbound, consume_outbound_with};
pub use serve::{Fault, Options, Route, Sandbox, serve};
