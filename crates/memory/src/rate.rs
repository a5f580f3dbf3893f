//! Exact sliding-window rate limiting.

use crate::lock;
use crate::ttl::deadline;
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{RateDecision, RateLimiter, RatePolicy};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The smallest number of keys at which idle keys are swept.
const MIN_PURGE_LEN: usize = 1024;

/// One key's log of allowed hits within the window.
#[derive(Debug, Default)]
struct Log {
    /// (when, units), oldest first. Only allowed hits are recorded, each of at least one unit,
    /// so the log never holds more than `limit` entries.
    hits: VecDeque<(Instant, u32)>,
    /// Sum of the units in `hits`.
    used: u64,
    /// The window of the last policy applied, to know when the key is idle.
    window: Duration,
}

impl Log {
    /// Forgets hits that left the window: a hit at `t` counts while `now < t + window`.
    fn slide(&mut self, now: Instant) {
        while let Some(&(at, units)) = self.hits.front() {
            if deadline(at, self.window) > now {
                break;
            }
            self.hits.pop_front();
            self.used -= u64::from(units);
        }
    }

    /// Time until the oldest hits free `need` units.
    fn room_after(&self, need: u64, now: Instant) -> Duration {
        let mut freed = 0u64;
        for &(at, units) in &self.hits {
            freed += u64::from(units);
            if freed >= need {
                return deadline(at, self.window).saturating_duration_since(now);
            }
        }
        self.window
    }

    /// Time until every recorded hit has left the window.
    fn full_reset_after(&self, now: Instant) -> Duration {
        self.hits.back().map_or(Duration::ZERO, |&(at, _)| {
            deadline(at, self.window).saturating_duration_since(now)
        })
    }
}

#[derive(Debug)]
struct Inner {
    logs: HashMap<String, Log>,
    /// The number of keys at which the next new key sweeps idle ones.
    purge_at: usize,
}

/// [`RateLimiter`] in memory: an exact log of hits per key, checked and appended under one
/// lock, so racing hits never overshoot the limit.
///
/// `cost = 0` reports without recording; its `allowed` says whether a one-unit hit would
/// pass now. `reset_after` is, for a refused hit, the time until enough units leave the window
/// for it to pass (`Retry-After`); otherwise the time until the window is empty again.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    inner: Mutex<Inner>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                logs: HashMap::new(),
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
        if !inner.logs.contains_key(key) && inner.logs.len() >= inner.purge_at {
            inner.logs.retain(|_, log| {
                log.slide(now);
                !log.hits.is_empty()
            });
            inner.purge_at = (inner.logs.len() * 2).max(MIN_PURGE_LEN);
        }
        let log = inner.logs.entry(key.to_owned()).or_default();
        log.window = policy.window;
        log.slide(now);
        let limit = u64::from(policy.limit);
        let cost64 = u64::from(cost);
        let remaining = |used: u64| u32::try_from(limit.saturating_sub(used)).unwrap_or(u32::MAX);
        let decision = if cost == 0 {
            RateDecision {
                allowed: log.used < limit,
                limit: policy.limit,
                remaining: remaining(log.used),
                reset_after: if log.used < limit {
                    log.full_reset_after(now)
                } else {
                    log.room_after(log.used + 1 - limit, now)
                },
            }
        } else if log.used + cost64 <= limit {
            log.hits.push_back((now, cost));
            log.used += cost64;
            RateDecision {
                allowed: true,
                limit: policy.limit,
                remaining: remaining(log.used),
                reset_after: log.full_reset_after(now),
            }
        } else {
            let reset_after = if cost64 > limit {
                policy.window
            } else {
                log.room_after(log.used + cost64 - limit, now)
            };
            RateDecision {
                allowed: false,
                limit: policy.limit,
                remaining: remaining(log.used),
                reset_after,
            }
        };
        if log.hits.is_empty() {
            inner.logs.remove(key);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RatePolicy = RatePolicy {
        limit: 3,
        window: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn retry_after_points_at_when_the_oldest_hit_leaves_the_window() {
        let rl = MemoryRateLimiter::new();
        rl.hit("k", POLICY, 1).await.unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        rl.hit("k", POLICY, 2).await.unwrap();
        let refused = rl.hit("k", POLICY, 1).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.reset_after, Duration::from_secs(50));
        // A bigger hit has to wait for the later entry too.
        let big = rl.hit("k", POLICY, 3).await.unwrap();
        assert_eq!(big.reset_after, Duration::from_secs(60));
        // A hit larger than the limit can never pass.
        let huge = rl.hit("k", POLICY, 4).await.unwrap();
        assert!(!huge.allowed);
        assert_eq!(huge.reset_after, POLICY.window);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_do_not_accumulate() {
        let rl = MemoryRateLimiter::new();
        for i in 0..(MIN_PURGE_LEN * 3) {
            rl.hit(&format!("k{i}"), POLICY, 1).await.unwrap();
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        // Keys older than the 60 s window are swept as new keys arrive.
        assert!(lock(&rl.inner).logs.len() <= MIN_PURGE_LEN * 2);
    }
}
