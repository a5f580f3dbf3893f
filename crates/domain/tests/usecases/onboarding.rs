//! The onboarding wizard over the in-memory stores (`portal-memory`), the real cipher and
//! randomness, and fakes of the Tenant Service (shared), Genesys and Meta (below).
//!
//! Store TTLs follow tokio's clock, so every test runs with time paused and
//! [`H::advance`] moves both clocks.

use crate::helpers::{FakeAuth, FakeTenants, SeenUpdate};
use async_trait::async_trait;
use portal_crypto::{AesGcmCipher, SystemRandom};
use portal_domain::StoreError;
use portal_domain::audit::{AuditEntry, Auditor};
use portal_domain::auth::{AuthPorts, AuthSettings, Authenticator, CurrentSession};
use portal_domain::model::{
    Email, Region, Role, Session, SessionKey, TenantId, TenantStatus, UserId,
};
use portal_domain::onboarding::{
    CheckStatus, ClientId, ClientSecret, CompanyName, Completion, GenesysCredentials, Onboarding,
    OnboardingError, OnboardingPorts, OnboardingSettings, OnboardingState, OrganizationDetails,
    PhoneNumberId, Progress, SystemUserToken, WhatsAppCredentials, fields,
};
use portal_domain::ports::downstream::{
    GenesysCloud, GenesysError, GenesysOrganization, GenesysToken, PhoneNumberInfo, WhatsApp,
    WhatsAppError,
};
use portal_domain::ports::stores::{
    AuditLog, AuditScope, OnboardingStore, SaveOutcome, SessionStore, Versioned,
};
use portal_domain::ports::system::{Cipher, CipherError, Clock, EncryptionContext, Telemetry};
use portal_domain::secret::{ExposeSecret, SecretString, secret};
use portal_memory::ManualClock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

// ---- fakes and wrappers -----------------------------------------------------------------

/// Genesys, like the sandbox: secrets starting with `invalid` are refused; `hang` switches to
/// never answering. Each call yields once, so concurrent requests interleave.
#[derive(Default)]
struct FakeGenesys {
    token_calls: AtomicUsize,
    hang: AtomicBool,
}

#[async_trait]
impl GenesysCloud for FakeGenesys {
    async fn client_credentials(
        &self,
        _region: Region,
        _client_id: &str,
        client_secret: &SecretString,
    ) -> Result<GenesysToken, GenesysError> {
        self.token_calls.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if client_secret.expose_secret().starts_with("invalid") {
            return Err(GenesysError::InvalidClient("invalid_client".into()));
        }
        Ok(GenesysToken {
            access_token: secret("genesys-access-token"),
            expires_in: 86399,
        })
    }
    async fn organization(
        &self,
        _region: Region,
        _token: &SecretString,
    ) -> Result<GenesysOrganization, GenesysError> {
        Ok(GenesysOrganization {
            id: "org-1".into(),
            name: "Acme Org".into(),
        })
    }
}

/// Meta: tokens starting with `invalid` (or every token, with `refuse`) are refused, number
/// `404` does not exist; `hang` never answers.
#[derive(Default)]
struct FakeWhatsApp {
    calls: AtomicUsize,
    hang: AtomicBool,
    refuse: AtomicBool,
}

#[async_trait]
impl WhatsApp for FakeWhatsApp {
    async fn phone_number(
        &self,
        phone_number_id: &str,
        token: &SecretString,
    ) -> Result<PhoneNumberInfo, WhatsAppError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if token.expose_secret().starts_with("invalid") || self.refuse.load(Ordering::SeqCst) {
            return Err(WhatsAppError::InvalidToken("OAuthException".into()));
        }
        if phone_number_id == "404" {
            return Err(WhatsAppError::NotFound);
        }
        Ok(PhoneNumberInfo {
            id: phone_number_id.to_owned(),
            display_phone_number: "+1 555-0100".into(),
            verified_name: Some("Acme".into()),
            quality_rating: Some("GREEN".into()),
        })
    }
}

type SaveFault = fn(&OnboardingState) -> bool;

/// The in-memory wizard store, recording each save's TTL and able to fail the next save whose
/// state matches.
struct WizardStore {
    inner: Arc<dyn OnboardingStore>,
    fail_once: Mutex<Option<SaveFault>>,
    ttls: Mutex<Vec<Duration>>,
}

