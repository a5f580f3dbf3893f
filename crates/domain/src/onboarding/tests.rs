//! Wizard tests against in-memory doubles of every port.
//!
//! The doubles live here (not in `portal-memory`) because unit tests see this crate's types,
//! not the `portal_domain` that the adapter crates link against. The cipher double never puts
//! the plaintext into its ciphertext and binds each ciphertext to its context, like the real
//! AES-GCM adapter.

use super::*;
use crate::auth::{AuthPorts, AuthSettings, Authenticator, CurrentSession};
use crate::error::{DownstreamFailure, StoreError};
use crate::model::{
    Ciphertext, Email, NewTenant, Region, Role, Session, SessionKey, Tenant, TenantId,
    TenantStatus, TenantUpdate, UserId,
};
use crate::ports::downstream::{
    CredentialCheck, CredentialVerdict, GenesysCloud, GenesysError, GenesysOrganization,
    GenesysToken, MockAuthService, PhoneNumberInfo, TenantService, TenantServiceError, WhatsApp,
    WhatsAppError,
};
use crate::ports::stores::{
    MockEventBus, MockOneTimeStore, OnboardingStore, RateDecision, RateLimiter, RatePolicy,
    SaveOutcome, SessionStore, Versioned,
};
use crate::ports::system::{Cipher, CipherError, Clock, EncryptionContext, Random, Telemetry};
use crate::secret::{ExposeSecret, SecretString, secret};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

// ---- doubles ----------------------------------------------------------------------------

struct TestClock(Mutex<OffsetDateTime>);
impl TestClock {
    fn advance(&self, d: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += time::Duration::try_from(d).unwrap();
    }
}
impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// Every fill is different, so a regenerated secret would be noticed.
struct CountingRandom(AtomicUsize);
impl Random for CountingRandom {
    fn fill(&self, buf: &mut [u8]) {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (n as u8).wrapping_mul(31).wrapping_add(i as u8);
        }
    }
}

/// Ciphertexts are opaque handles; decryption requires the same context.
#[derive(Default)]
struct TestCipher(Mutex<Vec<(Vec<u8>, String)>>);
impl Cipher for TestCipher {
    fn encrypt(&self, plaintext: &SecretString, context: &EncryptionContext) -> Ciphertext {
        let mut v = self.0.lock().unwrap();
        v.push((context.aad(), plaintext.expose_secret().to_owned()));
        Ciphertext(format!("v1.test.{}", v.len() - 1))
    }
    fn decrypt(
        &self,
        ciphertext: &Ciphertext,
        context: &EncryptionContext,
    ) -> Result<SecretString, CipherError> {
        let idx: usize = ciphertext
            .0
            .strip_prefix("v1.test.")
            .and_then(|i| i.parse().ok())
            .ok_or(CipherError::Malformed)?;
        let v = self.0.lock().unwrap();
        match v.get(idx) {
            Some((aad, plain)) if *aad == context.aad() => Ok(secret(plain.clone())),
            Some(_) => Err(CipherError::Rejected),
            None => Err(CipherError::UnknownKey),
        }
    }
}

type SaveFault = fn(&OnboardingState) -> bool;

