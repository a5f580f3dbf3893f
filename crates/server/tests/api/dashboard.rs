//! Black-box tests of the dashboard and history endpoints over loopback against the
//! embedded default, signed in as two tenants' admins (Acme and Globex).
//!
//! The State Manager port is wrapped to count (and, on demand, fail) its calls, and the cache
//! port to signal invalidations, so "served from the cache", "fetched again", "stale" and
//! "invalidated by an event" are observed, not guessed from timing.

use crate::helpers::{TestApp, assert_error, new_client, problem_fields, spawn_app_with_overrides};
use async_trait::async_trait;
use portal_domain::DownstreamFailure;
use portal_domain::StoreError;
use portal_domain::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, DateRange, Message,
    MessageId, MessageStatus, Period, RawMetrics, StatusUpdate, TenantEvent, TenantId,
};
use portal_domain::ports::downstream::{StateManager, StateManagerError};
use portal_domain::ports::stores::{Cache, CacheEntry, CacheKey, CacheKind, CacheLookup, EventBus};
use portal_sandbox::demo::{
    ACME_ADMIN_EMAIL, ACME_AGENT_EMAIL, ACME_CONVERSATIONS, ACME_VIEWER_EMAIL, GLOBEX_ADMIN_EMAIL,
    GLOBEX_CONVERSATIONS, NEWCO_ADMIN_EMAIL, acme_tenant_id, globex_tenant_id,
};
use portal_server::stores::Stores;
use portal_server::{Overrides, Settings};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};

/// The simulated State Manager, counted, and failing while `fail` is set.
#[derive(Default)]
struct CountingStateManager {
    inner: OnceLock<Arc<dyn StateManager>>,
    metrics: AtomicUsize,
    lists: AtomicUsize,
    fail: AtomicBool,
}

impl CountingStateManager {
    fn inner(&self) -> Result<&Arc<dyn StateManager>, StateManagerError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(DownstreamFailure::Unavailable { status: Some(503) }.into());
        }
        Ok(self.inner.get().expect("wired"))
    }
}

#[async_trait]
impl StateManager for CountingStateManager {
    async fn conversations(
        &self,
        tenant: TenantId,
        query: ConversationQuery,
    ) -> Result<ConversationPage, StateManagerError> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner()?.conversations(tenant, query).await
    }
    async fn conversation(&self, id: ConversationId) -> Result<Conversation, StateManagerError> {
        self.inner()?.conversation(id).await
    }
    async fn messages(&self, id: ConversationId) -> Result<Vec<Message>, StateManagerError> {
        self.inner()?.messages(id).await
    }
    async fn metrics(
        &self,
        tenant: TenantId,
        period: Period,
    ) -> Result<RawMetrics, StateManagerError> {
        self.metrics.fetch_add(1, Ordering::SeqCst);
        self.inner()?.metrics(tenant, period).await
    }
    async fn metrics_range(
        &self,
        tenant: TenantId,
        range: DateRange,
    ) -> Result<RawMetrics, StateManagerError> {
        self.inner()?.metrics_range(tenant, range).await
    }
}

/// The cache, reporting each invalidation on a channel.
struct SignallingCache {
    inner: Arc<dyn Cache>,
    invalidated: mpsc::UnboundedSender<(TenantId, CacheKind)>,
}

#[async_trait]
impl Cache for SignallingCache {
    async fn get(&self, key: &CacheKey) -> Result<CacheLookup, StoreError> {
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: &CacheKey,
        entry: &CacheEntry,
        retain: Duration,
    ) -> Result<(), StoreError> {
        self.inner.put(key, entry, retain).await
    }
    async fn invalidate(&self, tenant: TenantId, kind: CacheKind) -> Result<u64, StoreError> {
        let generation = self.inner.invalidate(tenant, kind).await?;
        let _ = self.invalidated.send((tenant, kind));
        Ok(generation)
    }
}

struct Rig {
    app: TestApp,
    sm: Arc<CountingStateManager>,
    bus: Arc<dyn EventBus>,
    invalidated: Mutex<mpsc::UnboundedReceiver<(TenantId, CacheKind)>>,
    acme: Client,
    globex: Client,
}

