//! The downstream ports: the HTTP adapters where a URL is configured, the simulators of the
//! embedded default elsewhere (decisions §3).
//!
//! One shared reqwest client (rustls with ring) and one [`CircuitBreaker`] per downstream
//! (the State Manager's with the `STATE_MANAGER_BREAKER_*` settings, the others with the
//! domain's defaults). The dashboard and history use cases keep their own breaker around the
//! State Manager port: sharing one instance would count each call twice and let the use case's
//! half-open probe starve the adapter's.

use anyhow::Context;
use portal_domain::ports::downstream::{
    AuthService, GenesysCloud, StateManager, TenantService, WhatsApp,
};
use portal_domain::ports::system::{HealthProbe, Telemetry};
use portal_domain::resilience::{BreakerConfig, CircuitBreaker};
use portal_outbound::{ClientConfig, Downstream, build_client};
use std::sync::Arc;
use url::Url;

/// Where each downstream is. `None` = the simulator (or, for Genesys and Meta, the public
/// endpoints are not overridden).
#[derive(Debug, Clone, Default)]
pub struct DownstreamUrls {
    /// `AUTH_SERVICE_URL`.
    pub auth_service: Option<String>,
    /// `TENANT_SERVICE_URL`.
    pub tenant_service: Option<String>,
    /// `STATE_MANAGER_URL`.
    pub state_manager: Option<String>,
    /// `GENESYS_LOGIN_BASE_URL`.
    pub genesys_login_base: Option<String>,
    /// `GENESYS_API_BASE_URL`.
    pub genesys_api_base: Option<String>,
    /// `GENESYS_REGIONAL`: the real Genesys Cloud of each tenant's region, hosts not overridden.
    pub genesys_regional: bool,
    /// `META_GRAPH_BASE_URL`.
    pub meta_graph_base: Option<String>,
    /// `META_GRAPH_VERSION` (only used with the real Meta adapter).
    pub meta_graph_version: Option<String>,
}

impl DownstreamUrls {
    /// Whether Genesys Cloud goes through the HTTP adapter (regional, or a base URL overridden).
    pub fn genesys_is_http(&self) -> bool {
        self.genesys_regional
            || self.genesys_login_base.is_some()
            || self.genesys_api_base.is_some()
    }

    /// Whether Meta goes through the HTTP adapter.
    pub fn meta_is_http(&self) -> bool {
        self.meta_graph_base.is_some() || self.meta_graph_version.is_some()
    }
}

/// Every downstream port, wired.
#[derive(Clone)]
pub struct Downstreams {
    /// Auth Service.
    pub auth_service: Arc<dyn AuthService>,
    /// Tenant Service.
    pub tenant_service: Arc<dyn TenantService>,
    /// State Manager.
    pub state_manager: Arc<dyn StateManager>,
    /// Genesys Cloud public API.
    pub genesys: Arc<dyn GenesysCloud>,
    /// Meta WhatsApp Cloud API.
    pub whatsapp: Arc<dyn WhatsApp>,
    /// The State Manager adapter's breaker (for `/health` and metrics once they report it).
    pub state_manager_breaker: Arc<CircuitBreaker>,
    /// Every HTTP adapter's breaker (none for simulated services), for `/health`'s
    /// `circuits` and the `portal_circuit_state` gauge.
    pub breakers: Vec<Arc<CircuitBreaker>>,
    /// Services served by an HTTP adapter (the rest are simulated), for the start-up log.
    pub http: Vec<&'static str>,
    /// `GET /health` of each platform service over HTTP (Auth Service, Tenant Service, State
    /// Manager), for the service's `/health` (Appendix B).
    pub probes: Vec<Arc<dyn HealthProbe>>,
}

impl std::fmt::Debug for Downstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downstreams")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

