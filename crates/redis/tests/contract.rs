//! The shared store contract suite (`portal-contract`) against real Redis, on each topology:
//! - `single`: one throw-away `redis-server` per test, killed when the test's runtime shuts
//!   down;
//! - `cluster`: a 3-master Redis Cluster shared by the binary's tests (keys are random, so
//!   tests do not collide);
//! - `sentinel`: a master, its replica and a Sentinel, shared likewise; the stores find the
//!   master through the Sentinel.

use portal_contract::{Stores, Waiter};
use portal_domain::secret::SecretString;
use portal_redis::{RedisCluster, RedisSentinel, RedisServer, RedisSettings, RedisStores};
use std::sync::Arc;

fn ports(redis: RedisStores) -> Stores {
    Stores::all_from(Arc::new(redis))
}

mod single {
    use super::*;

    async fn stores() -> Stores {
        let server = RedisServer::start().await;
        let redis = RedisStores::connect(RedisSettings::new(SecretString::from(server.url())))
            .expect("valid settings");
        // The server lives as long as the test's runtime: the task is dropped (and the server
        // killed) when the runtime shuts down at the end of the test.
        tokio::spawn(async move {
            let _server = server;
            std::future::pending::<()>().await;
        });
        ports(redis)
    }

    portal_contract::store_contract_tests!(stores(), Waiter::sleep());
}

mod cluster {
    use super::*;

    async fn stores() -> Stores {
        let cluster = RedisCluster::shared().await;
        ports(
            RedisStores::connect(RedisSettings::cluster(cluster.seeds())).expect("valid settings"),
        )
    }

    portal_contract::store_contract_tests!(stores(), Waiter::sleep());
}

mod sentinel {
    use super::*;

    async fn stores() -> Stores {
        let deployment = RedisSentinel::shared().await;
        ports(
            RedisStores::connect(RedisSettings::sentinel(
                deployment.sentinels(),
                portal_redis::SENTINEL_MASTER,
            ))
            .expect("valid settings"),
        )
    }

    portal_contract::store_contract_tests!(stores(), Waiter::sleep());
}
