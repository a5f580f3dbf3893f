//! Translation of Redis errors into [`StoreError`], without values or secrets.

use portal_domain::StoreError;
use redis::RedisError;

/// A Redis failure as `Unavailable`, naming only the operation and a coarse category.
pub(crate) fn unavailable(op: &'static str, e: &RedisError) -> StoreError {
    let category = category(e);
    tracing::warn!(op, category, "redis command failed");
    StoreError::Unavailable(format!("redis {op}: {category}"))
}

/// The command did not complete within its deadline.
pub(crate) fn timed_out(op: &'static str) -> StoreError {
    tracing::warn!(op, "redis command timed out");
    StoreError::Unavailable(format!("redis {op}: timeout"))
}

/// No connection could be taken from the pool.
pub(crate) fn no_connection(op: &'static str) -> StoreError {
    tracing::warn!(op, "no redis connection available");
    StoreError::Unavailable(format!("redis {op}: no connection"))
}

/// A stored value did not decode.
pub(crate) fn corrupt(what: &'static str) -> StoreError {
    tracing::warn!(what, "corrupt value in redis");
    StoreError::Corrupt(format!("redis {what}"))
}

fn category(e: &RedisError) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connection_refusal() {
        "connection refused"
    } else if e.is_connection_dropped() || e.is_io_error() {
        "connection lost"
    } else if e.is_unrecoverable_error() {
        "connection failed"
    } else {
        "command refused"
    }
}
