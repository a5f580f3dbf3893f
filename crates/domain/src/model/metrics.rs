//! Dashboard metrics (spec §7, §4.2.3).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::{Date, OffsetDateTime};

/// The dashboard's reporting period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Since midnight UTC.
    #[default]
    Today,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
}

impl Period {
    /// Every period.
    pub const ALL: [Period; 3] = [Period::Today, Period::Week, Period::Month];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Today => "today",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

impl FromStr for Period {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Period::ALL.into_iter().find(|p| p.as_str() == s).ok_or(())
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metrics as the State Manager reports them (spec §3.1.3 `getMetrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RawMetrics {
    /// All messages in the period.
    pub total_messages: u64,
    /// Accepted by WhatsApp.
    pub sent: u64,
    /// Delivered to the handset.
    pub delivered: u64,
    /// Read by the customer.
    pub read: u64,
    /// Failed.
    pub failed: u64,
    /// Conversations currently active.
    pub active_conversations: u64,
    /// Distinct customers (`wa_id`s).
    pub distinct_wa_ids: u64,
}

/// `delivered / total` as a percentage with one decimal, `"0.0"` when there is nothing.
pub fn success_rate(delivered: u64, total: u64) -> String {
    if total == 0 {
        return "0.0".to_owned();
    }
    // Integer arithmetic in tenths of a percent, rounded half up: no float formatting drift.
    let tenths = (delivered as u128 * 1000 * 2 + total as u128) / (total as u128 * 2);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// The dashboard figures, of a period or a date range (spec §7.2, §7.4), derived from the
/// State Manager's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// All messages.
    pub total_messages: u64,
    /// Accepted by WhatsApp.
    pub sent_count: u64,
    /// Delivered.
    pub delivered_count: u64,
    /// Read.
    pub read_count: u64,
    /// Failed.
    pub failed_count: u64,
    /// Delivered / total, one decimal.
    pub success_rate: String,
    /// Conversations currently active.
    pub active_conversations: u64,
    /// Distinct customers.
    pub unique_customers: u64,
}

impl From<&RawMetrics> for Figures {
    fn from(raw: &RawMetrics) -> Self {
        Self {
            total_messages: raw.total_messages,
            sent_count: raw.sent,
            delivered_count: raw.delivered,
            read_count: raw.read,
            failed_count: raw.failed,
            success_rate: success_rate(raw.delivered, raw.total_messages),
            active_conversations: raw.active_conversations,
            unique_customers: raw.distinct_wa_ids,
        }
    }
}

/// The dashboard's view of a period (spec §7.2 response): the figures, their period and when
/// they were fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardStats {
    /// The figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// The period these figures cover.
    pub period: Period,
    /// When the figures were fetched from the State Manager.
    #[serde(with = "time::serde::rfc3339")]
    pub last_updated: OffsetDateTime,
}

impl DashboardStats {
    /// Derives the dashboard figures from the State Manager's.
    pub(crate) fn from_raw(raw: &RawMetrics, period: Period, fetched_at: OffsetDateTime) -> Self {
        Self {
            figures: Figures::from(raw),
            period,
            last_updated: fetched_at,
        }
    }
}

/// Why a date range was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DateRangeError {
    /// `startDate` is after `endDate`.
    #[error("startDate must not be after endDate")]
    Inverted,
    /// More than `DateRange::MAX_DAYS` days.
    #[error("the range may cover at most {} days", DateRange::MAX_DAYS)]
    TooLong,
    /// `endDate` is in the future.
    #[error("dates may not be in the future")]
    InFuture,
}

/// An inclusive range of calendar days (UTC), at most 366 days, not in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DateRange {
    start: Date,
    end: Date,
}

impl DateRange {
    /// Longest range accepted, in days (inclusive count).
    pub(crate) const MAX_DAYS: i64 = 366;

    /// Validates a range against `today`.
    pub fn new(start: Date, end: Date, today: Date) -> Result<Self, DateRangeError> {
        if start > end {
            return Err(DateRangeError::Inverted);
        }
        if end > today {
            return Err(DateRangeError::InFuture);
        }
        if (end - start).whole_days() + 1 > Self::MAX_DAYS {
            return Err(DateRangeError::TooLong);
        }
        Ok(Self { start, end })
    }
    /// First day.
    pub fn start(&self) -> Date {
        self.start
    }
    /// Last day (inclusive).
    pub fn end(&self) -> Date {
        self.end
    }
    /// Number of days covered.
    pub fn days(&self) -> i64 {
        (self.end - self.start).whole_days() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn success_rate_has_one_decimal() {
        assert_eq!(success_rate(920, 1000), "92.0");
        assert_eq!(success_rate(925, 1000), "92.5");
        assert_eq!(success_rate(2, 3), "66.7");
        assert_eq!(success_rate(1, 3), "33.3");
        assert_eq!(success_rate(0, 0), "0.0");
        assert_eq!(success_rate(5, 5), "100.0");
    }

    #[test]
    fn date_range_rules() {
        let today = date!(2026 - 02 - 12);
        assert!(DateRange::new(date!(2026 - 02 - 01), date!(2026 - 02 - 12), today).is_ok());
        assert_eq!(
            DateRange::new(date!(2026 - 02 - 10), date!(2026 - 02 - 01), today),
            Err(DateRangeError::Inverted)
        );
        assert_eq!(
            DateRange::new(date!(2026 - 02 - 10), date!(2026 - 02 - 13), today),
            Err(DateRangeError::InFuture)
        );
        assert_eq!(
            DateRange::new(date!(2025 - 02 - 11), date!(2026 - 02 - 12), today),
            Err(DateRangeError::TooLong)
        );
        assert_eq!(
            DateRange::new(date!(2025 - 02 - 12), date!(2026 - 02 - 12), today)
                .unwrap()
                .days(),
            366
        );
    }
}
