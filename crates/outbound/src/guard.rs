//! [`Guard`]: the deadline, retries and circuit breaker of one downstream, around any call.
//!
//! Every call to a downstream goes through its guard exactly once, whatever serves the port:
//! [`Downstream`](crate::Downstream) runs each HTTP exchange through it, and the server wraps
//! each in-process simulator's port in the same guard. So one failing read costs the same
//! attempts everywhere, one breaker counts every attempt, and the use cases above call their
//! port once.
//!
//! A call is attempted while the breaker allows it, each attempt bounded by the operation's
//! deadline. A failed attempt of an idempotent operation is retried when [`Fault::is_retryable`]
//! says so, after a full-jitter backoff ([`RetryPolicy`]) or the service's `Retry-After` (up to
//! [`RetryPolicy::max_retry_after`]). Every attempt is reported to telemetry
//! (`downstream_call`) and, when it failed, logged without its payload.

use crate::retry::RetryPolicy;
use portal_domain::DownstreamFailure;
use portal_domain::ports::system::Telemetry;
use portal_domain::resilience::{BreakerConfig, CircuitBreaker, DownstreamError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// What the guard needs to know about a failed attempt.
///
/// Implemented by [`CallError`](crate::CallError) (HTTP) and by every downstream port's error
/// enum ([`DownstreamError`]: the business answers are healthy calls, the
/// [`DownstreamFailure`] is classified like the HTTP error it stands for).
pub trait Fault: Sized {
    /// The attempt's deadline passed.
    fn timeout() -> Self;
    /// The breaker refused the call.
    fn circuit_open() -> Self;
    /// Counts as a failure for the breaker (the service's fault, not the caller's).
    fn is_service_fault(&self) -> bool;
    /// An idempotent call may be tried again after it.
    fn is_retryable(&self) -> bool;
    /// How long the service asked us to wait (HTTP 429 `Retry-After`).
    fn retry_after(&self) -> Option<Duration>;
    /// The `outcome` label of the downstream-call metric.
    fn outcome(&self) -> &'static str;
    /// The HTTP status behind it, for the log line.
    fn status(&self) -> Option<u16>;
}

impl<E: DownstreamError> Fault for E {
    fn timeout() -> Self {
        DownstreamFailure::Timeout.into()
    }

    fn circuit_open() -> Self {
        DownstreamFailure::CircuitOpen.into()
    }

    fn is_service_fault(&self) -> bool {
        matches!(
            self.failure(),
            Some(DownstreamFailure::Timeout | DownstreamFailure::Unavailable { .. })
        )
    }

    fn is_retryable(&self) -> bool {
        matches!(
            self.failure(),
            Some(
                DownstreamFailure::Timeout
                    | DownstreamFailure::RateLimited { .. }
                    | DownstreamFailure::Unavailable {
                        status: None | Some(502..=504)
                    }
            )
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        match self.failure() {
            Some(DownstreamFailure::RateLimited { retry_after }) => *retry_after,
            _ => None,
        }
    }

    fn outcome(&self) -> &'static str {
        match self.failure() {
            None => "rejected",
            Some(DownstreamFailure::Timeout) => "timeout",
            Some(DownstreamFailure::CircuitOpen) => "circuit_open",
            Some(DownstreamFailure::RateLimited { .. }) => "rate_limited",
            Some(DownstreamFailure::Unavailable { status: Some(_) }) => "server_error",
            Some(DownstreamFailure::Unavailable { status: None }) => "connect_error",
            Some(DownstreamFailure::Protocol(_)) => "malformed",
        }
    }

    fn status(&self) -> Option<u16> {
        match self.failure() {
            Some(DownstreamFailure::Unavailable { status }) => *status,
            Some(DownstreamFailure::RateLimited { .. }) => Some(429),
            _ => None,
        }
    }
}

/// One operation of a downstream, as the guard runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// Its name in logs and metrics (`metrics`, `get_tenant`, ...).
    pub name: &'static str,
    /// Deadline of each attempt.
    pub deadline: Duration,
    /// Whether it may be attempted more than once (reads, PUTs; never a POST that creates).
    pub idempotent: bool,
}

impl Operation {
    /// An idempotent operation (retried).
    pub const fn read(name: &'static str, deadline: Duration) -> Self {
        Self {
            name,
            deadline,
            idempotent: true,
        }
    }

