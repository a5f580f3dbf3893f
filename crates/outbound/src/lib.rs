//! Shared outbound HTTP plumbing for every downstream adapter.
//!
//! One implementation of the things every HTTP call to another service needs, so that the
//! adapter crates (`portal-auth-service`, `portal-tenant-service`, `portal-state-manager`,
//! `portal-genesys`, `portal-whatsapp`) only describe *what* to call and how to read the
//! answer:
//!
//! - a pooled `reqwest` client over rustls ([`build_client`]);
//! - [`Guard`]: the one place a downstream's deadline, retries and breaker live. It runs any
//!   call: each attempt asks the downstream's
//!   [`CircuitBreaker`](portal_domain::resilience::CircuitBreaker), has the operation's
//!   deadline, and is reported to [`Telemetry`](portal_domain::ports::system::Telemetry);
//!   idempotent operations are retried on connect errors, timeouts, 502/503/504 and 429 with
//!   exponential backoff and full jitter ([`RetryPolicy`]). The HTTP adapters reach it
//!   through [`Downstream`]; the server puts each in-process simulator's port behind one too;
//! - a per-service [`Downstream`] that makes each [`Call`] through its guard, caps response
//!   bodies and classifies the answer;
//! - propagation of `X-Request-ID` and W3C `traceparent`/`tracestate` on every request, from
//!   the current OpenTelemetry span or from the per-request [`context::RequestContext`] the
//!   API layer sets with [`context::scope`];
//! - a classified [`CallError`] (401, 403, 404, 409, 400/422, 429, 5xx, timeout, connect
//!   error, malformed body, oversized body, circuit open) that each adapter maps to its port's
//!   error enum, with [`CallError::into_failure`] for the generic part.
//!
//! Nothing here logs a request or response body, a header value, or a secret: log lines carry
//! the service, operation, method, status, attempt and elapsed time only.
//!
//! # Layout
//! - [`context`]: the task-local request context (request ID, incoming trace context).
//! - `propagation`: computes the outgoing correlation headers.
//! - `call`: [`Call`] (a request description) and [`Reply`] (a capped 2xx response).
//! - `error`: [`CallError`] and [`ErrorBody`].
//! - `retry`: [`RetryPolicy`] and the backoff computation.
//! - `guard`: [`Guard`] (the breaker / deadline / retry / telemetry loop), [`Operation`] and
//!   [`Fault`] (how an error tells the guard what happened).
//! - `downstream`: [`Downstream`], an HTTP service behind its guard.
//! - `health`: [`HealthCheck`], a downstream's `GET /health` as a health probe.
//! - `testing` (feature `testing`): a ready-made `Downstream` for adapter tests.
//!
//! # Dependencies
//! `portal-domain` (breaker, telemetry port, failure type), reqwest + rustls (ring provider),
//! tokio (timers), tracing + OpenTelemetry (propagation). No adapter-specific knowledge.

mod call;
pub mod context;
mod downstream;
mod error;
mod guard;
mod health;
mod propagation;
mod retry;
#[cfg(feature = "testing")]
pub mod testing;

pub use call::{Call, Reply};
pub use downstream::{Downstream, join_url};
pub use error::{CallError, ErrorBody};
pub use guard::{Fault, Guard, Operation};
pub use health::HealthCheck;
pub use retry::RetryPolicy;

use std::time::Duration;

/// Default cap on a response body (1 MiB).
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Installs ring as the process-wide rustls crypto provider.
///
/// Safe to call any number of times (the error "already installed" is ignored). Every
/// [`build_client`] call does it, so adapters and tests need not.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Settings of the shared HTTP client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time allowed to establish a TCP + TLS connection (each call also has its own deadline).
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub(crate) pool_idle_timeout: Duration,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// `User-Agent` sent on every request.
    pub(crate) user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            user_agent: concat!("agent-portal-service/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The HTTP client could not be built (bad TLS setup, invalid user agent).
#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client: {0}")]
pub struct ClientBuildError(String);

/// Builds the pooled client every [`Downstream`] shares.
///
/// Redirects are not followed: a downstream API that redirects is misconfigured, and following
/// it could carry credentials elsewhere. A 3xx surfaces as [`CallError::UnexpectedStatus`].
pub fn build_client(config: &ClientConfig) -> Result<reqwest::Client, ClientBuildError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .user_agent(config.user_agent.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientBuildError(e.without_url().to_string()))
}
