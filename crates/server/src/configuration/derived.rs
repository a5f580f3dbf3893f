//! What each part of the service is given from the settings.

use super::rules::split_list;
use super::*;

impl Settings {
    /// The cipher's key ring from `ENCRYPTION_KEY` (id `ENCRYPTION_KEY_ID`) and
    /// `ENCRYPTION_PREVIOUS_KEYS`; `None` without `ENCRYPTION_KEY` (then the embedded default
    /// generates one per process).
    pub fn cipher(&self) -> anyhow::Result<Option<portal_crypto::AesGcmCipher>> {
        let Some(key) = &self.encryption_key else {
            return Ok(None);
        };
        let previous: Vec<(&str, &str)> = match &self.encryption_previous_keys {
            Some(list) => split_list(list.expose_secret())
                .filter_map(|entry| entry.split_once(':'))
                .map(|(kid, key)| (kid.trim(), key.trim()))
                .collect(),
            None => Vec::new(),
        };
        portal_crypto::AesGcmCipher::from_hex_keys(
            (self.encryption_key_id.as_str(), key.expose_secret()),
            &previous,
        )
        .map(Some)
        .map_err(|e| anyhow::anyhow!("ENCRYPTION_KEY / ENCRYPTION_PREVIOUS_KEYS: {e}"))
    }

    /// `PORTAL_ENV=production`.
    pub fn is_production(&self) -> bool {
        self.portal_env == "production"
    }

    /// The Genesys region (validated).
    pub fn region(&self) -> Region {
        self.genesys_region.parse().unwrap_or(Region::UsEast1)
    }

    /// Whether the Auth Service is simulated (no `AUTH_SERVICE_URL`); then so is the Genesys
    /// login page, the only one whose codes the simulator accepts.
    pub fn simulated_auth(&self) -> bool {
        self.auth_service_url.is_none()
    }

    /// `BASE_URL` without its trailing `/`, or `http://localhost:{port}` (the bound port)
    /// when `HOST` is a loopback or unspecified address (`127.0.0.1`, `0.0.0.0`, `::1`): one
    /// host name with the default `FRONTEND_URL`, so a browser sends the session cookie to
    /// both; else `http://{HOST}:{port}`.
    pub fn public_base_url(&self, port: u16) -> String {
        match &self.base_url {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => {
                let local = self
                    .host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
                    || self.host.eq_ignore_ascii_case("localhost");
                let host = if local {
                    "localhost"
                } else {
                    self.host.as_str()
                };
                format!("http://{host}:{port}")
            }
        }
    }

    /// The log settings: `LOG_LEVEL`, and `LOG_FORMAT` or else pretty on a terminal outside
    /// production; colours only for pretty lines on a terminal, unless `NO_COLOR` is set.
    pub fn logging(&self, terminal: bool, no_color: bool) -> crate::telemetry::Logging {
        use crate::telemetry::LogFormat;
        let format = match self.log_format.as_deref() {
            Some("pretty") => LogFormat::Pretty,
            Some(_) => LogFormat::Json,
            None if terminal && !self.is_production() => LogFormat::Pretty,
            None => LogFormat::Json,
        };
        crate::telemetry::Logging {
            level: self.log_level.clone(),
            format,
            ansi: format == LogFormat::Pretty && terminal && !no_color,
        }
    }

    /// `GENESYS_REDIRECT_URI`, or the callback under `base_url`.
    pub fn redirect_uri(&self, base_url: &str) -> String {
        self.genesys_redirect_uri
            .clone()
            .unwrap_or_else(|| format!("{base_url}/api/v1/auth/callback"))
    }

    /// `GENESYS_CLIENT_ID`, or the client the simulated login accepts.
    pub fn client_id(&self) -> String {
        self.genesys_client_id
            .clone()
            .unwrap_or_else(|| crate::startup::SANDBOX_CLIENT_ID.to_owned())
    }

    /// The Genesys authorize endpoint under `GENESYS_LOGIN_BASE_URL`, else under the simulated
    /// login page (simulated Auth Service, served at `base_url`), else under the region's.
    pub fn authorize_url(&self, base_url: &str) -> anyhow::Result<url::Url> {
        let login_base = match (&self.genesys_login_base_url, self.simulated_auth()) {
            (Some(b), _) => b.trim_end_matches('/').to_owned(),
            (None, true) => format!("{base_url}{}", crate::startup::SANDBOX_LOGIN_PATH),
            (None, false) => self.region().login_base_url(),
        };
        url::Url::parse(&format!("{login_base}/oauth/authorize"))
            .map_err(|e| anyhow::anyhow!("GENESYS_LOGIN_BASE_URL: {e}"))
    }

    /// `COOKIE_SECURE`, else secure in production and behind https (`base_url`); plain-HTTP
    /// local use may go without.
    pub fn secure_cookies(&self, base_url: &str) -> bool {
        self.cookie_secure
            .unwrap_or(self.is_production() || base_url.starts_with("https://"))
    }

    /// The trusted proxies (validated).
    pub fn proxies(&self) -> Vec<portal_api::TrustedProxy> {
        split_list(&self.trusted_proxies)
            .filter_map(portal_api::TrustedProxy::parse)
            .collect()
    }

    /// The forwarding header the trusted proxies write (validated).
    pub fn forwarded_header(&self) -> portal_api::ForwardedHeader {
        portal_api::ForwardedHeader::parse(&self.forwarded_header).unwrap_or_default()
    }

    /// `DOCS_ENABLED`, else on except in production.
    pub fn docs(&self) -> bool {
        self.docs_enabled.unwrap_or(!self.is_production())
    }

    /// The request-head limits the edge answers in the error format.
    pub fn head_limits(&self) -> portal_api::HeadLimits {
        portal_api::HeadLimits {
            max_headers: self.http_max_headers,
            max_header_bytes: self.http_max_header_bytes,
            max_uri_bytes: self.http_max_uri_bytes,
        }
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

    /// The audit trail's retention and queue.
    pub fn audit(&self) -> portal_domain::audit::AuditSettings {
        portal_domain::audit::AuditSettings {
            retention: portal_domain::ports::stores::AuditRetention {
                max_entries: self.audit_max_entries,
                max_age: Duration::from_secs(self.audit_retention_days * 24 * 3600),
            },
            queue_capacity: self.audit_queue_capacity,
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

    /// The real-time hub's limits (`WS_*`).
    pub fn hub(&self) -> portal_domain::realtime::HubSettings {
        use portal_domain::ports::realtime::{Retention, SocketCaps};
        portal_domain::realtime::HubSettings {
            queue_capacity: self.ws_queue_capacity,
            retention: Retention {
                max_events: self.ws_history_max_events,
                max_age: Duration::from_secs(self.ws_history_max_age_secs),
                dedup_window: portal_domain::realtime::DEDUP_WINDOW,
            },
            caps: SocketCaps {
                per_session: self.ws_max_per_session,
                per_user: self.ws_max_per_user,
            },
            max_sockets: self.ws_max_per_instance,
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
            genesys_regional: self.genesys_regional,
            meta_graph_base: self.meta_graph_base_url.clone(),
            meta_graph_version: self.meta_graph_version.clone(),
        }
    }

    /// Whether any Redis setting is present.
    pub fn wants_redis(&self) -> bool {
        self.redis.is_set()
    }
}
