//! Several application instances on one Redis (many instances, every topology
//! and degraded mode): sessions and logout are shared, the sign-in rate limit is shared, events
//! cross instances, a cold key costs one State Manager call, on one node **and** on a Redis
//! Cluster; a restart of Redis (every topology) and a failover (Cluster, Sentinel) are followed
//! without restarting the application and without a 500; a Redis outage fails closed with 503
//! and recovers by itself.
//!
//! Real instances on port 0, all with the same `COOKIE_SECRET` and `ENCRYPTION_KEY` (as a
//! deployment would: `helpers::with_redis`) and short Redis deadlines
//! (`Deployment::quick_config`), on deployments of portal-redis's harness (`redis_support`).

#![allow(clippy::print_stdout)] // measured figures, shown with --nocapture

use crate::helpers::*;
use crate::redis_support::{Deployment, on_topologies};
use async_trait::async_trait;
use portal_domain::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, DateRange, Direction,
    Message, MessageId, MessageStatus, MessageUpdate, Period, RawMetrics, TenantEvent, TenantId,
};
use portal_domain::ports::downstream::{StateManager, StateManagerError};
use portal_server::{Overrides, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the service may take to notice Redis going or coming back (spec: 2 s), plus slack
/// for a loaded test machine.
const NOTICE: Duration = Duration::from_secs(5);

on_topologies!(sessions_and_logout_are_shared:
    a_session_made_on_one_instance_is_valid_on_the_others_and_logout_is_seen_by_all => Deployment::single(),
    on_a_cluster_a_session_made_on_one_instance_is_valid_on_the_others_and_logout_is_seen_by_all => Deployment::cluster(),
);

async fn sessions_and_logout_are_shared(redis: Deployment) {
    let a = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;
    let b = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;
    let c = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;

    let session = a.session("agent@acme.example").await;
    let mut csrf = String::new();
    for instance in [&a, &b, &c] {
        let res = instance.me(&session).await;
        assert_eq!(res.status(), StatusCode::OK, "on {}", instance.address);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["email"], "agent@acme.example");
        csrf = body["csrfToken"].as_str().unwrap().to_owned();
    }

    // The CSRF token read on C works on B (same secrets); logout there ends it everywhere.
    let res = session
        .post(b.url("/api/v1/auth/logout"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for instance in [&a, &b, &c] {
        let res = instance.me(&session).await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "on {}",
            instance.address
        );
    }
}

on_topologies!(sign_in_limit_is_shared:
    the_sign_in_rate_limit_is_shared_across_instances => Deployment::single(),
    on_a_cluster_the_sign_in_rate_limit_is_shared_across_instances => Deployment::cluster(),
);

async fn sign_in_limit_is_shared(redis: Deployment) {
    let limited = |s: Settings| Settings {
        rate_limit_auth_max: 6,
        ..with_redis(s, redis.quick_config())
    };
    let instances = [
        spawn_app_with(limited).await,
        spawn_app_with(limited).await,
        spawn_app_with(limited).await,
    ];
    // Until an instance has seen Redis answer it limits in process; wait for all three.
    for instance in &instances {
        instance.wait_for("/health", StatusCode::OK, NOTICE).await;
    }

    let client = plain_client();
    let (mut allowed, mut refused) = (0, 0);
    for round in 0..4 {
        for instance in &instances {
            let res = client
                .get(instance.url("/api/v1/auth/login"))
                .send()
                .await
                .unwrap();
            match res.status() {
                StatusCode::FOUND => allowed += 1,
                StatusCode::TOO_MANY_REQUESTS => refused += 1,
                other => panic!("round {round}: unexpected {other}"),
            }
        }
    }
    assert_eq!(
        (allowed, refused),
        (6, 6),
        "12 attempts from one IP over 3 instances against a shared limit of 6"
    );
}

#[tokio::test]
async fn a_redis_outage_fails_closed_and_recovers_without_a_restart() {
    let mut redis = Deployment::single().await;
    let a = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;
    let b = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;
    let health: Value = a
        .wait_for("/health", StatusCode::OK, NOTICE)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["checks"]["redis"], "ok", "{health}");

    // Written before the outage: a session, and a new tenant's onboarding wizard at step 1.
    let admin = a.session("admin@acme.example").await;
    assert_eq!(b.me(&admin).await.status(), StatusCode::OK);
    let newco = a.signed_in("new@newco.example").await;
    let res = newco
        .client
        .post(a.url("/api/v1/onboarding/step1"))
        .header("X-CSRF-Token", &newco.csrf)
        .json(&serde_json::json!({
            "companyName": "NewCo Ltd", "region": "eu-west-1", "contactEmail": "new@newco.example"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let step1: Value = res.json().await.unwrap();
    let tenant = step1["tenantId"].as_str().unwrap().to_owned();

    redis.node().stop().await;
    for instance in [&a, &b] {
        let health: Value = instance
            .wait_for("/health", StatusCode::SERVICE_UNAVAILABLE, NOTICE)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "degraded", "{health}");
        assert_eq!(health["checks"]["redis"], "error", "{health}");
        let ready = plain_client()
            .get(instance.url("/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

        // Fail closed, and quickly: the session cannot be checked, so nobody gets in.
        let started = Instant::now();
        let res = instance.me(&admin).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        assert_error(res, 503, "SERVICE_UNAVAILABLE").await;
    }
    // Sign-in is still rate limited (in process) rather than erroring out on the limiter:
    // the login itself needs Redis for its state, so it fails closed too.
    let res = plain_client()
        .get(a.url("/api/v1/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        res.headers().contains_key("ratelimit-limit"),
        "the fallback limiter still decided"
    );

    // Redis comes back (with its data): both instances recover by themselves.
    redis.restart().await;
    let back = Instant::now();
    for instance in [&a, &b] {
        loop {
            let res = instance.me(&admin).await;
            if res.status() == StatusCode::OK {
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["email"], "admin@acme.example", "the session survived");
                break;
            }
            assert!(
                back.elapsed() < NOTICE,
                "{} did not recover: {}",
                instance.address,
                res.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        instance.wait_for("/health", StatusCode::OK, NOTICE).await;
    }
    // The wizard state written before the outage is still there.
    let res = newco
        .client
        .get(a.url(&format!("/api/v1/onboarding/status/{tenant}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let status: Value = res.json().await.unwrap();
    assert_eq!(status["currentStep"], 1, "{status}");
    assert_eq!(status["completedSteps"], serde_json::json!([1]), "{status}");
}

on_topologies!(events_cross_instances:
    a_websocket_on_one_instance_receives_an_event_published_on_another => Deployment::single(),
    on_a_cluster_a_websocket_on_one_instance_receives_an_event_published_on_another => Deployment::cluster(),
);

async fn events_cross_instances(redis: Deployment) {
    let a = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;
    let b = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;
    let agent = a.signed_in("agent@acme.example").await;
    let mut ws = a.connect(&agent, acme()).await;

    b.realtime
        .bus
        .publish(&TenantEvent::Message {
            tenant_id: acme(),
            update: MessageUpdate {
                direction: Direction::Inbound,
                conversation_id: ConversationId::new_random(),
                message_id: MessageId::parse("wamid.from-b").unwrap(),
                text: Some("published on B".into()),
                status: MessageStatus::Received,
                timestamp: time::OffsetDateTime::now_utc(),
                wa_id: None,
            },
        })
        .await
        .unwrap();

    let event = event_about(
        &mut ws,
        "message_update",
        "wamid.from-b",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(event["data"]["text"], "published on B", "{event}");
}
/// The simulated State Manager, its `metrics` calls counted in a counter shared by every
/// instance.
struct CountingStateManager {
    inner: Arc<dyn StateManager>,
    metrics: Arc<AtomicUsize>,
}

#[async_trait]
impl StateManager for CountingStateManager {
    async fn conversations(
        &self,
        tenant: TenantId,
        query: ConversationQuery,
    ) -> Result<ConversationPage, StateManagerError> {
        self.inner.conversations(tenant, query).await
    }
    async fn conversation(&self, id: ConversationId) -> Result<Conversation, StateManagerError> {
        self.inner.conversation(id).await
    }
    async fn messages(&self, id: ConversationId) -> Result<Vec<Message>, StateManagerError> {
        self.inner.messages(id).await
    }
    async fn metrics(
        &self,
        tenant: TenantId,
        period: Period,
    ) -> Result<RawMetrics, StateManagerError> {
        self.metrics.fetch_add(1, Ordering::SeqCst);
        // Slow enough that every concurrent request arrives while the fetch is in flight.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.inner.metrics(tenant, period).await
    }
    async fn metrics_range(
        &self,
        tenant: TenantId,
        range: DateRange,
    ) -> Result<RawMetrics, StateManagerError> {
        self.inner.metrics_range(tenant, range).await
    }
}

on_topologies!(one_call_per_cold_key:
    a_cold_dashboard_key_under_load_on_every_instance_costs_one_state_manager_call => Deployment::single(),
    on_a_cluster_a_cold_dashboard_key_under_load_on_every_instance_costs_one_state_manager_call => Deployment::cluster(),
);

async fn one_call_per_cold_key(redis: Deployment) {
    let metrics = Arc::new(AtomicUsize::new(0));
    let mut instances = Vec::new();
    for _ in 0..3 {
        let metrics = metrics.clone();
        let overrides = Overrides {
            wrap_state_manager: Some(Arc::new(move |inner| {
                Arc::new(CountingStateManager {
                    inner,
                    metrics: metrics.clone(),
                }) as Arc<dyn StateManager>
            })),
            ..Overrides::default()
        };
        let instance = spawn_app_with_overrides(
            |s| Settings {
                rate_limit_api_max: 10_000,
                ..with_redis(s, redis.quick_config())
            },
            overrides,
        )
        .await;
        instance.wait_for("/health", StatusCode::OK, NOTICE).await;
        instances.push(instance);
    }
    let admin = instances[0].session("admin@acme.example").await;

    let requests = instances.iter().flat_map(|instance| {
        (0..8).map(|_| {
            admin
                .get(instance.url("/api/v1/dashboard/stats?period=week"))
                .send()
        })
    });
    let responses = futures::future::join_all(requests).await;
    let mut bodies = Vec::new();
    for res in responses {
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        bodies.push(body["totalMessages"].clone());
    }
    assert_eq!(
        metrics.load(Ordering::SeqCst),
        1,
        "24 concurrent reads of one cold key on 3 instances: one State Manager call"
    );
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

#[tokio::test]
async fn a_hung_redis_answers_503_within_the_deadline_and_recovers() {
    let mut redis = Deployment::single().await;
    let a = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;
    a.wait_for("/health", StatusCode::OK, NOTICE).await;
    let agent = a.session("agent@acme.example").await;

    // The process stops answering (no connection error): only the deadlines end the wait.
    redis.node().freeze();
    let started = Instant::now();
    let res = a.me(&agent).await;
    let took = started.elapsed();
    assert_error(res, 503, "SERVICE_UNAVAILABLE").await;
    // Connect (300 ms) + command (300 ms) deadlines, plus scheduling slack.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let health: Value = a
        .wait_for("/health", StatusCode::SERVICE_UNAVAILABLE, NOTICE)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded");

    redis.node().thaw();
    let back = Instant::now();
    while a.me(&agent).await.status() != StatusCode::OK {
        assert!(back.elapsed() < NOTICE, "did not recover after thaw");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_topologies!(restart_is_followed:
    after_redis_restarts_and_readyz_turns_200_the_next_request_succeeds => Deployment::single(),
    on_a_cluster_after_redis_restarts_and_readyz_turns_200_the_next_request_succeeds => Deployment::cluster_with_replicas(),
    on_sentinel_after_redis_restarts_and_readyz_turns_200_the_next_request_succeeds => Deployment::sentinel(),
);

/// Issue 12: the first request after a restart used to pay for discovering the dead
/// connection (503 "connection lost" while `/readyz` already said 200). The health monitor
/// pings through the request connection, so once `/readyz` is 200 that connection works.
async fn restart_is_followed(mut redis: Deployment) {
    let a = spawn_app_with(|s| with_redis(s, redis.quick_config())).await;
    a.wait_for("/health", StatusCode::OK, NOTICE).await;
    let agent = a.session("agent@acme.example").await;
    redis.wait_replicated().await;
    assert_eq!(a.me(&agent).await.status(), StatusCode::OK);

    redis.restart().await;
    // Wait for readiness only, sending nothing else...
    a.wait_for("/readyz", StatusCode::OK, Duration::from_secs(15))
        .await;
    // ...then the very next request succeeds, on the session written before the restart.
    let res = a.me(&agent).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}: the first request after /readyz turned 200",
        redis.name()
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["email"], "agent@acme.example");
}

on_topologies!(failover_is_followed:
    on_a_cluster_killing_a_master_fails_over_with_503s_only_and_recovers_without_a_restart => Deployment::cluster_with_replicas(),
    on_sentinel_killing_the_master_fails_over_with_503s_only_and_recovers_without_a_restart => Deployment::sentinel(),
);

/// Issue 12 item 4: kill the master holding the tenant's dashboard cache (and, on Sentinel, the
/// only master) under load on two instances. During the switch protected requests get 503,
/// never 500 (and never get in without a session); within 10 s of the promotion every request
/// works again with no restart, and the session and the onboarding wizard written before
/// survive.
async fn failover_is_followed(mut redis: Deployment) {
    let unlimited = |s: Settings| Settings {
        rate_limit_api_max: 100_000,
        ..with_redis(s, redis.quick_config())
    };
    let a = spawn_app_with(unlimited).await;
    let b = spawn_app_with(unlimited).await;
    a.wait_for("/health", StatusCode::OK, NOTICE).await;
    b.wait_for("/health", StatusCode::OK, NOTICE).await;
    let admin = a.session("admin@acme.example").await;
    let stats = "/api/v1/dashboard/stats?period=week";
    let get = |instance: &TestApp, path: &str| {
        admin
            .get(instance.url(path))
            .timeout(Duration::from_secs(5))
            .send()
    };
    assert_eq!(get(&a, stats).await.unwrap().status(), StatusCode::OK);
    // A wizard in progress: the NewCo admin's step 1 (the wizard's state, and the session now
    // bound to the new tenant, are in Redis).
    let newco = a.signed_in(portal_sandbox::demo::NEWCO_ADMIN_EMAIL).await;
    let res = newco
        .client
        .post(a.url("/api/v1/onboarding/step1"))
        .header("X-CSRF-Token", &newco.csrf)
        .json(&json!({
            "companyName": "NewCo Ltd",
            "region": "eu-west-1",
            "contactEmail": portal_sandbox::demo::NEWCO_ADMIN_EMAIL,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let newco_tenant = body["tenantId"].as_str().unwrap().to_owned();
    redis.wait_replicated().await;

    // Load on both instances until told to stop: every status is recorded.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(Vec::<u16>::new()));
    let load = {
        let (stop, seen, client) = (stop.clone(), seen.clone(), admin.clone());
        let urls = [
            a.url(stats),
            b.url("/api/v1/auth/me"),
            b.url(stats),
            a.url("/api/v1/auth/me"),
        ];
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let url = &urls[i % urls.len()];
                i += 1;
                let res = client.get(url).timeout(Duration::from_secs(5)).send().await;
                let status = res.map(|r| r.status().as_u16()).unwrap_or(0);
                seen.lock().unwrap().push(status);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let key = format!("metrics:{{{}}}:week", acme());
    redis.fail_over(&key).await;
    let promoted = Instant::now();

    // Everything works again on both instances, within 10 s of the promotion.
    for instance in [&a, &b] {
        loop {
            let (s, m) = (
                get(instance, stats).await,
                get(instance, "/api/v1/auth/me").await,
            );
            let ok = |r: &Result<reqwest::Response, reqwest::Error>| {
                r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)
            };
            if ok(&s) && ok(&m) {
                let body: Value = m.unwrap().json().await.unwrap();
                assert_eq!(body["email"], "admin@acme.example", "the session survived");
                break;
            }
            assert!(
                promoted.elapsed() < Duration::from_secs(10),
                "{}: {} not recovered 10 s after the promotion",
                redis.name(),
                instance.address
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let recovered = promoted.elapsed();
    // The wizard survived the failover: step 1 is still done, read through the other instance.
    let status: Value = newco
        .client
        .get(b.url(&format!("/api/v1/onboarding/status/{newco_tenant}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["currentStep"],
        1,
        "{}: the wizard after the failover: {status}",
        redis.name()
    );
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let unexpected: Vec<u16> = seen
        .iter()
        .copied()
        .filter(|s| ![200, 503].contains(s))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{}: only 200 and 503 during a failover, saw {unexpected:?} among {} requests",
        redis.name(),
        seen.len()
    );
    assert!(seen.len() > 10, "the load ran: {}", seen.len());
    println!(
        "{}: {} requests during the failover: {} × 200, {} × 503; recovered {:?} after the promotion",
        redis.name(),
        seen.len(),
        seen.iter().filter(|s| **s == 200).count(),
        seen.iter().filter(|s| **s == 503).count(),
        recovered
    );
}
