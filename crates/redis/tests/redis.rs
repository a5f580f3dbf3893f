//! Redis-specific behaviour the shared contract cannot see: real TTLs, what is stored in
//! plain text, races on one server, pub/sub across connections and outages.

use futures::StreamExt;
use portal_contract::fixtures;
use portal_domain::StoreError;
use portal_domain::model::{BusEvent, Period, SessionId, TenantId};
use portal_domain::ports::stores::{
    Cache, CacheKey, EventBus, Lock, OnboardingStore, OneTimePurpose, OneTimeStore, OutboundQueue,
    RateLimiter, RatePolicy, SaveOutcome, SessionStore,
};
use portal_domain::ports::system::HealthProbe;
use portal_domain::secret::SecretString;
use portal_redis::{RedisServer, RedisSettings, RedisStores};
use redis::AsyncCommands;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

fn stores(server: &RedisServer) -> RedisStores {
    let mut settings = RedisSettings::new(SecretString::from(server.url()));
    settings.connect_timeout = Duration::from_millis(500);
    settings.command_timeout = Duration::from_millis(500);
    RedisStores::connect(settings).expect("valid settings")
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("PTTL")
}

fn within(ms: i64, expected: Duration) -> bool {
    let expected = i64::try_from(expected.as_millis()).expect("small duration");
    ms <= expected && ms > expected - 5_000
}

#[tokio::test]
async fn ttls_are_real_redis_ttls_and_touch_keeps_the_session_ttl() {
    let server = RedisServer::start().await;
    let store = stores(&server);
    let mut conn = raw(&server).await;
    let tenant = TenantId::new_random();

    // Session: 24 h, kept by touch.
    let key = fixtures::session_key();
    let session = fixtures::session(&fixtures::user(), tenant);
    store.create(&key, &session, DAY).await.unwrap();
    let skey = format!("session:{{{}}}", key.as_str());
    assert!(within(pttl(&mut conn, &skey).await, DAY));
    let later = fixtures::T0 + time::Duration::minutes(5);
    store.touch(&key, later).await.unwrap();
    assert!(within(pttl(&mut conn, &skey).await, DAY));
    assert_eq!(
        SessionStore::get(&store, &key)
            .await
            .unwrap()
            .unwrap()
            .last_activity,
        later
    );

    // Touch on a missing session creates nothing.
    let missing = fixtures::session_key();
    store.touch(&missing, later).await.unwrap();
    let exists: bool = conn
        .exists(format!("session:{{{}}}", missing.as_str()))
        .await
        .unwrap();
    assert!(!exists);

    // Onboarding: 1 h from the last save.
    let state = fixtures::onboarding_state(tenant, "Acme Ltd");
    assert_eq!(
        store.save(tenant, &state, None, HOUR).await.unwrap(),
        SaveOutcome::Saved(1)
    );
    assert!(within(
        pttl(&mut conn, &format!("onboarding:{{{tenant}}}")).await,
        HOUR
    ));

    // Cache entries: kept for `retain`; generation counters never expire.
    let ck = CacheKey::Metrics {
        tenant,
        period: Period::Today,
    };
    let retain = Duration::from_secs(3 * 600);
    Cache::put(&store, &ck, &fixtures::cache_entry("{}", 0), retain)
        .await
        .unwrap();
    assert!(within(
        pttl(&mut conn, &format!("metrics:{{{tenant}}}:today")).await,
        retain
    ));
    store.invalidate(tenant, ck.kind()).await.unwrap();
    assert_eq!(
        pttl(&mut conn, &format!("cache_gen:{{{tenant}}}:metrics")).await,
        -1
    );
    assert_eq!(Cache::get(&store, &ck).await.unwrap().generation, 1);
}