#[async_trait]
impl OnboardingStore for WizardStore {
    async fn load(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Versioned<OnboardingState>>, StoreError> {
        self.inner.load(tenant).await
    }
    async fn save(
        &self,
        tenant: TenantId,
        state: &OnboardingState,
        expected: Option<u64>,
        ttl: Duration,
    ) -> Result<SaveOutcome<OnboardingState>, StoreError> {
        {
            let mut fault = self.fail_once.lock().unwrap();
            if fault.is_some_and(|f| f(state)) {
                *fault = None;
                return Err(StoreError::Unavailable("injected".into()));
            }
        }
        self.ttls.lock().unwrap().push(ttl);
        self.inner.save(tenant, state, expected, ttl).await
    }
}

/// The in-memory session store, able to fail the next `replace` calls.
struct FlakySessions {
    inner: Arc<dyn SessionStore>,
    fail_replace: AtomicUsize,
}

#[async_trait]
impl SessionStore for FlakySessions {
    async fn create(&self, k: &SessionKey, s: &Session, ttl: Duration) -> Result<(), StoreError> {
        self.inner.create(k, s, ttl).await
    }
    async fn get(&self, k: &SessionKey) -> Result<Option<Session>, StoreError> {
        self.inner.get(k).await
    }
    async fn replace(
        &self,
        k: &SessionKey,
        s: &Session,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if self
            .fail_replace
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("injected".into()));
        }
        self.inner.replace(k, s, ttl).await
    }
    async fn touch(&self, k: &SessionKey, at: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.touch(k, at).await
    }
    async fn delete(&self, k: &SessionKey) -> Result<(), StoreError> {
        self.inner.delete(k).await
    }
    async fn list_for_user(&self, user: &UserId) -> Result<Vec<(SessionKey, Session)>, StoreError> {
        self.inner.list_for_user(user).await
    }
    async fn delete_all_for_user(&self, user: &UserId) -> Result<Vec<SessionKey>, StoreError> {
        self.inner.delete_all_for_user(user).await
    }
}

/// Counts completions by outcome.
#[derive(Default)]
struct Completions(Mutex<Vec<&'static str>>);

impl Telemetry for Completions {
    fn onboarding_completed(&self, status: &'static str) {
        self.0.lock().unwrap().push(status);
    }
}

impl Completions {
    fn count(&self, status: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| **s == status)
            .count()
    }
}

// ---- harness ----------------------------------------------------------------------------

struct H {
    ob: Onboarding,
    clock: Arc<ManualClock>,
    store: Arc<WizardStore>,
    tenants: Arc<FakeTenants>,
    genesys: Arc<FakeGenesys>,
    whatsapp: Arc<FakeWhatsApp>,
    cipher: Arc<AesGcmCipher>,
    sessions: Arc<FlakySessions>,
    telemetry: Arc<Completions>,
    next_session: AtomicUsize,
    /// The audit trails and the auditor writing them.
    audit: (Arc<dyn AuditLog>, Arc<Auditor>),
}

const CLIENT_SECRET: &str = "genesys-client-secret-0001";
const WA_TOKEN: &str = "EAAB-system-user-token-0001";

fn harness() -> H {
    let stores = portal_memory::stores();
    let clock = ManualClock::at(OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap());
    let store = Arc::new(WizardStore {
        inner: stores.onboarding.clone(),
        fail_once: Mutex::default(),
        ttls: Mutex::default(),
    });
    let sessions = Arc::new(FlakySessions {
        inner: stores.sessions.clone(),
        fail_replace: AtomicUsize::new(0),
    });
    let tenants = Arc::new(FakeTenants::default());
    let genesys = Arc::new(FakeGenesys::default());
    let whatsapp = Arc::new(FakeWhatsApp::default());
    let random = Arc::new(SystemRandom::new());
    let cipher = Arc::new(AesGcmCipher::ephemeral(random.as_ref()));
    let telemetry = Arc::new(Completions::default());
    let auditor = crate::helpers::auditor(&stores, clock.clone());
    let authenticator = Arc::new(Authenticator::new(
        AuthSettings::new(
            url::Url::parse("https://login.mypurecloud.com/oauth/authorize").unwrap(),
            "portal-client".into(),
            "https://portal.example/api/v1/auth/callback".into(),
        ),
        AuthPorts {
            sessions: sessions.clone(),
            one_time: stores.one_time.clone(),
            auth_service: Arc::new(FakeAuth::default()),
            tenants: tenants.clone(),
            bus: stores.event_bus.clone(),
            lock: stores.lock.clone(),
            auditor: auditor.clone(),
            cipher: cipher.clone(),
            random: random.clone(),
            clock: clock.clone(),
        },
        &[7u8; 32],
    ));
    let ob = Onboarding::new(
        OnboardingPorts {
            store: store.clone(),
            tenants: tenants.clone(),
            genesys: genesys.clone(),
            whatsapp: whatsapp.clone(),
            cipher: cipher.clone(),
            random,
            clock: clock.clone(),
            telemetry: telemetry.clone(),
            limiter: stores.rate_limiter.clone(),
            authenticator,
            lock: stores.lock.clone(),
            auditor: auditor.clone(),
        },
        OnboardingSettings::default(),
    );
    H {
        ob,
        clock,
        store,
        tenants,
        genesys,
        whatsapp,
        cipher,
        sessions,
        telemetry,
        next_session: AtomicUsize::new(0),
        audit: (stores.audit.clone(), auditor),
    }
}

