//! `EventBus` on Redis Pub/Sub and `OutboundQueue` on the `outbound.message` stream.
//!
//! Subscribing opens **one** dedicated subscription per [`RedisStores`] (pub/sub is not
//! pooled). A background task owns it, reconnects and resubscribes with exponential backoff,
//! and fans decoded events out through a bounded broadcast channel: a consumer that lags loses
//! the oldest events (logged), the connection is never blocked.
//!
//! What the subscription is, per topology and `REDIS_PUBSUB`:
//! - classic (default), one node or Sentinel: one connection to the node (the Sentinels' current
//!   master) with `PSUBSCRIBE tenant.*.messages tenant.*.status` and `SUBSCRIBE
//!   portal.sessions.revoked`;
//! - classic, Cluster: the same on **one** node of the Cluster (a Cluster broadcasts every
//!   `PUBLISH` to every node, so one node sees everything; one connection means no event
//!   arrives twice). The node is picked from `CLUSTER NODES` through the request connection; if
//!   it fails, another one is;
//! - sharded, Cluster: the `redis` crate's cluster connection (RESP3) `SSUBSCRIBE`s the 16
//!   partition channels (`keys::shard_channel`) and the revocation channel, each on the shard
//!   owning it. A slot move (the server's `SUNSUBSCRIBE`) or a lost node triggers a
//!   resubscription at once, and every check interval all channels are subscribed again
//!   (idempotent on a healthy connection), which follows a failover.

use crate::conn::{ClusterSettings, Connector};
use crate::keys::{
    OUTBOUND_MAXLEN, OUTBOUND_STREAM, REVOCATION_CHANNEL, SHARD_PARTITIONS, TENANT_PATTERNS,
    partition_channel,
};
use crate::{RedisStores, error};
use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use portal_domain::StoreError;
use portal_domain::model::{BusEvent, OutboundMessage, SessionKey, TenantEvent};
use portal_domain::ports::stores::{EventBus, OutboundQueue};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// Events buffered per subscriber before the oldest are dropped.
const CAPACITY: usize = 4096;
/// First reconnect delay; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the idle subscription is checked (pinged, or resubscribed when sharded), to
/// notice a hung server or follow a failover.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Prefix of the sharded partition channels (`tenant.shard.{<h>}`).
const PARTITION_PREFIX: &str = "tenant.shard.{";

/// The running subscription of an instance.
pub(crate) struct Subscription {
    tx: broadcast::Sender<BusEvent>,
    /// Aborted when the stores are dropped.
    pub(crate) task: JoinHandle<()>,
}

fn receiver_stream(rx: broadcast::Receiver<BusEvent>) -> BoxStream<'static, BusEvent> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((event, rx)),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "event bus consumer lagged; oldest events dropped");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

/// A message as it arrived: its channel and payload.
struct Raw {
    channel: String,
    payload: Vec<u8>,
}

fn decode(raw: &Raw) -> Option<BusEvent> {
    let (channel, payload) = if raw.channel.starts_with(PARTITION_PREFIX) {
        // Sharded envelope: `<tenant channel> <payload>`.
        let split = raw.payload.iter().position(|b| *b == b' ')?;
        let channel = std::str::from_utf8(raw.payload.get(..split)?).ok()?;
        (channel, raw.payload.get(split + 1..)?)
    } else {
        (raw.channel.as_str(), raw.payload.as_slice())
    };
    if channel == REVOCATION_CHANNEL {
        let key = std::str::from_utf8(payload).ok()?.trim();
        let well_formed = !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit());
        return well_formed.then(|| BusEvent::SessionRevoked(SessionKey::from_hex(key)));
    }
    TenantEvent::decode(channel, payload).map(BusEvent::Tenant)
}

/// An open subscription: its messages (the stream ends when the connection is lost) and a
/// check run every [`CHECK_EVERY`] (false: reconnect).
struct Open {
    messages: BoxStream<'static, Raw>,
    check: Box<dyn FnMut() -> BoxFuture<'static, bool> + Send>,
}

