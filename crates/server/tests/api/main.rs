//! The server's black-box tests, one binary (zero2prod's layout): the real application on a
//! free port over loopback (`helpers::spawn_app`), on the embedded default or on a real
//! Redis deployment of each topology (`redis_support`), and, where the process itself is
//! under test (shutdown, the production profile, the deploy contract), the `agent-portal`
//! binary as a child process. One module per area; what they share is in `helpers`.
//!
//! Quiet by default: `TEST_LOG=1 cargo test -p portal-server --test api -- --nocapture`
//! prints the service's log lines (see `helpers`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod audit;
mod browser;
mod contract;
mod dashboard;
mod deploy_contract;
mod edge;
mod errors;
mod first_hour;
mod helpers;
mod http_adapters;
mod journey;
mod logging;
mod observability;
mod onboarding;
mod production;
mod prometheus;
mod readme;
mod realtime;
mod redis_instances;
mod redis_outage_logs;
mod redis_round_trips;
mod redis_support;
mod retries;
mod sessions;
mod shutdown;
mod sign_in;
mod tenant_guard;
mod traces;
mod websocket;
mod widget;
