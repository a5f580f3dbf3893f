//! Wiring, as zero2prod's `Application::build`: settings → adapters → use cases → HTTP server.
//!
//! [`Application::build_with`] reads top to bottom; each choice is one function below it:
//! [`stores`] (memory or Redis), [`system`] (clock, randomness, secrets configured or
//! generated, Prometheus or no telemetry), [`downstreams`] (each service over HTTP or
//! simulated, guarded either way), [`use_cases`], [`Realtime::wire`], [`app_state`] (the one place `AppState` is assembled)
//! and [`http_server`]. The defaults that depend on other settings (public URL, redirect URI,
//! client ID, authorize URL, secure cookies) are [`Settings`] methods.

use crate::configuration::Settings;
use crate::downstreams::{Downstreams, Ports};
use crate::realtime::Realtime;
use crate::stores::Stores;
use actix_web::cookie::Key;
use actix_web::dev::Server;
use actix_web::web;
use anyhow::Context;
use portal_api::{AppState, WebSettings};
use portal_domain::audit::{AuditKey, AuditPorts, Auditor};
use portal_domain::auth::{AuthPorts, AuthSettings, Authenticator};
use portal_domain::cache_aside::ReadPorts;
use portal_domain::dashboard::Dashboard;
use portal_domain::history::History;
use portal_domain::onboarding::{Onboarding, OnboardingPorts, OnboardingSettings};
use portal_domain::ports::downstream::StateManager;
use portal_domain::ports::stores::OutboundQueue;
use portal_domain::ports::system::Telemetry;
use portal_domain::ports::system::{Cipher, Clock, NoopTelemetry, Random, RandomExt, SystemClock};
use portal_domain::secret::{ExposeSecret, SecretString};
use portal_telemetry::PrometheusTelemetry;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use url::Url;

/// Client ID the simulated Genesys login accepts in the embedded default.
pub(crate) const SANDBOX_CLIENT_ID: &str = "agent-portal-sandbox";
/// Where the simulated Genesys login is mounted in the embedded default.
pub(crate) const SANDBOX_LOGIN_PATH: &str = "/_sandbox/genesys";

/// How long shutdown waits for queued audit entries to be written.
const AUDIT_FLUSH_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// What tests (and the benchmarks) may substitute when building the application.
#[derive(Clone, Default)]
pub struct Overrides {
    /// The clock (default: the system clock). Tests advance time past a session's expiry.
    pub clock: Option<Arc<dyn Clock>>,
    /// Wraps the simulated State Manager, inside its guard (tests and the benchmark count or
    /// break its calls).
    pub wrap_state_manager: Option<WrapStateManager>,
    /// Wraps the store ports (the benchmark counts store round trips).
    pub wrap_stores: Option<WrapStores>,
    /// Wraps the outbound queue widget sends go to (tests break it).
    pub wrap_outbound: Option<WrapOutbound>,
}

/// See [`Overrides::wrap_state_manager`].
pub(crate) type WrapStateManager =
    Arc<dyn Fn(Arc<dyn StateManager>) -> Arc<dyn StateManager> + Send + Sync>;
/// See [`Overrides::wrap_stores`].
pub(crate) type WrapStores = Arc<dyn Fn(Stores) -> Stores + Send + Sync>;
/// See [`Overrides::wrap_outbound`].
pub(crate) type WrapOutbound =
    Arc<dyn Fn(Arc<dyn OutboundQueue>) -> Arc<dyn OutboundQueue> + Send + Sync>;

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("clock", &self.clock.is_some())
            .finish()
    }
}

