//! Black-box tests of the HTTP API over loopback against the embedded default.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod errors;
mod helpers;
mod sign_in;
