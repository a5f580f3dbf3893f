//! `authenticate_limited`: the API rate-limit hit rides in the session read once the
//! instance knows the session's user; and the instance's session memo stays bounded.

use super::memo::{MEMO_GENERATION, SessionMemo};
use super::*;
use crate::model::{Email, Role};
use crate::model::{Session, SessionId, SessionKey, TenantId, UserId};
use crate::ports::downstream::{MockAuthService, MockTenantService};
use crate::ports::stores::RateDecision;
use crate::ports::stores::{MockEventBus, MockOneTimeStore, MockSessionStore};
use crate::ports::system::{MockCipher, MockClock, MockRandom};
use std::sync::atomic::{AtomicUsize, Ordering};
use url::Url;

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
}

fn session(user: &str, last_activity: time::OffsetDateTime) -> Session {
    Session {
        user_id: UserId::parse(user).unwrap(),
        tenant_id: Some(TenantId::new_random()),
        role: Role::Admin,
        email: Email::parse("a@acme.example").unwrap(),
        name: "A".into(),
        onboarding_only: false,
        created_at: now(),
        expires_at: now() + time::Duration::hours(24),
        last_activity,
        refresh_token: None,
        refreshed_at: None,
        client: Default::default(),
    }
}

const DECISION: RateDecision = RateDecision {
    allowed: true,
    limit: 100,
    remaining: 42,
    reset_after: Duration::from_secs(60),
};

fn policy() -> RatePolicy {
    RateLimits::default().api
}

fn rate_key(u: &UserId) -> String {
    format!("api:{u}")
}

fn authenticator(sessions: MockSessionStore) -> Authenticator {
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    Authenticator::new(
        AuthSettings::new(
            Url::parse("https://login.example/oauth/authorize").unwrap(),
            "client".into(),
            "https://portal.example/cb".into(),
        ),
        AuthPorts {
            sessions: Arc::new(sessions),
            one_time: Arc::new(MockOneTimeStore::new()),
            auth_service: Arc::new(MockAuthService::new()),
            tenants: Arc::new(MockTenantService::new()),
            bus: Arc::new(MockEventBus::new()),
            lock: Arc::new(crate::ports::stores::MockLock::new()),
            auditor: crate::audit::test_support::discarding(),
            cipher: Arc::new(MockCipher::new()),
            random: Arc::new(MockRandom::new()),
            clock: Arc::new(clock),
        },
        b"csrf key",
    )
}

fn raw_id() -> String {
    SessionId::from_random([7; 32]).expose().to_owned()
}

#[tokio::test]
async fn from_the_second_request_the_limit_hit_rides_with_the_session_read() {
    let mut store = MockSessionStore::new();
    store
        .expect_get()
        .times(1)
        .returning(|_| Ok(Some(session("u1", now()))));
    store
        .expect_get_and_hit()
        .withf(|_, key, p| key == "api:u1" && *p == RateLimits::default().api)
        .times(2)
        .returning(|_, _, _| Ok((Some(session("u1", now())), Some(DECISION))));
    let auth = authenticator(store);
    let (first, decision) = auth
        .authenticate_limited(&raw_id(), rate_key, policy())
        .await
        .unwrap();
    assert_eq!(first.session.user_id.as_str(), "u1");
    assert_eq!(
        decision, None,
        "first request: the caller applies the limit"
    );
    for _ in 0..2 {
        let (current, decision) = auth
            .authenticate_limited(&raw_id(), rate_key, policy())
            .await
            .unwrap();
        assert_eq!(current.key, first.key);
        assert_eq!(decision, Some(DECISION));
    }
}

#[tokio::test]
async fn a_vanished_session_is_refused_and_its_user_forgotten() {
    let mut store = MockSessionStore::new();
    let gets = Arc::new(AtomicUsize::new(0));
    let g = gets.clone();
    store.expect_get().times(2).returning(move |_| {
        // First read: live; after the logout elsewhere: gone.
        Ok((g.fetch_add(1, Ordering::SeqCst) == 0).then(|| session("u1", now())))
    });
    store
        .expect_get_and_hit()
        .times(1)
        .returning(|_, _, _| Ok((None, Some(DECISION))));
    let auth = authenticator(store);
    auth.authenticate_limited(&raw_id(), rate_key, policy())
        .await
        .unwrap();
    assert!(matches!(
        auth.authenticate_limited(&raw_id(), rate_key, policy())
            .await,
        Err(SessionError::Expired)
    ));
    // Forgotten: the next request takes the plain path (the mock allows no more
    // get_and_hit calls).
    assert!(matches!(
        auth.authenticate_limited(&raw_id(), rate_key, policy())
            .await,
        Err(SessionError::Expired)
    ));
    assert_eq!(gets.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_decision_for_another_user_is_discarded() {
    let mut store = MockSessionStore::new();
    store
        .expect_get()
        .times(1)
        .returning(|_| Ok(Some(session("u1", now()))));
    store
        .expect_get_and_hit()
        .times(1)
        .returning(|_, _, _| Ok((Some(session("u2", now())), Some(DECISION))));
    let auth = authenticator(store);
    auth.authenticate_limited(&raw_id(), rate_key, policy())
        .await
        .unwrap();
    let (current, decision) = auth
        .authenticate_limited(&raw_id(), rate_key, policy())
        .await
        .unwrap();
    assert_eq!(current.session.user_id.as_str(), "u2");
    assert_eq!(decision, None, "the caller must apply the limit itself");
}

#[tokio::test]
async fn last_activity_is_written_once_per_interval_per_instance_even_when_reads_lag() {
    // The store keeps answering the old lastActivity (as concurrent requests that read
    // before the write landed would see): still only one write.
    let stale = now() - time::Duration::minutes(5);
    let mut store = MockSessionStore::new();
    store
        .expect_get()
        .times(1)
        .returning(move |_| Ok(Some(session("u1", stale))));
    store
        .expect_get_and_hit()
        .times(9)
        .returning(move |_, _, _| Ok((Some(session("u1", stale)), Some(DECISION))));
    store.expect_touch().times(1).returning(|_, _| Ok(()));
    let auth = authenticator(store);
    for _ in 0..10 {
        auth.authenticate_limited(&raw_id(), rate_key, policy())
            .await
            .unwrap();
    }
}

#[test]
fn the_memo_is_bounded() {
    let memo = SessionMemo::default();
    let user = UserId::parse("u1").unwrap();
    for i in 0..(2 * MEMO_GENERATION + 10) {
        memo.remember(&SessionKey::from_hex(format!("{i:064x}")), &user);
    }
    assert!(memo.len() <= 2 * MEMO_GENERATION);
    let newest = SessionKey::from_hex(format!("{:064x}", 2 * MEMO_GENERATION + 9));
    assert_eq!(memo.user(&newest), Some(user));
    assert_eq!(
        memo.user(&SessionKey::from_hex(format!("{:064x}", 0))),
        None
    );
}