/// The running application: bound, not yet serving until [`Application::run_until_stopped`].
pub struct Application {
    port: u16,
    server: Server,
    /// The server's open connections (a drained server has none).
    connections: Arc<portal_api::connections::Connections>,
    state: AppState,
    /// The WebSocket hub, the widget and the bus (closed at shutdown; tests publish on it).
    realtime: Realtime,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
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
        let base_url = settings.public_base_url(port);
        let stores = stores(&settings, &overrides).await?;
        let prometheus = settings
            .metrics_enabled
            .then(|| Arc::new(crate::observability::recorder(&stores)));
        let system = system(&settings, &overrides, prometheus.as_ref())?;
        let platform = portal_sandbox::Platform::demo(system.clock.clone());
        let downstreams = downstreams(&settings, &platform, &overrides, &system.telemetry)?;
        let use_cases = use_cases(&settings, &base_url, &stores, &downstreams, &system).await?;
        let realtime = Realtime::wire(
            &settings,
            &stores,
            downstreams.ports.state_manager.clone(),
            &platform,
            &overrides,
            system.random.clone(),
            system.clock.clone(),
            use_cases.auditor.clone(),
        )
        .await;
        let web = web_settings(&settings, &base_url, &system.cookie_secret)?;
        warn_if_embedded(&settings, &stores, port, web.secure_cookies);
        // Set at the end of `build`: `/readyz` says 503 until then.
        let ready = Arc::new(AtomicBool::new(false));
        let state = app_state(
            &settings,
            Parts {
                use_cases,
                web,
                stores: &stores,
                downstreams: &downstreams,
                realtime: &realtime,
                telemetry: system.telemetry.clone(),
                ready: ready.clone(),
            },
        );
        let sandbox_login = sandbox_login(&settings, &base_url, &platform);
        let connections = portal_api::connections::Connections::new();
        let server = http_server(
            &settings,
            listener,
            state.clone(),
            sandbox_login,
            &connections,
        )?;
        if let Some(p) = &prometheus {
            crate::observability::websocket_source(p, &realtime.hub);
            crate::observability::circuit_source(p, downstreams.breakers.clone());
        }
        ready.store(true, Ordering::Release);
        Ok(Self {
            port,
            server,
            connections,
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
    pub fn realtime(&self) -> &Realtime {
        &self.realtime
    }

    /// Serves until SIGINT/SIGTERM (graceful: in-flight requests finish, every WebSocket
    /// gets a going-away close). Returns as soon as the last connection has closed: actix's
    /// workers only look every second whether theirs have, which would hold every shutdown.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopping = self.realtime.stop_on_shutdown_signal(self.server.handle());
        let connections = self.connections.clone();
        let drained = async move {
            if stopping.await.is_err() {
                return std::future::pending().await;
            }
            connections.all_closed().await;
        };
        let served = tokio::select! {
            served = self.server => served,
            () = drained => Ok(()),
        };
        // The audit entries still queued are written (or logged) before the process ends.
        let flushed = tokio::time::timeout(AUDIT_FLUSH_AT_SHUTDOWN, self.state.auditor().flush());
        if flushed.await.is_err() {
            tracing::warn!("shutdown: audit entries still queued were not all written in time");
        }
        served
    }
}

/// The store ports: Redis when configured, in memory otherwise ([`Stores::from_settings`]).
async fn stores(settings: &Settings, overrides: &Overrides) -> anyhow::Result<Stores> {
    let stores = Stores::from_settings(settings).await?;
    Ok(match &overrides.wrap_stores {
        Some(wrap) => wrap(stores),
        None => stores,
    })
}

/// Each downstream over HTTP where its URL is configured, simulated elsewhere; guarded either
/// way ([`Downstreams::build`]).
fn downstreams(
    settings: &Settings,
    platform: &portal_sandbox::Platform,
    overrides: &Overrides,
    telemetry: &Arc<dyn Telemetry>,
) -> anyhow::Result<Downstreams> {
    let mut simulators = Ports::simulated(platform);
    if let Some(wrap) = &overrides.wrap_state_manager {
        simulators.state_manager = wrap(simulators.state_manager);
    }
    let downstreams = Downstreams::build(
        &settings.downstream_urls(),
        simulators,
        settings.state_manager_breaker(),
        telemetry.clone(),
    )?;
    if !downstreams.http.is_empty() {
        tracing::info!(http = %downstreams.http.join(","), "downstreams over HTTP (the rest simulated)");
    }
    Ok(downstreams)
}

/// The system ports every use case shares, and the cookie secret.
struct System {
    /// `ENCRYPTION_KEY` (and `ENCRYPTION_PREVIOUS_KEYS`), or a key for this process only.
    cipher: Arc<dyn Cipher>,
    random: Arc<dyn Random>,
    /// The system clock unless a test substitutes one.
    clock: Arc<dyn Clock>,
    /// The Prometheus recorder, or nothing with `METRICS_ENABLED=false`.
    telemetry: Arc<dyn Telemetry>,
    /// `COOKIE_SECRET`, or one for this process only: signs cookies, derives CSRF tokens.
    cookie_secret: SecretString,
    /// `AUDIT_HMAC_KEY`, or one for this process only: signs the audit trail's chain.
    audit_key: SecretString,
}

/// The system ports; secrets not configured are generated for this process (embedded
/// default).
fn system(
    settings: &Settings,
    overrides: &Overrides,
    prometheus: Option<&Arc<PrometheusTelemetry>>,
) -> anyhow::Result<System> {
    let random: Arc<dyn Random> = Arc::new(portal_crypto::SystemRandom::new());
    let cipher = match settings.cipher()? {
        Some(cipher) => cipher,
        None => portal_crypto::AesGcmCipher::ephemeral(random.as_ref()),
    };
    let cookie_secret = match &settings.cookie_secret {
        Some(s) => s.clone(),
        None => random.hex_token::<32>(),
    };
    if cookie_secret.expose_secret().len() < 32 {
        anyhow::bail!("COOKIE_SECRET: must be at least 32 characters");
    }
    let audit_key = match &settings.audit_hmac_key {
        Some(k) => k.clone(),
        None => random.hex_token::<32>(),
    };
    let telemetry: Arc<dyn Telemetry> = match prometheus {
        Some(p) => p.clone(),
        None => Arc::new(NoopTelemetry),
    };
    Ok(System {
        cipher: Arc::new(cipher),
        random,
        clock: overrides
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock)),
        telemetry,
        cookie_secret,
        audit_key,
    })
}

