//! `EventHistory`: each tenant's recent events in the Stream `events:{<tenant>}` (fields `c`,
//! the channel, and `p`, the payload as published), and each recorded [`EventKey`]'s ID under
//! `event_key:{<tenant>}:<digest>:<occurrence>` for the dedup window. Both carry the tenant's
//! hash tag, so the append script stays in one slot on a Cluster.
//!
//! Append is one script: if the key is known, its ID; otherwise `XADD` (trimmed to the
//! length, exactly), remember the key's ID, drop entries older than the age (`XTRIM MINID`
//! from the server's clock) and let the whole Stream expire after the age without appends.
//! Every instance runs it for every event it receives; exactly one `XADD`s. It is sent as
//! `EVAL` with its text, never `EVALSHA`: after a script-cache flush, `EVALSHA`'s retry would
//! reorder appends, and IDs must follow the order events arrive in.
//!
//! Recovery is one `XRANGE <since> + COUNT limit+2`: the first entry must be `since` itself
//! (trimming removes the oldest first, so nothing after a present entry is missing).

use crate::{RedisStores, error, millis};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::{EventId, TenantEvent, TenantId};
use portal_domain::ports::realtime::{EventHistory, EventKey, Recorded, Retention, Since};
use redis::streams::StreamRangeReply;

/// KEYS: the event key, the Stream. ARGV: max events, max age ms, dedup window ms, channel,
/// payload. Returns the ID.
const APPEND: &str = r"local id = redis.call('GET', KEYS[1])
if id then return id end
id = redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[1], '*', 'c', ARGV[4], 'p', ARGV[5])
redis.call('SET', KEYS[1], id, 'PX', ARGV[3])
local t = redis.call('TIME')
local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2])
if oldest > 0 then redis.call('XTRIM', KEYS[2], 'MINID', oldest) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return id";

#[async_trait]
impl EventHistory for RedisStores {
    async fn append(
        &self,
        key: &EventKey,
        event: &TenantEvent,
        retention: Retention,
    ) -> Result<EventId, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(APPEND)
            .arg(2)
            .arg(self.keys().event_key(key))
            .arg(self.keys().history(key.tenant))
            .arg(retention.max_events.max(1))
            .arg(millis(retention.max_age))
            .arg(millis(retention.dedup_window))
            .arg(event.channel())
            .arg(event.payload().to_string());
        let id: String = self.query("history append", &cmd).await?;
        id.parse().map_err(|_| error::corrupt("event id"))
    }

    async fn since(
        &self,
        tenant: TenantId,
        since: EventId,
        limit: u32,
    ) -> Result<Since, StoreError> {
        let reply: StreamRangeReply = self
            .read(
                "history since",
                redis::cmd("XRANGE")
                    .arg(self.keys().history(tenant))
                    .arg(since.to_string())
                    .arg("+")
                    .arg("COUNT")
                    .arg(u64::from(limit) + 2),
            )
            .await?;
        let mut entries = reply.ids.into_iter();
        match entries.next() {
            Some(first) if first.id == since.to_string() => {}
            _ => return Ok(Since::Gap),
        }
        let rest: Vec<_> = entries.collect();
        if rest.len() > limit as usize {
            return Ok(Since::Gap);
        }
        let mut events = Vec::with_capacity(rest.len());
        for entry in rest {
            let id: EventId = entry.id.parse().map_err(|_| error::corrupt("event id"))?;
            let channel: Option<String> = entry.get("c");
            let payload: Option<Vec<u8>> = entry.get("p");
            let event = channel
                .zip(payload)
                .and_then(|(c, p)| TenantEvent::decode(&c, &p))
                .ok_or_else(|| error::corrupt("history entry"))?;
            events.push(Recorded { id, event });
        }
        Ok(Since::Events(events))
    }
}
