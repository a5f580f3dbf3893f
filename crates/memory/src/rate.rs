//! Rate limiting by [`RatePolicy::fixed_window`]: one counted window per key.

use crate::lock;
use crate::ttl::deadline;
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{RateDecision, RateLimiter, RatePolicy};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::Instant;

/// The smallest number of keys at which closed windows are swept.
const MIN_PURGE_LEN: usize = 1024;

/// A key's open window: the units counted in it and when it closes.
#[derive(Debug, Clone, Copy)]
struct Window {
    count: u64,
    ends: Instant,
}

#[derive(Debug)]
struct Inner {
    /// Each key's window; a window whose end has passed is closed.
    windows: HashMap<String, Window>,
    /// The number of keys at which the next new key sweeps closed windows.
    purge_at: usize,
}

/// [`RateLimiter`] in memory: [`RatePolicy::fixed_window`] on each key's window, read and
/// updated under one lock, so racing hits never overshoot the limit.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    inner: Mutex<Inner>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                windows: HashMap::new(),
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
        let open = inner.windows.get(key).copied().filter(|w| w.ends > now);
        if cost == 0 {
            let (count, left) = open.map_or((0, None), |w| (w.count, Some(w.ends - now)));
            return Ok(policy.fixed_window(count, 0, left));
        }
        if open.is_none() && inner.windows.len() >= inner.purge_at {
            inner.windows.retain(|_, w| w.ends > now);
            inner.purge_at = (inner.windows.len() * 2).max(MIN_PURGE_LEN);
        }
        let mut window = open.unwrap_or(Window {
            count: 0,
            ends: deadline(now, policy.window),
        });
        window.count = window.count.saturating_add(u64::from(cost));
        inner.windows.insert(key.to_owned(), window);
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
        for i in 0..(MIN_PURGE_LEN * 3) {
            rl.hit(&format!("k{i}"), POLICY, 1).await.unwrap();
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        // A key's window (60 s) closes after 600 new keys: they are swept as new keys arrive.
        assert!(lock(&rl.inner).windows.len() <= MIN_PURGE_LEN * 2);
    }
}
