//! The Redis deployments the server's Redis tests run on, one type for all three topologies,
//! so each test is written once and run on each ([`on_topologies!`]); an instance goes on
//! one with `spawn_app_with(|s| with_redis(s, redis.config()))`.
//!
//! - `single`: a throw-away `redis-server` per test;
//! - `cluster`: the test binary's one shared 3-master Cluster (started by the first test that
//!   asks, stopped with the process), with a key prefix of the test's own
//!   (`REDIS_KEY_PREFIX`), so tests sharing it do not see each other's sessions, limits or
//!   caches. Pub/Sub channels and the outbound Stream are not prefixed (other services use
//!   them): an event a test publishes reaches every instance on the Cluster and makes the
//!   tenant's cached views stale in all of them (a message event its conversation lists, a
//!   status event its metrics too). So a test that counts a cache's fills must not share the
//!   Cluster with one whose events touch that cache: the journey, whose sandbox sends Acme's
//!   status events, takes a Cluster of its own, as do the tests that count every command;
//! - `own_cluster` / `cluster_with_replicas` / `sentinel`: deployments of the test's own, for
//!   tests that count commands, send the platform's events, or kill or restart nodes.

use portal_redis::{RedisCluster, RedisCounters, RedisSentinel, RedisServer, Security};
use portal_server::configuration::RedisConfig;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A Redis deployment under test.
pub(crate) enum Deployment {
    Single(RedisServer),
    SharedCluster {
        cluster: &'static RedisCluster,
        /// This test's `REDIS_KEY_PREFIX`.
        prefix: String,
    },
    Cluster(RedisCluster),
    Sentinel(RedisSentinel),
}

impl Deployment {
    pub(crate) async fn single() -> Self {
        Self::Single(RedisServer::start().await)
    }

    pub(crate) async fn cluster() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Self::SharedCluster {
            cluster: RedisCluster::shared().await,
            prefix: format!(
                "t{}-{}:",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// Three masters of the test's own (tests that count every command, or send the
    /// platform's events).
    pub(crate) async fn own_cluster() -> Self {
        Self::Cluster(RedisCluster::start(false, Security::default()).await)
    }

    /// Three masters with a replica each (failover tests).
    pub(crate) async fn cluster_with_replicas() -> Self {
        Self::Cluster(RedisCluster::start(true, Security::default()).await)
    }

    pub(crate) async fn sentinel() -> Self {
        Self::Sentinel(RedisSentinel::start(Security::default()).await)
    }

    /// `single`, `cluster` or `sentinel`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Single(_) => "single",
            Self::SharedCluster { .. } | Self::Cluster(_) => "cluster",
            Self::Sentinel(_) => "sentinel",
        }
    }

    /// The `REDIS_*` settings pointing at it.
    pub(crate) fn config(&self) -> RedisConfig {
        match self {
            Self::Single(server) => RedisConfig::single(server.url()),
            Self::SharedCluster { cluster, prefix } => RedisConfig {
                key_prefix: Some(prefix.clone()),
                ..RedisConfig::cluster(&cluster.seeds())
            },
            Self::Cluster(cluster) => RedisConfig::cluster(&cluster.seeds()),
            Self::Sentinel(s) => {
                RedisConfig::sentinel(&s.sentinels(), portal_redis::SENTINEL_MASTER)
            }
        }
    }

    /// [`config`](Self::config) with deadlines short enough that an outage answers quickly
    /// (the service must notice one within 2 s): 300 ms on one node, 1 s on a Cluster or
    /// Sentinel, whose client connects to several nodes first (on a loaded test machine).
    pub(crate) fn quick_config(&self) -> RedisConfig {
        let ms = match self {
            Self::Single(_) => 300,
            _ => 1000,
        };
        RedisConfig {
            connect_timeout_ms: ms,
            command_timeout_ms: ms,
            ..self.config()
        }
    }

    /// The adapter's settings (for stores made outside an application).
    pub(crate) fn settings(&self) -> portal_redis::RedisSettings {
        self.config().settings().expect("a topology")
    }

    /// The node of a `single` deployment (tests that stop or freeze it).
    pub(crate) fn node(&mut self) -> &mut RedisServer {
        match self {
            Self::Single(server) => server,
            _ => panic!("{} is not one node", self.name()),
        }
    }

    fn cluster_ref(&self) -> Option<&RedisCluster> {
        match self {
            Self::SharedCluster { cluster, .. } => Some(cluster),
            Self::Cluster(cluster) => Some(cluster),
            _ => None,
        }
    }

    /// The URL of the node holding `key` (the master owning its slot on a Cluster, the current
    /// master behind the Sentinel).
    pub(crate) async fn node_url_for(&self, key: &str) -> String {
        match self {
            Self::Single(server) => server.url(),
            Self::Sentinel(s) => s.master().url(),
            _ => {
                let cluster = self.cluster_ref().unwrap();
                let slot = cluster.slot_of(key).await;
                cluster.nodes()[cluster.master_of(slot).await].url()
            }
        }
    }

    /// Redis's counters summed over every data node.
    pub(crate) async fn counters(&self) -> RedisCounters {
        match self {
            Self::Single(server) => RedisCounters::open(server).await,
            Self::Sentinel(s) => {
                let master = s.master();
                RedisCounters::open(master).await
            }
            _ => RedisCounters::open_all(self.cluster_ref().unwrap().nodes()).await,
        }
    }

    /// Stops every data node (keeping the data) and starts them again.
    pub(crate) async fn restart(&mut self) {
        match self {
            Self::Single(server) => server.restart().await,
            Self::Cluster(cluster) => cluster.restart().await,
            Self::Sentinel(s) => s.restart_master().await,
            Self::SharedCluster { .. } => panic!("the shared cluster is never restarted"),
        }
    }

    /// Waits until every write has reached the replicas.
    pub(crate) async fn wait_replicated(&self) {
        match self {
            Self::Cluster(cluster) => cluster.wait_replicated().await,
            Self::Sentinel(s) => s.wait_replicated().await,
            _ => {}
        }
    }

    /// Kills the master holding `key` and waits until a replica has taken over.
    pub(crate) async fn fail_over(&mut self, key: &str) {
        match self {
            Self::Cluster(cluster) => {
                let slot = cluster.slot_of(key).await;
                cluster.fail_over_master_of(slot).await;
            }
            Self::Sentinel(s) => s.fail_over().await,
            _ => panic!("no replica to fail over to"),
        }
    }
}

/// Generates one `#[tokio::test]` per topology, each calling `$body(deployment)`:
/// `on_topologies!(body: name_single => Deployment::single(), name_cluster => ...);`
macro_rules! on_topologies {
    ($body:ident: $($name:ident => $deployment:expr),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                $body($deployment.await).await;
            }
        )+
    };
}
pub(crate) use on_topologies;
