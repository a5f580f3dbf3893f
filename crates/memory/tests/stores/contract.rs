//! The shared store contract, run against the in-memory adapters under a paused tokio clock.

use portal_contract::Waiter;

portal_contract::store_contract_tests!(
    async {
        tokio::time::pause();
        portal_memory::stores()
    },
    Waiter::new(tokio::time::advance),
);
