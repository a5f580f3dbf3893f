//! Sign-in and the session rules, against the in-memory store adapters and the real cipher.
//! The Auth and Tenant services are the shared fakes (`helpers`), which check what a real one
//! would (PKCE, single-use codes).

use crate::helpers::{FakeAuth, FakeTenants};
use futures::StreamExt;
use portal_crypto::{AesGcmCipher, SystemRandom};
use portal_domain::audit::Auditor;
use portal_domain::auth::{
    AccessDenied, AuthPorts, AuthSettings, Authenticator, CallbackError, CallbackParams,
    Capability, RefreshError, SessionError,
};
use portal_domain::model::{BusEvent, RequestContext, Role, SessionId, TenantId, TenantStatus};
use portal_domain::ports::StorePorts;
use portal_domain::ports::system::Clock;
use portal_domain::secret::{ExposeSecret, secret};
use portal_memory::ManualClock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

pub(crate) struct World {
    pub(crate) auth: Authenticator,
    pub(crate) fake_auth: Arc<FakeAuth>,
    pub(crate) stores: StorePorts,
    pub(crate) auditor: Arc<Auditor>,
    pub(crate) clock: Arc<ManualClock>,
    /// The active tenant of `admin`, `agent` and `viewer`.
    pub(crate) acme: TenantId,
    /// The still onboarding tenant of `admin-onboarding`.
    pub(crate) onboarding: TenantId,
    /// What another instance of the service shares with this one (stores, services, keys).
    parts: (AuthSettings, Arc<FakeTenants>, Arc<AesGcmCipher>),
}

fn world_with(fake_auth: FakeAuth) -> World {
    world_configured(fake_auth, |_| {})
}

pub(crate) fn world_configured(
    fake_auth: FakeAuth,
    tweak: impl FnOnce(&mut AuthSettings),
) -> World {
    let stores = portal_memory::stores();
    let random = Arc::new(SystemRandom::new());
    let clock = ManualClock::at(OffsetDateTime::now_utc());
    let fake_auth = Arc::new(fake_auth);
    let tenants = FakeTenants::default();
    let acme = tenants.add(TenantStatus::Active, &["admin", "agent", "viewer"]);
    let onboarding = tenants.add(TenantStatus::Onboarding, &["admin-onboarding"]);
    let mut settings = AuthSettings::new(
        "https://login.example/oauth/authorize".parse().unwrap(),
        "portal-client".into(),
        "https://portal.example/api/v1/auth/callback".into(),
    );
    tweak(&mut settings);
    let auditor = crate::helpers::auditor(&stores, clock.clone());
    let parts = (
        settings,
        Arc::new(tenants),
        Arc::new(AesGcmCipher::ephemeral(random.as_ref())),
    );
    let auth = authenticator(&stores, &fake_auth, &auditor, &clock, &parts);
    World {
        auth,
        fake_auth,
        stores,
        auditor,
        clock,
        acme,
        onboarding,
        parts,
    }
}

fn authenticator(
    stores: &StorePorts,
    fake_auth: &Arc<FakeAuth>,
    auditor: &Arc<Auditor>,
    clock: &Arc<ManualClock>,
    (settings, tenants, cipher): &(AuthSettings, Arc<FakeTenants>, Arc<AesGcmCipher>),
) -> Authenticator {
    Authenticator::new(
        settings.clone(),
        AuthPorts {
            sessions: stores.sessions.clone(),
            one_time: stores.one_time.clone(),
            auth_service: fake_auth.clone(),
            tenants: tenants.clone(),
            bus: stores.event_bus.clone(),
            lock: stores.lock.clone(),
            auditor: auditor.clone(),
            cipher: cipher.clone(),
            random: Arc::new(SystemRandom::new()),
            clock: clock.clone(),
        },
        b"csrf-key-csrf-key-csrf-key-csrf-key",
    )
}

impl World {
    /// Another instance of the service: its own authenticator (and session memo) over the
    /// same stores, services and keys.
    pub(crate) fn another_instance(&self) -> Authenticator {
        authenticator(
            &self.stores,
            &self.fake_auth,
            &self.auditor,
            &self.clock,
            &self.parts,
        )
    }
}

