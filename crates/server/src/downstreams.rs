//! The downstream ports: the HTTP adapters where a URL is configured, the simulators of the
//! embedded default elsewhere (decisions §3), each behind its downstream's one [`Guard`]
//! (deadline, retries, circuit breaker: decisions §10).
//!
//! One shared reqwest client (rustls with ring) for the HTTP adapters, whose
//! [`Downstream`](portal_outbound::Downstream) runs every call through the guard; a simulator
//! gets the same guard through `Guarded`. The State Manager's breaker has the
//! `STATE_MANAGER_BREAKER_*` settings, the others the defaults. The use cases above call each
//! port once: retrying or breaking there too would multiply what an outage costs.

use crate::guarded::Guarded;
use anyhow::Context;
use portal_domain::ports::downstream::{
    AuthService, GenesysCloud, StateManager, TenantService, WhatsApp,
};
use portal_domain::ports::system::{HealthProbe, Telemetry};
use portal_domain::resilience::{BreakerConfig, CircuitBreaker};
use portal_outbound::{ClientConfig, Downstream, Guard, HealthCheck, build_client};
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
    pub(crate) fn genesys_is_http(&self) -> bool {
        self.genesys_regional
            || self.genesys_login_base.is_some()
            || self.genesys_api_base.is_some()
    }

    /// Whether Meta goes through the HTTP adapter.
    pub(crate) fn meta_is_http(&self) -> bool {
        self.meta_graph_base.is_some() || self.meta_graph_version.is_some()
    }
}

/// One port per downstream.
#[derive(Clone)]
pub struct Ports {
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
}

impl Ports {
    /// Every simulator of `platform` (unguarded: [`Downstreams::build`] guards them).
    pub fn simulated(platform: &portal_sandbox::Platform) -> Self {
        Self {
            auth_service: platform.auth_service(),
            tenant_service: platform.tenant_service(),
            state_manager: platform.state_manager(),
            genesys: platform.genesys(),
            whatsapp: platform.whatsapp(),
        }
    }
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

/// Every downstream port, wired and guarded.
#[derive(Clone)]
pub struct Downstreams {
    /// The ports, each behind its downstream's guard.
    pub ports: Ports,
    /// One breaker per downstream, simulated or not, for `/health`'s `circuits` and the
    /// `portal_circuit_state` gauge.
    pub(crate) breakers: Vec<Arc<CircuitBreaker>>,
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

/// What wiring the ports accumulates: a guard (and its breaker) per downstream, the shared
/// client, the health probes.
struct Wiring {
    telemetry: Arc<dyn Telemetry>,
    state_manager_breaker: BreakerConfig,
    client: Option<reqwest::Client>,
    breakers: Vec<Arc<CircuitBreaker>>,
    http: Vec<&'static str>,
    probes: Vec<Arc<dyn HealthProbe>>,
}

impl Wiring {
    /// The guard of `service` (its breaker is recorded for `/health` and metrics).
    fn guard(&mut self, service: &'static str) -> Guard {
        let config = if service == portal_state_manager::SERVICE {
            self.state_manager_breaker
        } else {
            BreakerConfig::default()
        };
        let guard = Guard::new(service, config, self.telemetry.clone());
        self.breakers.push(guard.breaker().clone());
        guard
    }

    /// `service` over HTTP at `base`, behind its guard.
    fn http(&mut self, service: &'static str, base: Url) -> anyhow::Result<Downstream> {
        let client = match &self.client {
            Some(client) => client.clone(),
            None => self
                .client
                .insert(build_client(&ClientConfig::default())?)
                .clone(),
        };
        self.http.push(service);
        let guard = self.guard(service);
        Ok(Downstream::new(base, client, guard))
    }

