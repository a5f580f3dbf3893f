//! The in-process simulators behind the same [`Guard`] as the HTTP adapters.
//!
//! A simulated downstream is still a downstream: every call to it gets the deadline, the
//! retries (idempotent operations only) and the circuit breaker of that downstream, exactly as
//! [`portal_outbound::Downstream`] gives an HTTP call. So one failing read costs the same
//! attempts whether the State Manager is simulated or remote, and `/health` and the metrics
//! report the same five circuits either way.
//!
//! [`Guarded`] forwards each port method to the simulator through [`Guard::call`], with the
//! operation's name (the HTTP adapter's, so metrics read the same), the HTTP adapter's
//! deadline for it, and whether it is idempotent (the HTTP method the adapter uses: GET and PUT
//! are, POST is not).

use async_trait::async_trait;
use portal_domain::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, DateRange, Message,
    NewTenant, Period, RawMetrics, Region, Tenant, TenantId, TenantUpdate, UserId, UserProfile,
};
use portal_domain::ports::downstream::{
    AuthService, AuthServiceError, CodeExchange, GenesysCloud, GenesysError, GenesysOrganization,
    GenesysToken, PhoneNumberInfo, StateManager, StateManagerError, TenantService,
    TenantServiceError, TokenSet, WhatsApp, WhatsAppError,
};
use portal_domain::secret::SecretString;
use portal_outbound::{Guard, Operation};
use std::sync::Arc;

/// A port served in process, behind its downstream's guard.
pub(crate) struct Guarded<P: ?Sized> {
    inner: Arc<P>,
    guard: Guard,
}

impl<P: ?Sized> Guarded<P> {
    /// `inner` behind `guard`.
    pub(crate) fn new(inner: Arc<P>, guard: Guard) -> Arc<Self> {
        Arc::new(Self { inner, guard })
    }
}

impl<P: ?Sized> std::fmt::Debug for Guarded<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl AuthService for Guarded<dyn AuthService> {
    async fn exchange_code(&self, exchange: CodeExchange) -> Result<TokenSet, AuthServiceError> {
        let t = portal_auth_service::Timeouts::default();
        // A write: attempted once (the code is single use).
        self.guard
            .call(Operation::write("validate_token", t.validate), || {
                self.inner.exchange_code(CodeExchange {
                    code: exchange.code.clone(),
                    code_verifier: exchange.code_verifier.clone(),
                    redirect_uri: exchange.redirect_uri.clone(),
                })
            })
            .await
    }

    async fn profile(&self, access_token: &SecretString) -> Result<UserProfile, AuthServiceError> {
        let t = portal_auth_service::Timeouts::default();
        self.guard
            .call(Operation::read("get_profile", t.profile), || {
                self.inner.profile(access_token)
            })
            .await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, AuthServiceError> {
        let t = portal_auth_service::Timeouts::default();
        self.guard
            .call(Operation::write("refresh_token", t.refresh), || {
                self.inner.refresh(refresh_token)
            })
            .await
    }
}

#[async_trait]
impl TenantService for Guarded<dyn TenantService> {
    async fn create(&self, tenant: &NewTenant) -> Result<Tenant, TenantServiceError> {
        let t = portal_tenant_service::Timeouts::default();
        self.guard
            .call(Operation::write("create_tenant", t.create), || {
                self.inner.create(tenant)
            })
            .await
    }

    async fn update(
        &self,
        id: TenantId,
        update: &TenantUpdate,
    ) -> Result<Tenant, TenantServiceError> {
        let t = portal_tenant_service::Timeouts::default();
        self.guard
            .call(Operation::read("update_tenant", t.update), || {
                self.inner.update(id, update)
            })
            .await
    }

