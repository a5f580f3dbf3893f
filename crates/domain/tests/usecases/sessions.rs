//! Sessions a security team trusts: refresh single flight across instances (under a renewed
//! lease, a dead holder taken over), the sessions a user sees and ends, an admin ending a
//! user's sessions in their tenant only, the per-user cap; and the audit entries all of it
//! leaves. On the in-memory stores under a paused tokio clock (the lock's lease and the
//! stores' TTLs follow it), with the rotating fake Auth Service.

use crate::auth::{World, ctx, start, world, world_configured};
use crate::helpers::FakeAuth;
use futures::StreamExt;
use futures::future::join_all;
use portal_domain::audit::{AuditAction, AuditEntry};
use portal_domain::auth::{
    AccessDenied, CurrentSession, ManageError, RefreshError, SessionError, SignedIn,
};
use portal_domain::model::{BusEvent, ClientInfo};
use portal_domain::ports::stores::AuditScope;
use std::sync::atomic::Ordering;
use std::time::Duration;

const LEASE: Duration = Duration::from_millis(300);

async fn sign_in(w: &World, email: &str) -> (SignedIn, CurrentSession) {
    let (binding, params) = start(w, email).await;
    let signed = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap();
    let current = w
        .auth
        .authenticate(signed.session_id.expose())
        .await
        .unwrap();
    (signed, current)
}

/// A world whose Auth Service takes `delay` to refresh, with a short refresh lease.
fn slow_refreshes(delay: Duration) -> World {
    world_configured(
        FakeAuth {
            refresh_delay: delay,
            ..FakeAuth::default()
        },
        |s| {
            s.refresh_lease = LEASE;
            s.refresh_wait = Duration::from_secs(10);
        },
    )
}

/// Every entry of a trail, oldest first (this instance's queue written first).
async fn trail(w: &World, scope: AuditScope) -> Vec<AuditEntry> {
    w.auditor.flush().await;
    w.stores
        .audit
        .oldest(scope, None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|s| serde_json::from_str(&s.record.entry).unwrap())
        .collect()
}

/// Two instances, 20 tabs refreshing one session at once, the Auth Service slower than the
/// lock's first lease: one refresh-token redemption, 20 successes, all with the session the
/// one refresh stored (its rotated token included).
#[tokio::test(start_paused = true)]
async fn twenty_concurrent_refreshes_on_two_instances_redeem_the_token_once() {
    let w = slow_refreshes(LEASE * 5);
    let other = w.another_instance();
    let (_, current) = sign_in(&w, "admin@acme.example").await;

    let refreshes = (0..20).map(|i| {
        let instance = if i % 2 == 0 { &w.auth } else { &other };
        instance.refresh(&current)
    });
    let results = join_all(refreshes).await;

    assert_eq!(w.fake_auth.refreshes.load(Ordering::SeqCst), 1);
    let stored = w.stores.sessions.get(&current.key).await.unwrap().unwrap();
    for r in results {
        let session = r.expect("every tab gets the refreshed session");
        assert_eq!(session.refresh_token, stored.refresh_token);
        assert!(session.refreshed_at.is_some());
    }
    assert_ne!(
        stored.refresh_token, current.session.refresh_token,
        "rotated"
    );

    // The next refresh (later) redeems the rotated token, which the Auth Service accepts:
    // the old one was never used twice.
    w.clock.advance(time::Duration::minutes(5));
    w.auth.refresh(&current).await.unwrap();
    assert_eq!(w.fake_auth.refreshes.load(Ordering::SeqCst), 2);

    let refreshes: Vec<_> = trail(&w, AuditScope::Tenant(w.acme))
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::Refresh)
        .collect();
    assert_eq!(refreshes.len(), 21, "every refresh is audited");
    let redeemed = refreshes
        .iter()
        .filter(|e| e.details["redeemed"] == true)
        .count();
    assert_eq!(redeemed, 2);
}

/// A holder that died (took the lock and vanished) stops nobody for long: after its lease a
/// waiter takes over and refreshes, once.
#[tokio::test(start_paused = true)]
async fn a_dead_holders_lock_is_taken_over_after_its_lease() {
    let w = slow_refreshes(Duration::from_millis(10));
    let (_, current) = sign_in(&w, "agent@acme.example").await;
    let lock = format!("refresh:{}", current.key.as_str());
    w.stores
        .lock
        .try_acquire(&lock, LEASE)
        .await
        .unwrap()
        .unwrap();

    let started = tokio::time::Instant::now();
    let refreshed = w.auth.refresh(&current).await.unwrap();

    assert!(started.elapsed() >= LEASE, "waited for the lease");
    assert!(started.elapsed() < LEASE * 3);
    assert_eq!(w.fake_auth.refreshes.load(Ordering::SeqCst), 1);
    assert!(refreshed.refreshed_at.is_some());
}

