//! Helpers for adapter tests (feature `testing`): a [`Downstream`] with fast retries.

use crate::{ClientConfig, Downstream, Guard, RetryPolicy, build_client};
use portal_domain::ports::system::NoopTelemetry;
use portal_domain::resilience::BreakerConfig;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Retries after at most a few milliseconds, so retry tests stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(1),
    }
}

/// A breaker that opens after `calls` consecutive failures and stays open for a minute.
pub fn breaker_after(calls: u32) -> BreakerConfig {
    BreakerConfig {
        failure_rate_threshold: 1.0,
        minimum_calls: calls,
        window: calls,
        open_for: Duration::from_secs(60),
        half_open_probes: 1,
    }
}

/// A downstream named `name` at `base_url` with [`fast_retry`] and `breaker`.
///
/// # Panics
/// If `base_url` is not a URL or the client cannot be built: test setup only.
#[allow(clippy::expect_used)]
pub fn downstream(name: &'static str, base_url: &str, breaker: BreakerConfig) -> Downstream {
    let client = build_client(&ClientConfig::default()).expect("client");
    let guard = Guard::new(name, breaker, Arc::new(NoopTelemetry)).with_retry(fast_retry());
    Downstream::new(Url::parse(base_url).expect("base url"), client, guard)
}
