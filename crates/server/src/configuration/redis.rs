//! The Redis settings (`REDIS_*`): one node, a Cluster or a Sentinel-managed master, with ACL
//! user, password, TLS and client certificates on each; their validation (every problem at
//! once, naming settings, never values) and the [`RedisSettings`] they build.
//!
//! Read from the same sources as the rest of [`Settings`](super::Settings) (defaults < file <
//! environment); kept in their own struct so the Redis rules live in one place.

use garde::Validate;
use portal_domain::secret::{ExposeSecret, SecretString};
use portal_redis::{PubSubMode, RedisSettings, Topology};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Every `REDIS_*` setting. Serde names are the environment variables in lower case.
#[derive(Debug, Clone, Deserialize, Validate)]
#[serde(default)]
pub struct RedisConfig {
    /// `REDIS_URL`: one node (`redis://` or `rediss://`); may carry the password.
    #[serde(rename = "redis_url")]
    #[garde(skip)]
    pub url: Option<SecretString>,
    /// `REDIS_HOST` (with `REDIS_PORT`, `REDIS_DB`): one node, the spec's way.
    #[serde(rename = "redis_host")]
    #[garde(inner(length(min = 1, max = 253)))]
    pub host: Option<String>,
    /// `REDIS_PORT` (6379).
    #[serde(rename = "redis_port")]
    #[garde(skip)]
    pub port: Option<u16>,
    /// `REDIS_DB` (0; one node or Sentinel only: a Cluster has database 0 only).
    #[serde(rename = "redis_db")]
    #[garde(skip)]
    pub db: Option<u32>,
    /// `REDIS_CLUSTER_NODES`: `host:port,...`, seed nodes of a Redis Cluster.
    #[serde(rename = "redis_cluster_nodes")]
    #[garde(inner(custom(node_list)))]
    pub cluster_nodes: Option<String>,
    /// `REDIS_SENTINELS`: `host:port,...`, the Sentinels watching the master.
    #[serde(rename = "redis_sentinels")]
    #[garde(inner(custom(node_list)))]
    pub sentinels: Option<String>,
    /// `REDIS_SENTINEL_MASTER`: the master's name in the Sentinels' configuration.
    #[serde(rename = "redis_sentinel_master")]
    #[garde(inner(length(min = 1, max = 128)))]
    pub sentinel_master: Option<String>,
    /// `REDIS_SENTINEL_USERNAME`: ACL user of the Sentinels themselves.
    #[serde(rename = "redis_sentinel_username")]
    #[garde(inner(length(min = 1, max = 128)))]
    pub sentinel_username: Option<String>,
    /// `REDIS_SENTINEL_PASSWORD`: password of the Sentinels themselves.
    #[serde(rename = "redis_sentinel_password")]
    #[garde(skip)]
    pub sentinel_password: Option<SecretString>,
    /// `REDIS_USERNAME`: ACL user of the data nodes (every topology).
    #[serde(rename = "redis_username")]
    #[garde(inner(length(min = 1, max = 128)))]
    pub username: Option<String>,
    /// `REDIS_PASSWORD`: password of the data nodes (every topology; with `REDIS_URL`, it
    /// replaces the URL's).
    #[serde(rename = "redis_password")]
    #[garde(skip)]
    pub password: Option<SecretString>,
    /// `REDIS_TLS`: TLS to every node and Sentinel (a `rediss://` URL implies it).
    #[serde(rename = "redis_tls")]
    #[garde(skip)]
    pub tls: bool,
    /// `REDIS_CA_FILE`: PEM CA of the servers' certificates (default: the system's roots).
    #[serde(rename = "redis_ca_file")]
    #[garde(inner(custom(readable)))]
    pub ca_file: Option<String>,
    /// `REDIS_CLIENT_CERT_FILE`: PEM client certificate (mutual TLS).
    #[serde(rename = "redis_client_cert_file")]
    #[garde(inner(custom(readable)))]
    pub client_cert_file: Option<String>,
    /// `REDIS_CLIENT_KEY_FILE`: its PEM private key.
    #[serde(rename = "redis_client_key_file")]
    #[garde(inner(custom(readable)))]
    pub client_key_file: Option<String>,
    /// `REDIS_PUBSUB`: `classic` (default) or `sharded` (Cluster only).
    #[serde(rename = "redis_pubsub")]
    #[garde(custom(pubsub_mode))]
    pub pubsub: String,
    /// `REDIS_KEY_PREFIX`: prepended to every key (not to Pub/Sub channels or the outbound
    /// stream), so several deployments can share one Redis.
    #[serde(rename = "redis_key_prefix")]
    #[garde(inner(length(min = 1, max = 64), custom(no_braces)))]
    pub key_prefix: Option<String>,
    /// `REDIS_POOL_SIZE`: connections the single-node pool may open at once (16).
    #[serde(rename = "redis_pool_size")]
    #[garde(range(min = 1, max = 1024))]
    pub pool_size: usize,
    /// `REDIS_CONNECT_TIMEOUT_MS`: deadline to connect (2000).
    #[serde(rename = "redis_connect_timeout_ms")]
    #[garde(range(min = 10, max = 60_000))]
    pub connect_timeout_ms: u64,
    /// `REDIS_COMMAND_TIMEOUT_MS`: deadline of one command (1000).
    #[serde(rename = "redis_command_timeout_ms")]
    #[garde(range(min = 10, max = 60_000))]
    pub command_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            host: None,
            port: None,
            db: None,
            cluster_nodes: None,
            sentinels: None,
            sentinel_master: None,
            sentinel_username: None,
            sentinel_password: None,
            username: None,
            password: None,
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            pubsub: "classic".into(),
            key_prefix: None,
            pool_size: 16,
            connect_timeout_ms: 2000,
            command_timeout_ms: 1000,
        }
    }
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn node_list(value: &str, _: &()) -> garde::Result {
    let bad: Vec<String> = split(value)
        .enumerate()
        .filter(|(_, n)| portal_redis::parse_node(n).is_err())
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if split(value).next().is_none() {
        return Err(garde::Error::new("names no node (host:port,...)"));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "entries must read host:port; not so: entry {}",
            bad.join(", ")
        )))
    }
}

