//! The audit trail: who signed in and out, ended whose sessions, refreshed, was refused
//! (CSRF, another tenant, the sign-in limit), drove each onboarding step, validated
//! credentials, completed onboarding, sent from the widget, cleared the dashboard cache.
//!
//! Use cases (and the edge, for the refusals it decides) hand an [`AuditEvent`] to the
//! [`Auditor`], which never blocks nor fails the request: the entry goes into a bounded
//! queue, and one writer task per instance appends it to its tenant's trail through the
//! [`AuditLog`] port. Each entry carries an HMAC-SHA256 (`AUDIT_HMAC_KEY`, [`AuditKey`]) over
//! the previous entry's HMAC and its own content, so an altered, removed or reordered entry
//! breaks the chain. Appends are compare-and-append on the head, so several instances writing
//! one trail keep it linear: a writer that lost the race re-signs against the new head. When
//! the store is down (or the queue is full) the entry goes to the log with `audit=true`
//! instead, and `Telemetry::audit_fallback` counts it.
//!
//! Admins of a tenant read its trail ([`Auditor::page`], newest first) and check it
//! ([`Auditor::verify`], which reports the first break).
//!
//! # Layout
//! - `entry`: actions, outcomes, [`AuditEntry`] and [`AuditEvent`].
//! - `chain`: [`AuditKey`], signing and checking the chain.
//! - this file: [`Auditor`], its queue and writer, reading and verifying.

mod chain;
mod entry;

pub use chain::{AuditKey, BreakReason, ChainBreak, Verification};
pub use entry::{AuditAction, AuditActor, AuditEntry, AuditEvent, AuditOutcome};

use crate::auth::{AccessDenied, Capability, CurrentSession};
use crate::error::StoreError;
use crate::ports::stores::{
    AppendOutcome, AuditCursor, AuditLog, AuditRecord, AuditRetention, AuditScope,
};
use crate::ports::system::{Clock, Random, RandomExt, Telemetry};
use chain::ChainCheck;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a writer keeps re-signing an entry against a moving head before it gives up on a
/// contended trail. Bounded by time, not by a count of attempts: each conflict means another
/// writer appended, so the trail as a whole always progresses, but one writer may lose many
/// races in a row on a loaded machine (16 attempts were once not enough for 3 writers).
const CONTENTION_DEADLINE: Duration = Duration::from_secs(2);
/// How long a read waits for this instance's queued entries to be written first.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// Entries read per store round trip when paging or verifying.
const BATCH: usize = 500;
/// Entries a page with an `action` filter looks through at most before answering with what
/// it found (and a cursor to go on from).
const SCAN_LIMIT: usize = 5_000;

/// Audit settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSettings {
    /// How long and how many entries each trail keeps (90 days, 100,000 entries).
    pub retention: AuditRetention,
    /// Entries waiting for the writer before new ones go to the log instead (10,000).
    pub queue_capacity: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention: AuditRetention {
                max_entries: 100_000,
                max_age: Duration::from_secs(90 * 24 * 3600),
            },
            queue_capacity: 10_000,
        }
    }
}

/// The ports the auditor uses.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct AuditPorts {
    /// The trails.
    pub log: Arc<dyn AuditLog>,
    /// Entry times.
    pub clock: Arc<dyn Clock>,
    /// Entry IDs.
    pub random: Arc<dyn Random>,
    /// Counts entries that went to the log instead.
    pub telemetry: Arc<dyn Telemetry>,
}

/// Why a trail could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Not an admin of an onboarded tenant (`FORBIDDEN`, 403).
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    /// The store failed (`SERVICE_UNAVAILABLE`, 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A page request: newest first, before `before`, only `action` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Entries per page (1 to [`AuditQuery::MAX_LIMIT`]).
    pub limit: usize,
    /// The previous page's `next`.
    pub before: Option<AuditCursor>,
    /// Only this action.
    pub action: Option<AuditAction>,
}

impl AuditQuery {
    /// Default page size.
    pub const DEFAULT_LIMIT: usize = 50;
    /// Largest page size.
    pub const MAX_LIMIT: usize = 100;
}

/// A page of a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Where the next page starts; `None` at the end of the trail.
    pub next: Option<AuditCursor>,
}

enum Job {
    Write { scope: AuditScope, entry: String },
    Flush(oneshot::Sender<()>),
}

struct Shared {
    ports: AuditPorts,
    key: AuditKey,
    settings: AuditSettings,
}

