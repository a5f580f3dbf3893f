//! Wiring: settings → adapters → use cases → HTTP server.

use crate::configuration::Settings;
use actix_web::cookie::Key;
use actix_web::dev::Server;
use actix_web::web;
use anyhow::Context;
use portal_api::{AppState, WebSettings};
use portal_domain::auth::{AuthPorts, AuthSettings, Authenticator};
use portal_domain::dashboard::Dashboard;
use portal_domain::history::History;
use portal_domain::ports::downstream::StateManager;
use portal_domain::ports::stores::OutboundQueue;
use portal_domain::ports::system::{Clock, Random, RandomExt, SystemClock};
use portal_domain::ports::system::{NoopTelemetry, Telemetry};
use portal_domain::resilience::CircuitBreaker;
use portal_domain::secret::ExposeSecret;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Client ID the simulated Genesys login accepts in the embedded default.
pub const SANDBOX_CLIENT_ID: &str = "agent-portal-sandbox";
/// Where the simulated Genesys login is mounted in the embedded default.
pub const SANDBOX_LOGIN_PATH: &str = "/_sandbox/genesys";

/// What tests (and later issues) may substitute when building the application.
#[derive(Clone, Default)]
pub struct Overrides {
    /// The clock (default: the system clock). Tests advance time past a session's expiry.
    pub clock: Option<Arc<dyn Clock>>,
    /// Extra routes (test-only endpoints).
    pub routes: Vec<portal_api::state::RouteRegistrar>,
    /// Wraps the State Manager port (tests and the benchmark count or break its calls).
    pub wrap_state_manager: Option<WrapStateManager>,
    /// Wraps the store ports (the benchmark counts store round trips).
    pub wrap_stores: Option<WrapStores>,
    /// Wraps the outbound queue widget sends go to (tests break it).
    pub wrap_outbound: Option<WrapOutbound>,
}

/// See [`Overrides::wrap_state_manager`].
pub type WrapStateManager =
    Arc<dyn Fn(Arc<dyn StateManager>) -> Arc<dyn StateManager> + Send + Sync>;
/// See [`Overrides::wrap_stores`].
pub type WrapStores = Arc<dyn Fn(crate::stores::Stores) -> crate::stores::Stores + Send + Sync>;
/// See [`Overrides::wrap_outbound`].
pub type WrapOutbound = Arc<dyn Fn(Arc<dyn OutboundQueue>) -> Arc<dyn OutboundQueue> + Send + Sync>;

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("clock", &self.clock.is_some())
            .field("routes", &self.routes.len())
            .finish()
    }
}

/// The running application: bound, not yet serving until [`Application::run_until_stopped`].
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    /// The WebSocket hub, the widget and the bus (closed at shutdown; tests publish on it).
    realtime: crate::realtime::Realtime,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Issue 4: the dashboard and history use cases over the cache and lock stores, with one