    /// An operation that must not run twice (never retried).
    pub const fn write(name: &'static str, deadline: Duration) -> Self {
        Self {
            name,
            deadline,
            idempotent: false,
        }
    }
}

/// The deadline, retry policy and circuit breaker of one downstream. Cheap to clone (clones
/// share the breaker).
#[derive(Clone)]
pub struct Guard {
    /// The breaker every attempt reports to; shared with `/health` and metrics.
    breaker: Arc<CircuitBreaker>,
    retry: RetryPolicy,
    telemetry: Arc<dyn Telemetry>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("breaker", &self.breaker)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard for the downstream `service` with a fresh breaker and the default retries.
    pub fn new(
        service: &'static str,
        breaker: BreakerConfig,
        telemetry: Arc<dyn Telemetry>,
    ) -> Self {
        Self {
            breaker: Arc::new(CircuitBreaker::new(service, breaker, telemetry.clone())),
            retry: RetryPolicy::default(),
            telemetry,
        }
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The downstream's name (`authService`, `stateManager`, ...).
    pub fn service(&self) -> &'static str {
        self.breaker.name()
    }

    /// The breaker, for `/health`'s `circuits` and the `portal_circuit_state` gauge.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Runs `attempt` as `operation` in a `downstream_call` span (an in-process call: kind
    /// INTERNAL, named `{service} {operation}`, status ERROR with `error.type` = the outcome
    /// when the call failed for good): see [`Guard::run`].
    pub async fn call<T, E, F, Fut>(&self, operation: Operation, attempt: F) -> Result<T, E>
    where
        E: Fault,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let span = tracing::info_span!(
            "downstream_call",
            otel.name = %format_args!("{} {}", self.service(), operation.name),
            otel.kind = "internal",
            otel.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            peer.service = self.service(),
            service = self.service(),
            operation = operation.name,
        );
        let result = self.run(operation, attempt).instrument(span.clone()).await;
        if let Err(e) = &result {
            record_failure(&span, e);
        }
        result
    }

    /// Runs `attempt` until it succeeds, fails for good, or runs out of attempts: each one
    /// asks the breaker first (an open circuit fails with [`Fault::circuit_open`] without
    /// calling), has `operation.deadline`, and tells the breaker how it went.
    ///
    /// Runs in the caller's span (the HTTP path opens its own `downstream_call` span first).
    pub async fn run<T, E, F, Fut>(&self, operation: Operation, attempt: F) -> Result<T, E>
    where
        E: Fault,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_counted(operation, attempt).await.0
    }

    /// [`Guard::run`], also saying how many attempts were made.
    pub(crate) async fn run_counted<T, E, F, Fut>(
        &self,
        operation: Operation,
        mut attempt: F,
    ) -> (Result<T, E>, u32)
    where
        E: Fault,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let service = self.service();
        let max_attempts = if operation.idempotent {
            self.retry.max_attempts.max(1)
        } else {
            1
        };
        let mut number = 0u32;
        loop {
            number += 1;
            let Ok(permit) = self.breaker.try_acquire() else {
                self.telemetry.downstream_call(
                    service,
                    operation.name,
                    "circuit_open",
                    Duration::ZERO,
                );
                tracing::warn!(
                    service,
                    operation = operation.name,
                    attempt = number,
                    "circuit open: call not made"
                );
                return (Err(E::circuit_open()), number);
            };
            let started = Instant::now();
            let result = match tokio::time::timeout(operation.deadline, attempt()).await {
                Ok(result) => result,
                Err(_) => Err(E::timeout()),
            };
            let elapsed = started.elapsed();
            match &result {
                Err(e) if e.is_service_fault() => permit.failure(),
                _ => permit.success(),
            }
            let outcome = match &result {
                Ok(_) => "success",
                Err(e) => e.outcome(),
            };
            self.telemetry
                .downstream_call(service, operation.name, outcome, elapsed);
            let elapsed_ms = elapsed.as_millis() as u64;
            let err = match result {
                Ok(value) => {
                    tracing::debug!(
                        service,
                        operation = operation.name,
                        attempt = number,
                        elapsed_ms,
                        "downstream call succeeded"
                    );
                    return (Ok(value), number);
                }
                Err(e) => e,
            };
            let retry_in = if number < max_attempts && err.is_retryable() {
                match err.retry_after() {
                    Some(after) if after > self.retry.max_retry_after => None,
                    Some(after) => Some(after),
                    None => Some(self.retry.backoff(number)),
                }
            } else {
                None
            };
            tracing::warn!(
                service,
                operation = operation.name,
                status = err.status(),
                attempt = number,
                elapsed_ms,
                outcome,
                retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
                "downstream call failed"
            );
            match retry_in {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return (Err(err), number),
            }
        }
    }
}