/// Stores JSON, as Redis would, with versions and a TTL on the test clock.
struct MemStore {
    clock: Arc<TestClock>,
    map: Mutex<HashMap<TenantId, (u64, String, OffsetDateTime)>>,
    /// Fails the next save whose state matches.
    fail_once: Mutex<Option<SaveFault>>,
    ttls: Mutex<Vec<Duration>>,
}
impl MemStore {
    fn raw(&self, tenant: TenantId) -> Option<String> {
        self.map.lock().unwrap().get(&tenant).map(|e| e.1.clone())
    }
    fn put_raw(&self, tenant: TenantId, json: String) {
        let exp = self.clock.now() + time::Duration::hours(1);
        self.map.lock().unwrap().insert(tenant, (1, json, exp));
    }
}
#[async_trait]
impl OnboardingStore for MemStore {
    async fn load(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Versioned<OnboardingState>>, StoreError> {
        let now = self.clock.now();
        let map = self.map.lock().unwrap();
        Ok(match map.get(&tenant) {
            Some((version, json, exp)) if *exp > now => Some(Versioned {
                version: *version,
                value: serde_json::from_str(json).unwrap(),
            }),
            _ => None,
        })
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
        let now = self.clock.now();
        let mut map = self.map.lock().unwrap();
        let live = map.get(&tenant).filter(|e| e.2 > now).cloned();
        let current_version = live.as_ref().map(|e| e.0);
        if current_version != expected {
            return Ok(SaveOutcome::Conflict(live.map(|(version, json, _)| {
                Versioned {
                    version,
                    value: serde_json::from_str(&json).unwrap(),
                }
            })));
        }
        let version = current_version.unwrap_or(0) + 1;
        let exp = now + time::Duration::try_from(ttl).unwrap();
        map.insert(
            tenant,
            (version, serde_json::to_string(state).unwrap(), exp),
        );
        Ok(SaveOutcome::Saved(version))
    }
    async fn delete(&self, tenant: TenantId) -> Result<(), StoreError> {
        self.map.lock().unwrap().remove(&tenant);
        Ok(())
    }
}

/// What the Tenant Service received in an update (secrets exposed for comparison).
#[derive(Debug, Clone)]
struct SeenUpdate {
    status: Option<TenantStatus>,
    company_name: Option<String>,
    genesys_secret: Option<String>,
    whatsapp_token: Option<String>,
    webhook_secret: Option<String>,
}

#[derive(Default)]
struct FakeTenants {
    tenants: Mutex<HashMap<TenantId, Tenant>>,
    by_user: Mutex<HashMap<UserId, TenantId>>,
    creates: AtomicUsize,
    updates: Mutex<Vec<SeenUpdate>>,
    fail_updates: AtomicUsize,
}
#[async_trait]
impl TenantService for FakeTenants {
    async fn create(&self, t: &NewTenant) -> Result<Tenant, TenantServiceError> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        let tenant = Tenant {
            id: TenantId::new_random(),
            company_name: t.company_name.clone(),
            region: t.region,
            contact_email: Some(t.contact_email.clone()),
            status: TenantStatus::Onboarding,
        };
        self.tenants
            .lock()
            .unwrap()
            .insert(tenant.id, tenant.clone());
        self.by_user
            .lock()
            .unwrap()
            .insert(t.created_by.clone(), tenant.id);
        Ok(tenant)
    }
    async fn get(&self, id: TenantId) -> Result<Tenant, TenantServiceError> {
        self.tenants
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .ok_or(TenantServiceError::NotFound)
    }
    async fn update(&self, id: TenantId, u: &TenantUpdate) -> Result<Tenant, TenantServiceError> {
        if self
            .fail_updates
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(DownstreamFailure::Unavailable { status: Some(503) }.into());
        }
        self.updates.lock().unwrap().push(SeenUpdate {
            status: u.status,
            company_name: u.company_name.clone(),
            genesys_secret: u
                .genesys_config
                .as_ref()
                .map(|g| g.client_secret.expose_secret().to_owned()),
            whatsapp_token: u
                .whatsapp_config
                .as_ref()
                .map(|w| w.system_user_token.expose_secret().to_owned()),
            webhook_secret: u
                .webhooks
                .as_ref()
                .map(|w| w.secret.expose_secret().to_owned()),
        });
        let mut tenants = self.tenants.lock().unwrap();
        let t = tenants.get_mut(&id).ok_or(TenantServiceError::NotFound)?;
        if let Some(name) = &u.company_name {
            t.company_name = name.clone();
        }
        if let Some(status) = u.status {
            t.status = status;
        }
        Ok(t.clone())
    }
    async fn by_user(&self, user: &UserId) -> Result<Option<Tenant>, TenantServiceError> {
        let id = self.by_user.lock().unwrap().get(user).copied();
        let found = id.and_then(|id| self.tenants.lock().unwrap().get(&id).cloned());
        // A real answer takes a while: let concurrent requests interleave after the read.
        tokio::task::yield_now().await;
        Ok(found)
    }
    async fn validate_credentials(
        &self,
        _: &CredentialCheck,
    ) -> Result<CredentialVerdict, TenantServiceError> {
        unreachable!("the wizard validates directly with Genesys and Meta")
    }
}