/// A live holder that never finishes: the others wait a bounded time, then answer Busy.
#[tokio::test(start_paused = true)]
async fn waiters_give_up_after_the_bounded_wait() {
    let w = world_configured(FakeAuth::default(), |s| {
        s.refresh_wait = Duration::from_secs(2);
    });
    let (_, current) = sign_in(&w, "agent@acme.example").await;
    let lock = format!("refresh:{}", current.key.as_str());
    w.stores
        .lock
        .try_acquire(&lock, Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();

    let started = tokio::time::Instant::now();
    assert!(matches!(
        w.auth.refresh(&current).await,
        Err(RefreshError::Busy)
    ));
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(w.fake_auth.refreshes.load(Ordering::SeqCst), 0);
}

/// The user sees each of their sessions under an opaque handle (never its ID or key), with
/// its device (user agent, network /24) and which one is theirs; ends another one by handle
/// (its sockets are told to close); a handle of someone else's session is not found.
#[tokio::test]
async fn a_user_lists_their_sessions_and_ends_one_by_its_handle() {
    let w = world();
    let mut bus = w.stores.event_bus.subscribe().await.unwrap();
    let (laptop, laptop_now) = sign_in(&w, "agent@acme.example").await;
    let (phone, _) = sign_in(&w, "agent@acme.example").await;
    let (_, viewer) = sign_in(&w, "viewer@acme.example").await;

    let listed = w.auth.sessions_of(&laptop_now).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed.iter().filter(|s| s.current).count(), 1);
    for s in &listed {
        assert_eq!(
            s.client,
            ClientInfo {
                user_agent: Some("Mozilla/5.0 (Test)".into()),
                network: Some("203.0.113.0/24".into()),
            }
        );
        for id in [&laptop, &phone] {
            assert!(!s.handle.contains(id.session_id.expose()));
            assert_ne!(s.handle, id.session_id.key().as_str());
        }
    }
    let phone_handle = listed.iter().find(|s| !s.current).unwrap().handle.clone();
    assert_eq!(phone_handle, w.auth.session_handle(&phone.session_id.key()));

    assert!(matches!(
        w.auth.end_session(&viewer, &phone_handle).await,
        Err(ManageError::NotFound)
    ));
    let was_current = w
        .auth
        .end_session(&laptop_now, &phone_handle)
        .await
        .unwrap();

    assert!(!was_current);
    assert!(matches!(
        w.auth.authenticate(phone.session_id.expose()).await,
        Err(SessionError::Expired)
    ));
    let revoked = tokio::time::timeout(Duration::from_secs(5), bus.next())
        .await
        .unwrap();
    assert_eq!(
        revoked,
        Some(BusEvent::SessionRevoked(phone.session_id.key()))
    );
    assert_eq!(w.auth.sessions_of(&laptop_now).await.unwrap().len(), 1);

    let ended: Vec<_> = trail(&w, AuditScope::Tenant(w.acme))
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::SessionEnded)
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].details["reason"], "user");
    assert_eq!(
        ended[0].target.as_deref(),
        Some(format!("session:{phone_handle}").as_str())
    );
    assert_eq!(
        ended[0].actor.as_ref().unwrap().user_id.as_str(),
        "agent",
        "ended by whom"
    );
}

/// An admin ends every session of a user of their tenant; another tenant's user (or a
/// non-admin asking) is refused, and the refusal audited.
#[tokio::test]
async fn an_admin_ends_a_users_sessions_in_their_own_tenant_only() {
    let w = world();
    let (_, admin) = sign_in(&w, "admin@acme.example").await;
    let (agent1, _) = sign_in(&w, "agent@acme.example").await;
    let (agent2, agent) = sign_in(&w, "agent@acme.example").await;
    let (_, outsider) = sign_in(&w, "admin-onboarding@newco.example").await;

    let ended = w
        .auth
        .end_user_sessions(&admin, &agent.session.user_id)
        .await
        .unwrap();
    assert_eq!(ended, 2);
    for s in [&agent1, &agent2] {
        assert!(w.auth.authenticate(s.session_id.expose()).await.is_err());
    }

    assert!(matches!(
        w.auth
            .end_user_sessions(&admin, &outsider.session.user_id)
            .await,
        Err(ManageError::OtherTenant)
    ));
    assert!(w.auth.authenticate_key(outsider.key.clone()).await.is_ok());
    let (_, agent_again) = sign_in(&w, "agent@acme.example").await;
    assert!(matches!(
        w.auth
            .end_user_sessions(&agent_again, &admin.session.user_id)
            .await,
        Err(ManageError::Forbidden(AccessDenied::Role))
    ));

    let entries = trail(&w, AuditScope::Tenant(w.acme)).await;
    let by_admin: Vec<_> = entries
        .iter()
        .filter(|e| e.action == AuditAction::SessionEnded)
        .collect();
    assert_eq!(by_admin.len(), 2);
    assert!(by_admin.iter().all(|e| e.details["reason"] == "admin"
        && e.details["userId"] == "agent"
        && e.actor.as_ref().unwrap().user_id.as_str() == "admin"));
    assert!(
        entries
            .iter()
            .any(|e| e.action == AuditAction::TenantIsolationRefused
                && e.target.as_deref() == Some("user:admin-onboarding"))
    );
}

