//! The application state shared by every worker: the use cases, the limiter, and the web
//! settings (cookies, CORS origin, proxies, limits).

pub use crate::forwarded::ForwardedHeader;
use crate::routes::ws::RealtimeWiring;
use actix_web::cookie::Key;
use portal_domain::audit::Auditor;
use portal_domain::auth::{Authenticator, RateLimits};
use portal_domain::dashboard::Dashboard;
use portal_domain::history::History;
use portal_domain::onboarding::Onboarding;
use portal_domain::ports::stores::RateLimiter;
use portal_domain::ports::system::{HealthProbe, NoopTelemetry, Telemetry};
use portal_domain::resilience::CircuitBreaker;
use portal_domain::widget::Widget;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use url::Url;

/// Name of the session cookie (spec §4.3).
pub(crate) const SESSION_COOKIE: &str = "sessionId";
/// Name of the short-lived pre-login cookie that binds the OAuth callback to the browser.
pub(crate) const LOGIN_COOKIE: &str = "portalLogin";
/// JSON body cap (decisions §8).
pub(crate) const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

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
    /// `BASE_URL`: this service's public URL; the webhook URLs handed out at the end of
    /// onboarding start with it.
    pub public_url: Url,
    /// Signs the session and pre-login cookies (derived from `COOKIE_SECRET`).
    pub cookie_key: Key,
    /// `Secure` attribute on cookies; off only for plain-HTTP local use.
    pub secure_cookies: bool,
    /// `COOKIE_DOMAIN`, when the cookie must span subdomains.
    pub cookie_domain: Option<String>,
    /// Peers whose forwarding header is believed when finding the client IP.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// The header those proxies write the forwarding chain into.
    pub forwarded_header: ForwardedHeader,
    /// JSON body cap in bytes.
    pub body_limit: usize,
    /// Limits on the request head, answered in the error format (below the HTTP parser's own
    /// hard limits, which it answers without a body).
    pub head_limits: HeadLimits,
    /// Serve the interactive API documentation at `/docs`.
    pub docs: bool,
    /// `/metrics` is served (`/` links to it).
    pub metrics: bool,
}

/// Limits on a request's head, checked before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Most header fields (431 above).
    pub max_headers: usize,
    /// Most bytes of header names and values together (431 above).
    pub max_header_bytes: usize,
    /// Longest request target, path and query (414 above).
    pub max_uri_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
        }
    }
}

impl fmt::Debug for WebSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSettings")
            .field("frontend_url", &self.frontend_url.as_str())
            .field("public_url", &self.public_url.as_str())
            .field("cookie_key", &"[REDACTED]")
            .field("secure_cookies", &self.secure_cookies)
            .field("cookie_domain", &self.cookie_domain)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("forwarded_header", &self.forwarded_header)
            .field("body_limit", &self.body_limit)
            .field("head_limits", &self.head_limits)
            .field("docs", &self.docs)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl WebSettings {
    /// Settings with the defaults (64 KiB bodies, no proxies, secure cookies, the default
    /// head limits, documentation served).
    pub fn new(frontend_url: Url, public_url: Url, cookie_key: Key) -> Self {
        Self {
            frontend_url,
            public_url,
            cookie_key,
            secure_cookies: true,
            cookie_domain: None,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            head_limits: HeadLimits::default(),
            docs: true,
            metrics: true,
        }
    }

    /// The frontend origin (`scheme://host[:port]`), for CORS.
    pub(crate) fn frontend_origin(&self) -> String {
        self.frontend_url.origin().ascii_serialization()
    }

    /// An absolute frontend URL for a path (`/dashboard` → `https://portal.example/dashboard`).
    pub(crate) fn frontend_path(&self, path: &str) -> String {
        let base = self.frontend_url.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }
}

