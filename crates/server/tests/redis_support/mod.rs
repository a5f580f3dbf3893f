//! The Redis deployments the server's Redis tests run on, one type for all three topologies,
//! so each test is written once and run on each ([`on_topologies!`]).
//!
//! - `single`: a throw-away `redis-server` per test;
//! - `cluster`: the test binary's shared 3-master Cluster, with a key prefix of the test's own
//!   (`REDIS_KEY_PREFIX`), so tests sharing it do not see each other's sessions, limits or
//!   caches;
//! - `cluster_with_replicas` / `sentinel`: deployments of the test's own, for tests that kill or
//!   restart nodes.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test binary uses a part

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

    /// Three masters of the test's own (tests that count every command).
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

    /// The adapter's settings (for stores made outside an application).
    pub(crate) fn settings(&self) -> portal_redis::RedisSettings {
        self.config().settings().expect("a topology")
    }

    /// The prefix keys carry (the shared cluster's per-test prefix).
    pub(crate) fn prefix(&self) -> &str {
        match self {
            Self::SharedCluster { prefix, .. } => prefix,
            _ => "",
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
#[macro_export]
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
