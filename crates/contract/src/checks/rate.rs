use crate::fixtures::unique;
use crate::{Stores, Waiter};
use futures::future::join_all;
use portal_domain::ports::stores::RatePolicy;
use std::time::Duration;

/// 1,000 racing hits against a limit of 100 allow exactly 100 (per hour: a unit comes back
/// every 36 s, far longer than the race).
pub async fn rate_exact_under_concurrency(s: &Stores, _w: &Waiter) {
    let key = unique("rate");
    let policy = RatePolicy {
        limit: 100,
        window: Duration::from_secs(3600),
    };
    let hits = (0..1000).map(|_| s.rate_limiter.hit(&key, policy, 1));
    let allowed = join_all(hits)
        .await
        .into_iter()
        .map(|r| r.expect("hit"))
        .filter(|d| d.allowed)
        .count();
    assert_eq!(allowed, 100);
    let after = s.rate_limiter.hit(&key, policy, 1).await.expect("hit");
    assert!(!after.allowed);
    assert_eq!(after.remaining, 0);
}

/// `remaining`, `limit` and `reset_after` are reported; costs count; refused hits count too
/// (as the spec's express-rate-limit counts them) and `cost = 0` records nothing; keys are
/// independent.
pub async fn rate_remaining_cost_and_refusals(s: &Stores, _w: &Waiter) {
    let key = unique("rate");
    let policy = RatePolicy {
        limit: 5,
        window: Duration::from_secs(60),
    };
    let hit = |cost| s.rate_limiter.hit(&key, policy, cost);

    let idle = hit(0).await.expect("report on an idle key");
    assert!(idle.allowed);
    assert_eq!((idle.remaining, idle.reset_after), (5, Duration::ZERO));

    let first = hit(1).await.expect("hit");
    assert!(first.allowed);
    assert_eq!((first.limit, first.remaining), (5, 4));
    assert!(first.reset_after > Duration::from_secs(58) && first.reset_after <= policy.window);

    for _ in 0..2 {
        let report = hit(0).await.expect("report");
        assert!(report.allowed, "room left, so a check reports allowed");
        assert_eq!(report.remaining, 4, "cost 0 must not record anything");
    }

    let three = hit(3).await.expect("hit 3");
    assert!(three.allowed);
    assert_eq!(three.remaining, 1);

    let refused = hit(2).await.expect("hit 2");
    assert!(!refused.allowed, "1 unit left cannot take a cost of 2");
    assert_eq!(refused.remaining, 0, "a refused hit counts");
    assert!(
        refused.reset_after > Duration::ZERO && refused.reset_after <= first.reset_after,
        "Retry-After is the time left in the first hit's window: {:?}",
        refused.reset_after
    );
    assert!(!hit(1).await.expect("hit over").allowed);
    let report = hit(0).await.expect("report");
    assert!(!report.allowed);
    assert_eq!(report.remaining, 0);

    let other = s
        .rate_limiter
        .hit(&unique("rate"), policy, 1)
        .await
        .expect("other key");
    assert!(other.allowed);
    assert_eq!(other.remaining, 4);
}

/// A window opens at a key's first hit and lasts the policy's window whatever comes in it
/// (refused hits do not move it); when it ends the whole limit is back at once.
pub async fn rate_window_resets_whole_when_it_ends(s: &Stores, w: &Waiter) {
    let key = unique("rate");
    let policy = RatePolicy {
        limit: 2,
        window: Duration::from_secs(1),
    };
    let hit = || s.rate_limiter.hit(&key, policy, 1);
    assert!(hit().await.expect("a").allowed);
    let b = hit().await.expect("b");
    assert!(b.allowed);
    assert_eq!(b.remaining, 0);
    w.wait(Duration::from_millis(300)).await;
    let full = hit().await.expect("full");
    assert!(!full.allowed);
    assert!(
        full.reset_after > Duration::ZERO && full.reset_after <= Duration::from_millis(700),
        "Retry-After is what is left of the window opened 300 ms ago: {:?}",
        full.reset_after
    );

    w.wait(full.reset_after + Duration::from_millis(50)).await;
    for remaining in [1, 0] {
        let d = hit().await.expect("new window");
        assert!(d.allowed, "the whole limit is back");
        assert_eq!(d.remaining, remaining);
    }
    assert!(!hit().await.expect("new window full").allowed);
}
