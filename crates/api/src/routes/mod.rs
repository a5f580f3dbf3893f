//! Route handlers. Each is a few lines: extract, call one use case, map the result.

pub mod auth;
pub mod dashboard;
pub mod health;
pub mod history;
pub mod metrics;
pub mod onboarding;
pub mod widget;
pub mod ws;
