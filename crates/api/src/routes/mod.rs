//! Route handlers. Each is a few lines: extract, call one use case, map the result.

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod dashboard;
pub(crate) mod docs;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod index;
pub(crate) mod metrics;
pub(crate) mod onboarding;
pub(crate) mod sessions;
pub(crate) mod widget;
pub mod ws;
