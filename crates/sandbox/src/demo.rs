//! The embedded demo data (decisions §3). This module is the only place demo data is written.
//!
//! Tenants, users and their IDs are fixed constants, so a demo session, a test or a bookmark
//! keeps working across restarts. Conversations and messages are generated deterministically
//! (a seeded xorshift) relative to the simulator's start time, so the dashboard always shows
//! recent traffic.

use portal_domain::model::{
    Conversation, ConversationId, ConversationStatus, Direction, Email, Message, MessageId,
    MessageStatus, Region, Role, Tenant, TenantId, TenantStatus, UserId,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Acme Corp's tenant ID.
pub(crate) const ACME_TENANT_UUID: Uuid = Uuid::from_u128(0x7c0e4b52_1a3f_4d6e_8a90_3c1d5e00ac3e);
/// Globex's tenant ID.
pub(crate) const GLOBEX_TENANT_UUID: Uuid = Uuid::from_u128(0x2f9a61d8_5b7c_4e21_9d03_6a8b4f0910be);

/// Acme Corp's company name.
pub(crate) const ACME_NAME: &str = "Acme Corp";
/// Globex's company name.
pub(crate) const GLOBEX_NAME: &str = "Globex";

/// `admin@acme.example`: admin of Acme.
pub const ACME_ADMIN_EMAIL: &str = "admin@acme.example";
/// `agent@acme.example`: agent of Acme.
pub const ACME_AGENT_EMAIL: &str = "agent@acme.example";
/// `viewer@acme.example`: viewer of Acme.
pub const ACME_VIEWER_EMAIL: &str = "viewer@acme.example";
/// `admin@globex.example`: admin of Globex.
pub const GLOBEX_ADMIN_EMAIL: &str = "admin@globex.example";
/// `new@newco.example`: admin without a tenant (the onboarding path).
pub const NEWCO_ADMIN_EMAIL: &str = "new@newco.example";

/// The user the simulated login picks when no `login_hint` is given.
pub(crate) const DEFAULT_LOGIN_EMAIL: &str = ACME_ADMIN_EMAIL;

/// User ID of `admin@acme.example`.
pub(crate) const ACME_ADMIN_ID: &str = "sim-user-acme-admin";
/// User ID of `agent@acme.example`.
pub const ACME_AGENT_ID: &str = "sim-user-acme-agent";
/// User ID of `viewer@acme.example`.
pub(crate) const ACME_VIEWER_ID: &str = "sim-user-acme-viewer";
/// User ID of `admin@globex.example`.
pub(crate) const GLOBEX_ADMIN_ID: &str = "sim-user-globex-admin";
/// User ID of `new@newco.example`.
pub(crate) const NEWCO_ADMIN_ID: &str = "sim-user-newco-admin";

/// Number of generated conversations for Acme.
pub const ACME_CONVERSATIONS: usize = 48;
/// Number of generated conversations for Globex.
pub const GLOBEX_CONVERSATIONS: usize = 31;

/// Acme Corp's tenant ID.
pub fn acme_tenant_id() -> TenantId {
    TenantId::from_uuid(ACME_TENANT_UUID)
}

/// Globex's tenant ID.
pub fn globex_tenant_id() -> TenantId {
    TenantId::from_uuid(GLOBEX_TENANT_UUID)
}

/// A demo user as the simulated Auth Service knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoUser {
    /// Stable user ID.
    pub id: UserId,
    /// E-mail (the login hint).
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The tenant the user belongs to; `None` for the onboarding user.
    pub tenant: Option<TenantId>,
}

/// A conversation with its messages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConversation {
    /// The conversation.
    pub conversation: Conversation,
    /// Its messages, oldest first.
    pub messages: Vec<Message>,
}

/// Everything the simulators start with.
#[derive(Debug, Clone)]
pub struct DemoData {
    /// The demo users.
    pub users: Vec<DemoUser>,
    /// The demo tenants.
    pub tenants: Vec<Tenant>,
    /// Every tenant's conversations.
    pub conversations: Vec<DemoConversation>,
}

