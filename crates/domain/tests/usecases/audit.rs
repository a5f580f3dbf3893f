//! The auditor: never blocks or fails the caller (a full queue or a store that is down sends
//! the entry to the log and counts it), keeps one linear chain with several instances writing
//! one trail, and pages a trail newest first for its tenant's admins only.

use crate::helpers::signed_in;
use async_trait::async_trait;
use futures::future::join_all;
use portal_domain::StoreError;
use portal_domain::audit::{
    AuditAction, AuditEvent, AuditKey, AuditOutcome, AuditPorts, AuditQuery, AuditSettings, Auditor,
};
use portal_domain::auth::AccessDenied;
use portal_domain::model::{Role, TenantId};
use portal_domain::ports::stores::{
    AppendOutcome, AuditCursor, AuditLog, AuditRecord, AuditRetention, AuditScope, StoredAudit,
};
use portal_domain::ports::system::{SystemClock, Telemetry};
use portal_memory::MemoryAuditLog;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Fallbacks(Mutex<Vec<&'static str>>);

impl Telemetry for Fallbacks {
    fn audit_fallback(&self, reason: &'static str) {
        self.0.lock().unwrap().push(reason);
    }
}

fn auditor(log: Arc<dyn AuditLog>, telemetry: Arc<Fallbacks>, queue: usize) -> Arc<Auditor> {
    Auditor::start(
        AuditPorts {
            log,
            clock: Arc::new(SystemClock),
            random: Arc::new(portal_crypto::SystemRandom::new()),
            telemetry,
        },
        AuditKey::new(b"audit-test-key-audit-test-key-32"),
        AuditSettings {
            queue_capacity: queue,
            ..AuditSettings::default()
        },
    )
}

/// A trail store that is down, or one that never answers.
struct Broken {
    hang: bool,
}

#[async_trait]
impl AuditLog for Broken {
    async fn append(
        &self,
        _: AuditScope,
        _: &AuditRecord,
        _: AuditRetention,
    ) -> Result<AppendOutcome, StoreError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(StoreError::Unavailable("down".into()))
    }
    async fn newest(
        &self,
        _: AuditScope,
        _: Option<AuditCursor>,
        _: usize,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    async fn oldest(
        &self,
        _: AuditScope,
        _: Option<AuditCursor>,
        _: usize,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    async fn anchor(&self, _: AuditScope) -> Result<String, StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
}

fn event(tenant: TenantId, action: AuditAction) -> AuditEvent {
    AuditEvent::by(
        &signed_in("agent", Role::Agent, Some(tenant)),
        action,
        AuditOutcome::Success,
    )
}

#[tokio::test]
async fn a_store_that_is_down_sends_entries_to_the_log_and_counts_them() {
    let telemetry = Arc::new(Fallbacks::default());
    let a = auditor(Arc::new(Broken { hang: false }), telemetry.clone(), 100);
    for _ in 0..3 {
        a.record(event(TenantId::new_random(), AuditAction::WidgetSend));
    }
    a.flush().await;
    assert_eq!(
        *telemetry.0.lock().unwrap(),
        ["store_unavailable"; 3],
        "every entry is accounted for"
    );
}

#[tokio::test]
async fn a_full_queue_never_blocks_the_caller() {
    let telemetry = Arc::new(Fallbacks::default());
    let a = auditor(Arc::new(Broken { hang: true }), telemetry.clone(), 2);
    let tenant = TenantId::new_random();
    // The writer holds one entry (its store hangs), the queue two: the rest overflow at once.
    for _ in 0..10 {
        a.record(event(tenant, AuditAction::DashboardRefresh));
    }
    let overflowed = telemetry.0.lock().unwrap().clone();
    assert!(overflowed.len() >= 7, "{overflowed:?}");
    assert!(overflowed.iter().all(|r| *r == "queue_full"));
}

/// Three instances appending to one tenant's trail at once: one linear, valid chain with
/// every entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_writing_one_trail_keep_one_linear_chain() {
    let log: Arc<dyn AuditLog> = Arc::new(MemoryAuditLog::new());
    let telemetry = Arc::new(Fallbacks::default());
    let instances: Vec<_> = (0..3)
        .map(|_| auditor(log.clone(), telemetry.clone(), 1000))
        .collect();
    let tenant = TenantId::new_random();
    join_all(instances.iter().map(|a| async move {
        for _ in 0..30 {
            a.record(event(tenant, AuditAction::WidgetSend));
            tokio::task::yield_now().await;
        }
        a.flush().await;
    }))
    .await;

    let verification = instances[0]
        .verify_scope(AuditScope::Tenant(tenant))
        .await
        .unwrap();
    assert!(
        telemetry.0.lock().unwrap().is_empty(),
        "no entry fell back to the log: {:?}",
        telemetry.0.lock().unwrap()
    );
    assert!(verification.is_valid(), "{verification:?}");
    assert_eq!(verification.checked, 90);
}

/// Admins page their tenant's trail newest first, with a cursor and an action filter; other
/// roles may not read it.
#[tokio::test]
async fn admins_page_their_trail_newest_first() {
    let log: Arc<dyn AuditLog> = Arc::new(MemoryAuditLog::new());
    let a = auditor(log, Arc::new(Fallbacks::default()), 100);
    let tenant = TenantId::new_random();
    for i in 0..7 {
        let action = if i % 2 == 0 {
            AuditAction::WidgetSend
        } else {
            AuditAction::DashboardRefresh
        };
        a.record(event(tenant, action).detail("n", i));
    }
    a.record(event(TenantId::new_random(), AuditAction::WidgetSend));
    let admin = signed_in("admin", Role::Admin, Some(tenant));

    let query = |before, action| AuditQuery {
        limit: 3,
        before,
        action,
    };
    let first = a.page(&admin, query(None, None)).await.unwrap();
    let n = |p: &portal_domain::audit::AuditPage| -> Vec<i64> {
        p.entries
            .iter()
            .map(|e| e.details["n"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(n(&first), [6, 5, 4]);
    let second = a.page(&admin, query(first.next, None)).await.unwrap();
    assert_eq!(n(&second), [3, 2, 1]);
    let third = a.page(&admin, query(second.next, None)).await.unwrap();
    assert_eq!(n(&third), [0]);
    assert_eq!(third.next, None);

    let sends = a
        .page(&admin, query(None, Some(AuditAction::DashboardRefresh)))
        .await
        .unwrap();
    assert_eq!(n(&sends), [5, 3, 1]);

    for role in [Role::Agent, Role::Viewer] {
        assert!(matches!(
            a.page(&signed_in("someone", role, Some(tenant)), query(None, None))
                .await,
            Err(portal_domain::audit::AuditError::Forbidden(
                AccessDenied::Role
            ))
        ));
    }
}
