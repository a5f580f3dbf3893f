//! The agent-portal service binary's library: configuration, logging and wiring, kept out of
//! `main` so black-box tests start the real application on port 0 (`Application::build`).
//!
//! # Layout
//! - [`configuration`]: [`Settings`](configuration::Settings) (defaults < `PORTAL_CONFIG` file
//!   < environment, spec §16.2 names), validated with garde.
//! - [`telemetry`]: logging (JSON or pretty), OTLP span export, the per-request context.
//! - [`first_steps`]: the URLs a person needs, logged at start-up in the embedded default.
//! - `observability`: the Prometheus recorder and its scrape-time sources.
//! - [`downstreams`]: [`Downstreams`](downstreams::Downstreams): the HTTP adapters where URLs
//!   are configured, the simulators elsewhere, each behind its downstream's guard.
//! - `guarded`: `Guarded`: a simulated port behind the same guard
//!   (deadline, retries, breaker) as an HTTP adapter.
//! - [`realtime`]: [`Realtime`](realtime::Realtime): the instance's WebSocket hub (one event-bus
//!   subscription), the widget-send use case, the going-away close at shutdown.
//! - `startup`: [`Application`](startup::Application): binds, wires adapters into
//!   `portal_api::AppState`, serves.
//! - [`stores`]: [`Stores`](stores::Stores): the store ports on memory or Redis, and the
//!   degraded-mode rate limiter.
//!
//! # Dependencies
//! Everything: this crate is where adapters meet. Stores are in memory or on Redis
//! ([`stores`], `REDIS_URL`); downstreams are simulated or HTTP ([`downstreams`]).

pub mod configuration;
pub mod downstreams;
pub mod first_steps;
mod guarded;
mod observability;
pub mod realtime;
mod startup;
pub mod stores;
pub mod telemetry;

pub use configuration::Settings;
pub use startup::{Application, Overrides};