/// The use cases behind the HTTP routes (the widget is [`Realtime`]'s).
pub(crate) struct UseCases {
    pub(crate) auditor: Arc<Auditor>,
    authenticator: Arc<Authenticator>,
    onboarding: Arc<Onboarding>,
    dashboard: Arc<Dashboard>,
    history: Arc<History>,
}

/// Sign-in and sessions, onboarding, the dashboard and history over the stores and the
/// downstream ports, and the task applying the event bus to the caches (spec §13.1).
async fn use_cases(
    settings: &Settings,
    base_url: &str,
    stores: &Stores,
    downstreams: &Downstreams,
    system: &System,
) -> anyhow::Result<UseCases> {
    let mut auth_settings = AuthSettings::new(
        settings.authorize_url(base_url)?,
        settings.client_id(),
        settings.redirect_uri(base_url),
    );
    auth_settings.session_ttl = Duration::from_secs(settings.session_ttl_secs);
    auth_settings.max_sessions_per_user = settings.session_max_per_user;
    auth_settings.refresh_lease = Duration::from_millis(settings.session_refresh_lease_ms);
    auth_settings.refresh_wait = Duration::from_millis(settings.session_refresh_wait_ms);
    let auditor = Auditor::start(
        AuditPorts {
            log: stores.ports.audit.clone(),
            clock: system.clock.clone(),
            random: system.random.clone(),
            telemetry: system.telemetry.clone(),
        },
        AuditKey::new(system.audit_key.expose_secret().as_bytes()),
        settings.audit(),
    );
    let authenticator = Arc::new(Authenticator::new(
        auth_settings,
        AuthPorts {
            sessions: stores.ports.sessions.clone(),
            one_time: stores.ports.one_time.clone(),
            auth_service: downstreams.ports.auth_service.clone(),
            tenants: downstreams.ports.tenant_service.clone(),
            bus: stores.ports.event_bus.clone(),
            lock: stores.ports.lock.clone(),
            auditor: auditor.clone(),
            cipher: system.cipher.clone(),
            random: system.random.clone(),
            clock: system.clock.clone(),
        },
        system.cookie_secret.expose_secret().as_bytes(),
    ));
    let onboarding = Arc::new(Onboarding::new(
        OnboardingPorts {
            store: stores.ports.onboarding.clone(),
            tenants: downstreams.ports.tenant_service.clone(),
            genesys: downstreams.ports.genesys.clone(),
            whatsapp: downstreams.ports.whatsapp.clone(),
            cipher: system.cipher.clone(),
            random: system.random.clone(),
            clock: system.clock.clone(),
            telemetry: system.telemetry.clone(),
            limiter: stores.ports.rate_limiter.clone(),
            authenticator: authenticator.clone(),
            lock: stores.ports.lock.clone(),
            auditor: auditor.clone(),
        },
        OnboardingSettings {
            state_ttl: Duration::from_secs(settings.onboarding_state_ttl_secs),
            failed_attempts: settings.rate_limits().onboarding,
            ..Default::default()
        },
    ));
    let reads = ReadPorts {
        state_manager: downstreams.ports.state_manager.clone(),
        cache: stores.ports.cache.clone(),
        lock: stores.ports.lock.clone(),
        clock: system.clock.clone(),
        telemetry: system.telemetry.clone(),
        auditor: auditor.clone(),
    };
    let dashboard = Arc::new(Dashboard::new(reads.clone()));
    match stores.ports.event_bus.subscribe().await {
        Ok(events) => {
            let invalidation = dashboard.invalidation();
            tokio::spawn(async move { invalidation.run(events).await });
        }
        // Entries still expire with their TTL, and refresh still works.
        Err(e) => {
            tracing::error!(error = %e, "no event subscription: caches are not invalidated by events")
        }
    }
    Ok(UseCases {
        auditor,
        authenticator,
        onboarding,
        dashboard,
        history: Arc::new(History::new(reads)),
    })
}