/// Like the sandbox: secrets starting with `invalid` are refused; `hang` switches to never
/// answering. Each call yields once, so concurrent requests interleave.
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

/// A fixed-window counter: enough for "the 6th failure is refused".
#[derive(Default)]
struct FakeLimiter(Mutex<HashMap<String, u32>>);
#[async_trait]
impl RateLimiter for FakeLimiter {
    async fn hit(
        &self,
        key: &str,
        policy: RatePolicy,
        cost: u32,
    ) -> Result<RateDecision, StoreError> {
        let mut map = self.0.lock().unwrap();
        let used = map.entry(key.to_owned()).or_default();
        let allowed = *used + cost <= policy.limit;
        if allowed {
            *used += cost;
        }
        Ok(RateDecision {
            allowed,
            limit: policy.limit,
            remaining: policy.limit.saturating_sub(*used),
            reset_after: policy.window,
        })
    }
}

struct MemSessions {
    map: Mutex<HashMap<SessionKey, Session>>,
    fail_replace: AtomicUsize,
}
#[async_trait]
impl SessionStore for MemSessions {
    async fn create(&self, k: &SessionKey, s: &Session, _: Duration) -> Result<(), StoreError> {
        self.map.lock().unwrap().insert(k.clone(), s.clone());
        Ok(())
    }
    async fn get(&self, k: &SessionKey) -> Result<Option<Session>, StoreError> {
        Ok(self.map.lock().unwrap().get(k).cloned())
    }
    async fn replace(&self, k: &SessionKey, s: &Session, _: Duration) -> Result<bool, StoreError> {
        if self
            .fail_replace
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("injected".into()));
        }
        let mut map = self.map.lock().unwrap();
        match map.get_mut(k) {
            Some(old) => {
                *old = s.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }
    async fn touch(&self, _: &SessionKey, _: OffsetDateTime) -> Result<(), StoreError> {
        Ok(())
    }
    async fn delete(&self, k: &SessionKey) -> Result<(), StoreError> {
        self.map.lock().unwrap().remove(k);
        Ok(())
    }
    async fn delete_all_for_user(&self, _: &UserId) -> Result<Vec<SessionKey>, StoreError> {
        Ok(vec![])
    }
    async fn count_for_user(&self, _: &UserId) -> Result<usize, StoreError> {
        Ok(0)
    }
}