/// Marks a `downstream_call` span failed: OpenTelemetry status ERROR and `error.type` (the
/// HTTP status when there was one, else the outcome: `timeout`, `connect_error`,
/// `circuit_open`...), as the semantic conventions ask of a client span whose call failed.
pub(crate) fn record_failure<E: Fault>(span: &tracing::Span, err: &E) {
    span.record("otel.status_code", "ERROR");
    match err.status() {
        Some(status) => {
            span.record("http.response.status_code", i64::from(status));
            span.record("error.type", status.to_string().as_str());
        }
        None => {
            span.record("error.type", err.outcome());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::ports::downstream::StateManagerError;
    use portal_domain::ports::system::{CircuitState, NoopTelemetry};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn guard(breaker: BreakerConfig) -> Guard {
        Guard::new("stateManager", breaker, Arc::new(NoopTelemetry))
    }

    const READ: Operation = Operation::read("metrics", Duration::from_secs(1));

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_a_bounded_number_of_times() {
        let g = guard(BreakerConfig::default());
        let calls = AtomicUsize::new(0);
        let got: Result<u32, DownstreamFailure> = g
            .run(READ, || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(DownstreamFailure::Unavailable { status: Some(503) })
                    } else {
                        Ok(4)
                    }
                }
            })
            .await;
        assert_eq!(got, Ok(4));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let calls = AtomicUsize::new(0);
        let got: Result<u32, DownstreamFailure> = g
            .run(Operation::read("slow", Duration::from_millis(100)), || {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending()
            })
            .await;
        assert_eq!(got, Err(DownstreamFailure::Timeout));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "attempts are bounded");

        // (The timeouts above opened the breaker: 3 failures in 5 calls.)
        assert_eq!(g.breaker().state(), CircuitState::Open);
        let g = guard(BreakerConfig::default());
        let calls = AtomicUsize::new(0);
        let got: Result<u32, DownstreamFailure> = g
            .run(READ, || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(DownstreamFailure::Protocol("bad json".into())) }
            })
            .await;
        assert!(got.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a protocol error is not retried"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_is_attempted_once_and_a_500_is_not_retried() {
        let g = guard(BreakerConfig::default());
        let calls = AtomicUsize::new(0);
        let unavailable = || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(DownstreamFailure::Unavailable { status: Some(503) }) }
        };
        let write = Operation::write("create", Duration::from_secs(1));
        assert!(g.run(write, unavailable).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicUsize::new(0);
        let got: Result<(), DownstreamFailure> = g
            .run(READ, || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(DownstreamFailure::Unavailable { status: Some(500) }) }
            })
            .await;
        assert!(got.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn business_answers_are_healthy_calls_and_an_open_circuit_calls_nothing() {
        let g = guard(BreakerConfig {
            minimum_calls: 2,
            window: 2,
            ..BreakerConfig::default()
        });
        let calls = AtomicUsize::new(0);
        for _ in 0..4 {
            let got: Result<(), StateManagerError> = g
                .run(READ, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(StateManagerError::NotFound) }
                })
                .await;
            assert_eq!(got, Err(StateManagerError::NotFound));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4, "not found is not retried");
        assert_eq!(g.breaker().state(), CircuitState::Closed);

        let failing = || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(StateManagerError::from(DownstreamFailure::Timeout)) }
        };
        let _ = g.run(READ, failing).await;
        assert_eq!(g.breaker().state(), CircuitState::Open);
        let before = calls.load(Ordering::SeqCst);
        let got: Result<(), StateManagerError> = g
            .run(READ, || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .await;
        assert_eq!(
            got,
            Err(StateManagerError::Failure(DownstreamFailure::CircuitOpen))
        );
        assert_eq!(calls.load(Ordering::SeqCst), before, "no call while open");
    }
}