/// The callback request of a browser.
pub(crate) fn ctx() -> RequestContext {
    RequestContext::new(
        Some("203.0.113.77".parse().unwrap()),
        Some("Mozilla/5.0 (Test)"),
        Some("req-test"),
    )
}

pub(crate) fn world() -> World {
    world_with(FakeAuth::default())
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Starts a login as `email` and returns (binding cookie, callback params).
pub(crate) async fn start(w: &World, email: &str) -> (String, CallbackParams) {
    let start = w.auth.begin_login(Some(email), None).await.unwrap();
    let url = start.redirect_url;
    let state = query(&url, "state").unwrap();
    let code = format!("code-{}", &state[..12]);
    w.fake_auth
        .issue(&code, email, &query(&url, "code_challenge").unwrap());
    let params = CallbackParams {
        code: Some(secret(code)),
        state: Some(state),
        error: None,
    };
    (start.binding.expose_secret().to_owned(), params)
}

fn replay(p: &CallbackParams) -> CallbackParams {
    CallbackParams {
        code: p.code.as_ref().map(|c| secret(c.expose_secret())),
        state: p.state.clone(),
        error: p.error.clone(),
    }
}

#[tokio::test]
async fn the_authorize_url_carries_state_pkce_s256_and_the_hint() {
    let w = world();
    let start = w
        .auth
        .begin_login(Some("admin@acme.example"), Some("/history"))
        .await
        .unwrap();
    let url = start.redirect_url;
    assert_eq!(url.path(), "/oauth/authorize");
    assert_eq!(query(&url, "client_id").as_deref(), Some("portal-client"));
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query(&url, "login_hint").as_deref(),
        Some("admin@acme.example")
    );
    assert_eq!(query(&url, "code_challenge").unwrap().len(), 43);
    assert!(query(&url, "state").unwrap().len() >= 43);
}

#[tokio::test]
async fn a_full_sign_in_creates_a_session_under_a_hashed_key() {
    let w = world();
    let (binding, params) = start(&w, "admin@acme.example").await;
    let signed = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap();
    assert_eq!(signed.return_to, "/dashboard");
    assert_eq!(signed.session.role, Role::Admin);
    assert_eq!(signed.session.tenant_id, Some(w.acme));
    assert!(!signed.session.onboarding_only);
    // The refresh token is stored encrypted, never in clear.
    let stored = w
        .stores
        .sessions
        .get(&signed.session_id.key())
        .await
        .unwrap()
        .unwrap();
    let json = serde_json::to_string(&stored).unwrap();
    assert!(!json.contains("rt:admin@acme.example"));
    assert!(
        !signed
            .session_id
            .key()
            .as_str()
            .contains(signed.session_id.expose())
    );
    // The cookie value authenticates; its CSRF token verifies; another does not.
    let current = w
        .auth
        .authenticate(signed.session_id.expose())
        .await
        .unwrap();
    let csrf = w.auth.csrf_token(&current);
    assert!(w.auth.verify_csrf(&current, Some(&csrf)));
    assert!(!w.auth.verify_csrf(&current, Some("nope")));
    assert!(!w.auth.verify_csrf(&current, None));
}

#[tokio::test]
async fn every_login_gets_a_new_session_id() {
    let w = world();
    let (b1, p1) = start(&w, "admin@acme.example").await;
    let (b2, p2) = start(&w, "admin@acme.example").await;
    let s1 = w.auth.complete_login(Some(&b1), p1, &ctx()).await.unwrap();
    let s2 = w.auth.complete_login(Some(&b2), p2, &ctx()).await.unwrap();
    assert_ne!(s1.session_id.expose(), s2.session_id.expose());
    let stored = w
        .stores
        .sessions
        .delete_all_for_user(&s1.session.user_id)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "both sessions are stored");
}

