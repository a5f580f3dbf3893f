//! Black-box tests of the outbound edge against a real HTTP server (wiremock): the plumbing of
//! a call (correlation headers, status mapping, retries, deadlines, body caps, the breaker)
//! and the health probe. What they share is in `helpers`.

#![allow(clippy::unwrap_used)] // test code: a failed setup should panic

mod health;
mod helpers;
mod plumbing;
