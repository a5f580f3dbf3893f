//! The real-time WebSocket against the real server, with a real client (tokio-tungstenite):
//! authentication before the upgrade, fan-out per tenant, protocol errors (fragmented
//! messages too), liveness, back-pressure, the ways a socket is closed and how fast, event
//! IDs and recovery on the embedded default, customer numbers by role, the connection caps
//! and rate limit, and presence. Recovery across instances on Redis is in `realtime`.

use crate::helpers::*;
use futures::{SinkExt, StreamExt};
use portal_domain::model::{
    ConversationId, Direction, MessageId, MessageStatus, MessageUpdate, StatusUpdate, TenantEvent,
    TenantId,
};
use portal_domain::realtime::CloseReason;
use portal_sandbox::demo;
use serde_json::{Value, json};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

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

// ---------------------------------------------------------------------------------------
// Fragmented messages

#[tokio::test]
async fn a_fragmented_message_over_64_kib_closes_with_1009_and_one_under_it_is_answered() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    // A ping in two fragments is one message.
    let (head, tail) = r#"{"event":"ping","data":{}}"#.split_at(9);
    ws.send(fragment(OpCode::Data(Data::Text), head, false))
        .await
        .unwrap();
    ws.send(fragment(OpCode::Data(Data::Continue), tail, true))
        .await
        .unwrap();
    assert_eq!(event(&mut ws).await["event"], "pong");

    // Two fragments of 40 KiB each: every frame is under the limit, the message is not.
    let part = "x".repeat(40 * 1024);
    ws.send(fragment(OpCode::Data(Data::Text), &part, false))
        .await
        .unwrap();
    ws.send(fragment(OpCode::Data(Data::Continue), &part, false))
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(1009)
    );
}

fn fragment(opcode: OpCode, text: &str, last: bool) -> Message {
    Message::Frame(Frame::message(text.as_bytes().to_vec(), opcode, last))
}

// ---------------------------------------------------------------------------------------
// Prompt closes: the connection ends within milliseconds of the close frame (it took a
// second: the server waited for the client to close TCP, which waits for the server).

/// Far above a close's few milliseconds, far below the one second it used to take.
const PROMPT: Duration = Duration::from_millis(500);

/// Reads to the close frame; its code and reason, and how long the connection took to end
/// after it.
async fn close_and_end(ws: &mut Ws) -> (Option<CloseFrame>, Duration) {
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    let at = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(None | Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the connection did not end within 5 s of the close frame"),
        }
    }
    (frame, at.elapsed())
}

#[tokio::test]
async fn a_client_close_ends_the_connection_promptly() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    ws.close(None).await.unwrap();
    let (frame, took) = close_and_end(&mut ws).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
    assert!(
        took < PROMPT,
        "the connection ended {took:?} after the close"
    );
}

#[tokio::test]
async fn a_logout_ends_the_connection_promptly() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    let res = agent
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("x-csrf-token", &agent.csrf)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(event(&mut ws).await["event"], "session_expired");
    let (frame, took) = close_and_end(&mut ws).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1008));
    assert!(
        took < PROMPT,
        "the connection ended {took:?} after the close"
    );
}