impl H {
    /// Moves time forward for the domain's clock and the stores' TTLs alike.
    async fn advance(&self, by: Duration) {
        self.clock.advance(time::Duration::try_from(by).unwrap());
        tokio::time::advance(by).await;
    }

    /// A signed-in user's session (stored, so `bind_tenant` finds it).
    async fn session(&self, user: &str, role: Role, tenant: Option<TenantId>) -> CurrentSession {
        let n = self.next_session.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.now();
        let session = Session {
            user_id: UserId::parse(user).unwrap(),
            tenant_id: tenant,
            role,
            email: Email::parse(format!("{user}@newco.example")).unwrap(),
            name: user.into(),
            onboarding_only: tenant.is_none(),
            created_at: now,
            expires_at: now + time::Duration::hours(24),
            last_activity: now,
            refresh_token: None,
            refreshed_at: None,
            client: Default::default(),
        };
        let key = SessionKey::from_hex(format!("{n:064x}"));
        self.sessions
            .create(&key, &session, Duration::from_secs(24 * 3600))
            .await
            .unwrap();
        CurrentSession::new(key, session)
    }

    /// The session as the next request would see it.
    async fn reload(&self, s: &CurrentSession) -> CurrentSession {
        CurrentSession::new(
            s.key.clone(),
            self.sessions.get(&s.key).await.unwrap().unwrap(),
        )
    }

    /// The stored state as the Redis adapter would write it (JSON), with its version.
    async fn stored(&self, tenant: TenantId) -> Option<(u64, String)> {
        self.store
            .load(tenant)
            .await
            .unwrap()
            .map(|v| (v.version, serde_json::to_string(&v.value).unwrap()))
    }

    /// Step 1 for a new user; returns the bound session and the tenant.
    async fn started(&self) -> (CurrentSession, TenantId) {
        let s = self.session("new-user", Role::Admin, None).await;
        let state = self.ob.step1(&s, org()).await.unwrap();
        (self.reload(&s).await, state.tenant_id)
    }

    /// Steps 1-3.
    async fn configured(&self) -> (CurrentSession, TenantId) {
        let (s, t) = self.started().await;
        self.ob
            .step2(&s, Some(t), genesys(CLIENT_SECRET))
            .await
            .unwrap();
        self.ob
            .step3(&s, Some(t), whatsapp(WA_TOKEN))
            .await
            .unwrap();
        (s, t)
    }

    /// A tenant's trail, oldest first, as raw entries.
    async fn trail(&self, tenant: TenantId) -> Vec<String> {
        self.audit.1.flush().await;
        self.audit
            .0
            .oldest(AuditScope::Tenant(tenant), None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.record.entry)
            .collect()
    }

    fn creates(&self) -> usize {
        self.tenants.creates.load(Ordering::SeqCst)
    }
}

fn organization(name: &str, email: &str) -> OrganizationDetails {
    OrganizationDetails {
        company_name: CompanyName::parse(name).unwrap(),
        region: Region::EuWest1,
        contact_email: Email::parse(email).unwrap(),
    }
}

fn org() -> OrganizationDetails {
    organization("NewCo Ltd", "admin@newco.example")
}

fn genesys(secret_value: &str) -> GenesysCredentials {
    GenesysCredentials {
        client_id: ClientId::parse("client-id-0001").unwrap(),
        client_secret: ClientSecret::parse(secret(secret_value)).unwrap(),
        region: Region::EuWest1,
    }
}

fn whatsapp_for(phone_number_id: &str, token: &str) -> WhatsAppCredentials {
    WhatsAppCredentials {
        phone_number_id: PhoneNumberId::parse(phone_number_id).unwrap(),
        system_user_token: SystemUserToken::parse(secret(token)).unwrap(),
    }
}

fn whatsapp(token: &str) -> WhatsAppCredentials {
    whatsapp_for("1065550100", token)
}

fn base() -> url::Url {
    url::Url::parse("https://portal.example/").unwrap()
}

// ---- step 1 -----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn step1_creates_the_tenant_records_the_step_and_binds_the_session() {
    let h = harness();
    let s = h.session("new-user", Role::Admin, None).await;

    let state = h.ob.step1(&s, org()).await.unwrap();

    assert_eq!(h.creates(), 1);
    assert_eq!(state.progress.current_step(), 1);
    assert_eq!(state.organization.company_name.as_str(), "NewCo Ltd");
    let bound = h.reload(&s).await;
    assert_eq!(bound.session.tenant_id, Some(state.tenant_id));
    assert!(bound.session.onboarding_only, "not active until completion");
    let status = h.ob.status(&bound, state.tenant_id).await.unwrap();
    assert_eq!(status.progress.completed_steps(), vec![1]);
    assert_eq!(h.store.ttls.lock().unwrap()[0], Duration::from_secs(3600));
}

