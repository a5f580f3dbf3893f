//! The circuit breaker state machine, and how a downstream port's error says "the call did not
//! work" (spec §13.3, decisions §6, §10).
//!
//! Both are driven by the outbound edge only: `portal-outbound`'s `Guard` puts every call to a
//! downstream (over HTTP or to an in-process simulator) through that downstream's one
//! [`CircuitBreaker`], with a deadline and retries. Use cases never hold a breaker: they call
//! their port once and read [`DownstreamFailure::CircuitOpen`] like any other failure. The
//! breaker lives here, free of I/O, because `/health` (`portal-api`) reports its state.
//!
//! A count-based rolling window of the last `window` call outcomes. The breaker opens when at
//! least `minimum_calls` are in the window and the failure rate reaches
//! `failure_rate_threshold`; while open, calls are refused without being made. After
//! `open_for` it half-opens and lets `half_open_probes` trial calls through: all succeed → it
//! closes with a clean window; any fails → it opens again.
//!
//! Time is `tokio::time::Instant`, so tests drive it with `tokio::time::pause()`.

use crate::error::DownstreamFailure;
use crate::ports::downstream::{
    AuthServiceError, GenesysError, StateManagerError, TenantServiceError, WhatsAppError,
};
use crate::ports::system::{CircuitState, Telemetry};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Fraction of failures (0-1] in the window that opens the circuit.
    pub failure_rate_threshold: f64,
    /// Calls the window must hold before the rate is judged.
    pub minimum_calls: u32,
    /// Number of most recent outcomes considered.
    pub window: u32,
    /// How long the circuit stays open before half-opening.
    pub open_for: Duration,
    /// Trial calls allowed while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_rate_threshold: 0.5,
            minimum_calls: 5,
            window: 20,
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, succeeded: u32 },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Recent outcomes, `true` = failure. Only used while closed.
    outcomes: VecDeque<bool>,
}

/// A circuit breaker for one downstream service.
pub struct CircuitBreaker {
    name: &'static str,
    config: BreakerConfig,
    inner: Mutex<Inner>,
    telemetry: Arc<dyn Telemetry>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .finish()
    }
}

/// The call was refused because the circuit is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open")]
pub struct CircuitOpen;

/// Permission to make one call. Report how it went with [`Permit::success`] or
/// [`Permit::failure`]; dropping it unreported counts as neither (e.g. a cancelled request).
#[derive(Debug)]
#[must_use = "report the call's outcome"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    reported: bool,
}

