//! The dashboard and history use cases over the real in-memory cache and lock adapters
//! (`portal-memory`), as the embedded default wires them: several instances sharing one
//! store, a slow and then failing State Manager.

use async_trait::async_trait;
use portal_domain::DownstreamFailure;
use portal_domain::cache_aside::ReadPorts;
use portal_domain::dashboard::{Dashboard, DashboardError};
use portal_domain::history::{History, parse_query};
use portal_domain::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, DateRange, Message, Period,
    RawMetrics, TenantId,
};
use portal_domain::ports::downstream::{StateManager, StateManagerError};
use portal_domain::ports::system::{NoopTelemetry, SystemClock};
use portal_memory::{MemoryCache, MemoryLock};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A State Manager that takes 100 ms per metrics call, counts calls and can be switched off.
#[derive(Default)]
struct SlowStateManager {
    metrics_calls: AtomicUsize,
    page_calls: AtomicUsize,
    down: AtomicBool,
}

impl SlowStateManager {
    async fn answer<T>(&self, calls: &AtomicUsize, value: T) -> Result<T, StateManagerError> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if self.down.load(Ordering::SeqCst) {
            Err(DownstreamFailure::Unavailable { status: Some(503) }.into())
        } else {
            Ok(value)
        }
    }
}

#[async_trait]
impl StateManager for SlowStateManager {
    async fn conversations(
        &self,
        _tenant: TenantId,
        query: ConversationQuery,
    ) -> Result<ConversationPage, StateManagerError> {
        let page = ConversationPage {
            data: vec![],
            page: query.page,
            limit: query.limit,
            total: 0,
        };
        self.answer(&self.page_calls, page).await
    }
    async fn conversation(&self, _id: ConversationId) -> Result<Conversation, StateManagerError> {
        Err(StateManagerError::NotFound)
    }
    async fn messages(&self, _id: ConversationId) -> Result<Vec<Message>, StateManagerError> {
        Err(StateManagerError::NotFound)
    }
    async fn metrics(
        &self,
        _tenant: TenantId,
        _period: Period,
    ) -> Result<RawMetrics, StateManagerError> {
        let raw = RawMetrics {
            total_messages: 10,
            delivered: 9,
            ..RawMetrics::default()
        };
        self.answer(&self.metrics_calls, raw).await
    }
    async fn metrics_range(
        &self,
        _tenant: TenantId,
        _range: DateRange,
    ) -> Result<RawMetrics, StateManagerError> {
        Err(DownstreamFailure::Timeout.into())
    }
}

struct Instances {
    state_manager: Arc<SlowStateManager>,
    dashboards: Vec<Arc<Dashboard>>,
    histories: Vec<Arc<History>>,
}

/// `n` service instances: one shared cache and lock.
fn instances(n: usize) -> Instances {
    let state_manager = Arc::new(SlowStateManager::default());
    let cache = Arc::new(MemoryCache::new());
    let lock = Arc::new(MemoryLock::new());
    let mut dashboards = Vec::new();
    let mut histories = Vec::new();
    let stores = portal_memory::stores();
    let auditor = crate::helpers::auditor(&stores, Arc::new(SystemClock));
    for _ in 0..n {
        let ports = ReadPorts {
            state_manager: state_manager.clone(),
            cache: cache.clone(),
            lock: lock.clone(),
            clock: Arc::new(SystemClock),
            telemetry: Arc::new(NoopTelemetry),
            auditor: auditor.clone(),
        };
        dashboards.push(Arc::new(Dashboard::new(ports.clone())));
        histories.push(Arc::new(History::new(ports)));
    }
    Instances {
        state_manager,
        dashboards,
        histories,
    }
}

#[tokio::test(start_paused = true)]
async fn three_instances_under_a_cold_stampede_call_the_state_manager_once_per_key() {
    let world = instances(3);
    let tenant = TenantId::new_random();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let d = world.dashboards[i % 3].clone();
        let h = world.histories[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            let stats = d.stats(tenant, Period::Today).await.unwrap();
            let page = h
                .threads(tenant, parse_query(None, None, None).unwrap())
                .await
                .unwrap();
            (stats, page)
        }));
    }
    for t in tasks {
        let (stats, page) = t.await.unwrap();
        assert_eq!(stats.stats.figures.success_rate, "90.0");
        assert!(!stats.stale && !page.stale);
    }
    assert_eq!(world.state_manager.metrics_calls.load(Ordering::SeqCst), 1);
    assert_eq!(world.state_manager.page_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn during_an_outage_instances_serve_the_last_figures_as_stale() {
    let world = instances(2);
    let tenant = TenantId::new_random();
    let fresh = world.dashboards[0]
        .stats(tenant, Period::Month)
        .await
        .unwrap();
    world.dashboards[1]
        .refresh(
            &crate::helpers::signed_in("admin", portal_domain::model::Role::Admin, Some(tenant)),
            tenant,
        )
        .await
        .unwrap();
    world.state_manager.down.store(true, Ordering::SeqCst);

    let stale = world.dashboards[1]
        .stats(tenant, Period::Month)
        .await
        .unwrap();
    assert!(stale.stale);
    assert_eq!(stale.stats, fresh.stats);

    let err = world.dashboards[1]
        .stats(tenant, Period::Week)
        .await
        .unwrap_err();
    assert!(matches!(err, DashboardError::Unavailable(_)), "{err:?}");
}
