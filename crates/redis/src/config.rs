//! Connection settings: which topology (one node, Cluster, Sentinel), credentials, TLS.

use portal_domain::StoreError;
use portal_domain::secret::{ExposeSecret, SecretString};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where the data lives.
#[derive(Debug)]
pub enum Topology {
    /// One node (or a proxy in front of one): a `redis://` or `rediss://` (TLS) URL. Secret
    /// because it may carry the password.
    Single {
        /// The URL.
        url: SecretString,
    },
    /// A Redis Cluster: seed nodes as `host:port`; the client discovers the others and follows
    /// `MOVED`/`ASK` redirections and failovers.
    Cluster {
        /// Seed nodes.
        nodes: Vec<String>,
    },
    /// A master named `master`, found through Sentinels (`host:port`); the client asks them again
    /// after a failover.
    Sentinel {
        /// The Sentinels.
        sentinels: Vec<String>,
        /// The master's name in the Sentinels' configuration.
        master: String,
    },
}

impl Topology {
    /// `single`, `cluster` or `sentinel` (logs, errors).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Single { .. } => "single",
            Self::Cluster { .. } => "cluster",
            Self::Sentinel { .. } => "sentinel",
        }
    }
}

/// How the service's own events travel on a Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PubSubMode {
    /// `PUBLISH`/`PSUBSCRIBE` on the tenant channels (decisions §7): what other services publish
    /// to. On a Cluster every message is broadcast to every node.
    #[default]
    Classic,
    /// `SPUBLISH`/`SSUBSCRIBE` (Redis 7) on a fixed set of partition channels (see
    /// `keys::shard_channel`): a message travels only within the shard owning its channel.
    Sharded,
}

/// How to reach Redis.
pub struct RedisSettings {
    /// Single node, Cluster or Sentinel.
    pub topology: Topology,
    /// ACL user (`AUTH user password`) of the data nodes; with a URL, overrides the URL's.
    pub username: Option<String>,
    /// Password of the data nodes; with a URL, overrides the URL's.
    pub password: Option<SecretString>,
    /// TLS to every node (a `rediss://` URL implies it). Uses rustls with the process-wide
    /// crypto provider: install ring's at start-up
    /// (`rustls::crypto::ring::default_provider().install_default()`).
    pub tls: bool,
    /// PEM file of the CA that signed the servers' certificates (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// ACL user of the Sentinels themselves (Sentinel only).
    pub sentinel_username: Option<String>,
    /// Password of the Sentinels themselves (Sentinel only).
    pub sentinel_password: Option<SecretString>,
    /// Classic or sharded Pub/Sub (sharded needs a Cluster).
    pub pubsub: PubSubMode,
    /// Upper bound of connections opened at once by the single-node pool (requests share one
    /// multiplexed connection; pub/sub uses one more, dedicated).
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
    /// One node at `url`, with the defaults: 16 connections, 2 s to connect, 1 s per command.
    pub fn new(url: SecretString) -> Self {
        Self::with_topology(Topology::Single { url })
    }

    /// A Cluster reached through `nodes` (`host:port`).
    pub fn cluster(nodes: Vec<String>) -> Self {
        Self::with_topology(Topology::Cluster { nodes })
    }

    /// The master `master` behind `sentinels` (`host:port`).
    pub fn sentinel(sentinels: Vec<String>, master: impl Into<String>) -> Self {
        Self::with_topology(Topology::Sentinel {
            sentinels,
            master: master.into(),
        })
    }

    fn with_topology(topology: Topology) -> Self {
        Self {
            topology,
            username: None,
            password: None,
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            sentinel_username: None,
            sentinel_password: None,
            pubsub: PubSubMode::Classic,
            pool_size: 16,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(1),
            key_prefix: None,
        }
    }

    /// Whether connections use TLS (`tls`, or a `rediss://` URL).
    pub fn uses_tls(&self) -> bool {
        self.tls
            || matches!(&self.topology, Topology::Single { url } if url.expose_secret().starts_with("rediss://"))
    }

    /// The CA and client certificate files, read; `None` when neither is configured (the system
    /// roots, no client certificate).
    pub(crate) fn certificates(&self) -> Result<Option<redis::TlsCertificates>, StoreError> {
        let read = |what: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                StoreError::Unavailable(format!("{what} {}: cannot read ({e})", path.display()))
            })
        };
        let root_cert = self
            .ca_file
            .as_ref()
            .map(|p| read("REDIS_CA_FILE", p))
            .transpose()?;
        let client_tls = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("REDIS_CLIENT_CERT_FILE", cert)?,
                client_key: read("REDIS_CLIENT_KEY_FILE", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(StoreError::Unavailable(
                    "REDIS_CLIENT_CERT_FILE and REDIS_CLIENT_KEY_FILE go together".into(),
                ));
            }
        };
        if root_cert.is_none() && client_tls.is_none() {
            return Ok(None);
        }
        Ok(Some(redis::TlsCertificates {
            client_tls,
            root_cert,
        }))
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topology = match &self.topology {
            Topology::Single { .. } => "single ([REDACTED] url)".to_owned(),
            Topology::Cluster { nodes } => format!("cluster {nodes:?}"),
            Topology::Sentinel { sentinels, master } => {
                format!("sentinel {sentinels:?} master {master}")
            }
        };
        f.debug_struct("RedisSettings")
            .field("topology", &topology)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("tls", &self.uses_tls())
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("pubsub", &self.pubsub)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
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
    SecretString::from(format!("{scheme}://{auth}{}:{port}/{db}", bracket(host)))
}

