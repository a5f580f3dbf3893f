use super::LONG_TTL;
use crate::fixtures::onboarding_state;
use crate::{Stores, Waiter};
use portal_domain::model::TenantId;
use portal_domain::ports::stores::{SaveOutcome, Versioned};
use std::time::Duration;

/// `save(expected = None)` creates at version 1, and only if absent.
pub async fn onboarding_first_save_creates_only_if_absent(s: &Stores, _w: &Waiter) {
    let tenant = TenantId::new_random();
    let first = onboarding_state(tenant, "First Tab Ltd");
    assert_eq!(s.onboarding.load(tenant).await.expect("load"), None);
    assert_eq!(
        s.onboarding
            .save(tenant, &first, None, LONG_TTL)
            .await
            .expect("save"),
        SaveOutcome::Saved(1)
    );
    let stored = Versioned {
        version: 1,
        value: first,
    };
    assert_eq!(
        s.onboarding.load(tenant).await.expect("load"),
        Some(stored.clone())
    );

    let second = onboarding_state(tenant, "Second Tab Ltd");
    assert_eq!(
        s.onboarding
            .save(tenant, &second, None, LONG_TTL)
            .await
            .expect("save again"),
        SaveOutcome::Conflict(Some(stored.clone())),
        "a second create must not overwrite; it reports the current state"
    );
    assert_eq!(s.onboarding.load(tenant).await.expect("load"), Some(stored));
}

/// `save(Some(v))` writes only over version `v`, incrementing it; otherwise reports the current.
pub async fn onboarding_save_is_compare_and_set(s: &Stores, _w: &Waiter) {
    let tenant = TenantId::new_random();
    let v1 = onboarding_state(tenant, "Version One");
    s.onboarding
        .save(tenant, &v1, None, LONG_TTL)
        .await
        .expect("create");

    let v2 = onboarding_state(tenant, "Version Two");
    assert_eq!(
        s.onboarding
            .save(tenant, &v2, Some(1), LONG_TTL)
            .await
            .expect("save v2"),
        SaveOutcome::Saved(2)
    );
    let stale = onboarding_state(tenant, "Stale Tab");
    assert_eq!(
        s.onboarding
            .save(tenant, &stale, Some(1), LONG_TTL)
            .await
            .expect("stale save"),
        SaveOutcome::Conflict(Some(Versioned {
            version: 2,
            value: v2.clone()
        })),
        "the loser of a race gets the winner's state"
    );
    let v3 = onboarding_state(tenant, "Version Three");
    assert_eq!(
        s.onboarding
            .save(tenant, &v3, Some(2), LONG_TTL)
            .await
            .expect("save v3"),
        SaveOutcome::Saved(3)
    );
    assert_eq!(
        s.onboarding.load(tenant).await.expect("load"),
        Some(Versioned {
            version: 3,
            value: v3
        })
    );

    let absent = TenantId::new_random();
    assert_eq!(
        s.onboarding
            .save(
                absent,
                &onboarding_state(absent, "Gone Ltd"),
                Some(1),
                LONG_TTL
            )
            .await
            .expect("save absent"),
        SaveOutcome::Conflict(None),
        "an update of a state that is gone reports None"
    );
    assert_eq!(s.onboarding.load(absent).await.expect("load"), None);
}

/// Every save resets the TTL; the state disappears once a TTL passes without a save.
pub async fn onboarding_save_resets_ttl(s: &Stores, w: &Waiter) {
    let tenant = TenantId::new_random();
    let ttl = Duration::from_millis(300);
    let state = onboarding_state(tenant, "Slow Typist");
    s.onboarding
        .save(tenant, &state, None, ttl)
        .await
        .expect("create");
    w.wait(Duration::from_millis(200)).await;
    assert_eq!(
        s.onboarding
            .save(tenant, &state, Some(1), ttl)
            .await
            .expect("save"),
        SaveOutcome::Saved(2)
    );
    w.wait(Duration::from_millis(200)).await;
    assert!(
        s.onboarding.load(tenant).await.expect("load").is_some(),
        "the second save must have reset the TTL"
    );
    w.wait(Duration::from_millis(200)).await;
    assert_eq!(s.onboarding.load(tenant).await.expect("load"), None);
}
