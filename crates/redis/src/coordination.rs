//! Single-use tokens (`GETDEL`), the lock (`SET NX PX`, compare-and-renew, compare-and-delete), the rate limiter
//! (a fixed window counted with `INCRBY`, no script) and idempotency records.

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

/// What a hit answers: the window's count after the hit and its `PTTL` (ms).
pub(crate) type RateReply = (u64, i64);

impl RedisStores {
    /// Adds one hit of [`RatePolicy::fixed_window`] on the key's counter to `pipe`, answering
    /// a [`RateReply`]: `SET 0 PX <window> NX` opens a window when none is open (its answer
    /// ignored), `INCRBY` counts (atomically: racing hits each get their own count), `PTTL`
    /// tells the time left. Plain commands, no script and no `MULTI`: about 1 µs inside Redis,
    /// where the script cost 5–10. Should the window close between the `SET` and the `INCRBY`
    /// (microseconds apart), the `INCRBY` makes a counter without a TTL: its `PTTL` of -1 says
    /// so, and [`Self::rate_decision`] gives it its window (any later hit would too).
    pub(crate) fn add_rate_hit(
        &self,
        pipe: &mut redis::Pipeline,
        key: &str,
        policy: RatePolicy,
        cost: u32,
    ) {
        let key = self.keys().rate_limit(key);
        pipe.cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("PX")
            .arg(millis(policy.window))
            .arg("NX")
            .ignore()
            .cmd("INCRBY")
            .arg(&key)
            .arg(cost)
            .cmd("PTTL")
            .arg(&key);
    }

    /// The decision of a hit's reply. A counter without a TTL (its window closed between the
    /// hit's `SET` and `INCRBY`) is given its window, so it cannot refuse for ever.
    pub(crate) async fn rate_decision(
        &self,
        key: &str,
        policy: RatePolicy,
        cost: u32,
        (count, pttl): RateReply,
    ) -> RateDecision {
        if pttl == -1 {
            // Boxed: rare, and every hit's future would otherwise carry its space.
            let mut heal = redis::cmd("PEXPIRE");
            heal.arg(self.keys().rate_limit(key))
                .arg(millis(policy.window));
            let _ = Box::pin(self.query::<i64>("rate limit", &heal)).await;
        }
        policy.fixed_window(count, cost, left(pttl))
    }
}

/// The time left of a `PTTL` answer (`-2`: no key, `-1`: no TTL).
fn left(pttl: i64) -> Option<Duration> {
    u64::try_from(pttl)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

#[async_trait]
impl RateLimiter for RedisStores {
    async fn hit(
        &self,
        key: &str,
        policy: RatePolicy,
        cost: u32,
    ) -> Result<RateDecision, StoreError> {
        let mut pipe = redis::pipe();
        if cost == 0 {
            let key = self.keys().rate_limit(key);
            pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
            let (count, pttl): (Option<u64>, i64) = self.pipe("rate limit", &pipe).await?;
            return Ok(policy.fixed_window(count.unwrap_or(0), 0, left(pttl)));
        }
        self.add_rate_hit(&mut pipe, key, policy, cost);
        let reply: RateReply = self.pipe("rate limit", &pipe).await?;
        Ok(self.rate_decision(key, policy, cost, reply).await)
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