#[tokio::test]
async fn nothing_secret_is_stored_in_plain_text() {
    let server = RedisServer::start().await;
    let store = stores(&server);
    let mut conn = raw(&server).await;
    let tenant = TenantId::new_random();
    let id = SessionId::from_random([42u8; 32]);
    let ticket = "ticket-secret-value";
    let digest = portal_domain::crypto::sha256_hex(ticket.as_bytes());

    store
        .create(
            &id.key(),
            &fixtures::session(&fixtures::user(), tenant),
            DAY,
        )
        .await
        .unwrap();
    OneTimeStore::put(
        &store,
        OneTimePurpose::WsTicket,
        &digest,
        "{\"session\":\"k\"}",
        Duration::from_secs(30),
    )
    .await
    .unwrap();

    let keys: Vec<String> = conn.keys("*").await.unwrap();
    assert!(keys.contains(&format!("session:{{{}}}", id.key().as_str())));
    let mut dump = String::new();
    for key in &keys {
        dump.push_str(key);
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let value: Vec<String> = match kind.as_str() {
            "string" => vec![conn.get(key).await.unwrap()],
            "hash" => conn.hvals(key).await.unwrap(),
            "zset" => conn.zrange(key, 0, -1).await.unwrap(),
            other => panic!("unexpected type {other}"),
        };
        dump.push_str(&value.join(" "));
    }
    assert!(
        !dump.contains(id.expose()),
        "session ID stored in plain text"
    );
    assert!(!dump.contains(ticket), "ticket stored in plain text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_racing_acquirers_get_exactly_one_lock() {
    let server = RedisServer::start().await;
    let store = Arc::new(stores(&server));
    let name = fixtures::unique("lock");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            let name = name.clone();
            tokio::spawn(async move { store.try_acquire(&name, Duration::from_secs(30)).await })
        })
        .collect();
    let mut holders = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().is_some() {
            holders += 1;
        }
    }
    assert_eq!(holders, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_racing_hits_against_limit_100_allow_exactly_100_and_keep_one_key() {
    let server = RedisServer::start().await;
    let store = Arc::new(stores(&server));
    let key = fixtures::unique("rate");
    let policy = RatePolicy {
        limit: 100,
        window: Duration::from_secs(3600),
    };
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move { store.hit(&key, policy, 1).await })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 100);
    // One small key per limit: the window's counter, expiring with the window opened by the
    // first hit. Every hit counts, refused ones too, and none moves the window.
    let mut conn = raw(&server).await;
    let rate_key = format!("rate_window:{{{key}}}");
    let count: u64 = conn.get(&rate_key).await.unwrap();
    assert_eq!(count, 1000);
    let ttl: i64 = conn.pttl(&rate_key).await.unwrap();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
    let refused = store.hit(&key, policy, 1).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert!(
        refused.reset_after > Duration::from_secs(3500),
        "the window's end"
    );
    assert!(conn.pttl::<_, i64>(&rate_key).await.unwrap() <= ttl);
}

async fn next_event(stream: &mut futures::stream::BoxStream<'static, BusEvent>) -> BusEvent {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("event within 5 s")
        .expect("stream open")
}

#[tokio::test]
async fn subscriber_receives_other_publishers_and_resubscribes_after_restart() {
    let mut server = RedisServer::start().await;
    let store = stores(&server);
    let tenant = TenantId::new_random();
    let mut events = store.subscribe().await.unwrap();

    // Another service publishes with a plain client.
    let event = fixtures::status_event(tenant);
    let mut conn = raw(&server).await;
    let _: i64 = conn
        .publish(event.channel(), event.payload().to_string())
        .await
        .unwrap();
    assert_eq!(next_event(&mut events).await, BusEvent::Tenant(event));
    let key = fixtures::session_key();
    let _: i64 = conn
        .publish("portal.sessions.revoked", key.as_str())
        .await
        .unwrap();
    assert_eq!(next_event(&mut events).await, BusEvent::SessionRevoked(key));

    // Restart: the subscription comes back by itself.
    server.restart().await;
    let event = fixtures::message_event(tenant);
    let publisher = stores(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no event after restart");
        publisher.publish(&event).await.unwrap();
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await
        {
            assert_eq!(got, BusEvent::Tenant(event));
            break;
        }
    }
}