/// IPv6 literals in brackets, for a URL.
fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
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

/// Splits `host:port` (IPv6 in brackets: `[::1]:6379`); the error names the entry's position
/// only.
pub fn parse_node(node: &str) -> Result<(String, u16), String> {
    let node = node.trim();
    let (host, port) = node
        .rsplit_once(':')
        .ok_or_else(|| "must read host:port".to_owned())?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| "port must be 1-65535".to_owned())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err("host must be a name or an address".into());
    }
    Ok((host.to_owned(), port))
}

/// `host:port` as a connection address, plain or TLS.
pub(crate) fn node_addr(node: &str, tls: bool) -> Result<redis::ConnectionAddr, StoreError> {
    let (host, port) =
        parse_node(node).map_err(|e| StoreError::Unavailable(format!("node: {e}")))?;
    Ok(if tls {
        redis::ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        redis::ConnectionAddr::Tcp(host, port)
    })
}

/// The single node's client: the URL, with `username`/`password`/`tls` applied on top, and the
/// certificates when configured. Checks the URL without echoing it.
pub(crate) fn single_client(
    settings: &RedisSettings,
    url: &SecretString,
) -> Result<redis::Client, StoreError> {
    use redis::IntoConnectionInfo;
    let raw = url.expose_secret();
    if !(raw.starts_with("redis://") || raw.starts_with("rediss://")) {
        return Err(StoreError::Unavailable(
            "redis URL must start with redis:// or rediss://".into(),
        ));
    }
    let invalid = |_| StoreError::Unavailable("invalid redis URL".into());
    let mut info = raw.into_connection_info().map_err(invalid)?;
    let mut redis_info = info.redis_settings().clone();
    if let Some(user) = &settings.username {
        redis_info = redis_info.set_username(user);
    }
    if let Some(password) = &settings.password {
        redis_info = redis_info.set_password(password.expose_secret());
    }
    info = info.set_redis_settings(redis_info);
    if settings.tls
        && let redis::ConnectionAddr::Tcp(host, port) = info.addr().clone()
    {
        info = info.set_addr(redis::ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        });
    }
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    match settings.certificates()? {
        Some(_) if !tls => Err(StoreError::Unavailable(
            "REDIS_CA_FILE / REDIS_CLIENT_CERT_FILE need TLS (REDIS_TLS=true or rediss://)".into(),
        )),
        Some(certs) => redis::Client::build_with_tls(info, certs).map_err(|e| {
            StoreError::Unavailable(format!("redis TLS certificates refused: {}", e.kind_name()))
        }),
        None => redis::Client::open(info).map_err(invalid),
    }
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    /// The error's category and detail without any configured value (certificate parsing
    /// errors name the problem, not the content).
    fn kind_name(&self) -> String {
        self.detail()
            .map_or_else(|| format!("{:?}", self.kind()), str::to_owned)
    }
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
    fn settings_debug_hides_the_url_and_the_passwords() {
        let mut s = RedisSettings::new(SecretString::from("redis://:hunter2@h:1/0".to_owned()));
        s.password = Some(SecretString::from("s3cret-pw".to_owned()));
        let text = format!("{s:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret-pw"),
            "{text}"
        );
    }

    #[test]
    fn tls_and_plain_urls_are_accepted_others_refused() {
        for ok in [
            "redis://127.0.0.1:6379/0",
            "rediss://cache.example.com:6380/1",
        ] {
            let s = RedisSettings::new(SecretString::from(ok.to_owned()));
            let Topology::Single { url } = &s.topology else {
                unreachable!()
            };
            assert!(single_client(&s, url).is_ok(), "{ok}");
        }
        let bad = RedisSettings::new(SecretString::from("http://:secret@x".to_owned()));
        let Topology::Single { url } = &bad.topology else {
            unreachable!()
        };
        let err = single_client(&bad, url).expect_err("refused");
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn username_password_and_tls_apply_on_top_of_the_url() {
        let mut s = RedisSettings::new(SecretString::from("redis://h:7000/0".to_owned()));
        s.username = Some("portal".into());
        s.password = Some(SecretString::from("pw".to_owned()));
        s.tls = true;
        let Topology::Single { url } = &s.topology else {
            unreachable!()
        };
        let client = single_client(&s, url).unwrap();
        let info = client.get_connection_info();
        assert_eq!(info.redis_settings().username(), Some("portal"));
        assert_eq!(info.redis_settings().password(), Some("pw"));
        assert!(matches!(
            info.addr(),
            redis::ConnectionAddr::TcpTls { port: 7000, .. }
        ));
    }

    #[test]
    fn nodes_parse_as_host_port() {
        assert_eq!(
            parse_node("10.0.0.1:7000").unwrap(),
            ("10.0.0.1".into(), 7000)
        );
        assert_eq!(parse_node(" [::1]:6379 ").unwrap(), ("::1".into(), 6379));
        assert!(parse_node("redis-0").is_err());
        assert!(parse_node("redis-0:0").is_err());
        assert!(parse_node("user@h:1").is_err());
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let mut s = RedisSettings::new(SecretString::from("rediss://h:1/0".to_owned()));
        s.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
        let err = s.certificates().unwrap_err().to_string();
        assert!(err.contains("REDIS_CA_FILE /nonexistent/ca.pem"), "{err}");
    }
}