fn parse(name: &str, value: &str) -> anyhow::Result<Url> {
    let url = Url::parse(value).with_context(|| format!("{name}: not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("{name}: must be an http(s) URL");
    }
    Ok(url)
}

impl Downstreams {
    /// Whether the State Manager is a remote service (then so is outbound delivery: see
    /// [`crate::realtime::outbound_queue`]).
    pub fn state_manager_is_http(&self) -> bool {
        self.http.contains(&portal_state_manager::SERVICE)
    }

    /// Wires every port: HTTP adapters for what `urls` names, simulators of `platform` for
    /// the rest. `state_manager_breaker` configures the State Manager's breaker; the others
    /// use the domain's default breaker settings. Installs the rustls ring provider.
    pub fn build(
        urls: &DownstreamUrls,
        platform: &portal_sandbox::Platform,
        state_manager_breaker: BreakerConfig,
        telemetry: Arc<dyn Telemetry>,
    ) -> anyhow::Result<Self> {
        portal_outbound::install_crypto_provider();
        let sm_breaker = Arc::new(CircuitBreaker::new(
            portal_state_manager::SERVICE,
            state_manager_breaker,
            telemetry.clone(),
        ));
        let any_http = urls.auth_service.is_some()
            || urls.tenant_service.is_some()
            || urls.state_manager.is_some()
            || urls.genesys_is_http()
            || urls.meta_is_http();
        let client = if any_http {
            Some(build_client(&ClientConfig::default())?)
        } else {
            None
        };
        let breakers = std::cell::RefCell::new(Vec::new());
        let downstream = |name: &'static str, base: Url, breaker: Option<Arc<CircuitBreaker>>| {
            let breaker = breaker.unwrap_or_else(|| {
                Arc::new(CircuitBreaker::new(
                    name,
                    BreakerConfig::default(),
                    telemetry.clone(),
                ))
            });
            breakers.borrow_mut().push(breaker.clone());
            Downstream::new(
                name,
                base,
                client.clone().unwrap_or_default(),
                breaker,
                telemetry.clone(),
            )
        };
        let mut http = Vec::new();
        let mut probes: Vec<Arc<dyn HealthProbe>> = Vec::new();
        let mut probed = |d: Downstream| {
            probes.push(Arc::new(portal_outbound::HealthCheck::new(&d)));
            d
        };

        let auth_service: Arc<dyn AuthService> = match &urls.auth_service {
            Some(u) => {
                http.push(portal_auth_service::SERVICE);
                let base = parse("AUTH_SERVICE_URL", u)?;
                Arc::new(portal_auth_service::HttpAuthService::new(probed(
                    downstream(portal_auth_service::SERVICE, base, None),
                )))
            }
            None => platform.auth_service(),
        };
        let tenant_service: Arc<dyn TenantService> = match &urls.tenant_service {
            Some(u) => {
                http.push(portal_tenant_service::SERVICE);
                let base = parse("TENANT_SERVICE_URL", u)?;
                Arc::new(portal_tenant_service::HttpTenantService::new(probed(
                    downstream(portal_tenant_service::SERVICE, base, None),
                )))
            }
            None => platform.tenant_service(),
        };
        let state_manager: Arc<dyn StateManager> = match &urls.state_manager {
            Some(u) => {
                http.push(portal_state_manager::SERVICE);
                let base = parse("STATE_MANAGER_URL", u)?;
                Arc::new(portal_state_manager::HttpStateManager::new(probed(
                    downstream(
                        portal_state_manager::SERVICE,
                        base,
                        Some(sm_breaker.clone()),
                    ),
                )))
            }
            None => platform.state_manager(),
        };
        let genesys: Arc<dyn GenesysCloud> = if urls.genesys_is_http() {
            http.push(portal_genesys::SERVICE);
            let login_base = urls
                .genesys_login_base
                .as_deref()
                .map(|u| parse("GENESYS_LOGIN_BASE_URL", u))
                .transpose()?;
            let api_base = urls
                .genesys_api_base
                .as_deref()
                .map(|u| parse("GENESYS_API_BASE_URL", u))
                .transpose()?;
            // The adapter picks each call's host itself (the overrides, else the tenant's
            // region); the downstream's base is only a label.
            let label = match login_base.clone().or_else(|| api_base.clone()) {
                Some(url) => url,
                None => parse("GENESYS_REGIONAL", "https://login.mypurecloud.com")?,
            };
            Arc::new(portal_genesys::HttpGenesysCloud::new(
                downstream(portal_genesys::SERVICE, label, None),
                portal_genesys::Endpoints {
                    login_base,
                    api_base,
                },
            ))
        } else {
            platform.genesys()
        };
        let whatsapp: Arc<dyn WhatsApp> = if urls.meta_is_http() {
            http.push(portal_whatsapp::SERVICE);
            let base = parse(
                "META_GRAPH_BASE_URL",
                urls.meta_graph_base
                    .as_deref()
                    .unwrap_or(portal_whatsapp::DEFAULT_GRAPH_BASE_URL),
            )?;
            let mut adapter = portal_whatsapp::HttpWhatsApp::new(downstream(
                portal_whatsapp::SERVICE,
                base,
                None,
            ));
            if let Some(v) = urls.meta_graph_version.as_deref().filter(|v| !v.is_empty()) {
                adapter = adapter.with_version(v);
            }
            Arc::new(adapter)
        } else {
            platform.whatsapp()
        };

        Ok(Self {
            auth_service,
            tenant_service,
            state_manager,
            genesys,
            whatsapp,
            state_manager_breaker: sm_breaker,
            breakers: breakers.into_inner(),
            http,
            probes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::ports::system::{NoopTelemetry, SystemClock};

    #[test]
    fn nothing_configured_means_every_simulator() {
        let platform = portal_sandbox::Platform::demo(Arc::new(SystemClock));
        let d = Downstreams::build(
            &DownstreamUrls::default(),
            &platform,
            BreakerConfig::default(),
            Arc::new(NoopTelemetry),
        )
        .unwrap();
        assert!(d.http.is_empty());
        assert!(!d.state_manager_is_http(), "delivery stays simulated");
    }

    #[test]
    fn each_url_switches_its_port_to_http_and_bad_urls_are_refused() {
        let platform = portal_sandbox::Platform::demo(Arc::new(SystemClock));
        let urls = DownstreamUrls {
            state_manager: Some("http://127.0.0.1:9090".into()),
            meta_graph_base: Some("http://127.0.0.1:9090/meta".into()),
            ..Default::default()
        };
        let d = Downstreams::build(
            &urls,
            &platform,
            BreakerConfig::default(),
            Arc::new(NoopTelemetry),
        )
        .unwrap();
        assert_eq!(d.http, vec!["stateManager", "metaGraph"]);
        assert!(d.state_manager_is_http(), "delivery goes to the real queue");

        // The real Genesys Cloud of each tenant's region, without overriding its hosts.
        let regional = DownstreamUrls {
            genesys_regional: true,
            ..Default::default()
        };
        let d = Downstreams::build(
            &regional,
            &platform,
            BreakerConfig::default(),
            Arc::new(NoopTelemetry),
        )
        .unwrap();
        assert_eq!(d.http, vec!["genesysCloud"]);

        let bad = DownstreamUrls {
            auth_service: Some("ftp://example.com".into()),
            ..Default::default()
        };
        let err = Downstreams::build(
            &bad,
            &platform,
            BreakerConfig::default(),
            Arc::new(NoopTelemetry),
        )
        .unwrap_err();
        assert!(err.to_string().contains("AUTH_SERVICE_URL"), "{err}");
    }
}
