//! The simulated platform's shared state and the [`Platform`] that hands out every simulator.

use crate::auth::SimAuthService;
use crate::credentials::{SimGenesys, SimWhatsApp};
use crate::delivery::SimDelivery;
use crate::demo::{self, DemoConversation, DemoUser};
use crate::state_manager::SimStateManager;
use crate::tenant::SimTenantService;
use portal_domain::model::{ConversationId, Email, Tenant, TenantId, UserId};
use portal_domain::ports::downstream::{
    AuthService, GenesysCloud, StateManager, TenantService, WhatsApp,
};
use portal_domain::ports::stores::{EventBus, OutboundQueue};
use portal_domain::ports::system::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use time::OffsetDateTime;

/// What the Tenant Service keeps besides the [`Tenant`] it returns (never a secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRecord {
    /// Who created the tenant through onboarding, if anyone.
    pub created_by: Option<UserId>,
    /// Genesys client ID, once configured.
    pub genesys_client_id: Option<String>,
    /// Meta phone number ID, once configured.
    pub whatsapp_phone_number_id: Option<String>,
    /// Display phone number Meta reported.
    pub phone_number: Option<String>,
    /// Genesys webhook URL, once onboarding completed.
    pub(crate) genesys_webhook_url: Option<String>,
    /// Meta webhook URL, once onboarding completed.
    pub(crate) meta_webhook_url: Option<String>,
    /// Who completed onboarding.
    pub onboarded_by: Option<UserId>,
    /// When onboarding completed.
    pub onboarded_at: Option<OffsetDateTime>,
}

/// A code the login page issued, waiting for its exchange.
#[derive(Debug, Clone)]
pub(crate) struct IssuedCode {
    pub(crate) user: UserId,
    pub(crate) code_challenge: String,
    pub(crate) redirect_uri: String,
    pub(crate) expires_at: OffsetDateTime,
}

/// Everything the simulators share, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) users: HashMap<UserId, DemoUser>,
    /// The Tenant Service's user → tenant links (the authority for `by_user`).
    pub(crate) user_tenant: HashMap<UserId, TenantId>,
    pub(crate) tenants: HashMap<TenantId, (Tenant, TenantRecord)>,
    pub(crate) conversations: HashMap<ConversationId, DemoConversation>,
    /// Authorization codes by the SHA-256 of the code (the code itself is never stored).
    pub(crate) codes: HashMap<String, IssuedCode>,
    /// Refresh tokens rotated out, by SHA-256, until they expire (the tokens themselves are
    /// signed, not stored).
    pub(crate) spent_refresh: HashMap<String, OffsetDateTime>,
    /// Outbound queue entry IDs by message ID, so a repeated enqueue is not sent twice.
    pub(crate) outbound_entries: HashMap<String, String>,
    /// Sequence number of the last outbound queue entry.
    pub(crate) outbound_seq: u64,
}

/// The state every simulator shares: one lock, one clock.
pub struct SimState {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState").finish_non_exhaustive()
    }
}

impl SimState {
    /// State seeded with the demo data, generated relative to `clock.now()`.
    pub fn demo(clock: Arc<dyn Clock>) -> Self {
        let data = demo::generate(clock.now());
        let mut inner = Inner::default();
        for user in data.users {
            if let Some(t) = user.tenant {
                inner.user_tenant.insert(user.id.clone(), t);
            }
            inner.users.insert(user.id.clone(), user);
        }
        for tenant in data.tenants {
            inner
                .tenants
                .insert(tenant.id, (tenant, TenantRecord::default()));
        }
        for c in data.conversations {
            inner.conversations.insert(c.conversation.id, c);
        }
        Self {
            clock,
            inner: Mutex::new(inner),
        }
    }

    /// Now, by the simulator's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The lock. A poisoned lock is recovered: the simulators never leave the state half-written.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The demo user with this e-mail, if any.
    pub(crate) fn user_by_email(&self, email: &str) -> Option<DemoUser> {
        let email = Email::parse(email.trim().to_ascii_lowercase()).ok()?;
        self.lock()
            .users
            .values()
            .find(|u| u.email == email)
            .cloned()
    }

    /// The tenant record (non-secret configuration) of a tenant, for inspection and tests.
    pub fn tenant_record(&self, id: TenantId) -> Option<TenantRecord> {
        self.lock().tenants.get(&id).map(|(_, r)| r.clone())
    }
}

/// The whole simulated platform: one shared state and every simulator over it.
#[derive(Debug, Clone)]
pub struct Platform {
    state: Arc<SimState>,
    auth: Arc<SimAuthService>,
}

impl Platform {
    /// The demo platform (decisions §3), with data generated relative to `clock.now()`.
    pub fn demo(clock: Arc<dyn Clock>) -> Self {
        let state = Arc::new(SimState::demo(clock));
        Self {
            auth: Arc::new(SimAuthService::new(state.clone())),
            state,
        }
    }

    /// The shared state.
    pub fn state(&self) -> Arc<SimState> {
        self.state.clone()
    }

    /// The simulated Auth Service, concretely (the login page issues codes through it).
    pub fn auth(&self) -> Arc<SimAuthService> {
        self.auth.clone()
    }

    /// The simulated Auth Service as a port.
    pub fn auth_service(&self) -> Arc<dyn AuthService> {
        self.auth.clone()
    }

    /// The simulated Tenant Service.
    pub fn tenant_service(&self) -> Arc<dyn TenantService> {
        Arc::new(SimTenantService::new(self.state.clone()))
    }

    /// The simulated State Manager.
    pub fn state_manager(&self) -> Arc<dyn StateManager> {
        Arc::new(SimStateManager::new(self.state.clone()))
    }

    /// The simulated Genesys Cloud public API.
    pub fn genesys(&self) -> Arc<dyn GenesysCloud> {
        Arc::new(SimGenesys::new())
    }

    /// The simulated Meta WhatsApp Cloud API.
    pub fn whatsapp(&self) -> Arc<dyn WhatsApp> {
        Arc::new(SimWhatsApp::new())
    }

    /// The simulated outbound delivery, publishing its events on `bus`.
    pub fn delivery(&self, bus: Arc<dyn EventBus>) -> Arc<dyn OutboundQueue> {
        Arc::new(SimDelivery::new(self.state.clone(), bus))
    }
}
