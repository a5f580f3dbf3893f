//! The real-time WebSocket against the real server, with a real client (tokio-tungstenite):
//! authentication before the upgrade, fan-out per tenant, protocol errors, liveness,
//! back-pressure, and the ways a socket is closed.

use crate::helpers::*;
use futures::SinkExt;
use portal_domain::model::{
    ConversationId, Direction, MessageId, MessageStatus, MessageUpdate, StatusUpdate, TenantEvent,
    TenantId,
};
use portal_domain::realtime::CloseReason;
use portal_sandbox::demo;
use serde_json::json;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_tungstenite::tungstenite::Message;

fn message_event(tenant: TenantId, id: &str, text: &str) -> TenantEvent {
    TenantEvent::Message {
        tenant_id: tenant,
        update: MessageUpdate {
            direction: Direction::Inbound,
            conversation_id: ConversationId::new_random(),
            message_id: MessageId::parse(id).unwrap(),
            text: Some(text.to_owned()),
            status: MessageStatus::Received,
            timestamp: OffsetDateTime::now_utc(),
            wa_id: None,
        },
    }
}

fn status_event(tenant: TenantId, id: &str, status: MessageStatus) -> TenantEvent {
    TenantEvent::Status {
        tenant_id: tenant,
        update: StatusUpdate {
            message_id: MessageId::parse(id).unwrap(),
            status,
            timestamp: OffsetDateTime::now_utc(),
            conversation_id: None,
        },
    }
}

#[tokio::test]
async fn a_tenants_socket_gets_both_event_kinds_and_never_another_tenants() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let gus = app.signed_in(demo::GLOBEX_ADMIN_EMAIL).await;
    let mut a = app.connect(&agent, acme()).await;
    let mut b = app.connect(&gus, globex()).await;

    let bus = &app.realtime.bus;
    bus.publish(&message_event(acme(), "wamid.acme-1", "Hi Acme"))
        .await
        .unwrap();
    bus.publish(&status_event(acme(), "wamid.acme-1", MessageStatus::Read))
        .await
        .unwrap();

    let m = event(&mut a).await;
    assert_eq!(m["event"], "message_update", "{m}");
    assert_eq!(m["data"]["type"], "inbound");
    assert_eq!(m["data"]["message_id"], "wamid.acme-1");
    assert_eq!(m["data"]["text"], "Hi Acme");
    assert_eq!(m["data"]["status"], "received");
    assert!(m["data"]["conversation_id"].is_string());
    assert!(m["data"]["timestamp"].is_string());
    let s = event(&mut a).await;
    assert_eq!(s["event"], "status_update", "{s}");
    assert_eq!(s["data"]["message_id"], "wamid.acme-1");
    assert_eq!(s["data"]["status"], "read");

    // A has seen its events; B's first frame must be its own, later event.
    bus.publish(&status_event(
        globex(),
        "wamid.globex-1",
        MessageStatus::Sent,
    ))
    .await
    .unwrap();
    let first = event(&mut b).await;
    assert_eq!(first["data"]["message_id"], "wamid.globex-1", "{first}");
}

#[tokio::test]
async fn upgrades_are_refused_before_the_handshake() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;

    let (status, body) = app
        .try_connect(acme(), None, Some(FRONTEND), None)
        .await
        .unwrap_err();
    assert_eq!((status, body["code"].as_str()), (401, Some("NO_SESSION")));

    let (status, body) = app
        .try_connect(
            acme(),
            Some(&agent.cookie),
            Some("https://evil.example"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")));

    let (status, body) = app
        .try_connect(acme(), Some(&agent.cookie), None, None)
        .await
        .unwrap_err();
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")));

    let (status, body) = app
        .try_connect(globex(), Some(&agent.cookie), Some(FRONTEND), None)
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("TENANT_ISOLATION_VIOLATION"))
    );
    assert!(body["correlationId"].is_string(), "{body}");

    let (status, body) = app
        .try_connect(acme(), Some("sessionId=forged"), Some(FRONTEND), None)
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("SESSION_EXPIRED"))
    );
}