async fn spawn() -> Rig {
    let sm = Arc::new(CountingStateManager::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let overrides = Overrides {
        wrap_state_manager: Some(Arc::new({
            let sm = sm.clone();
            move |inner| {
                let _ = sm.inner.set(inner);
                sm.clone() as Arc<dyn StateManager>
            }
        })),
        wrap_stores: Some(Arc::new(move |mut stores: Stores| {
            stores.ports.cache = Arc::new(SignallingCache {
                inner: stores.ports.cache,
                invalidated: tx.clone(),
            });
            stores
        })),
        ..Overrides::default()
    };
    // Some tests make more than the default 100 requests a minute.
    let app = spawn_app_with_overrides(
        |s| Settings {
            rate_limit_api_max: 10_000,
            ..s
        },
        overrides,
    )
    .await;
    let acme = app.signed_in(ACME_ADMIN_EMAIL).await.client;
    let globex = app.signed_in(GLOBEX_ADMIN_EMAIL).await.client;
    Rig {
        bus: app.realtime.bus.clone(),
        app,
        sm,
        invalidated: Mutex::new(rx),
        acme,
        globex,
    }
}

impl Rig {
    async fn get(&self, client: &Client, path: &str) -> reqwest::Response {
        client.get(self.app.url(path)).send().await.unwrap()
    }

    async fn json(&self, client: &Client, path: &str) -> Value {
        let res = self.get(client, path).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        res.json().await.unwrap()
    }

    async fn refresh(&self, client: &Client) -> reqwest::Response {
        self.app.refresh_dashboard(client).await
    }

    /// Every conversation ID of the signed-in tenant, through the list endpoint.
    async fn all_conversations(&self, client: &Client) -> (u64, HashSet<String>) {
        let mut ids = HashSet::new();
        let mut page = 1;
        loop {
            let body = self
                .json(
                    client,
                    &format!("/api/v1/history/threads?page={page}&limit=20"),
                )
                .await;
            for row in body["data"].as_array().unwrap() {
                ids.insert(row["conversation_id"].as_str().unwrap().to_owned());
            }
            if body["pagination"]["hasNext"] != true {
                return (body["pagination"]["total"].as_u64().unwrap(), ids);
            }
            page += 1;
        }
    }

    /// Waits for the cache of `kind` of `tenant` to be invalidated.
    async fn invalidation_of(&self, tenant: TenantId, kind: CacheKind) {
        let mut rx = self.invalidated.lock().await;
        tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(got) = rx.recv().await {
                if got == (tenant, kind) {
                    return;
                }
            }
        })
        .await
        .expect("the invalidation happens");
    }
}

#[tokio::test]
async fn stats_are_per_tenant_cached_and_refuse_another_tenant_parameter() {
    let rig = spawn().await;
    let acme = rig.json(&rig.acme, "/api/v1/dashboard/stats").await;
    let globex = rig.json(&rig.globex, "/api/v1/dashboard/stats").await;
    for body in [&acme, &globex] {
        assert_eq!(body["period"], "today");
        for field in [
            "totalMessages",
            "sentCount",
            "deliveredCount",
            "readCount",
            "failedCount",
            "activeConversations",
            "uniqueCustomers",
        ] {
            assert!(body[field].is_u64(), "{field} in {body}");
        }
        let rate = body["successRate"].as_str().unwrap();
        let (_, decimals) = rate.split_once('.').expect("one decimal");
        assert_eq!(decimals.len(), 1, "{rate}");
        assert!(body["lastUpdated"].is_string());
        assert!(
            body.get("stale").is_none(),
            "fresh figures carry no stale flag"
        );
    }

    // Each period differs between the tenants (their demo traffic differs).
    for period in ["today", "week", "month"] {
        let path = format!("/api/v1/dashboard/stats?period={period}");
        let a = rig.json(&rig.acme, &path).await;
        let g = rig.json(&rig.globex, &path).await;
        assert_eq!(a["period"], period);
        assert_ne!(
            (&a["totalMessages"], &a["uniqueCustomers"]),
            (&g["totalMessages"], &g["uniqueCustomers"]),
            "{period}: {a} vs {g}"
        );
    }
    let fetched = rig.sm.metrics.load(Ordering::SeqCst);
    assert_eq!(fetched, 6, "one fetch per tenant and period");

    // Naming the other tenant is refused (spec §5.3); naming its own is the same request.
    let other = rig
        .get(
            &rig.globex,
            &format!("/api/v1/dashboard/stats?tenantId={}", acme_tenant_id()),
        )
        .await;
    assert_error(other, 403, "TENANT_ISOLATION_VIOLATION").await;
    let own = rig
        .json(
            &rig.globex,
            &format!("/api/v1/dashboard/stats?tenantId={}", globex_tenant_id()),
        )
        .await;
    assert_eq!(own, globex, "Globex still gets Globex's (cached) figures");
    assert_eq!(
        rig.sm.metrics.load(Ordering::SeqCst),
        fetched,
        "served from the cache, nothing fetched for Acme"
    );
}

