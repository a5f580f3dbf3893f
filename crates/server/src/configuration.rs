//! Configuration: defaults < optional file named by `PORTAL_CONFIG` < environment. The spec's
//! variable names (§16.2) work as written (`PORT`, `FRONTEND_URL`, `COOKIE_SECRET`, ...);
//! in a file, the same names in lower case. Validated with garde; every problem is reported at
//! once.

mod redis;

pub use redis::RedisConfig;

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

/// A key id as the cipher accepts it: 1-32 of `A-Z a-z 0-9 _ -`.
fn is_key_id(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn key_id_rule(value: &str, _: &()) -> garde::Result {
    if is_key_id(value) {
        Ok(())
    } else {
        Err(garde::Error::new(
            "must be 1-32 characters of A-Z a-z 0-9 _ -",
        ))
    }
}

fn is_hex_key(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `kid:hex` pairs; the problems name entries by position, never by content.
fn previous_keys_rule(value: &Option<SecretString>, _: &()) -> garde::Result {
    let Some(value) = value else { return Ok(()) };
    let bad: Vec<String> = split_list(value.expose_secret())
        .enumerate()
        .filter(|(_, entry)| match entry.split_once(':') {
            Some((kid, key)) => !is_key_id(kid.trim()) || !is_hex_key(key.trim()),
            None => true,
        })
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "entries must read kid:<64 hex characters>; not so: entry {}",
            bad.join(", ")
        )))
    }
}

/// Every byte (hex pair) the same, e.g. all zeros: a placeholder, not a key.
fn is_repeated_byte_key(hex_key: &str) -> bool {
    let lower = hex_key.to_ascii_lowercase();
    let first = lower.get(..2).unwrap_or_default();
    lower.len() >= 2 && lower.as_bytes().chunks(2).all(|c| c == first.as_bytes())
}

fn audit_key_rule(value: &Option<SecretString>, _: &()) -> garde::Result {
    match value {
        Some(s) if s.expose_secret().len() < 32 => {
            Err(garde::Error::new("must be at least 32 characters"))
        }
        _ => Ok(()),
    }
}

