//! Connection settings and the pool/client built from them.

use deadpool_redis::{Manager, Pool, Runtime};
use portal_domain::StoreError;
use portal_domain::secret::{ExposeSecret, SecretString};
use redis::AsyncConnectionConfig;
use std::fmt;
use std::time::Duration;

/// How to reach Redis.
pub struct RedisSettings {
    /// `redis://` or `rediss://` (TLS) URL. Secret because it may carry the password.
    /// `rediss://` uses rustls with the process-wide crypto provider: install ring's at
    /// start-up (`rustls::crypto::ring::default_provider().install_default()`).
    pub url: SecretString,
    /// Maximum pooled connections per instance (pub/sub uses one more, dedicated).
    pub pool_size: usize,
    /// Deadline to open a connection or to wait for a free one in the pool.
    pub connect_timeout: Duration,
    /// Deadline for one command (or script) once a connection is in hand.
    pub command_timeout: Duration,
    /// Prepended to every key (not to pub/sub channels or the outbound stream, which other
    /// services share), so several deployments can share one database.
    pub key_prefix: Option<String>,
}

impl RedisSettings {
    /// Settings with the defaults: 16 connections, 2 s to connect, 1 s per command.
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            pool_size: 16,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(1),
            key_prefix: None,
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"[REDACTED]")
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// Builds a Redis URL from the spec's `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`/`REDIS_DB`
/// parts (§3.1.4, §16.2). The password is percent-encoded; `tls` selects `rediss://`.
pub fn url_from_parts(
    host: &str,
    port: u16,
    password: Option<&SecretString>,
    db: u32,
    tls: bool,
) -> SecretString {
    let scheme = if tls { "rediss" } else { "redis" };
    let auth = match password {
        Some(p) if !p.expose_secret().is_empty() => {
            format!(":{}@", percent_encode(p.expose_secret()))
        }
        _ => String::new(),
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    SecretString::from(format!("{scheme}://{auth}{host}:{port}/{db}"))
}

fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens the client (checks the URL; connects lazily).
pub(crate) fn client(settings: &RedisSettings) -> Result<redis::Client, StoreError> {
    let url = settings.url.expose_secret();
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(StoreError::Unavailable(
            "redis URL must start with redis:// or rediss://".into(),
        ));
    }
    redis::Client::open(url).map_err(|_| StoreError::Unavailable("invalid redis URL".into()))
}

/// Builds the connection pool.
pub(crate) fn pool(settings: &RedisSettings) -> Result<Pool, StoreError> {
    // Validate the scheme and shape first, with an error that does not echo the URL.
    client(settings)?;
    let connection = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.command_timeout));
    let manager = Manager::new_with_config(settings.url.expose_secret(), connection)
        .map_err(|_| StoreError::Unavailable("invalid redis URL".into()))?;
    Pool::builder(manager)
        .max_size(settings.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.connect_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .build()
        .map_err(|_| StoreError::Unavailable("could not build the redis pool".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_from_parts_encodes_the_password_and_picks_the_scheme() {
        let pw = SecretString::from("p@ss:w/rd".to_owned());
        let url = url_from_parts("cache.local", 6380, Some(&pw), 2, false);
        assert_eq!(
            url.expose_secret(),
            "redis://:p%40ss%3Aw%2Frd@cache.local:6380/2"
        );
        let tls = url_from_parts("cache.local", 6380, None, 0, true);
        assert_eq!(tls.expose_secret(), "rediss://cache.local:6380/0");
    }

    #[test]
    fn settings_debug_hides_the_url() {
        let s = RedisSettings::new(SecretString::from("redis://:hunter2@h:1/0".to_owned()));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn tls_and_plain_urls_are_accepted_others_refused() {
        for ok in [
            "redis://127.0.0.1:6379/0",
            "rediss://cache.example.com:6380/1",
        ] {
            let s = RedisSettings::new(SecretString::from(ok.to_owned()));
            assert!(client(&s).is_ok(), "{ok}");
        }
        let bad = RedisSettings::new(SecretString::from("http://:secret@x".to_owned()));
        let err = client(&bad).expect_err("refused");
        assert!(!err.to_string().contains("secret"));
    }
}