#[tokio::test]
async fn shutdown_closes_promptly_with_a_spread_reconnect_delay() {
    let app = spawn_app_with(|mut s| {
        s.ws_reconnect_delay_min_ms = 1_000;
        s.ws_reconnect_delay_max_ms = 3_000;
        s
    })
    .await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(app.connect(&agent, acme()).await);
    }
    app.realtime.hub.close_all(CloseReason::Shutdown);
    let mut delays = std::collections::BTreeSet::new();
    for ws in &mut sockets {
        let (frame, took) = close_and_end(ws).await;
        let frame = frame.expect("a close frame");
        assert_eq!(u16::from(frame.code), 1001);
        assert!(frame.reason.len() <= 123, "{}", frame.reason);
        let reason: Value = serde_json::from_str(frame.reason.as_str()).unwrap();
        let delay = reason["reconnectAfterMs"].as_u64().unwrap();
        assert!((1_000..=3_000).contains(&delay), "{reason}");
        delays.insert(delay);
        assert!(
            took < PROMPT,
            "the connection ended {took:?} after the close"
        );
    }
    assert!(
        delays.len() > 1,
        "each socket draws its own delay: {delays:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Event IDs, recovery, customer numbers

fn inbound_from(tenant: TenantId, id: &str, wa_id: &str) -> TenantEvent {
    let TenantEvent::Message { update, .. } = message_event(tenant, id, "hello") else {
        unreachable!("a message event")
    };
    TenantEvent::Message {
        tenant_id: tenant,
        update: MessageUpdate {
            wa_id: Some(wa_id.to_owned()),
            ..update
        },
    }
}

#[tokio::test]
async fn viewers_see_the_customer_number_masked_and_everyone_the_same_id() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let viewer = app.signed_in(demo::ACME_VIEWER_EMAIL).await;
    let mut a = app.connect(&agent, acme()).await;
    let mut v = app.connect(&viewer, acme()).await;
    app.realtime
        .bus
        .publish(&inbound_from(acme(), "wamid.masked", "15551234829"))
        .await
        .unwrap();
    let seen_by_agent = event(&mut a).await;
    let seen_by_viewer = event(&mut v).await;
    assert_eq!(seen_by_agent["data"]["wa_id"], "15551234829");
    assert_eq!(seen_by_viewer["data"]["wa_id"], "1555•••829");
    assert_eq!(seen_by_viewer["data"]["text"], "hello");
    assert!(seen_by_agent["id"].is_string(), "{seen_by_agent}");
    assert_eq!(seen_by_agent["id"], seen_by_viewer["id"]);
}

/// The `id` of the next event (panics without one).
fn id_of(event: &Value) -> String {
    event["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an id in {event}"))
        .to_owned()
}

#[tokio::test]
async fn a_resume_frame_replays_what_was_missed_then_recovered_then_live() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let bus = &app.realtime.bus;
    let mut ws = app.connect(&agent, acme()).await;
    bus.publish(&status_event(acme(), "r-0", MessageStatus::Sent))
        .await
        .unwrap();
    let last_seen = id_of(&event(&mut ws).await);
    drop(ws);
    for i in 1..=3 {
        bus.publish(&status_event(
            acme(),
            &format!("r-{i}"),
            MessageStatus::Sent,
        ))
        .await
        .unwrap();
    }
    let mut ws = app.connect(&agent, acme()).await;
    send_json(
        &mut ws,
        json!({"event": "resume", "data": {"since": last_seen}}),
    )
    .await;
    let mut ids = vec![last_seen];
    for i in 1..=3 {
        let e = event(&mut ws).await;
        assert_eq!(e["data"]["message_id"], format!("r-{i}"), "{e}");
        ids.push(id_of(&e));
    }
    assert_eq!(
        event(&mut ws).await,
        json!({"event": "recovered", "data": {"recovered": true}})
    );
    bus.publish(&status_event(acme(), "r-live", MessageStatus::Read))
        .await
        .unwrap();
    let live = event(&mut ws).await;
    assert_eq!(live["data"]["message_id"], "r-live");
    ids.push(id_of(&live));
    let parsed: Vec<portal_domain::model::EventId> =
        ids.iter().map(|id| id.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // A second resume is not a first frame.
    send_json(
        &mut ws,
        json!({"event": "resume", "data": {"since": ids[0]}}),
    )
    .await;
    let e = event(&mut ws).await;
    assert_eq!(e["data"]["code"], "VALIDATION_FAILED", "{e}");
}

#[tokio::test]
async fn an_unknown_since_is_not_recovered_and_a_malformed_one_is_refused() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect_with(&agent, acme(), "since=1-0").await;
    assert_eq!(
        event(&mut ws).await,
        json!({"event": "recovered", "data": {"recovered": false}})
    );
    app.realtime
        .bus
        .publish(&status_event(acme(), "after", MessageStatus::Sent))
        .await
        .unwrap();
    assert_eq!(event(&mut ws).await["data"]["message_id"], "after");

    let refused = app
        .upgrade(
            acme(),
            Some(&agent.cookie),
            Some(FRONTEND),
            "since=yesterday",
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["code"], "VALIDATION_FAILED");
    assert_eq!(problem_fields(&refused.body), ["since"]);
}

// ---------------------------------------------------------------------------------------
// Caps and the rate limit on upgrades