impl Permit<'_> {
    /// The call succeeded (or failed in a way that is not the service's fault).
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(false);
    }
    /// The call failed because of the service.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(true);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.release_probe();
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(name: &'static str, config: BreakerConfig, telemetry: Arc<dyn Telemetry>) -> Self {
        Self {
            name,
            config,
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                outcomes: VecDeque::new(),
            }),
            telemetry,
        }
    }

    /// The downstream's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state inconsistent (every
        // mutation is a single assignment), so a poisoned lock is safe to reuse.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state (an expired open period reads as half-open).
    pub fn state(&self) -> CircuitState {
        let inner = self.lock();
        match inner.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { until } if Instant::now() < until => CircuitState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Asks to make a call.
    pub fn try_acquire(&self) -> Result<Permit<'_>, CircuitOpen> {
        let mut inner = self.lock();
        let now = Instant::now();
        match inner.phase {
            Phase::Closed => {}
            Phase::Open { until } if now < until => return Err(CircuitOpen),
            Phase::Open { .. } => {
                inner.phase = Phase::HalfOpen {
                    in_flight: 1,
                    succeeded: 0,
                };
                drop(inner);
                self.telemetry
                    .circuit_state(self.name, CircuitState::HalfOpen);
                return Ok(Permit {
                    breaker: self,
                    reported: false,
                });
            }
            Phase::HalfOpen {
                ref mut in_flight,
                succeeded,
            } => {
                if *in_flight + succeeded >= self.config.half_open_probes {
                    return Err(CircuitOpen);
                }
                *in_flight += 1;
            }
        }
        Ok(Permit {
            breaker: self,
            reported: false,
        })
    }

    fn release_probe(&self) {
        let mut inner = self.lock();
        if let Phase::HalfOpen {
            ref mut in_flight, ..
        } = inner.phase
        {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    fn record(&self, failed: bool) {
        let mut inner = self.lock();
        let mut transition = None;
        match inner.phase {
            Phase::Closed => {
                inner.outcomes.push_back(failed);
                while inner.outcomes.len() > self.config.window as usize {
                    inner.outcomes.pop_front();
                }
                let calls = inner.outcomes.len() as u32;
                let failures = inner.outcomes.iter().filter(|f| **f).count() as f64;
                if calls >= self.config.minimum_calls
                    && failures / f64::from(calls) >= self.config.failure_rate_threshold
                {
                    inner.phase = Phase::Open {
                        until: Instant::now() + self.config.open_for,
                    };
                    inner.outcomes.clear();
                    transition = Some(CircuitState::Open);
                }
            }
            Phase::Open { .. } => {}
            Phase::HalfOpen {
                in_flight,
                succeeded,
            } => {
                if failed {
                    inner.phase = Phase::Open {
                        until: Instant::now() + self.config.open_for,
                    };
                    transition = Some(CircuitState::Open);
                } else if succeeded + 1 >= self.config.half_open_probes {
                    inner.phase = Phase::Closed;
                    inner.outcomes.clear();
                    transition = Some(CircuitState::Closed);
                } else {
                    inner.phase = Phase::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        succeeded: succeeded + 1,
                    };
                }
            }
        }
        drop(inner);
        if let Some(state) = transition {
            tracing::warn!(
                breaker = self.name,
                state = state.as_str(),
                "circuit breaker changed state"
            );
            self.telemetry.circuit_state(self.name, state);
        }
    }
}

/// A downstream port's error: its business answers (a healthy call) or a [`DownstreamFailure`].
pub trait DownstreamError: From<DownstreamFailure> {
    /// The transport or service failure, if this is one (as opposed to a business answer such
    /// as "not found", which counts as a healthy call).
    fn failure(&self) -> Option<&DownstreamFailure>;
}

impl DownstreamError for DownstreamFailure {
    fn failure(&self) -> Option<&DownstreamFailure> {
        Some(self)
    }
}

macro_rules! port_errors {
    ($($error:ident),*) => {$(
        impl DownstreamError for $error {
            fn failure(&self) -> Option<&DownstreamFailure> {
                match self {
                    $error::Failure(f) => Some(f),
                    _ => None,
                }
            }
        }
    )*};
}

port_errors!(
    AuthServiceError,
    TenantServiceError,
    StateManagerError,
    GenesysError,
    WhatsAppError
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::system::NoopTelemetry;

    fn breaker(cfg: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker::new("test", cfg, Arc::new(NoopTelemetry))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_threshold_refuses_then_half_opens_and_closes() {
        let b = breaker(BreakerConfig {
            minimum_calls: 4,
            ..Default::default()
        });
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        assert_eq!(b.state(), CircuitState::Closed, "below minimum calls");
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.try_acquire().is_err());

        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(b.state(), CircuitState::HalfOpen);
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err(), "only one probe while half-open");
        probe.success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.try_acquire().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens() {
        let b = breaker(BreakerConfig {
            minimum_calls: 1,
            ..Default::default()
        });
        b.try_acquire().unwrap().failure();
        tokio::time::advance(Duration::from_secs(30)).await;
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), CircuitState::Open);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(b.try_acquire().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn successes_keep_the_rate_below_threshold() {
        let b = breaker(BreakerConfig::default());
        for i in 0..40 {
            let p = b.try_acquire().unwrap();
            if i % 3 == 0 { p.failure() } else { p.success() }
        }
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_probe_frees_its_slot() {
        let b = breaker(BreakerConfig {
            minimum_calls: 1,
            ..Default::default()
        });
        b.try_acquire().unwrap().failure();
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(b.try_acquire().unwrap());
        assert!(b.try_acquire().is_ok());
    }
}