/// The five demo users.
pub fn users() -> Vec<DemoUser> {
    let acme = Some(acme_tenant_id());
    let globex = Some(globex_tenant_id());
    [
        (
            ACME_ADMIN_ID,
            ACME_ADMIN_EMAIL,
            "Ada Admin",
            Role::Admin,
            acme,
        ),
        (
            ACME_AGENT_ID,
            ACME_AGENT_EMAIL,
            "Alex Agent",
            Role::Agent,
            acme,
        ),
        (
            ACME_VIEWER_ID,
            ACME_VIEWER_EMAIL,
            "Val Viewer",
            Role::Viewer,
            acme,
        ),
        (
            GLOBEX_ADMIN_ID,
            GLOBEX_ADMIN_EMAIL,
            "Gus Globex",
            Role::Admin,
            globex,
        ),
        (
            NEWCO_ADMIN_ID,
            NEWCO_ADMIN_EMAIL,
            "Nina Newco",
            Role::Admin,
            None,
        ),
    ]
    .into_iter()
    .filter_map(|(id, email, name, role, tenant)| {
        Some(DemoUser {
            id: UserId::parse(id).ok()?,
            email: Email::parse(email).ok()?,
            name: name.to_owned(),
            role,
            tenant,
        })
    })
    .collect()
}

/// The two demo tenants.
pub fn tenants() -> Vec<Tenant> {
    [
        (acme_tenant_id(), ACME_NAME, ACME_ADMIN_EMAIL),
        (globex_tenant_id(), GLOBEX_NAME, GLOBEX_ADMIN_EMAIL),
    ]
    .into_iter()
    .map(|(id, name, contact)| Tenant {
        id,
        company_name: name.to_owned(),
        region: Region::UsEast1,
        contact_email: Email::parse(contact).ok(),
        status: TenantStatus::Active,
    })
    .collect()
}

/// All demo data, generated relative to `now`.
pub fn generate(now: OffsetDateTime) -> DemoData {
    let mut conversations =
        conversations_for(acme_tenant_id(), ACME_CONVERSATIONS, "1555", 0xACE, now);
    conversations.extend(conversations_for(
        globex_tenant_id(),
        GLOBEX_CONVERSATIONS,
        "4477009",
        0x610BE,
        now,
    ));
    DemoData {
        users: users(),
        tenants: tenants(),
        conversations,
    }
}

