//! `AuditLog`: a Redis Stream per trail (`audit:{<tenant>}`, or `audit:{platform}`), each
//! entry with fields `e` (the content), `h` (its HMAC) and `p` (the HMAC it chains to), and
//! beside it, under the same hash tag, the anchor (`audit_anchor:{<tenant>}`: the HMAC of the
//! last entry the retention dropped).
//!
//! An append is one script on those two keys: it compares the stream's head (the last
//! entry's `h`, or the anchor when the stream is empty) with the record's `p` and refuses on
//! a mismatch, so writers on several instances keep one linear chain; then `XADD`, then the
//! retention (entries beyond the count or older than the age, by Redis's clock: at most 100
//! per append, the last one's `h` becoming the anchor); both keys expire after the age, so an
//! idle trail does not outlive its entries.

use crate::{RedisStores, error, millis};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{
    AppendOutcome, AuditCursor, AuditLog, AuditRecord, AuditRetention, AuditScope, StoredAudit,
};
use redis::Script;
use std::collections::HashMap;
use std::sync::LazyLock;

/// KEYS: stream, anchor. ARGV: prev, entry, hmac, max entries, max age (ms). Returns
/// `{1, id}` when appended, `{0, head}` when the head is not `prev`.
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local function field(fields, name)
  for i = 1, #fields, 2 do if fields[i] == name then return fields[i + 1] end end
  return ''
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head
if last[1] then head = field(last[1][2], 'h') else head = redis.call('GET', KEYS[2]) or '' end
if head ~= ARGV[1] then return {0, head} end
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[2], 'h', ARGV[3], 'p', ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now - tonumber(ARGV[5])
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[4])
local cut = nil
for i, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)) do
  local ms = tonumber(string.match(e[1], '^(%d+)'))
  if e[1] ~= id and (i <= excess or ms < cutoff) then cut = e else break end
end
if cut then
  redis.call('SET', KEYS[2], field(cut[2], 'h'))
  local ms, seq = string.match(cut[1], '^(%d+)-(%d+)$')
  redis.call('XTRIM', KEYS[1], 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
return {1, id}",
    )
});

/// One stream entry as `XRANGE` returns it.
type Entry = (String, HashMap<String, String>);

fn stored((id, mut fields): Entry) -> Result<StoredAudit, StoreError> {
    let mut take = |name: &str| {
        fields
            .remove(name)
            .ok_or_else(|| error::corrupt("audit entry"))
    };
    Ok(StoredAudit {
        record: AuditRecord {
            entry: take("e")?,
            hmac: take("h")?,
            prev: take("p")?,
        },
        cursor: AuditCursor(id),
    })
}

/// A cursor as a stream ID (`<ms>-<seq>`), checked so it cannot inject a range bound.
fn stream_id(cursor: &AuditCursor) -> Result<&str, StoreError> {
    let id = cursor.0.as_str();
    let ok = id
        .split_once('-')
        .is_some_and(|(ms, seq)| is_number(ms) && is_number(seq));
    if ok {
        Ok(id)
    } else {
        Err(error::corrupt("audit cursor"))
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

impl RedisStores {
    async fn audit_range(
        &self,
        verb: &str,
        scope: AuditScope,
        (from, to): (String, &str),
        count: usize,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        let entries: Vec<Entry> = self
            .read(
                "audit read",
                redis::cmd(verb)
                    .arg(self.keys().audit(scope))
                    .arg(from)
                    .arg(to)
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        entries.into_iter().map(stored).collect()
    }
}

#[async_trait]
impl AuditLog for RedisStores {
    async fn append(
        &self,
        scope: AuditScope,
        record: &AuditRecord,
        retention: AuditRetention,
    ) -> Result<AppendOutcome, StoreError> {
        let mut inv = APPEND.prepare_invoke();
        inv.key(self.keys().audit(scope))
            .key(self.keys().audit_anchor(scope))
            .arg(&record.prev)
            .arg(&record.entry)
            .arg(&record.hmac)
            .arg(retention.max_entries.max(1))
            .arg(millis(retention.max_age));
        let (appended, value): (i64, String) = self.eval("audit append", inv).await?;
        Ok(if appended == 1 {
            AppendOutcome::Appended(AuditCursor(value))
        } else {
            AppendOutcome::Conflict { head: value }
        })
    }

    async fn newest(
        &self,
        scope: AuditScope,
        before: Option<AuditCursor>,
        count: usize,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        let from = match &before {
            Some(c) => format!("({}", stream_id(c)?),
            None => "+".to_owned(),
        };
        self.audit_range("XREVRANGE", scope, (from, "-"), count)
            .await
    }

    async fn oldest(
        &self,
        scope: AuditScope,
        after: Option<AuditCursor>,
        count: usize,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        let from = match &after {
            Some(c) => format!("({}", stream_id(c)?),
            None => "-".to_owned(),
        };
        self.audit_range("XRANGE", scope, (from, "+"), count).await
    }

    async fn anchor(&self, scope: AuditScope) -> Result<String, StoreError> {
        let anchor: Option<String> = self
            .read(
                "audit anchor",
                redis::cmd("GET").arg(self.keys().audit_anchor(scope)),
            )
            .await?;
        Ok(anchor.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_must_be_stream_ids() {
        assert!(stream_id(&AuditCursor("1700000000000-3".into())).is_ok());
        for bad in ["", "-", "+", "1-", "-1", "1-2-3", "(1-0", "1-0 +", "a-0"] {
            assert!(stream_id(&AuditCursor(bad.into())).is_err(), "{bad}");
        }
    }
}
