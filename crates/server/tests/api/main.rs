//! The server's black-box tests, one binary (zero2prod's layout): the real application on a
//! free port over loopback (`helpers::spawn_app`), and, where the process itself is under
//! test (shutdown, the production profile, the deploy contract), the `agent-portal` binary as
//! a child process. One module per area; what they share is in `helpers`.
//!
//! Quiet by default: `TEST_LOG=1 cargo test -p portal-server --test api -- --nocapture`
//! prints the service's log lines (see `helpers`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod dashboard;
mod deploy_contract;
mod errors;
mod helpers;
mod http_adapters;
mod logging;
mod observability;
mod onboarding;
mod production;
mod realtime;
mod retries;
mod shutdown;
mod sign_in;
mod websocket;
mod widget;