#[derive(Default)]
struct Counters(Mutex<Vec<&'static str>>);
impl Telemetry for Counters {
    fn onboarding_completed(&self, status: &'static str) {
        self.0.lock().unwrap().push(status);
    }
}
impl Counters {
    fn completions(&self, status: &str) -> usize {
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
    clock: Arc<TestClock>,
    store: Arc<MemStore>,
    tenants: Arc<FakeTenants>,
    genesys: Arc<FakeGenesys>,
    whatsapp: Arc<FakeWhatsApp>,
    cipher: Arc<TestCipher>,
    sessions: Arc<MemSessions>,
    telemetry: Arc<Counters>,
    next_session: AtomicUsize,
}

const CLIENT_SECRET: &str = "genesys-client-secret-0001";
const WA_TOKEN: &str = "EAAB-system-user-token-0001";

fn harness() -> H {
    let clock = Arc::new(TestClock(Mutex::new(
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
    )));
    let store = Arc::new(MemStore {
        clock: clock.clone(),
        map: Mutex::default(),
        fail_once: Mutex::default(),
        ttls: Mutex::default(),
    });
    let tenants = Arc::new(FakeTenants::default());
    let genesys = Arc::new(FakeGenesys::default());
    let whatsapp = Arc::new(FakeWhatsApp::default());
    let cipher = Arc::new(TestCipher::default());
    let random = Arc::new(CountingRandom(AtomicUsize::new(1)));
    let sessions = Arc::new(MemSessions {
        map: Mutex::default(),
        fail_replace: AtomicUsize::new(0),
    });
    let telemetry = Arc::new(Counters::default());
    let authenticator = Arc::new(Authenticator::new(
        AuthSettings::new(
            url::Url::parse("https://login.mypurecloud.com/oauth/authorize").unwrap(),
            "portal-client".into(),
            "https://portal.example/api/v1/auth/callback".into(),
        ),
        AuthPorts {
            sessions: sessions.clone(),
            one_time: Arc::new(MockOneTimeStore::new()),
            auth_service: Arc::new(MockAuthService::new()),
            tenants: tenants.clone(),
            bus: Arc::new(MockEventBus::new()),
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
            limiter: Arc::new(FakeLimiter::default()),
            authenticator,
            lock: Arc::new(FakeLock::default()),
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
    }
}

impl H {
    /// A signed-in user's session (stored, so `bind_tenant` finds it).
    fn session(&self, user: &str, role: Role, tenant: Option<TenantId>) -> CurrentSession {
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
        };
        let key = SessionKey::from_hex(format!("{n:064x}"));
        self.sessions
            .map
            .lock()
            .unwrap()
            .insert(key.clone(), session.clone());
        CurrentSession { key, session }
    }

    /// The session as the next request would see it.
    fn reload(&self, s: &CurrentSession) -> CurrentSession {
        CurrentSession {
            key: s.key.clone(),
            session: self.sessions.map.lock().unwrap()[&s.key].clone(),
        }
    }

    fn raw_state(&self, tenant: TenantId) -> Option<(u64, String)> {
        self.store
            .map
            .lock()
            .unwrap()
            .get(&tenant)
            .map(|e| (e.0, e.1.clone()))
    }

    /// Step 1 for a new user; returns the bound session and the tenant.
    async fn started(&self) -> (CurrentSession, TenantId) {
        let s = self.session("new-user", Role::Admin, None);
        let out = self.ob.step1(&s, org()).await.unwrap();
        (self.reload(&s), out.tenant_id)
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

#[tokio::test]
async fn step1_creates_the_tenant_records_the_step_and_binds_the_session() {
    let h = harness();
    let s = h.session("new-user", Role::Admin, None);

    let out = h.ob.step1(&s, org()).await.unwrap();

    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 1);
    assert_eq!(out.progress.current_step(), 1);
    assert_eq!(out.organization.company_name.as_str(), "NewCo Ltd");
    let bound = h.reload(&s);
    assert_eq!(bound.session.tenant_id, Some(out.tenant_id));
    assert!(bound.session.onboarding_only, "not active until completion");
    let status = h.ob.status(&bound, out.tenant_id).await.unwrap();
    assert_eq!(status.progress.completed_steps(), vec![1]);
    assert_eq!(h.store.ttls.lock().unwrap()[0], Duration::from_secs(3600));
}

#[tokio::test]
async fn step1_again_updates_the_same_tenant_and_discards_later_steps() {
    let h = harness();
    let (s, t) = h.configured().await;
    let renamed = organization("NewCo Group", "ops@newco.example");

    let out = h.ob.step1(&s, renamed).await.unwrap();

    assert_eq!(out.tenant_id, t);
    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 1);
    let last = h.tenants.updates.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.company_name.as_deref(), Some("NewCo Group"));
    let status = h.ob.status(&s, t).await.unwrap();
    assert_eq!(status.progress.current_step(), 1);
    assert!(status.progress.genesys().is_none() && status.progress.whatsapp().is_none());
    assert_eq!(status.organization.company_name.as_str(), "NewCo Group");
}

#[tokio::test]
async fn step1_reuses_the_tenant_the_user_already_has_at_the_tenant_service() {
    let h = harness();
    let first = h.session("new-user", Role::Admin, None);
    let t = h.ob.step1(&first, org()).await.unwrap().tenant_id;
    // The state expired and the new login session was never bound.
    h.clock.advance(Duration::from_secs(2 * 3600));
    let second = h.session("new-user", Role::Admin, None);

    let out = h.ob.step1(&second, org()).await.unwrap();

    assert_eq!(out.tenant_id, t);
    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 1);
    assert_eq!(h.reload(&second).session.tenant_id, Some(t));
}

#[tokio::test]
async fn step1_after_a_logout_elsewhere_keeps_the_tenant_for_the_next_login() {
    let h = harness();
    let s = h.session("new-user", Role::Admin, None);
    h.sessions.map.lock().unwrap().remove(&s.key);

    let err = h.ob.step1(&s, org()).await.unwrap_err();

    assert!(matches!(err, OnboardingError::SignedOut));
    let again = h.session("new-user", Role::Admin, None);
    h.ob.step1(&again, org()).await.unwrap();
    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 1);
}

