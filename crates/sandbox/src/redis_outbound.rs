//! The sandbox on Redis: consumes the service's outbound queue (the Redis Stream
//! `outbound.message`) and "delivers" each message with the simulator's delivery
//! ([`crate::delivery::SimDelivery`], the same code the embedded default uses), publishing through
//! portal-redis's event bus, so the events are byte for byte what the service decodes.
//!
//! Publishing retries a few times (a restarted Redis leaves dead pooled connections behind).
//!
//! Per entry (field `payload`: the JSON of an `OutboundMessage`, as portal-redis's
//! `OutboundQueue` writes it): record the message in the sandbox's State Manager (status
//! `queued`), `XACK` it, then publish `message_update` and `status_update`s `sent` →
//! `delivered` → `read` on `tenant.{id}.messages` / `tenant.{id}.status`.
//!
//! Consumer group [`GROUP`] (created with `MKSTREAM` at the stream's end the first time, so
//! older entries are not replayed; recreated from the stream's start when it vanished, since
//! then Redis lost its data and every entry is new), `XREADGROUP ... BLOCK`, this consumer's pending entries first after each
//! (re)connect. A lost connection (Redis restarted) is retried with exponential backoff; a
//! vanished group (a restarted Redis without persistence) is recreated. An undecodable entry is
//! logged (without its content) and acknowledged, so it never blocks the queue.

use crate::Platform;
use async_trait::async_trait;
use futures::stream::BoxStream;
use portal_domain::StoreError;
use portal_domain::model::{BusEvent, OutboundMessage, SessionKey, TenantEvent};
use portal_domain::ports::stores::{EventBus, OutboundQueue};
use portal_domain::secret::SecretString;
use redis::streams::StreamReadReply;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The service's outbound stream (portal-redis writes it; not prefixed).
pub(crate) const STREAM: &str = "outbound.message";
/// The stream field holding the message JSON.
pub(crate) const PAYLOAD_FIELD: &str = "payload";
/// The sandbox's consumer group.
pub(crate) const GROUP: &str = "portal-sandbox";
/// How long one `XREADGROUP` blocks (ms): also how soon a silently dead connection is noticed.
const BLOCK_MS: u64 = 2_000;
/// Entries read at once.
const BATCH: usize = 100;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The URL is not a Redis URL (the URL itself is not repeated: it may carry a password).
    #[error("not a valid Redis URL")]
    BadUrl,
}

/// The running consumer; dropping it stops consuming.
#[derive(Debug)]
pub struct OutboundConsumer {
    task: JoinHandle<()>,
}

impl Drop for OutboundConsumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts consuming the outbound stream of the Redis at `url`, delivering into `platform`.
///
/// Tries once to connect and create the group before returning (so a message enqueued right
/// after is not missed); if Redis is not there yet, it keeps trying in the background.
pub async fn consume_outbound(
    url: SecretString,
    platform: &Platform,
) -> Result<OutboundConsumer, StartError> {
    let bus = portal_redis::RedisSettings::new(url.clone());
    consume_outbound_with(url, bus, platform).await
}

/// Like [`consume_outbound`], with the stream read from the node at `url` (on a Redis Cluster:
/// the master owning `outbound.message`) and the events published through `bus` (any
/// topology).
pub async fn consume_outbound_with(
    url: SecretString,
    bus: portal_redis::RedisSettings,
    platform: &Platform,
) -> Result<OutboundConsumer, StartError> {
    use secrecy::ExposeSecret;
    let client = redis::Client::open(url.expose_secret()).map_err(|_| StartError::BadUrl)?;
    let stores = portal_redis::RedisStores::connect(bus).map_err(|_| StartError::BadUrl)?;
    let delivery = platform.delivery(Arc::new(RetryingBus(stores)));
    let consumer = format!("sandbox-{}", std::process::id());
    let first = match connect(&client).await {
        Ok(mut conn) => match ensure_group(&mut conn, "$").await {
            Ok(()) => Some(conn),
            Err(e) => {
                tracing::warn!(error = %e, "outbound consumer group not created yet; retrying");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "Redis not reachable yet; the outbound consumer retries");
            None
        }
    };
    let task = tokio::spawn(run(client, first, consumer, delivery));
    Ok(OutboundConsumer { task })
}

