//! Widget send over REST (`POST /api/v1/widget/send`) and over the socket (`send_message`),
//! against the real server and the delivery simulator (its `message_update` and
//! `sent`/`delivered`/`read` arrive on the tenant's socket).

use crate::helpers::*;
use portal_domain::model::{ConversationId, ConversationStatus};
use portal_sandbox::demo;
use reqwest::Response;
use serde_json::{Value, json};
use std::time::Duration;

async fn rest_send(app: &TestApp, user: &User, body: Value, key: Option<&str>) -> Response {
    let mut req = user
        .client
        .post(app.url("/api/v1/widget/send"))
        .header("x-csrf-token", &user.csrf)
        .json(&body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    req.send().await.unwrap()
}

async fn error_of(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The simulator's events for `message_id`: `message_update`, then `sent`, `delivered`, `read`.
async fn assert_delivered(ws: &mut Ws, message_id: &str, text: &str) {
    let m = event_named(ws, "message_update").await;
    assert_eq!(m["data"]["message_id"], message_id, "{m}");
    assert_eq!(m["data"]["type"], "outbound");
    assert_eq!(m["data"]["text"], text);
    for status in ["sent", "delivered", "read"] {
        let s = event_named(ws, "status_update").await;
        assert_eq!(s["data"]["message_id"], message_id, "{s}");
        assert_eq!(s["data"]["status"], status, "{s}");
    }
}

#[tokio::test]
async fn rest_send_queues_once_and_the_socket_sees_it_delivered() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    let conv = conversation(acme(), ConversationStatus::Active);
    let body = json!({"conversationId": conv.to_string(), "text": "Hello from Acme"});

    let res = rest_send(&app, &agent, body.clone(), Some("retry-key-1")).await;
    assert_eq!(res.status().as_u16(), 200);
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["success"], true);
    assert_eq!(first["status"], "queued");
    assert!(first["queued_at"].is_string());
    let id = first["message_id"].as_str().unwrap().to_owned();
    assert_delivered(&mut ws, &id, "Hello from Acme").await;

    // The same key: the first result, and no second message.
    let res = rest_send(&app, &agent, body, Some("retry-key-1")).await;
    assert_eq!(res.status().as_u16(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again, first);
    assert!(
        next(&mut ws, Duration::from_millis(800)).await.is_none(),
        "a retried key must not send again"
    );
}

#[tokio::test]
async fn rest_send_validation_errors() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let conv = conversation(acme(), ConversationStatus::Active).to_string();
    let cases: Vec<(Value, Option<&str>, &str)> = vec![
        (json!({"text": "hi"}), None, "conversationId"),
        (
            json!({"conversationId": "conv_123", "text": "hi"}),
            None,
            "conversationId",
        ),
        (json!({"conversationId": conv}), None, "text"),
        (json!({"conversationId": conv, "text": ""}), None, "text"),
        (json!({"conversationId": conv, "text": "  "}), None, "text"),
        (
            json!({"conversationId": conv, "text": "a".repeat(4097)}),
            None,
            "text",
        ),
        (
            json!({"conversationId": conv, "text": "hi", "mediaUrl": "http://x.example/a.png"}),
            None,
            "mediaUrl",
        ),
        (
            json!({"conversationId": conv, "text": "hi", "mediaUrl": "not a url"}),
            None,
            "mediaUrl",
        ),
        // Only the canonical spelling of a UUID is an ID.
        (
            json!({"conversationId": conv.replace('-', ""), "text": "hi"}),
            None,
            "conversationId",
        ),
        (
            json!({"conversationId": format!("{{{conv}}}"), "text": "hi"}),
            None,
            "conversationId",
        ),
        (
            json!({"conversationId": format!("urn:uuid:{conv}"), "text": "hi"}),
            None,
            "conversationId",
        ),
        // The platform fetches the media: no private, loopback or credentialled URL.
        (
            json!({"conversationId": conv, "text": "hi", "mediaUrl": "https://127.0.0.1/a.png"}),
            None,
            "mediaUrl",
        ),
        (
            json!({"conversationId": conv, "text": "hi", "mediaUrl": "https://localhost/a.png"}),
            None,
            "mediaUrl",
        ),
        (
            json!({"conversationId": conv, "text": "hi", "mediaUrl": "https://10.0.0.5/a.png"}),
            None,
            "mediaUrl",
        ),
        (
            json!({"conversationId": conv, "text": "hi", "mediaUrl": "https://169.254.169.254/latest/meta-data/"}),
            None,
            "mediaUrl",
        ),
        (
            json!({"conversationId": conv, "text": "hi", "mediaUrl": "https://[fd00::1]/a.png"}),
            None,
            "mediaUrl",
        ),
        (
            json!({"conversationId": conv, "text": "hi", "mediaUrl": "https://user:secret@cdn.example.com/a.png"}),
            None,
            "mediaUrl",
        ),
        (
            json!({"conversationId": conv, "text": "hi"}),
            Some("has space"),
            "Idempotency-Key",
        ),
    ];
    for (body, key, field) in cases {
        let (status, err) = error_of(rest_send(&app, &agent, body.clone(), key).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(err["code"], "VALIDATION_FAILED", "{err}");
        assert!(
            problem_fields(&err).iter().any(|f| f == field),
            "{field}: {err}"
        );
    }
    // Exactly 4096 characters is fine.
    let res = rest_send(
        &app,
        &agent,
        json!({"conversationId": conv, "text": "é".repeat(4096)}),
        None,
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn rest_send_refusals() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let viewer = app.signed_in(demo::ACME_VIEWER_EMAIL).await;
    let text = "hi";
    let send = |conv: ConversationId| json!({"conversationId": conv.to_string(), "text": text});

    let (status, err) = error_of(
        rest_send(
            &app,
            &agent,
            send(conversation(globex(), ConversationStatus::Active)),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("TENANT_MISMATCH"))
    );

    let (status, err) = error_of(
        rest_send(
            &app,
            &agent,
            send(conversation(acme(), ConversationStatus::Closed)),
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (409, Some("CONFLICT")));

    let (status, err) =
        error_of(rest_send(&app, &agent, send(ConversationId::new_random()), None).await).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")));

    let (status, err) = error_of(
        rest_send(
            &app,
            &viewer,
            send(conversation(acme(), ConversationStatus::Active)),
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (403, Some("FORBIDDEN")));

    // No CSRF token.
    let res = agent
        .client
        .post(app.url("/api/v1/widget/send"))
        .json(&send(conversation(acme(), ConversationStatus::Active)))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(res).await;
    assert_eq!((status, err["code"].as_str()), (403, Some("CSRF_FAILED")));
}

#[tokio::test]
async fn socket_send_message_acks_and_is_idempotent_by_client_message_id() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    let conv = conversation(acme(), ConversationStatus::Active).to_string();
    let frame = json!({"event": "send_message", "data": {
        "conversationId": conv, "text": "Over the socket", "clientMessageId": "c-1"
    }});

    send_json(&mut ws, frame.clone()).await;
    let ack = event(&mut ws).await;
    assert_eq!(ack["event"], "send_ack", "{ack}");
    assert_eq!(ack["data"]["clientMessageId"], "c-1");
    assert_eq!(ack["data"]["status"], "queued");
    assert!(ack["data"]["queued_at"].is_string());
    let id = ack["data"]["message_id"].as_str().unwrap().to_owned();
    assert_delivered(&mut ws, &id, "Over the socket").await;

    send_json(&mut ws, frame).await;
    let again = event(&mut ws).await;
    assert_eq!(again, ack);
    assert!(next(&mut ws, Duration::from_millis(800)).await.is_none());
}

#[tokio::test]
async fn socket_send_message_refusals_keep_the_socket_open() {
    let app = spawn_app().await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    let active = conversation(acme(), ConversationStatus::Active).to_string();
    let cases = [
        (
            json!({"conversationId": "nope", "text": "hi", "clientMessageId": "v1"}),
            "VALIDATION_FAILED",
        ),
        (
            json!({"conversationId": active, "text": "", "clientMessageId": "v2"}),
            "VALIDATION_FAILED",
        ),
        (
            json!({"conversationId": active, "text": "hi", "mediaUrl": "ftp://x.example/a", "clientMessageId": "v3"}),
            "VALIDATION_FAILED",
        ),
        (
            json!({"conversationId": active, "text": "hi"}),
            "VALIDATION_FAILED",
        ),
        (json!("not an object"), "VALIDATION_FAILED"),
        (
            json!({"conversationId": conversation(globex(), ConversationStatus::Active).to_string(), "text": "hi", "clientMessageId": "t1"}),
            "TENANT_MISMATCH",
        ),
        (
            json!({"conversationId": conversation(acme(), ConversationStatus::Closed).to_string(), "text": "hi", "clientMessageId": "c1"}),
            "CONFLICT",
        ),
        (
            json!({"conversationId": ConversationId::new_random().to_string(), "text": "hi", "clientMessageId": "n1"}),
            "NOT_FOUND",
        ),
    ];
    for (data, code) in cases {
        send_json(
            &mut ws,
            json!({"event": "send_message", "data": data.clone()}),
        )
        .await;
        let e = event(&mut ws).await;
        assert_eq!(e["event"], "error", "{data}: {e}");
        assert_eq!(e["data"]["code"], code, "{data}: {e}");
        if let Some(id) = data.get("clientMessageId") {
            assert_eq!(&e["data"]["clientMessageId"], id, "{e}");
        }
    }

    let viewer = app.signed_in(demo::ACME_VIEWER_EMAIL).await;
    let mut vws = app.connect(&viewer, acme()).await;
    send_json(
        &mut vws,
        json!({"event": "send_message", "data": {"conversationId": active, "text": "hi", "clientMessageId": "x"}}),
    )
    .await;
    let e = event(&mut vws).await;
    assert_eq!(
        (e["event"].as_str(), e["data"]["code"].as_str()),
        (Some("error"), Some("FORBIDDEN"))
    );

    // Both sockets are still up.
    for ws in [&mut ws, &mut vws] {
        send_json(ws, json!({"event": "ping", "data": {}})).await;
        assert_eq!(event(ws).await["event"], "pong");
    }
}

#[tokio::test]
async fn socket_sends_count_against_the_api_rate_limit() {
    let app = spawn_app_with(|mut s| {
        s.rate_limit_api_max = 4;
        s
    })
    .await;
    // Signing in spends one unit (`/auth/me`), the upgrade another.
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    let conv = conversation(acme(), ConversationStatus::Active).to_string();
    let mut codes = Vec::new();
    for i in 0..3 {
        send_json(
            &mut ws,
            json!({"event": "send_message", "data": {"conversationId": conv, "text": "hi", "clientMessageId": format!("r{i}")}}),
        )
        .await;
        let e = event_named_any(&mut ws, &["send_ack", "error"]).await;
        codes.push(e["data"]["code"].as_str().unwrap_or("ack").to_owned());
    }
    assert_eq!(codes, ["ack", "ack", "RATE_LIMIT_EXCEEDED"]);
}

/// The next event whose name is one of `names` (delivery events skipped).
async fn event_named_any(ws: &mut Ws, names: &[&str]) -> Value {
    for _ in 0..50 {
        let e = event(ws).await;
        if names.iter().any(|n| e["event"] == *n) {
            return e;
        }
    }
    panic!("none of {names:?}");
}

#[tokio::test]
async fn the_openapi_document_lists_the_widget_and_socket_routes() {
    let app = spawn_app().await;
    let doc = app.openapi_document().await;
    let send = &doc["paths"]["/api/v1/widget/send"]["post"];
    for status in ["200", "400", "403", "404", "409", "503"] {
        assert!(send["responses"][status].is_object(), "{status}: {send}");
    }
    let portal = &doc["paths"]["/tenant/{tenantId}/portal"]["get"];
    for status in ["101", "401", "403"] {
        assert!(
            portal["responses"][status].is_object(),
            "{status}: {portal}"
        );
    }
}

/// An outbound queue that fails while `broken` is set, and counts what it accepted.
struct BreakableQueue {
    inner: std::sync::Arc<dyn portal_domain::ports::stores::OutboundQueue>,
    broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl portal_domain::ports::stores::OutboundQueue for BreakableQueue {
    async fn enqueue(
        &self,
        message: &portal_domain::model::OutboundMessage,
    ) -> Result<String, portal_domain::error::StoreError> {
        use std::sync::atomic::Ordering;
        if self.broken.load(Ordering::SeqCst) {
            return Err(portal_domain::error::StoreError::Unavailable(
                "queue down (test)".into(),
            ));
        }
        let id = self.inner.enqueue(message).await?;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        Ok(id)
    }
}

#[tokio::test]
async fn a_failed_publish_is_503_and_nothing_is_half_sent() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let broken = Arc::new(AtomicBool::new(true));
    let accepted = Arc::new(AtomicUsize::new(0));
    let overrides = portal_server::Overrides {
        wrap_outbound: Some(Arc::new({
            let (broken, accepted) = (broken.clone(), accepted.clone());
            move |inner| {
                Arc::new(BreakableQueue {
                    inner,
                    broken: broken.clone(),
                    accepted: accepted.clone(),
                }) as Arc<dyn portal_domain::ports::stores::OutboundQueue>
            }
        })),
        ..portal_server::Overrides::default()
    };
    let app = spawn_app_with_overrides(|s| s, overrides).await;
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let mut ws = app.connect(&agent, acme()).await;
    let conv = conversation(acme(), ConversationStatus::Active);
    let body = json!({"conversationId": conv.to_string(), "text": "Sent once, at last"});

    // The queue refuses: 503 in the error format, twice with the same key (the failed attempt
    // left no claim behind that would answer "in progress" or replay a result never sent).
    for _ in 0..2 {
        let (status, err) =
            error_of(rest_send(&app, &agent, body.clone(), Some("k-503")).await).await;
        assert_eq!(status, 503, "{err}");
        assert_eq!(err["code"], "SERVICE_UNAVAILABLE", "{err}");
        assert!(err["correlationId"].is_string(), "{err}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0);

    // The queue is back: the same key sends exactly one message, and the first thing the
    // socket ever sees is that message (nothing from the failed attempts went ahead of it).
    broken.store(false, Ordering::SeqCst);
    let res = rest_send(&app, &agent, body.clone(), Some("k-503")).await;
    assert_eq!(res.status().as_u16(), 200);
    let sent: Value = res.json().await.unwrap();
    let id = sent["message_id"].as_str().unwrap().to_owned();
    let first = event(&mut ws).await;
    assert_eq!(first["event"], "message_update", "{first}");
    assert_eq!(first["data"]["message_id"], id.as_str(), "{first}");
    let res = rest_send(&app, &agent, body, Some("k-503")).await;
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["message_id"], id.as_str());
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one message reached the queue"
    );
}