/// The HTTP layer's settings: CORS origin, cookie key and flags, proxies, body cap, head
/// limits, documentation and metrics served.
fn web_settings(
    settings: &Settings,
    base_url: &str,
    cookie_secret: &SecretString,
) -> anyhow::Result<WebSettings> {
    let frontend_url = Url::parse(&settings.frontend_url).context("FRONTEND_URL")?;
    // `BASE_URL`: the webhook URLs onboarding hands out are built from it.
    let public_url = Url::parse(base_url).context("BASE_URL")?;
    let cookie_key = Key::derive_from(cookie_secret.expose_secret().as_bytes());
    let mut web = WebSettings::new(frontend_url, public_url, cookie_key);
    web.secure_cookies = settings.secure_cookies(base_url);
    web.cookie_domain = settings.cookie_domain.clone();
    web.trusted_proxies = settings.proxies();
    web.forwarded_header = settings.forwarded_header();
    web.body_limit = settings.body_limit_bytes;
    web.head_limits = settings.head_limits();
    web.docs = settings.docs();
    web.metrics = settings.metrics_enabled;
    Ok(web)
}

/// The simulated Genesys login page, mounted only with the simulated Auth Service (the only
/// one that accepts its codes): never in production.
fn sandbox_login(
    settings: &Settings,
    base_url: &str,
    platform: &portal_sandbox::Platform,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let simulated = settings.simulated_auth();
    let auth = platform.auth();
    // The one client it serves: this service, sent back to its own callback only.
    let client = portal_sandbox::RegisteredClient {
        client_id: settings.client_id(),
        redirect_uris: vec![settings.redirect_uri(base_url)],
    };
    move |cfg: &mut web::ServiceConfig| {
        if simulated {
            let (auth, client) = (auth.clone(), client.clone());
            cfg.service(
                web::scope(SANDBOX_LOGIN_PATH)
                    .configure(move |c| portal_sandbox::genesys_login(c, auth, client)),
            );
        }
    }
}

