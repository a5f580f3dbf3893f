//! Configuration: defaults < optional file named by `PORTAL_CONFIG` < environment. The spec's
//! variable names (§16.2) work as written (`PORT`, `FRONTEND_URL`, `COOKIE_SECRET`, ...);
//! in a file, the same names in lower case. Validated with garde; every problem is reported at
//! once.

use garde::Validate;
use portal_domain::auth::RateLimits;
use portal_domain::model::Region;
use portal_domain::ports::stores::RatePolicy;
use portal_domain::secret::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// Every setting. Field names are the environment variables in lower case.
#[derive(Debug, Clone, Deserialize, Validate)]
#[serde(default)]
pub struct Settings {
    /// `PORTAL_ENV`: `development` (default) or `production` (strict).
    #[garde(custom(one_of(&["development", "production", "test"])))]
    pub portal_env: String,
    /// `HOST`: bind address.
    #[garde(length(min = 1))]
    pub host: String,
    /// `PORT` (0 picks a free port; tests use it).
    #[garde(skip)]
    pub port: u16,
    /// `BASE_URL`: this service's public URL (default `http://{host}:{port}`).
    #[garde(inner(url))]
    pub base_url: Option<String>,
    /// `FRONTEND_URL`: the portal frontend (CORS origin, sign-in landing).
    #[garde(url)]
    pub frontend_url: String,

    /// `GENESYS_CLIENT_ID` (the embedded default uses the sandbox's client).
    #[garde(inner(length(min = 1, max = 256)))]
    pub genesys_client_id: Option<String>,
    /// `GENESYS_REDIRECT_URI` (default `{BASE_URL}/api/v1/auth/callback`).
    #[garde(inner(url))]
    pub genesys_redirect_uri: Option<String>,
    /// `GENESYS_REGION` (default `us-east-1`).
    #[garde(custom(valid_region))]
    pub genesys_region: String,
    /// `GENESYS_LOGIN_BASE_URL`: overrides `https://login.{region domain}`.
    #[garde(inner(url))]
    pub genesys_login_base_url: Option<String>,

    /// `GENESYS_API_BASE_URL`: overrides `https://api.{region domain}` (with
    /// `GENESYS_LOGIN_BASE_URL`, switches Genesys Cloud to the HTTP adapter).
    #[garde(inner(url))]
    pub genesys_api_base_url: Option<String>,
    /// `META_GRAPH_BASE_URL`: overrides `https://graph.facebook.com` (switches Meta to the
    /// HTTP adapter).
    #[garde(inner(url))]
    pub meta_graph_base_url: Option<String>,
    /// `META_GRAPH_VERSION`: Graph API version (`v18.0`; switches Meta to the HTTP adapter).
    #[garde(inner(length(min = 2, max = 16)))]
    pub meta_graph_version: Option<String>,

    /// `AUTH_SERVICE_URL`: the Auth Service over HTTP (unset: the simulator).
    #[garde(inner(url))]
    pub auth_service_url: Option<String>,
    /// `TENANT_SERVICE_URL`: the Tenant Service over HTTP (unset: the simulator).
    #[garde(inner(url))]
    pub tenant_service_url: Option<String>,
    /// `STATE_MANAGER_URL`: the State Manager over HTTP (unset: the simulator).
    #[garde(inner(url))]
    pub state_manager_url: Option<String>,

    /// `REDIS_URL`: every store on Redis (unset, with no `REDIS_HOST`: in-memory stores).
    #[garde(skip)]
    pub redis_url: Option<SecretString>,
    /// `REDIS_HOST`.
    #[garde(skip)]
    pub redis_host: Option<String>,
    /// `REDIS_PORT`.
    #[garde(skip)]
    pub redis_port: Option<u16>,
    /// `REDIS_PASSWORD`.
    #[garde(skip)]
    pub redis_password: Option<SecretString>,
    /// `REDIS_DB`.
    #[garde(skip)]
    pub redis_db: Option<u32>,
    /// `REDIS_TLS`: `rediss://` when the URL is built from `REDIS_HOST`.
    #[garde(skip)]
    pub redis_tls: bool,
    /// `REDIS_POOL_SIZE`: pooled connections per instance (16).
    #[garde(range(min = 1, max = 1024))]
    pub redis_pool_size: usize,
    /// `REDIS_CONNECT_TIMEOUT_MS`: deadline to connect or get a pooled connection (2000).
    #[garde(range(min = 10, max = 60_000))]
    pub redis_connect_timeout_ms: u64,
    /// `REDIS_COMMAND_TIMEOUT_MS`: deadline of one command (1000).
    #[garde(range(min = 10, max = 60_000))]
    pub redis_command_timeout_ms: u64,

