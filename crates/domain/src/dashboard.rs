//! Dashboard metrics (spec §7, §4.2.3, §13.1, decisions §6).
//!
//! [`Dashboard::stats`] serves a period's figures from the metrics cache (fresh for 10
//! minutes) through `CacheAside`: one State Manager call per cold key across all callers
//! and instances, the last known figures marked `stale` while the State Manager is failing,
//! and [`CacheAsideError::Unavailable`] (503) when there is nothing to fall back on — never
//! made-up zeros. [`Dashboard::refresh`] and the event-driven [`CacheInvalidation`] make a
//! tenant's cached figures stale at once (generation bump, no `KEYS`).
//! [`Dashboard::range`] reads a date range uncached. Each read is one call of the State
//! Manager port; its deadline, retries and breaker are the outbound edge's.

use crate::audit::{AuditAction, AuditEvent, AuditOutcome, Auditor};
use crate::auth::CurrentSession;
use crate::cache_aside::{
    CacheAside, CacheAsideConfig, CacheAsideError, CacheInvalidation, Cached, ReadPorts,
};
use crate::error::{DownstreamFailure, StoreError};
use crate::model::{DashboardStats, DateRange, Figures, Period, TenantId};
use crate::ports::downstream::{StateManager, StateManagerError};
use crate::ports::stores::{CacheKey, CacheKind};
use crate::ports::system::Clock;
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long dashboard figures are served from the cache (spec §13.1).
pub(crate) const METRICS_FRESH_FOR: Duration = Duration::from_secs(600);

/// How long an instance serves fresh figures from its memory without reading the store: the
/// most a read on this instance can lag a manual refresh made on another one (its own
/// refreshes and every bus event drop them at once). One second: a dashboard polled every
/// 30 s never sees the difference, and a hot tenant's reads cost no Redis round trip.
pub const METRICS_NEAR_FOR: Duration = Duration::from_secs(1);

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
    pub metrics: Figures,
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

/// The dashboard use case.
pub struct Dashboard {
    metrics: CacheAside<DashboardStats>,
    invalidation: CacheInvalidation,
    state_manager: Arc<dyn StateManager>,
    clock: Arc<dyn Clock>,
    auditor: Arc<Auditor>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Builds the use case with the spec's timings (figures cached 10 minutes; each instance
    /// serves a fresh value from its memory for up to [`METRICS_NEAR_FOR`]).
    pub fn new(ports: ReadPorts) -> Self {
        let config = CacheAsideConfig {
            near_for: METRICS_NEAR_FOR,
            ..CacheAsideConfig::new(METRICS_FRESH_FOR)
        };
        Self::with_config(ports, config)
    }

    /// Builds the use case with explicit cache timings.
    pub(crate) fn with_config(ports: ReadPorts, config: CacheAsideConfig) -> Self {
        let metrics = ports.cache_aside(config);
        let invalidation =
            CacheInvalidation::new(Arc::clone(&ports.cache)).with_near(metrics.near());
        Self {
            metrics,
            invalidation,
            state_manager: ports.state_manager,
            clock: ports.clock,
            auditor: ports.auditor,
        }
    }

    /// Today's date (UTC) by the use case's clock, to validate date ranges against.
    pub fn today(&self) -> time::Date {
        self.clock.now().date()
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
        let fetch = || {
            let state_manager = Arc::clone(&self.state_manager);
            let clock = Arc::clone(&self.clock);
            async move {
                tracing::info!(tenant_id = %tenant, period = %period, "fetching metrics from the State Manager");
                let raw = state_manager
                    .metrics(tenant, period)
                    .await
                    .map_err(into_failure)?;
                Ok(DashboardStats::from_raw(&raw, period, clock.now()))
            }
            .boxed()
        };
        let cached = self
            .metrics
            .get(CacheKey::Metrics { tenant, period }, fetch)
            .await?;
        Ok(cached.into())
    }

    /// Makes the tenant's cached figures and conversation pages stale, so the next request
    /// fetches (spec §7.3). Audited, with who asked.
    pub async fn refresh(
        &self,
        current: &CurrentSession,
        tenant: TenantId,
    ) -> Result<(), DashboardError> {
        let result = self
            .invalidation
            .invalidate(tenant, &[CacheKind::Metrics, CacheKind::Conversations])
            .await;
        let outcome = match &result {
            Ok(_) => AuditOutcome::Success,
            Err(_) => AuditOutcome::Failure,
        };
        self.auditor.record(
            AuditEvent::by(current, AuditAction::DashboardRefresh, outcome).in_tenant(Some(tenant)),
        );
        result?;
        tracing::info!(tenant_id = %tenant, triggered_by = %current.session.user_id, "dashboard caches cleared");
        Ok(())
    }