#[tokio::test]
async fn outage_fails_closed_then_recovers_with_data_and_health_follows() {
    let mut server = RedisServer::start().await;
    let store = stores(&server);
    let health = store.health(portal_redis::health::DEFAULT_INTERVAL);
    let tenant = TenantId::new_random();
    let state = fixtures::onboarding_state(tenant, "Before Outage");
    store.save(tenant, &state, None, HOUR).await.unwrap();
    wait_until(|| health.is_healthy(), "healthy at start").await;

    server.stop().await;
    wait_until(|| !health.is_healthy(), "outage noticed").await;
    let started = Instant::now();
    assert!(matches!(
        store.load(tenant).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.try_acquire("outage", Duration::from_secs(1)).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store
            .enqueue(&fixtures::outbound_message(tenant, "hi"))
            .await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "failures are prompt"
    );
    assert!(!health.check().await.ok);

    server.restart().await;
    wait_until(|| health.is_healthy(), "recovery noticed").await;
    let loaded = store
        .load(tenant)
        .await
        .unwrap()
        .expect("state survived the restart");
    assert_eq!(loaded.version, 1);
    assert_eq!(loaded.value, state);
    let status = health.check().await;
    assert!(status.ok);
    assert_eq!(health.name(), "redis");
    assert!(health.required_for_readiness());
}

/// Polls `cond` for up to 2 s (the health monitor's promise).
async fn wait_until(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn outbound_messages_land_in_the_stream_with_a_payload_field() {
    let server = RedisServer::start().await;
    let store = stores(&server);
    let message = fixtures::outbound_message(TenantId::new_random(), "hello");
    let id = store.enqueue(&message).await.unwrap();
    let mut conn = raw(&server).await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("outbound.message")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, id);
    assert_eq!(entries[0].1[0].0, "payload");
    let decoded: portal_domain::model::OutboundMessage =
        serde_json::from_str(&entries[0].1[0].1).unwrap();
    assert_eq!(decoded, message);
}

#[tokio::test]
async fn a_hung_server_times_out_commands_and_turns_health_red() {
    let server = RedisServer::start().await;
    let store = stores(&server);
    let health = store.health(portal_redis::health::DEFAULT_INTERVAL);
    let key = fixtures::session_key();
    wait_until(|| health.is_healthy(), "healthy at start").await;

    server.freeze();
    let started = Instant::now();
    let result = SessionStore::get(&store, &key).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "deadline honoured"
    );
    wait_until(|| !health.is_healthy(), "hang noticed").await;

    server.thaw();
    wait_until(|| health.is_healthy(), "recovery noticed").await;
    assert_eq!(SessionStore::get(&store, &key).await.unwrap(), None);
}