/// What [`AppState`] is assembled from.
struct Parts<'a> {
    use_cases: UseCases,
    web: WebSettings,
    stores: &'a Stores,
    downstreams: &'a Downstreams,
    realtime: &'a Realtime,
    telemetry: Arc<dyn Telemetry>,
    /// Set once start-up is done (`/readyz`).
    ready: Arc<AtomicBool>,
}

/// The application state the handlers share: the one place `AppState` is built.
fn app_state(settings: &Settings, parts: Parts<'_>) -> AppState {
    let Parts {
        use_cases,
        web,
        stores,
        downstreams,
        realtime,
        telemetry,
        ready,
    } = parts;
    let use_cases = portal_api::UseCases {
        auth: use_cases.authenticator,
        onboarding: use_cases.onboarding,
        dashboard: use_cases.dashboard,
        history: use_cases.history,
        widget: realtime.widget.clone(),
        audit: use_cases.auditor,
    };
    let hub = portal_api::routes::ws::RealtimeWiring {
        hub: realtime.hub.clone(),
        settings: realtime.settings.clone(),
    };
    let mut builder = AppState::builder(use_cases, hub, stores.ports.rate_limiter.clone(), web)
        .limits(settings.rate_limits())
        .probe(stores.probe.clone())
        .telemetry(telemetry)
        .readiness(ready)
        .request_scope(crate::telemetry::request_scope);
    for b in &downstreams.breakers {
        builder = builder.circuit(b.clone());
    }
    for p in &downstreams.probes {
        builder = builder.probe(p.clone());
    }
    builder.build()
}

/// One `WARN` line for whatever is not production grade (simulated services, in-memory
/// stores, generated secrets, non-`Secure` cookies), and one for an undeliverable setup.
fn warn_if_embedded(settings: &Settings, stores: &Stores, port: u16, secure_cookies: bool) {
    if settings.state_manager_url.is_some() && !stores.is_redis() {
        tracing::warn!(
            "STATE_MANAGER_URL is set without Redis: widget sends go to an in-memory \
             outbound queue that no other service reads, so they are never delivered; \
             set REDIS_URL (the platform reads the Stream outbound.message)"
        );
    }
    let simulated_auth = settings.simulated_auth();
    let ephemeral_secrets = settings.encryption_key.is_none() || settings.cookie_secret.is_none();
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
}

/// The actix server on `listener`, with the drain deadline: after SIGTERM/SIGINT, in-flight
/// requests get `SHUTDOWN_GRACE_SECONDS` before their connections are dropped.
fn http_server(
    settings: &Settings,
    listener: TcpListener,
    state: AppState,
    sandbox_login: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    connections: &Arc<portal_api::connections::Connections>,
) -> anyhow::Result<Server> {
    // actix's own signal handling treats SIGINT as a *forced* stop (in-flight requests
    // dropped, sockets cut); `run_until_stopped` handles both signals gracefully.
    let mut http = actix_web::HttpServer::new(move || {
        // Runs on each worker thread: its log lines are written once per turn of its loop.
        crate::telemetry::write_lines_per_turn();
        portal_api::app(state.clone()).configure(sandbox_login.clone())
    })
    .on_connect(connections.hook())
    .shutdown_timeout(settings.shutdown_grace_seconds)
    .client_request_timeout(Duration::from_millis(
        settings.http_client_request_timeout_ms,
    ))
    .disable_signals();
    if let Some(n) = settings.workers {
        http = http.workers(n);
    }
    Ok(http.listen(listener)?.run())
}
