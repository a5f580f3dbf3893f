//! `Presence`: the registry of live sockets, per tenant, in three keys with the tenant's hash
//! tag (one slot on a Cluster): `ws:{<tenant>}:live`, a sorted set of the instances with
//! sockets and until when they count (ms, the server's clock); `ws:{<tenant>}:sessions` and
//! `ws:{<tenant>}:users`, hashes of `<session or user>|<instance>` → sockets.
//!
//! Counts are per instance, and only live instances' counts are summed, so a crashed
//! instance's sockets stop counting when its entry's time runs out; its fields are removed at
//! the tenant's next refresh. Each operation is one script (the caps' check and count are
//! atomic).

use crate::{RedisStores, error, millis};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::{TenantId, UserId};
use portal_domain::ports::realtime::{
    Admission, InstanceId, OwnerSockets, Presence, SocketCaps, SocketOwner, TenantPresence,
};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// The server's clock in ms, as `now`; `keep(ttl)`: every key lives at least `ttl` more
/// (never less than another instance needs).
const NOW: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function keep(ttl)
  for i = 1, #KEYS do
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
";

/// KEYS: live, sessions, users. ARGV: instance, session, user, session cap, user cap, ttl ms.
/// Returns 0 (admitted), 1 (session full) or 2 (user full).
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}local ttl = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
local function total(key, who)
  local fields = {{}}
  for i, inst in ipairs(live) do fields[i] = who .. '|' .. inst end
  local n = 0
  for _, v in ipairs(redis.call('HMGET', key, unpack(fields))) do
    if v then n = n + tonumber(v) end
  end
  return n
end
if total(KEYS[2], ARGV[2]) >= tonumber(ARGV[4]) then return 1 end
if total(KEYS[3], ARGV[3]) >= tonumber(ARGV[5]) then return 2 end
redis.call('HINCRBY', KEYS[2], ARGV[2] .. '|' .. ARGV[1], 1)
redis.call('HINCRBY', KEYS[3], ARGV[3] .. '|' .. ARGV[1], 1)
keep(ttl)
return 0"
    ))
});

/// KEYS: sessions, users. ARGV: session, user, instance.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"for i = 1, 2 do
  local f = ARGV[i] .. '|' .. ARGV[3]
  if redis.call('HINCRBY', KEYS[i], f, -1) <= 0 then redis.call('HDEL', KEYS[i], f) end
end
return 0",
    )
});

/// KEYS: live, sessions, users. ARGV: instance, ttl ms, then (session, user, sockets) per
/// owner.
static REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}local inst = ARGV[1]
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, inst)
local live = {{}}
for _, i in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do live[i] = true end
for k = 2, 3 do
  local all = redis.call('HGETALL', KEYS[k])
  for j = 1, #all, 2 do
    local owner = string.match(all[j], '|([^|]*)$')
    if owner == inst or not live[owner] then redis.call('HDEL', KEYS[k], all[j]) end
  end
end
for j = 3, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[2], ARGV[j] .. '|' .. inst, ARGV[j + 2])
  redis.call('HINCRBY', KEYS[3], ARGV[j + 1] .. '|' .. inst, ARGV[j + 2])
end
keep(ttl)
return 0"
    ))
});

/// KEYS: live, users. Returns `[user, sockets, ...]` over live instances.
static TENANT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}local live = {{}}
for _, i in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do live[i] = true end
local sum = {{}}
local all = redis.call('HGETALL', KEYS[2])
for j = 1, #all, 2 do
  local who, inst = string.match(all[j], '^(.*)|([^|]*)$')
  if who and live[inst] then sum[who] = (sum[who] or 0) + tonumber(all[j + 1]) end
end
local out = {{}}
for who, n in pairs(sum) do
  if n > 0 then
    out[#out + 1] = who
    out[#out + 1] = n
  end
end
return out"
    ))
});

#[async_trait]
impl Presence for RedisStores {
    async fn admit(
        &self,
        instance: &InstanceId,
        owner: &SocketOwner,
        caps: SocketCaps,
        ttl: Duration,
    ) -> Result<Admission, StoreError> {
        let keys = self.keys();
        let mut inv = ADMIT.prepare_invoke();
        inv.key(keys.sockets_live(owner.tenant))
            .key(keys.sockets_by_session(owner.tenant))
            .key(keys.sockets_by_user(owner.tenant))
            .arg(instance.as_str())
            .arg(owner.session.as_str())
            .arg(owner.user.as_str())
            .arg(caps.per_session)
            .arg(caps.per_user)
            .arg(millis(ttl));
        match self.eval::<i64>("presence admit", inv).await? {
            0 => Ok(Admission::Admitted),
            1 => Ok(Admission::SessionFull),
            2 => Ok(Admission::UserFull),
            _ => Err(error::corrupt("presence admission")),
        }
    }

    async fn release(&self, instance: &InstanceId, owner: &SocketOwner) -> Result<(), StoreError> {
        let keys = self.keys();
        let mut inv = RELEASE.prepare_invoke();
        inv.key(keys.sockets_by_session(owner.tenant))
            .key(keys.sockets_by_user(owner.tenant))
            .arg(owner.session.as_str())
            .arg(owner.user.as_str())
            .arg(instance.as_str());
        self.eval::<i64>("presence release", inv).await.map(drop)
    }

    async fn refresh(
        &self,
        instance: &InstanceId,
        tenant: TenantId,
        owners: &[OwnerSockets],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let keys = self.keys();
        let mut inv = REFRESH.prepare_invoke();
        inv.key(keys.sockets_live(tenant))
            .key(keys.sockets_by_session(tenant))
            .key(keys.sockets_by_user(tenant))
            .arg(instance.as_str())
            .arg(millis(ttl));
        for o in owners {
            inv.arg(o.owner.session.as_str())
                .arg(o.owner.user.as_str())
                .arg(o.sockets);
        }
        self.eval::<i64>("presence refresh", inv).await.map(drop)
    }

    async fn tenant(&self, tenant: TenantId) -> Result<TenantPresence, StoreError> {
        let keys = self.keys();
        let mut inv = TENANT.prepare_invoke();
        inv.key(keys.sockets_live(tenant))
            .key(keys.sockets_by_user(tenant));
        let flat: Vec<(String, u32)> = self.eval("presence read", inv).await?;
        let mut users = flat
            .into_iter()
            .map(|(user, n)| {
                UserId::parse(user)
                    .map(|u| (u, n))
                    .map_err(|_| error::corrupt("presence user"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        users.sort();
        Ok(TenantPresence { users })
    }
}
