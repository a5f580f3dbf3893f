//! Rate limiting by [`RatePolicy::gcra`]: one theoretical arrival time per key.

use crate::lock;
use crate::ttl::deadline;
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{RateDecision, RateLimiter, RatePolicy};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The smallest number of keys at which idle keys are swept.
const MIN_PURGE_LEN: usize = 1024;

#[derive(Debug)]
struct Inner {
    /// Each key's theoretical arrival time; a key whose time has passed is idle.
    arrivals: HashMap<String, Instant>,
    /// The number of keys at which the next new key sweeps idle ones.
    purge_at: usize,
}

/// [`RateLimiter`] in memory: [`RatePolicy::gcra`] on each key's backlog, read and updated
/// under one lock, so racing hits never overshoot the limit.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    inner: Mutex<Inner>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                arrivals: HashMap::new(),
                purge_at: MIN_PURGE_LEN,
            }),
        }
    }
}

impl MemoryRateLimiter {
    /// No hits recorded.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The backlog of an arrival time: `arrival − now` in microseconds, rounded up (never in the
/// caller's favour).
fn backlog_micros(arrival: Instant, now: Instant) -> u64 {
    let ahead = arrival.saturating_duration_since(now).as_nanos();
    u64::try_from(ahead.div_ceil(1000)).unwrap_or(u64::MAX)
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(
        &self,
        key: &str,
        policy: RatePolicy,
        cost: u32,
    ) -> Result<RateDecision, StoreError> {
        let now = Instant::now();
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        if !inner.arrivals.contains_key(key) && inner.arrivals.len() >= inner.purge_at {
            inner.arrivals.retain(|_, arrival| *arrival > now);
            inner.purge_at = (inner.arrivals.len() * 2).max(MIN_PURGE_LEN);
        }
        let backlog = inner
            .arrivals
            .get(key)
            .map_or(0, |arrival| backlog_micros(*arrival, now));
        let (decision, kept) = policy.gcra(backlog, cost);
        if cost > 0 && decision.allowed {
            let arrival = deadline(now, Duration::from_micros(kept));
            inner.arrivals.insert(key.to_owned(), arrival);
        } else if kept == 0 {
            inner.arrivals.remove(key);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One unit is 20 s.
    const POLICY: RatePolicy = RatePolicy {
        limit: 3,
        window: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn retry_after_points_at_when_the_hit_fits() {
        let rl = MemoryRateLimiter::new();
        rl.hit("k", POLICY, 1).await.unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        // Backlog 10 s; two more units take it to 50 s.
        rl.hit("k", POLICY, 2).await.unwrap();
        let refused = rl.hit("k", POLICY, 1).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.reset_after, Duration::from_secs(10));
        let big = rl.hit("k", POLICY, 3).await.unwrap();
        assert_eq!(big.reset_after, Duration::from_secs(50));
        let huge = rl.hit("k", POLICY, 4).await.unwrap();
        assert!(!huge.allowed);
        assert_eq!(huge.reset_after, POLICY.window);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(rl.hit("k", POLICY, 1).await.unwrap().allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_do_not_accumulate() {
        let rl = MemoryRateLimiter::new();
        for i in 0..(MIN_PURGE_LEN * 3) {
            rl.hit(&format!("k{i}"), POLICY, 1).await.unwrap();
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        // A key's one unit (20 s) has passed after 200 new keys: they are swept as new keys
        // arrive.
        assert!(lock(&rl.inner).arrivals.len() <= MIN_PURGE_LEN * 2);
    }
}