/// A small deterministic generator (xorshift64*): no `rand` needed for demo data.
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        // A zero state would stay zero forever.
        Self(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

const INBOUND_TEXTS: [&str; 8] = [
    "Hi, I need help with my order",
    "When will my package arrive?",
    "Can I change the delivery address?",
    "Thanks, that worked!",
    "Is the store open on Sunday?",
    "I was charged twice",
    "Do you ship abroad?",
    "Ok, thank you",
];

const OUTBOUND_TEXTS: [&str; 8] = [
    "Hello! How can we help you today?",
    "Your order is on its way and should arrive tomorrow.",
    "I've updated the address for you.",
    "You're welcome, have a great day!",
    "We're open 10:00-16:00 on Sundays.",
    "I've refunded the duplicate charge.",
    "Yes, we ship to most countries.",
    "Could you share your order number?",
];

fn conversations_for(
    tenant: TenantId,
    count: usize,
    wa_prefix: &str,
    seed: u64,
    now: OffsetDateTime,
) -> Vec<DemoConversation> {
    let mut rng = XorShift::new(seed);
    let now = now.to_offset(time::UtcOffset::UTC);
    let month = Duration::days(30);
    let since_midnight = now - now.replace_time(time::Time::MIDNIGHT);
    // Fewer customers than conversations: some customers come back.
    let customers = (count as u64 * 7 / 10).max(1);
    let digits = 11usize.saturating_sub(wa_prefix.len()).max(4);
    let modulus = 10u64.pow(digits as u32);
    (0..count)
        .map(|i| {
            let id = ConversationId::from_uuid(rng.uuid());
            let customer = rng.below(customers);
            let wa_id = format!(
                "{wa_prefix}{:0digits$}",
                (customer * 7_919 + 1_234) % modulus
            );
            // The first few conversations happen today, so "today" is never empty (unless the
            // simulator starts at midnight); the rest spread over the last 30 days.
            let (start, end) = if i < 6 && since_midnight > Duration::ZERO {
                let a = fraction(&mut rng, since_midnight);
                let b = fraction(&mut rng, since_midnight);
                let midnight = now - since_midnight;
                (midnight + a.min(b), midnight + a.max(b))
            } else {
                let start = now - month + Duration::minutes(1) + fraction(&mut rng, month);
                let span = fraction(&mut rng, (now - start).min(Duration::days(2)));
                (start, start + span)
            };
            let n = 3 + rng.below(8) as usize;
            let messages: Vec<Message> = (0..n)
                .filter_map(|k| {
                    let at = start + (end - start) * (k as f64 / (n - 1) as f64);
                    let inbound = k == 0 || rng.chance(45);
                    let pick = rng.below(8) as usize;
                    // Always valid (short ASCII); `ok()?` keeps generation panic-free.
                    let message_id =
                        MessageId::parse(format!("wamid.{:016x}", rng.next_u64())).ok()?;
                    Some(if inbound {
                        Message {
                            message_id,
                            direction: Direction::Inbound,
                            text: Some(INBOUND_TEXTS[pick].to_owned()),
                            media_url: None,
                            status: MessageStatus::Received,
                            timestamp: at,
                            error: None,
                        }
                    } else {
                        let roll = rng.below(100);
                        let (status, error) = match roll {
                            0..=54 => (MessageStatus::Read, None),
                            55..=76 => (MessageStatus::Delivered, None),
                            77..=90 => (MessageStatus::Sent, None),
                            _ => (
                                MessageStatus::Failed,
                                Some("131026: message undeliverable".to_owned()),
                            ),
                        };
                        Message {
                            message_id,
                            direction: Direction::Outbound,
                            text: Some(OUTBOUND_TEXTS[pick].to_owned()),
                            media_url: None,
                            status,
                            timestamp: at,
                            error,
                        }
                    })
                })
                .collect();
            let recent = now - end < Duration::days(3);
            let status = if recent && rng.chance(75) || i % 5 == 0 {
                ConversationStatus::Active
            } else {
                ConversationStatus::Closed
            };
            DemoConversation {
                conversation: Conversation {
                    id,
                    tenant_id: tenant,
                    wa_id,
                    status,
                    created_at: start,
                    last_activity: end,
                },
                messages,
            }
        })
        .collect()
}

/// A pseudo-random part of `span` (whole seconds).
fn fraction(rng: &mut XorShift, span: Duration) -> Duration {
    let secs = span.whole_seconds().max(0) as u64;
    Duration::seconds(rng.below(secs.max(1)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use time::macros::datetime;

    #[test]
    fn generation_is_deterministic_and_within_the_last_30_days() {
        let now = datetime!(2026-02-12 08:30 UTC);
        let a = generate(now);
        let b = generate(now);
        assert_eq!(a.conversations, b.conversations);
        for c in &a.conversations {
            assert!(!c.messages.is_empty());
            for m in &c.messages {
                assert!(m.timestamp <= now && m.timestamp > now - Duration::days(30));
            }
            assert_eq!(
                c.conversation.last_activity,
                c.messages.last().unwrap().timestamp
            );
        }
    }

    #[test]
    fn each_tenant_has_a_mix_of_conversations_and_ids_are_unique() {
        let data = generate(datetime!(2026-02-12 08:30 UTC));
        for tenant in [acme_tenant_id(), globex_tenant_id()] {
            let convs: Vec<_> = data
                .conversations
                .iter()
                .filter(|c| c.conversation.tenant_id == tenant)
                .collect();
            assert!((25..=60).contains(&convs.len()));
            let statuses: HashSet<_> = convs.iter().map(|c| c.conversation.status).collect();
            assert_eq!(statuses.len(), 2, "both active and closed conversations");
            let msg_statuses: Vec<_> = convs
                .iter()
                .flat_map(|c| c.messages.iter().map(|m| m.status))
                .collect();
            for s in [
                MessageStatus::Sent,
                MessageStatus::Delivered,
                MessageStatus::Read,
                MessageStatus::Failed,
            ] {
                assert!(msg_statuses.contains(&s), "{s:?}");
            }
        }
        let ids: HashSet<_> = data
            .conversations
            .iter()
            .map(|c| c.conversation.id)
            .collect();
        assert_eq!(ids.len(), data.conversations.len());
        assert_eq!(data.users.len(), 5);
        assert!(data.users.iter().any(|u| u.tenant.is_none()));
    }
}