#[tokio::test]
async fn state_is_single_use_bound_to_the_browser_and_required() {
    let w = world();
    let (binding, params) = start(&w, "admin@acme.example").await;
    let again = replay(&params);
    w.auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap();
    let err = w
        .auth
        .complete_login(Some(&binding), again, &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallbackError::InvalidState),
        "replayed: {err:?}"
    );

    let (_, params) = start(&w, "admin@acme.example").await;
    let err = w
        .auth
        .complete_login(Some("another-browser"), params, &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallbackError::InvalidState),
        "other browser: {err:?}"
    );

    let (binding, mut params) = start(&w, "admin@acme.example").await;
    params.state = None;
    let err = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallbackError::InvalidState),
        "missing: {err:?}"
    );
}

#[tokio::test]
async fn codes_and_providers_failures_map_to_the_specs_reasons() {
    let w = world();
    let (binding, mut params) = start(&w, "admin@acme.example").await;
    params.code = Some(secret("unknown-code"));
    let err = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "token_validation_failed");

    let (binding, mut params) = start(&w, "admin@acme.example").await;
    params.error = Some("access_denied<script>".into());
    let err = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap_err();
    assert_eq!(
        err.reason(),
        "access_deniedscript",
        "sanitised provider error"
    );

    let (binding, mut params) = start(&w, "admin@acme.example").await;
    params.code = None;
    let err = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, CallbackError::MissingCode));

    let w = world_with(FakeAuth {
        fail_profile: true,
        ..Default::default()
    });
    let (binding, params) = start(&w, "admin@acme.example").await;
    let err = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "profile_retrieval_failed");
}

#[tokio::test]
async fn users_without_an_active_tenant_get_an_onboarding_only_session() {
    let w = world();
    let (binding, params) = start(&w, "new@newco.example").await;
    let signed = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap();
    assert_eq!(signed.session.tenant_id, None);
    assert!(signed.session.onboarding_only);
    assert_eq!(signed.return_to, "/onboarding");

    let (binding, params) = start(&w, "admin-onboarding@acme.example").await;
    let signed = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap();
    assert_eq!(signed.session.tenant_id, Some(w.onboarding));
    assert!(signed.session.onboarding_only);
}

#[tokio::test]
async fn roles_and_onboarding_limit_what_a_session_may_do() {
    let w = world();
    let mut sessions = HashMap::new();
    for email in [
        "admin@acme.example",
        "agent@acme.example",
        "viewer@acme.example",
        "new@newco.example",
    ] {
        let (binding, params) = start(&w, email).await;
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
        sessions.insert(email, current);
    }
    let can = |email, cap| sessions[email].authorize(cap);
    assert_eq!(
        can("admin@acme.example", Capability::Onboard),
        Ok(Some(w.acme))
    );
    assert_eq!(
        can("agent@acme.example", Capability::SendMessages),
        Ok(Some(w.acme))
    );
    assert_eq!(
        can("viewer@acme.example", Capability::SendMessages),
        Err(AccessDenied::Role)
    );
    assert_eq!(
        can("viewer@acme.example", Capability::ViewDashboard),
        Ok(Some(w.acme))
    );
    assert_eq!(
        can("agent@acme.example", Capability::Onboard),
        Err(AccessDenied::Role)
    );
    assert_eq!(can("new@newco.example", Capability::Onboard), Ok(None));
    assert_eq!(
        can("new@newco.example", Capability::ViewDashboard),
        Err(AccessDenied::OnboardingIncomplete)
    );
}

#[tokio::test]
async fn an_expired_session_is_refused_and_removed() {
    let w = world();
    let (binding, params) = start(&w, "admin@acme.example").await;
    let signed = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap();
    w.clock
        .advance(time::Duration::hours(24) + time::Duration::seconds(1));
    let err = w
        .auth
        .authenticate(signed.session_id.expose())
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::Expired));
    assert!(
        w.stores
            .sessions
            .get(&signed.session_id.key())
            .await
            .unwrap()
            .is_none()
    );
    // Malformed cookie values are refused the same way, without touching the store.
    assert!(matches!(
        w.auth.authenticate("garbage").await,
        Err(SessionError::Expired)
    ));
}

