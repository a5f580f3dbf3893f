//! One [`Downstream`] against a wiremock server, with telemetry that records each attempt.

use portal_domain::ports::system::Telemetry;
use portal_domain::resilience::BreakerConfig;
use portal_outbound::{ClientConfig, Downstream, Guard, RetryPolicy, build_client};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;
use wiremock::MockServer;

/// Telemetry that keeps every attempt's (service, operation, outcome).
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) calls: Mutex<Vec<(&'static str, &'static str, &'static str)>>,
}

impl Telemetry for Recorder {
    fn downstream_call(
        &self,
        service: &'static str,
        operation: &'static str,
        outcome: &'static str,
        _elapsed: Duration,
    ) {
        self.calls
            .lock()
            .unwrap()
            .push((service, operation, outcome));
    }
}

impl Recorder {
    pub(crate) fn outcomes(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().iter().map(|c| c.2).collect()
    }
}

/// Retries after a few milliseconds (a `Retry-After` is honoured up to 2 s).
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(2),
    }
}

/// The downstream `name` at `path` of `server` (e.g. `/base/`), with [`fast_retry`] and
/// `breaker`, and the recorder of its attempts.
pub(crate) fn downstream_at(
    server: &MockServer,
    path: &str,
    name: &'static str,
    breaker: BreakerConfig,
) -> (Downstream, Arc<Recorder>) {
    let telemetry = Arc::new(Recorder::default());
    let client = build_client(&ClientConfig::default()).unwrap();
    let guard = Guard::new(name, breaker, telemetry.clone()).with_retry(fast_retry());
    let base = Url::parse(&format!("{}{path}", server.uri())).unwrap();
    (Downstream::new(base, client, guard), telemetry)
}