#[tokio::test]
async fn refresh_needs_csrf_and_makes_the_next_read_fetch() {
    let rig = spawn().await;
    let first = rig.json(&rig.acme, "/api/v1/dashboard/stats").await;
    rig.json(&rig.acme, "/api/v1/dashboard/stats").await;
    assert_eq!(rig.sm.metrics.load(Ordering::SeqCst), 1);

    let res = rig
        .acme
        .post(rig.app.url("/api/v1/dashboard/refresh"))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "CSRF_FAILED").await;

    let res = rig.refresh(&rig.acme).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert!(body["message"].is_string());

    let again = rig.json(&rig.acme, "/api/v1/dashboard/stats").await;
    assert_eq!(
        rig.sm.metrics.load(Ordering::SeqCst),
        2,
        "fetched after refresh"
    );
    assert_eq!(again["totalMessages"], first["totalMessages"]);

    // Acme's refresh leaves Globex's cache alone.
    rig.json(&rig.globex, "/api/v1/dashboard/stats").await;
    rig.refresh(&rig.acme).await;
    rig.json(&rig.globex, "/api/v1/dashboard/stats").await;
    assert_eq!(rig.sm.metrics.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failing_state_manager_serves_stale_figures_or_503_never_zeros() {
    let rig = spawn().await;
    let before = rig.json(&rig.acme, "/api/v1/dashboard/stats").await;
    rig.sm.fail.store(true, Ordering::SeqCst);
    rig.refresh(&rig.acme).await;

    let stale = rig.json(&rig.acme, "/api/v1/dashboard/stats").await;
    assert_eq!(stale["stale"], true, "{stale}");
    assert_eq!(stale["totalMessages"], before["totalMessages"]);
    assert_eq!(stale["lastUpdated"], before["lastUpdated"]);

    let res = rig
        .get(&rig.acme, "/api/v1/dashboard/stats?period=month")
        .await;
    assert_error(res, 503, "SERVICE_UNAVAILABLE").await;
    let res = rig.get(&rig.globex, "/api/v1/history/threads").await;
    assert_error(res, 503, "SERVICE_UNAVAILABLE").await;
    let res = rig
        .get(
            &rig.acme,
            "/api/v1/dashboard/metrics/range?startDate=2025-01-01&endDate=2025-01-31",
        )
        .await;
    assert_error(res, 503, "SERVICE_UNAVAILABLE").await;
}

#[tokio::test]
async fn a_status_event_clears_that_tenants_caches_only() {
    let rig = spawn().await;
    rig.json(&rig.acme, "/api/v1/dashboard/stats").await;
    rig.json(&rig.globex, "/api/v1/dashboard/stats").await;
    rig.json(&rig.acme, "/api/v1/history/threads").await;
    assert_eq!(rig.sm.metrics.load(Ordering::SeqCst), 2);
    assert_eq!(rig.sm.lists.load(Ordering::SeqCst), 1);

    let event = TenantEvent::Status {
        tenant_id: acme_tenant_id(),
        update: StatusUpdate {
            message_id: MessageId::parse("wamid.test-1").unwrap(),
            status: MessageStatus::Delivered,
            timestamp: time::OffsetDateTime::now_utc(),
            conversation_id: None,
        },
    };
    rig.bus.publish(&event).await.unwrap();
    rig.invalidation_of(acme_tenant_id(), CacheKind::Metrics)
        .await;
    rig.invalidation_of(acme_tenant_id(), CacheKind::Conversations)
        .await;

    rig.json(&rig.acme, "/api/v1/dashboard/stats").await;
    rig.json(&rig.acme, "/api/v1/history/threads").await;
    rig.json(&rig.globex, "/api/v1/dashboard/stats").await;
    assert_eq!(
        rig.sm.metrics.load(Ordering::SeqCst),
        3,
        "Acme fetched again, Globex not"
    );
    assert_eq!(rig.sm.lists.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn date_ranges_are_per_tenant() {
    let rig = spawn().await;
    let today = time::OffsetDateTime::now_utc().date();
    let start = today - time::Duration::days(29);
    let path = format!("/api/v1/dashboard/metrics/range?startDate={start}&endDate={today}");
    let acme = rig.json(&rig.acme, &path).await;
    let globex = rig.json(&rig.globex, &path).await;
    assert_eq!(acme["tenantId"], acme_tenant_id().to_string());
    assert_eq!(globex["tenantId"], globex_tenant_id().to_string());
    assert_eq!(acme["startDate"], start.to_string());
    assert_eq!(acme["endDate"], today.to_string());
    assert!(acme["metrics"]["totalMessages"].as_u64().unwrap() > 0);
    assert_ne!(acme["metrics"], globex["metrics"]);

    let other = rig
        .get(
            &rig.globex,
            &format!("{path}&tenantId={}", acme_tenant_id()),
        )
        .await;
    assert_error(other, 403, "TENANT_ISOLATION_VIOLATION").await;
}

#[tokio::test]
async fn each_tenant_lists_only_its_own_conversations() {
    let rig = spawn().await;
    let (acme_total, acme_ids) = rig.all_conversations(&rig.acme).await;
    let (globex_total, globex_ids) = rig.all_conversations(&rig.globex).await;
    assert_eq!(acme_total, ACME_CONVERSATIONS as u64);
    assert_eq!(globex_total, GLOBEX_CONVERSATIONS as u64);
    assert_eq!(acme_ids.len(), ACME_CONVERSATIONS);
    assert_eq!(globex_ids.len(), GLOBEX_CONVERSATIONS);
    assert!(acme_ids.is_disjoint(&globex_ids));

    let first = rig
        .json(&rig.acme, "/api/v1/history/threads?page=1&limit=20")
        .await;
    assert_eq!(
        first["pagination"],
        serde_json::json!({"page": 1, "limit": 20, "total": 48, "totalPages": 3, "hasNext": true, "hasPrev": false})
    );
    let row = &first["data"][0];
    for field in ["wa_id", "conversation_id", "last_activity", "status"] {
        assert!(row[field].is_string(), "{field} in {row}");
    }
    assert!(row["message_count"].is_u64());
    let last = rig
        .json(&rig.acme, "/api/v1/history/threads?page=3&limit=20")
        .await;
    assert_eq!(last["pagination"]["hasNext"], false);
    assert_eq!(last["pagination"]["hasPrev"], true);
    assert_eq!(last["data"].as_array().unwrap().len(), 8);

    for status in ["active", "closed"] {
        let body = rig
            .json(
                &rig.acme,
                &format!("/api/v1/history/threads?status={status}&limit=100"),
            )
            .await;
        let rows = body["data"].as_array().unwrap();
        assert!(!rows.is_empty(), "demo data has {status} conversations");
        assert!(rows.iter().all(|r| r["status"] == status));
        assert!(
            rows.iter()
                .all(|r| acme_ids.contains(r["conversation_id"].as_str().unwrap()))
        );
    }

    // Naming the other tenant is refused; naming its own lists its own.
    let other = rig
        .get(
            &rig.globex,
            &format!(
                "/api/v1/history/threads?limit=100&tenantId={}",
                acme_tenant_id()
            ),
        )
        .await;
    assert_error(other, 403, "TENANT_ISOLATION_VIOLATION").await;
    let body = rig
        .json(
            &rig.globex,
            &format!(
                "/api/v1/history/threads?limit=100&tenantId={}",
                globex_tenant_id()
            ),
        )
        .await;
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| globex_ids.contains(r["conversation_id"].as_str().unwrap()))
    );
}

#[tokio::test]
async fn messages_are_readable_only_by_the_owning_tenant() {
    let rig = spawn().await;
    let (_, acme_ids) = rig.all_conversations(&rig.acme).await;
    let (_, globex_ids) = rig.all_conversations(&rig.globex).await;

    let id = acme_ids.iter().next().unwrap();
    let path = format!("/api/v1/history/threads/{id}/messages");
    let body = rig.json(&rig.acme, &path).await;
    assert_eq!(body["conversation_id"], id.as_str());
    assert!(body["wa_id"].is_string());
    let messages = body["messages"].as_array().unwrap();
    assert!(!messages.is_empty());
    for field in ["message_id", "direction", "status", "timestamp"] {
        assert!(messages[0][field].is_string(), "{field} in {}", messages[0]);
    }
    assert!(messages[0].get("media_url").is_some() && messages[0].get("error").is_some());

    // Every conversation of the other tenant is refused, both ways.
    for id in &acme_ids {
        let res = rig
            .get(
                &rig.globex,
                &format!("/api/v1/history/threads/{id}/messages"),
            )
            .await;
        let body = assert_error(res, 403, "TENANT_MISMATCH").await;
        assert!(
            !body.to_string().contains("wa_id"),
            "nothing of the conversation leaks"
        );
    }
    for id in &globex_ids {
        let res = rig
            .get(&rig.acme, &format!("/api/v1/history/threads/{id}/messages"))
            .await;
        assert_error(res, 403, "TENANT_MISMATCH").await;
    }

    let res = rig
        .get(
            &rig.acme,
            &format!("/api/v1/history/threads/{}/messages", uuid::Uuid::new_v4()),
        )
        .await;
    assert_error(res, 404, "NOT_FOUND").await;
    let simple = id.replace('-', "");
    for other in [
        "not-a-uuid".to_owned(),
        simple.clone(),
        format!("%7B{id}%7D"),
        format!("urn:uuid:{id}"),
    ] {
        let res = rig
            .get(
                &rig.acme,
                &format!("/api/v1/history/threads/{other}/messages"),
            )
            .await;
        let body = assert_error(res, 400, "VALIDATION_FAILED").await;
        assert_eq!(problem_fields(&body), ["id"], "{other}");
    }
}

#[tokio::test]
async fn every_bad_query_value_is_a_400_with_details() {
    let rig = spawn().await;
    let today = time::OffsetDateTime::now_utc().date();
    let tomorrow = today + time::Duration::days(1);
    let long_ago = today - time::Duration::days(366);
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("/api/v1/dashboard/stats?period=year".into(), vec!["period"]),
        ("/api/v1/dashboard/stats?period=".into(), vec!["period"]),
        (
            "/api/v1/dashboard/stats?period=TODAY".into(),
            vec!["period"],
        ),
        ("/api/v1/history/threads?page=0".into(), vec!["page"]),
        ("/api/v1/history/threads?page=-1".into(), vec!["page"]),
        ("/api/v1/history/threads?page=abc".into(), vec!["page"]),
        ("/api/v1/history/threads?page=100001".into(), vec!["page"]),
        (
            "/api/v1/history/threads?page=99999999999999999999".into(),
            vec!["page"],
        ),
        ("/api/v1/history/threads?page=%2B2".into(), vec!["page"]),
        ("/api/v1/history/threads?page=%202".into(), vec!["page"]),
        ("/api/v1/history/threads?page=1.0".into(), vec!["page"]),
        ("/api/v1/history/threads?limit=0".into(), vec!["limit"]),
        ("/api/v1/history/threads?limit=101".into(), vec!["limit"]),
        ("/api/v1/history/threads?limit=abc".into(), vec!["limit"]),
        ("/api/v1/history/threads?status=foo".into(), vec!["status"]),
        (
            "/api/v1/history/threads?page=0&limit=abc&status=open".into(),
            vec!["limit", "page", "status"],
        ),
        (
            "/api/v1/dashboard/metrics/range".into(),
            vec!["startDate", "endDate"],
        ),
        (
            format!("/api/v1/dashboard/metrics/range?startDate={today}"),
            vec!["endDate"],
        ),
        (
            format!("/api/v1/dashboard/metrics/range?startDate=12/02/2026&endDate={today}"),
            vec!["startDate"],
        ),
        (
            format!("/api/v1/dashboard/metrics/range?startDate={today}&endDate=2026-02-30"),
            vec!["endDate"],
        ),
        (
            format!(
                "/api/v1/dashboard/metrics/range?startDate={today}&endDate={}",
                today - time::Duration::days(1)
            ),
            vec!["startDate"],
        ),
        (
            format!("/api/v1/dashboard/metrics/range?startDate={long_ago}&endDate={today}"),
            vec!["startDate"],
        ),
        (
            format!("/api/v1/dashboard/metrics/range?startDate={today}&endDate={tomorrow}"),
            vec!["endDate"],
        ),
    ];
    for (path, fields) in cases {
        for client in [&rig.acme, &rig.globex] {
            let res = rig.get(client, &path).await;
            let body = assert_error(res, 400, "VALIDATION_FAILED").await;
            let mut got = problem_fields(&body);
            got.sort();
            let mut want: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
            want.sort();
            assert_eq!(got, want, "{path}: {body}");
        }
    }
    assert_eq!(
        rig.sm.metrics.load(Ordering::SeqCst),
        0,
        "nothing reached the State Manager"
    );
    assert_eq!(rig.sm.lists.load(Ordering::SeqCst), 0);

    // The edges are accepted: exactly 366 days, limit 1 and 100.
    let edge = today - time::Duration::days(365);
    rig.json(
        &rig.acme,
        &format!("/api/v1/dashboard/metrics/range?startDate={edge}&endDate={today}"),
    )
    .await;
    rig.json(&rig.acme, "/api/v1/history/threads?limit=1").await;
    rig.json(&rig.acme, "/api/v1/history/threads?limit=100&page=1")
        .await;
}