/// One character repeated: a placeholder, not a secret.
fn is_placeholder(secret: &str) -> bool {
    secret.chars().all(|c| secret.starts_with(c))
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

fn forwarded_header_rule(value: &str, _: &()) -> garde::Result {
    match portal_api::ForwardedHeader::parse(value) {
        Some(_) => Ok(()),
        None => Err(garde::Error::new("must be x-forwarded-for or forwarded")),
    }
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
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

    /// What the production profile (decisions §2) refuses, beyond garde's field rules: every
    /// setting production needs, secure cookies, https public URLs, no wildcard origin, no
    /// placeholder key, no simulator. Messages name settings, never their values.
    fn production_problems(&self) -> Vec<String> {
        const REQUIRED: &str = "required when PORTAL_ENV=production";
        let mut problems = Vec::new();
        let mut require = |name: &str, present: bool, why: &str| {
            if !present {
                problems.push(format!("{name}: {REQUIRED}{why}"));
            }
        };
        require(
            "REDIS_URL (or REDIS_HOST, REDIS_CLUSTER_NODES, REDIS_SENTINELS)",
            self.wants_redis(),
            " (unset: in-memory stores, not shared between instances, lost on restart)",
        );
        require("ENCRYPTION_KEY", self.encryption_key.is_some(), "");
        require("COOKIE_SECRET", self.cookie_secret.is_some(), "");
        require(
            "AUDIT_HMAC_KEY",
            self.audit_hmac_key.is_some(),
            " (unset: a key per process, so the audit trail no longer verifies after a restart)",
        );
        require("BASE_URL", self.base_url.is_some(), "");
        require("GENESYS_CLIENT_ID", self.genesys_client_id.is_some(), "");
        for (name, url) in [
            ("AUTH_SERVICE_URL", &self.auth_service_url),
            ("TENANT_SERVICE_URL", &self.tenant_service_url),
            ("STATE_MANAGER_URL", &self.state_manager_url),
        ] {
            require(
                name,
                url.is_some(),
                " (unset: the simulator with demo data)",
            );
        }
        let urls = self.downstream_urls();
        require(
            "GENESYS_REGIONAL=true (or GENESYS_API_BASE_URL / GENESYS_LOGIN_BASE_URL)",
            urls.genesys_is_http(),
            " (unset: simulated Genesys Cloud)",
        );
        require(
            "META_GRAPH_VERSION (or META_GRAPH_BASE_URL)",
            urls.meta_is_http(),
            " (unset: simulated WhatsApp Cloud API; e.g. v18.0)",
        );

        if let Some(key) = &self.encryption_key
            && is_repeated_byte_key(key.expose_secret())
        {
            problems.push(
                "ENCRYPTION_KEY: a placeholder (every byte the same, e.g. all zeros), not a key"
                    .into(),
            );
        }
        for (name, secret) in [
            ("COOKIE_SECRET", &self.cookie_secret),
            ("AUDIT_HMAC_KEY", &self.audit_hmac_key),
        ] {
            if let Some(secret) = secret
                && is_placeholder(secret.expose_secret())
            {
                problems.push(format!(
                    "{name}: a placeholder (one repeated character), not a secret"
                ));
            }
        }
        if self.log_format.as_deref() == Some("pretty") {
            problems.push(
                "LOG_FORMAT: must be json when PORTAL_ENV=production (log shippers read JSON lines)"
                    .into(),
            );
        }
        if self.cookie_secure == Some(false) {
            problems.push(
                "COOKIE_SECURE: must not be false when PORTAL_ENV=production (session cookies would travel over plain HTTP)".into(),
            );
        }
        if self.frontend_url.contains('*') {
            problems.push(
                "FRONTEND_URL: a wildcard origin (*) is refused; name the frontend's https origin"
                    .into(),
            );
        }
        // Public URLs: what browsers and Genesys/Meta see. The platform services
        // (AUTH_SERVICE_URL, ...) are internal and may be plain http inside the cluster.
        for (name, value) in [
            ("BASE_URL", self.base_url.as_deref()),
            ("FRONTEND_URL", Some(self.frontend_url.as_str())),
            ("GENESYS_REDIRECT_URI", self.genesys_redirect_uri.as_deref()),
            (
                "GENESYS_LOGIN_BASE_URL",
                self.genesys_login_base_url.as_deref(),
            ),
            ("GENESYS_API_BASE_URL", self.genesys_api_base_url.as_deref()),
            ("META_GRAPH_BASE_URL", self.meta_graph_base_url.as_deref()),
        ] {
            if let Some(v) = value
                && !v.contains('*')
                && !v.trim().to_ascii_lowercase().starts_with("https://")
            {
                problems.push(format!(
                    "{name}: must be an https:// URL when PORTAL_ENV=production"
                ));
            }
        }
        problems
    }

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

    /// Every setting's variable name (upper case), read from the struct's own field list, so
    /// the deployment files can be checked against it.
    pub fn variables() -> Vec<String> {
        field_names::<Settings>()
            .iter()
            .chain(field_names::<RedisConfig>())
            .map(|f| f.to_ascii_uppercase())
            .collect()
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
        assert_eq!(
            url::Url::parse(&s.public_base_url(8080))
                .unwrap()
                .host_str(),
            url::Url::parse(&s.frontend_url).unwrap().host_str(),
            "the service and the frontend share a host name, so the cookie reaches both"
        );
        assert_eq!(s.public_base_url(8080), "http://localhost:8080");
        assert_eq!(s.region(), Region::UsEast1);
        assert_eq!(s.rate_limits(), RateLimits::default());
    }

    #[test]
    fn the_default_public_url_names_localhost_for_local_binds_only() {
        let with_host = |host: &str| Settings {
            host: host.into(),
            ..Settings::default()
        };
        for local in ["127.0.0.1", "0.0.0.0", "::1", "[::1]", "::", "localhost"] {
            assert_eq!(
                with_host(local).public_base_url(9000),
                "http://localhost:9000",
                "{local}"
            );
        }
        assert_eq!(
            with_host("10.1.2.3").public_base_url(9000),
            "http://10.1.2.3:9000"
        );
        let configured = Settings {
            base_url: Some("https://portal.example.com/".into()),
            ..Settings::default()
        };
        assert_eq!(
            configured.public_base_url(9000),
            "https://portal.example.com"
        );
    }

    #[test]
    fn log_format_pretty_on_a_terminal_json_elsewhere_and_in_production() {
        use crate::telemetry::LogFormat;
        let s = Settings::load_from(env(&[])).unwrap();
        let terminal = s.logging(true, false);
        assert_eq!((terminal.format, terminal.ansi), (LogFormat::Pretty, true));
        assert!(!s.logging(true, true).ansi, "NO_COLOR");
        let piped = s.logging(false, false);
        assert_eq!((piped.format, piped.ansi), (LogFormat::Json, false));
        let pretty = Settings::load_from(env(&[("LOG_FORMAT", "pretty")])).unwrap();
        let to_file = pretty.logging(false, false);
        assert_eq!(
            (to_file.format, to_file.ansi),
            (LogFormat::Pretty, false),
            "no colour codes in a file"
        );
        let json = Settings::load_from(env(&[("LOG_FORMAT", "json")])).unwrap();
        assert_eq!(json.logging(true, false).format, LogFormat::Json);
        let err = Settings::load_from(env(&[("LOG_FORMAT", "yaml")])).unwrap_err();
        assert!(err.to_string().contains("LOG_FORMAT"), "{err}");
        let production = Settings {
            portal_env: "production".into(),
            ..Settings::default()
        };
        assert_eq!(production.logging(true, false).format, LogFormat::Json);
        let refused = Settings {
            log_format: Some("pretty".into()),
            ..production
        }
        .validated()
        .unwrap_err();
        assert!(
            refused.to_string().contains("LOG_FORMAT: must be json"),
            "{refused}"
        );
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
            ("FORWARDED_HEADER", "Forwarded"),
        ]))
        .unwrap();
        assert_eq!(s.forwarded_header(), portal_api::ForwardedHeader::Forwarded);
        assert_eq!(s.port, 9000);
        assert_eq!(s.frontend_url, "https://portal.example.com");
        assert_eq!(s.region(), Region::EuWest1);
        assert_eq!(s.cookie_secure, Some(false));
        assert_eq!(s.rate_limits().auth.limit, 1000);
        assert_eq!(s.proxies().len(), 2);
    }

    #[test]
    fn the_docs_are_served_except_in_production_unless_configured() {
        let dev = Settings::load_from(env(&[])).unwrap();
        assert!(dev.docs());
        let off = Settings::load_from(env(&[("DOCS_ENABLED", "false")])).unwrap();
        assert!(!off.docs());
        let production = Settings {
            portal_env: "production".into(),
            ..Settings::default()
        };
        assert!(!production.docs());
        let production_on = Settings {
            docs_enabled: Some(true),
            ..production
        };
        assert!(production_on.docs());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Settings::load_from(env(&[
            ("PORTAL_ENV", "production"),
            ("FRONTEND_URL", "not a url"),
            ("GENESYS_REGION", "mars-1"),
            ("TRUSTED_PROXIES", "10.0.0.0/99"),
            ("FORWARDED_HEADER", "x-real-ip"),
            ("HTTP_MAX_HEADERS", "200"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for expected in [
            "FRONTEND_URL",
            "GENESYS_REGION",
            "TRUSTED_PROXIES",
            "FORWARDED_HEADER",
            "HTTP_MAX_HEADERS",
            "ENCRYPTION_KEY",
            "COOKIE_SECRET",
            "AUDIT_HMAC_KEY",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
    }

    #[test]
    fn values_made_of_digits_are_kept_as_written() {
        let key = format!("00{}", "12".repeat(31));
        let s = Settings::load_from(env(&[
            ("ENCRYPTION_KEY", key.as_str()),
            ("REDIS_PASSWORD", "007"),
            ("GENESYS_CLIENT_ID", "0042"),
            ("PORT", "9000"),
            ("REDIS_TLS", "true"),
            ("STATE_MANAGER_BREAKER_FAILURE_RATE", "0.25"),
        ]))
        .unwrap();
        assert_eq!(s.encryption_key.unwrap().expose_secret(), key);
        assert_eq!(s.redis.password.unwrap().expose_secret(), "007");
        assert_eq!(s.genesys_client_id.as_deref(), Some("0042"));
        assert_eq!(s.port, 9000);
        assert!(s.redis.tls);
        assert!((s.state_manager_breaker_failure_rate - 0.25).abs() < f64::EPSILON);
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        let err = Settings::load_from(env(&[
            ("ENCRYPTION_KEY", "zz-not-hex-zz"),
            ("COOKIE_SECRET", "short-secret-value"),
            ("AUDIT_HMAC_KEY", "short-audit-key"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ENCRYPTION_KEY") && text.contains("COOKIE_SECRET"));
        assert!(text.contains("AUDIT_HMAC_KEY"), "{text}");
        assert!(!text.contains("zz-not-hex-zz") && !text.contains("short-secret-value"));
        assert!(!text.contains("short-audit-key"));
    }
}