// ---- ordering ---------------------------------------------------------------------------

#[tokio::test]
async fn steps_submitted_out_of_order_are_refused_with_the_current_step() {
    let h = harness();
    let unbound = h.session("someone", Role::Admin, None);
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

#[tokio::test]
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

#[tokio::test]
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

#[tokio::test]
async fn refused_credentials_leave_the_state_unchanged() {
    let h = harness();
    let (s, t) = h.started().await;
    let before = h.raw_state(t);

    let err =
        h.ob.step2(&s, Some(t), genesys("invalid-secret-0001"))
            .await
            .unwrap_err();
    let OnboardingError::Validation { errors } = err else {
        panic!("expected a validation error, got {err:?}")
    };
    assert_eq!(errors[0].field, "clientSecret");
    assert_eq!(h.raw_state(t), before);

    h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
        .await
        .unwrap();
    let before = h.raw_state(t);
    let err =
        h.ob.step3(&s, Some(t), whatsapp("invalid-token-0001"))
            .await
            .unwrap_err();
    assert!(
        matches!(&err, OnboardingError::Validation { errors } if errors[0].field == "systemUserToken")
    );
    assert_eq!(h.raw_state(t), before);
}

#[tokio::test]
async fn step3_records_the_display_number_meta_reports() {
    let h = harness();
    let (s, t) = h.started().await;
    h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
        .await
        .unwrap();

    let out = h.ob.step3(&s, Some(t), whatsapp(WA_TOKEN)).await.unwrap();

    assert_eq!(
        out.progress.whatsapp().unwrap().phone_number.as_deref(),
        Some("+1 555-0100")
    );
    let unknown = whatsapp_for("404", WA_TOKEN);
    let err = h.ob.step3(&s, Some(t), unknown).await.unwrap_err();
    assert!(
        matches!(&err, OnboardingError::Validation { errors } if errors[0].field == "phoneNumberId")
    );
}

#[tokio::test]
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

    let OnboardingError::RateLimited { retry_after } = err else {
        panic!("expected rate limiting, got {err:?}")
    };
    assert_eq!(retry_after, Duration::from_secs(15 * 60));
    assert_eq!(h.genesys.token_calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
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

#[tokio::test]
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

#[tokio::test]
async fn two_tabs_racing_step_1_for_a_new_user_create_one_tenant() {
    let h = harness();
    let tab1 = h.session("new-user", Role::Admin, None);
    let tab2 = h.session("new-user", Role::Admin, None);

    let (a, b) = tokio::join!(h.ob.step1(&tab1, org()), h.ob.step1(&tab2, org()));

    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.tenant_id, b.tenant_id,
        "both tabs work on the same tenant"
    );
    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_state_expires_one_hour_after_its_last_update() {
    let h = harness();
    let (s, t) = h.started().await;
    h.clock.advance(Duration::from_secs(59 * 60));
    h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(59 * 60));
    assert!(
        h.ob.status(&s, t).await.is_ok(),
        "each save restarts the hour"
    );

    h.clock.advance(Duration::from_secs(2 * 60));

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

#[tokio::test]
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

#[tokio::test]
async fn an_agent_of_an_active_tenant_may_not_onboard() {
    let h = harness();
    let agent = h.session("agent", Role::Agent, Some(TenantId::new_random()));

    let err = h.ob.step1(&agent, org()).await.unwrap_err();

    assert!(matches!(err, OnboardingError::Forbidden(_)));
    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 0);
}

// ---- step 4 -----------------------------------------------------------------------------

#[tokio::test]
async fn validate_reports_each_integration_and_records_the_result() {
    let h = harness();
    let (s, t) = h.configured().await;

    let out = h.ob.validate(&s, Some(t)).await.unwrap();

    assert_eq!(out.genesys.status, CheckStatus::Success);
    assert_eq!(out.whatsapp.status, CheckStatus::Success);
    assert_eq!(out.genesys.message, "Connected to Acme Org");
    assert_eq!(out.whatsapp.message, "Connected to +1 555-0100");
    let status = h.ob.status(&s, t).await.unwrap();
    assert_eq!(status.progress.completed_steps(), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn validate_reports_a_failure_of_one_integration_separately() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.whatsapp.refuse.store(true, Ordering::SeqCst);

    let out = h.ob.validate(&s, Some(t)).await.unwrap();

    assert_eq!(out.genesys.status, CheckStatus::Success);
    assert_eq!(out.whatsapp.status, CheckStatus::Failed);
    assert_eq!(h.ob.status(&s, t).await.unwrap().progress.current_step(), 3);
}

#[tokio::test(start_paused = true)]
async fn validate_runs_both_checks_in_parallel_each_under_a_deadline() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.genesys.hang.store(true, Ordering::SeqCst);
    h.whatsapp.hang.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();

    let out = h.ob.validate(&s, Some(t)).await.unwrap();

    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(11),
        "one 10 s deadline for both, not two in a row: {elapsed:?}"
    );
    assert_eq!(out.genesys.status, CheckStatus::Failed);
    assert_eq!(out.whatsapp.status, CheckStatus::Failed);
    assert!(out.whatsapp.message.contains("in time"));
}