fn readable(value: &str, _: &()) -> garde::Result {
    std::fs::File::open(value)
        .map(drop)
        .map_err(|e| garde::Error::new(format!("cannot read {value}: {e}")))
}

/// A brace in the prefix would become the keys' hash tag and put every key in one slot.
fn no_braces(value: &str, _: &()) -> garde::Result {
    if value.contains(['{', '}']) {
        Err(garde::Error::new(
            "must not contain { or } (it would become the keys' hash tag)",
        ))
    } else {
        Ok(())
    }
}

fn pubsub_mode(value: &str, _: &()) -> garde::Result {
    match value {
        "classic" | "sharded" => Ok(()),
        _ => Err(garde::Error::new("must be one of classic, sharded")),
    }
}

impl RedisConfig {
    /// Whether any topology is named (else: in-memory stores).
    pub fn is_set(&self) -> bool {
        self.url.is_some()
            || self.host.is_some()
            || self.cluster_nodes.is_some()
            || self.sentinels.is_some()
    }

    /// Field rules (garde) and the rules across fields: one topology only, Sentinels with
    /// their master's name, certificate with its key, certificates and sharded Pub/Sub only
    /// where they apply. Messages name `REDIS_*` settings, never values.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = match self.validate() {
            Ok(()) => Vec::new(),
            Err(report) => report
                .iter()
                .map(|(path, e)| {
                    format!("REDIS_{}: {}", path.to_string().to_uppercase(), e.message())
                })
                .collect(),
        };
        let single = self.url.is_some() || self.host.is_some();
        let named = [
            (single, "REDIS_URL/REDIS_HOST"),
            (self.cluster_nodes.is_some(), "REDIS_CLUSTER_NODES"),
            (
                self.sentinels.is_some() || self.sentinel_master.is_some(),
                "REDIS_SENTINELS",
            ),
        ];
        let given: Vec<&str> = named
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        if given.len() > 1 {
            problems.push(format!(
                "{}: name one Redis topology, not {} (one node, a Cluster or Sentinels)",
                given.join(" + "),
                given.len()
            ));
        }
        if self.sentinels.is_some() != self.sentinel_master.is_some() {
            problems.push(
                "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together (the Sentinels and the name of the master they watch)".into(),
            );
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            problems.push(
                "REDIS_CLIENT_CERT_FILE and REDIS_CLIENT_KEY_FILE go together (mutual TLS)".into(),
            );
        }
        let certificates = self.ca_file.is_some() || self.client_cert_file.is_some();
        if certificates && !self.uses_tls() {
            problems.push(
                "REDIS_CA_FILE / REDIS_CLIENT_CERT_FILE: need TLS (REDIS_TLS=true or a rediss:// REDIS_URL)".into(),
            );
        }
        if self.pubsub == "sharded" && self.cluster_nodes.is_none() {
            problems.push(
                "REDIS_PUBSUB=sharded: needs a Cluster (REDIS_CLUSTER_NODES); sharded Pub/Sub keeps each message within its shard".into(),
            );
        }
        if self.db.is_some_and(|db| db != 0) && self.cluster_nodes.is_some() {
            problems.push("REDIS_DB: a Redis Cluster has database 0 only".into());
        }
        problems
    }

    fn uses_tls(&self) -> bool {
        self.tls
            || self
                .url
                .as_ref()
                .is_some_and(|u| u.expose_secret().starts_with("rediss://"))
    }

    /// The adapter's settings, when a topology is named. `REDIS_URL` wins over
    /// `REDIS_HOST`/`REDIS_PORT`/`REDIS_DB`.
    pub fn settings(&self) -> Option<RedisSettings> {
        let topology = if let Some(nodes) = &self.cluster_nodes {
            Topology::Cluster {
                nodes: split(nodes).map(str::to_owned).collect(),
            }
        } else if let (Some(sentinels), Some(master)) = (&self.sentinels, &self.sentinel_master) {
            Topology::Sentinel {
                sentinels: split(sentinels).map(str::to_owned).collect(),
                master: master.clone(),
            }
        } else {
            let url = match (&self.url, &self.host) {
                (Some(url), _) => url.clone(),
                (None, Some(host)) => portal_redis::url_from_parts(
                    host,
                    self.port.unwrap_or(6379),
                    None,
                    self.db.unwrap_or(0),
                    self.tls,
                ),
                (None, None) => return None,
            };
            Topology::Single { url }
        };
        let mut redis = RedisSettings::new(SecretString::from(String::new()));
        redis.topology = topology;
        redis.username = self.username.clone();
        redis.password = self.password.clone();
        redis.tls = self.tls;
        redis.ca_file = self.ca_file.as_ref().map(PathBuf::from);
        redis.client_cert_file = self.client_cert_file.as_ref().map(PathBuf::from);
        redis.client_key_file = self.client_key_file.as_ref().map(PathBuf::from);
        redis.sentinel_username = self.sentinel_username.clone();
        redis.sentinel_password = self.sentinel_password.clone();
        redis.pubsub = if self.pubsub == "sharded" {
            PubSubMode::Sharded
        } else {
            PubSubMode::Classic
        };
        redis.key_prefix = self.key_prefix.clone();
        redis.pool_size = self.pool_size;
        redis.connect_timeout = Duration::from_millis(self.connect_timeout_ms);
        redis.command_timeout = Duration::from_millis(self.command_timeout_ms);
        Some(redis)
    }

    /// One node at `url` (tests and tools).
    pub fn single(url: impl Into<String>) -> Self {
        Self {
            url: Some(SecretString::from(url.into())),
            ..Self::default()
        }
    }

    /// A Cluster through `seeds` (tests and tools).
    pub fn cluster(seeds: &[String]) -> Self {
        Self {
            cluster_nodes: Some(seeds.join(",")),
            ..Self::default()
        }
    }

    /// The master `master` behind `sentinels` (tests and tools).
    pub fn sentinel(sentinels: &[String], master: impl Into<String>) -> Self {
        Self {
            sentinels: Some(sentinels.join(",")),
            sentinel_master: Some(master.into()),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(Some(env)).map_err(|e| e.to_string())
    }

    #[test]
    fn no_redis_variable_means_memory() {
        assert!(load(&[]).unwrap().redis.settings().is_none());
    }

    #[test]
    fn redis_parts_build_the_url_and_the_tuning_applies() {
        let r = load(&[
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "p@ss word"),
            ("REDIS_DB", "2"),
            ("REDIS_TLS", "true"),
            ("REDIS_POOL_SIZE", "4"),
            ("REDIS_CONNECT_TIMEOUT_MS", "250"),
            ("REDIS_COMMAND_TIMEOUT_MS", "150"),
        ])
        .unwrap()
        .redis
        .settings()
        .unwrap();
        let Topology::Single { url } = &r.topology else {
            panic!("one node")
        };
        assert_eq!(url.expose_secret(), "rediss://cache.internal:6380/2");
        assert_eq!(r.password.as_ref().unwrap().expose_secret(), "p@ss word");
        assert!(r.uses_tls());
        assert_eq!(r.pool_size, 4);
        assert_eq!(r.connect_timeout, Duration::from_millis(250));
        assert_eq!(r.command_timeout, Duration::from_millis(150));
        assert!(!format!("{r:?}").contains("p@ss"), "no password in Debug");
    }

    #[test]
    fn redis_url_wins_over_the_parts() {
        let r = load(&[
            ("REDIS_URL", "redis://127.0.0.1:7000/0"),
            ("REDIS_HOST", "ignored"),
        ])
        .unwrap()
        .redis
        .settings()
        .unwrap();
        let Topology::Single { url } = &r.topology else {
            panic!("one node")
        };
        assert_eq!(url.expose_secret(), "redis://127.0.0.1:7000/0");
        assert_eq!(r.pool_size, 16);
    }

    #[test]
    fn cluster_and_sentinel_settings_build_their_topologies() {
        let cluster = load(&[
            ("REDIS_CLUSTER_NODES", "10.0.0.1:7000, 10.0.0.2:7000"),
            ("REDIS_USERNAME", "portal"),
            ("REDIS_PUBSUB", "sharded"),
        ])
        .unwrap()
        .redis
        .settings()
        .unwrap();
        assert!(matches!(&cluster.topology, Topology::Cluster { nodes } if nodes.len() == 2));
        assert_eq!(cluster.username.as_deref(), Some("portal"));
        assert_eq!(cluster.pubsub, PubSubMode::Sharded);
        let sentinel = load(&[
            ("REDIS_SENTINELS", "s1:26379,s2:26379,s3:26379"),
            ("REDIS_SENTINEL_MASTER", "portal"),
            ("REDIS_SENTINEL_PASSWORD", "sentinel-secret"),
        ])
        .unwrap()
        .redis
        .settings()
        .unwrap();
        assert!(
            matches!(&sentinel.topology, Topology::Sentinel { sentinels, master } if sentinels.len() == 3 && master == "portal")
        );
    }

    #[test]
    fn an_ambiguous_or_incomplete_redis_configuration_lists_every_problem() {
        let text = load(&[
            ("REDIS_URL", "redis://:hunter2@h:1/0"),
            ("REDIS_CLUSTER_NODES", "a:1,b"),
            ("REDIS_SENTINELS", "s:26379"),
            ("REDIS_CLIENT_CERT_FILE", "/nonexistent/client.pem"),
            ("REDIS_PUBSUB", "fanout"),
            ("REDIS_POOL_SIZE", "0"),
        ])
        .unwrap_err();
        for expected in [
            "REDIS_URL/REDIS_HOST + REDIS_CLUSTER_NODES + REDIS_SENTINELS: name one Redis topology",
            "REDIS_CLUSTER_NODES: entries must read host:port; not so: entry 2",
            "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together",
            "REDIS_CLIENT_CERT_FILE and REDIS_CLIENT_KEY_FILE go together",
            "REDIS_CLIENT_CERT_FILE: cannot read /nonexistent/client.pem",
            "REDIS_CA_FILE / REDIS_CLIENT_CERT_FILE: need TLS",
            "REDIS_PUBSUB: must be one of classic, sharded",
            "REDIS_POOL_SIZE",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
        assert!(!text.contains("hunter2"), "{text}");
        let sharded = load(&[("REDIS_URL", "redis://h:1/0"), ("REDIS_PUBSUB", "sharded")]);
        assert!(
            sharded
                .unwrap_err()
                .contains("REDIS_PUBSUB=sharded: needs a Cluster")
        );
    }
}
