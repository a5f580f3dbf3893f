//! Dashboard metrics (spec §7, §4.2.3, §13.1, decisions §6).
//!
//! [`Dashboard::stats`] serves a period's figures from the metrics cache (fresh for 10
//! minutes) through [`CacheAside`]: one State Manager call per cold key across all callers
//! and instances, the last known figures marked `stale` while the State Manager is failing,
//! and [`CacheAsideError::Unavailable`] (503) when there is nothing to fall back on — never
//! made-up zeros. [`Dashboard::refresh`] and the event-driven [`CacheInvalidation`] make a
//! tenant's cached figures stale at once (generation bump, no `KEYS`).
//! [`Dashboard::range`] reads a date range uncached, through the same circuit breaker.

use crate::cache_aside::{
    CacheAside, CacheAsideConfig, CacheAsideError, Cached, Fetch, RetryPolicy, guarded,
};
use crate::error::{DownstreamFailure, StoreError};
use crate::model::{
    BusEvent, DashboardStats, DateRange, Period, RawMetrics, TenantEvent, TenantId, success_rate,
};
use crate::ports::downstream::{StateManager, StateManagerError};
use crate::ports::stores::{Cache, CacheKey, CacheKind, Lock};
use crate::ports::system::{Clock, Telemetry};
use crate::resilience::CircuitBreaker;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long dashboard figures are served from the cache (spec §13.1).
pub const METRICS_FRESH_FOR: Duration = Duration::from_secs(600);
/// Deadline of a State Manager metrics call (spec §3.1.3).
pub const METRICS_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /api/v1/dashboard/stats` response: the figures, plus `"stale": true` when the State
/// Manager could not be reached and these are the last known ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsView {
    /// The figures (spec §7.2 fields).
    #[serde(flatten)]
    pub stats: DashboardStats,
    /// Present (and `true`) only for a fallback value.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

impl From<Cached<DashboardStats>> for StatsView {
    fn from(c: Cached<DashboardStats>) -> Self {
        Self {
            stats: c.value,
            stale: c.stale,
        }
    }
}

/// The dashboard figures of a date range (no period, no fetch time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeFigures {
    /// All messages in the range.
    pub total_messages: u64,
    /// Accepted by WhatsApp.
    pub sent_count: u64,
    /// Delivered.
    pub delivered_count: u64,
    /// Read.
    pub read_count: u64,
    /// Failed.
    pub failed_count: u64,
    /// Delivered / total, one decimal.
    pub success_rate: String,
    /// Conversations currently active.
    pub active_conversations: u64,
    /// Distinct customers.
    pub unique_customers: u64,
}

impl From<&RawMetrics> for RangeFigures {
    fn from(raw: &RawMetrics) -> Self {
        Self {
            total_messages: raw.total_messages,
            sent_count: raw.sent,
            delivered_count: raw.delivered,
            read_count: raw.read,
            failed_count: raw.failed,
            success_rate: success_rate(raw.delivered, raw.total_messages),
            active_conversations: raw.active_conversations,
            unique_customers: raw.distinct_wa_ids,
        }
    }
}

/// `GET /api/v1/dashboard/metrics/range` response (spec §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeReport {
    /// The tenant.
    pub tenant_id: TenantId,
    /// First day, `YYYY-MM-DD`.
    pub start_date: String,
    /// Last day (inclusive), `YYYY-MM-DD`.
    pub end_date: String,
    /// The figures.
    pub metrics: RangeFigures,
}

/// Why a dashboard operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DashboardError {
    /// The State Manager failed and nothing is cached (`SERVICE_UNAVAILABLE`, 503).
    #[error("metrics unavailable: {0}")]
    Unavailable(DownstreamFailure),
    /// The cache store failed (refresh) (`SERVICE_UNAVAILABLE`, 503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug, not an outage (`INTERNAL_ERROR`, 500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<CacheAsideError> for DashboardError {
    fn from(e: CacheAsideError) -> Self {
        match e {
            CacheAsideError::Unavailable(f) => DashboardError::Unavailable(f),
            CacheAsideError::Internal(m) => DashboardError::Internal(m),
        }
    }
}

/// Makes a tenant's cached views stale when its traffic changes them (spec §13.1).
#[derive(Clone)]
pub struct CacheInvalidation {
    cache: Arc<dyn Cache>,
}

impl std::fmt::Debug for CacheInvalidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheInvalidation").finish_non_exhaustive()
    }
}

impl CacheInvalidation {
    /// Over `cache`.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache }
    }

    /// Invalidates every kind in `kinds` for `tenant`; tries all, returns the first error.
    pub async fn invalidate(
        &self,
        tenant: TenantId,
        kinds: &[CacheKind],
    ) -> Result<(), StoreError> {
        let mut first_error = None;
        for kind in kinds {
            if let Err(e) = self.cache.invalidate(tenant, *kind).await {
                tracing::warn!(tenant_id = %tenant, cache = kind.as_str(), error = %e, "cache invalidation failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The caches an event makes stale: a status change moves the metrics and a
    /// conversation's last activity; a message changes the conversation list.
    pub fn kinds_for(event: &TenantEvent) -> &'static [CacheKind] {
        match event {
            TenantEvent::Status { .. } => &[CacheKind::Metrics, CacheKind::Conversations],
            TenantEvent::Message { .. } => &[CacheKind::Conversations],
        }
    }

    /// Applies one event. Failures are logged: the entries still expire with their TTL.
    pub async fn on_event(&self, event: &TenantEvent) {
        let _ = self
            .invalidate(event.tenant_id(), Self::kinds_for(event))
            .await;
    }

    /// Applies every tenant event of the instance's bus subscription until it ends.
    pub async fn run(&self, mut events: BoxStream<'static, BusEvent>) {
        while let Some(event) = events.next().await {
            if let BusEvent::Tenant(event) = event {
                self.on_event(&event).await;
            }
        }
        tracing::info!("event subscription ended; cache invalidation stopped");
    }
}

/// The dashboard use case.
pub struct Dashboard {
    metrics: CacheAside<DashboardStats>,
    invalidation: CacheInvalidation,
    state_manager: Arc<dyn StateManager>,
    clock: Arc<dyn Clock>,
    /// Deadline and retries of the uncached range read.
    range_timeout: Duration,
    range_retry: RetryPolicy,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Builds the use case with the spec's timings (10-minute cache, 3-second deadline).
    /// `breaker` is the State Manager's.
    pub fn new(
        state_manager: Arc<dyn StateManager>,
        cache: Arc<dyn Cache>,
        lock: Arc<dyn Lock>,
        breaker: Arc<CircuitBreaker>,
        clock: Arc<dyn Clock>,
        telemetry: Arc<dyn Telemetry>,
    ) -> Self {
        Self::with_config(
            state_manager,
            cache,
            lock,
            breaker,
            clock,
            telemetry,
            CacheAsideConfig::new(METRICS_FRESH_FOR, METRICS_TIMEOUT),
        )
    }

    /// Builds the use case with explicit cache timings.
    pub fn with_config(
        state_manager: Arc<dyn StateManager>,
        cache: Arc<dyn Cache>,
        lock: Arc<dyn Lock>,
        breaker: Arc<CircuitBreaker>,
        clock: Arc<dyn Clock>,
        telemetry: Arc<dyn Telemetry>,
        config: CacheAsideConfig,
    ) -> Self {
        Self {
            metrics: CacheAside::new(
                Arc::clone(&cache),
                lock,
                breaker,
                Arc::clone(&clock),
                telemetry,
                config,
            ),
            invalidation: CacheInvalidation::new(cache),
            state_manager,
            clock,
            range_timeout: config.fetch_timeout,
            range_retry: config.retry,
        }
    }

    /// The invalidation half, to run on the instance's event subscription.
    pub fn invalidation(&self) -> CacheInvalidation {
        self.invalidation.clone()
    }

    /// A period's figures (spec §7.2).
    pub async fn stats(
        &self,
        tenant: TenantId,
        period: Period,
    ) -> Result<StatsView, DashboardError> {
        let state_manager = Arc::clone(&self.state_manager);
        let clock = Arc::clone(&self.clock);
        let fetch: Fetch<DashboardStats> = Arc::new(move || {
            let state_manager = Arc::clone(&state_manager);
            let clock = Arc::clone(&clock);
            async move {
                tracing::info!(tenant_id = %tenant, period = %period, "fetching metrics from the State Manager");
                let raw = state_manager
                    .metrics(tenant, period)
                    .await
                    .map_err(into_failure)?;
                Ok(DashboardStats::from_raw(&raw, period, clock.now()))
            }
            .boxed()
        });
        let cached = self
            .metrics
            .get(CacheKey::Metrics { tenant, period }, fetch)
            .await?;
        Ok(cached.into())
    }

    /// Makes the tenant's cached figures and conversation pages stale, so the next request
    /// fetches (spec §7.3).
    pub async fn refresh(&self, tenant: TenantId) -> Result<(), DashboardError> {
        self.invalidation
            .invalidate(tenant, &[CacheKind::Metrics, CacheKind::Conversations])
            .await?;
        tracing::info!(tenant_id = %tenant, "dashboard caches cleared");
        Ok(())
    }

    /// A date range's figures, uncached (spec §7.4).
    pub async fn range(
        &self,
        tenant: TenantId,
        range: DateRange,
    ) -> Result<RangeReport, DashboardError> {
        let raw = guarded(
            self.metrics.breaker(),
            self.range_timeout,
            self.range_retry,
            || self.state_manager.metrics_range(tenant, range),
        )
        .await
        .map_err(|e| DashboardError::Unavailable(into_failure(e)))?;
        Ok(RangeReport {
            tenant_id: tenant,
            start_date: range.start().to_string(),
            end_date: range.end().to_string(),
            metrics: RangeFigures::from(&raw),
        })
    }
}

/// Metrics have no business "not found": the State Manager answering 404 for a tenant's
/// metrics is a fault of the call, not an empty dashboard.
fn into_failure(e: StateManagerError) -> DownstreamFailure {
    match e {
        StateManagerError::Failure(f) => f,
        StateManagerError::NotFound => {
            DownstreamFailure::Protocol("metrics not found for tenant".to_owned())
        }
    }
}