impl Shared {
    /// The entry goes to the log (`audit=true`) instead of the trail, and is counted.
    fn fallback(&self, scope: AuditScope, entry: &str, reason: &'static str) {
        let tenant_id = match scope {
            AuditScope::Tenant(t) => Some(t.to_string()),
            AuditScope::Platform => None,
        };
        tracing::warn!(
            audit = true,
            reason,
            tenant_id,
            entry,
            "audit entry not stored in the trail; kept in this log line instead"
        );
        self.ports.telemetry.audit_fallback(reason);
    }
}

/// Records audit events and reads the trails (see the module docs).
pub struct Auditor {
    queue: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// The auditor, with its writer task spawned on the current Tokio runtime.
    pub fn start(ports: AuditPorts, key: AuditKey, settings: AuditSettings) -> Arc<Self> {
        let (queue, jobs) = mpsc::channel(settings.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            ports,
            key,
            settings,
        });
        let writer = Writer {
            jobs,
            shared: shared.clone(),
            heads: HashMap::new(),
        };
        tokio::spawn(writer.run());
        Arc::new(Self { queue, shared })
    }

    /// Records an event: queued for the writer, never waited for. A full queue (or a stopped
    /// writer) sends the entry to the log instead.
    pub fn record(&self, event: AuditEvent) {
        let ports = &self.shared.ports;
        let entry = event.into_entry(ports.random.uuid(), ports.clock.now());
        let scope = entry.scope();
        let entry = match serde_json::to_string(&entry) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(audit = true, error = %e, action = entry.action.as_str(), "audit entry not encodable");
                ports.telemetry.audit_fallback("unencodable");
                return;
            }
        };
        match self.queue.try_send(Job::Write { scope, entry }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Job::Write { scope, entry })) => {
                self.shared.fallback(scope, &entry, "queue_full");
            }
            Err(mpsc::error::TrySendError::Closed(Job::Write { scope, entry })) => {
                self.shared.fallback(scope, &entry, "writer_stopped");
            }
            Err(_) => {}
        }
    }

    /// Waits until every entry recorded so far on this instance has been written (or logged).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Job::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// The trail this admin may read: their tenant's. This instance's queued entries are
    /// written first (for at most a moment), so a read sees what was just done.
    async fn readable(&self, current: &CurrentSession) -> Result<AuditScope, AuditError> {
        let tenant = current
            .authorize(Capability::ReadAudit)?
            .ok_or(AccessDenied::OnboardingIncomplete)?;
        let _ = tokio::time::timeout(FLUSH_WAIT, self.flush()).await;
        Ok(AuditScope::Tenant(tenant))
    }

    /// A page of the admin's tenant's trail, newest first.
    pub async fn page(
        &self,
        current: &CurrentSession,
        query: AuditQuery,
    ) -> Result<AuditPage, AuditError> {
        let scope = self.readable(current).await?;
        let log = &self.shared.ports.log;
        let limit = query.limit.clamp(1, AuditQuery::MAX_LIMIT);
        let mut entries = Vec::new();
        let mut cursor = query.before;
        let mut scanned = 0;
        loop {
            let want = if query.action.is_some() {
                BATCH
            } else {
                limit - entries.len()
            };
            let batch = log.newest(scope, cursor.clone(), want).await?;
            let exhausted = batch.len() < want;
            for stored in batch {
                scanned += 1;
                cursor = Some(stored.cursor.clone());
                let entry = match serde_json::from_str::<AuditEntry>(&stored.record.entry) {
                    Ok(e) => e,
                    Err(_) => {
                        tracing::warn!(cursor = %stored.cursor.0, "unreadable audit entry skipped (verify reports it)");
                        continue;
                    }
                };
                if query.action.is_none_or(|a| a == entry.action) {
                    entries.push(entry);
                    if entries.len() == limit {
                        return Ok(AuditPage {
                            entries,
                            next: cursor,
                        });
                    }
                }
            }
            if exhausted {
                return Ok(AuditPage {
                    entries,
                    next: None,
                });
            }
            if scanned >= SCAN_LIMIT {
                return Ok(AuditPage {
                    entries,
                    next: cursor,
                });
            }
        }
    }

    /// Checks the admin's tenant's trail from its anchor to its newest entry.
    pub async fn verify(&self, current: &CurrentSession) -> Result<Verification, AuditError> {
        let scope = self.readable(current).await?;
        self.verify_scope(scope).await
    }

    /// Checks one trail.
    pub async fn verify_scope(&self, scope: AuditScope) -> Result<Verification, AuditError> {
        let log = &self.shared.ports.log;
        let (anchor, mut batch) = self.consistent_start(scope).await?;
        let mut check = ChainCheck::new(&self.shared.key, anchor);
        loop {
            for stored in &batch {
                check.check(stored);
            }
            match batch.last() {
                Some(last) if batch.len() == BATCH => {
                    let after = Some(last.cursor.clone());
                    batch = log.oldest(scope, after, BATCH).await?;
                }
                _ => return Ok(check.result),
            }
        }
    }

    /// The anchor and the first entries, read so that they belong together: an append
    /// between the two reads may drop the oldest entry (retention) and move the anchor, which
    /// would look like a missing entry. Read again (a few times) until the oldest entry
    /// chains to the anchor; a mismatch that stays is reported by the check.
    async fn consistent_start(
        &self,
        scope: AuditScope,
    ) -> Result<(String, Vec<crate::ports::stores::StoredAudit>), AuditError> {
        let log = &self.shared.ports.log;
        let mut attempts = 3;
        loop {
            let batch = log.oldest(scope, None, BATCH).await?;
            let anchor = log.anchor(scope).await?;
            attempts -= 1;
            let chains = batch
                .first()
                .is_none_or(|first| first.record.prev == anchor);
            if chains || attempts == 0 {
                return Ok((anchor, batch));
            }
        }
    }
}