// ---- step 5 -----------------------------------------------------------------------------

fn webhook_secret(out: &Completion) -> String {
    out.webhooks.secret.expose_secret().to_owned()
}

#[tokio::test]
async fn complete_activates_the_tenant_and_returns_the_webhook_configuration() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.ob.validate(&s, Some(t)).await.unwrap();

    let out = h.ob.complete(&s, Some(t), &base()).await.unwrap();

    let secret_hex = webhook_secret(&out);
    assert_eq!(secret_hex.len(), 64);
    assert!(secret_hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(out.webhooks.verify_token.expose_secret().len(), 32);
    assert_eq!(
        out.webhooks.genesys_url,
        format!("https://portal.example/webhooks/genesys/{t}")
    );
    assert_eq!(
        out.webhooks.meta_url,
        format!("https://portal.example/webhooks/meta/{t}")
    );
    assert_eq!(out.status, TenantStatus::Active);
    assert!(!format!("{out:?}").contains(&secret_hex), "Debug redacts");

    let update = h.tenants.updates.lock().unwrap().last().cloned().unwrap();
    assert_eq!(update.status, Some(TenantStatus::Active));
    assert_eq!(update.genesys_secret.as_deref(), Some(CLIENT_SECRET));
    assert_eq!(update.whatsapp_token.as_deref(), Some(WA_TOKEN));
    assert_eq!(update.webhook_secret.as_deref(), Some(secret_hex.as_str()));
    let bound = h.reload(&s);
    assert_eq!(bound.session.tenant_id, Some(t));
    assert!(!bound.session.onboarding_only);
    assert_eq!(h.telemetry.completions("success"), 1);
    assert!(matches!(
        h.ob.status(&bound, t).await,
        Err(OnboardingError::NotFound)
    ));
    let receipt = h.store.raw(t).unwrap();
    assert!(!receipt.contains("clientSecret") && !receipt.contains("systemUserToken"));
}

#[tokio::test]
async fn complete_runs_the_validation_itself_when_none_is_recorded() {
    let h = harness();
    let (s, t) = h.configured().await;

    h.ob.complete(&s, Some(t), &base()).await.unwrap();

    assert_eq!(
        h.whatsapp.calls.load(Ordering::SeqCst),
        2,
        "step 3 + step 4"
    );
    assert_eq!(h.telemetry.completions("success"), 1);
}

#[tokio::test]
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
    assert!(
        h.tenants
            .updates
            .lock()
            .unwrap()
            .iter()
            .all(|u| u.status != Some(TenantStatus::Active))
    );
    assert_eq!(h.telemetry.completions("failure"), 1);
    assert_eq!(h.telemetry.completions("success"), 0);
}

/// Completes after one injected failure; returns (first error, retried output).
async fn complete_with_a_failure(
    h: &H,
    s: &CurrentSession,
    t: TenantId,
) -> (OnboardingError, Completion) {
    let err = h.ob.complete(s, Some(t), &base()).await.unwrap_err();
    let out = h.ob.complete(s, Some(t), &base()).await.unwrap();
    (err, out)
}

