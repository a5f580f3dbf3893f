//! The simulated State Manager: conversation lists, histories, and metrics **computed from the
//! stored messages** (so the dashboard, the history and the widget's sends always agree).
//!
//! Metric rules, for a tenant and a time window:
//! - `totalMessages`: outbound messages in the window (the ones with a delivery funnel; counting
//!   inbound ones would make `delivered / total` meaningless);
//! - `sent`: of those, the ones WhatsApp accepted (`sent`, `delivered` or `read`);
//!   `delivered`: `delivered` or `read`; `read`: `read`; `failed`: `failed`. So
//!   `read <= delivered <= sent` and `sent + failed + queued == totalMessages`;
//! - `activeConversations`: active conversations with a message (either way) in the window;
//! - `distinctWaIds`: distinct customers with a message (either way) in the window.
//!
//! Windows: `today` since midnight UTC, `week` the last 7 days, `month` the last 30 days (all up
//! to now); a date range covers its days from 00:00 UTC of the first to the end of the last.

use crate::demo::DemoConversation;
use crate::platform::SimState;
use async_trait::async_trait;
use portal_domain::model::{
    Conversation, ConversationId, ConversationPage, ConversationQuery, ConversationStatus,
    ConversationSummary, DateRange, Direction, Message, MessageStatus, Period, RawMetrics,
    TenantId,
};
use portal_domain::ports::downstream::{StateManager, StateManagerError};
use std::collections::HashSet;
use std::sync::Arc;
use time::{Duration, OffsetDateTime, Time, UtcOffset};

/// The simulated State Manager.
#[derive(Debug, Clone)]
pub(crate) struct SimStateManager {
    state: Arc<SimState>,
}

impl SimStateManager {
    /// Over the shared state.
    pub(crate) fn new(state: Arc<SimState>) -> Self {
        Self { state }
    }

    fn metrics_between(
        &self,
        tenant: TenantId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> RawMetrics {
        let inner = self.state.lock();
        compute_metrics(
            inner
                .conversations
                .values()
                .filter(|c| c.conversation.tenant_id == tenant),
            from,
            to,
        )
    }
}

/// The `[from, to)` window of a period ending at `now`.
pub(crate) fn period_window(
    period: Period,
    now: OffsetDateTime,
) -> (OffsetDateTime, OffsetDateTime) {
    let now = now.to_offset(UtcOffset::UTC);
    // `to` is exclusive: a message stamped exactly `now` counts.
    let to = now + Duration::nanoseconds(1);
    let from = match period {
        Period::Today => now.replace_time(Time::MIDNIGHT),
        Period::Week => now - Duration::days(7),
        Period::Month => now - Duration::days(30),
    };
    (from, to)
}

/// The `[from, to)` window of a range of calendar days (UTC).
pub(crate) fn range_window(range: DateRange) -> (OffsetDateTime, OffsetDateTime) {
    let from = range.start().midnight().assume_utc();
    let to = range.end().midnight().assume_utc() + Duration::days(1);
    (from, to)
}

/// Metrics of `conversations` over `[from, to)` (module docs give the rules).
pub(crate) fn compute_metrics<'a>(
    conversations: impl Iterator<Item = &'a DemoConversation>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> RawMetrics {
    let mut m = RawMetrics::default();
    let mut customers = HashSet::new();
    for c in conversations {
        let mut touched = false;
        for msg in c
            .messages
            .iter()
            .filter(|msg| msg.timestamp >= from && msg.timestamp < to)
        {
            touched = true;
            if msg.direction != Direction::Outbound {
                continue;
            }
            m.total_messages += 1;
            match msg.status {
                MessageStatus::Read => {
                    m.sent += 1;
                    m.delivered += 1;
                    m.read += 1;
                }
                MessageStatus::Delivered => {
                    m.sent += 1;
                    m.delivered += 1;
                }
                MessageStatus::Sent => m.sent += 1,
                MessageStatus::Failed => m.failed += 1,
                MessageStatus::Queued | MessageStatus::Received => {}
            }
        }
        if touched {
            customers.insert(c.conversation.wa_id.as_str());
            if c.conversation.status == ConversationStatus::Active {
                m.active_conversations += 1;
            }
        }
    }
    m.distinct_wa_ids = customers.len() as u64;
    m
}

