//! Audit trails in memory: one list per scope, positions `<n>-0` in append order.

use crate::lock;
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::ports::stores::{
    AppendOutcome, AuditCursor, AuditLog, AuditRecord, AuditRetention, AuditScope, StoredAudit,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Trail {
    /// (position, appended at, record), oldest first.
    entries: VecDeque<(u64, Instant, AuditRecord)>,
    /// The next position.
    next: u64,
    /// The HMAC of the last entry dropped by the retention.
    anchor: String,
}

impl Trail {
    fn head(&self) -> &str {
        self.entries
            .back()
            .map_or(self.anchor.as_str(), |(_, _, r)| r.hmac.as_str())
    }

    fn retain(&mut self, retention: AuditRetention, now: Instant) {
        while let Some((_, at, _)) = self.entries.front() {
            let too_many = self.entries.len() > retention.max_entries.max(1);
            let too_old = now.duration_since(*at) > retention.max_age;
            if !(too_many || too_old) {
                break;
            }
            if let Some((_, _, dropped)) = self.entries.pop_front() {
                self.anchor = dropped.hmac;
            }
        }
    }
}

fn cursor(position: u64) -> AuditCursor {
    AuditCursor(format!("{position}-0"))
}

fn position(cursor: &AuditCursor) -> Result<u64, StoreError> {
    cursor
        .0
        .split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::Corrupt("audit cursor".into()))
}

fn stored(entry: &(u64, Instant, AuditRecord)) -> StoredAudit {
    StoredAudit {
        cursor: cursor(entry.0),
        record: entry.2.clone(),
    }
}

/// [`AuditLog`] in memory.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    trails: Mutex<HashMap<AuditScope, Trail>>,
}

impl MemoryAuditLog {
    /// No trail yet.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn append(
        &self,
        scope: AuditScope,
        record: &AuditRecord,
        retention: AuditRetention,
    ) -> Result<AppendOutcome, StoreError> {
        let now = Instant::now();
        let mut trails = lock(&self.trails);
        let trail = trails.entry(scope).or_default();
        if trail.head() != record.prev {
            return Ok(AppendOutcome::Conflict {
                head: trail.head().to_owned(),
            });
        }
        let position = trail.next;
        trail.next += 1;
        trail.entries.push_back((position, now, record.clone()));
        trail.retain(retention, now);
        Ok(AppendOutcome::Appended(cursor(position)))
    }

    async fn newest(
        &self,
        scope: AuditScope,
        before: Option<AuditCursor>,
        count: usize,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        let before = before.as_ref().map(position).transpose()?;
        let trails = lock(&self.trails);
        Ok(trails.get(&scope).map_or_else(Vec::new, |t| {
            t.entries
                .iter()
                .rev()
                .filter(|(p, _, _)| before.is_none_or(|b| *p < b))
                .take(count)
                .map(stored)
                .collect()
        }))
    }

    async fn oldest(
        &self,
        scope: AuditScope,
        after: Option<AuditCursor>,
        count: usize,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        let after = after.as_ref().map(position).transpose()?;
        let trails = lock(&self.trails);
        Ok(trails.get(&scope).map_or_else(Vec::new, |t| {
            t.entries
                .iter()
                .filter(|(p, _, _)| after.is_none_or(|a| *p > a))
                .take(count)
                .map(stored)
                .collect()
        }))
    }

    async fn anchor(&self, scope: AuditScope) -> Result<String, StoreError> {
        Ok(lock(&self.trails)
            .get(&scope)
            .map(|t| t.anchor.clone())
            .unwrap_or_default())
    }
}
