//! The domain's use cases (and the real-time hub) over the in-memory store adapters
//! (`portal-memory`) and the real cipher; downstream services without an in-memory adapter
//! are the small fakes of [`helpers`].

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod audit;
mod auth;
mod dashboard;
mod helpers;
mod onboarding;
mod realtime;
mod sessions;
