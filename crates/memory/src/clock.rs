//! The workspace's one settable clock.

use crate::lock;
use portal_domain::ports::system::Clock;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

/// A [`Clock`] that moves only when told: the one test clock of the workspace (use-case
/// tests, the simulators' tests, the server's black-box tests, which start it at the current
/// time and advance it past a session's expiry).
///
/// It is wall-clock time only. Store TTLs, rate-limit windows and breaker timers follow
/// tokio's clock, so a test of expiry advances both (`tokio::time::pause()` + `advance()`).
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// Stopped at `at`.
    pub fn at(at: OffsetDateTime) -> Arc<Self> {
        Arc::new(Self(Mutex::new(at)))
    }

    /// Stopped at the current time.
    pub fn now_utc() -> Arc<Self> {
        Self::at(OffsetDateTime::now_utc())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *lock(&self.0) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.0)
    }
}