#[tokio::test]
async fn a_ticket_opens_one_socket_without_cookie_or_origin() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let ticket = app.ticket(&agent).await;

    let mut ws = app
        .try_connect(acme(), None, None, Some(&ticket))
        .await
        .expect("the ticket is accepted");
    send_json(&mut ws, json!({"event": "ping", "data": {}})).await;
    assert_eq!(event(&mut ws).await, json!({"event": "pong", "data": {}}));

    let (status, body) = app
        .try_connect(acme(), None, None, Some(&ticket))
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("SESSION_EXPIRED"))
    );

    let (status, _) = app
        .try_connect(acme(), None, None, Some("made-up"))
        .await
        .unwrap_err();
    assert_eq!(status, 401);

    // A ticket is for its own tenant only.
    let other = app.ticket(&agent).await;
    let (status, body) = app
        .try_connect(globex(), None, None, Some(&other))
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("TENANT_ISOLATION_VIOLATION"))
    );
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_socket_stays_up() {
    let app = spawn_app().await;
    let viewer = app.signed_in(demo::ACME_VIEWER_EMAIL).await;
    let mut ws = app.connect(&viewer, acme()).await;

    for bad in [
        Message::text("not json"),
        Message::text(r#"{"event": "dance", "data": {}}"#),
        Message::text(r#"{"data": {}}"#),
        Message::binary(vec![1u8, 2, 3]),
    ] {
        ws.send(bad).await.unwrap();
        let e = event(&mut ws).await;
        assert_eq!(e["event"], "error", "{e}");
        assert_eq!(e["data"]["code"], "VALIDATION_FAILED", "{e}");
        assert!(e["data"]["message"].is_string());
    }
    send_json(&mut ws, json!({"event": "ping"})).await;
    assert_eq!(event(&mut ws).await["event"], "pong");
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_with_1009() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    let big = format!(
        r#"{{"event":"ping","data":{{"pad":"{}"}}}}"#,
        "x".repeat(65 * 1024)
    );
    ws.send(Message::text(big)).await.unwrap();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(1009)
    );
}

#[tokio::test]
async fn a_silent_peer_is_dropped_and_a_live_one_is_kept() {
    let app = spawn_app_with(|mut s| {
        s.ws_ping_interval_ms = 100;
        s.ws_idle_timeout_ms = 800;
        s
    })
    .await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut live = app.connect(&agent, acme()).await;
    let mut silent = app.connect(&agent, acme()).await;

    // The live client keeps reading, so it answers the server's pings with pongs.
    assert!(
        next(&mut live, Duration::from_millis(2000)).await.is_none(),
        "a peer that answers pings stays connected"
    );
    // The silent one did not read (so never answered a ping) for longer than the timeout:
    // the server dropped it (1001; the client may instead see the reset of the connection
    // when it answers the stale pings after the server has gone).
    assert_eq!(app.realtime.hub.connections_of(acme()), 1);
    let code = close_code(&mut silent, Duration::from_secs(3)).await;
    assert!(matches!(code, None | Some(1001)), "{code:?}");
    send_json(&mut live, json!({"event": "ping", "data": {}})).await;
    assert_eq!(event(&mut live).await["event"], "pong");
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_1013() {
    let app = spawn_app_with(|mut s| {
        s.ws_queue_capacity = 2;
        s
    })
    .await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    // A burst far faster than one socket drains its two-frame queue.
    for i in 0..2000 {
        app.realtime
            .bus
            .publish(&status_event(acme(), &format!("m{i}"), MessageStatus::Sent))
            .await
            .unwrap();
    }
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(10)).await,
        Some(1013)
    );
    assert!(
        app.realtime
            .hub
            .stats()
            .slow_consumers_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test]
async fn logout_closes_the_sessions_socket_with_session_expired() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let admin = app.signed_in(demo::ACME_ADMIN_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    let mut other = app.connect(&admin, acme()).await;

    let res = agent
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("x-csrf-token", &agent.csrf)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(event(&mut ws).await["event"], "session_expired");
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(1008)
    );

    // Another session's socket is untouched.
    send_json(&mut other, json!({"event": "ping", "data": {}})).await;
    assert_eq!(event(&mut other).await["event"], "pong");
}

#[tokio::test]
async fn an_expired_session_closes_its_socket_at_the_next_check() {
    let app = spawn_app_with(|mut s| {
        s.ws_session_check_ms = 100;
        s
    })
    .await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    assert!(next(&mut ws, Duration::from_millis(300)).await.is_none());
    app.clock.advance(time::Duration::hours(25));
    assert_eq!(event(&mut ws).await["event"], "session_expired");
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(1008)
    );
}

#[tokio::test]
async fn shutdown_sends_going_away() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    app.realtime.hub.close_all(CloseReason::Shutdown);
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(1001)
    );
}