/// Waits (polling the hub, 5 s at most) until the tenant has `n` sockets on the instance.
async fn until_sockets(app: &TestApp, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.realtime.hub.connections_of(acme()) != n {
        assert!(Instant::now() < deadline, "never {n} sockets");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_cap(refused: &Refused, limit: &str, max: u64) {
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["code"], "RATE_LIMIT_EXCEEDED");
    assert_eq!(refused.body["details"], json!({"limit": limit, "max": max}));
    assert!(refused.body["correlationId"].is_string());
    assert!(
        refused.headers.get("retry-after").is_none(),
        "a cap is not a rate limit"
    );
}

#[tokio::test]
async fn sockets_are_capped_per_session_and_a_closed_one_makes_room() {
    let app = spawn_app_with(|mut s| {
        s.ws_max_per_session = 2;
        s
    })
    .await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut first = app.connect(&agent, acme()).await;
    let _second = app.connect(&agent, acme()).await;
    let refused = app
        .upgrade(acme(), Some(&agent.cookie), Some(FRONTEND), "")
        .await
        .unwrap_err();
    assert_cap(&refused, "session", 2);
    // Another session of the same user is not affected.
    let again = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let _third = app.connect(&again, acme()).await;

    first.close(None).await.unwrap();
    until_sockets(&app, 2).await;
    let _fourth = app.connect(&agent, acme()).await;
}

#[tokio::test]
async fn sockets_are_capped_per_user_and_per_instance() {
    let app = spawn_app_with(|mut s| {
        s.ws_max_per_user = 2;
        s.ws_max_per_instance = 3;
        s
    })
    .await;
    let one = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let two = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let _a = app.connect(&one, acme()).await;
    let _b = app.connect(&two, acme()).await;
    let refused = app
        .upgrade(acme(), Some(&one.cookie), Some(FRONTEND), "")
        .await
        .unwrap_err();
    assert_cap(&refused, "user", 2);

    let admin = app.signed_in(demo::ACME_ADMIN_EMAIL).await;
    let _c = app.connect(&admin, acme()).await;
    let refused = app
        .upgrade(acme(), Some(&admin.cookie), Some(FRONTEND), "")
        .await
        .unwrap_err();
    assert_cap(&refused, "instance", 3);
}

#[tokio::test]
async fn each_upgrade_counts_against_the_api_rate_limit() {
    let app = spawn_app_with(|mut s| {
        s.rate_limit_api_max = 2;
        s
    })
    .await;
    // Signing in spends one unit (`/auth/me`); the first upgrade the second.
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let _ws = app.connect(&agent, acme()).await;
    let refused = app
        .upgrade(acme(), Some(&agent.cookie), Some(FRONTEND), "")
        .await
        .unwrap_err();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["code"], "RATE_LIMIT_EXCEEDED");
    let header = |name: &str| {
        refused
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert!(
        header("retry-after").is_some_and(|s| s >= 1),
        "{:?}",
        refused.headers
    );
    assert_eq!(header("ratelimit-limit"), Some(2));
    assert_eq!(header("ratelimit-remaining"), Some(0));
}

// ---------------------------------------------------------------------------------------
// Presence

#[tokio::test]
async fn presence_lists_the_tenants_open_sockets_by_user() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let admin = app.signed_in(demo::ACME_ADMIN_EMAIL).await;
    let viewer = app.signed_in(demo::ACME_VIEWER_EMAIL).await;
    let globex_admin = app.signed_in(demo::GLOBEX_ADMIN_EMAIL).await;
    let _a1 = app.connect(&agent, acme()).await;
    let mut a2 = app.connect(&agent, acme()).await;
    let _b = app.connect(&admin, acme()).await;
    let _g = app.connect(&globex_admin, globex()).await;

    let presence = |user: &User| user.client.get(app.url("/api/v1/realtime/presence")).send();
    let res = presence(&viewer).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenantId"], acme().to_string());
    assert_eq!(body["connections"], 3, "{body}");
    let users = body["users"].as_array().unwrap();
    let counts: Vec<u64> = users
        .iter()
        .map(|u| u["connections"].as_u64().unwrap())
        .collect();
    assert_eq!(users.len(), 2, "{body}");
    assert_eq!(counts.iter().sum::<u64>(), 3);
    let ids: Vec<&str> = users
        .iter()
        .map(|u| u["userId"].as_str().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted: {ids:?}");

    a2.close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body: Value = presence(&viewer).await.unwrap().json().await.unwrap();
        if body["connections"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let res = app
        .client
        .get(app.url("/api/v1/realtime/presence"))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "NO_SESSION").await;
}