    async fn by_user(&self, user: &UserId) -> Result<Option<Tenant>, TenantServiceError> {
        let t = portal_tenant_service::Timeouts::default();
        self.guard
            .call(Operation::read("get_tenant_by_user", t.get), || {
                self.inner.by_user(user)
            })
            .await
    }
}

#[async_trait]
impl StateManager for Guarded<dyn StateManager> {
    async fn conversations(
        &self,
        tenant: TenantId,
        query: ConversationQuery,
    ) -> Result<ConversationPage, StateManagerError> {
        let t = portal_state_manager::Timeouts::default();
        self.guard
            .call(
                Operation::read("get_conversations", t.conversations),
                || self.inner.conversations(tenant, query),
            )
            .await
    }

    async fn conversation(&self, id: ConversationId) -> Result<Conversation, StateManagerError> {
        let t = portal_state_manager::Timeouts::default();
        self.guard
            .call(Operation::read("get_conversation", t.conversations), || {
                self.inner.conversation(id)
            })
            .await
    }

    async fn messages(&self, id: ConversationId) -> Result<Vec<Message>, StateManagerError> {
        let t = portal_state_manager::Timeouts::default();
        self.guard
            .call(Operation::read("get_messages", t.messages), || {
                self.inner.messages(id)
            })
            .await
    }

    async fn metrics(
        &self,
        tenant: TenantId,
        period: Period,
    ) -> Result<RawMetrics, StateManagerError> {
        let t = portal_state_manager::Timeouts::default();
        self.guard
            .call(Operation::read("get_metrics", t.metrics), || {
                self.inner.metrics(tenant, period)
            })
            .await
    }

    async fn metrics_range(
        &self,
        tenant: TenantId,
        range: DateRange,
    ) -> Result<RawMetrics, StateManagerError> {
        let t = portal_state_manager::Timeouts::default();
        self.guard
            .call(Operation::read("get_metrics_range", t.metrics), || {
                self.inner.metrics_range(tenant, range)
            })
            .await
    }
}

#[async_trait]
impl GenesysCloud for Guarded<dyn GenesysCloud> {
    async fn client_credentials(
        &self,
        region: Region,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<GenesysToken, GenesysError> {
        let t = portal_genesys::Timeouts::default();
        self.guard
            .call(Operation::write("client_credentials", t.token), || {
                self.inner
                    .client_credentials(region, client_id, client_secret)
            })
            .await
    }

    async fn organization(
        &self,
        region: Region,
        token: &SecretString,
    ) -> Result<GenesysOrganization, GenesysError> {
        let t = portal_genesys::Timeouts::default();
        self.guard
            .call(Operation::read("get_organization", t.organization), || {
                self.inner.organization(region, token)
            })
            .await
    }
}

#[async_trait]
impl WhatsApp for Guarded<dyn WhatsApp> {
    async fn phone_number(
        &self,
        phone_number_id: &str,
        token: &SecretString,
    ) -> Result<PhoneNumberInfo, WhatsAppError> {
        self.guard
            .call(
                Operation::read("get_phone_number", portal_whatsapp::DEFAULT_TIMEOUT),
                || self.inner.phone_number(phone_number_id, token),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::DownstreamFailure;
    use portal_domain::cache_aside::ReadPorts;
    use portal_domain::dashboard::{Dashboard, DashboardError};
    use portal_domain::ports::system::{CircuitState, NoopTelemetry, SystemClock};
    use portal_domain::resilience::BreakerConfig;
    use portal_memory::{MemoryCache, MemoryLock};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    /// A simulated State Manager whose metrics calls are counted and fail while `down`.
    #[derive(Default)]
    struct Flaky {
        calls: AtomicUsize,
        down: AtomicBool,
    }

    #[async_trait]
    impl StateManager for Flaky {
        async fn conversations(
            &self,
            _: TenantId,
            _: ConversationQuery,
        ) -> Result<ConversationPage, StateManagerError> {
            Err(StateManagerError::NotFound)
        }
        async fn conversation(&self, _: ConversationId) -> Result<Conversation, StateManagerError> {
            Err(StateManagerError::NotFound)
        }
        async fn messages(&self, _: ConversationId) -> Result<Vec<Message>, StateManagerError> {
            Err(StateManagerError::NotFound)
        }
        async fn metrics(&self, _: TenantId, _: Period) -> Result<RawMetrics, StateManagerError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) as u64;
            if self.down.load(Ordering::SeqCst) {
                return Err(DownstreamFailure::Unavailable { status: Some(503) }.into());
            }
            Ok(RawMetrics {
                total_messages: 100 + n,
                delivered: 90,
                ..RawMetrics::default()
            })
        }
        async fn metrics_range(
            &self,
            _: TenantId,
            _: DateRange,
        ) -> Result<RawMetrics, StateManagerError> {
            Err(StateManagerError::NotFound)
        }
    }

