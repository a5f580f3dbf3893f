//! Real-time across instances on Redis: a socket that reconnects with the last `id` it saw
//! gets exactly the events it missed (published on another instance), then `recovered`, then
//! live events; a position the history no longer has is `recovered: false`, never a silent
//! gap; presence and the per-user cap count every instance's sockets.

use crate::helpers::*;
use portal_domain::model::{MessageStatus, StatusUpdate, TenantEvent, TenantId};
use portal_redis::RedisServer;
use portal_sandbox::demo;
use portal_server::Settings;
use portal_server::configuration::RedisConfig;
use serde_json::{Value, json};
use time::OffsetDateTime;

const COOKIE_SECRET: &str = "realtime-test-cookie-secret-0123456789abcdef";
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// An instance on `redis`; every instance shares the secrets, as a deployment's do.
async fn instance(redis: &RedisServer, tweak: impl FnOnce(Settings) -> Settings) -> TestApp {
    let url = redis.url();
    spawn_app_with(move |s| {
        tweak(Settings {
            redis: RedisConfig::single(url),
            cookie_secret: Some(COOKIE_SECRET.into()),
            encryption_key: Some(ENCRYPTION_KEY.into()),
            ..s
        })
    })
    .await
}

fn status(tenant: TenantId, message: &str) -> TenantEvent {
    TenantEvent::Status {
        tenant_id: tenant,
        update: StatusUpdate {
            message_id: portal_domain::model::MessageId::parse(message).unwrap(),
            status: MessageStatus::Delivered,
            timestamp: OffsetDateTime::now_utc(),
            conversation_id: None,
        },
    }
}

