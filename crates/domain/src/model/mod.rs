//! The service's value types and entities.

mod client;
mod conversation;
mod event;
mod ids;
mod metrics;
mod privacy;
mod session;
mod tenant;
mod text;
mod user;

pub use client::{ClientInfo, RequestContext, USER_AGENT_MAX_CHARS, clean_user_agent, truncate_ip};
pub use conversation::{
    Conversation, ConversationPage, ConversationQuery, ConversationStatus, ConversationSummary,
    Direction, Message, MessageStatus, OutboundMessage,
};
pub use event::{BusEvent, EventId, EventIdError, MessageUpdate, StatusUpdate, TenantEvent};
pub use ids::{ConversationId, IdError, MessageId, TenantId, UUID_GROUPS, UserId};
pub use metrics::{
    DashboardStats, DateRange, DateRangeError, Figures, Period, RawMetrics, success_rate,
};
pub use privacy::{customer_number_for, mask_customer_number};
pub use session::{Ciphertext, Session, SessionId, SessionKey};
pub use tenant::{
    GenesysConfig, NewTenant, Region, Tenant, TenantStatus, TenantUpdate, WebhookConfig,
    WhatsAppConfig,
};
pub use text::{CONTROL, WHITE_SPACE};
pub use user::{Email, EmailError, Role, UserProfile};
