//! Telling one socket task to close, and why.

use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::Notify;

/// Why the hub wants a socket closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The socket's queue overflowed (close code 1013, "try again later").
    SlowConsumer,
    /// The session ended (logout or expiry): send `session_expired`, then close.
    SessionEnded,
    /// The instance is shutting down (close code 1001, "going away").
    Shutdown,
}

impl CloseReason {
    fn code(self) -> u8 {
        match self {
            CloseReason::SlowConsumer => 1,
            CloseReason::SessionEnded => 2,
            CloseReason::Shutdown => 3,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(CloseReason::SlowConsumer),
            2 => Some(CloseReason::SessionEnded),
            3 => Some(CloseReason::Shutdown),
            _ => None,
        }
    }
}

/// Tells one socket task to close, and why.
#[derive(Debug, Default)]
pub struct CloseSignal {
    reason: AtomicU8,
    notify: Notify,
}

impl CloseSignal {
    /// Asks the socket to close; the first reason wins.
    pub fn close(&self, reason: CloseReason) {
        if self
            .reason
            .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }
    /// The reason, once closing was asked for.
    pub fn reason(&self) -> Option<CloseReason> {
        CloseReason::from_code(self.reason.load(Ordering::Acquire))
    }
    /// Resolves when closing is asked for (immediately if it already was).
    pub async fn closed(&self) -> CloseReason {
        loop {
            let notified = self.notify.notified();
            if let Some(r) = self.reason() {
                return r;
            }
            notified.await;
        }
    }
}