#[tokio::test(start_paused = true)]
async fn step1_again_updates_the_same_tenant_and_discards_later_steps() {
    let h = harness();
    let (s, t) = h.configured().await;

    let state =
        h.ob.step1(&s, organization("NewCo Group", "ops@newco.example"))
            .await
            .unwrap();

    assert_eq!(state.tenant_id, t);
    assert_eq!(h.creates(), 1);
    let last = h.tenants.updates.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.company_name.as_deref(), Some("NewCo Group"));
    let status = h.ob.status(&s, t).await.unwrap();
    assert_eq!(status.progress.current_step(), 1);
    assert!(status.progress.genesys().is_none() && status.progress.whatsapp().is_none());
    assert_eq!(status.organization.company_name.as_str(), "NewCo Group");
}

#[tokio::test(start_paused = true)]
async fn step1_reuses_the_tenant_the_user_already_has_at_the_tenant_service() {
    let h = harness();
    let first = h.session("new-user", Role::Admin, None).await;
    let t = h.ob.step1(&first, org()).await.unwrap().tenant_id;
    // The state expired and the new login session was never bound.
    h.advance(Duration::from_secs(2 * 3600)).await;
    let second = h.session("new-user", Role::Admin, None).await;

    let state = h.ob.step1(&second, org()).await.unwrap();

    assert_eq!(state.tenant_id, t);
    assert_eq!(h.creates(), 1);
    assert_eq!(h.reload(&second).await.session.tenant_id, Some(t));
}

#[tokio::test(start_paused = true)]
async fn step1_after_a_logout_elsewhere_keeps_the_tenant_for_the_next_login() {
    let h = harness();
    let s = h.session("new-user", Role::Admin, None).await;
    h.sessions.delete(&s.key).await.unwrap();

    let err = h.ob.step1(&s, org()).await.unwrap_err();

    assert!(matches!(err, OnboardingError::SignedOut));
    let again = h.session("new-user", Role::Admin, None).await;
    h.ob.step1(&again, org()).await.unwrap();
    assert_eq!(h.creates(), 1);
}

// ---- ordering ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn steps_submitted_out_of_order_are_refused_with_the_current_step() {
    let h = harness();
    let unbound = h.session("someone", Role::Admin, None).await;
    assert!(matches!(
        h.ob.step2(&unbound, None, genesys(CLIENT_SECRET)).await,
        Err(OnboardingError::InvalidStep { current: 0 })
    ));

    let (s, t) = h.started().await;
    assert!(matches!(
        h.ob.step3(&s, Some(t), whatsapp(WA_TOKEN)).await,
        Err(OnboardingError::InvalidStep { current: 1 })
    ));
    assert!(matches!(
        h.ob.validate(&s, Some(t)).await,
        Err(OnboardingError::InvalidStep { current: 1 })
    ));
    assert!(matches!(
        h.ob.complete(&s, Some(t), &base()).await,
        Err(OnboardingError::InvalidStep { current: 1 })
    ));
    h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
        .await
        .unwrap();
    assert!(matches!(
        h.ob.validate(&s, Some(t)).await,
        Err(OnboardingError::InvalidStep { current: 2 })
    ));
    assert_eq!(h.whatsapp.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn resubmitting_step2_discards_whatsapp_and_the_validation() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.ob.validate(&s, Some(t)).await.unwrap();
    assert_eq!(h.ob.status(&s, t).await.unwrap().progress.current_step(), 4);

    h.ob.step2(&s, Some(t), genesys("genesys-client-secret-0002"))
        .await
        .unwrap();

    let status = h.ob.status(&s, t).await.unwrap();
    assert_eq!(status.progress.completed_steps(), vec![1, 2]);
    assert!(status.progress.whatsapp().is_none() && status.progress.validation().is_none());
    assert!(matches!(
        h.ob.complete(&s, Some(t), &base()).await,
        Err(OnboardingError::InvalidStep { current: 2 })
    ));
}

#[tokio::test(start_paused = true)]
async fn resubmitting_step3_discards_a_recorded_validation() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.ob.validate(&s, Some(t)).await.unwrap();

    h.ob.step3(&s, Some(t), whatsapp("EAAB-system-user-token-0002"))
        .await
        .unwrap();

    let status = h.ob.status(&s, t).await.unwrap();
    assert_eq!(status.progress.current_step(), 3);
    assert!(status.progress.validation().is_none());
}

// ---- credentials ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn refused_credentials_leave_the_state_unchanged() {
    let h = harness();
    let (s, t) = h.started().await;
    let before = h.stored(t).await;

    let err =
        h.ob.step2(&s, Some(t), genesys("invalid-secret-0001"))
            .await
            .unwrap_err();
    let OnboardingError::Validation { errors } = err else {
        panic!("expected a validation error, got {err:?}")
    };
    assert_eq!(errors[0].field, "clientSecret");
    assert_eq!(h.stored(t).await, before);

    h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
        .await
        .unwrap();
    let before = h.stored(t).await;
    let err =
        h.ob.step3(&s, Some(t), whatsapp("invalid-token-0001"))
            .await
            .unwrap_err();
    assert!(
        matches!(&err, OnboardingError::Validation { errors } if errors[0].field == "systemUserToken")
    );
    assert_eq!(h.stored(t).await, before);
}

