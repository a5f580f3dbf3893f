//! The contract test suite every store adapter must pass: one suite, two implementations
//! (`portal-memory` and `portal-redis`).
//!
//! Each check is a public async function `checks::<name>(&Stores, &Waiter)` that exercises
//! one clause of a port's documented contract (see the doc comments in
//! [`portal_domain::ports::stores`]) and panics with a readable message when the adapter
//! breaks it. [`store_contract_tests!`] expands to one `#[tokio::test]` per check, so an
//! adapter crate gets the whole suite with one line.
//!
//! Checks use fresh random keys, users and tenants, so several suites may share one Redis
//! database and run in parallel. TTLs are tiny (100-400 ms) so a real-clock run stays fast.
//!
//! # How to run it against an adapter
//! In the adapter crate, add `portal-contract` and `tokio` (with `macros`, `rt`, `time`) as
//! dev-dependencies, then write `tests/contract.rs`:
//!
//! ```text
//! use portal_contract::{Stores, Waiter};
//!
//! async fn stores() -> Stores {
//!     let pool = connect_to_test_redis().await; // e.g. from REDIS_URL
//!     Stores {
//!         sessions: Arc::new(RedisSessionStore::new(pool.clone())),
//!         // ... one Arc<dyn Port> per store port ...
//!     }
//! }
//!
//! // Real time: the waiter really sleeps.
//! portal_contract::store_contract_tests!(stores(), Waiter::sleep());
//! ```
//!
//! The first argument is an expression evaluating to a `Future<Output = Stores>`; it is
//! awaited once per test, inside the test's runtime (a current-thread `#[tokio::test]`). The
//! second is the [`Waiter`] the checks use to let time pass. The in-memory adapters run the
//! suite under a paused tokio clock instead (see `crates/memory/tests/stores/contract.rs`):
//!
//! ```text
//! portal_contract::store_contract_tests!(
//!     async { tokio::time::pause(); portal_memory::stores() },
//!     Waiter::new(tokio::time::advance),
//! );
//! ```
//!
//! To skip the Redis suite when no server is reachable, make the factory return early in a
//! way the test reports clearly (e.g. panic with "REDIS_URL not set"), or gate the file with
//! `#![cfg(feature = "redis-tests")]`.
//!
//! Clauses worth knowing because they are easy to miss with Redis:
//! - `SessionStore::delete_all_for_user` and `list_for_user` must not report index entries
//!   whose session has expired, and the index must drop them (a SET of members grows for
//!   ever; a sorted set scored by expiry and pruned on write does not).
//! - `SessionStore::touch` must keep the remaining TTL (`SET ... KEEPTTL` or a script).
//! - Events published after `EventBus::subscribe` has **returned** must be delivered: wait
//!   for the `SUBSCRIBE` confirmation before returning the stream.
//! - `Lock::release` with another holder's token must not delete (compare-and-delete script);
//!   `Lock::renew` likewise extends only the holder's lease (compare-and-expire).
//! - `RateLimiter::hit` refused hits are not recorded; `cost = 0` records nothing.
//! - `EventHistory::append` of one key by racing instances records once (a script that checks
//!   the key and appends); `EventHistory::since` of a trimmed position is a gap, never the
//!   events that happen to remain.
//! - `Presence::admit` checks the caps and counts in one atomic step.
//!
//! # Layout
//! - [`Stores`]: one `Arc<dyn Port>` per store port, the factory's output.
//! - [`Waiter`]: how checks let time pass (real sleep or paused-clock advance).
//! - [`checks`]: the checks, one module per port.
//! - [`fixtures`]: unique keys and ready-made domain values, reusable by adapter tests.
//!
//! # Dependencies
//! The domain, tokio (time), futures, time, uuid. It is a test-support crate: depend on it
//! from `[dev-dependencies]` only.

pub mod checks;
pub mod fixtures;

use futures::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One implementation of every store port: what an adapter crate hands the suite.
pub use portal_domain::ports::StorePorts as Stores;

/// Lets time pass for expiry checks.
#[derive(Clone)]
pub struct Waiter(Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>);

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiter")
    }
}

impl Waiter {
    /// A waiter running `f` (e.g. `tokio::time::advance` under a paused clock).
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self(Arc::new(move |d| Box::pin(f(d))))
    }

    /// A waiter that sleeps on the tokio clock: real time for a real store.
    pub fn sleep() -> Self {
        Self::new(tokio::time::sleep)
    }

    /// Lets `duration` pass.
    pub async fn wait(&self, duration: Duration) {
        (self.0)(duration).await;
    }
}

/// Expands to one `#[tokio::test]` per contract check.
///
/// `store_contract_tests!(factory, waiter)`: `factory` is an expression evaluating to a
/// `Future<Output = `[`Stores`]`>` (awaited once per test), `waiter` a [`Waiter`]. The calling
/// crate needs `tokio` (macros, rt) among its dev-dependencies.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:expr, $waiter:expr $(,)?) => {
        $crate::store_contract_tests!(@each $factory, $waiter;
            session_create_then_get_returns_it,
            session_replace_overwrites_and_refuses_when_gone,
            session_touch_updates_activity_and_keeps_ttl,
            session_delete_is_idempotent_and_unindexes,
            session_delete_all_for_user_removes_only_that_user,
            session_expires_after_ttl,
            session_list_for_user_returns_only_live_sessions,
            session_index_never_outgrows_the_live_sessions,
            session_get_and_hit_returns_the_session_and_a_shared_decision,
            session_get_and_hit_of_a_missing_session_still_counts,
            one_time_take_returns_payload_exactly_once,
            one_time_racing_takes_exactly_one_wins,
            one_time_expires_after_ttl,
            onboarding_first_save_creates_only_if_absent,
            onboarding_save_is_compare_and_set,
            onboarding_save_resets_ttl,
            cache_put_then_get_round_trips,
            cache_invalidate_makes_entries_stale,
            cache_entries_expire_after_retain,
            lock_exactly_one_of_many_concurrent_acquirers,
            lock_release_requires_the_holders_token,
            lock_expiry_frees_it,
            lock_renew_extends_only_the_holders_lease,
            rate_exact_under_concurrency,
            rate_remaining_cost_and_refusals,
            rate_window_resets_whole_when_it_ends,
            idempotency_claim_then_finish,
            idempotency_abandon_frees_the_key,
            idempotency_racing_claims_exactly_one_wins,
            idempotency_records_expire,
            bus_delivers_events_and_revocations_to_every_subscriber,
            outbound_enqueue_returns_distinct_ids,
            audit_append_is_compare_and_append_on_the_head,
            audit_reads_page_both_ways_and_scopes_are_apart,
            audit_racing_writers_keep_one_linear_chain,
            audit_retention_by_count_moves_the_anchor,
            audit_retention_by_age_drops_old_entries,
            history_gives_increasing_ids_and_the_events_after_a_position,
            history_records_a_key_once,
            history_trimmed_by_length_is_a_gap,
            history_trimmed_by_age_is_a_gap,
            history_unknown_positions_and_overlong_replays_are_gaps,
            presence_caps_sessions_and_users_across_instances,
            presence_racing_admits_stay_within_the_cap,
            presence_counts_live_instances_and_refresh_replaces,
        );
    };
    (@each $factory:expr, $waiter:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let stores: $crate::Stores = $factory.await;
                let waiter: $crate::Waiter = $waiter;
                $crate::checks::$name(&stores, &waiter).await;
            }
        )+
    };
}