#[tokio::test]
async fn a_lagging_subscriber_loses_the_oldest_events_but_keeps_receiving() {
    let server = RedisServer::start().await;
    let store = stores(&server);
    let tenant = TenantId::new_random();
    let mut events = store.subscribe().await.unwrap();
    let mut conn = raw(&server).await;
    let mut attentive = store.subscribe().await.unwrap();

    // Far more than the buffer, never read meanwhile.
    let published: Vec<_> = (0..6000).map(|_| fixtures::status_event(tenant)).collect();
    let mut pipe = redis::pipe();
    for e in &published {
        pipe.publish(e.channel(), e.payload().to_string()).ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    let last = published.last().unwrap().clone();

    // A second, attentive subscriber tells when every event has gone through the instance.
    while next_event(&mut attentive).await != BusEvent::Tenant(last.clone()) {}

    let first = next_event(&mut events).await;
    assert_ne!(
        first,
        BusEvent::Tenant(published[0].clone()),
        "oldest dropped"
    );
    // The stream still delivers up to the newest event.
    loop {
        if next_event(&mut events).await == BusEvent::Tenant(last.clone()) {
            break;
        }
    }
}

/// The limit's part of `get_and_hit` fails on its own: a Redis refusing writes (out of memory)
/// still answers the session, with no decision (the caller applies the limit its own way). A
/// counter found without its TTL gets its window back. After a restart the store reconnects.
#[tokio::test]
async fn get_and_hit_survives_a_refused_write_a_lost_ttl_and_a_restart() {
    let mut server = RedisServer::start().await;
    let store = stores(&server);
    let key = fixtures::session_key();
    let session = fixtures::session(&fixtures::user(), TenantId::new_random());
    store.create(&key, &session, DAY).await.unwrap();
    let policy = RatePolicy {
        limit: 10,
        window: HOUR,
    };
    let rate_key = fixtures::unique("api");
    let (read, decision) = store.get_and_hit(&key, &rate_key, policy).await.unwrap();
    assert_eq!(read, Some(session.clone()));
    assert_eq!(decision.expect("decision").remaining, 9);

    let mut conn = raw(&server).await;
    let config = |value: &'static str| {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg("maxmemory").arg(value);
        cmd
    };
    config("1").query_async::<()>(&mut conn).await.unwrap();
    let (read, decision) = store.get_and_hit(&key, &rate_key, policy).await.unwrap();
    assert_eq!(read, Some(session.clone()), "the read still answers");
    assert_eq!(decision, None, "the refused hit gives no decision");
    config("0").query_async::<()>(&mut conn).await.unwrap();
    let (_, decision) = store.get_and_hit(&key, &rate_key, policy).await.unwrap();
    assert_eq!(
        decision.expect("decision").remaining,
        8,
        "the refused hit did not count"
    );

    // A counter without its TTL (Redis before 7.0 may expire a key between two commands of a
    // transaction) would refuse for ever once full: the next hit gives it its window back.
    let counter = format!("rate_window:{{{rate_key}}}");
    redis::cmd("PERSIST")
        .arg(&counter)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let (_, decision) = store.get_and_hit(&key, &rate_key, policy).await.unwrap();
    assert_eq!(decision.expect("decision").remaining, 7);
    let ttl: i64 = conn.pttl(&counter).await.unwrap();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");

    // A restart breaks the connection: calls fail (closed) until a fresh connection is taken,
    // without a new store.
    server.restart().await;
    let mut ok = false;
    for _ in 0..20 {
        if let Ok((_, decision)) = store.get_and_hit(&key, &rate_key, policy).await {
            assert!(decision.is_some());
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "get_and_hit never recovered after a restart");
}

/// The per-user index is a sorted set scored by expiry, pruned on every write: 50 short
/// sign-ins of one user leave an index of their live sessions only (the SET it replaces kept
/// all 50), and the index expires with its last session.
#[tokio::test]
async fn the_user_index_holds_the_live_sessions_only() {
    let server = RedisServer::start().await;
    let store = stores(&server);
    let mut conn = raw(&server).await;
    let (user, tenant) = (fixtures::user(), TenantId::new_random());
    let index = format!("user_sessions:{{{user}}}");
    for _ in 0..50 {
        store
            .create(
                &fixtures::session_key(),
                &fixtures::session(&user, tenant),
                Duration::from_millis(50),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let live = fixtures::session_key();
    store
        .create(&live, &fixtures::session(&user, tenant), HOUR)
        .await
        .unwrap();
    let members: i64 = conn.zcard(&index).await.unwrap();
    assert_eq!(members, 1, "the expired sessions left the index");
    assert!(within(pttl(&mut conn, &index).await, HOUR));
    assert_eq!(store.list_for_user(&user).await.unwrap().len(), 1);
}

/// An index an earlier version wrote (a plain SET) is taken over: listed, extended, emptied.
#[tokio::test]
async fn an_index_of_the_earlier_set_shape_is_converted() {
    let server = RedisServer::start().await;
    let store = stores(&server);
    let mut conn = raw(&server).await;
    let (user, tenant) = (fixtures::user(), TenantId::new_random());
    let (old, dead) = (fixtures::session_key(), fixtures::session_key());
    store
        .create(&old, &fixtures::session(&user, tenant), HOUR)
        .await
        .unwrap();
    let index = format!("user_sessions:{{{user}}}");
    let _: () = conn.del(&index).await.unwrap();
    let _: () = conn
        .sadd(&index, &[old.as_str(), dead.as_str()])
        .await
        .unwrap();
    let _: () = conn.expire(&index, 3600).await.unwrap();

    let listed: Vec<_> = store
        .list_for_user(&user)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, vec![old.clone()], "the dangling member is dropped");
    let kind: String = redis::cmd("TYPE")
        .arg(&index)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "zset");
    let new = fixtures::session_key();
    store
        .create(&new, &fixtures::session(&user, tenant), HOUR)
        .await
        .unwrap();
    let mut ended = store.delete_all_for_user(&user).await.unwrap();
    ended.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut expected = vec![old, new];
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(ended, expected);
    let exists: bool = conn.exists(&index).await.unwrap();
    assert!(!exists, "an empty index is gone");
}

/// What a [`Worker`] runs: a closure given the worker's runtime.
type Job = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;

/// A thread standing in for an actix worker: its own single-threaded runtime, running the jobs
/// it is sent one at a time.
struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start() -> Self {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            for job in rx {
                job(&rt);
            }
        });
        Self {
            jobs,
            thread: Some(thread),
        }
    }

    /// Runs `f` on the worker's runtime and waits for its answer.
    fn run<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.jobs
            .send(Box::new(move |rt| {
                tx.send(rt.block_on(f())).expect("the caller waits");
            }))
            .expect("the worker runs");
        rx.recv().expect("the job answers")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let (closed, _) = std::sync::mpsc::channel();
        self.jobs = closed;
        if let Some(t) = self.thread.take() {
            t.join().expect("the worker ends");
        }
    }
}

