use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL};
use crate::fixtures::unique;
use crate::{Stores, Waiter};
use futures::future::join_all;
use portal_domain::ports::stores::LockToken;

/// Of 100 racing `try_acquire`s, exactly one gets the lock.
pub async fn lock_exactly_one_of_many_concurrent_acquirers(s: &Stores, _w: &Waiter) {
    let name = unique("lock");
    let attempts = (0..100).map(|_| s.lock.try_acquire(&name, LONG_TTL));
    let holders = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("try_acquire"))
        .filter(Option::is_some)
        .count();
    assert_eq!(holders, 1, "exactly one racer may hold the lock");
}

/// `release` with another token does nothing; with the holder's token it frees the lock once.
pub async fn lock_release_requires_the_holders_token(s: &Stores, _w: &Waiter) {
    let name = unique("lock");
    let token = s
        .lock
        .try_acquire(&name, LONG_TTL)
        .await
        .expect("acquire")
        .expect("free lock");
    let forged = LockToken(unique("forged"));
    assert!(
        !s.lock
            .release(&name, &forged)
            .await
            .expect("release forged")
    );
    assert_eq!(
        s.lock.try_acquire(&name, LONG_TTL).await.expect("acquire"),
        None,
        "a forged release must not free the lock"
    );
    assert!(s.lock.release(&name, &token).await.expect("release"));
    assert!(!s.lock.release(&name, &token).await.expect("release twice"));
    let again = s.lock.try_acquire(&name, LONG_TTL).await.expect("acquire");
    assert!(again.is_some(), "a released lock can be taken");
    assert_ne!(again, Some(token), "each acquisition gets a new token");
}

/// An expired lock can be taken again, and the old holder can no longer release it.
pub async fn lock_expiry_frees_it(s: &Stores, w: &Waiter) {
    let name = unique("lock");
    let old = s
        .lock
        .try_acquire(&name, SHORT_TTL)
        .await
        .expect("acquire")
        .expect("free lock");
    w.wait(PAST_SHORT_TTL).await;
    let new = s
        .lock
        .try_acquire(&name, LONG_TTL)
        .await
        .expect("acquire")
        .expect("expired lock");
    assert!(
        !s.lock.release(&name, &old).await.expect("release old"),
        "the previous holder must not release the new holder's lock"
    );
    assert_eq!(
        s.lock.try_acquire(&name, LONG_TTL).await.expect("acquire"),
        None
    );
    assert!(s.lock.release(&name, &new).await.expect("release new"));
}

/// `renew` extends the holder's lease past its first TTL; a stale token renews nothing.
pub async fn lock_renew_extends_only_the_holders_lease(s: &Stores, w: &Waiter) {
    let name = unique("lock");
    let token = s
        .lock
        .try_acquire(&name, SHORT_TTL)
        .await
        .expect("acquire")
        .expect("free lock");
    let forged = LockToken(unique("forged"));
    assert!(
        !s.lock
            .renew(&name, &forged, LONG_TTL)
            .await
            .expect("renew forged"),
        "another token must not renew the lease"
    );
    assert!(
        s.lock.renew(&name, &token, LONG_TTL).await.expect("renew"),
        "the holder renews its lease"
    );
    w.wait(PAST_SHORT_TTL).await;
    assert_eq!(
        s.lock.try_acquire(&name, LONG_TTL).await.expect("acquire"),
        None,
        "a renewed lease outlives its first TTL"
    );
    assert!(s.lock.release(&name, &token).await.expect("release"));
    assert!(
        !s.lock
            .renew(&name, &token, LONG_TTL)
            .await
            .expect("renew released"),
        "a released lock cannot be renewed"
    );

    // A lease that ran out cannot be renewed, even before anyone else took the lock.
    let expired = s
        .lock
        .try_acquire(&name, SHORT_TTL)
        .await
        .expect("acquire")
        .expect("free lock");
    w.wait(PAST_SHORT_TTL).await;
    assert!(
        !s.lock
            .renew(&name, &expired, LONG_TTL)
            .await
            .expect("renew expired"),
        "an expired lease is lost"
    );
    assert!(
        s.lock
            .try_acquire(&name, LONG_TTL)
            .await
            .expect("acquire")
            .is_some()
    );
}
