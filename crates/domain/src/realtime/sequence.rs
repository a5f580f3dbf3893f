//! Giving each arriving tenant event its [`EventKey`]: the same on every instance, so the
//! history records the event once and every instance delivers it with the same ID.
//!
//! Every instance receives every Pub/Sub message, in the same order. The key is the tenant, a
//! digest of the channel and payload, and the **occurrence**: how many identical payloads this
//! instance has seen in a row within the dedup window (each sighting restarts the window). A
//! payload published twice on purpose (the same status announced again) is so two events with
//! two IDs, not one event delivered twice; every instance counts the same occurrences because
//! it sees the same messages. (An instance that lost a message to a broken subscription may
//! number a later identical one differently: it then delivers that event with the ID of the
//! identical one before it, whose content is the same.)

use crate::model::TenantEvent;
use crate::ports::realtime::EventKey;
use ring::digest;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Digest bytes kept (128 bits: collisions are not a concern at any event rate).
const DIGEST_BYTES: usize = 16;

/// The instance's memory of recently seen payloads.
#[derive(Debug)]
pub(crate) struct EventKeys {
    window: Duration,
    /// Per (tenant, digest): the last occurrence given and when it was seen.
    seen: HashMap<(crate::model::TenantId, [u8; DIGEST_BYTES]), (u32, Instant)>,
    /// When entries older than the window were last dropped.
    pruned: Instant,
}

impl EventKeys {
    /// Identical payloads count as repeats while they come less than `window` apart.
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            seen: HashMap::new(),
            pruned: Instant::now(),
        }
    }

    /// The key of `event`, arriving now.
    pub(crate) fn key(&mut self, event: &TenantEvent) -> EventKey {
        let now = Instant::now();
        if now.duration_since(self.pruned) >= self.window {
            let window = self.window;
            self.seen
                .retain(|_, (_, at)| now.duration_since(*at) < window);
            self.pruned = now;
        }
        let tenant = event.tenant_id();
        let digest = digest_of(event);
        let window = self.window;
        let (occurrence, at) = self.seen.entry((tenant, digest)).or_insert((0, now));
        if now.duration_since(*at) >= window {
            *occurrence = 0;
        }
        *occurrence += 1;
        *at = now;
        EventKey {
            tenant,
            digest: hex::encode(digest),
            occurrence: *occurrence,
        }
    }
}

/// SHA-256 of the channel and the payload, truncated.
fn digest_of(event: &TenantEvent) -> [u8; DIGEST_BYTES] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(event.channel().as_bytes());
    ctx.update(b"\n");
    ctx.update(event.payload().to_string().as_bytes());
    let full = ctx.finish();
    let mut out = [0u8; DIGEST_BYTES];
    out.copy_from_slice(&full.as_ref()[..DIGEST_BYTES]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MessageId, MessageStatus, StatusUpdate, TenantId};

    fn status(tenant: TenantId, id: &str) -> TenantEvent {
        TenantEvent::Status {
            tenant_id: tenant,
            update: StatusUpdate {
                message_id: MessageId::parse(id).unwrap(),
                status: MessageStatus::Read,
                timestamp: time::macros::datetime!(2026-02-12 08:30 UTC),
                conversation_id: None,
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn two_instances_give_the_same_keys_and_a_repeat_is_a_new_occurrence() {
        let tenant = TenantId::new_random();
        let (mut a, mut b) = (
            EventKeys::new(Duration::from_secs(60)),
            EventKeys::new(Duration::from_secs(60)),
        );
        let seen_by_a: Vec<_> = ["m1", "m1", "m2"]
            .iter()
            .map(|m| a.key(&status(tenant, m)))
            .collect();
        tokio::time::advance(Duration::from_millis(5)).await;
        let seen_by_b: Vec<_> = ["m1", "m1", "m2"]
            .iter()
            .map(|m| b.key(&status(tenant, m)))
            .collect();
        assert_eq!(seen_by_a, seen_by_b);
        assert_eq!(seen_by_a[0].digest, seen_by_a[1].digest);
        assert_eq!((seen_by_a[0].occurrence, seen_by_a[1].occurrence), (1, 2));
        assert_ne!(seen_by_a[0].digest, seen_by_a[2].digest);
        assert_eq!(seen_by_a[2].occurrence, 1);
        // Another tenant's identical payload is its own event.
        let other = a.key(&status(TenantId::new_random(), "m1"));
        assert_eq!(other.occurrence, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_quiet_window_the_count_starts_again() {
        let tenant = TenantId::new_random();
        let mut keys = EventKeys::new(Duration::from_secs(60));
        assert_eq!(keys.key(&status(tenant, "m1")).occurrence, 1);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(keys.key(&status(tenant, "m1")).occurrence, 2);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(keys.key(&status(tenant, "m1")).occurrence, 1);
        assert_eq!(
            keys.seen.len(),
            1,
            "entries older than the window are dropped"
        );
    }
}
