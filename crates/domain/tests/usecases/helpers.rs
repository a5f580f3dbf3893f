//! What the use-case tests share: small fakes of the downstream ports that have no in-memory
//! adapter (the stores and the test clock, `ManualClock`, come from `portal-memory`).

use async_trait::async_trait;
use portal_domain::audit::{AuditKey, AuditPorts, AuditSettings, Auditor};
use portal_domain::auth::CurrentSession;
use portal_domain::crypto::pkce_challenge;
use portal_domain::error::DownstreamFailure;
use portal_domain::model::{
    Email, NewTenant, Region, Role, Tenant, TenantId, TenantStatus, TenantUpdate, UserId,
    UserProfile,
};
use portal_domain::model::{Session, SessionKey};
use portal_domain::ports::StorePorts;
use portal_domain::ports::downstream::{
    AuthService, AuthServiceError, CodeExchange, TenantService, TenantServiceError, TokenSet,
};
use portal_domain::ports::system::{Clock, NoopTelemetry};
use portal_domain::secret::{ExposeSecret, SecretString, secret};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::OffsetDateTime;

/// The Auth Service: codes are issued for a user with the challenge from the authorize URL and
/// work once; the profile's user is the e-mail's local part, its role the part's first word.
/// Refresh tokens rotate: each refresh spends the token it was given (a spent one is refused,
/// as a rotating Auth Service does) and hands out a new one.
#[derive(Default)]
pub(crate) struct FakeAuth {
    pub codes: Mutex<HashMap<String, (String, String)>>,
    /// The profile call times out.
    pub fail_profile: bool,
    /// How long a refresh takes (on tokio's clock).
    pub refresh_delay: std::time::Duration,
    /// Refresh calls made.
    pub refreshes: AtomicUsize,
    pub spent: Mutex<std::collections::HashSet<String>>,
}

impl FakeAuth {
    /// A code for `email` that works once with the verifier of `challenge`.
    pub(crate) fn issue(&self, code: &str, email: &str, challenge: &str) {
        self.codes
            .lock()
            .unwrap()
            .insert(code.into(), (email.into(), challenge.into()));
    }
}

#[async_trait]
impl AuthService for FakeAuth {
    async fn exchange_code(&self, x: CodeExchange) -> Result<TokenSet, AuthServiceError> {
        let (email, challenge) = self
            .codes
            .lock()
            .unwrap()
            .remove(x.code.expose_secret())
            .ok_or(AuthServiceError::InvalidGrant)?;
        if pkce_challenge(x.code_verifier.expose_secret()) != challenge {
            return Err(AuthServiceError::InvalidGrant);
        }
        Ok(TokenSet {
            access_token: secret(format!("at:{email}")),
            refresh_token: Some(secret(format!("rt:{email}"))),
            expires_at: OffsetDateTime::now_utc() + time::Duration::hours(1),
        })
    }
    async fn profile(&self, token: &SecretString) -> Result<UserProfile, AuthServiceError> {
        if self.fail_profile {
            return Err(DownstreamFailure::Timeout.into());
        }
        let email = token
            .expose_secret()
            .strip_prefix("at:")
            .ok_or(AuthServiceError::Unauthorized)?;
        let (user, _domain) = email
            .split_once('@')
            .ok_or(AuthServiceError::Unauthorized)?;
        Ok(UserProfile {
            user_id: UserId::parse(user).unwrap(),
            email: Email::parse(email).unwrap(),
            name: user.into(),
            tenant_id: None,
            role: user
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap_or(Role::Agent),
        })
    }
    async fn refresh(&self, token: &SecretString) -> Result<TokenSet, AuthServiceError> {
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.refresh_delay).await;
        let token = token.expose_secret();
        let email = token
            .strip_prefix("rt:")
            .and_then(|rest| rest.split('#').next())
            .ok_or(AuthServiceError::InvalidGrant)?
            .to_owned();
        if !self.spent.lock().unwrap().insert(token.to_owned()) {
            return Err(AuthServiceError::InvalidGrant);
        }
        Ok(TokenSet {
            access_token: secret(format!("at:{email}")),
            refresh_token: Some(secret(format!("rt:{email}#{n}"))),
            expires_at: OffsetDateTime::now_utc() + time::Duration::hours(1),
        })
    }
}

/// What the Tenant Service received in an update (secrets exposed for comparison).
#[derive(Debug, Clone)]
pub(crate) struct SeenUpdate {
    pub status: Option<TenantStatus>,
    pub company_name: Option<String>,
    pub genesys_secret: Option<String>,
    pub whatsapp_token: Option<String>,
    pub webhook_secret: Option<String>,
}

/// The Tenant Service: tenants by ID and by the user linked to them; counts creations, records
/// updates, and can fail the next updates. Each `by_user` yields once, so concurrent requests
/// interleave after the read, as over a network.
#[derive(Default)]
pub(crate) struct FakeTenants {
    tenants: Mutex<HashMap<TenantId, Tenant>>,
    by_user: Mutex<HashMap<UserId, TenantId>>,
    pub creates: AtomicUsize,
    pub updates: Mutex<Vec<SeenUpdate>>,
    /// How many of the next updates fail (503).
    pub fail_updates: AtomicUsize,
}

impl FakeTenants {
    /// A tenant in `status`, linked to each of `users`.
    pub(crate) fn add(&self, status: TenantStatus, users: &[&str]) -> TenantId {
        let tenant = Tenant {
            id: TenantId::new_random(),
            company_name: "Acme Corp".into(),
            region: Region::UsEast1,
            contact_email: None,
            status,
        };
        let id = tenant.id;
        self.tenants.lock().unwrap().insert(id, tenant);
        for user in users {
            self.by_user
                .lock()
                .unwrap()
                .insert(UserId::parse(*user).unwrap(), id);
        }
        id
    }

    /// The updates that activated the tenant.
    pub(crate) fn activations(&self) -> Vec<SeenUpdate> {
        self.updates
            .lock()
            .unwrap()
            .iter()
            .filter(|u| u.status == Some(TenantStatus::Active))
            .cloned()
            .collect()
    }
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
        tokio::task::yield_now().await;
        Ok(found)
    }
}

/// An auditor writing to the stores' in-memory trails.
pub(crate) fn auditor(stores: &StorePorts, clock: Arc<dyn Clock>) -> Arc<Auditor> {
    Auditor::start(
        AuditPorts {
            log: stores.audit.clone(),
            clock,
            random: Arc::new(portal_crypto::SystemRandom::new()),
            telemetry: Arc::new(NoopTelemetry),
        },
        AuditKey::new(b"usecase-test-audit-key-0123456789"),
        AuditSettings::default(),
    )
}

/// A signed-in session of `user` (no request context), as a use case receives it.
pub(crate) fn signed_in(user: &str, role: Role, tenant: Option<TenantId>) -> CurrentSession {
    let now = OffsetDateTime::now_utc();
    CurrentSession::new(
        SessionKey::from_hex(portal_domain::crypto::sha256_hex(user.as_bytes())),
        Session {
            user_id: UserId::parse(user).unwrap(),
            tenant_id: tenant,
            role,
            email: Email::parse(format!("{user}@example.com")).unwrap(),
            name: user.into(),
            onboarding_only: false,
            created_at: now,
            expires_at: now + time::Duration::hours(24),
            last_activity: now,
            refresh_token: None,
            refreshed_at: None,
            client: Default::default(),
        },
    )
}
