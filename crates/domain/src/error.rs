//! Errors that ports report. Use cases wrap them in their own enums.

use std::time::Duration;

/// A store (session, cache, lock, limiter, bus, queue) could not do its job.
///
/// Adapters translate their infrastructure errors into these two cases; the domain treats both
/// as "fail closed" (a request that needs the store is refused, never let through).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The store is unreachable, timed out or refused the command.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded.
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
}

/// How a call to a downstream service failed, independently of which service it was.
///
/// Each downstream port's error enum has its business variants plus one
/// `Failure(DownstreamFailure)` for these.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DownstreamFailure {
    /// No answer within the call's deadline.
    #[error("timed out")]
    Timeout,
    /// The circuit breaker is open: the call was not made.
    #[error("circuit open")]
    CircuitOpen,
    /// The service asked us to slow down (HTTP 429).
    #[error("rate limited by the downstream service")]
    RateLimited {
        /// The service's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// The service answered with a server error or could not be reached.
    #[error("unavailable (status {status:?})")]
    Unavailable {
        /// The HTTP status, or `None` when the connection itself failed.
        status: Option<u16>,
    },
    /// The service answered something we cannot understand (bad JSON, oversized body,
    /// unexpected status).
    #[error("protocol error: {0}")]
    Protocol(String),
}