    /// `ENCRYPTION_KEY`: 64 hex characters (AES-256). Generated when absent (embedded default).
    #[garde(custom(hex_key_rule))]
    pub encryption_key: Option<SecretString>,
    /// `COOKIE_SECRET`: at least 32 characters. Generated when absent (embedded default).
    #[garde(custom(cookie_secret_rule))]
    pub cookie_secret: Option<SecretString>,
    /// `COOKIE_DOMAIN`.
    #[garde(skip)]
    pub cookie_domain: Option<String>,
    /// `COOKIE_SECURE`: the `Secure` attribute (default: true unless the embedded default).
    #[garde(skip)]
    pub cookie_secure: Option<bool>,
    /// `TRUSTED_PROXIES`: comma-separated addresses or CIDR networks.
    #[garde(custom(proxies_rule))]
    pub trusted_proxies: String,
    /// `LOG_LEVEL`: a tracing filter (`info`, `portal_api=debug,info`).
    #[garde(length(min = 1))]
    pub log_level: String,

    /// `RATE_LIMIT_AUTH_MAX` / `RATE_LIMIT_AUTH_WINDOW_SECS` (10 per 900 s).
    #[garde(range(min = 1))]
    pub rate_limit_auth_max: u32,
    /// Window of the sign-in limit, seconds.
    #[garde(range(min = 1))]
    pub rate_limit_auth_window_secs: u64,
    /// `RATE_LIMIT_API_MAX` / `RATE_LIMIT_API_WINDOW_SECS` (100 per 60 s).
    #[garde(range(min = 1))]
    pub rate_limit_api_max: u32,
    /// Window of the API limit, seconds.
    #[garde(range(min = 1))]
    pub rate_limit_api_window_secs: u64,
    /// `RATE_LIMIT_ONBOARDING_MAX` / `RATE_LIMIT_ONBOARDING_WINDOW_SECS` (5 per 900 s).
    #[garde(range(min = 1))]
    pub rate_limit_onboarding_max: u32,
    /// Window of the onboarding limit, seconds.
    #[garde(range(min = 1))]
    pub rate_limit_onboarding_window_secs: u64,

    /// `ONBOARDING_STATE_TTL_SECS`: wizard state lifetime after its last update (1 h).
    #[garde(range(min = 1))]
    pub onboarding_state_ttl_secs: u64,
    /// `SESSION_TTL_SECS`: absolute session lifetime (24 h).
    #[garde(range(min = 60))]
    pub session_ttl_secs: u64,
    /// `WS_PING_INTERVAL_MS`: how often the server pings each WebSocket (15 s).
    #[garde(range(min = 10))]
    pub ws_ping_interval_ms: u64,
    /// `WS_IDLE_TIMEOUT_MS`: a WebSocket peer silent this long is dropped (30 s).
    #[garde(range(min = 10))]
    pub ws_idle_timeout_ms: u64,
    /// `WS_SESSION_CHECK_MS`: how often an open WebSocket re-checks its session (60 s).
    #[garde(range(min = 10))]
    pub ws_session_check_ms: u64,
    /// `WS_QUEUE_CAPACITY`: frames queued per WebSocket before it counts as a slow consumer
    /// and is closed with 1013 (256).
    #[garde(range(min = 1, max = 65536))]
    pub ws_queue_capacity: usize,
    /// `BODY_LIMIT_BYTES`: JSON body cap (64 KiB).
    #[garde(range(min = 1024))]
    pub body_limit_bytes: usize,
    /// `WORKERS`: HTTP worker threads (default: one per core).
    #[garde(inner(range(min = 1, max = 256)))]
    pub workers: Option<usize>,

