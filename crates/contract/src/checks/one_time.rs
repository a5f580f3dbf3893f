use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL};
use crate::fixtures::unique;
use crate::{Stores, Waiter};
use futures::future::join_all;
use portal_domain::ports::stores::OneTimePurpose;

/// `take` returns the payload once, then `None`; purposes are separate namespaces.
pub async fn one_time_take_returns_payload_exactly_once(s: &Stores, _w: &Waiter) {
    let digest = unique("digest");
    let store = &s.one_time;
    store
        .put(OneTimePurpose::OAuthState, &digest, "{\"v\":1}", LONG_TTL)
        .await
        .expect("put");
    assert_eq!(
        store
            .take(OneTimePurpose::WsTicket, &digest)
            .await
            .expect("take other purpose"),
        None,
        "a WebSocket ticket must not redeem an OAuth state"
    );
    assert_eq!(
        store
            .take(OneTimePurpose::OAuthState, &digest)
            .await
            .expect("take"),
        Some("{\"v\":1}".to_owned())
    );
    assert_eq!(
        store
            .take(OneTimePurpose::OAuthState, &digest)
            .await
            .expect("take again"),
        None
    );
    assert_eq!(
        store
            .take(OneTimePurpose::WsTicket, &unique("digest"))
            .await
            .expect("take unknown"),
        None
    );
}

/// Of many racing `take`s of one token, exactly one gets the payload.
pub async fn one_time_racing_takes_exactly_one_wins(s: &Stores, _w: &Waiter) {
    let digest = unique("digest");
    s.one_time
        .put(OneTimePurpose::WsTicket, &digest, "session", LONG_TTL)
        .await
        .expect("put");
    let takes = (0..50).map(|_| s.one_time.take(OneTimePurpose::WsTicket, &digest));
    let winners = join_all(takes)
        .await
        .into_iter()
        .map(|r| r.expect("take"))
        .filter(Option::is_some)
        .count();
    assert_eq!(winners, 1, "exactly one racing take may redeem the token");
}

/// A token is gone after its TTL.
pub async fn one_time_expires_after_ttl(s: &Stores, w: &Waiter) {
    let digest = unique("digest");
    s.one_time
        .put(OneTimePurpose::WsTicket, &digest, "session", SHORT_TTL)
        .await
        .expect("put");
    w.wait(PAST_SHORT_TTL).await;
    assert_eq!(
        s.one_time
            .take(OneTimePurpose::WsTicket, &digest)
            .await
            .expect("take"),
        None
    );
}
