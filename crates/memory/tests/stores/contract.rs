//! The shared store contract, run against the in-memory adapters under a paused tokio clock.

use portal_contract::{Stores, Waiter};
use portal_memory::MemoryStores;

fn to_contract(m: MemoryStores) -> Stores {
    Stores {
        sessions: m.sessions,
        one_time: m.one_time,
        onboarding: m.onboarding,
        cache: m.cache,
        lock: m.lock,
        rate_limiter: m.rate_limiter,
        idempotency: m.idempotency,
        event_bus: m.event_bus,
        outbound: m.outbound,
        audit: m.audit,
        history: m.history,
        presence: m.presence,
    }
}

portal_contract::store_contract_tests!(
    async {
        tokio::time::pause();
        to_contract(MemoryStores::new())
    },
    Waiter::new(tokio::time::advance),
);
