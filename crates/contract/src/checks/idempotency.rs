use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL};
use crate::fixtures::unique;
use crate::{Stores, Waiter};
use futures::future::join_all;
use portal_domain::ports::stores::IdempotencyClaim;

/// A free key is claimed; a second claim sees it in progress; after `finish`, the result.
pub async fn idempotency_claim_then_finish(s: &Stores, _w: &Waiter) {
    let key = unique("idem");
    let store = &s.idempotency;
    assert_eq!(
        store.claim(&key, LONG_TTL).await.expect("claim"),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        store.claim(&key, LONG_TTL).await.expect("claim"),
        IdempotencyClaim::InProgress
    );
    store
        .finish(&key, "{\"messageId\":\"m1\"}", LONG_TTL)
        .await
        .expect("finish");
    assert_eq!(
        store.claim(&key, LONG_TTL).await.expect("claim"),
        IdempotencyClaim::Done("{\"messageId\":\"m1\"}".to_owned())
    );
    assert_eq!(
        store
            .claim(&unique("idem"), LONG_TTL)
            .await
            .expect("claim other"),
        IdempotencyClaim::Claimed
    );
}

/// `abandon` frees a reservation so a retry can run; abandoning an unknown key is harmless.
pub async fn idempotency_abandon_frees_the_key(s: &Stores, _w: &Waiter) {
    let key = unique("idem");
    let store = &s.idempotency;
    assert_eq!(
        store.claim(&key, LONG_TTL).await.expect("claim"),
        IdempotencyClaim::Claimed
    );
    store.abandon(&key).await.expect("abandon");
    assert_eq!(
        store.claim(&key, LONG_TTL).await.expect("retry"),
        IdempotencyClaim::Claimed
    );
    store
        .abandon(&unique("idem"))
        .await
        .expect("abandon unknown");
}

/// Of many racing claims of one key, exactly one is `Claimed`; the rest see it in progress.
pub async fn idempotency_racing_claims_exactly_one_wins(s: &Stores, _w: &Waiter) {
    let key = unique("idem");
    let claims = (0..50).map(|_| s.idempotency.claim(&key, LONG_TTL));
    let results: Vec<_> = join_all(claims)
        .await
        .into_iter()
        .map(|r| r.expect("claim"))
        .collect();
    let claimed = results
        .iter()
        .filter(|c| **c == IdempotencyClaim::Claimed)
        .count();
    let waiting = results
        .iter()
        .filter(|c| **c == IdempotencyClaim::InProgress)
        .count();
    assert_eq!((claimed, waiting), (1, 49));
}

/// Reservations and results are kept for their TTL only.
pub async fn idempotency_records_expire(s: &Stores, w: &Waiter) {
    let (reserved, finished) = (unique("idem"), unique("idem"));
    let store = &s.idempotency;
    store.claim(&reserved, SHORT_TTL).await.expect("claim");
    store.claim(&finished, LONG_TTL).await.expect("claim");
    store
        .finish(&finished, "{}", SHORT_TTL)
        .await
        .expect("finish");
    w.wait(PAST_SHORT_TTL).await;
    assert_eq!(
        store.claim(&reserved, LONG_TTL).await.expect("claim"),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        store.claim(&finished, LONG_TTL).await.expect("claim"),
        IdempotencyClaim::Claimed
    );
}