/// circuit breaker for the State Manager, and a background task applying the instance's
/// event-bus subscription to the caches (spec §13.1: a tenant's status events clear its
/// metrics and conversation pages).
///
/// Cache lookups and the breaker's state changes go to `telemetry`; the breaker is returned
/// for `/health`'s `circuits`.
async fn dashboard_and_history(
    settings: &Settings,
    stores: &crate::stores::Stores,
    state_manager: Arc<dyn StateManager>,
    state_manager_is_http: bool,
    overrides: &Overrides,
    clock: &Arc<dyn Clock>,
    telemetry: &Arc<dyn Telemetry>,
) -> (Arc<Dashboard>, Arc<History>, Arc<CircuitBreaker>) {
    let telemetry = telemetry.clone();
    let state_manager = match &overrides.wrap_state_manager {
        Some(wrap) => wrap(state_manager),
        None => state_manager,
    };
    let breaker = Arc::new(CircuitBreaker::new(
        "state_manager",
        settings.state_manager_breaker(),
        telemetry.clone(),
    ));
    // One retry layer: the HTTP adapter already retries its idempotent GETs (full jitter,
    // `portal-outbound`), so the use cases then make one attempt each; retrying at both
    // levels would multiply the calls an outage costs (3 × 3).
    let config = |fresh_for, timeout| {
        let mut config = portal_domain::cache_aside::CacheAsideConfig::new(fresh_for, timeout);
        if state_manager_is_http {
            config.retry.attempts = 1;
        }
        config
    };
    let ports = portal_domain::cache_aside::ReadPorts {
        state_manager,
        cache: stores.cache.clone(),
        lock: stores.lock.clone(),
        breaker: breaker.clone(),
        clock: clock.clone(),
        telemetry,
    };
    let dashboard = Arc::new(Dashboard::with_config(
        ports.clone(),
        config(
            portal_domain::dashboard::METRICS_FRESH_FOR,
            portal_domain::dashboard::METRICS_TIMEOUT,
        ),
    ));
    let history = Arc::new(History::with_config(
        ports,
        config(
            portal_domain::history::CONVERSATIONS_FRESH_FOR,
            portal_domain::history::CONVERSATIONS_TIMEOUT,
        ),
    ));
    match stores.event_bus.subscribe().await {
        Ok(events) => {
            let invalidation = dashboard.invalidation();
            tokio::spawn(async move { invalidation.run(events).await });
        }
        // Entries still expire with their TTL, and refresh still works.
        Err(e) => {
            tracing::error!(error = %e, "no event subscription: caches are not invalidated by events")
        }
    }
    (dashboard, history, breaker)
}