/// Classic subscriptions on one node's dedicated (RESP2) connection.
async fn open_classic(client: &redis::Client, timeout: Duration) -> redis::RedisResult<Open> {
    let mut pubsub = client.get_async_pubsub().await?;
    for pattern in TENANT_PATTERNS {
        pubsub.psubscribe(pattern).await?;
    }
    pubsub.subscribe(REVOCATION_CHANNEL).await?;
    let (sink, stream) = pubsub.split();
    let messages = stream
        .map(|msg| Raw {
            channel: msg.get_channel_name().to_owned(),
            payload: msg.get_payload_bytes().to_vec(),
        })
        .boxed();
    let check = Box::new(move || {
        let mut sink = sink.clone();
        async move {
            // In subscribed mode (RESP2) PING answers ["pong", ""], not a status string:
            // accept any reply, or every check would reconnect.
            matches!(
                tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await,
                Ok(Ok(_))
            )
        }
        .boxed()
    });
    Ok(Open { messages, check })
}

/// The nodes of a Cluster that look alive, from `CLUSTER NODES` (`host`, `port`).
async fn cluster_nodes(stores: &RedisStores) -> Result<Vec<(String, u16)>, StoreError> {
    let text: String = stores
        .read("subscribe", redis::cmd("CLUSTER").arg("NODES"))
        .await?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let flags = fields.get(2)?;
            let link = fields.get(7)?;
            if flags.contains("fail") || flags.contains("noaddr") || *link != "connected" {
                return None;
            }
            let addr = fields.get(1)?.split(['@', ',']).next()?;
            crate::config::parse_node(addr).ok()
        })
        .collect())
}

/// The sharded channels every instance subscribes: the partitions and the revocations.
fn sharded_channels() -> Vec<String> {
    SHARD_PARTITIONS
        .chars()
        .map(partition_channel)
        .chain(std::iter::once(REVOCATION_CHANNEL.to_owned()))
        .collect()
}

/// `SSUBSCRIBE`s every channel, one command each (they live in different slots).
async fn ssubscribe_all(
    conn: &redis::cluster_async::ClusterConnection,
    channels: &[String],
) -> bool {
    let each = channels.iter().map(|ch| {
        let mut conn = conn.clone();
        async move { conn.ssubscribe(ch).await }
    });
    futures::future::join_all(each)
        .await
        .iter()
        .all(Result::is_ok)
}

/// Sharded subscriptions on a RESP3 cluster connection of their own.
async fn open_sharded(settings: &ClusterSettings) -> redis::RedisResult<Open> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<redis::PushInfo>();
    let client = settings
        .builder()
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(tx)
        .build()?;
    let conn = client.get_async_connection().await?;
    let channels = sharded_channels();
    if !ssubscribe_all(&conn, &channels).await {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "sharded subscription refused",
        )));
    }
    let resubscriber = conn.clone();
    let wanted = channels.clone();
    let messages = tokio_stream_from(rx)
        .filter_map(move |push| {
            let raw = match push.kind {
                redis::PushKind::SMessage => {
                    let mut data = push.data.into_iter();
                    let channel = data.next().and_then(|v| bytes(&v));
                    let payload = data.next().and_then(|v| bytes(&v));
                    channel
                        .and_then(|c| String::from_utf8(c).ok())
                        .zip(payload)
                        .map(|(channel, payload)| Raw { channel, payload })
                }
                // A slot moved (the server dropped our subscription) or a node's connection
                // went: subscribe again now; the cluster connection routes each channel to its
                // current owner.
                redis::PushKind::SUnsubscribe | redis::PushKind::Disconnection => {
                    let conn = resubscriber.clone();
                    let wanted = wanted.clone();
                    tokio::spawn(async move {
                        if !ssubscribe_all(&conn, &wanted).await {
                            tracing::debug!(
                                "sharded resubscription incomplete; retried at the next check"
                            );
                        }
                    });
                    None
                }
                _ => None,
            };
            futures::future::ready(raw)
        })
        .boxed();
    let check = Box::new(move || {
        let conn = conn.clone();
        let channels = channels.clone();
        async move { ssubscribe_all(&conn, &channels).await }.boxed()
    });
    Ok(Open { messages, check })
}

