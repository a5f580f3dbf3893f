use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL};
use crate::fixtures::{session_key, user};
use crate::{Stores, Waiter};
use futures::future::join_all;
use portal_domain::model::{TenantId, UserId};
use portal_domain::ports::realtime::{
    Admission, InstanceId, OwnerSockets, SocketCaps, SocketOwner, TenantPresence,
};

fn instance() -> InstanceId {
    let id = uuid::Uuid::new_v4();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&id.as_bytes()[..8]);
    InstanceId::from_random(bytes)
}

fn owner(tenant: TenantId, user: &UserId) -> SocketOwner {
    SocketOwner {
        tenant,
        user: user.clone(),
        session: session_key(),
    }
}

const CAPS: SocketCaps = SocketCaps {
    per_session: 2,
    per_user: 3,
};

/// A session and a user are capped across instances; a release makes room again.
pub async fn presence_caps_sessions_and_users_across_instances(s: &Stores, _w: &Waiter) {
    let (i1, i2) = (instance(), instance());
    let tenant = TenantId::new_random();
    let u = user();
    let first = owner(tenant, &u);
    let admit =
        async |i: &InstanceId, o: &SocketOwner| s.presence.admit(i, o, CAPS, LONG_TTL).await;
    assert_eq!(
        admit(&i1, &first).await.expect("admit"),
        Admission::Admitted
    );
    assert_eq!(
        admit(&i2, &first).await.expect("admit"),
        Admission::Admitted
    );
    assert_eq!(
        admit(&i1, &first).await.expect("admit"),
        Admission::SessionFull,
        "two sockets of one session on two instances reach its cap"
    );
    let second = owner(tenant, &u);
    assert_eq!(
        admit(&i2, &second).await.expect("admit"),
        Admission::Admitted
    );
    assert_eq!(
        admit(&i1, &owner(tenant, &u)).await.expect("admit"),
        Admission::UserFull,
        "three sockets of one user reach its cap"
    );
    assert_eq!(
        admit(&i1, &owner(tenant, &user())).await.expect("admit"),
        Admission::Admitted,
        "another user is not affected"
    );
    s.presence.release(&i2, &first).await.expect("release");
    assert_eq!(
        admit(&i1, &first).await.expect("admit"),
        Admission::Admitted
    );
}

/// Racing admits of one session never pass its cap.
pub async fn presence_racing_admits_stay_within_the_cap(s: &Stores, _w: &Waiter) {
    let tenant = TenantId::new_random();
    let o = owner(tenant, &user());
    let caps = SocketCaps {
        per_session: 5,
        per_user: 100,
    };
    let instances: Vec<InstanceId> = (0..4).map(|_| instance()).collect();
    let admits = (0..40).map(|i| s.presence.admit(&instances[i % 4], &o, caps, LONG_TTL));
    let admitted = join_all(admits)
        .await
        .into_iter()
        .map(|r| r.expect("admit"))
        .filter(|a| *a == Admission::Admitted)
        .count();
    assert_eq!(admitted, 5);
}

/// Presence sums live instances per user; an instance that stops refreshing disappears after
/// its TTL (and stops counting against the caps); a refresh replaces the instance's counts.
pub async fn presence_counts_live_instances_and_refresh_replaces(s: &Stores, w: &Waiter) {
    let (steady, crashed) = (instance(), instance());
    let tenant = TenantId::new_random();
    let (u1, u2) = (user(), user());
    let a = owner(tenant, &u1);
    let b = owner(tenant, &u2);
    let caps = SocketCaps {
        per_session: 10,
        per_user: 10,
    };
    for (i, o, ttl) in [
        (&steady, &a, LONG_TTL),
        (&steady, &a, LONG_TTL),
        (&steady, &b, LONG_TTL),
        (&crashed, &a, SHORT_TTL),
    ] {
        assert_eq!(
            s.presence.admit(i, o, caps, ttl).await.expect("admit"),
            Admission::Admitted
        );
    }
    let mut expected = vec![(u1.clone(), 3), (u2.clone(), 1)];
    expected.sort();
    let seen = s.presence.tenant(tenant).await.expect("presence");
    assert_eq!(seen.users, expected);
    assert_eq!(seen.sockets(), 4);

    w.wait(PAST_SHORT_TTL).await;
    let mut expected = vec![(u1.clone(), 2), (u2.clone(), 1)];
    expected.sort();
    assert_eq!(
        s.presence.tenant(tenant).await.expect("presence").users,
        expected,
        "the silent instance's socket is gone"
    );
    let tight = SocketCaps {
        per_session: 3,
        per_user: 10,
    };
    assert_eq!(
        s.presence
            .admit(&steady, &a, tight, LONG_TTL)
            .await
            .expect("admit"),
        Admission::Admitted,
        "nor does it count against the cap"
    );

    // The steady instance really holds one socket of `a` now (say a release was lost).
    s.presence
        .refresh(
            &steady,
            tenant,
            &[OwnerSockets {
                owner: a.clone(),
                sockets: 1,
            }],
            LONG_TTL,
        )
        .await
        .expect("refresh");
    assert_eq!(
        s.presence.tenant(tenant).await.expect("presence").users,
        vec![(u1.clone(), 1)]
    );
    s.presence.release(&steady, &a).await.expect("release");
    s.presence.release(&steady, &a).await.expect("release");
    assert_eq!(
        s.presence.tenant(tenant).await.expect("presence"),
        TenantPresence::default(),
        "a release never counts below zero"
    );
}
