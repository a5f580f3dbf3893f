//! Unique keys and ready-made domain values for contract checks (and adapter tests).

use portal_domain::model::{
    ConversationId, Direction, Email, MessageId, MessageStatus, MessageUpdate, OutboundMessage,
    Region, Role, Session, SessionKey, StatusUpdate, TenantEvent, TenantId, UserId,
};
use portal_domain::onboarding::{CompanyName, OnboardingState, OrganizationDetails, Progress};
use portal_domain::ports::stores::CacheEntry;
use time::OffsetDateTime;
use time::macros::datetime;

/// A fixed, whole-second instant (survives any serialisation unchanged).
pub const T0: OffsetDateTime = datetime!(2026-02-12 08:30 UTC);

/// `prefix-<random>`: a key no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("contract-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A fresh session key (64 hex characters, like a real one).
pub fn session_key() -> SessionKey {
    SessionKey::from_hex(portal_domain::crypto::sha256_hex(
        uuid::Uuid::new_v4().as_bytes(),
    ))
}

/// A fresh user.
pub fn user() -> UserId {
    UserId::parse(unique("user")).unwrap_or_else(|_| unreachable!("a short printable id"))
}

/// A session of `user` in `tenant`.
pub fn session(user: &UserId, tenant: TenantId) -> Session {
    Session {
        user_id: user.clone(),
        tenant_id: Some(tenant),
        role: Role::Agent,
        email: Email::parse("agent@example.com")
            .unwrap_or_else(|_| unreachable!("a valid address")),
        name: "Contract Agent".to_owned(),
        onboarding_only: false,
        created_at: T0,
        expires_at: T0 + time::Duration::hours(24),
        last_activity: T0,
        refresh_token: None,
        refreshed_at: None,
        client: portal_domain::model::ClientInfo::default(),
    }
}

/// An onboarding state of `tenant` after step 1, named `company` (2-100 characters).
pub fn onboarding_state(tenant: TenantId, company: &str) -> OnboardingState {
    OnboardingState {
        tenant_id: tenant,
        started_by: user(),
        organization: OrganizationDetails {
            company_name: CompanyName::parse(company)
                .unwrap_or_else(|e| panic!("fixture company name {company:?}: {e}")),
            region: Region::EuWest1,
            contact_email: Email::parse("admin@example.com")
                .unwrap_or_else(|_| unreachable!("a valid address")),
        },
        progress: Progress::Organization,
        created_at: T0,
        last_updated: T0,
    }
}

/// A cache entry holding `value`, fetched at generation `generation`.
pub fn cache_entry(value: &str, generation: u64) -> CacheEntry {
    CacheEntry {
        value: value.to_owned(),
        stored_at: T0,
        generation,
    }
}

fn message_id() -> MessageId {
    MessageId::parse(unique("msg")).unwrap_or_else(|_| unreachable!("a short printable id"))
}

/// A new-message event of `tenant`.
pub fn message_event(tenant: TenantId) -> TenantEvent {
    TenantEvent::Message {
        tenant_id: tenant,
        update: MessageUpdate {
            direction: Direction::Inbound,
            conversation_id: ConversationId::new_random(),
            message_id: message_id(),
            text: Some("hello".to_owned()),
            status: MessageStatus::Received,
            timestamp: T0,
            wa_id: None,
        },
    }
}

/// A status event of `tenant`.
pub fn status_event(tenant: TenantId) -> TenantEvent {
    TenantEvent::Status {
        tenant_id: tenant,
        update: StatusUpdate {
            message_id: message_id(),
            status: MessageStatus::Delivered,
            timestamp: T0,
            conversation_id: Some(ConversationId::new_random()),
        },
    }
}

/// A widget message of `tenant`.
pub fn outbound_message(tenant: TenantId, text: &str) -> OutboundMessage {
    OutboundMessage {
        message_id: message_id(),
        tenant_id: tenant,
        conversation_id: ConversationId::new_random(),
        wa_id: "15551234567".to_owned(),
        text: text.to_owned(),
        media_url: None,
        source: "widget".to_owned(),
        agent_id: user(),
        timestamp: T0,
    }
}
