use super::{PAST_SHORT_TTL, SHORT_TTL};
use crate::{Stores, Waiter};
use futures::future::join_all;
use portal_domain::crypto::sha256_hex;
use portal_domain::model::TenantId;
use portal_domain::ports::stores::{
    AppendOutcome, AuditCursor, AuditRecord, AuditRetention, AuditScope, StoredAudit,
};
use std::time::Duration;

/// Keeps everything a check writes.
const KEEP: AuditRetention = AuditRetention {
    max_entries: 10_000,
    max_age: Duration::from_secs(3600),
};

/// A record chaining `entry` to `prev` (the store never checks the MAC itself: any stand-in
/// that depends on both will do).
fn record(prev: &str, entry: &str) -> AuditRecord {
    AuditRecord {
        entry: entry.to_owned(),
        hmac: sha256_hex(format!("{prev}\u{0}{entry}").as_bytes()),
        prev: prev.to_owned(),
    }
}

/// Appends `entry` at the head, re-chaining after each conflict, as the writer does.
async fn append_at_head(
    s: &Stores,
    scope: AuditScope,
    entry: &str,
    retention: AuditRetention,
) -> AuditCursor {
    let mut prev = String::new();
    for _ in 0..1000 {
        match s
            .audit
            .append(scope, &record(&prev, entry), retention)
            .await
            .expect("append")
        {
            AppendOutcome::Appended(cursor) => return cursor,
            AppendOutcome::Conflict { head } => prev = head,
        }
    }
    panic!("no append after 1000 conflicts");
}

async fn all(s: &Stores, scope: AuditScope) -> Vec<StoredAudit> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let batch = s.audit.oldest(scope, after, 7).await.expect("oldest");
        let Some(last) = batch.last() else {
            return out;
        };
        after = Some(last.cursor.clone());
        out.extend(batch);
    }
}

fn entries(list: &[StoredAudit]) -> Vec<&str> {
    list.iter().map(|e| e.record.entry.as_str()).collect()
}

/// The chain: each entry's `prev` is the `hmac` of the one before (the first's, `anchor`).
fn assert_linear(list: &[StoredAudit], anchor: &str) {
    let mut prev = anchor.to_owned();
    for e in list {
        assert_eq!(e.record.prev, prev, "entry {:?} does not chain", e.cursor);
        prev = e.record.hmac.clone();
    }
}

/// An append whose `prev` is not the head writes nothing and says the head; one whose `prev`
/// is the head is appended.
pub async fn audit_append_is_compare_and_append_on_the_head(s: &Stores, _w: &Waiter) {
    let scope = AuditScope::Tenant(TenantId::new_random());
    let first = record("", "first");
    assert!(matches!(
        s.audit.append(scope, &first, KEEP).await.expect("append"),
        AppendOutcome::Appended(_)
    ));
    let stale = record("", "stale");
    assert_eq!(
        s.audit.append(scope, &stale, KEEP).await.expect("append"),
        AppendOutcome::Conflict {
            head: first.hmac.clone()
        },
        "a writer that read an old head is refused and told the new one"
    );
    let second = record(&first.hmac, "second");
    assert!(matches!(
        s.audit.append(scope, &second, KEEP).await.expect("append"),
        AppendOutcome::Appended(_)
    ));
    let list = all(s, scope).await;
    assert_eq!(entries(&list), ["first", "second"]);
    assert_eq!(list[1].record, second, "stored as given");
    assert_eq!(s.audit.anchor(scope).await.expect("anchor"), "");
}

/// `newest` pages backwards with its cursor, `oldest` forwards; each trail sees only its own.
pub async fn audit_reads_page_both_ways_and_scopes_are_apart(s: &Stores, _w: &Waiter) {
    let (a, b) = (
        AuditScope::Tenant(TenantId::new_random()),
        AuditScope::Tenant(TenantId::new_random()),
    );
    for i in 0..5 {
        append_at_head(s, a, &format!("a{i}"), KEEP).await;
    }
    append_at_head(s, b, "b0", KEEP).await;

    let page1 = s.audit.newest(a, None, 2).await.expect("newest");
    assert_eq!(entries(&page1), ["a4", "a3"]);
    let page2 = s
        .audit
        .newest(a, Some(page1[1].cursor.clone()), 2)
        .await
        .expect("newest");
    assert_eq!(entries(&page2), ["a2", "a1"]);
    let page3 = s
        .audit
        .newest(a, Some(page2[1].cursor.clone()), 2)
        .await
        .expect("newest");
    assert_eq!(entries(&page3), ["a0"]);

    let forward = s
        .audit
        .oldest(a, Some(page3[0].cursor.clone()), 3)
        .await
        .expect("oldest");
    assert_eq!(entries(&forward), ["a1", "a2", "a3"]);
    assert_eq!(entries(&all(s, b).await), ["b0"]);
    assert!(
        all(s, AuditScope::Tenant(TenantId::new_random()))
            .await
            .is_empty()
    );
}

/// Eight writers appending at once (as eight instances would): every entry lands once, and
/// the trail is one linear chain.
pub async fn audit_racing_writers_keep_one_linear_chain(s: &Stores, _w: &Waiter) {
    let scope = AuditScope::Tenant(TenantId::new_random());
    let writers = (0..8).map(|w| async move {
        for i in 0..5 {
            append_at_head(s, scope, &format!("w{w}-{i}"), KEEP).await;
        }
    });
    join_all(writers).await;
    let list = all(s, scope).await;
    assert_eq!(list.len(), 40);
    assert_linear(&list, "");
    let mut seen = entries(&list);
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 40, "each entry once");
}

/// Past the count, the oldest entries go and the anchor is the HMAC of the last one dropped:
/// the kept trail still verifies from it.
pub async fn audit_retention_by_count_moves_the_anchor(s: &Stores, _w: &Waiter) {
    let scope = AuditScope::Tenant(TenantId::new_random());
    let three = AuditRetention {
        max_entries: 3,
        ..KEEP
    };
    for i in 0..5 {
        append_at_head(s, scope, &format!("e{i}"), three).await;
    }
    let list = all(s, scope).await;
    assert_eq!(entries(&list), ["e2", "e3", "e4"]);
    let anchor = s.audit.anchor(scope).await.expect("anchor");
    assert_eq!(anchor, list[0].record.prev, "the anchor is e1's HMAC");
    assert_linear(&list, &anchor);
}

/// Entries older than the age go on the next append; an append after every entry expired
/// chains to the anchor (or starts afresh once the whole trail expired).
pub async fn audit_retention_by_age_drops_old_entries(s: &Stores, w: &Waiter) {
    let scope = AuditScope::Tenant(TenantId::new_random());
    let short = AuditRetention {
        max_entries: 100,
        max_age: SHORT_TTL,
    };
    append_at_head(s, scope, "old", short).await;
    w.wait(PAST_SHORT_TTL).await;
    append_at_head(s, scope, "new", short).await;
    let list = all(s, scope).await;
    assert_eq!(entries(&list), ["new"]);
    let anchor = s.audit.anchor(scope).await.expect("anchor");
    assert_linear(&list, &anchor);
}
