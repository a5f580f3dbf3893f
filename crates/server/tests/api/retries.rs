//! One layer of retries per downstream call: the State Manager's guard (the HTTP adapter's, or
//! the one around the simulator) retries idempotent reads, and the use cases call it once. So
//! one failing read costs exactly the guard's attempts, whoever reads (dashboard, history list,
//! a conversation's messages, a widget send's conversation check) and whether the State
//! Manager is remote or simulated; retrying in both layers would cost 3 × 3 calls.

use crate::helpers::*;
use async_trait::async_trait;
use portal_domain::DownstreamFailure;
use portal_domain::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, DateRange, Message, Period,
    RawMetrics, TenantId,
};
use portal_domain::ports::downstream::{StateManager, StateManagerError};
use portal_server::{Overrides, Settings};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Attempts the guard makes for one idempotent read.
fn configured_attempts() -> usize {
    portal_outbound::RetryPolicy::default().max_attempts as usize
}

/// A State Manager that is down: every call fails with a 503 and is counted.
#[derive(Default)]
struct DownStateManager {
    calls: AtomicUsize,
}

impl DownStateManager {
    fn fail<T>(&self) -> Result<T, StateManagerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(DownstreamFailure::Unavailable { status: Some(503) }.into())
    }
}

#[async_trait]
impl StateManager for DownStateManager {
    async fn conversations(
        &self,
        _: TenantId,
        _: ConversationQuery,
    ) -> Result<ConversationPage, StateManagerError> {
        self.fail()
    }
    async fn conversation(&self, _: ConversationId) -> Result<Conversation, StateManagerError> {
        self.fail()
    }
    async fn messages(&self, _: ConversationId) -> Result<Vec<Message>, StateManagerError> {
        self.fail()
    }
    async fn metrics(&self, _: TenantId, _: Period) -> Result<RawMetrics, StateManagerError> {
        self.fail()
    }
    async fn metrics_range(
        &self,
        _: TenantId,
        _: DateRange,
    ) -> Result<RawMetrics, StateManagerError> {
        self.fail()
    }
}

/// Keeps the State Manager's circuit closed: these tests count retries, not the breaker.
fn closed_circuit(s: Settings) -> Settings {
    Settings {
        state_manager_breaker_min_calls: 100,
        ..s
    }
}

/// Every read that reaches the State Manager, each answering 503 with nothing cached; returns
/// how many State Manager calls each one cost, after `calls()` says how many there were so far.
async fn calls_per_failing_read<F, Fut>(app: &TestApp, calls: F) -> Vec<(&'static str, usize)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    app.sign_in("agent@acme.example").await;
    let csrf = app.csrf(&app.client).await;
    let conversation = ConversationId::new_random();
    let reads = [
        ("dashboard", "/api/v1/dashboard/stats".to_owned()),
        ("history list", "/api/v1/history/threads".to_owned()),
        (
            "history messages",
            format!("/api/v1/history/threads/{conversation}/messages"),
        ),
    ];
    let mut costs = Vec::new();
    for (name, path) in reads {
        let before = calls().await;
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 503, "{name}: nothing to serve");
        costs.push((name, calls().await - before));
    }
    let before = calls().await;
    let res = app
        .client
        .post(app.url("/api/v1/widget/send"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"conversationId": conversation.to_string(), "text": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503, "widget: nothing sent");
    costs.push(("widget", calls().await - before));
    costs
}

fn expected() -> Vec<(&'static str, usize)> {
    ["dashboard", "history list", "history messages", "widget"]
        .into_iter()
        .map(|name| (name, configured_attempts()))
        .collect()
}

#[tokio::test]
async fn a_failing_remote_state_manager_read_costs_the_configured_attempts_everywhere() {
    let sm = failing_service(503).await;
    let uri = sm.uri();
    let app = spawn_app_with(move |s| {
        closed_circuit(Settings {
            state_manager_url: Some(uri),
            ..s
        })
    })
    .await;

    let costs = calls_per_failing_read(&app, || async {
        sm.received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() != "/health")
            .count()
    })
    .await;

    assert_eq!(costs, expected());
}

#[tokio::test]
async fn a_failing_simulated_state_manager_read_costs_the_configured_attempts_everywhere() {
    let down = Arc::new(DownStateManager::default());
    let overrides = Overrides {
        wrap_state_manager: Some(Arc::new({
            let down = down.clone();
            move |_simulator| down.clone() as Arc<dyn StateManager>
        })),
        ..Overrides::default()
    };
    let app = spawn_app_with_overrides(closed_circuit, overrides).await;

    let costs = calls_per_failing_read(&app, || async { down.calls.load(Ordering::SeqCst) }).await;

    assert_eq!(costs, expected());
}
