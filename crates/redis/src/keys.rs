//! Key names (spec §4.2), with hash tags so multi-key operations stay in one Cluster slot.

use portal_domain::model::{SessionKey, TenantId};
use portal_domain::ports::realtime::EventKey;
use portal_domain::ports::stores::{AuditScope, CacheKey, CacheKind, OneTimePurpose};

/// Builds every key, with the deployment's optional prefix.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keys {
    /// Prepended verbatim (e.g. `portal:`).
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: Option<&str>) -> Self {
        Self {
            prefix: prefix.unwrap_or_default().to_owned(),
        }
    }

    pub(crate) fn session(&self, key: &SessionKey) -> String {
        format!("{}session:{{{}}}", self.prefix, key.as_str())
    }

    pub(crate) fn user_sessions(&self, user: &(impl std::fmt::Display + ?Sized)) -> String {
        format!("{}user_sessions:{{{user}}}", self.prefix)
    }

    pub(crate) fn one_time(&self, purpose: OneTimePurpose, digest: &str) -> String {
        format!("{}{}:{{{digest}}}", self.prefix, purpose.as_str())
    }

    pub(crate) fn onboarding(&self, tenant: TenantId) -> String {
        format!("{}onboarding:{{{tenant}}}", self.prefix)
    }

    pub(crate) fn cache(&self, key: &CacheKey) -> String {
        match key {
            CacheKey::Metrics { tenant, period } => {
                format!("{}metrics:{{{tenant}}}:{}", self.prefix, period.as_str())
            }
            CacheKey::Conversations {
                tenant,
                page,
                limit,
                status,
            } => format!(
                "{}conversations:{{{tenant}}}:{page}:{limit}:{status}",
                self.prefix
            ),
        }
    }

    pub(crate) fn cache_generation(&self, tenant: TenantId, kind: CacheKind) -> String {
        format!("{}cache_gen:{{{tenant}}}:{}", self.prefix, kind.as_str())
    }

    pub(crate) fn lock(&self, name: &str) -> String {
        format!("{}lock:{{{name}}}", self.prefix)
    }

    /// A limit's counter of its open window (an integer with the window's TTL). Earlier
    /// builds kept other values under other names (`ratelimit:{…}` a ZSET log of hits,
    /// `rate:{…}` a GCRA arrival time): a new name for each, so during a rolling upgrade no
    /// instance counts on another build's value.
    pub(crate) fn rate_limit(&self, key: &str) -> String {
        format!("{}rate_window:{{{key}}}", self.prefix)
    }

    pub(crate) fn idempotency(&self, key: &str) -> String {
        format!("{}idem:{{{key}}}", self.prefix)
    }

    /// A trail's stream: `audit:{<tenant>}` (the tenant's hash tag, like its caches), or
    /// `audit:{platform}`.
    pub(crate) fn audit(&self, scope: AuditScope) -> String {
        format!("{}audit:{{{}}}", self.prefix, audit_tag(scope))
    }

    /// A trail's anchor, in the stream's slot.
    pub(crate) fn audit_anchor(&self, scope: AuditScope) -> String {
        format!("{}audit_anchor:{{{}}}", self.prefix, audit_tag(scope))
    }

    /// A tenant's event history (a Stream).
    pub(crate) fn history(&self, tenant: TenantId) -> String {
        format!("{}events:{{{tenant}}}", self.prefix)
    }

    /// The ID a recorded event key got (same slot as the tenant's history).
    pub(crate) fn event_key(&self, key: &EventKey) -> String {
        format!(
            "{}event_key:{{{}}}:{}:{}",
            self.prefix, key.tenant, key.digest, key.occurrence
        )
    }

    /// The instances with live sockets of a tenant (a sorted set: instance → expiry ms).
    pub(crate) fn sockets_live(&self, tenant: TenantId) -> String {
        format!("{}ws:{{{tenant}}}:live", self.prefix)
    }

    /// A tenant's sockets per session and instance (a hash: `<session>|<instance>` → count).
    pub(crate) fn sockets_by_session(&self, tenant: TenantId) -> String {
        format!("{}ws:{{{tenant}}}:sessions", self.prefix)
    }

    /// A tenant's sockets per user and instance (a hash: `<user>|<instance>` → count).
    pub(crate) fn sockets_by_user(&self, tenant: TenantId) -> String {
        format!("{}ws:{{{tenant}}}:users", self.prefix)
    }
}

