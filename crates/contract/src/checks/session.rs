use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL};
use crate::fixtures::{T0, session, session_key, user};
use crate::{Stores, Waiter};
use portal_domain::model::TenantId;
use std::collections::HashSet;
use std::time::Duration;

/// `create` stores the session; `get` returns it; unknown keys read as `None`.
pub async fn session_create_then_get_returns_it(s: &Stores, _w: &Waiter) {
    let (key, user) = (session_key(), user());
    let sess = session(&user, TenantId::new_random());
    s.sessions
        .create(&key, &sess, LONG_TTL)
        .await
        .expect("create");
    assert_eq!(s.sessions.get(&key).await.expect("get"), Some(sess));
    assert_eq!(
        s.sessions.get(&session_key()).await.expect("get unknown"),
        None
    );
}

/// `replace` overwrites a live session and returns `false` without writing once it is gone.
pub async fn session_replace_overwrites_and_refuses_when_gone(s: &Stores, _w: &Waiter) {
    let (key, user) = (session_key(), user());
    let mut sess = session(&user, TenantId::new_random());
    s.sessions
        .create(&key, &sess, LONG_TTL)
        .await
        .expect("create");

    sess.name = "Renamed".to_owned();
    sess.onboarding_only = true;
    assert!(
        s.sessions
            .replace(&key, &sess, LONG_TTL)
            .await
            .expect("replace")
    );
    assert_eq!(s.sessions.get(&key).await.expect("get"), Some(sess.clone()));
    assert_eq!(
        s.sessions
            .delete_all_for_user(&user)
            .await
            .expect("delete all"),
        vec![key.clone()],
        "still indexed"
    );

    s.sessions.delete(&key).await.expect("delete");
    assert!(
        !s.sessions
            .replace(&key, &sess, LONG_TTL)
            .await
            .expect("replace gone"),
        "replace of a deleted session must report false"
    );
    assert_eq!(
        s.sessions.get(&key).await.expect("get"),
        None,
        "replace must not recreate"
    );
    assert!(
        !s.sessions
            .replace(&session_key(), &sess, LONG_TTL)
            .await
            .expect("replace unknown")
    );
}

/// `touch` sets `last_activity` only and leaves the TTL running; a no-op on missing keys.
pub async fn session_touch_updates_activity_and_keeps_ttl(s: &Stores, w: &Waiter) {
    let (key, user) = (session_key(), user());
    let sess = session(&user, TenantId::new_random());
    s.sessions
        .create(&key, &sess, Duration::from_millis(300))
        .await
        .expect("create");

    w.wait(Duration::from_millis(150)).await;
    let at = T0 + time::Duration::minutes(5);
    s.sessions.touch(&key, at).await.expect("touch");
    let touched = s
        .sessions
        .get(&key)
        .await
        .expect("get")
        .expect("still live");
    assert_eq!(touched.last_activity, at);
    assert_eq!(
        touched,
        portal_domain::model::Session {
            last_activity: at,
            ..sess
        }
    );

    w.wait(Duration::from_millis(200)).await;
    assert_eq!(
        s.sessions.get(&key).await.expect("get"),
        None,
        "touch must not extend the TTL"
    );

    let missing = session_key();
    s.sessions.touch(&missing, at).await.expect("touch missing");
    assert_eq!(
        s.sessions.get(&missing).await.expect("get"),
        None,
        "touch must not create"
    );
}

/// `delete` removes the session and its index entry, and is idempotent.
pub async fn session_delete_is_idempotent_and_unindexes(s: &Stores, _w: &Waiter) {
    let user = user();
    let tenant = TenantId::new_random();
    let (a, b) = (session_key(), session_key());
    s.sessions
        .create(&a, &session(&user, tenant), LONG_TTL)
        .await
        .expect("create a");
    s.sessions
        .create(&b, &session(&user, tenant), LONG_TTL)
        .await
        .expect("create b");

    s.sessions.delete(&a).await.expect("delete");
    s.sessions.delete(&a).await.expect("delete again");
    s.sessions
        .delete(&session_key())
        .await
        .expect("delete unknown");
    assert_eq!(s.sessions.get(&a).await.expect("get"), None);
    assert!(s.sessions.get(&b).await.expect("get").is_some());
    assert_eq!(
        s.sessions
            .delete_all_for_user(&user)
            .await
            .expect("delete all"),
        vec![b],
        "only the remaining session is the user's"
    );
}