impl Application {
    /// Builds the application from settings.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Overrides::default()).await
    }

    /// Builds with substitutes (tests).
    pub async fn build_with(settings: Settings, overrides: Overrides) -> anyhow::Result<Self> {
        // rustls's ring provider, before any TLS client (HTTP adapters, Redis) is built.
        portal_outbound::install_crypto_provider();

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("cannot bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        // The simulated Genesys login only makes sense with the simulated Auth Service (it
        // issues the codes that service exchanges).
        let simulated_auth = settings.auth_service_url.is_none();

        let clock: Arc<dyn Clock> = overrides
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock));
        let random: Arc<dyn Random> = Arc::new(portal_crypto::SystemRandom::new());

        // Secrets: configured, or generated for this process (embedded default).
        // The key ring: ENCRYPTION_KEY under ENCRYPTION_KEY_ID, plus ENCRYPTION_PREVIOUS_KEYS.
        let cipher = match settings.cipher()? {
            Some(cipher) => cipher,
            None => portal_crypto::AesGcmCipher::ephemeral(random.as_ref()),
        };
        let cipher = Arc::new(cipher);
        let cookie_secret = match &settings.cookie_secret {
            Some(s) => s.expose_secret().to_owned(),
            None => random.hex_token::<32>().expose_secret().to_owned(),
        };
        if cookie_secret.len() < 32 {
            anyhow::bail!("COOKIE_SECRET: must be at least 32 characters");
        }
        let cookie_key = Key::derive_from(cookie_secret.as_bytes());

        let base_url = match &settings.base_url {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => format!("http://{}:{port}", settings.host),
        };
        let redirect_uri = settings
            .genesys_redirect_uri
            .clone()
            .unwrap_or_else(|| format!("{base_url}/api/v1/auth/callback"));
        let client_id = settings
            .genesys_client_id
            .clone()
            .unwrap_or_else(|| SANDBOX_CLIENT_ID.to_owned());
        let login_base = match (&settings.genesys_login_base_url, simulated_auth) {
            (Some(b), _) => b.trim_end_matches('/').to_owned(),
            (None, true) => format!("{base_url}{SANDBOX_LOGIN_PATH}"),
            (None, false) => settings.region().login_base_url(),
        };
        let authorize_url = Url::parse(&format!("{login_base}/oauth/authorize"))
            .context("GENESYS_LOGIN_BASE_URL")?;
        let frontend_url = Url::parse(&settings.frontend_url).context("FRONTEND_URL")?;

        // Stores: Redis when configured (crate::stores), in memory otherwise.
        let stores = crate::stores::Stores::from_settings(&settings).await?;
        let stores = match &overrides.wrap_stores {
            Some(wrap) => wrap(stores),
            None => stores,
        };
        let platform = portal_sandbox::Platform::demo(clock.clone());
        // Issue 8: the Prometheus recorder (`/metrics`), or nothing with METRICS_ENABLED=false.
        let prometheus = settings
            .metrics_enabled
            .then(|| Arc::new(crate::observability::recorder(&stores)));
        let telemetry: Arc<dyn Telemetry> = match &prometheus {
            Some(p) => p.clone(),
            None => Arc::new(NoopTelemetry),
        };
        // Issue 7: HTTP adapters where URLs are configured, the simulators elsewhere.
        let downstreams = crate::downstreams::Downstreams::build(
            &settings.downstream_urls(),
            &platform,
            settings.state_manager_breaker(),
            telemetry.clone(),
        )?;
        if !downstreams.http.is_empty() {
            tracing::info!(http = ?downstreams.http, "downstreams over HTTP (the rest simulated)");
        }
        let (dashboard, history, use_case_breaker) = dashboard_and_history(
            &settings,
            &stores,
            downstreams.state_manager.clone(),
            downstreams.state_manager_is_http(),
            &overrides,
            &clock,
            &telemetry,
        )
        .await;
        let mut auth_settings = AuthSettings::new(authorize_url, client_id.clone(), redirect_uri);
        auth_settings.session_ttl = Duration::from_secs(settings.session_ttl_secs);
        let authenticator = Arc::new(Authenticator::new(
            auth_settings,
            AuthPorts {
                sessions: stores.sessions.clone(),
                one_time: stores.one_time.clone(),
                auth_service: downstreams.auth_service.clone(),
                tenants: downstreams.tenant_service.clone(),
                bus: stores.event_bus.clone(),
                cipher: cipher.clone(),
                random: random.clone(),
                clock: clock.clone(),
            },
            cookie_secret.as_bytes(),
        ));

        // Issue 3: the onboarding wizard over the simulated Tenant Service, Genesys and Meta.
        let onboarding = Arc::new(portal_domain::onboarding::Onboarding::new(
            portal_domain::onboarding::OnboardingPorts {
                store: stores.onboarding.clone(),
                tenants: downstreams.tenant_service.clone(),
                genesys: downstreams.genesys.clone(),
                whatsapp: downstreams.whatsapp.clone(),
                cipher: cipher.clone(),
                random: random.clone(),
                clock: clock.clone(),
                telemetry: telemetry.clone(),
                limiter: stores.rate_limiter.clone(),
                authenticator: authenticator.clone(),
                lock: stores.lock.clone(),
            },
            portal_domain::onboarding::OnboardingSettings {
                state_ttl: Duration::from_secs(settings.onboarding_state_ttl_secs),
                failed_attempts: settings.rate_limits().onboarding,
                ..Default::default()
            },
        ));
        let public_url = Url::parse(&base_url).context("BASE_URL")?;

        // The widget uses the wired State Manager; delivery is simulated only while the State
        // Manager is (else the outbound queue of the stores: the Redis Stream).
        let widget_ports = crate::realtime::WidgetPorts {
            state_manager: downstreams.state_manager.clone(),
            queue: {
                let queue = crate::realtime::outbound_queue(
                    downstreams.state_manager_is_http(),
                    stores.outbound.clone(),
                    &platform,
                    stores.event_bus.clone(),
                );
                match &overrides.wrap_outbound {
                    Some(wrap) => wrap(queue),
                    None => queue,
                }
            },
            idempotency: stores.idempotency.clone(),
        };
        let realtime = crate::realtime::Realtime::wire(
            &settings,
            stores.event_bus.clone(),
            widget_ports,
            random.clone(),
            clock.clone(),
        )
        .await;

        let mut web_settings = WebSettings::new(frontend_url, cookie_key);
        // Secure by default in production and behind https; plain-HTTP local use may go without.
        web_settings.secure_cookies = settings
            .cookie_secure
            .unwrap_or(settings.is_production() || base_url.starts_with("https://"));
        let secure_cookies = web_settings.secure_cookies;
        web_settings.cookie_domain = settings.cookie_domain.clone();
        web_settings.trusted_proxies = settings.proxies();
        web_settings.body_limit = settings.body_limit_bytes;
        web_settings.workers = settings.workers;

        // Set at the end of `build`: `/readyz` says 503 until then.
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sim_auth = platform.auth();
        let mut builder = AppState::builder(
            authenticator.clone(),
            stores.rate_limiter.clone(),
            web_settings,
        )
        .limits(settings.rate_limits())
        .onboarding(onboarding, public_url)
        .widget(realtime.widget.clone())
        .realtime(realtime.hub.clone(), realtime.settings.clone())
        .dashboard(dashboard)
        .history(history)
        .probe(stores.probe.clone())
        .telemetry(telemetry.clone())
        .circuit(use_case_breaker.clone())
        .readiness(ready.clone())
        .request_scope(crate::telemetry::request_scope)
        .routes(move |cfg| {
            // The simulated Genesys login only with the simulated Auth Service (the only one
            // that accepts its codes): never mounted in production.
            if !simulated_auth {
                return;
            }
            let auth = sim_auth.clone();
            let client_id = client_id.clone();
            cfg.service(
                web::scope(SANDBOX_LOGIN_PATH)
                    .configure(move |c| portal_sandbox::genesys_login(c, auth, client_id)),
            );
        });
        for b in &downstreams.breakers {
            builder = builder.circuit(b.clone());
        }
        for p in &downstreams.probes {
            builder = builder.probe(p.clone());
        }
        for r in overrides.routes {
            builder = builder.routes(move |cfg| r(cfg));
        }
        let state = builder.build();

        if downstreams.state_manager_is_http() && !stores.is_redis() {
            tracing::warn!(
                "STATE_MANAGER_URL is set without Redis: widget sends go to an in-memory \
                 outbound queue that no other service reads, so they are never delivered; \
                 set REDIS_URL (the platform reads the Stream outbound.message)"
            );
        }
        let ephemeral_secrets =
            settings.encryption_key.is_none() || settings.cookie_secret.is_none();
        if simulated_auth || ephemeral_secrets || !stores.is_redis() || !secure_cookies {
            tracing::warn!(
                address = %format!("{}:{port}", settings.host),
                stores = if stores.is_redis() { "redis" } else { "in-memory" },
                simulated_auth,
                ephemeral_secrets,
                secure_cookies,
                "EMBEDDED/DEVELOPMENT SETUP (simulated services, in-memory stores, generated \
                 secrets or non-Secure cookies as listed). NOT FOR PRODUCTION."
            );
        }
        // As `portal_api::serve`, with the drain deadline: after SIGTERM/SIGINT, in-flight
        // requests get SHUTDOWN_GRACE_SECONDS before their connections are dropped.
        let server = {
            let state = state.clone();
            // actix's own signal handling treats SIGINT as a *forced* stop (in-flight requests
            // dropped, sockets cut); `run_until_stopped` handles both signals gracefully.
            let mut http = actix_web::HttpServer::new(move || portal_api::app(state.clone()))
                .shutdown_timeout(settings.shutdown_grace_seconds)
                .disable_signals();
            if let Some(n) = settings.workers {
                http = http.workers(n);
            }
            http.listen(listener)?.run()
        };
        if let Some(p) = &prometheus {
            crate::observability::websocket_source(p, &realtime.hub);
            let mut breakers = downstreams.breakers.clone();
            breakers.push(use_case_breaker);
            crate::observability::circuit_source(p, breakers);
        }
        // Start-up done: everything is wired (the listener already accepts).
        ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(Self {
            port,
            server,
            state,
            realtime,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application state (tests inspect the authenticator).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The WebSocket hub, widget and event bus of this instance.
    pub fn realtime(&self) -> &crate::realtime::Realtime {
        &self.realtime
    }

    /// Serves until SIGINT/SIGTERM (graceful: in-flight requests finish, every WebSocket
    /// gets a going-away close).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.realtime.stop_on_shutdown_signal(self.server.handle());
        self.server.await
    }
}