#[async_trait]
impl StateManager for SimStateManager {
    async fn conversations(
        &self,
        tenant: TenantId,
        query: ConversationQuery,
    ) -> Result<ConversationPage, StateManagerError> {
        let page = query.page.max(1);
        let limit = query.limit.clamp(1, ConversationQuery::MAX_LIMIT);
        let inner = self.state.lock();
        let mut rows: Vec<&DemoConversation> = inner
            .conversations
            .values()
            .filter(|c| c.conversation.tenant_id == tenant)
            .filter(|c| query.status.is_none_or(|s| c.conversation.status == s))
            .collect();
        rows.sort_by(|a, b| {
            b.conversation
                .last_activity
                .cmp(&a.conversation.last_activity)
                .then(a.conversation.id.cmp(&b.conversation.id))
        });
        let total = rows.len() as u64;
        let skip = (page as usize - 1).saturating_mul(limit as usize);
        let data = rows
            .into_iter()
            .skip(skip)
            .take(limit as usize)
            .map(|c| ConversationSummary {
                wa_id: c.conversation.wa_id.clone(),
                conversation_id: c.conversation.id,
                last_activity: c.conversation.last_activity,
                status: c.conversation.status,
                message_count: c.messages.len() as u64,
            })
            .collect();
        Ok(ConversationPage {
            data,
            page,
            limit,
            total,
        })
    }

    async fn conversation(&self, id: ConversationId) -> Result<Conversation, StateManagerError> {
        self.state
            .lock()
            .conversations
            .get(&id)
            .map(|c| c.conversation.clone())
            .ok_or(StateManagerError::NotFound)
    }

    async fn messages(&self, id: ConversationId) -> Result<Vec<Message>, StateManagerError> {
        let mut messages = self
            .state
            .lock()
            .conversations
            .get(&id)
            .map(|c| c.messages.clone())
            .ok_or(StateManagerError::NotFound)?;
        messages.sort_by_key(|m| m.timestamp);
        Ok(messages)
    }

    async fn metrics(
        &self,
        tenant: TenantId,
        period: Period,
    ) -> Result<RawMetrics, StateManagerError> {
        let (from, to) = period_window(period, self.state.now());
        Ok(self.metrics_between(tenant, from, to))
    }