fn active_updates(h: &H) -> Vec<SeenUpdate> {
    h.tenants
        .updates
        .lock()
        .unwrap()
        .iter()
        .filter(|u| u.status == Some(TenantStatus::Active))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_completion_retried_after_the_tenant_service_failed_returns_the_same_secret() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.tenants.fail_updates.store(1, Ordering::SeqCst);

    let (err, out) = complete_with_a_failure(&h, &s, t).await;

    assert!(matches!(
        err,
        OnboardingError::Unavailable {
            service: "tenantService",
            ..
        }
    ));
    let updates = active_updates(&h);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].webhook_secret, Some(webhook_secret(&out)));
    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 1);
    assert_eq!(h.telemetry.completions("success"), 1);
}

#[tokio::test]
async fn a_completion_retried_after_the_receipt_write_failed_returns_the_same_secret() {
    let h = harness();
    let (s, t) = h.configured().await;
    *h.store.fail_once.lock().unwrap() =
        Some(|st| matches!(st.progress, Progress::Completed { .. }));

    let (err, out) = complete_with_a_failure(&h, &s, t).await;

    assert!(matches!(err, OnboardingError::Store(_)));
    let updates = active_updates(&h);
    assert_eq!(updates.len(), 2, "the idempotent update is repeated");
    assert!(
        updates
            .iter()
            .all(|u| u.webhook_secret == Some(webhook_secret(&out)))
    );
    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 1);
    assert_eq!(h.telemetry.completions("success"), 1);
}

#[tokio::test]
async fn a_completion_retried_after_the_session_bind_failed_returns_the_same_secret() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.sessions.fail_replace.store(1, Ordering::SeqCst);

    let (err, out) = complete_with_a_failure(&h, &s, t).await;

    assert!(matches!(err, OnboardingError::Store(_)));
    let updates = active_updates(&h);
    assert_eq!(updates.len(), 1, "no second update after a completed one");
    assert_eq!(updates[0].webhook_secret, Some(webhook_secret(&out)));
    assert!(!h.reload(&s).session.onboarding_only);
    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 1);
    assert_eq!(h.telemetry.completions("success"), 1);
}

#[tokio::test]
async fn a_completion_retried_after_success_returns_the_same_secret_again() {
    let h = harness();
    let (s, t) = h.configured().await;
    let first = h.ob.complete(&s, Some(t), &base()).await.unwrap();
    let s = h.reload(&s);

    let again = h.ob.complete(&s, Some(t), &base()).await.unwrap();

    assert_eq!(webhook_secret(&first), webhook_secret(&again));
    assert_eq!(
        first.webhooks.verify_token.expose_secret(),
        again.webhooks.verify_token.expose_secret()
    );
    assert_eq!(active_updates(&h).len(), 1);
}

#[tokio::test]
async fn a_completed_wizard_accepts_only_a_new_step1() {
    let h = harness();
    let (s, t) = h.configured().await;
    h.ob.complete(&s, Some(t), &base()).await.unwrap();
    let s = h.reload(&s);

    assert!(matches!(
        h.ob.step2(&s, Some(t), genesys(CLIENT_SECRET)).await,
        Err(OnboardingError::InvalidStep { current: 5 })
    ));
    let out = h.ob.step1(&s, org()).await.unwrap();
    assert_eq!(out.tenant_id, t);
    assert_eq!(h.tenants.creates.load(Ordering::SeqCst), 1);
    assert!(!h.reload(&s).session.onboarding_only, "still active");
}

// ---- secrets ----------------------------------------------------------------------------

