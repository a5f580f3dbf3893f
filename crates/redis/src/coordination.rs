//! Single-use tokens (`GETDEL`), the lock (`SET NX PX`, compare-and-renew, compare-and-delete), the rate limiter
//! (GCRA in a Lua script on one key) and idempotency records.

use crate::{RedisStores, error, millis};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{
    IdempotencyClaim, IdempotencyStore, Lock, LockToken, OneTimePurpose, OneTimeStore,
    RateDecision, RateLimiter, RatePolicy,
};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// Deletes the lock only if it still holds the caller's token.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0",
    )
});

/// Extends the lease only if the lock still holds the caller's token.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

/// [`RatePolicy::gcra`] on one key holding the theoretical arrival time (µs since the epoch,
/// on the server's clock, so instances with skewed clocks share one limit). ARGV: limit,
/// window µs, cost. Three commands inside (`TIME`, `GET`, and `SET PX` when units are
/// recorded): no per-hit log, one small string per active user. Returns {allowed, remaining,
/// reset µs}, as `gcra` computes them; integers below 2^53 are exact in Lua's doubles.
static RATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local arrival = tonumber(redis.call('GET', KEYS[1]))
local backlog = 0
if arrival and arrival > now then backlog = arrival - now end
local interval = math.floor(window / math.max(limit, 1))
local need = math.max(cost, 1)
local after = backlog + need * interval
local fits = after <= window
local kept = backlog
if cost > 0 and fits then
  kept = backlog + cost * interval
  if kept > 0 then
    redis.call('SET', KEYS[1], string.format('%.0f', now + kept), 'PX', math.ceil(kept / 1000))
  end
end
local remaining = limit
if interval > 0 then remaining = math.min(math.floor((window - kept) / interval), limit) end
if remaining < 0 then remaining = 0 end
local reset = kept
if not fits then
  if need > limit then reset = window else reset = after - window end
end
return {fits and 1 or 0, remaining, reset}",
    )
});

/// Reserves a free key, or reports its content.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('SET', KEYS[1], 'pending', 'NX', 'PX', ARGV[1]) then return {1, false} end
return {0, redis.call('GET', KEYS[1])}",
    )
});

/// Frees a reservation, never a finished record.
static ABANDON: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == 'pending' then return redis.call('DEL', KEYS[1]) end
return 0",
    )
});

const PENDING: &str = "pending";
const DONE_PREFIX: &str = "done:";

#[async_trait]
impl OneTimeStore for RedisStores {
    async fn put(
        &self,
        purpose: OneTimePurpose,
        digest: &str,
        payload: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.query::<()>(
            "one-time put",
            redis::cmd("SET")
                .arg(self.keys().one_time(purpose, digest))
                .arg(payload)
                .arg("PX")
                .arg(millis(ttl)),
        )
        .await
    }

    async fn take(
        &self,
        purpose: OneTimePurpose,
        digest: &str,
    ) -> Result<Option<String>, StoreError> {
        self.query(
            "one-time take",
            redis::cmd("GETDEL").arg(self.keys().one_time(purpose, digest)),
        )
        .await
    }
}

#[async_trait]
impl Lock for RedisStores {
    async fn try_acquire(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let set: Option<String> = self
            .query(
                "lock acquire",
                redis::cmd("SET")
                    .arg(self.keys().lock(name))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(set.map(|_| LockToken(token)))
    }

    async fn renew(
        &self,
        name: &str,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut inv = RENEW.prepare_invoke();
        inv.key(self.keys().lock(name))
            .arg(&token.0)
            .arg(millis(ttl));
        let renewed: i64 = self.eval("lock renew", inv).await?;
        Ok(renewed == 1)
    }

    async fn release(&self, name: &str, token: &LockToken) -> Result<bool, StoreError> {
        let mut inv = RELEASE.prepare_invoke();
        inv.key(self.keys().lock(name)).arg(&token.0);
        let deleted: i64 = self.eval("lock release", inv).await?;
        Ok(deleted == 1)
    }
}

/// The rate script's raw answer: {allowed, remaining, reset µs}.
pub(crate) type RateReply = (i64, i64, i64);

impl RedisStores {
    /// The rate script as a plain `EVALSHA` command, to ride in a pipeline. A `NOSCRIPT` answer
    /// (script cache flushed, server restarted) is the caller's to handle, e.g. by falling back
    /// to [`RateLimiter::hit`], which loads the script.
    pub(crate) fn rate_evalsha(&self, key: &str, policy: RatePolicy, cost: u32) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(RATE.get_hash())
            .arg(1)
            .arg(self.keys().rate_limit(key))
            .arg(policy.limit)
            .arg(policy.window_micros())
            .arg(cost);
        cmd
    }
}

/// Turns the script's answer into the port's decision.
pub(crate) fn rate_decision(policy: RatePolicy, reply: RateReply) -> RateDecision {
    let (allowed, remaining, reset) = reply;
    RateDecision {
        allowed: allowed == 1,
        limit: policy.limit,
        remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
        reset_after: Duration::from_micros(u64::try_from(reset.max(0)).unwrap_or(0)),
    }
}

#[async_trait]
impl RateLimiter for RedisStores {
    async fn hit(
        &self,
        key: &str,
        policy: RatePolicy,
        cost: u32,
    ) -> Result<RateDecision, StoreError> {
        let mut inv = RATE.prepare_invoke();
        inv.key(self.keys().rate_limit(key))
            .arg(policy.limit)
            .arg(policy.window_micros())
            .arg(cost);
        let reply: RateReply = self.eval("rate limit", inv).await?;
        Ok(rate_decision(policy, reply))
    }
}

#[async_trait]
impl IdempotencyStore for RedisStores {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<IdempotencyClaim, StoreError> {
        let mut inv = CLAIM.prepare_invoke();
        inv.key(self.keys().idempotency(key)).arg(millis(ttl));
        let (claimed, current): (i64, Option<String>) = self.eval("idempotency claim", inv).await?;
        if claimed == 1 {
            return Ok(IdempotencyClaim::Claimed);
        }
        match current.as_deref() {
            Some(PENDING) => Ok(IdempotencyClaim::InProgress),
            Some(v) => v
                .strip_prefix(DONE_PREFIX)
                .map(|r| IdempotencyClaim::Done(r.to_owned()))
                .ok_or_else(|| error::corrupt("idempotency record")),
            None => Err(error::corrupt("idempotency record")),
        }
    }

    /// A plain `SET` (not `XX`): if the reservation expired during a slow operation, the result
    /// is still recorded, so a retry gets `Done` instead of sending twice.
    async fn finish(&self, key: &str, result: &str, ttl: Duration) -> Result<(), StoreError> {
        self.query::<()>(
            "idempotency finish",
            redis::cmd("SET")
                .arg(self.keys().idempotency(key))
                .arg(format!("{DONE_PREFIX}{result}"))
                .arg("PX")
                .arg(millis(ttl)),
        )
        .await
    }

    async fn abandon(&self, key: &str) -> Result<(), StoreError> {
        let mut inv = ABANDON.prepare_invoke();
        inv.key(self.keys().idempotency(key));
        self.eval::<i64>("idempotency abandon", inv).await.map(drop)
    }
}