fn bytes(v: &redis::Value) -> Option<Vec<u8>> {
    match v {
        redis::Value::BulkString(b) => Some(b.clone()),
        redis::Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

impl RedisStores {
    /// Opens the instance's subscription for its topology and mode. `attempt` rotates the
    /// Cluster node a classic subscription starts from, so a dead node is not tried forever.
    async fn open_subscription(&self, attempt: usize) -> Result<Open, StoreError> {
        let timeout = self.inner.connect_timeout;
        let unavailable = |e: redis::RedisError| error::unavailable("subscribe", &e);
        match &self.inner.connector {
            Connector::Cluster { settings, .. }
                if self.inner.pubsub == crate::config::PubSubMode::Sharded =>
            {
                open_sharded(settings).await.map_err(unavailable)
            }
            Connector::Cluster { settings, .. } => {
                let nodes = cluster_nodes(self).await?;
                let count = nodes.len();
                let mut last = StoreError::Unavailable("redis subscribe: no cluster node".into());
                for i in 0..count {
                    let Some((host, port)) = nodes.get((attempt + i) % count) else {
                        continue;
                    };
                    let opened = async {
                        let client = settings.node_client(host, *port)?;
                        open_classic(&client, timeout).await
                    };
                    match opened.await {
                        Ok(open) => return Ok(open),
                        Err(e) => last = unavailable(e),
                    }
                }
                Err(last)
            }
            _ => {
                let client = self.inner.connector.pubsub_client().await?;
                open_classic(&client, timeout).await.map_err(unavailable)
            }
        }
    }
}

/// Owns the subscription for the life of the stores (holding them weakly: dropping the stores
/// aborts this task).
async fn run(
    stores: std::sync::Weak<crate::Inner>,
    tx: broadcast::Sender<BusEvent>,
    connect_timeout: Duration,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
    let mut ready = Some(ready);
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(owner) = RedisStores::from_weak(&stores) else {
            return;
        };
        let attempt = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        let opened =
            match tokio::time::timeout(connect_timeout * 2, owner.open_subscription(attempt)).await
            {
                Ok(r) => r,
                Err(_) => Err(error::timed_out("subscribe")),
            };
        drop(owner);
        match opened {
            Ok(mut open) => {
                backoff = MIN_BACKOFF;
                match ready.take() {
                    Some(r) => drop(r.send(Ok(()))),
                    None => tracing::info!("event bus resubscribed"),
                }
                let mut ticker = tokio::time::interval(CHECK_EVERY);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        msg = open.messages.next() => match msg {
                            Some(raw) => match decode(&raw) {
                                // No receiver right now is fine: nobody is listening.
                                Some(event) => drop(tx.send(event)),
                                None => tracing::debug!("undecodable event bus message ignored"),
                            },
                            None => break,
                        },
                        _ = ticker.tick() => {
                            if !(open.check)().await {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!("event bus subscription lost; resubscribing");
            }
            Err(e) => {
                if let Some(r) = ready.take() {
                    drop(r.send(Err(e)));
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

impl RedisStores {
    /// Sends a publish command. On a Cluster every classic `PUBLISH` of this instance goes
    /// through the master of one fixed slot: a Cluster relays a message to the other nodes from
    /// the node it was published on, so publishing from one node keeps this instance's events
    /// (a tenant's message, then its statuses) in order for every subscriber. (`SPUBLISH` is
    /// routed by its channel's slot.)
    async fn publish_cmd(&self, op: &'static str, cmd: redis::Cmd) -> Result<(), StoreError> {
        let sharded = self.inner.pubsub == crate::config::PubSubMode::Sharded;
        let cmd = &cmd;
        self.run(op, false, move |conn| async move {
            match conn {
                crate::conn::Conn::Cluster(mut c) if !sharded => {
                    use redis::cluster_routing::{
                        Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
                    };
                    let route = Route::with_key(PUBLISH_ANCHOR, SlotAddr::Master);
                    c.route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await
                    .map(drop)
                }
                crate::conn::Conn::Cluster(mut c) => cmd.query_async::<i64>(&mut c).await.map(drop),
                crate::conn::Conn::Node(mut c) => cmd.query_async::<i64>(&mut c).await.map(drop),
            }
        })
        .await
    }
}

/// The key whose slot's master relays every classic `PUBLISH` on a Cluster.
const PUBLISH_ANCHOR: &str = "portal.events";

#[async_trait]
impl EventBus for RedisStores {
    async fn publish(&self, event: &TenantEvent) -> Result<(), StoreError> {
        let payload = event.payload().to_string();
        let cmd = match self.inner.pubsub {
            crate::config::PubSubMode::Classic => {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(event.channel()).arg(payload);
                cmd
            }
            crate::config::PubSubMode::Sharded => {
                let mut cmd = redis::cmd("SPUBLISH");
                cmd.arg(crate::keys::shard_channel(event.tenant_id()))
                    .arg(format!("{} {payload}", event.channel()));
                cmd
            }
        };
        self.publish_cmd("publish", cmd).await
    }

    async fn publish_revocation(&self, key: &SessionKey) -> Result<(), StoreError> {
        let verb = match self.inner.pubsub {
            crate::config::PubSubMode::Classic => "PUBLISH",
            crate::config::PubSubMode::Sharded => "SPUBLISH",
        };
        let mut cmd = redis::cmd(verb);
        cmd.arg(REVOCATION_CHANNEL).arg(key.as_str());
        self.publish_cmd("publish revocation", cmd).await
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>, StoreError> {
        let mut current = self.inner.bus.lock().await;
        if let Some(sub) = current.as_ref()
            && !sub.task.is_finished()
        {
            return Ok(receiver_stream(sub.tx.subscribe()));
        }
        let (tx, rx) = broadcast::channel(CAPACITY);
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(run(
            self.weak(),
            tx.clone(),
            self.inner.connect_timeout,
            ready_tx,
        ));
        match tokio::time::timeout(self.inner.connect_timeout * 3, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                task.abort();
                return Err(e);
            }
            _ => {
                task.abort();
                return Err(error::timed_out("subscribe"));
            }
        }
        *current = Some(Subscription { tx, task });
        Ok(receiver_stream(rx))
    }
}

#[async_trait]
impl OutboundQueue for RedisStores {
    async fn enqueue(&self, message: &OutboundMessage) -> Result<String, StoreError> {
        let payload = serde_json::to_string(message)
            .map_err(|_| StoreError::Corrupt("outbound message not encodable".into()))?;
        self.query(
            "enqueue",
            redis::cmd("XADD")
                .arg(OUTBOUND_STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(OUTBOUND_MAXLEN)
                .arg("*")
                .arg("payload")
                .arg(payload),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sharded_envelope_decodes_to_its_tenant_event_or_revocation() {
        let tenant = portal_domain::model::TenantId::new_random();
        let event = portal_contract::fixtures::status_event(tenant);
        let raw = Raw {
            channel: crate::keys::shard_channel(tenant),
            payload: format!("{} {}", event.channel(), event.payload()).into_bytes(),
        };
        assert_eq!(decode(&raw), Some(BusEvent::Tenant(event)));
        let revoked = Raw {
            channel: REVOCATION_CHANNEL.into(),
            payload: b"abc123".to_vec(),
        };
        assert!(matches!(
            decode(&revoked),
            Some(BusEvent::SessionRevoked(_))
        ));
    }
}
