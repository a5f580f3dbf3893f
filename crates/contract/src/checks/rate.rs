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

/// `remaining`, `limit` and `reset_after` are reported; costs count; refused hits and
/// `cost = 0` record nothing; keys are independent. (5 per minute: a unit comes back every
/// 12 s, longer than the check takes.)
pub async fn rate_remaining_cost_and_refusals(s: &Stores, _w: &Waiter) {
    let key = unique("rate");
    let policy = RatePolicy {
        limit: 5,
        window: Duration::from_secs(60),
    };
    let hit = |cost| s.rate_limiter.hit(&key, policy, cost);

    let first = hit(1).await.expect("hit");
    assert!(first.allowed);
    assert_eq!((first.limit, first.remaining), (5, 4));
    assert!(first.reset_after <= policy.window);

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
    assert_eq!(refused.remaining, 1, "a refused hit is not recorded");
    assert!(
        refused.reset_after > Duration::ZERO && refused.reset_after <= policy.window,
        "Retry-After must be within the window: {:?}",
        refused.reset_after
    );

    let last = hit(1).await.expect("hit 1");
    assert!(
        last.allowed,
        "the refused hit must not have used the last unit"
    );
    assert_eq!(last.remaining, 0);
    let over = hit(1).await.expect("hit over");
    assert!(!over.allowed);
    assert_eq!(hit(0).await.expect("report").remaining, 0);

    let other = s
        .rate_limiter
        .hit(&unique("rate"), policy, 1)
        .await
        .expect("other key");
    assert!(other.allowed);
    assert_eq!(other.remaining, 4);
}

/// After a burst of the whole limit, units come back one at a time, one every
/// `window / limit` (GCRA), not all at once as a fixed window would give them back.
pub async fn rate_units_come_back_one_interval_at_a_time(s: &Stores, w: &Waiter) {
    let key = unique("rate");
    // One unit per second.
    let policy = RatePolicy {
        limit: 2,
        window: Duration::from_secs(2),
    };
    let hit = || s.rate_limiter.hit(&key, policy, 1);
    assert!(hit().await.expect("t0 a").allowed);
    let b = hit().await.expect("t0 b");
    assert!(b.allowed);
    assert_eq!(b.remaining, 0);
    assert!(b.reset_after > Duration::from_millis(1500) && b.reset_after <= policy.window);
    let full = hit().await.expect("t0 full");
    assert!(!full.allowed);
    assert!(
        full.reset_after > Duration::ZERO && full.reset_after <= Duration::from_secs(1),
        "the next unit is at most one interval away: {:?}",
        full.reset_after
    );

    // t = 1.2 s: one unit is back, the second comes at 2 s.
    w.wait(Duration::from_millis(1200)).await;
    let a = hit().await.expect("t1.2 a");
    assert!(a.allowed);
    assert_eq!(a.remaining, 0);
    assert!(
        !hit().await.expect("t1.2 full").allowed,
        "one unit per interval, not the whole limit back"
    );
}