/// The instance's one writer: appends queued entries in order, each signed against its
/// trail's head.
struct Writer {
    jobs: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    /// The last HMAC this writer appended (or was told is the head) per trail: usually the
    /// head, so an append is one round trip; when another instance appended meanwhile, the
    /// store refuses and says the head.
    heads: HashMap<AuditScope, String>,
}

impl Writer {
    async fn run(mut self) {
        while let Some(job) = self.jobs.recv().await {
            match job {
                Job::Write { scope, entry } => self.write(scope, entry).await,
                Job::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    async fn write(&mut self, scope: AuditScope, entry: String) {
        let shared = self.shared.clone();
        let mut prev = self.heads.get(&scope).cloned().unwrap_or_default();
        let deadline = tokio::time::Instant::now() + CONTENTION_DEADLINE;
        loop {
            let record = AuditRecord {
                hmac: shared.key.sign(&prev, &entry),
                entry: entry.clone(),
                prev,
            };
            match shared
                .ports
                .log
                .append(scope, &record, shared.settings.retention)
                .await
            {
                Ok(AppendOutcome::Appended(_)) => {
                    if self.heads.len() >= 10_000 {
                        self.heads.clear();
                    }
                    self.heads.insert(scope, record.hmac);
                    return;
                }
                // Another writer appended first: sign the same content against its entry.
                Ok(AppendOutcome::Conflict { head }) => {
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    prev = head;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "audit store unavailable");
                    self.heads.remove(&scope);
                    shared.fallback(scope, &entry, "store_unavailable");
                    return;
                }
            }
        }
        self.heads.remove(&scope);
        shared.fallback(scope, &entry, "contention");
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::ports::stores::MockAuditLog;
    use crate::ports::system::{NoopTelemetry, SystemClock};

    struct Counter(std::sync::atomic::AtomicU64);

    impl Random for Counter {
        fn fill(&self, buf: &mut [u8]) {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (b, n) in buf.iter_mut().zip(n.to_le_bytes().iter().cycle()) {
                *b = *n;
            }
        }
    }

    /// A signed-in session of `user` with `role` (no tenant), for unit tests.
    pub(crate) fn signed_in(user: &str, role: crate::model::Role) -> CurrentSession {
        let t0 = time::OffsetDateTime::UNIX_EPOCH;
        CurrentSession::new(
            crate::model::SessionKey::from_hex("0".repeat(64)),
            crate::model::Session {
                user_id: crate::model::UserId::parse(user).expect("a valid user ID"),
                tenant_id: None,
                role,
                email: crate::model::Email::parse("user@example.com").expect("an address"),
                name: user.into(),
                onboarding_only: false,
                created_at: t0,
                expires_at: t0,
                last_activity: t0,
                refresh_token: None,
                refreshed_at: None,
                client: Default::default(),
            },
        )
    }

    /// An auditor for unit tests that do not look at the trail (needs a Tokio runtime).
    pub(crate) fn discarding() -> Arc<Auditor> {
        // A trail that takes every entry and keeps none.
        let mut log = MockAuditLog::new();
        log.expect_append()
            .returning(|_, _, _| Ok(AppendOutcome::Appended(AuditCursor("0-0".into()))));
        Auditor::start(
            AuditPorts {
                log: Arc::new(log),
                clock: Arc::new(SystemClock),
                random: Arc::new(Counter(0.into())),
                telemetry: Arc::new(NoopTelemetry),
            },
            AuditKey::new(b"unit-test-audit-key-unit-test-32"),
            AuditSettings::default(),
        )
    }
}