    /// A date range's figures, uncached (spec §7.4).
    pub async fn range(
        &self,
        tenant: TenantId,
        range: DateRange,
    ) -> Result<RangeReport, DashboardError> {
        let raw = self
            .state_manager
            .metrics_range(tenant, range)
            .await
            .map_err(|e| DashboardError::Unavailable(into_failure(e)))?;
        Ok(RangeReport {
            tenant_id: tenant,
            start_date: range.start().to_string(),
            end_date: range.end().to_string(),
            metrics: Figures::from(&raw),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_aside::test_support::{
        CountingTelemetry, FakeCache, FakeLock, TokioClock, message_event, status_event,
    };
    use crate::model::RawMetrics;
    use crate::ports::downstream::MockStateManager;
    use crate::ports::system::CacheResult;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn raw(total: u64) -> RawMetrics {
        RawMetrics {
            total_messages: total,
            sent: total - 50,
            delivered: total - 80,
            read: total - 150,
            failed: 30,
            active_conversations: 45,
            distinct_wa_ids: 38,
        }
    }

    /// A State Manager whose metrics calls are counted and fail with `failing`'s failure
    /// while it holds one.
    fn state_manager(
        calls: Arc<AtomicUsize>,
        failing: Arc<Mutex<Option<DownstreamFailure>>>,
    ) -> MockStateManager {
        let mut sm = MockStateManager::new();
        sm.expect_metrics().returning(move |_, _| {
            let n = calls.fetch_add(1, Ordering::SeqCst) as u64;
            match failing.lock().unwrap().clone() {
                Some(failure) => Err(failure.into()),
                None => Ok(raw(1000 + n)),
            }
        });
        sm
    }

    struct Rig {
        dashboard: Arc<Dashboard>,
        cache: Arc<FakeCache>,
        telemetry: Arc<CountingTelemetry>,
    }

    fn rig(sm: MockStateManager) -> Rig {
        let cache = Arc::new(FakeCache::default());
        let telemetry = Arc::new(CountingTelemetry::default());
        let dashboard = Arc::new(Dashboard::new(ReadPorts {
            state_manager: Arc::new(sm),
            cache: cache.clone(),
            lock: Arc::new(FakeLock::default()),
            clock: Arc::new(TokioClock::new()),
            telemetry: telemetry.clone(),
            auditor: crate::audit::test_support::discarding(),
        }));
        Rig {
            dashboard,
            cache,
            telemetry,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cached_period_is_served_without_calling_the_state_manager() {
        let calls = Arc::new(AtomicUsize::new(0));
        let r = rig(state_manager(calls.clone(), Arc::default()));
        let tenant = TenantId::new_random();
        let first = r.dashboard.stats(tenant, Period::Today).await.unwrap();
        assert_eq!(first.stats.figures.total_messages, 1000);
        assert_eq!(first.stats.figures.success_rate, "92.0");
        assert!(!first.stale);

        tokio::time::advance(Duration::from_secs(599)).await;
        let second = r.dashboard.stats(tenant, Period::Today).await.unwrap();
        assert_eq!(second, first);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(r.telemetry.count(CacheResult::Hit), 1);
        assert_eq!(r.telemetry.count(CacheResult::Miss), 1);

        tokio::time::advance(Duration::from_secs(2)).await;
        let third = r.dashboard.stats(tenant, Period::Today).await.unwrap();
        assert_eq!(
            third.stats.figures.total_messages, 1001,
            "expired after 10 minutes"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_hundred_concurrent_cold_requests_make_one_call() {
        let mut sm = MockStateManager::new();
        sm.expect_metrics().times(1).returning(|_, _| Ok(raw(500)));
        let r = rig(sm);
        let tenant = TenantId::new_random();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let d = r.dashboard.clone();
                tokio::spawn(async move { d.stats(tenant, Period::Week).await })
            })
            .collect();
        for t in tasks {
            let view = t.await.unwrap().unwrap();
            assert_eq!(view.stats.figures.total_messages, 500);
            assert_eq!(view.stats.period, Period::Week);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_makes_the_next_request_fetch() {
        let calls = Arc::new(AtomicUsize::new(0));
        let r = rig(state_manager(calls.clone(), Arc::default()));
        let tenant = TenantId::new_random();
        r.dashboard.stats(tenant, Period::Today).await.unwrap();
        r.dashboard
            .refresh(
                &crate::audit::test_support::signed_in("admin", crate::model::Role::Admin),
                tenant,
            )
            .await
            .unwrap();
        let after = r.dashboard.stats(tenant, Period::Today).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(after.stats.figures.total_messages, 1001);
        assert_eq!(r.cache.generation(tenant, CacheKind::Conversations), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_or_open_state_manager_means_stale_figures_or_503_then_fresh_ones() {
        let calls = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(Mutex::new(None));
        let r = rig(state_manager(calls.clone(), failing.clone()));
        let tenant = TenantId::new_random();
        let known = r.dashboard.stats(tenant, Period::Today).await.unwrap();

        // The State Manager goes down; the cached figures expire. One call per read: the
        // edge, not the use case, retries.
        *failing.lock().unwrap() = Some(DownstreamFailure::Unavailable { status: Some(503) });
        tokio::time::advance(Duration::from_secs(601)).await;
        for _ in 0..2 {
            let view = r.dashboard.stats(tenant, Period::Today).await.unwrap();
            assert!(view.stale);
            assert_eq!(view.stats, known.stats);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // Its circuit opens at the edge: stale figures where known, 503 elsewhere.
        *failing.lock().unwrap() = Some(DownstreamFailure::CircuitOpen);
        let view = r.dashboard.stats(tenant, Period::Today).await.unwrap();
        assert!(view.stale);
        let err = r.dashboard.stats(tenant, Period::Month).await.unwrap_err();
        assert_eq!(
            err,
            DashboardError::Unavailable(DownstreamFailure::CircuitOpen)
        );
        assert_eq!(r.telemetry.count(CacheResult::Stale), 3);

        // It recovers: the next read is fresh.
        *failing.lock().unwrap() = None;
        let view = r.dashboard.stats(tenant, Period::Today).await.unwrap();
        assert!(!view.stale);
        assert_eq!(calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_figures_say_so_in_json_and_fresh_ones_do_not() {
        let calls = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(Mutex::new(None));
        let r = rig(state_manager(calls, failing.clone()));
        let tenant = TenantId::new_random();
        let fresh =
            serde_json::to_value(r.dashboard.stats(tenant, Period::Today).await.unwrap()).unwrap();
        assert_eq!(fresh["totalMessages"], 1000);
        assert_eq!(fresh["period"], "today");
        assert!(fresh.get("stale").is_none());

        r.dashboard
            .refresh(
                &crate::audit::test_support::signed_in("admin", crate::model::Role::Admin),
                tenant,
            )
            .await
            .unwrap();
        *failing.lock().unwrap() = Some(DownstreamFailure::Unavailable { status: Some(503) });
        let stale =
            serde_json::to_value(r.dashboard.stats(tenant, Period::Today).await.unwrap()).unwrap();
        assert_eq!(stale["stale"], true);
        assert_eq!(stale["totalMessages"], 1000);
    }

    #[tokio::test]
    async fn a_range_reports_dashboard_figures_for_its_dates() {
        let tenant = TenantId::new_random();
        let mut sm = MockStateManager::new();
        sm.expect_metrics_range()
            .withf(move |t, r| *t == tenant && r.days() == 12)
            .times(1)
            .returning(|_, _| Ok(raw(1000)));
        let r = rig(sm);
        let range = DateRange::new(
            time::macros::date!(2026 - 02 - 01),
            time::macros::date!(2026 - 02 - 12),
            time::macros::date!(2026 - 02 - 12),
        )
        .unwrap();
        let report = r.dashboard.range(tenant, range).await.unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["tenantId"], tenant.to_string());
        assert_eq!(json["startDate"], "2026-02-01");
        assert_eq!(json["endDate"], "2026-02-12");
        assert_eq!(json["metrics"]["deliveredCount"], 920);
        assert_eq!(json["metrics"]["successRate"], "92.0");
    }

    #[tokio::test]
    async fn a_failing_range_read_is_unavailable() {
        let mut sm = MockStateManager::new();
        sm.expect_metrics_range()
            .returning(|_, _| Err(DownstreamFailure::Unavailable { status: None }.into()));
        let r = rig(sm);
        let today = time::macros::date!(2026 - 02 - 12);
        let range = DateRange::new(today, today, today).unwrap();
        let err = r
            .dashboard
            .range(TenantId::new_random(), range)
            .await
            .unwrap_err();
        assert!(matches!(err, DashboardError::Unavailable(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_status_event_makes_the_next_stats_request_fetch() {
        let calls = Arc::new(AtomicUsize::new(0));
        let r = rig(state_manager(calls.clone(), Arc::default()));
        let tenant = TenantId::new_random();
        r.dashboard.stats(tenant, Period::Today).await.unwrap();
        r.dashboard
            .invalidation()
            .on_event(&message_event(tenant))
            .await;
        r.dashboard.stats(tenant, Period::Today).await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "messages leave metrics alone"
        );
        r.dashboard
            .invalidation()
            .on_event(&status_event(tenant))
            .await;
        r.dashboard.stats(tenant, Period::Today).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
