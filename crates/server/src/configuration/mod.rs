//! Configuration: defaults < optional file named by `PORTAL_CONFIG` < environment. The spec's
//! variable names (§16.2) work as written (`PORT`, `FRONTEND_URL`, `COOKIE_SECRET`, ...);
//! in a file, the same names in lower case. Validated with garde; every problem is reported at
//! once.

//!
//! # Layout
//! - here: [`Settings`] with its defaults, loading and validation;
//! - `rules`: garde's custom rules of single settings;
//! - `production`: what the production profile refuses (across settings);
//! - `derived`: what each part of the service is given from the settings (cipher, URLs,
//!   limits, breaker, hub, logging, ...);
//! - `redis`: [`RedisConfig`], the Redis topology settings.

mod derived;
mod production;
mod redis;
mod rules;
#[cfg(test)]
mod tests;

pub use redis::RedisConfig;

use garde::Validate;
use portal_domain::auth::RateLimits;
use portal_domain::model::Region;
use portal_domain::ports::stores::RatePolicy;
use portal_domain::secret::{ExposeSecret, SecretString};
use rules::*;
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
    /// `BASE_URL`: this service's public URL (default `http://localhost:{port}` when `HOST` is
    /// a loopback or unspecified address, so it shares the frontend's host name; else
    /// `http://{host}:{port}`).
    #[garde(inner(url))]
    pub base_url: Option<String>,
    /// `FRONTEND_URL`: the portal frontend (CORS origin, sign-in landing; default
    /// `http://localhost:3000`: the same host name as the default `BASE_URL`, so the session
    /// cookie is sent with the frontend's requests).
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
    /// `GENESYS_REGIONAL`: talk to the real Genesys Cloud of each tenant's region
    /// (`https://login.{domain}`, `https://api.{domain}`, decisions §4) without overriding
    /// the hosts (false: simulated unless a base URL above is set).
    #[garde(skip)]
    pub genesys_regional: bool,
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

    /// Every `REDIS_*` setting (read from the same sources; see [`redis`]).
    #[serde(skip)]
    #[garde(skip)]
    pub redis: RedisConfig,

    /// `ENCRYPTION_KEY`: 64 hex characters (AES-256). Generated when absent (embedded default).
    #[garde(custom(hex_key_rule))]
    pub encryption_key: Option<SecretString>,
    /// `ENCRYPTION_KEY_ID`: the key id written into new ciphertexts (`k1`); change it with the
    /// key when rotating, so old ciphertexts still name the key that decrypts them.
    #[garde(custom(key_id_rule))]
    pub encryption_key_id: String,
    /// `ENCRYPTION_PREVIOUS_KEYS`: `kid:hex[,kid:hex...]`, retired keys kept for decryption
    /// only during a rotation.
    #[garde(custom(previous_keys_rule))]
    pub encryption_previous_keys: Option<SecretString>,
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
    /// `FORWARDED_HEADER`: the header the trusted proxies write the client chain into,
    /// `x-forwarded-for` (default) or `forwarded` (RFC 7239). Only that one is read.
    #[garde(custom(forwarded_header_rule))]
    pub forwarded_header: String,
    /// `DOCS_ENABLED`: serve the interactive API documentation at `/docs` (default: on,
    /// off when `PORTAL_ENV=production`).
    #[garde(skip)]
    pub docs_enabled: Option<bool>,
    /// `HTTP_MAX_HEADERS`: most header fields a request may carry (64; the HTTP parser's own
    /// hard limit is 96).
    #[garde(range(min = 8, max = 95))]
    pub http_max_headers: usize,
    /// `HTTP_MAX_HEADER_BYTES`: most bytes of header names and values (16 KiB).
    #[garde(range(min = 1024, max = 65536))]
    pub http_max_header_bytes: usize,
    /// `HTTP_MAX_URI_BYTES`: longest request target, path and query (8 KiB).
    #[garde(range(min = 256, max = 65536))]
    pub http_max_uri_bytes: usize,
    /// `HTTP_CLIENT_REQUEST_TIMEOUT_MS`: how long a client may take to send a request's head
    /// after connecting; the HTTP parser answers a slower one with 408 (5 s). At least 1 s:
    /// the parser's clock is refreshed every 500 ms, so a shorter deadline can already have
    /// passed when the connection is accepted.
    #[garde(range(min = 1_000, max = 300_000))]
    pub http_client_request_timeout_ms: u64,
    /// `LOG_LEVEL`: a tracing filter (`info`, `portal_api=debug,info`).
    #[garde(length(min = 1))]
    pub log_level: String,
    /// `LOG_FORMAT`: `json` or `pretty` (default: `pretty` on a terminal outside production,
    /// `json` otherwise; production refuses `pretty`).
    #[garde(inner(custom(one_of(&["json", "pretty"]))))]
    pub log_format: Option<String>,
    /// `METRICS_ENABLED`: serve `/metrics` on the main port (block it at the proxy) (true).
    #[garde(skip)]
    pub metrics_enabled: bool,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP/HTTP collector base URL (`http://collector:4318`);
    /// unset: no span export.
    #[garde(skip)]
    pub otel_exporter_otlp_endpoint: Option<String>,

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
    /// `SESSION_MAX_PER_USER`: live sessions per user; a sign-in beyond it ends the least
    /// recently active one (20).
    #[garde(range(min = 1, max = 1000))]
    pub session_max_per_user: usize,
    /// `SESSION_REFRESH_LEASE_MS`: the lease of a session's refresh lock, renewed every third
    /// of it while the Auth Service call runs; a crashed holder frees it after this (5000).
    #[garde(range(min = 30, max = 600_000))]
    pub session_refresh_lease_ms: u64,
    /// `SESSION_REFRESH_WAIT_MS`: how long a refresh waits for another one of the same
    /// session before answering 503 (10000).
    #[garde(range(min = 100, max = 600_000))]
    pub session_refresh_wait_ms: u64,

    /// `AUDIT_HMAC_KEY`: signs the audit trail's HMAC-SHA256 chain; at least 32 characters,
    /// required in production (generated per process otherwise: a restart then breaks
    /// `verify` for the entries written before it).
    #[garde(custom(audit_key_rule))]
    pub audit_hmac_key: Option<SecretString>,
    /// `AUDIT_RETENTION_DAYS`: entries older than this are dropped (90).
    #[garde(range(min = 1, max = 3650))]
    pub audit_retention_days: u64,
    /// `AUDIT_MAX_ENTRIES`: entries kept per tenant, the oldest dropped first (100000).
    #[garde(range(min = 100, max = 100_000_000))]
    pub audit_max_entries: usize,
    /// `AUDIT_QUEUE_CAPACITY`: entries waiting to be written before new ones go to the log
    /// (`audit=true`) instead (10000).
    #[garde(range(min = 1, max = 1_000_000))]
    pub audit_queue_capacity: usize,
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
    /// `WS_HISTORY_MAX_EVENTS`: events each tenant's history keeps for reconnecting sockets
    /// (1000); a socket that missed more gets `recovered: false`.
    #[garde(range(min = 1, max = 100_000))]
    pub ws_history_max_events: u32,
    /// `WS_HISTORY_MAX_AGE_SECS`: how long an event stays recoverable (300).
    #[garde(range(min = 1, max = 86_400))]
    pub ws_history_max_age_secs: u64,
    /// `WS_MAX_PER_SESSION`: open WebSockets per session, across instances (5).
    #[garde(range(min = 1))]
    pub ws_max_per_session: u32,
    /// `WS_MAX_PER_USER`: open WebSockets per user, across instances (20).
    #[garde(range(min = 1))]
    pub ws_max_per_user: u32,
    /// `WS_MAX_PER_INSTANCE`: open WebSockets on this instance (20000).
    #[garde(range(min = 1))]
    pub ws_max_per_instance: usize,
    /// `WS_RECONNECT_DELAY_MIN_MS` / `WS_RECONNECT_DELAY_MAX_MS`: the range the reconnect delay
    /// suggested in the shutdown close (1001) is drawn from (500 / 5000).
    #[garde(range(max = 600_000))]
    pub ws_reconnect_delay_min_ms: u64,
    /// See `ws_reconnect_delay_min_ms`; at least the minimum.
    #[garde(range(max = 600_000))]
    pub ws_reconnect_delay_max_ms: u64,
    /// `BODY_LIMIT_BYTES`: JSON body cap (64 KiB).
    #[garde(range(min = 1024))]
    pub body_limit_bytes: usize,
    /// `SHUTDOWN_GRACE_SECONDS`: after SIGTERM/SIGINT, how long in-flight requests may take
    /// to finish before their connections are dropped (30; keep it below the orchestrator's
    /// termination grace period).
    #[garde(range(max = 3600))]
    pub shutdown_grace_seconds: u64,
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
            genesys_regional: false,
            meta_graph_base_url: None,
            meta_graph_version: None,
            auth_service_url: None,
            tenant_service_url: None,
            state_manager_url: None,
            redis: RedisConfig::default(),
            encryption_key: None,
            encryption_key_id: "k1".into(),
            encryption_previous_keys: None,
            cookie_secret: None,
            cookie_domain: None,
            cookie_secure: None,
            trusted_proxies: String::new(),
            forwarded_header: "x-forwarded-for".into(),
            docs_enabled: None,
            http_max_headers: 64,
            http_max_header_bytes: 16 * 1024,
            http_max_uri_bytes: 8 * 1024,
            http_client_request_timeout_ms: 5_000,
            log_level: "info".into(),
            log_format: None,
            metrics_enabled: true,
            otel_exporter_otlp_endpoint: None,
            rate_limit_auth_max: 10,
            rate_limit_auth_window_secs: 900,
            rate_limit_api_max: 100,
            rate_limit_api_window_secs: 60,
            rate_limit_onboarding_max: 5,
            rate_limit_onboarding_window_secs: 900,
            onboarding_state_ttl_secs: 3600,
            session_ttl_secs: 24 * 3600,
            session_max_per_user: 20,
            session_refresh_lease_ms: 5_000,
            session_refresh_wait_ms: 10_000,
            audit_hmac_key: None,
            audit_retention_days: 90,
            audit_max_entries: 100_000,
            audit_queue_capacity: 10_000,
            ws_ping_interval_ms: 15_000,
            ws_idle_timeout_ms: 30_000,
            ws_session_check_ms: 60_000,
            ws_queue_capacity: 256,
            ws_history_max_events: 1000,
            ws_history_max_age_secs: 300,
            ws_max_per_session: 5,
            ws_max_per_user: 20,
            ws_max_per_instance: 20_000,
            ws_reconnect_delay_min_ms: 500,
            ws_reconnect_delay_max_ms: 5_000,
            body_limit_bytes: 64 * 1024,
            shutdown_grace_seconds: 30,
            workers: None,
            state_manager_breaker_failure_rate: 0.5,
            state_manager_breaker_min_calls: 5,
            state_manager_breaker_open_secs: 30,
            state_manager_breaker_half_open_probes: 1,
        }
    }
}

