//! The application state shared by every worker: the use cases, the limiter, and the web
//! settings (cookies, CORS origin, proxies, limits).

use actix_web::cookie::Key;
use actix_web::web;
use portal_domain::auth::{Authenticator, RateLimits};
use portal_domain::ports::stores::RateLimiter;
use portal_domain::ports::system::{HealthProbe, NoopTelemetry, Telemetry};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use url::Url;

/// Name of the session cookie (spec §4.3).
pub const SESSION_COOKIE: &str = "sessionId";
/// Name of the short-lived pre-login cookie that binds the OAuth callback to the browser.
pub const LOGIN_COOKIE: &str = "portalLogin";
/// JSON body cap (decisions §8).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// A trusted reverse proxy: an address or a CIDR network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length (32/128 for a single address).
    pub prefix: u8,
}

impl TrustedProxy {
    /// Parses `10.0.0.1`, `10.0.0.0/8` or `::1`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Web-layer settings.
#[derive(Clone)]
pub struct WebSettings {
    /// `FRONTEND_URL`: the only CORS origin, and where sign-in redirects land.
    pub frontend_url: Url,
    /// Signs the session and pre-login cookies (derived from `COOKIE_SECRET`).
    pub cookie_key: Key,
    /// `Secure` attribute on cookies; off only for plain-HTTP local use.
    pub secure_cookies: bool,
    /// `COOKIE_DOMAIN`, when the cookie must span subdomains.
    pub cookie_domain: Option<String>,
    /// Peers whose `X-Forwarded-For` is believed when finding the client IP.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// JSON body cap in bytes.
    pub body_limit: usize,
    /// Worker threads (`None`: one per core).
    pub workers: Option<usize>,
}

impl fmt::Debug for WebSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSettings")
            .field("frontend_url", &self.frontend_url.as_str())
            .field("cookie_key", &"[REDACTED]")
            .field("secure_cookies", &self.secure_cookies)
            .field("cookie_domain", &self.cookie_domain)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl WebSettings {
    /// Settings with the defaults (64 KiB bodies, no proxies, secure cookies).
    pub fn new(frontend_url: Url, cookie_key: Key) -> Self {
        Self {
            frontend_url,
            cookie_key,
            secure_cookies: true,
            cookie_domain: None,
            trusted_proxies: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            workers: None,
        }
    }

    /// The frontend origin (`scheme://host[:port]`), for CORS.
    pub fn frontend_origin(&self) -> String {
        self.frontend_url.origin().ascii_serialization()
    }

    /// An absolute frontend URL for a path (`/dashboard` → `https://portal.example/dashboard`).
    pub fn frontend_path(&self, path: &str) -> String {
        let base = self.frontend_url.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }
}

/// Extra routes registered after the built-in ones (later issues' use cases, tests).
pub type RouteRegistrar = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    pub(crate) limits: RateLimits,
    pub(crate) telemetry: Arc<dyn Telemetry>,
    pub(crate) probes: Vec<Arc<dyn HealthProbe>>,
    pub(crate) web: WebSettings,
    /// For `/health`'s `uptime`.
    pub(crate) started: Instant,
    /// Widget send (`/api/v1/widget/send`, socket `send_message`); `None`: 503.
    pub(crate) widget: Option<Arc<portal_domain::widget::Widget>>,
    /// The instance's WebSocket hub and socket settings; `None`: the upgrade answers 503.
    pub(crate) realtime: Option<crate::routes::ws::RealtimeWiring>,
    /// Extension point: routes of use cases added by later issues (onboarding, dashboard,
    /// history, widget, WebSocket) or by tests.
    pub(crate) extra_routes: Vec<RouteRegistrar>,
    /// The OpenAPI document, rendered once.
    pub(crate) openapi_json: std::sync::OnceLock<String>,
    /// Dashboard use case (`/api/v1/dashboard/*`); `None`: those routes answer 503.
    pub(crate) dashboard: Option<Arc<portal_domain::dashboard::Dashboard>>,
    /// History use case (`/api/v1/history/*`); `None`: those routes answer 503.
    pub(crate) history: Option<Arc<portal_domain::history::History>>,
    /// The onboarding wizard and `BASE_URL` (issue 3); `None`: its routes answer 503.
    pub(crate) onboarding: Option<crate::routes::onboarding::OnboardingWiring>,
    /// The downstreams' circuit breakers, for `/health`'s `circuits`.
    pub(crate) circuits: Vec<Arc<portal_domain::resilience::CircuitBreaker>>,
    /// Start-up done: `/readyz` answers 503 until the binary sets it (default: set).
    pub(crate) ready: Arc<std::sync::atomic::AtomicBool>,
    /// Wraps each request's handling (outbound request context, trace parent).
    pub(crate) request_scope: Option<crate::middleware::RequestScope>,
}