#[tokio::test]
async fn last_activity_is_written_at_most_once_a_minute() {
    let w = world();
    let (binding, params) = start(&w, "admin@acme.example").await;
    let signed = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap();
    let key = signed.session_id.key();
    let created = signed.session.last_activity;
    w.clock.advance(time::Duration::seconds(30));
    w.auth
        .authenticate(signed.session_id.expose())
        .await
        .unwrap();
    assert_eq!(
        w.stores
            .sessions
            .get(&key)
            .await
            .unwrap()
            .unwrap()
            .last_activity,
        created
    );
    w.clock.advance(time::Duration::seconds(31));
    w.auth
        .authenticate(signed.session_id.expose())
        .await
        .unwrap();
    assert_eq!(
        w.stores
            .sessions
            .get(&key)
            .await
            .unwrap()
            .unwrap()
            .last_activity,
        w.clock.now()
    );
}

#[tokio::test]
async fn refresh_extends_the_session_and_logout_revokes_it_everywhere() {
    let w = world();
    let mut bus = w.stores.event_bus.subscribe().await.unwrap();
    let (binding, params) = start(&w, "admin@acme.example").await;
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

    w.clock.advance(time::Duration::hours(2));
    let refreshed = w.auth.refresh(&current).await.unwrap();
    assert_eq!(
        refreshed.expires_at,
        w.clock.now() + time::Duration::hours(24)
    );

    w.auth.logout(&current).await.unwrap();
    assert!(matches!(
        w.auth.authenticate(signed.session_id.expose()).await,
        Err(SessionError::Expired)
    ));
    let event = tokio::time::timeout(Duration::from_secs(5), bus.next())
        .await
        .unwrap();
    assert_eq!(
        event,
        Some(BusEvent::SessionRevoked(signed.session_id.key()))
    );
    // A refresh of the ended session finds it gone.
    assert!(matches!(
        w.auth.refresh(&current).await,
        Err(RefreshError::SessionGone)
    ));
}

/// "Log out everywhere": every session of the user ends and is announced, another user's
/// session is untouched.
#[tokio::test]
async fn logout_everywhere_ends_every_session_of_that_user_only() {
    let w = world();
    let mut bus = w.stores.event_bus.subscribe().await.unwrap();
    let mut admin = Vec::new();
    for _ in 0..2 {
        let (binding, params) = start(&w, "admin@acme.example").await;
        admin.push(
            w.auth
                .complete_login(Some(&binding), params, &ctx())
                .await
                .unwrap(),
        );
    }
    let (binding, params) = start(&w, "agent@acme.example").await;
    let agent = w
        .auth
        .complete_login(Some(&binding), params, &ctx())
        .await
        .unwrap();
    for s in admin.iter().chain([&agent]) {
        w.auth.authenticate(s.session_id.expose()).await.unwrap();
    }

    let current = w
        .auth
        .authenticate(admin[0].session_id.expose())
        .await
        .unwrap();
    let ended = w.auth.logout_everywhere(&current).await.unwrap();

    assert_eq!(ended, 2);
    for s in &admin {
        assert!(matches!(
            w.auth.authenticate(s.session_id.expose()).await,
            Err(SessionError::Expired)
        ));
    }
    assert!(w.auth.authenticate(agent.session_id.expose()).await.is_ok());
    let mut revoked = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(5), bus.next())
            .await
            .unwrap();
        match event {
            Some(BusEvent::SessionRevoked(key)) => revoked.push(key),
            other => panic!("expected a revocation, got {other:?}"),
        }
    }
    revoked.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut expected: Vec<_> = admin.iter().map(|s| s.session_id.key()).collect();
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(revoked, expected);
}

#[tokio::test]
async fn websocket_tickets_work_once() {
    let w = world();
    let (binding, params) = start(&w, "agent@acme.example").await;
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
    let ticket = w.auth.issue_ws_ticket(&current).await.unwrap();
    let redeemed = w
        .auth
        .redeem_ws_ticket(ticket.expose_secret())
        .await
        .unwrap();
    assert_eq!(redeemed.key, signed.session_id.key());
    assert!(
        w.auth
            .redeem_ws_ticket(ticket.expose_secret())
            .await
            .is_err()
    );
    assert!(w.auth.redeem_ws_ticket("forged").await.is_err());
    // The session ID is never what the ticket store holds.
    let _ = SessionId::parse(signed.session_id.expose()).unwrap();
}