/// Past the per-user cap, a sign-in ends the least recently active session (not the oldest
/// one, not the new one).
#[tokio::test]
async fn a_sign_in_beyond_the_cap_ends_the_least_recently_active_session() {
    let w = world_configured(FakeAuth::default(), |s| s.max_sessions_per_user = 3);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(sign_in(&w, "viewer@acme.example").await.0);
        w.clock.advance(time::Duration::minutes(2));
    }
    // The first session is used again: the second is now the least recently active.
    w.auth
        .authenticate(sessions[0].session_id.expose())
        .await
        .unwrap();

    let (newest, current) = sign_in(&w, "viewer@acme.example").await;

    assert!(
        w.auth
            .authenticate(sessions[1].session_id.expose())
            .await
            .is_err()
    );
    for s in [&sessions[0], &sessions[2], &newest] {
        assert!(w.auth.authenticate(s.session_id.expose()).await.is_ok());
    }
    assert_eq!(w.auth.sessions_of(&current).await.unwrap().len(), 3);
    let capped = trail(&w, AuditScope::Tenant(w.acme))
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::SessionEnded)
        .map(|e| e.details["reason"].clone())
        .collect::<Vec<_>>();
    assert_eq!(capped, ["session_cap"]);
}

/// "Log out everywhere" ends the caller's sessions, this one included.
#[tokio::test]
async fn logout_everywhere_ends_the_callers_own_session_too() {
    let w = world();
    let (_, first) = sign_in(&w, "agent@acme.example").await;
    let (second, _) = sign_in(&w, "agent@acme.example").await;
    assert_eq!(w.auth.logout_everywhere(&first).await.unwrap(), 2);
    assert!(w.auth.authenticate_key(first.key.clone()).await.is_err());
    assert!(
        w.auth
            .authenticate(second.session_id.expose())
            .await
            .is_err()
    );
}

/// After a sign-in journey the trail holds sign-ins, refreshes, sign-outs, and no secret:
/// neither a session ID nor its store key, nor a token; and its chain verifies.
#[tokio::test]
async fn the_trail_of_a_journey_verifies_and_holds_no_secret() {
    let w = world();
    let (signed, current) = sign_in(&w, "admin@acme.example").await;
    w.auth.refresh(&current).await.unwrap();
    w.auth.logout(&current).await.unwrap();
    let (binding, mut params) = start(&w, "admin@acme.example").await;
    params.state = Some("forged".into());
    assert!(
        w.auth
            .complete_login(Some(&binding), params, &ctx())
            .await
            .is_err()
    );

    w.auditor.flush().await;
    let raw = w
        .stores
        .audit
        .oldest(AuditScope::Tenant(w.acme), None, 1000)
        .await
        .unwrap();
    let actions: Vec<AuditAction> = raw
        .iter()
        .map(|s| {
            serde_json::from_str::<AuditEntry>(&s.record.entry)
                .unwrap()
                .action
        })
        .collect();
    assert_eq!(
        actions,
        [
            AuditAction::SignIn,
            AuditAction::Refresh,
            AuditAction::SignOut
        ]
    );
    let platform = trail(&w, AuditScope::Platform).await;
    assert_eq!(platform.len(), 1, "the failed sign-in has no tenant");
    assert_eq!(platform[0].details["reason"], "invalid_state");
    assert_eq!(platform[0].client_ip.as_deref(), Some("203.0.113.77"));

    let everything: String = raw
        .iter()
        .map(|s| s.record.entry.clone())
        .chain(platform.iter().map(|e| serde_json::to_string(e).unwrap()))
        .collect();
    for secret in [
        signed.session_id.expose().to_owned(),
        signed.session_id.key().as_str().to_owned(),
        "rt:admin".to_owned(),
        "at:admin".to_owned(),
        binding,
    ] {
        assert!(!everything.contains(&secret), "{secret} in the trail");
    }
    let verification = w
        .auditor
        .verify_scope(AuditScope::Tenant(w.acme))
        .await
        .unwrap();
    assert!(verification.is_valid());
    assert_eq!(verification.checked, 3);
}
