//! Issue 12 at the adapter: TLS with an ACL user and required client certificates on each
//! topology, the topology check of a new connection, a Cluster slot move followed without a
//! failed request, sharded Pub/Sub (delivery, and resubscription after a slot move or the
//! death of a partition's master), and the
//! session read and limit hit of `get_and_hit` travelling together on a Cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use futures::StreamExt;
use futures::stream::BoxStream;
use portal_contract::fixtures;
use portal_domain::model::{BusEvent, TenantId};
use portal_domain::ports::stores::{EventBus, RatePolicy, SessionStore};
use portal_domain::secret::SecretString;
use portal_redis::{
    PubSubMode, RedisCluster, RedisSentinel, RedisServer, RedisSettings, RedisStores, Security,
    TlsFiles, Topology, settings_for,
};
use std::sync::Arc;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn next_tenant_event(
    stream: &mut BoxStream<'static, BusEvent>,
    tenant: TenantId,
) -> BusEvent {
    let read = async {
        loop {
            match stream.next().await {
                Some(BusEvent::Tenant(e)) if e.tenant_id() == tenant => return BusEvent::Tenant(e),
                Some(_) => {}
                None => panic!("the subscription ended"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the event arrives")
}

/// Publishes a fresh event of `tenant` every half second until `events` receives one (a
/// subscription moving after a topology change misses those published before it has moved).
///
/// # Panics
/// If nothing arrives within `within`.
async fn publish_until_received(
    publisher: &RedisStores,
    events: &mut BoxStream<'static, BusEvent>,
    tenant: TenantId,
    within: Duration,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = fixtures::status_event(tenant);
        if publisher.publish(&event).await.is_ok() {
            let got = tokio::time::timeout(Duration::from_millis(500), async {
                loop {
                    match events.next().await {
                        Some(BusEvent::Tenant(e)) if e == event => return true,
                        Some(_) => {}
                        None => return false,
                    }
                }
            })
            .await;
            if got == Ok(true) {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no delivery {what}");
    }
}

/// A session round trip and an event through the bus: the stores work end to end.
async fn works(stores: &RedisStores, what: &str) {
    let key = fixtures::session_key();
    let session = fixtures::session(&fixtures::user(), TenantId::new_random());
    stores
        .create(&key, &session, DAY)
        .await
        .unwrap_or_else(|e| panic!("{what}: create: {e}"));
    assert_eq!(
        SessionStore::get(stores, &key).await.unwrap(),
        Some(session),
        "{what}"
    );
    let mut events = stores
        .subscribe()
        .await
        .unwrap_or_else(|e| panic!("{what}: subscribe: {e}"));
    let tenant = TenantId::new_random();
    let event = fixtures::message_event(tenant);
    stores.publish(&event).await.unwrap();
    assert_eq!(
        next_tenant_event(&mut events, tenant).await,
        BusEvent::Tenant(event),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_an_acl_user_and_client_certificates_works_on_every_topology() {
    install_crypto();
    let files = Arc::new(TlsFiles::generate());
    let security = Security::tls(files.clone());
    let (single, cluster, sentinel) = tokio::join!(
        RedisServer::start_with(security.clone(), Vec::new()),
        RedisCluster::start(false, security.clone()),
        RedisSentinel::start(security.clone()),
    );
    let deployments = [
        (
            "single",
            Topology::Single {
                url: SecretString::from(format!("rediss://{}/0", single.address())),
            },
        ),
        (
            "cluster",
            Topology::Cluster {
                nodes: cluster.seeds(),
            },
        ),
        (
            "sentinel",
            Topology::Sentinel {
                sentinels: sentinel.sentinels(),
                master: portal_redis::SENTINEL_MASTER.into(),
            },
        ),
    ];
    for (what, topology) in deployments {
        let mut settings = settings_for(&security, topology);
        settings.connect_timeout = Duration::from_secs(2);
        let stores = RedisStores::connect(settings).expect("valid settings");
        works(&stores, what).await;
    }

    // The servers require a client certificate: without one, nothing works.
    let mut no_cert = settings_for(
        &security,
        Topology::Single {
            url: SecretString::from(format!("rediss://{}/0", single.address())),
        },
    );
    no_cert.client_cert_file = None;
    no_cert.client_key_file = None;
    let stores = RedisStores::connect(no_cert).unwrap();
    let refused = SessionStore::get(&stores, &fixtures::session_key()).await;
    assert!(refused.is_err(), "no client certificate, no session read");
    // Nor with a wrong password.
    let mut wrong = settings_for(
        &security,
        Topology::Cluster {
            nodes: cluster.seeds(),
        },
    );
    wrong.password = Some(SecretString::from("not-the-password".to_owned()));
    let stores = RedisStores::connect(wrong).unwrap();
    assert!(
        SessionStore::get(&stores, &fixtures::session_key())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_node_of_another_topology_is_refused_with_the_setting_to_use() {
    let cluster = RedisCluster::shared().await;
    let sentinel = RedisSentinel::shared().await;
    let single = RedisServer::start().await;
    let check = |settings: RedisSettings| async move {
        RedisStores::connect(settings)
            .unwrap()
            .check_topology()
            .await
    };

    let cluster_node = SecretString::from(format!("redis://{}/0", cluster.seeds()[0]));
    let err = check(RedisSettings::new(cluster_node)).await.unwrap_err();
    assert!(err.contains("REDIS_CLUSTER_NODES"), "{err}");
    let sentinel_node = SecretString::from(format!("redis://{}/0", sentinel.sentinels()[0]));
    let err = check(RedisSettings::new(sentinel_node)).await.unwrap_err();
    assert!(err.contains("REDIS_SENTINELS"), "{err}");
    let err = check(RedisSettings::cluster(vec![single.address()]))
        .await
        .unwrap_err();
    assert!(err.contains("not in cluster mode"), "{err}");
    let err = check(RedisSettings::sentinel(vec![single.address()], "m"))
        .await
        .unwrap_err();
    assert!(err.contains("not a Sentinel"), "{err}");

    // The right settings pass, and an unreachable Redis is not refused (start degraded).
    assert!(check(RedisSettings::cluster(cluster.seeds())).await.is_ok());
    assert!(
        check(RedisSettings::new(SecretString::from(single.url())))
            .await
            .is_ok()
    );
    let mut down = RedisSettings::new(SecretString::from("redis://127.0.0.1:1/0".to_owned()));
    down.connect_timeout = Duration::from_millis(200);
    assert!(check(down).await.is_ok());

    // Once refused, the stores stay refused, and their health says why.
    let stores = RedisStores::connect(RedisSettings::new(SecretString::from(format!(
        "redis://{}/0",
        cluster.seeds()[0]
    ))))
    .unwrap();
    assert!(stores.check_topology().await.is_err());
    let health =
        portal_domain::ports::system::HealthProbe::check(&stores.health(Duration::from_secs(60)))
            .await;
    assert!(!health.ok);
    assert!(
        health
            .detail
            .unwrap_or_default()
            .contains("REDIS_CLUSTER_NODES")
    );
}

#[tokio::test]
async fn a_slot_moved_to_another_master_is_followed_without_a_failed_request() {
    let cluster = RedisCluster::start(false, Security::default()).await;
    let stores = RedisStores::connect(RedisSettings::cluster(cluster.seeds())).unwrap();
    let key = fixtures::session_key();
    let session = fixtures::session(&fixtures::user(), TenantId::new_random());
    stores.create(&key, &session, DAY).await.unwrap();
    assert_eq!(
        SessionStore::get(&stores, &key).await.unwrap(),
        Some(session.clone())
    );

    let slot = cluster
        .slot_of(&format!("session:{{{}}}", key.as_str()))
        .await;
    let from = cluster.master_of(slot).await;
    let to = (0..3).find(|i| *i != from).unwrap();
    cluster.move_slot(slot, to).await;
    // The client still maps the slot to the old master: MOVED, followed inside.
    assert_eq!(
        SessionStore::get(&stores, &key).await.unwrap(),
        Some(session)
    );
}

#[tokio::test]
async fn sharded_pub_sub_delivers_within_the_shard_and_follows_a_slot_move() {
    let cluster = RedisCluster::start(false, Security::default()).await;
    let sharded = |()| {
        let mut s = RedisSettings::cluster(cluster.seeds());
        s.pubsub = PubSubMode::Sharded;
        RedisStores::connect(s).unwrap()
    };
    let (subscriber, publisher) = (sharded(()), sharded(()));
    let mut events = subscriber.subscribe().await.unwrap();
    let tenant = TenantId::new_random();
    let first = fixtures::message_event(tenant);
    publisher.publish(&first).await.unwrap();
    assert_eq!(
        next_tenant_event(&mut events, tenant).await,
        BusEvent::Tenant(first)
    );
    // Revocations too.
    let revoked = fixtures::session_key();
    publisher.publish_revocation(&revoked).await.unwrap();
    let read = async {
        loop {
            if let Some(BusEvent::SessionRevoked(k)) = events.next().await
                && k == revoked
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("revocation arrives");

    // The tenant's partition moves to another master: the server drops the subscription, the
    // subscriber subscribes again on the new owner.
    let channel = portal_redis::shard_channel(tenant);
    let slot = cluster.slot_of(&channel).await;
    let from = cluster.master_of(slot).await;
    cluster
        .move_slot(slot, (0..3).find(|i| *i != from).unwrap())
        .await;
    publish_until_received(
        &publisher,
        &mut events,
        tenant,
        Duration::from_secs(10),
        "after the slot move",
    )
    .await;
}

#[tokio::test]
async fn on_a_cluster_the_session_read_does_not_wait_for_the_limit_hit() {
    let cluster = RedisCluster::start(false, Security::default()).await;
    let stores = RedisStores::connect(RedisSettings::cluster(cluster.seeds())).unwrap();
    let key = fixtures::session_key();
    let session = fixtures::session(&fixtures::user(), TenantId::new_random());
    stores.create(&key, &session, DAY).await.unwrap();
    let policy = RatePolicy {
        limit: 100,
        window: Duration::from_secs(60),
    };
    // A limit key whose master differs from the session's.
    let session_master = cluster
        .master_of(
            cluster
                .slot_of(&format!("session:{{{}}}", key.as_str()))
                .await,
        )
        .await;
    let mut rate_key = String::new();
    for i in 0.. {
        let candidate = format!("api:user-{i}");
        let slot = cluster
            .slot_of(&format!("rate_window:{{{candidate}}}"))
            .await;
        if cluster.master_of(slot).await != session_master {
            rate_key = candidate;
            break;
        }
    }
    let rate_master = cluster
        .master_of(
            cluster
                .slot_of(&format!("rate_window:{{{rate_key}}}"))
                .await,
        )
        .await;
    // Warm up (connections, script loaded).
    stores.get_and_hit(&key, &rate_key, policy).await.unwrap();

    // The limit's master stops answering clients for a while: the session's HMGET must still
    // reach its own master at once, i.e. it was not queued behind the limit hit.
    let mut paused = cluster.nodes()[rate_master].connection().await;
    let mut session_node =
        portal_redis::RedisCounters::open(&cluster.nodes()[session_master]).await;
    let before = session_node
        .command_calls()
        .await
        .get("hmget")
        .copied()
        .unwrap_or(0);
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(700)
        .arg("ALL")
        .query_async::<()>(&mut paused)
        .await
        .unwrap();
    let call = tokio::spawn({
        let (stores, key, rate_key) = (stores.clone(), key.clone(), rate_key.clone());
        async move { stores.get_and_hit(&key, &rate_key, policy).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let now = session_node
            .command_calls()
            .await
            .get("hmget")
            .copied()
            .unwrap_or(0);
        if now > before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session read waited for the paused limit master"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!call.is_finished(), "the call waits for the limit hit");
    let (got, decision) = call.await.unwrap().unwrap();
    assert_eq!(got, Some(session));
    assert!(decision.is_some());
}

#[tokio::test]
async fn a_classic_subscription_on_a_cluster_moves_to_another_node_when_its_node_dies() {
    let mut cluster = RedisCluster::start(true, Security::default()).await;
    let stores = RedisStores::connect(RedisSettings::cluster(cluster.seeds())).unwrap();
    let mut events = stores.subscribe().await.unwrap();
    let subscribed = cluster.subscribed_node().await;
    cluster.kill_node(subscribed).await;

    // Published after the node died: arrives once the subscription has moved.
    let tenant = TenantId::new_random();
    publish_until_received(
        &stores,
        &mut events,
        tenant,
        Duration::from_secs(15),
        "after the subscribed node died",
    )
    .await;
    assert_ne!(
        cluster.subscribed_node().await,
        subscribed,
        "subscribed elsewhere"
    );
}

/// A partition's master dies: its replica takes over, and the subscriber (which held a
/// connection to the dead master for that partition) subscribes again on the new one.
#[tokio::test]
async fn sharded_pub_sub_survives_the_death_of_a_partitions_master() {
    let mut cluster = RedisCluster::start(true, Security::default()).await;
    let sharded = || {
        let mut s = RedisSettings::cluster(cluster.seeds());
        s.pubsub = PubSubMode::Sharded;
        RedisStores::connect(s).unwrap()
    };
    let (subscriber, publisher) = (sharded(), sharded());
    let mut events = subscriber.subscribe().await.unwrap();
    let tenant = TenantId::new_random();
    let first = fixtures::message_event(tenant);
    publisher.publish(&first).await.unwrap();
    assert_eq!(
        next_tenant_event(&mut events, tenant).await,
        BusEvent::Tenant(first)
    );

    let slot = cluster.slot_of(&portal_redis::shard_channel(tenant)).await;
    let killed = cluster.fail_over_master_of(slot).await;
    assert_ne!(
        cluster.master_of(slot).await,
        killed,
        "the replica took over"
    );
    publish_until_received(
        &publisher,
        &mut events,
        tenant,
        Duration::from_secs(15),
        "after the partition's master died",
    )
    .await;
}
