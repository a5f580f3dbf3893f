//! The chain: each entry's HMAC-SHA256 covers the previous entry's HMAC and its own content,
//! so an altered, removed or reordered entry breaks it; and checking a trail against it.

use crate::crypto::constant_time_eq;
use crate::ports::stores::{AuditCursor, StoredAudit};
use ring::hmac;

/// Domain separation of the chain's MAC input.
const CHAIN_PURPOSE: &[u8] = b"portal-audit-v1";

/// The `AUDIT_HMAC_KEY`. Held by the process only: the store sees HMACs, never the key.
#[derive(Clone)]
pub struct AuditKey(hmac::Key);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}

impl AuditKey {
    /// A key from secret material (at least 32 bytes).
    pub fn new(material: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, material))
    }

    /// Hex HMAC-SHA256 of `purpose ‖ 0 ‖ prev ‖ 0 ‖ entry`.
    pub(crate) fn sign(&self, prev: &str, entry: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(CHAIN_PURPOSE);
        ctx.update(&[0]);
        ctx.update(prev.as_bytes());
        ctx.update(&[0]);
        ctx.update(entry.as_bytes());
        hex::encode(ctx.sign().as_ref())
    }
}

/// Why an entry breaks the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakReason {
    /// Its content no longer matches its HMAC: the entry was altered.
    Altered,
    /// It chains to an HMAC that is not the previous entry's: an entry before it was
    /// removed or reordered (or, for the first kept entry, the anchor does not match).
    Missing,
}

impl BreakReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakReason::Altered => "altered",
            BreakReason::Missing => "previous_entry_missing",
        }
    }
}

/// The first entry that breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// Where it is.
    pub cursor: AuditCursor,
    /// Its ID, when its content still reads as an entry.
    pub entry_id: Option<uuid::Uuid>,
    /// Why it breaks the chain.
    pub reason: BreakReason,
}

/// What checking a trail found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Entries checked.
    pub checked: u64,
    /// Entries that break the chain.
    pub broken: u64,
    /// The first of them.
    pub first_break: Option<ChainBreak>,
}

impl Verification {
    /// No entry breaks the chain.
    pub fn is_valid(&self) -> bool {
        self.broken == 0
    }
}

/// Checks entries in order, from the HMAC the first one must chain to. Each entry is judged on
/// its own (against the stored HMAC of the one before), so one altered entry is one break.
#[derive(Debug)]
pub(crate) struct ChainCheck<'k> {
    key: &'k AuditKey,
    prev: String,
    pub(crate) result: Verification,
}

impl<'k> ChainCheck<'k> {
    pub(crate) fn new(key: &'k AuditKey, anchor: String) -> Self {
        Self {
            key,
            prev: anchor,
            result: Verification {
                checked: 0,
                broken: 0,
                first_break: None,
            },
        }
    }

    pub(crate) fn check(&mut self, stored: &StoredAudit) {
        let record = &stored.record;
        self.result.checked += 1;
        let reason = if !constant_time_eq(record.prev.as_bytes(), self.prev.as_bytes()) {
            Some(BreakReason::Missing)
        } else if !constant_time_eq(
            self.key.sign(&record.prev, &record.entry).as_bytes(),
            record.hmac.as_bytes(),
        ) {
            Some(BreakReason::Altered)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.result.broken += 1;
            if self.result.first_break.is_none() {
                let entry_id = serde_json::from_str::<super::AuditEntry>(&record.entry)
                    .ok()
                    .map(|e| e.id);
                self.result.first_break = Some(ChainBreak {
                    cursor: stored.cursor.clone(),
                    entry_id,
                    reason,
                });
            }
        }
        self.prev = record.hmac.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::stores::AuditRecord;

    fn chain(key: &AuditKey, entries: &[&str]) -> Vec<StoredAudit> {
        let mut prev = String::new();
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let hmac = key.sign(&prev, e);
                StoredAudit {
                    cursor: AuditCursor(format!("{i}-0")),
                    record: AuditRecord {
                        entry: (*e).to_owned(),
                        hmac: hmac.clone(),
                        prev: std::mem::replace(&mut prev, hmac),
                    },
                }
            })
            .collect()
    }

    fn verify(key: &AuditKey, entries: &[StoredAudit]) -> Verification {
        let mut check = ChainCheck::new(key, String::new());
        for e in entries {
            check.check(e);
        }
        check.result
    }

    #[test]
    fn an_intact_chain_verifies_and_another_key_does_not() {
        let key = AuditKey::new(b"audit-key-audit-key-audit-key-32");
        let entries = chain(&key, &["a", "b", "c"]);
        assert!(verify(&key, &entries).is_valid());
        let other = AuditKey::new(b"other-key-other-key-other-key-32");
        assert_eq!(verify(&other, &entries).broken, 3);
    }

    #[test]
    fn an_altered_entry_is_one_break_and_a_removed_one_breaks_its_successor() {
        let key = AuditKey::new(b"audit-key-audit-key-audit-key-32");
        let mut altered = chain(&key, &["a", "b", "c", "d"]);
        altered[1].record.entry = "B".into();
        let v = verify(&key, &altered);
        assert_eq!(v.broken, 1);
        let first = v.first_break.unwrap();
        assert_eq!(first.cursor, AuditCursor("1-0".into()));
        assert_eq!(first.reason, BreakReason::Altered);

        let mut removed = chain(&key, &["a", "b", "c", "d"]);
        removed.remove(2);
        let v = verify(&key, &removed);
        assert_eq!(v.broken, 1);
        let first = v.first_break.unwrap();
        assert_eq!(first.cursor, AuditCursor("3-0".into()));
        assert_eq!(first.reason, BreakReason::Missing);
    }
}