/// Everything handlers need; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("web", &self.0.web)
            .field("limits", &self.0.limits)
            .field("probes", &self.0.probes.len())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Starts a builder with the required parts.
    pub fn builder(
        auth: Arc<Authenticator>,
        limiter: Arc<dyn RateLimiter>,
        web: WebSettings,
    ) -> AppStateBuilder {
        AppStateBuilder {
            inner: Inner {
                auth,
                limiter,
                limits: RateLimits::default(),
                telemetry: Arc::new(NoopTelemetry),
                probes: Vec::new(),
                web,
                started: Instant::now(),
                widget: None,
                realtime: None,
                extra_routes: Vec::new(),
                openapi_json: std::sync::OnceLock::new(),
                dashboard: None,
                history: None,
                onboarding: None,
                circuits: Vec::new(),
                ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
                request_scope: None,
            },
        }
    }

    /// The sign-in use case.
    pub fn auth(&self) -> &Authenticator {
        &self.0.auth
    }

    /// The web settings.
    pub fn web(&self) -> &WebSettings {
        &self.0.web
    }

    /// The rate limits.
    pub fn limits(&self) -> RateLimits {
        self.0.limits
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &Arc<dyn RateLimiter> {
        &self.0.limiter
    }

    /// The widget-send use case, when wired.
    pub fn widget(&self) -> Option<&portal_domain::widget::Widget> {
        self.0.widget.as_deref()
    }

    /// The WebSocket hub and settings, when wired.
    pub fn realtime(&self) -> Option<&crate::routes::ws::RealtimeWiring> {
        self.0.realtime.as_ref()
    }

    /// Telemetry.
    pub fn telemetry(&self) -> &Arc<dyn Telemetry> {
        &self.0.telemetry
    }

    /// The dashboard use case, when wired.
    pub fn dashboard(&self) -> Option<&portal_domain::dashboard::Dashboard> {
        self.0.dashboard.as_deref()
    }

    /// The history use case, when wired.
    pub fn history(&self) -> Option<&portal_domain::history::History> {
        self.0.history.as_deref()
    }
}

/// Builds an [`AppState`].
pub struct AppStateBuilder {
    inner: Inner,
}

impl fmt::Debug for AppStateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppStateBuilder").finish_non_exhaustive()
    }
}

impl AppStateBuilder {
    /// Overrides the rate limits.
    pub fn limits(mut self, limits: RateLimits) -> Self {
        self.inner.limits = limits;
        self
    }

    /// Sets the telemetry recorder.
    pub fn telemetry(mut self, telemetry: Arc<dyn Telemetry>) -> Self {
        self.inner.telemetry = telemetry;
        self
    }

    /// Adds a health probe.
    pub fn probe(mut self, probe: Arc<dyn HealthProbe>) -> Self {
        self.inner.probes.push(probe);
        self
    }

    /// Sets the widget-send use case.
    pub fn widget(mut self, widget: Arc<portal_domain::widget::Widget>) -> Self {
        self.inner.widget = Some(widget);
        self
    }

    /// Sets the instance's WebSocket hub (fed by the bus subscription) and socket settings.
    pub fn realtime(
        mut self,
        hub: Arc<portal_domain::realtime::Hub>,
        settings: crate::routes::ws::RealtimeSettings,
    ) -> Self {
        self.inner.realtime = Some(crate::routes::ws::RealtimeWiring { hub, settings });
        self
    }

    /// Adds routes (they may use the [`Authenticated`](crate::Authenticated) extractor and
    /// [`AppState`] from `web::Data`).
    pub fn routes(
        mut self,
        registrar: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        self.inner.extra_routes.push(Arc::new(registrar));
        self
    }

    /// Wires the onboarding wizard; `base_url` is this service's public URL (`BASE_URL`),
    /// from which the webhook URLs are built.
    pub fn onboarding(
        mut self,
        usecase: Arc<portal_domain::onboarding::Onboarding>,
        base_url: Url,
    ) -> Self {
        self.inner.onboarding =
            Some(crate::routes::onboarding::OnboardingWiring { usecase, base_url });
        self
    }

    /// Sets the dashboard use case.
    pub fn dashboard(mut self, dashboard: Arc<portal_domain::dashboard::Dashboard>) -> Self {
        self.inner.dashboard = Some(dashboard);
        self
    }

    /// Sets the history use case.
    pub fn history(mut self, history: Arc<portal_domain::history::History>) -> Self {
        self.inner.history = Some(history);
        self
    }

    /// Adds a circuit breaker to `/health`'s `circuits`.
    pub fn circuit(mut self, breaker: Arc<portal_domain::resilience::CircuitBreaker>) -> Self {
        self.inner.circuits.push(breaker);
        self
    }

    /// The start-up flag `/readyz` waits for (the binary sets it once serving).
    pub fn readiness(mut self, ready: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.inner.ready = ready;
        self
    }

    /// Wraps each request's handling (see [`crate::middleware::RequestScope`]).
    pub fn request_scope(
        mut self,
        scope: impl Fn(
            &crate::middleware::RequestScopeInfo,
            crate::middleware::EdgeFuture,
        ) -> crate::middleware::EdgeFuture
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.inner.request_scope = Some(Arc::new(scope));
        self
    }

    /// Finishes.
    pub fn build(self) -> AppState {
        AppState(Arc::new(self.inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxy_networks() {
        let net = TrustedProxy::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let one = TrustedProxy::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
        assert!(
            TrustedProxy::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(TrustedProxy::parse("10.0.0.0/33").is_none());
        assert!(TrustedProxy::parse("nonsense").is_none());
    }
}