async fn connect(client: &redis::Client) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        // A blocked read answers within BLOCK; anything longer is a dead server.
        .set_response_timeout(Some(Duration::from_millis(BLOCK_MS) + CONNECT_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Creates the group at `start` (`$`: the end, `0`: the start) unless it exists.
async fn ensure_group(
    conn: &mut redis::aio::MultiplexedConnection,
    start: &str,
) -> redis::RedisResult<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg(start)
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

async fn run(
    client: redis::Client,
    mut ready: Option<redis::aio::MultiplexedConnection>,
    consumer: String,
    delivery: Arc<dyn OutboundQueue>,
) {
    let mut backoff = MIN_BACKOFF;
    // Whether the group was ever created: from then on a missing group means a Redis that lost
    // its data, whose stream holds only entries this consumer never saw.
    let mut created = ready.is_some();
    loop {
        let conn = match ready.take() {
            Some(c) => Ok(c),
            None => match connect(&client).await {
                Ok(mut c) => ensure_group(&mut c, if created { "0" } else { "$" })
                    .await
                    .map(|()| c),
                Err(e) => Err(e),
            },
        };
        match conn {
            Ok(mut conn) => {
                created = true;
                backoff = MIN_BACKOFF;
                tracing::info!(
                    stream = STREAM,
                    group = GROUP,
                    "consuming the outbound queue"
                );
                let e = consume(&mut conn, &consumer, delivery.as_ref()).await;
                tracing::warn!(error = %e, "outbound consumer lost Redis; reconnecting");
            }
            Err(e) => tracing::debug!(error = %e, "outbound consumer: Redis unavailable"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Reads and delivers until a Redis error (returned).
async fn consume(
    conn: &mut redis::aio::MultiplexedConnection,
    consumer: &str,
    delivery: &dyn OutboundQueue,
) -> redis::RedisError {
    // This consumer's pending entries first (delivered before a crash, never acknowledged).
    let mut cursor = "0";
    loop {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(BATCH);
        if cursor == ">" {
            cmd.arg("BLOCK").arg(BLOCK_MS);
        }
        cmd.arg("STREAMS").arg(STREAM).arg(cursor);
        let reply: Option<StreamReadReply> = match cmd.query_async(conn).await {
            Ok(r) => r,
            Err(e) if e.code() == Some("NOGROUP") => {
                if let Err(e) = ensure_group(conn, "0").await {
                    return e;
                }
                continue;
            }
            Err(e) => return e,
        };
        let entries: Vec<_> = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        // One batch of pending entries, then new ones only.
        cursor = ">";
        for entry in entries {
            if let Some(message) = decode(&entry) {
                // Recording is synchronous; the events follow from a task. Idempotent per
                // message ID, so a redelivered entry is not sent twice.
                if let Err(e) = delivery.enqueue(&message).await {
                    tracing::warn!(error = %e, "outbound entry not delivered; left pending");
                    continue;
                }
            } else {
                tracing::warn!(entry = %entry.id, "undecodable outbound entry acknowledged and dropped");
            }
            let acked: redis::RedisResult<i64> = redis::cmd("XACK")
                .arg(STREAM)
                .arg(GROUP)
                .arg(&entry.id)
                .query_async(conn)
                .await;
            if let Err(e) = acked {
                return e;
            }
        }
    }
}

fn decode(entry: &redis::streams::StreamId) -> Option<OutboundMessage> {
    let payload: Vec<u8> = entry.get(PAYLOAD_FIELD)?;
    serde_json::from_slice(&payload).ok()
}

/// Publish attempts per event: after a Redis restart the first pooled connections are dead
/// ("connection lost") and are replaced one failure at a time.
const PUBLISH_ATTEMPTS: u32 = 5;

/// portal-redis's event bus (same channels, same JSON), retrying a failed publish a few times
/// so a Redis restart does not lose a delivery's events.
struct RetryingBus(portal_redis::RedisStores);

#[async_trait]
impl EventBus for RetryingBus {
    async fn publish(&self, event: &TenantEvent) -> Result<(), StoreError> {
        let mut delay = MIN_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.0.publish(event).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= PUBLISH_ATTEMPTS => return Err(e),
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
            }
        }
    }

    async fn publish_revocation(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.0.publish_revocation(key).await
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>, StoreError> {
        self.0.subscribe().await
    }
}
