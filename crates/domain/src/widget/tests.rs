//! The widget-send use case with mockall doubles of its ports.

use super::*;

use crate::model::{Conversation, ConversationStatus};
use crate::ports::downstream::{MockStateManager, StateManagerError};
use crate::ports::stores::{MockIdempotencyStore, MockOutboundQueue};
use crate::ports::system::SystemClock;
use std::sync::Mutex;

struct SeqRandom(Mutex<u8>);
impl Random for SeqRandom {
    fn fill(&self, buf: &mut [u8]) {
        let mut n = self.0.lock().unwrap();
        *n += 1;
        buf.fill(*n);
    }
}

fn conversation(tenant: TenantId, status: ConversationStatus) -> Conversation {
    let now = OffsetDateTime::now_utc();
    Conversation {
        id: ConversationId::new_random(),
        tenant_id: tenant,
        wa_id: "15550100".into(),
        status,
        created_at: now,
        last_activity: now,
    }
}

fn widget(sm: MockStateManager, q: MockOutboundQueue, idem: MockIdempotencyStore) -> Widget {
    Widget::new(
        Arc::new(sm),
        Arc::new(q),
        Arc::new(idem),
        Arc::new(SeqRandom(Mutex::new(0))),
        Arc::new(SystemClock),
        crate::audit::test_support::discarding(),
    )
}

/// An agent's session (the tenant it sends for is passed on its own).
fn agent(user: &str) -> CurrentSession {
    crate::audit::test_support::signed_in(user, crate::model::Role::Agent)
}

fn request(key: Option<&str>) -> SendRequest {
    SendRequest {
        conversation_id: ConversationId::new_random(),
        text: MessageText::parse("Hello").unwrap(),
        media_url: None,
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
    }
}

fn state_manager(c: Conversation) -> MockStateManager {
    let mut sm = MockStateManager::new();
    sm.expect_conversation().returning(move |_| Ok(c.clone()));
    sm
}

#[tokio::test]
async fn queues_one_message_and_records_the_result() {
    let tenant = TenantId::new_random();
    let mut q = MockOutboundQueue::new();
    q.expect_enqueue()
        .times(1)
        .withf(move |m| m.tenant_id == tenant && m.text == "Hello" && m.source == "widget")
        .returning(|_| Ok("1-0".into()));
    let mut idem = MockIdempotencyStore::new();
    idem.expect_claim()
        .times(1)
        .returning(|_, _| Ok(IdempotencyClaim::Claimed));
    idem.expect_finish().times(1).returning(|_, _, _| Ok(()));
    let w = widget(
        state_manager(conversation(tenant, ConversationStatus::Active)),
        q,
        idem,
    );
    let receipt = w
        .send(&agent("agent"), tenant, request(Some("k1")))
        .await
        .unwrap();
    assert_eq!(receipt.status, "queued");
}

#[tokio::test]
async fn a_retried_key_returns_the_first_result_without_queueing() {
    let tenant = TenantId::new_random();
    let first = SendReceipt {
        message_id: MessageId::parse("first").unwrap(),
        status: "queued".into(),
        queued_at: OffsetDateTime::UNIX_EPOCH,
    };
    let json = serde_json::to_string(&first).unwrap();
    let mut q = MockOutboundQueue::new();
    q.expect_enqueue().never();
    let mut idem = MockIdempotencyStore::new();
    idem.expect_claim()
        .returning(move |_, _| Ok(IdempotencyClaim::Done(json.clone())));
    let w = widget(
        state_manager(conversation(tenant, ConversationStatus::Active)),
        q,
        idem,
    );
    let receipt = w
        .send(&agent("agent"), tenant, request(Some("k1")))
        .await
        .unwrap();
    assert_eq!(receipt, first);
}

#[tokio::test]
async fn another_tenants_or_a_closed_conversation_is_refused_without_queueing() {
    let tenant = TenantId::new_random();
    for (conv, expect_mismatch) in [
        (
            conversation(TenantId::new_random(), ConversationStatus::Active),
            true,
        ),
        (conversation(tenant, ConversationStatus::Closed), false),
    ] {
        let mut q = MockOutboundQueue::new();
        q.expect_enqueue().never();
        let mut idem = MockIdempotencyStore::new();
        idem.expect_claim().never();
        let w = widget(state_manager(conv), q, idem);
        let err = w
            .send(&agent("agent"), tenant, request(Some("k")))
            .await
            .unwrap_err();
        if expect_mismatch {
            assert!(matches!(err, SendError::TenantMismatch), "{err:?}");
        } else {
            assert!(matches!(err, SendError::ConversationClosed), "{err:?}");
        }
    }
}

#[tokio::test]
async fn unknown_conversation_is_not_found() {
    let mut sm = MockStateManager::new();
    sm.expect_conversation()
        .returning(|_| Err(StateManagerError::NotFound));
    let w = widget(sm, MockOutboundQueue::new(), MockIdempotencyStore::new());
    let err = w
        .send(&agent("a"), TenantId::new_random(), request(None))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::NotFound));
}