#[tokio::test(start_paused = true)]
async fn step3_records_the_display_number_meta_reports() {
    let h = harness();
    let (s, t) = h.started().await;
    h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
        .await
        .unwrap();

    let state = h.ob.step3(&s, Some(t), whatsapp(WA_TOKEN)).await.unwrap();

    assert_eq!(
        state.progress.whatsapp().unwrap().phone_number.as_deref(),
        Some("+1 555-0100")
    );
    let err =
        h.ob.step3(&s, Some(t), whatsapp_for("404", WA_TOKEN))
            .await
            .unwrap_err();
    assert!(
        matches!(&err, OnboardingError::Validation { errors } if errors[0].field == "phoneNumberId")
    );
}

#[tokio::test(start_paused = true)]
async fn the_sixth_failed_attempt_is_rate_limited_without_calling_genesys() {
    let h = harness();
    let (s, t) = h.started().await;
    for _ in 0..5 {
        let err =
            h.ob.step2(&s, Some(t), genesys("invalid-secret-0001"))
                .await
                .unwrap_err();
        assert!(matches!(err, OnboardingError::Validation { .. }));
    }

    let err =
        h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
            .await
            .unwrap_err();

    let OnboardingError::RateLimited { decision } = err else {
        panic!("expected rate limiting, got {err:?}")
    };
    // The window opened by the first failure lasts 15 min (the clock is paused).
    assert_eq!(decision.reset_after, Duration::from_secs(15 * 60));
    assert_eq!((decision.limit, decision.remaining), (5, 0));
    assert_eq!(h.genesys.token_calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn successful_attempts_do_not_use_up_the_failure_budget() {
    let h = harness();
    let (s, t) = h.started().await;
    for _ in 0..8 {
        h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
            .await
            .unwrap();
    }
}

// ---- concurrency and expiry -------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn two_tabs_submitting_at_once_one_wins_the_other_gets_the_current_state() {
    let h = harness();
    let (s, t) = h.started().await;

    let (a, b) = tokio::join!(
        h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET)),
        h.ob.step2(&s, Some(t), genesys("genesys-client-secret-0002")),
    );

    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("expected one winner and one conflict, got {other:?}"),
    };
    assert_eq!(won.progress.current_step(), 2);
    let OnboardingError::Conflict { current } = lost else {
        panic!("expected a conflict, got {lost:?}")
    };
    assert_eq!(current.progress.current_step(), 2);
    assert!(current.progress.genesys().is_some());
}

