//! The checks, one module per port. Every check has the signature
//! `async fn(&Stores, &Waiter)` and panics when the adapter breaks the contract.

mod audit;
mod bus;
mod cache;
mod history;
mod idempotency;
mod lock;
mod onboarding;
mod one_time;
mod outbound;
mod presence;
mod rate;
mod session;

pub use audit::*;
pub use bus::*;
pub use cache::*;
pub use history::*;
pub use idempotency::*;
pub use lock::*;
pub use onboarding::*;
pub use one_time::*;
pub use outbound::*;
pub use presence::*;
pub use rate::*;
pub use session::*;

use std::time::Duration;

/// A TTL short enough for a real-clock run.
pub(crate) const SHORT_TTL: Duration = Duration::from_millis(200);
/// Comfortably past [`SHORT_TTL`].
pub(crate) const PAST_SHORT_TTL: Duration = Duration::from_millis(300);
/// A TTL no check outlives.
pub(crate) const LONG_TTL: Duration = Duration::from_secs(60);