/// The field names serde's derive gives `T` (a deserializer that only records them).
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};
    struct Fields(&'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for &mut Fields {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("only structs"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(Self::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields = Fields(&[]);
    let _ = T::deserialize(&mut fields);
    fields.0
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
        // No `try_parsing`: it turns "0123" into the number 123 before serde sees it, so a
        // password, client ID or key made of digits would lose its leading zeros. Numbers and
        // booleans are still parsed from their strings by the typed fields.
        let environment = config::Environment::default().source(env);
        let raw = builder
            .add_source(environment)
            .build()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        let mut settings: Settings = raw
            .clone()
            .try_deserialize()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        settings.redis = raw
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
        problems.extend(self.redis.problems());
        if self.ws_reconnect_delay_max_ms < self.ws_reconnect_delay_min_ms {
            problems.push(
                "WS_RECONNECT_DELAY_MAX_MS: must be at least WS_RECONNECT_DELAY_MIN_MS".into(),
            );
        }
        if self.is_production() {
            problems.extend(self.production_problems());
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// Every setting's variable name (upper case), read from the struct's own field list, so
    /// the deployment files can be checked against it.
    pub fn variables() -> Vec<String> {
        field_names::<Settings>()
            .iter()
            .chain(field_names::<RedisConfig>())
            .map(|f| f.to_ascii_uppercase())
            .collect()
    }
}
