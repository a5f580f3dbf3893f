//! Black-box tests of the HTTP API over loopback against the embedded default.

mod errors;
mod helpers;
mod sign_in;
