//! Rate limiting by [`RatePolicy::fixed_window`]: one counted window per key.

use crate::lock;
use crate::ttl::{TtlMap, deadline};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{RateDecision, RateLimiter, RatePolicy};
use std::sync::Mutex;
use tokio::time::Instant;

/// A key's open window: the units counted in it and when it closes (also its entry's
/// deadline in the map).
#[derive(Debug, Clone, Copy)]
struct Window {
    count: u64,
    ends: Instant,
}

/// [`RateLimiter`] in memory: [`RatePolicy::fixed_window`] on each key's window, read and
/// updated under one lock, so racing hits never overshoot the limit. Closed windows expire
/// from the map ([`TtlMap`]).
#[derive(Debug, Default)]
pub struct MemoryRateLimiter {
    windows: Mutex<TtlMap<String, Window>>,
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
        let mut windows = lock(&self.windows);
        if cost == 0 {
            let open = windows.get(key, now);
            let (count, left) = open.map_or((0, None), |w| (w.count, Some(w.ends - now)));
            return Ok(policy.fixed_window(count, 0, left));
        }
        let window = match windows.get_mut(key, now) {
            Some(open) => {
                open.count = open.count.saturating_add(u64::from(cost));
                *open
            }
            None => {
                let ends = deadline(now, policy.window);
                let opened = Window {
                    count: u64::from(cost),
                    ends,
                };
                windows.insert(key.to_owned(), opened, ends, now);
                opened
            }
        };
        Ok(policy.fixed_window(window.count, cost, Some(window.ends - now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const POLICY: RatePolicy = RatePolicy {
        limit: 3,
        window: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn the_window_opens_at_the_first_hit_and_resets_whole_when_it_ends() {
        let rl = MemoryRateLimiter::new();
        rl.hit("k", POLICY, 1).await.unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        let two = rl.hit("k", POLICY, 2).await.unwrap();
        assert!(two.allowed);
        assert_eq!(
            two.reset_after,
            Duration::from_secs(50),
            "the first hit's window"
        );
        let refused = rl.hit("k", POLICY, 1).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.reset_after, Duration::from_secs(50), "Retry-After");
        tokio::time::advance(Duration::from_secs(49)).await;
        assert!(
            !rl.hit("k", POLICY, 1).await.unwrap().allowed,
            "still the window"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let fresh = rl.hit("k", POLICY, 1).await.unwrap();
        assert!(fresh.allowed, "a new window");
        assert_eq!((fresh.remaining, fresh.reset_after), (2, POLICY.window));
    }

    #[tokio::test(start_paused = true)]
    async fn closed_windows_do_not_accumulate() {
        let rl = MemoryRateLimiter::new();
        for i in 0..(crate::ttl::MIN_PURGE_LEN * 3) {
            rl.hit(&format!("k{i}"), POLICY, 1).await.unwrap();
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        // A key's window (60 s) closes after 600 new keys: they are swept as new keys arrive.
        assert!(lock(&rl.windows).raw_len() <= crate::ttl::MIN_PURGE_LEN * 2);
    }
}
