//! Translation of Redis errors into [`StoreError`], without values or secrets.
//!
//! An unreachable Redis is not logged here, once per failed operation: the health monitor
//! logs each change of state once and `RedisHealth::refused_total` counts the refusals (during
//! an outage a line per request would flood the logs). A command Redis refuses while reachable
//! is a bug (a wrong type, `CROSSSLOT`, `NOPERM`) and is logged as an error.

use portal_domain::StoreError;
use redis::RedisError;

/// A Redis failure as `Unavailable`, naming only the operation and a coarse category.
pub(crate) fn unavailable(op: &'static str, e: &RedisError) -> StoreError {
    let category = category(e);
    if category == "command refused" {
        tracing::error!(
            op,
            code = e.code().unwrap_or("none"),
            "redis refused a command"
        );
    } else {
        tracing::debug!(op, category, "redis command failed");
    }
    StoreError::Unavailable(format!("redis {op}: {category}"))
}

/// The command did not complete within its deadline.
pub(crate) fn timed_out(op: &'static str) -> StoreError {
    tracing::debug!(op, "redis command timed out");
    StoreError::Unavailable(format!("redis {op}: timeout"))
}

/// No connection could be taken from the pool.
pub(crate) fn no_connection(op: &'static str) -> StoreError {
    tracing::debug!(op, "no redis connection available");
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
    } else if matches!(
        e.kind(),
        redis::ErrorKind::Server(
            redis::ServerErrorKind::ClusterDown
                | redis::ServerErrorKind::MasterDown
                | redis::ServerErrorKind::TryAgain
                | redis::ServerErrorKind::ReadOnly
                | redis::ServerErrorKind::BusyLoading
                | redis::ServerErrorKind::Moved
                | redis::ServerErrorKind::Ask
        )
    ) {
        // A failover or slot move still under way when the client ran out of retries.
        "failover in progress"
    } else {
        "command refused"
    }
}