/// `delete_all_for_user` removes every session of that user (returning their keys) and no other.
pub async fn session_delete_all_for_user_removes_only_that_user(s: &Stores, _w: &Waiter) {
    let (alice, bob) = (user(), user());
    let tenant = TenantId::new_random();
    let alice_keys: HashSet<_> = (0..3).map(|_| session_key()).collect();
    for key in &alice_keys {
        s.sessions
            .create(key, &session(&alice, tenant), LONG_TTL)
            .await
            .expect("create");
    }
    let bob_key = session_key();
    s.sessions
        .create(&bob_key, &session(&bob, tenant), LONG_TTL)
        .await
        .expect("create");

    let removed: HashSet<_> = s
        .sessions
        .delete_all_for_user(&alice)
        .await
        .expect("delete all")
        .into_iter()
        .collect();
    assert_eq!(removed, alice_keys);
    for key in &alice_keys {
        assert_eq!(s.sessions.get(key).await.expect("get"), None);
    }
    assert!(s.sessions.get(&bob_key).await.expect("get").is_some());
    assert!(
        s.sessions
            .delete_all_for_user(&alice)
            .await
            .expect("again")
            .is_empty()
    );
    assert_eq!(
        s.sessions
            .delete_all_for_user(&bob)
            .await
            .expect("delete bob's"),
        vec![bob_key],
        "bob's session is untouched and still indexed"
    );
}

/// A session is gone after its TTL: `get` is `None`, `replace` refuses, `delete_all_for_user`
/// does not report it.
pub async fn session_expires_after_ttl(s: &Stores, w: &Waiter) {
    let user = user();
    let tenant = TenantId::new_random();
    let (short, long) = (session_key(), session_key());
    s.sessions
        .create(&short, &session(&user, tenant), SHORT_TTL)
        .await
        .expect("create");
    s.sessions
        .create(&long, &session(&user, tenant), LONG_TTL)
        .await
        .expect("create");

    w.wait(PAST_SHORT_TTL).await;
    assert_eq!(s.sessions.get(&short).await.expect("get"), None);
    assert!(s.sessions.get(&long).await.expect("get").is_some());
    assert!(
        !s.sessions
            .replace(&short, &session(&user, tenant), LONG_TTL)
            .await
            .expect("replace"),
        "replace of an expired session must report false"
    );
    let removed = s
        .sessions
        .delete_all_for_user(&user)
        .await
        .expect("delete all");
    assert_eq!(
        removed,
        vec![long.clone()],
        "the live session is reported, the expired one is not"
    );
    assert_eq!(s.sessions.get(&long).await.expect("get"), None);
}

fn piggyback_policy() -> portal_domain::ports::stores::RatePolicy {
    portal_domain::ports::stores::RatePolicy {
        limit: 3,
        window: LONG_TTL,
    }
}

/// `get_and_hit` returns the session and the decision of one hit on the very counter the
/// `RateLimiter` port uses for the same key; past the limit the hit is refused (and the
/// session still returned). Both adapters combine the two: the decision is never `None` here.
pub async fn session_get_and_hit_returns_the_session_and_a_shared_decision(
    s: &Stores,
    _w: &Waiter,
) {
    let (key, user) = (session_key(), user());
    let sess = session(&user, TenantId::new_random());
    s.sessions
        .create(&key, &sess, LONG_TTL)
        .await
        .expect("create");
    let rate_key = crate::fixtures::unique("api");
    let policy = piggyback_policy();

    let (read, decision) = s
        .sessions
        .get_and_hit(&key, &rate_key, policy)
        .await
        .expect("get_and_hit");
    assert_eq!(read, Some(sess.clone()));
    let decision = decision.expect("the adapter combines the read and the hit");
    assert!(decision.allowed);
    assert_eq!((decision.limit, decision.remaining), (3, 2));

    // The same counter as the limiter port: a report sees the hit, a port hit counts.
    let report = s
        .rate_limiter
        .hit(&rate_key, policy, 0)
        .await
        .expect("report");
    assert_eq!(
        report.remaining, 2,
        "get_and_hit must hit the shared limiter"
    );
    assert!(
        s.rate_limiter
            .hit(&rate_key, policy, 1)
            .await
            .expect("hit")
            .allowed
    );

    let (_, last) = s
        .sessions
        .get_and_hit(&key, &rate_key, policy)
        .await
        .expect("get_and_hit");
    let last = last.expect("decision");
    assert!(last.allowed);
    assert_eq!(last.remaining, 0);

    let (read, refused) = s
        .sessions
        .get_and_hit(&key, &rate_key, policy)
        .await
        .expect("get_and_hit over the limit");
    assert_eq!(read, Some(sess), "a refusal still returns the session");
    let refused = refused.expect("decision");
    assert!(!refused.allowed, "the 4th hit of a limit of 3 is refused");
    assert!(refused.reset_after > Duration::ZERO);
}

