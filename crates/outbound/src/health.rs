//! A downstream's own `GET {base}/health` as a [`HealthProbe`], for the service's `/health`
//! (spec Appendix B checks the Auth Service and the Tenant Service this way).
//!
//! The probe goes around the circuit breaker on purpose: a health check must neither be
//! refused by an open circuit (it is how an operator sees the service is back) nor close it
//! (a healthy `/health` says nothing about the calls that failed).

use crate::Downstream;
use async_trait::async_trait;
use portal_domain::ports::system::{HealthProbe, HealthStatus};
use std::time::{Duration, Instant};

/// Probes `GET {base}/health`: healthy on any 2xx within the timeout.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    downstream: Downstream,
    /// Deadline of one probe (Appendix B: 2 s).
    timeout: Duration,
}

impl HealthCheck {
    /// A probe of `downstream`, with the spec's 2-second deadline.
    pub fn new(downstream: &Downstream) -> Self {
        Self {
            downstream: downstream.clone(),
            timeout: Duration::from_secs(2),
        }
    }

    /// Replaces the deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl HealthProbe for HealthCheck {
    fn name(&self) -> &'static str {
        self.downstream.name()
    }

    async fn check(&self) -> HealthStatus {
        let url = self.downstream.url(&["health"]);
        let started = Instant::now();
        let result = self
            .downstream
            .client()
            .get(url)
            .timeout(self.timeout)
            .send()
            .await;
        let latency = started.elapsed();
        let detail = match result {
            Ok(res) if res.status().is_success() => None,
            Ok(res) => Some(format!("status {}", res.status().as_u16())),
            Err(e) if e.is_timeout() => Some("timeout".to_owned()),
            Err(_) => Some("unreachable".to_owned()),
        };
        HealthStatus {
            ok: detail.is_none(),
            latency,
            detail,
        }
    }
}
