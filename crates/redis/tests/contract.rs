//! The shared store contract suite (`portal-contract`) against real Redis: one throw-away
//! `redis-server` per test, killed when the test's runtime shuts down.

use portal_contract::{Stores, Waiter};
use portal_domain::secret::SecretString;
use portal_redis::{RedisServer, RedisSettings, RedisStores};
use std::sync::Arc;

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
    let redis = Arc::new(redis);
    Stores {
        sessions: redis.clone(),
        one_time: redis.clone(),
        onboarding: redis.clone(),
        cache: redis.clone(),
        lock: redis.clone(),
        rate_limiter: redis.clone(),
        idempotency: redis.clone(),
        event_bus: redis.clone(),
        outbound: redis,
    }
}

portal_contract::store_contract_tests!(stores(), Waiter::sleep());