fn audit_tag(scope: AuditScope) -> String {
    match scope {
        AuditScope::Tenant(t) => t.to_string(),
        AuditScope::Platform => "platform".to_owned(),
    }
}

/// Pub/sub channel of session revocations (not prefixed: shared by every instance).
pub(crate) const REVOCATION_CHANNEL: &str = "portal.sessions.revoked";
/// Patterns of tenant event channels (what other services publish).
pub(crate) const TENANT_PATTERNS: [&str; 2] = ["tenant.*.messages", "tenant.*.status"];
/// Partition channels of sharded Pub/Sub (`REDIS_PUBSUB=sharded`): a tenant's events go to
/// `tenant.shard.{<h>}`, `<h>` the last hex digit of its ID, so 16 channels whose hash tags
/// spread them over the Cluster's shards (as Centrifugo's sharded Pub/Sub partitions do). Each
/// instance `SSUBSCRIBE`s all of them; each message (`<tenant channel> <payload>`) travels
/// only within the shard owning its partition.
pub(crate) const SHARD_PARTITIONS: &str = "0123456789abcdef";

/// The sharded Pub/Sub channel carrying `tenant`'s events (see [`SHARD_PARTITIONS`]); what
/// another service must `SPUBLISH` to when the deployment uses `REDIS_PUBSUB=sharded`.
pub fn shard_channel(tenant: TenantId) -> String {
    let id = tenant.to_string();
    let last = id.chars().last().unwrap_or('0').to_ascii_lowercase();
    partition_channel(last)
}

pub(crate) fn partition_channel(partition: char) -> String {
    format!("tenant.shard.{{{partition}}}")
}

/// The outbound message stream (not prefixed: the Outbound service consumes it).
pub(crate) const OUTBOUND_STREAM: &str = "outbound.message";
/// Approximate cap of the outbound stream.
pub(crate) const OUTBOUND_MAXLEN: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::model::Period;

    #[test]
    fn a_tenant_maps_to_one_of_sixteen_partition_channels() {
        let t: TenantId = "0b7e6f4e-3c1a-4f7e-9a55-2f4c8d1e000a".parse().unwrap();
        assert_eq!(shard_channel(t), "tenant.shard.{a}");
        let all: std::collections::HashSet<_> =
            SHARD_PARTITIONS.chars().map(partition_channel).collect();
        for _ in 0..100 {
            assert!(all.contains(&shard_channel(TenantId::new_random())));
        }
    }

    #[test]
    fn keys_share_the_tenant_hash_tag() {
        let keys = Keys::new(None);
        let t = TenantId::new_random();
        let entry = keys.cache(&CacheKey::Metrics {
            tenant: t,
            period: Period::Week,
        });
        assert_eq!(entry, format!("metrics:{{{t}}}:week"));
        assert_eq!(
            keys.cache_generation(t, CacheKind::Metrics),
            format!("cache_gen:{{{t}}}:metrics")
        );
        assert_eq!(
            keys.audit_anchor(AuditScope::Tenant(t)),
            format!("audit_anchor:{{{t}}}")
        );
        assert_eq!(keys.audit(AuditScope::Platform), "audit:{platform}");
        let event = EventKey {
            tenant: t,
            digest: "ab".into(),
            occurrence: 2,
        };
        assert_eq!(keys.event_key(&event), format!("event_key:{{{t}}}:ab:2"));
        assert_eq!(keys.history(t), format!("events:{{{t}}}"));
        assert_eq!(keys.sockets_live(t), format!("ws:{{{t}}}:live"));
        let prefixed = Keys::new(Some("p:"));
        assert_eq!(prefixed.onboarding(t), format!("p:onboarding:{{{t}}}"));
    }
}