/// The number of clients connected to `server`, ours (`raw`) excluded.
async fn clients(server: &RedisServer) -> usize {
    let mut conn = raw(server).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("CLIENT LIST");
    list.lines().count() - 1
}

/// Each worker thread opens its own connection (its driver then runs on that thread, so a
/// command never wakes another thread), and one thread finding its connection dead replaces
/// them all: after a restart only the first command to fail costs anything (a read is retried
/// on a fresh connection), and another worker's next write goes through at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_thread_has_its_connection_and_one_failure_replaces_them_all() {
    let mut server = RedisServer::start().await;
    let store = stores(&server);
    let (a, b) = (Worker::start(), Worker::start());
    let policy = RatePolicy {
        limit: 100,
        window: HOUR,
    };
    let hit = |w: &Worker, key: &'static str| {
        let store = store.clone();
        w.run(move || async move { store.hit(key, policy, 1).await })
    };
    let write_a = tokio::task::block_in_place(|| hit(&a, "a"));
    assert!(write_a.unwrap().allowed);
    let write_b = tokio::task::block_in_place(|| hit(&b, "b"));
    assert!(write_b.unwrap().allowed);
    assert_eq!(clients(&server).await, 2, "one connection per thread");
    tokio::task::block_in_place(|| hit(&b, "b")).unwrap();
    assert_eq!(clients(&server).await, 2, "kept, not one per command");

    server.restart().await;
    // A read on A finds its connection dead, forgets every thread's, retries on a fresh one.
    let read_a = tokio::task::block_in_place(|| {
        let store = store.clone();
        a.run(move || async move { SessionStore::get(&store, &fixtures::session_key()).await })
    });
    assert_eq!(read_a, Ok(None), "a read is retried on a fresh connection");
    // B's write (not retried) goes out on a fresh connection too.
    let write_b = tokio::task::block_in_place(|| hit(&b, "b"));
    assert!(write_b.is_ok(), "B's connection was replaced: {write_b:?}");
}