fn id_of(event: &Value) -> portal_domain::model::EventId {
    event["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("an id in {event}"))
}

/// Reads events until one with `message_id` (earlier ones skipped); returns it.
async fn until_message(ws: &mut Ws, message: &str) -> Value {
    for _ in 0..200 {
        let e = event(ws).await;
        if e["data"]["message_id"] == message {
            return e;
        }
    }
    panic!("no event for {message}");
}

#[tokio::test]
async fn a_reconnecting_socket_gets_exactly_the_50_events_published_on_another_instance() {
    let redis = RedisServer::start().await;
    let a = instance(&redis, |s| s).await;
    let b = instance(&redis, |s| s).await;
    let agent = a.signed_in(demo::ACME_AGENT_EMAIL).await;
    // Stays connected throughout: once it has seen an event, instance A has recorded it.
    let mut observer = a.connect_with(&agent, acme(), "since=1-0").await;
    assert_eq!(event(&mut observer).await["event"], "recovered");

    let mut ws = a.connect_with(&agent, acme(), "since=1-0").await;
    assert_eq!(event(&mut ws).await["data"]["recovered"], false);
    b.realtime
        .bus
        .publish(&status(acme(), "seen"))
        .await
        .unwrap();
    let last_seen = id_of(&until_message(&mut ws, "seen").await);
    ws.close(None).await.unwrap();
    drop(ws);

    for i in 0..50 {
        b.realtime
            .bus
            .publish(&status(acme(), &format!("missed-{i:02}")))
            .await
            .unwrap();
    }
    until_message(&mut observer, "missed-49").await;

    let mut ws = a
        .connect_with(&agent, acme(), &format!("since={last_seen}"))
        .await;
    let mut previous = last_seen;
    for i in 0..50 {
        let e = event(&mut ws).await;
        assert_eq!(e["event"], "status_update", "{e}");
        assert_eq!(e["data"]["message_id"], format!("missed-{i:02}"), "{e}");
        let id = id_of(&e);
        assert!(id > previous, "{id} after {previous}");
        previous = id;
    }
    assert_eq!(
        event(&mut ws).await,
        json!({"event": "recovered", "data": {"recovered": true}})
    );
    b.realtime
        .bus
        .publish(&status(acme(), "live"))
        .await
        .unwrap();
    let live = event(&mut ws).await;
    assert_eq!(live["data"]["message_id"], "live", "nothing twice: {live}");
    assert!(id_of(&live) > previous);

    // The other instance gave the same events the same IDs.
    let on_b = b.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws_b = b
        .connect_with(&on_b, acme(), &format!("since={last_seen}"))
        .await;
    let first = event(&mut ws_b).await;
    assert_eq!(first["data"]["message_id"], "missed-00");
    let mut ws_a = a
        .connect_with(&agent, acme(), &format!("since={last_seen}"))
        .await;
    assert_eq!(event(&mut ws_a).await["id"], first["id"]);
}

#[tokio::test]
async fn a_position_trimmed_from_the_history_is_not_recovered() {
    let redis = RedisServer::start().await;
    let a = instance(&redis, |mut s| {
        s.ws_history_max_events = 10;
        s
    })
    .await;
    let b = instance(&redis, |mut s| {
        s.ws_history_max_events = 10;
        s
    })
    .await;
    let agent = a.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut observer = a.connect_with(&agent, acme(), "since=1-0").await;
    assert_eq!(event(&mut observer).await["data"]["recovered"], false);

    b.realtime
        .bus
        .publish(&status(acme(), "seen"))
        .await
        .unwrap();
    let last_seen = id_of(&until_message(&mut observer, "seen").await);
    // More than the history keeps: the position is trimmed away.
    for i in 0..20 {
        b.realtime
            .bus
            .publish(&status(acme(), &format!("later-{i:02}")))
            .await
            .unwrap();
    }
    until_message(&mut observer, "later-19").await;
    let mut ws = a
        .connect_with(&agent, acme(), &format!("since={last_seen}"))
        .await;
    assert_eq!(
        event(&mut ws).await,
        json!({"event": "recovered", "data": {"recovered": false}})
    );
    b.realtime
        .bus
        .publish(&status(acme(), "live"))
        .await
        .unwrap();
    assert_eq!(event(&mut ws).await["data"]["message_id"], "live");
}

#[tokio::test]
async fn a_history_evicted_between_disconnect_and_reconnect_is_a_gap_not_a_silent_one() {
    let redis = RedisServer::start().await;
    let a = instance(&redis, |s| s).await;
    let agent = a.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = a.connect_with(&agent, acme(), "since=1-0").await;
    assert_eq!(event(&mut ws).await["data"]["recovered"], false);
    a.realtime
        .bus
        .publish(&status(acme(), "seen"))
        .await
        .unwrap();
    let last_seen = id_of(&until_message(&mut ws, "seen").await);
    a.realtime
        .bus
        .publish(&status(acme(), "missed"))
        .await
        .unwrap();
    until_message(&mut ws, "missed").await;
    drop(ws);

    // Redis loses the tenant's history (eviction, a restart without persistence).
    let mut conn = redis.connection().await;
    let key = format!("events:{{{}}}", acme());
    let deleted: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the history lives under {key}");

    let mut ws = a
        .connect_with(&agent, acme(), &format!("since={last_seen}"))
        .await;
    assert_eq!(
        event(&mut ws).await,
        json!({"event": "recovered", "data": {"recovered": false}})
    );
}

#[tokio::test]
async fn presence_and_the_user_cap_count_every_instances_sockets() {
    let redis = RedisServer::start().await;
    let a = instance(&redis, |mut s| {
        s.ws_max_per_user = 3;
        s
    })
    .await;
    let b = instance(&redis, |mut s| {
        s.ws_max_per_user = 3;
        s
    })
    .await;
    let agent = a.signed_in(demo::ACME_AGENT_EMAIL).await;
    let admin = b.signed_in(demo::ACME_ADMIN_EMAIL).await;
    // One session, valid on both instances (shared secrets and store).
    let _a1 = a.connect(&agent, acme()).await;
    let _a2 = a.connect(&agent, acme()).await;
    let _b1 = b.connect(&agent, acme()).await;
    let _b2 = b.connect(&admin, acme()).await;
    let refused = b
        .upgrade(acme(), Some(&agent.cookie), Some(FRONTEND), "")
        .await
        .unwrap_err();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["details"], json!({"limit": "user", "max": 3}));

    let res = admin
        .client
        .get(a.url("/api/v1/realtime/presence"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["connections"], 4, "{body}");
    let mut counts: Vec<u64> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["connections"].as_u64().unwrap())
        .collect();
    counts.sort();
    assert_eq!(counts, [1, 3], "{body}");
}