    /// A platform service over HTTP (the `variable` URL), whose own `/health` is probed.
    fn platform_service(
        &mut self,
        service: &'static str,
        variable: &str,
        url: &str,
    ) -> anyhow::Result<Downstream> {
        let downstream = self.http(service, parse(variable, url)?)?;
        self.probes.push(Arc::new(HealthCheck::new(&downstream)));
        Ok(downstream)
    }
}

impl Downstreams {
    /// Wires every port: HTTP adapters for what `urls` names, the `simulators` for the rest
    /// (tests may have wrapped one), each behind its guard. `state_manager_breaker` configures the State Manager's breaker;
    /// the others use the default breaker settings. Installs the rustls ring provider.
    pub fn build(
        urls: &DownstreamUrls,
        simulators: Ports,
        state_manager_breaker: BreakerConfig,
        telemetry: Arc<dyn Telemetry>,
    ) -> anyhow::Result<Self> {
        portal_outbound::install_crypto_provider();
        let mut w = Wiring {
            telemetry,
            state_manager_breaker,
            client: None,
            breakers: Vec::new(),
            http: Vec::new(),
            probes: Vec::new(),
        };
        let auth_service: Arc<dyn AuthService> = match &urls.auth_service {
            Some(u) => Arc::new(portal_auth_service::HttpAuthService::new(
                w.platform_service(portal_auth_service::SERVICE, "AUTH_SERVICE_URL", u)?,
            )),
            None => Guarded::new(
                simulators.auth_service,
                w.guard(portal_auth_service::SERVICE),
            ),
        };
        let tenant_service: Arc<dyn TenantService> = match &urls.tenant_service {
            Some(u) => Arc::new(portal_tenant_service::HttpTenantService::new(
                w.platform_service(portal_tenant_service::SERVICE, "TENANT_SERVICE_URL", u)?,
            )),
            None => Guarded::new(
                simulators.tenant_service,
                w.guard(portal_tenant_service::SERVICE),
            ),
        };
        let state_manager: Arc<dyn StateManager> = match &urls.state_manager {
            Some(u) => Arc::new(portal_state_manager::HttpStateManager::new(
                w.platform_service(portal_state_manager::SERVICE, "STATE_MANAGER_URL", u)?,
            )),
            None => Guarded::new(
                simulators.state_manager,
                w.guard(portal_state_manager::SERVICE),
            ),
        };
        let genesys: Arc<dyn GenesysCloud> = if urls.genesys_is_http() {
            genesys(urls, &mut w)?
        } else {
            Guarded::new(simulators.genesys, w.guard(portal_genesys::SERVICE))
        };
        let whatsapp: Arc<dyn WhatsApp> = if urls.meta_is_http() {
            whatsapp(urls, &mut w)?
        } else {
            Guarded::new(simulators.whatsapp, w.guard(portal_whatsapp::SERVICE))
        };
        Ok(Self {
            ports: Ports {
                auth_service,
                tenant_service,
                state_manager,
                genesys,
                whatsapp,
            },
            breakers: w.breakers,
            http: w.http,
            probes: w.probes,
        })
    }
}

/// Genesys Cloud over HTTP: the overridden hosts, else each tenant's region.
fn genesys(urls: &DownstreamUrls, w: &mut Wiring) -> anyhow::Result<Arc<dyn GenesysCloud>> {
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
    // The adapter picks each call's host itself (the overrides, else the tenant's region);
    // the downstream's base is only a label.
    let label = match login_base.clone().or_else(|| api_base.clone()) {
        Some(url) => url,
        None => parse("GENESYS_REGIONAL", "https://login.mypurecloud.com")?,
    };
    Ok(Arc::new(portal_genesys::HttpGenesysCloud::new(
        w.http(portal_genesys::SERVICE, label)?,
        portal_genesys::Endpoints {
            login_base,
            api_base,
        },
    )))
}

/// Meta's Graph API over HTTP (`META_GRAPH_BASE_URL`, `META_GRAPH_VERSION`).
fn whatsapp(urls: &DownstreamUrls, w: &mut Wiring) -> anyhow::Result<Arc<dyn WhatsApp>> {
    let base = parse(
        "META_GRAPH_BASE_URL",
        urls.meta_graph_base
            .as_deref()
            .unwrap_or(portal_whatsapp::DEFAULT_GRAPH_BASE_URL),
    )?;
    let mut adapter = portal_whatsapp::HttpWhatsApp::new(w.http(portal_whatsapp::SERVICE, base)?);
    if let Some(v) = urls.meta_graph_version.as_deref().filter(|v| !v.is_empty()) {
        adapter = adapter.with_version(v);
    }
    Ok(Arc::new(adapter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::ports::system::{NoopTelemetry, SystemClock};

    const EVERY_SERVICE: [&str; 5] = [
        "authService",
        "tenantService",
        "stateManager",
        "genesysCloud",
        "metaGraph",
    ];

    fn build(urls: &DownstreamUrls) -> anyhow::Result<Downstreams> {
        let platform = portal_sandbox::Platform::demo(Arc::new(SystemClock));
        Downstreams::build(
            urls,
            Ports::simulated(&platform),
            BreakerConfig::default(),
            Arc::new(NoopTelemetry),
        )
    }

    fn breaker_names(d: &Downstreams) -> Vec<&'static str> {
        d.breakers.iter().map(|b| b.name()).collect()
    }

    #[test]
    fn nothing_configured_means_every_simulator_each_behind_one_breaker() {
        let d = build(&DownstreamUrls::default()).unwrap();
        assert!(d.http.is_empty());
        assert!(d.probes.is_empty());
        assert_eq!(breaker_names(&d), EVERY_SERVICE);
    }

    #[test]
    fn each_url_switches_its_port_to_http_and_bad_urls_are_refused() {
        let urls = DownstreamUrls {
            state_manager: Some("http://127.0.0.1:9090".into()),
            meta_graph_base: Some("http://127.0.0.1:9090/meta".into()),
            ..Default::default()
        };
        let d = build(&urls).unwrap();
        assert_eq!(d.http, vec!["stateManager", "metaGraph"]);
        assert_eq!(d.probes.len(), 1, "the State Manager's own /health");
        assert_eq!(breaker_names(&d), EVERY_SERVICE, "one breaker each, still");

        // The real Genesys Cloud of each tenant's region, without overriding its hosts.
        let regional = DownstreamUrls {
            genesys_regional: true,
            ..Default::default()
        };
        assert_eq!(build(&regional).unwrap().http, vec!["genesysCloud"]);

        let bad = DownstreamUrls {
            auth_service: Some("ftp://example.com".into()),
            ..Default::default()
        };
        let err = build(&bad).unwrap_err();
        assert!(err.to_string().contains("AUTH_SERVICE_URL"), "{err}");
    }
}