#[tokio::test]
async fn every_role_of_an_onboarded_tenant_may_read_and_no_one_else() {
    let rig = spawn().await;
    for email in [ACME_VIEWER_EMAIL, ACME_AGENT_EMAIL] {
        let client = rig.app.signed_in(email).await.client;
        rig.json(&client, "/api/v1/dashboard/stats").await;
        rig.json(&client, "/api/v1/history/threads").await;
        let res = rig.refresh(&client).await;
        assert_eq!(res.status(), StatusCode::OK, "{email} may refresh");
    }

    let newco = rig.app.signed_in(NEWCO_ADMIN_EMAIL).await.client;
    for path in [
        "/api/v1/dashboard/stats",
        "/api/v1/history/threads",
        "/api/v1/dashboard/metrics/range?startDate=2025-01-01&endDate=2025-01-02",
    ] {
        let res = rig.get(&newco, path).await;
        assert_error(res, 403, "FORBIDDEN").await;
    }
    let res = rig.refresh(&newco).await;
    assert_error(res, 403, "FORBIDDEN").await;

    let anonymous = new_client();
    for path in [
        "/api/v1/dashboard/stats",
        "/api/v1/history/threads",
        "/api/v1/dashboard/metrics/range?startDate=2025-01-01&endDate=2025-01-02",
        "/api/v1/history/threads/7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e/messages",
    ] {
        let res = rig.get(&anonymous, path).await;
        assert_error(res, 401, "NO_SESSION").await;
    }
}