/// `get_and_hit` of a missing session returns `None` and still records the hit (the caller
/// discards the decision): defined this way because the two are independent commands of one
/// pipeline.
pub async fn session_get_and_hit_of_a_missing_session_still_counts(s: &Stores, _w: &Waiter) {
    let rate_key = crate::fixtures::unique("api");
    let policy = piggyback_policy();
    let (read, decision) = s
        .sessions
        .get_and_hit(&session_key(), &rate_key, policy)
        .await
        .expect("get_and_hit");
    assert_eq!(read, None);
    assert!(decision.expect("decision").allowed);
    let report = s
        .rate_limiter
        .hit(&rate_key, policy, 0)
        .await
        .expect("report");
    assert_eq!(report.remaining, 2, "the hit was recorded");
}

/// `list_for_user` returns that user's live sessions (as stored, with their keys), neither
/// expired nor deleted ones, nor another user's.
pub async fn session_list_for_user_returns_only_live_sessions(s: &Stores, w: &Waiter) {
    let (alice, bob) = (user(), user());
    let tenant = TenantId::new_random();
    let (short, long, deleted) = (session_key(), session_key(), session_key());
    let mut kept = session(&alice, tenant);
    kept.client = portal_domain::model::ClientInfo {
        user_agent: Some("Contract/1.0".into()),
        network: Some("203.0.113.0/24".into()),
    };
    s.sessions
        .create(&short, &session(&alice, tenant), SHORT_TTL)
        .await
        .expect("create short");
    s.sessions
        .create(&long, &kept, LONG_TTL)
        .await
        .expect("create long");
    s.sessions
        .create(&deleted, &session(&alice, tenant), LONG_TTL)
        .await
        .expect("create deleted");
    s.sessions
        .create(&session_key(), &session(&bob, tenant), LONG_TTL)
        .await
        .expect("create bob's");
    s.sessions.delete(&deleted).await.expect("delete");

    let listed = s.sessions.list_for_user(&alice).await.expect("list");
    let keys: HashSet<_> = listed.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, HashSet::from([short.clone(), long.clone()]));

    w.wait(PAST_SHORT_TTL).await;
    assert_eq!(
        s.sessions.list_for_user(&alice).await.expect("list"),
        vec![(long, kept)],
        "only the live session is listed, with what it stores"
    );
    assert!(
        s.sessions
            .list_for_user(&user())
            .await
            .expect("list unknown")
            .is_empty()
    );
}

/// A user signing in again and again, each session short-lived: the index keeps only the
/// live sessions (the next write drops the expired ones), so listing and "log out
/// everywhere" see exactly those.
pub async fn session_index_never_outgrows_the_live_sessions(s: &Stores, w: &Waiter) {
    let user = user();
    let tenant = TenantId::new_random();
    for _ in 0..10 {
        s.sessions
            .create(&session_key(), &session(&user, tenant), SHORT_TTL)
            .await
            .expect("create");
    }
    w.wait(PAST_SHORT_TTL).await;
    let live = session_key();
    s.sessions
        .create(&live, &session(&user, tenant), LONG_TTL)
        .await
        .expect("create live");
    let listed: Vec<_> = s
        .sessions
        .list_for_user(&user)
        .await
        .expect("list")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, vec![live.clone()]);
    assert_eq!(
        s.sessions
            .delete_all_for_user(&user)
            .await
            .expect("delete all"),
        vec![live]
    );
    assert!(
        s.sessions
            .list_for_user(&user)
            .await
            .expect("list")
            .is_empty()
    );
}