#[tokio::test]
async fn the_stored_state_never_holds_a_secret_in_plain_text() {
    let h = harness();
    let (s, t) = h.configured().await;
    // Stop in the `Completing` phase, where the state holds every secret at once.
    h.tenants.fail_updates.store(1, Ordering::SeqCst);
    h.ob.complete(&s, Some(t), &base()).await.unwrap_err();
    let stored = h.store.raw(t).unwrap();
    let webhook_plain = {
        let st: OnboardingState = serde_json::from_str(&stored).unwrap();
        let Progress::Completing { webhooks, .. } = st.progress else {
            panic!("expected the completing phase")
        };
        h.cipher
            .decrypt(
                &webhooks.secret,
                &EncryptionContext::tenant(t, fields::WEBHOOK_SECRET),
            )
            .unwrap()
            .expose_secret()
            .to_owned()
    };

    for plain in [CLIENT_SECRET, WA_TOKEN, webhook_plain.as_str()] {
        assert!(!stored.contains(plain), "plaintext secret in the store");
    }
    assert!(stored.contains("v1.test."));
    let debug = format!("{:?}", genesys(CLIENT_SECRET));
    assert!(!debug.contains(CLIENT_SECRET));
    assert!(!format!("{:?}", whatsapp(WA_TOKEN)).contains(WA_TOKEN));
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_tenant_does_not_decrypt() {
    let h = harness();
    let (_s, t) = h.configured().await;
    let victim_state: OnboardingState = serde_json::from_str(&h.store.raw(t).unwrap()).unwrap();
    let ct = victim_state
        .progress
        .genesys()
        .unwrap()
        .client_secret
        .clone();
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
        ..victim_state
    };
    h.store
        .put_raw(other, serde_json::to_string(&copied).unwrap());
    let attacker = h.session("attacker", Role::Admin, Some(other));
    let calls_before = h.genesys.token_calls.load(Ordering::SeqCst);

    let err = h.ob.validate(&attacker, Some(other)).await.unwrap_err();

    assert!(matches!(
        err,
        OnboardingError::Store(StoreError::Corrupt(_))
    ));
    assert!(!err.to_string().contains(CLIENT_SECRET));
    assert_eq!(h.genesys.token_calls.load(Ordering::SeqCst), calls_before);
}

// ---- inputs and transitions -------------------------------------------------------------

#[test]
fn a_completion_can_only_begin_from_a_passed_validation() {
    let now = OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
    let g = GenesysSetup {
        client_id: "client-id-0001".into(),
        client_secret: Ciphertext("v1.test.0".into()),
        region: Region::UsEast1,
        validated_at: now,
    };
    let w = WhatsAppSetup {
        phone_number_id: "1".into(),
        system_user_token: Ciphertext("v1.test.1".into()),
        phone_number: None,
        validated_at: now,
    };
    let hooks = SealedWebhooks {
        genesys_url: "g".into(),
        meta_url: "m".into(),
        secret: Ciphertext("v1.test.2".into()),
        verify_token: Ciphertext("v1.test.3".into()),
    };
    let result = |status| CheckResult {
        status,
        message: String::new(),
    };
    let failed = Progress::WhatsApp {
        genesys: g.clone(),
        whatsapp: w.clone(),
    }
    .record_validation(ValidationRecord {
        genesys: result(CheckStatus::Success),
        whatsapp: result(CheckStatus::Failed),
        checked_at: now,
    })
    .unwrap();

    assert_eq!(
        failed.begin_completion(hooks.clone(), now),
        Err(StepOutOfOrder { current: 3 })
    );
    assert!(
        Progress::WhatsApp {
            genesys: g,
            whatsapp: w
        }
        .begin_completion(hooks, now)
        .is_err()
    );
    assert_eq!(
        Progress::Organization.finish(UserId::parse("u").unwrap(), now),
        Err(StepOutOfOrder { current: 1 })
    );
}

/// A single-process lock with the port's contract (no expiry needed here).
#[derive(Default)]
struct FakeLock {
    held: Mutex<HashMap<String, String>>,
    next: AtomicUsize,
}
#[async_trait]
impl crate::ports::stores::Lock for FakeLock {
    async fn try_acquire(
        &self,
        name: &str,
        _: Duration,
    ) -> Result<Option<crate::ports::stores::LockToken>, StoreError> {
        let mut held = self.held.lock().unwrap();
        if held.contains_key(name) {
            return Ok(None);
        }
        let token = format!("t{}", self.next.fetch_add(1, Ordering::SeqCst));
        held.insert(name.to_owned(), token.clone());
        Ok(Some(crate::ports::stores::LockToken(token)))
    }
    async fn release(
        &self,
        name: &str,
        token: &crate::ports::stores::LockToken,
    ) -> Result<bool, StoreError> {
        let mut held = self.held.lock().unwrap();
        if held.get(name) == Some(&token.0) {
            held.remove(name);
            return Ok(true);
        }
        Ok(false)
    }
}