    /// An admin of `tenant`, who may refresh its dashboard.
    fn admin(tenant: TenantId) -> portal_domain::auth::CurrentSession {
        let t0 = time::OffsetDateTime::UNIX_EPOCH;
        portal_domain::auth::CurrentSession::new(
            portal_domain::model::SessionKey::from_hex("0".repeat(64)),
            portal_domain::model::Session {
                user_id: portal_domain::model::UserId::parse("admin").unwrap(),
                tenant_id: Some(tenant),
                role: portal_domain::model::Role::Admin,
                email: portal_domain::model::Email::parse("admin@example.com").unwrap(),
                name: "Admin".into(),
                onboarding_only: false,
                created_at: t0,
                expires_at: t0,
                last_activity: t0,
                refresh_token: None,
                refreshed_at: None,
                client: Default::default(),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_under_the_dashboard_which_serves_stale_figures_then_recovers() {
        let flaky = Arc::new(Flaky::default());
        let guard = Guard::new(
            "stateManager",
            BreakerConfig {
                minimum_calls: 3,
                ..BreakerConfig::default()
            },
            Arc::new(NoopTelemetry),
        );
        let breaker = guard.breaker().clone();
        let state_manager: Arc<dyn StateManager> =
            Guarded::new(flaky.clone() as Arc<dyn StateManager>, guard);
        let dashboard = Dashboard::new(ReadPorts {
            state_manager,
            cache: Arc::new(MemoryCache::new()),
            lock: Arc::new(MemoryLock::new()),
            clock: Arc::new(SystemClock),
            telemetry: Arc::new(NoopTelemetry),
            auditor: portal_domain::audit::Auditor::start(
                portal_domain::audit::AuditPorts {
                    log: Arc::new(portal_memory::MemoryAuditLog::new()),
                    clock: Arc::new(SystemClock),
                    random: Arc::new(portal_crypto::SystemRandom::new()),
                    telemetry: Arc::new(NoopTelemetry),
                },
                portal_domain::audit::AuditKey::new(b"guarded-test-audit-key-0123456789"),
                portal_domain::audit::AuditSettings::default(),
            ),
        });
        let tenant = TenantId::new_random();
        let admin = admin(tenant);
        let known = dashboard.stats(tenant, Period::Today).await.unwrap();
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);

        // The State Manager goes down; the cached figures are made stale. The guard retries
        // the read until the breaker opens (2 failures in 3 calls), then stops calling.
        flaky.down.store(true, Ordering::SeqCst);
        dashboard.refresh(&admin, tenant).await.unwrap();
        let view = dashboard.stats(tenant, Period::Today).await.unwrap();
        assert!(view.stale);
        assert_eq!(view.stats, known.stats);
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
        assert_eq!(breaker.state(), CircuitState::Open);

        // Open: no call is made; stale figures where known, 503 elsewhere.
        dashboard.refresh(&admin, tenant).await.unwrap();
        assert!(dashboard.stats(tenant, Period::Today).await.unwrap().stale);
        assert_eq!(
            dashboard.stats(tenant, Period::Month).await.unwrap_err(),
            DashboardError::Unavailable(DownstreamFailure::CircuitOpen)
        );
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);

        // After the open period a probe goes through, succeeds and closes the circuit.
        flaky.down.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        let view = dashboard.stats(tenant, Period::Today).await.unwrap();
        assert!(!view.stale);
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 4);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }
}