/// Customers' numbers by role: admins and agents see them whole, viewers masked
/// (`1555•••829`), in the conversation list and in a conversation's messages alike.
#[tokio::test]
async fn viewers_see_customer_numbers_masked_agents_and_admins_whole() {
    let rig = spawn().await;
    let path = "/api/v1/history/threads?limit=5";
    let mut shown = Vec::new();
    for email in [ACME_ADMIN_EMAIL, ACME_AGENT_EMAIL, ACME_VIEWER_EMAIL] {
        let client = rig.app.signed_in(email).await.client;
        let list = rig.json(&client, path).await;
        let rows: Vec<(String, String)> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["conversation_id"].as_str().unwrap().to_owned(),
                    r["wa_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let (id, number) = rows[0].clone();
        let messages = rig
            .json(&client, &format!("/api/v1/history/threads/{id}/messages"))
            .await;
        assert_eq!(
            messages["wa_id"],
            number.as_str(),
            "{email}: one rule, both outputs"
        );
        shown.push(rows);
    }
    let (admin, agent, viewer) = (&shown[0], &shown[1], &shown[2]);
    assert_eq!(admin, agent);
    for ((id, whole), (viewer_id, masked)) in admin.iter().zip(viewer) {
        assert_eq!(id, viewer_id);
        assert!(whole.chars().all(|c| c.is_ascii_digit()), "{whole}");
        assert_eq!(
            *masked,
            portal_domain::model::mask_customer_number(whole),
            "the viewer's number is masked"
        );
        assert!(!masked.contains(&whole[4..whole.len() - 3]));
    }
}