    /// `STATE_MANAGER_BREAKER_FAILURE_RATE`: failure fraction (0-1] of recent State Manager
    /// calls that opens its circuit (0.5).
    #[garde(range(min = 0.01, max = 1.0))]
    pub state_manager_breaker_failure_rate: f64,
    /// `STATE_MANAGER_BREAKER_MIN_CALLS`: calls judged before the rate counts (5).
    #[garde(range(min = 1, max = 1000))]
    pub state_manager_breaker_min_calls: u32,
    /// `STATE_MANAGER_BREAKER_OPEN_SECS`: how long the circuit stays open (30).
    #[garde(range(min = 1))]
    pub state_manager_breaker_open_secs: u64,
    /// `STATE_MANAGER_BREAKER_HALF_OPEN_PROBES`: trial calls while half-open (1).
    #[garde(range(min = 1, max = 100))]
    pub state_manager_breaker_half_open_probes: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            portal_env: "development".into(),
            host: "127.0.0.1".into(),
            port: 8080,
            base_url: None,
            frontend_url: "http://localhost:3000".into(),
            genesys_client_id: None,
            genesys_redirect_uri: None,
            genesys_region: "us-east-1".into(),
            genesys_login_base_url: None,
            genesys_api_base_url: None,
            meta_graph_base_url: None,
            meta_graph_version: None,
            auth_service_url: None,
            tenant_service_url: None,
            state_manager_url: None,
            redis_url: None,
            redis_host: None,
            redis_port: None,
            redis_password: None,
            redis_db: None,
            redis_tls: false,
            redis_pool_size: 16,
            redis_connect_timeout_ms: 2000,
            redis_command_timeout_ms: 1000,
            encryption_key: None,
            cookie_secret: None,
            cookie_domain: None,
            cookie_secure: None,
            trusted_proxies: String::new(),
            log_level: "info".into(),
            rate_limit_auth_max: 10,
            rate_limit_auth_window_secs: 900,
            rate_limit_api_max: 100,
            rate_limit_api_window_secs: 60,
            rate_limit_onboarding_max: 5,
            rate_limit_onboarding_window_secs: 900,
            onboarding_state_ttl_secs: 3600,
            session_ttl_secs: 24 * 3600,
            ws_ping_interval_ms: 15_000,
            ws_idle_timeout_ms: 30_000,
            ws_session_check_ms: 60_000,
            ws_queue_capacity: 256,
            body_limit_bytes: 64 * 1024,
            workers: None,
            state_manager_breaker_failure_rate: 0.5,
            state_manager_breaker_min_calls: 5,
            state_manager_breaker_open_secs: 30,
            state_manager_breaker_half_open_probes: 1,
        }
    }
}

fn one_of(allowed: &'static [&'static str]) -> impl FnOnce(&String, &()) -> garde::Result {
    move |value, _| {
        if allowed.contains(&value.as_str()) {
            Ok(())
        } else {
            Err(garde::Error::new(format!(
                "must be one of {}",
                allowed.join(", ")
            )))
        }
    }
}

fn valid_region(value: &str, _: &()) -> garde::Result {
    value
        .parse::<Region>()
        .map(|_| ())
        .map_err(|_| garde::Error::new(format!("must be one of {}", Region::names())))
}

fn hex_key_rule(value: &Option<SecretString>, _: &()) -> garde::Result {
    match value {
        Some(k) => {
            let k = k.expose_secret();
            if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(())
            } else {
                Err(garde::Error::new("must be 64 hexadecimal characters"))
            }
        }
        None => Ok(()),
    }
}

fn cookie_secret_rule(value: &Option<SecretString>, _: &()) -> garde::Result {
    match value {
        Some(s) if s.expose_secret().len() < 32 => {
            Err(garde::Error::new("must be at least 32 characters"))
        }
        _ => Ok(()),
    }
}

