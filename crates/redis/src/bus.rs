//! `EventBus` on Redis Pub/Sub and `OutboundQueue` on the `outbound.message` stream.
//!
//! Subscribing opens **one** dedicated pub/sub connection per [`RedisStores`] (pub/sub is not
//! pooled): `PSUBSCRIBE tenant.*.messages tenant.*.status` plus `SUBSCRIBE
//! portal.sessions.revoked`. A background task owns it, reconnects and resubscribes with
//! exponential backoff, and fans decoded events out through a bounded broadcast channel: a
//! consumer that lags loses the oldest events (logged), the connection is never blocked.

use crate::keys::{OUTBOUND_MAXLEN, OUTBOUND_STREAM, REVOCATION_CHANNEL, TENANT_PATTERNS};
use crate::{RedisStores, error};
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use portal_domain::StoreError;
use portal_domain::model::{BusEvent, OutboundMessage, SessionKey, TenantEvent};
use portal_domain::ports::stores::{EventBus, OutboundQueue};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// Events buffered per subscriber before the oldest are dropped.
const CAPACITY: usize = 4096;
/// First reconnect delay; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the idle subscription is pinged, to notice a hung server.
const PING_EVERY: Duration = Duration::from_secs(5);

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

fn decode(msg: &redis::Msg) -> Option<BusEvent> {
    let channel = msg.get_channel_name();
    if channel == REVOCATION_CHANNEL {
        let key = std::str::from_utf8(msg.get_payload_bytes()).ok()?.trim();
        let well_formed = !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit());
        return well_formed.then(|| BusEvent::SessionRevoked(SessionKey::from_hex(key)));
    }
    TenantEvent::decode(channel, msg.get_payload_bytes()).map(BusEvent::Tenant)
}

async fn open(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    for pattern in TENANT_PATTERNS {
        pubsub.psubscribe(pattern).await?;
    }
    pubsub.subscribe(REVOCATION_CHANNEL).await?;
    Ok(pubsub)
}

/// Owns the pub/sub connection for the life of the stores.
async fn run(
    client: redis::Client,
    tx: broadcast::Sender<BusEvent>,
    connect_timeout: Duration,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    let mut backoff = MIN_BACKOFF;
    loop {
        let opened = match tokio::time::timeout(connect_timeout, open(&client)).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(error::unavailable("subscribe", &e)),
            Err(_) => Err(error::timed_out("subscribe")),
        };
        match opened {
            Ok(pubsub) => {
                backoff = MIN_BACKOFF;
                match ready.take() {
                    Some(r) => drop(r.send(Ok(()))),
                    None => tracing::info!("event bus resubscribed"),
                }
                let (mut sink, mut stream) = pubsub.split();
                let mut ticker = tokio::time::interval(PING_EVERY);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => match decode(&msg) {
                                // No receiver right now is fine: nobody is listening.
                                Some(event) => drop(tx.send(event)),
                                None => tracing::debug!("undecodable event bus message ignored"),
                            },
                            None => break,
                        },
                        _ = ticker.tick() => {
                            // In subscribed mode (RESP2) PING answers ["pong", ""], not a
                            // status string: accept any reply, or every ping would reconnect.
                            let pong = tokio::time::timeout(connect_timeout, sink.ping::<redis::Value>()).await;
                            if !matches!(pong, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!("event bus connection lost; reconnecting");
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

#[async_trait]
impl EventBus for RedisStores {
    async fn publish(&self, event: &TenantEvent) -> Result<(), StoreError> {
        let payload = event.payload().to_string();
        self.query::<i64>(
            "publish",
            redis::cmd("PUBLISH").arg(event.channel()).arg(payload),
        )
        .await
        .map(drop)
    }

    async fn publish_revocation(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.query::<i64>(
            "publish revocation",
            redis::cmd("PUBLISH")
                .arg(REVOCATION_CHANNEL)
                .arg(key.as_str()),
        )
        .await
        .map(drop)
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
            self.inner.client.clone(),
            tx.clone(),
            self.inner.connect_timeout,
            ready_tx,
        ));
        match tokio::time::timeout(self.inner.connect_timeout * 2, ready_rx).await {
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