#[tokio::test]
async fn a_failing_conversation_check_is_one_call_and_queues_nothing() {
    let mut sm = MockStateManager::new();
    sm.expect_conversation()
        .times(1)
        .returning(|_| Err(DownstreamFailure::Timeout.into()));
    let mut q = MockOutboundQueue::new();
    q.expect_enqueue().never();
    let mut idem = MockIdempotencyStore::new();
    idem.expect_claim().never();
    let err = widget(sm, q, idem)
        .send(&agent("a"), TenantId::new_random(), request(Some("k")))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_failed_enqueue_releases_the_claim_so_a_retry_can_send() {
    let tenant = TenantId::new_random();
    let mut q = MockOutboundQueue::new();
    q.expect_enqueue()
        .returning(|_| Err(StoreError::Unavailable("down".into())));
    let mut idem = MockIdempotencyStore::new();
    idem.expect_claim()
        .returning(|_, _| Ok(IdempotencyClaim::Claimed));
    idem.expect_abandon().times(1).returning(|_| Ok(()));
    idem.expect_finish().never();
    let w = widget(
        state_manager(conversation(tenant, ConversationStatus::Active)),
        q,
        idem,
    );
    let err = w
        .send(&agent("agent"), tenant, request(Some("k")))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Unavailable(_)));
}

#[tokio::test]
async fn a_key_in_progress_is_a_conflict() {
    let tenant = TenantId::new_random();
    let mut q = MockOutboundQueue::new();
    q.expect_enqueue().never();
    let mut idem = MockIdempotencyStore::new();
    idem.expect_claim()
        .returning(|_, _| Ok(IdempotencyClaim::InProgress));
    let w = widget(
        state_manager(conversation(tenant, ConversationStatus::Active)),
        q,
        idem,
    );
    let err = w
        .send(&agent("agent"), tenant, request(Some("k")))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::InProgress));
}

#[test]
fn text_rules() {
    assert!(MessageText::parse("hi").is_ok());
    assert!(MessageText::parse("").is_err());
    assert!(MessageText::parse("   ").is_err());
    assert!(MessageText::parse("é".repeat(4096)).is_ok());
    assert!(MessageText::parse("a".repeat(4097)).is_err());
}

#[test]
fn text_of_white_space_only_is_refused() {
    assert!(MessageText::parse("\u{85}\u{3000}\t").is_err());
    assert!(MessageText::parse("\u{feff}").is_ok(), "not White_Space");
}

#[test]
fn media_url_must_be_https_to_a_public_host() {
    for good in [
        "https://example.com/a.jpg",
        "https://cdn.example.com:8443/a.jpg?x=1",
        "HTTPS://Example.COM/a.jpg",
        "https://8.8.8.8/a.jpg",
        "https://[2606:4700:4700::1111]/a.jpg",
        "https://media.example.com./a.jpg",
    ] {
        assert!(MediaUrl::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "http://example.com/a.jpg",
        "ftp://x.example/a",
        "not a url",
        "https://",
        "https:example.com/a.jpg",
        "https:\\\\example.com/a.jpg",
        " https://example.com/a.jpg",
        "https://example.com/a b.jpg",
        "https://example.com/a.jpg\n",
        "https://exa\tmple.com/a.jpg",
        "https://localhost/a.jpg",
        "https://LOCALHOST./a.jpg",
        "https://api.localhost/a.jpg",
        "https://printer.local/a.jpg",
        "https://db.internal/a.jpg",
        "https://nas.home.arpa/a.jpg",
        "https://intranet/a.jpg",
        "https://user:pass@example.com/a.jpg",
        "https://user@example.com/a.jpg",
        "https://127.0.0.1/a.jpg",
        "https://127.1/a.jpg",
        "https://2130706433/a.jpg",
        "https://0x7f000001/a.jpg",
        "https://0.0.0.0/a.jpg",
        "https://10.1.2.3/a.jpg",
        "https://172.16.0.1/a.jpg",
        "https://172.31.255.255/a.jpg",
        "https://192.168.1.1/a.jpg",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/a.jpg",
        "https://192.0.2.1/a.jpg",
        "https://224.0.0.1/a.jpg",
        "https://255.255.255.255/a.jpg",
        "https://[::1]/a.jpg",
        "https://[::]/a.jpg",
        "https://[fe80::1]/a.jpg",
        "https://[fd00::1]/a.jpg",
        "https://[fc00::1]/a.jpg",
        "https://[ff02::1]/a.jpg",
        "https://[::ffff:127.0.0.1]/a.jpg",
        "https://[::ffff:10.0.0.1]/a.jpg",
        "https://[64:ff9b::a00:1]/a.jpg",
        "https://[2002:a00:1::]/a.jpg",
        "https://[2001:db8::1]/a.jpg",
    ] {
        assert!(MediaUrl::parse(bad).is_err(), "{bad}");
    }
    assert!(MediaUrl::parse(&format!("https://example.com/{}", "a".repeat(2048))).is_err());
    let long = format!("https://example.com/{}", "é".repeat(2048 - 20));
    assert!(
        MediaUrl::parse(&long).is_ok(),
        "2048 characters, more bytes"
    );
}

#[test]
fn idempotency_key_rules() {
    assert!(IdempotencyKey::parse("abc-123").is_ok());
    assert!(IdempotencyKey::parse("").is_err());
    assert!(IdempotencyKey::parse("has space").is_err());
    assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
}