    async fn metrics_range(
        &self,
        tenant: TenantId,
        range: DateRange,
    ) -> Result<RawMetrics, StateManagerError> {
        let (from, to) = range_window(range);
        Ok(self.metrics_between(tenant, from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{ACME_CONVERSATIONS, acme_tenant_id, globex_tenant_id};
    use crate::test_support::{demo_start, platform_at};
    use portal_domain::ports::system::Clock;

    fn query(page: u32, limit: u32, status: Option<ConversationStatus>) -> ConversationQuery {
        ConversationQuery {
            page,
            limit,
            status,
        }
    }

    #[tokio::test]
    async fn metrics_are_consistent_with_the_messages_and_nest_by_period() {
        let (platform, clock) = platform_at(demo_start());
        let sm = platform.state_manager();
        for tenant in [acme_tenant_id(), globex_tenant_id()] {
            let today = sm.metrics(tenant, Period::Today).await.unwrap();
            let week = sm.metrics(tenant, Period::Week).await.unwrap();
            let month = sm.metrics(tenant, Period::Month).await.unwrap();
            assert!(today.total_messages > 0, "demo traffic today");
            for m in [today, week, month] {
                assert!(m.read <= m.delivered && m.delivered <= m.sent);
                assert_eq!(
                    m.sent + m.failed,
                    m.total_messages,
                    "nothing queued in demo data"
                );
                assert!(m.active_conversations <= m.distinct_wa_ids.max(m.active_conversations));
            }
            for (small, big) in [(today, week), (week, month)] {
                assert!(small.total_messages <= big.total_messages);
                assert!(small.delivered <= big.delivered);
                assert!(small.distinct_wa_ids <= big.distinct_wa_ids);
                assert!(small.active_conversations <= big.active_conversations);
            }

            // The month's outbound total equals what the histories show.
            let mut outbound = 0;
            let mut read = 0;
            let page = sm.conversations(tenant, query(1, 100, None)).await.unwrap();
            for row in &page.data {
                for m in sm.messages(row.conversation_id).await.unwrap() {
                    if m.direction == Direction::Outbound {
                        outbound += 1;
                        read += u64::from(m.status == MessageStatus::Read);
                    }
                }
            }
            assert_eq!(month.total_messages, outbound);
            assert_eq!(month.read, read);

            // A date range over the whole period agrees with `month` when nothing falls on
            // the partial first day.
            let today_date = clock.now().date();
            let range =
                DateRange::new(today_date - Duration::days(40), today_date, today_date).unwrap();
            assert_eq!(sm.metrics_range(tenant, range).await.unwrap(), month);
            let just_today = DateRange::new(today_date, today_date, today_date).unwrap();
            assert_eq!(sm.metrics_range(tenant, just_today).await.unwrap(), today);
        }
    }

    #[tokio::test]
    async fn listing_a_tenant_never_returns_another_tenants_conversations() {
        let (platform, _) = platform_at(demo_start());
        let sm = platform.state_manager();
        let acme = sm
            .conversations(acme_tenant_id(), query(1, 100, None))
            .await
            .unwrap();
        let globex = sm
            .conversations(globex_tenant_id(), query(1, 100, None))
            .await
            .unwrap();
        for row in &acme.data {
            let c = sm.conversation(row.conversation_id).await.unwrap();
            assert_eq!(c.tenant_id, acme_tenant_id());
            assert!(
                !globex
                    .data
                    .iter()
                    .any(|g| g.conversation_id == row.conversation_id)
            );
        }
        let nobody = sm
            .conversations(TenantId::new_random(), query(1, 20, None))
            .await
            .unwrap();
        assert_eq!((nobody.total, nobody.data.len()), (0, 0));
    }

    #[tokio::test]
    async fn pagination_reports_totals_and_pages_do_not_overlap() {
        let (platform, _) = platform_at(demo_start());
        let sm = platform.state_manager();
        let tenant = acme_tenant_id();
        let p1 = sm.conversations(tenant, query(1, 20, None)).await.unwrap();
        let p2 = sm.conversations(tenant, query(2, 20, None)).await.unwrap();
        let p3 = sm.conversations(tenant, query(3, 20, None)).await.unwrap();
        assert_eq!(p1.total, ACME_CONVERSATIONS as u64);
        assert_eq!(p1.total_pages(), 3);
        assert_eq!(
            (p1.data.len(), p2.data.len(), p3.data.len()),
            (20, 20, ACME_CONVERSATIONS - 40)
        );
        assert!(p1.has_next() && p2.has_next() && !p3.has_next());
        let mut ids: Vec<_> = [&p1, &p2, &p3]
            .iter()
            .flat_map(|p| p.data.iter().map(|r| r.conversation_id))
            .collect();
        assert!(
            p1.data
                .windows(2)
                .all(|w| w[0].last_activity >= w[1].last_activity),
            "most recent first"
        );
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), ACME_CONVERSATIONS);

        let active = sm
            .conversations(tenant, query(1, 100, Some(ConversationStatus::Active)))
            .await
            .unwrap();
        let closed = sm
            .conversations(tenant, query(1, 100, Some(ConversationStatus::Closed)))
            .await
            .unwrap();
        assert!(active.total > 0 && closed.total > 0);
        assert_eq!(active.total + closed.total, p1.total);
        assert!(
            active
                .data
                .iter()
                .all(|r| r.status == ConversationStatus::Active)
        );
        let beyond = sm.conversations(tenant, query(9, 20, None)).await.unwrap();
        assert_eq!((beyond.total, beyond.data.len()), (p1.total, 0));
    }

    #[tokio::test]
    async fn unknown_conversations_are_not_found() {
        let (platform, _) = platform_at(demo_start());
        let sm = platform.state_manager();
        let id = ConversationId::new_random();
        assert_eq!(
            sm.conversation(id).await.unwrap_err(),
            StateManagerError::NotFound
        );
        assert_eq!(
            sm.messages(id).await.unwrap_err(),
            StateManagerError::NotFound
        );
    }
}