#[tokio::test(start_paused = true)]
async fn two_tabs_racing_step_1_for_a_new_user_create_one_tenant() {
    let h = harness();
    let tab1 = h.session("new-user", Role::Admin, None).await;
    let tab2 = h.session("new-user", Role::Admin, None).await;

    let (a, b) = tokio::join!(h.ob.step1(&tab1, org()), h.ob.step1(&tab2, org()));

    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.tenant_id, b.tenant_id,
        "both tabs work on the same tenant"
    );
    assert_eq!(h.creates(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_state_expires_one_hour_after_its_last_update() {
    let h = harness();
    let (s, t) = h.started().await;
    h.advance(Duration::from_secs(59 * 60)).await;
    h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
        .await
        .unwrap();
    h.advance(Duration::from_secs(59 * 60)).await;
    assert!(
        h.ob.status(&s, t).await.is_ok(),
        "each save restarts the hour"
    );

    h.advance(Duration::from_secs(2 * 60)).await;

    assert!(matches!(
        h.ob.step3(&s, Some(t), whatsapp(WA_TOKEN)).await,
        Err(OnboardingError::SessionExpired)
    ));
    assert!(matches!(
        h.ob.status(&s, t).await,
        Err(OnboardingError::NotFound)
    ));
}

// ---- access -----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn another_tenants_wizard_cannot_be_touched() {
    let h = harness();
    let (s, _t) = h.started().await;
    let other = TenantId::new_random();

    assert!(matches!(
        h.ob.step2(&s, Some(other), genesys(CLIENT_SECRET)).await,
        Err(OnboardingError::TenantIsolation)
    ));
    assert!(matches!(
        h.ob.status(&s, other).await,
        Err(OnboardingError::TenantIsolation)
    ));
    assert_eq!(h.genesys.token_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn an_agent_of_an_active_tenant_may_not_onboard() {
    let h = harness();
    let agent = h
        .session("agent", Role::Agent, Some(TenantId::new_random()))
        .await;

    let err = h.ob.step1(&agent, org()).await.unwrap_err();

    assert!(matches!(err, OnboardingError::Forbidden(_)));
    assert_eq!(h.creates(), 0);
}

// ---- step 4 -----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn validate_reports_each_integration_and_records_the_result() {
    let h = harness();
    let (s, t) = h.configured().await;

    let record = h.ob.validate(&s, Some(t)).await.unwrap();

    assert_eq!(record.genesys.status, CheckStatus::Success);
    assert_eq!(record.whatsapp.status, CheckStatus::Success);
    assert_eq!(record.genesys.message, "Connected to Acme Org");
    assert_eq!(record.whatsapp.message, "Connected to +1 555-0100");
    let status = h.ob.status(&s, t).await.unwrap();
    assert_eq!(status.progress.completed_steps(), vec![1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn validate_reports_a_failure_of_one_integration_separately() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.whatsapp.refuse.store(true, Ordering::SeqCst);

    let record = h.ob.validate(&s, Some(t)).await.unwrap();

    assert_eq!(record.genesys.status, CheckStatus::Success);
    assert_eq!(record.whatsapp.status, CheckStatus::Failed);
    assert_eq!(h.ob.status(&s, t).await.unwrap().progress.current_step(), 3);
}

#[tokio::test(start_paused = true)]
async fn validate_runs_both_checks_in_parallel_each_under_a_deadline() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.genesys.hang.store(true, Ordering::SeqCst);
    h.whatsapp.hang.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();

    let record = h.ob.validate(&s, Some(t)).await.unwrap();

    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(11),
        "one 10 s deadline for both, not two in a row: {elapsed:?}"
    );
    assert_eq!(record.genesys.status, CheckStatus::Failed);
    assert_eq!(record.whatsapp.status, CheckStatus::Failed);
    assert!(record.whatsapp.message.contains("in time"));
}

// ---- step 5 -----------------------------------------------------------------------------

fn webhook_secret(c: &Completion) -> String {
    c.webhooks.secret.expose_secret().to_owned()
}

#[tokio::test(start_paused = true)]
async fn complete_activates_the_tenant_and_returns_the_webhook_configuration() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.ob.validate(&s, Some(t)).await.unwrap();

    let done = h.ob.complete(&s, Some(t), &base()).await.unwrap();

    let secret_hex = webhook_secret(&done);
    assert_eq!(secret_hex.len(), 64);
    assert!(secret_hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(done.webhooks.verify_token.expose_secret().len(), 32);
    assert_eq!(
        done.webhooks.genesys_url,
        format!("https://portal.example/webhooks/genesys/{t}")
    );
    assert_eq!(
        done.webhooks.meta_url,
        format!("https://portal.example/webhooks/meta/{t}")
    );
    assert_eq!(done.status, TenantStatus::Active);
    assert!(!format!("{done:?}").contains(&secret_hex), "Debug redacts");

    let update = h.tenants.updates.lock().unwrap().last().cloned().unwrap();
    assert_eq!(update.status, Some(TenantStatus::Active));
    assert_eq!(update.genesys_secret.as_deref(), Some(CLIENT_SECRET));
    assert_eq!(update.whatsapp_token.as_deref(), Some(WA_TOKEN));
    assert_eq!(update.webhook_secret.as_deref(), Some(secret_hex.as_str()));
    let bound = h.reload(&s).await;
    assert_eq!(bound.session.tenant_id, Some(t));
    assert!(!bound.session.onboarding_only);
    assert_eq!(h.telemetry.count("success"), 1);
    assert!(matches!(
        h.ob.status(&bound, t).await,
        Err(OnboardingError::NotFound)
    ));
    let (_, receipt) = h.stored(t).await.unwrap();
    assert!(!receipt.contains("clientSecret") && !receipt.contains("systemUserToken"));
}

#[tokio::test(start_paused = true)]
async fn complete_runs_the_validation_itself_when_none_is_recorded() {
    let h = harness();
    let (s, t) = h.configured().await;

    h.ob.complete(&s, Some(t), &base()).await.unwrap();

    assert_eq!(
        h.whatsapp.calls.load(Ordering::SeqCst),
        2,
        "step 3 + step 4"
    );
    assert_eq!(h.telemetry.count("success"), 1);
}

#[tokio::test(start_paused = true)]
async fn complete_refuses_when_the_validation_fails_and_persists_nothing() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.whatsapp.refuse.store(true, Ordering::SeqCst);

    let err = h.ob.complete(&s, Some(t), &base()).await.unwrap_err();

    let OnboardingError::Validation { errors } = err else {
        panic!("expected a validation error, got {err:?}")
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "whatsapp");
    assert!(h.tenants.activations().is_empty());
    assert_eq!(h.telemetry.count("failure"), 1);
    assert_eq!(h.telemetry.count("success"), 0);
}

/// Completes after one injected failure; returns (first error, retried completion).
async fn complete_with_a_failure(
    h: &H,
    s: &CurrentSession,
    t: TenantId,
) -> (OnboardingError, Completion) {
    let err = h.ob.complete(s, Some(t), &base()).await.unwrap_err();
    let done = h.ob.complete(s, Some(t), &base()).await.unwrap();
    (err, done)
}

fn same_secret(updates: &[SeenUpdate], done: &Completion) -> bool {
    updates
        .iter()
        .all(|u| u.webhook_secret == Some(webhook_secret(done)))
}

#[tokio::test(start_paused = true)]
async fn a_completion_retried_after_the_tenant_service_failed_returns_the_same_secret() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.tenants.fail_updates.store(1, Ordering::SeqCst);

    let (err, done) = complete_with_a_failure(&h, &s, t).await;

    assert!(matches!(
        err,
        OnboardingError::Unavailable {
            service: "tenantService",
            ..
        }
    ));
    let updates = h.tenants.activations();
    assert_eq!(updates.len(), 1);
    assert!(same_secret(&updates, &done));
    assert_eq!(h.creates(), 1);
    assert_eq!(h.telemetry.count("success"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_completion_retried_after_the_receipt_write_failed_returns_the_same_secret() {
    let h = harness();
    let (s, t) = h.configured().await;
    *h.store.fail_once.lock().unwrap() =
        Some(|st| matches!(st.progress, Progress::Completed { .. }));

    let (err, done) = complete_with_a_failure(&h, &s, t).await;

    assert!(matches!(err, OnboardingError::Store(_)));
    let updates = h.tenants.activations();
    assert_eq!(updates.len(), 2, "the idempotent update is repeated");
    assert!(same_secret(&updates, &done));
    assert_eq!(h.creates(), 1);
    assert_eq!(h.telemetry.count("success"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_completion_retried_after_the_session_bind_failed_returns_the_same_secret() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.sessions.fail_replace.store(1, Ordering::SeqCst);

    let (err, done) = complete_with_a_failure(&h, &s, t).await;

    assert!(matches!(err, OnboardingError::Store(_)));
    let updates = h.tenants.activations();
    assert_eq!(updates.len(), 1, "no second update after a completed one");
    assert!(same_secret(&updates, &done));
    assert!(!h.reload(&s).await.session.onboarding_only);
    assert_eq!(h.creates(), 1);
    assert_eq!(h.telemetry.count("success"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_completion_retried_after_success_returns_the_same_secret_again() {
    let h = harness();
    let (s, t) = h.configured().await;
    let first = h.ob.complete(&s, Some(t), &base()).await.unwrap();
    let s = h.reload(&s).await;

    let again = h.ob.complete(&s, Some(t), &base()).await.unwrap();

    assert_eq!(webhook_secret(&first), webhook_secret(&again));
    assert_eq!(
        first.webhooks.verify_token.expose_secret(),
        again.webhooks.verify_token.expose_secret()
    );
    assert_eq!(h.tenants.activations().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_completed_wizard_accepts_only_a_new_step1() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.ob.complete(&s, Some(t), &base()).await.unwrap();
    let s = h.reload(&s).await;

    assert!(matches!(
        h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET)).await,
        Err(OnboardingError::InvalidStep { current: 5 })
    ));
    let state = h.ob.step1(&s, org()).await.unwrap();
    assert_eq!(state.tenant_id, t);
    assert_eq!(h.creates(), 1);
    assert!(!h.reload(&s).await.session.onboarding_only, "still active");
}

// ---- secrets ----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_stored_state_never_holds_a_secret_in_plain_text() {
    let h = harness();
    let (s, t) = h.configured().await;
    // Stop in the `Completing` phase, where the state holds every secret at once.
    h.tenants.fail_updates.store(1, Ordering::SeqCst);
    h.ob.complete(&s, Some(t), &base()).await.unwrap_err();
    let (_, stored) = h.stored(t).await.unwrap();
    let st: OnboardingState = serde_json::from_str(&stored).unwrap();
    let Progress::Completing {
        genesys: g,
        webhooks,
        ..
    } = &st.progress
    else {
        panic!("expected the completing phase")
    };
    let webhook_plain = h
        .cipher
        .decrypt(
            &webhooks.secret,
            &EncryptionContext::tenant(t, fields::WEBHOOK_SECRET),
        )
        .unwrap()
        .expose_secret()
        .to_owned();

    for plain in [CLIENT_SECRET, WA_TOKEN, webhook_plain.as_str()] {
        assert!(!stored.contains(plain), "plaintext secret in the store");
    }
    assert!(
        stored.contains(&g.client_secret.0),
        "the ciphertext is what is kept"
    );
    let debug = format!("{:?}", genesys(CLIENT_SECRET));
    assert!(!debug.contains(CLIENT_SECRET));
    assert!(!format!("{:?}", whatsapp(WA_TOKEN)).contains(WA_TOKEN));
}

#[tokio::test(start_paused = true)]
async fn a_ciphertext_moved_to_another_tenant_does_not_decrypt() {
    let h = harness();
    let (_s, t) = h.configured().await;
    let victim = h.store.load(t).await.unwrap().unwrap().value;
    let ct = victim.progress.genesys().unwrap().client_secret.clone();
    let other = TenantId::new_random();

    // At the cipher: the context binds the tenant.
    assert!(matches!(
        h.cipher.decrypt(
            &ct,
            &EncryptionContext::tenant(other, fields::GENESYS_CLIENT_SECRET)
        ),
        Err(CipherError::Rejected)
    ));

    // Through the wizard: another tenant's copied state cannot use the credentials.
    let copied = OnboardingState {
        tenant_id: other,
        ..victim
    };
    h.store
        .save(other, &copied, None, Duration::from_secs(3600))
        .await
        .unwrap();
    let attacker = h.session("attacker", Role::Admin, Some(other)).await;
    let calls_before = h.genesys.token_calls.load(Ordering::SeqCst);

    let err = h.ob.validate(&attacker, Some(other)).await.unwrap_err();

    assert!(matches!(
        err,
        OnboardingError::Store(StoreError::Corrupt(_))
    ));
    assert!(!err.to_string().contains(CLIENT_SECRET));
    assert_eq!(h.genesys.token_calls.load(Ordering::SeqCst), calls_before);
}

// ---- audit --------------------------------------------------------------------------------

/// Each step and its outcome is in the tenant's trail: which fields changed (never their
/// values), each credential check's result, the validation, the completion; and no secret.
#[tokio::test(start_paused = true)]
async fn each_step_is_audited_with_the_fields_it_changed_and_no_secret() {
    let h = harness();
    let (s, t) = h.started().await;
    assert!(
        h.ob.step2(&s, Some(t), genesys("invalid-secret-0001"))
            .await
            .is_err()
    );
    h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
        .await
        .unwrap();
    h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
        .await
        .unwrap();
    h.ob.step3(&s, Some(t), whatsapp(WA_TOKEN)).await.unwrap();
    h.ob.validate(&s, Some(t)).await.unwrap();
    let done = h.ob.complete(&s, Some(t), &base()).await.unwrap();

    let raw = h.trail(t).await;
    let entries: Vec<AuditEntry> = raw
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let summary: Vec<(String, String, serde_json::Value)> = entries
        .iter()
        .map(|e| {
            (
                serde_json::to_value(e.action)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
                serde_json::to_value(e.outcome)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
                serde_json::Value::Object(e.details.clone()),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "onboarding.organization".into(),
                "success".into(),
                serde_json::json!({"fieldsChanged": ["companyName", "region", "contactEmail"]})
            ),
            (
                "onboarding.genesys_credentials".into(),
                "failure".into(),
                serde_json::json!({"reason": "validation_failed", "check": "refused", "fields": ["clientSecret"]})
            ),
            (
                "onboarding.genesys_credentials".into(),
                "success".into(),
                serde_json::json!({"check": "passed", "fieldsChanged": ["clientId", "clientSecret", "region"]})
            ),
            (
                "onboarding.genesys_credentials".into(),
                "success".into(),
                serde_json::json!({"check": "passed", "fieldsChanged": []})
            ),
            (
                "onboarding.whatsapp_credentials".into(),
                "success".into(),
                serde_json::json!({"check": "passed", "fieldsChanged": ["phoneNumberId", "systemUserToken"]})
            ),
            (
                "onboarding.validation".into(),
                "success".into(),
                serde_json::json!({"genesys": "success", "whatsapp": "success"})
            ),
            (
                "onboarding.completed".into(),
                "success".into(),
                serde_json::json!({})
            ),
        ]
    );
    assert!(entries.iter().all(
        |e| e.tenant_id == Some(t) && e.actor.as_ref().unwrap().user_id.as_str() == "new-user"
    ));
    let everything = raw.concat();
    for secret_value in [
        CLIENT_SECRET,
        WA_TOKEN,
        "invalid-secret-0001",
        done.webhooks.secret.expose_secret(),
        done.webhooks.verify_token.expose_secret(),
    ] {
        assert!(!everything.contains(secret_value), "a secret in the trail");
    }
}

/// A request naming another tenant's wizard is refused and audited as such.
#[tokio::test(start_paused = true)]
async fn a_request_for_another_tenants_wizard_is_audited_as_refused() {
    let h = harness();
    let (s, t) = h.started().await;
    let other = TenantId::new_random();
    assert!(matches!(
        h.ob.step2(&s, Some(other), genesys(CLIENT_SECRET)).await,
        Err(OnboardingError::TenantIsolation)
    ));
    let entries: Vec<AuditEntry> = h
        .trail(t)
        .await
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let refused = entries
        .iter()
        .find(|e| e.action == portal_domain::audit::AuditAction::TenantIsolationRefused)
        .expect("the refusal is audited");
    assert_eq!(refused.target, Some(format!("tenant:{other}")));
}
