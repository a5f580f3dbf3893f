use crate::fixtures::outbound_message;
use crate::{Stores, Waiter};
use portal_domain::model::TenantId;
use std::collections::HashSet;

/// `enqueue` appends and returns a distinct, non-empty entry ID per message.
pub async fn outbound_enqueue_returns_distinct_ids(s: &Stores, _w: &Waiter) {
    let tenant = TenantId::new_random();
    let mut ids = HashSet::new();
    for i in 0..5 {
        let id = s
            .outbound
            .enqueue(&outbound_message(tenant, &format!("message {i}")))
            .await
            .expect("enqueue");
        assert!(!id.is_empty());
        assert!(ids.insert(id), "entry IDs must be distinct");
    }
}
