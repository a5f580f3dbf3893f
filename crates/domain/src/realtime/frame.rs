//! What a socket sends for a tenant event: the JSON text frame `{"event", "id", "data"}`
//! (spec §10.2 fields), built once per audience and shared by every socket of that audience.

use crate::model::{EventId, Role, TenantEvent, customer_number_for};
use serde_json::json;
use std::sync::OnceLock;
use time::format_description::well_known::Rfc3339;

/// One event as the hub delivers it: its ID in the tenant's history and its frames.
///
/// The frame for readers who see customer numbers whole (admins, agents) is built when the
/// event arrives; the one for viewers (the `wa_id` masked) the first time a viewer's socket
/// needs it, and only when the two differ. Sockets share both through an `Arc`.
#[derive(Debug)]
pub struct LiveEvent {
    id: Option<EventId>,
    event: TenantEvent,
    whole: String,
    masked: OnceLock<String>,
}

impl LiveEvent {
    /// `event` at `id` (`None`: the history could not record it).
    pub fn new(id: Option<EventId>, event: TenantEvent) -> Self {
        let whole = frame(id, &event, None);
        Self {
            id,
            event,
            whole,
            masked: OnceLock::new(),
        }
    }

    /// Its position in the tenant's history.
    pub fn id(&self) -> Option<EventId> {
        self.id
    }

    /// The event.
    pub fn event(&self) -> &TenantEvent {
        &self.event
    }

    /// The frame a reader of `role` gets.
    pub fn frame(&self, role: Role) -> &str {
        if role.sees_customer_numbers() {
            return &self.whole;
        }
        match &self.event {
            TenantEvent::Message { update, .. } if update.wa_id.is_some() => self
                .masked
                .get_or_init(|| frame(self.id, &self.event, Some(role))),
            _ => &self.whole,
        }
    }
}

/// The frame of `event`; with `reader`, the customer number as that role may see it.
fn frame(id: Option<EventId>, event: &TenantEvent, reader: Option<Role>) -> String {
    let (name, data) = match event {
        TenantEvent::Message { update, .. } => {
            let mut data = json!({
                "type": update.direction,
                "conversation_id": update.conversation_id,
                "message_id": update.message_id,
                "text": update.text,
                "status": update.status,
                "timestamp": update.timestamp.format(&Rfc3339).ok(),
            });
            if let Some(wa_id) = &update.wa_id {
                data["wa_id"] = match reader {
                    Some(role) => json!(customer_number_for(role, wa_id)),
                    None => json!(wa_id),
                };
            }
            ("message_update", data)
        }
        TenantEvent::Status { update, .. } => (
            "status_update",
            json!({
                "message_id": update.message_id,
                "status": update.status,
                "timestamp": update.timestamp.format(&Rfc3339).ok(),
            }),
        ),
    };
    let mut value = json!({ "event": name, "data": data });
    if let Some(id) = id {
        value["id"] = json!(id.to_string());
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ConversationId, Direction, MessageId, MessageStatus, MessageUpdate, TenantId,
    };

    fn inbound(wa_id: Option<&str>) -> TenantEvent {
        TenantEvent::Message {
            tenant_id: TenantId::new_random(),
            update: MessageUpdate {
                direction: Direction::Inbound,
                conversation_id: ConversationId::new_random(),
                message_id: MessageId::parse("wamid.1").unwrap(),
                text: Some("hi".into()),
                status: MessageStatus::Received,
                timestamp: time::macros::datetime!(2026-02-12 08:30 UTC),
                wa_id: wa_id.map(str::to_owned),
            },
        }
    }

    fn parse(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn viewers_get_the_number_masked_others_whole_and_each_frame_is_built_once() {
        let e = LiveEvent::new(Some(EventId::new(7, 1)), inbound(Some("15551234829")));
        let agent = parse(e.frame(Role::Agent));
        assert_eq!(agent["id"], "7-1");
        assert_eq!(agent["event"], "message_update");
        assert_eq!(agent["data"]["wa_id"], "15551234829");
        let viewer = parse(e.frame(Role::Viewer));
        assert_eq!(viewer["data"]["wa_id"], "1555•••829");
        assert_eq!(viewer["data"]["text"], "hi");
        // The same text, not a new serialisation per socket.
        assert!(std::ptr::eq(e.frame(Role::Viewer), e.frame(Role::Viewer)));
        assert!(std::ptr::eq(e.frame(Role::Admin), e.frame(Role::Agent)));
    }

    #[test]
    fn without_a_number_every_reader_shares_one_frame_and_no_id_means_no_id_field() {
        let e = LiveEvent::new(None, inbound(None));
        assert!(std::ptr::eq(e.frame(Role::Viewer), e.frame(Role::Admin)));
        let v = parse(e.frame(Role::Viewer));
        assert!(v.get("id").is_none(), "{v}");
        assert!(v["data"].get("wa_id").is_none(), "{v}");
    }
}