/// The use cases the handlers call. Every build wires all of them, so none is optional.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct UseCases {
    /// Sign-in, sessions, CSRF, WebSocket tickets.
    pub auth: Arc<Authenticator>,
    /// The onboarding wizard.
    pub onboarding: Arc<Onboarding>,
    /// Dashboard figures (`/api/v1/dashboard/*`).
    pub dashboard: Arc<Dashboard>,
    /// Conversation history (`/api/v1/history/*`).
    pub history: Arc<History>,
    /// Widget sends (`/api/v1/widget/send`, the socket's `send_message`).
    pub widget: Arc<Widget>,
    /// The audit trail (`/api/v1/audit`, and the refusals the edge decides).
    pub audit: Arc<Auditor>,
}

pub(crate) struct Inner {
    pub(crate) use_cases: UseCases,
    /// The instance's WebSocket hub and socket settings.
    pub(crate) realtime: RealtimeWiring,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    pub(crate) limits: RateLimits,
    pub(crate) telemetry: Arc<dyn Telemetry>,
    pub(crate) probes: Vec<Arc<dyn HealthProbe>>,
    pub(crate) web: WebSettings,
    /// For `/health`'s `uptime`.
    pub(crate) started: Instant,
    /// The OpenAPI document, rendered once.
    pub(crate) openapi_json: std::sync::OnceLock<String>,
    /// Each documented path's methods, for `Allow` (built once from the document).
    pub(crate) routes: std::sync::OnceLock<crate::openapi::RouteTable>,
    /// The downstreams' circuit breakers, for `/health`'s `circuits`.
    pub(crate) circuits: Vec<Arc<CircuitBreaker>>,
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
    /// Starts a builder with the required parts: every use case, the real-time hub, the rate
    /// limiter and the web settings.
    pub fn builder(
        use_cases: UseCases,
        realtime: RealtimeWiring,
        limiter: Arc<dyn RateLimiter>,
        web: WebSettings,
    ) -> AppStateBuilder {
        AppStateBuilder {
            inner: Inner {
                use_cases,
                realtime,
                limiter,
                limits: RateLimits::default(),
                telemetry: Arc::new(NoopTelemetry),
                probes: Vec::new(),
                web,
                started: Instant::now(),
                openapi_json: std::sync::OnceLock::new(),
                routes: std::sync::OnceLock::new(),
                circuits: Vec::new(),
                ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
                request_scope: None,
            },
        }
    }

    /// The sign-in use case.
    pub fn auth(&self) -> &Authenticator {
        &self.0.use_cases.auth
    }

    /// The onboarding wizard.
    pub fn onboarding(&self) -> &Onboarding {
        &self.0.use_cases.onboarding
    }

    /// The dashboard use case.
    pub fn dashboard(&self) -> &Dashboard {
        &self.0.use_cases.dashboard
    }

    /// The history use case.
    pub fn history(&self) -> &History {
        &self.0.use_cases.history
    }

    /// The widget-send use case.
    pub fn widget(&self) -> &Widget {
        &self.0.use_cases.widget
    }

    /// The audit trail.
    pub fn auditor(&self) -> &Auditor {
        &self.0.use_cases.audit
    }

    /// The WebSocket hub and settings.
    pub fn realtime(&self) -> &RealtimeWiring {
        &self.0.realtime
    }

    /// The web settings.
    pub fn web(&self) -> &WebSettings {
        &self.0.web
    }

    /// Each documented path's methods (built on first use).
    pub(crate) fn routes(&self) -> &crate::openapi::RouteTable {
        self.0
            .routes
            .get_or_init(|| crate::openapi::RouteTable::new(self.web().docs))
    }

    /// The rate limits.
    pub fn limits(&self) -> RateLimits {
        self.0.limits
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &Arc<dyn RateLimiter> {
        &self.0.limiter
    }

    /// Telemetry.
    pub fn telemetry(&self) -> &Arc<dyn Telemetry> {
        &self.0.telemetry
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

    /// Adds a circuit breaker to `/health`'s `circuits`.
    pub fn circuit(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.inner.circuits.push(breaker);
        self
    }

    /// The start-up flag `/readyz` waits for (the binary sets it once serving).
    pub fn readiness(mut self, ready: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.inner.ready = ready;
        self
    }

    /// Wraps each request's handling (see `crate::middleware::RequestScope`).
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