fn proxies_rule(value: &str, _: &()) -> garde::Result {
    let bad: Vec<&str> = split_list(value)
        .filter(|p| portal_api::TrustedProxy::parse(p).is_none())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "not an IP address or CIDR network: {}",
            bad.join(", ")
        )))
    }
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Why the configuration was refused: every problem, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
    /// Reads the process environment (and `PORTAL_CONFIG`'s file) and validates.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(None)
    }

    /// Like [`Settings::load`], with an explicit environment (tests).
    pub fn load_from(env: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let file = match &env {
            Some(map) => map.get("PORTAL_CONFIG").cloned(),
            None => std::env::var("PORTAL_CONFIG").ok(),
        };
        let mut builder = config::Config::builder();
        if let Some(path) = file.filter(|p| !p.is_empty()) {
            builder = builder.add_source(config::File::with_name(&path).required(true));
        }
        let environment = config::Environment::default().try_parsing(true).source(env);
        let raw = builder
            .add_source(environment)
            .build()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        let settings: Settings = raw
            .try_deserialize()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        settings.validated()
    }

    /// Validates: garde's field rules plus the production requirements, all at once.
    pub fn validated(self) -> Result<Self, ConfigError> {
        let mut problems: Vec<String> = match self.validate() {
            Ok(()) => Vec::new(),
            Err(report) => report
                .iter()
                .map(|(path, e)| format!("{}: {}", path.to_string().to_uppercase(), e.message()))
                .collect(),
        };
        if self.is_production() {
            for (name, missing) in [
                ("ENCRYPTION_KEY", self.encryption_key.is_none()),
                ("COOKIE_SECRET", self.cookie_secret.is_none()),
            ] {
                if missing {
                    problems.push(format!("{name}: required when PORTAL_ENV=production"));
                }
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// `PORTAL_ENV=production`.
    pub fn is_production(&self) -> bool {
        self.portal_env == "production"
    }

    /// The Genesys region (validated).
    pub fn region(&self) -> Region {
        self.genesys_region.parse().unwrap_or(Region::UsEast1)
    }

    /// The trusted proxies (validated).
    pub fn proxies(&self) -> Vec<portal_api::TrustedProxy> {
        split_list(&self.trusted_proxies)
            .filter_map(portal_api::TrustedProxy::parse)
            .collect()
    }

    /// The State Manager's circuit breaker (window: 20 calls, or the minimum if larger).
    pub fn state_manager_breaker(&self) -> portal_domain::resilience::BreakerConfig {
        let defaults = portal_domain::resilience::BreakerConfig::default();
        portal_domain::resilience::BreakerConfig {
            failure_rate_threshold: self.state_manager_breaker_failure_rate,
            minimum_calls: self.state_manager_breaker_min_calls,
            window: defaults.window.max(self.state_manager_breaker_min_calls),
            open_for: Duration::from_secs(self.state_manager_breaker_open_secs),
            half_open_probes: self.state_manager_breaker_half_open_probes,
        }
    }

    /// The rate limits.
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits {
            auth: RatePolicy {
                limit: self.rate_limit_auth_max,
                window: Duration::from_secs(self.rate_limit_auth_window_secs),
            },
            onboarding: RatePolicy {
                limit: self.rate_limit_onboarding_max,
                window: Duration::from_secs(self.rate_limit_onboarding_window_secs),
            },
            api: RatePolicy {
                limit: self.rate_limit_api_max,
                window: Duration::from_secs(self.rate_limit_api_window_secs),
            },
        }
    }

    /// Where the downstreams are (HTTP adapters for what is set, simulators for the rest).
    pub fn downstream_urls(&self) -> crate::downstreams::DownstreamUrls {
        crate::downstreams::DownstreamUrls {
            auth_service: self.auth_service_url.clone(),
            tenant_service: self.tenant_service_url.clone(),
            state_manager: self.state_manager_url.clone(),
            genesys_login_base: self.genesys_login_base_url.clone(),
            genesys_api_base: self.genesys_api_base_url.clone(),
            meta_graph_base: self.meta_graph_base_url.clone(),
            meta_graph_version: self.meta_graph_version.clone(),
        }
    }

    /// Whether any Redis setting is present.
    pub fn wants_redis(&self) -> bool {
        self.redis_url.is_some() || self.redis_host.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn nothing_configured_gives_the_embedded_defaults() {
        let s = Settings::load_from(env(&[])).unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.frontend_url, "http://localhost:3000");
        assert_eq!(s.region(), Region::UsEast1);
        assert_eq!(s.rate_limits(), RateLimits::default());
    }

    #[test]
    fn spec_variable_names_work_as_written() {
        let s = Settings::load_from(env(&[
            ("PORT", "9000"),
            ("FRONTEND_URL", "https://portal.example.com"),
            ("GENESYS_REGION", "eu-west-1"),
            ("COOKIE_SECURE", "false"),
            ("RATE_LIMIT_AUTH_MAX", "1000"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ]))
        .unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.frontend_url, "https://portal.example.com");
        assert_eq!(s.region(), Region::EuWest1);
        assert_eq!(s.cookie_secure, Some(false));
        assert_eq!(s.rate_limits().auth.limit, 1000);
        assert_eq!(s.proxies().len(), 2);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Settings::load_from(env(&[
            ("PORTAL_ENV", "production"),
            ("FRONTEND_URL", "not a url"),
            ("GENESYS_REGION", "mars-1"),
            ("TRUSTED_PROXIES", "10.0.0.0/99"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for expected in [
            "FRONTEND_URL",
            "GENESYS_REGION",
            "TRUSTED_PROXIES",
            "ENCRYPTION_KEY",
            "COOKIE_SECRET",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        let err = Settings::load_from(env(&[
            ("ENCRYPTION_KEY", "zz-not-hex-zz"),
            ("COOKIE_SECRET", "short-secret-value"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ENCRYPTION_KEY") && text.contains("COOKIE_SECRET"));
        assert!(!text.contains("zz-not-hex-zz") && !text.contains("short-secret-value"));
    }
}
