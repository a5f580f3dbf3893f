//! Recovering the events a reconnecting socket missed, at a cost that does not grow with the
//! number of sockets reconnecting.
//!
//! A socket asks for the events after `since`. The instance keeps one **entry** per
//! (tenant, `since`): the history read once (single flight: sockets asking while it is in
//! flight wait for it), then kept up to date with every event the instance delivers to the
//! tenant afterwards (events delivered while the read is in flight are collected and merged,
//! without duplicates). An entry is a complete list of the events after `since` up to the
//! moment it is looked at, so a socket that registered for live events *before* looking has
//! no gap: what the entry lacks, its queue has (the socket drops the overlap by ID).
//!
//! After a deploy, the sockets of a tenant come back with one or a few distinct `since`
//! positions over some seconds (their reconnect delays are spread on purpose): each position
//! costs one history read per instance, however many sockets ask and however spread out they
//! are, as long as they come within [`IDLE`] of each other.
//!
//! Honest answers: a position the history no longer has (trimmed or expired), never had, or
//! that more events than the history keeps have passed, is [`Replay::Gap`]; so is any position
//! before an event the instance could not record (the history was unavailable), and a read
//! that failed.

use super::frame::LiveEvent;
use crate::model::{EventId, TenantId};
use crate::ports::realtime::{EventHistory, Since};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// An entry nobody asked for this long is dropped.
pub(crate) const IDLE: Duration = Duration::from_secs(60);
/// How long a failed read's answer (a gap) stands before the next socket reads again.
const RETRY_FAILED: Duration = Duration::from_secs(2);
/// Entries kept at most (beyond it, a request reads the history for itself).
const MAX_ENTRIES: usize = 4096;

/// What a socket recovers.
#[derive(Debug, Clone)]
pub enum Replay {
    /// Every event after the position, in order (possibly none).
    Events(Vec<Arc<LiveEvent>>),
    /// The events after the position cannot all be given: reload from the source of truth.
    Gap,
}

enum State {
    /// The history read is in flight; events delivered meanwhile.
    Reading {
        collected: Vec<Arc<LiveEvent>>,
        done: watch::Sender<bool>,
    },
    Ready(Vec<Arc<LiveEvent>>),
    Gap,
    /// The read failed at this time: answered as a gap, then dropped after [`RETRY_FAILED`]
    /// so a later socket reads again.
    Failed(Instant),
}

struct Entry {
    state: State,
    used: Instant,
}

/// What looking up an entry gave.
enum Look {
    Found(Replay),
    Wait(watch::Receiver<bool>),
    Full,
}

/// Whether a tenant's history misses an event this instance delivered.
#[derive(Debug, Clone, Copy)]
enum Hole {
    /// An event could not be recorded and none has been since: every position is a gap.
    Open,
    /// Positions before this ID are gaps.
    Before(EventId),
}

#[derive(Default)]
struct Inner {
    by_tenant: HashMap<TenantId, HashMap<EventId, Entry>>,
    entries: usize,
    holes: HashMap<TenantId, Hole>,
    pruned: Option<Instant>,
}

/// The instance's replay entries.
pub(crate) struct Replays {
    inner: Mutex<Inner>,
    /// The most events a replay gives (the history's length): beyond it, a gap.
    limit: u32,
    /// History reads made (for `/metrics`-like counters and tests).
    pub(crate) reads: AtomicU64,
}

impl std::fmt::Debug for Replays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replays")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Replays {
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limit,
            reads: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An event was delivered to the tenant's sockets: the entries of the tenant get it.
    pub(crate) fn delivered(&self, tenant: TenantId, event: &Arc<LiveEvent>) {
        let mut inner = self.lock();
        let Some(entries) = inner.by_tenant.get_mut(&tenant) else {
            return;
        };
        let limit = self.limit as usize;
        for entry in entries.values_mut() {
            match &mut entry.state {
                State::Reading { collected, .. } => collected.push(event.clone()),
                State::Ready(events) if events.len() >= limit => entry.state = State::Gap,
                State::Ready(events) => events.push(event.clone()),
                State::Gap | State::Failed(_) => {}
            }
        }
    }

    /// The history could not record an event of the tenant: no position before it can be
    /// recovered here.
    pub(crate) fn hole(&self, tenant: TenantId) {
        let mut inner = self.lock();
        inner.holes.insert(tenant, Hole::Open);
        if let Some(entries) = inner.by_tenant.remove(&tenant) {
            inner.entries -= entries.len();
            for entry in entries.into_values() {
                if let State::Reading { done, .. } = entry.state {
                    let _ = done.send(true);
                }
            }
        }
    }

    /// The history recorded an event of the tenant at `id`.
    pub(crate) fn recorded(&self, tenant: TenantId, id: EventId) {
        let mut inner = self.lock();
        if let Some(hole @ Hole::Open) = inner.holes.get_mut(&tenant) {
            *hole = Hole::Before(id);
        }
    }

    fn is_hole(inner: &Inner, tenant: TenantId, since: EventId) -> bool {
        match inner.holes.get(&tenant) {
            Some(Hole::Open) => true,
            Some(Hole::Before(id)) => since < *id,
            None => false,
        }
    }

    fn prune(inner: &mut Inner, now: Instant) {
        if inner
            .pruned
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        inner.pruned = Some(now);
        let mut dropped = 0;
        inner.by_tenant.retain(|_, entries| {
            entries.retain(|_, e| {
                let keep = match e.state {
                    State::Reading { .. } => true,
                    State::Failed(at) => now.duration_since(at) < RETRY_FAILED,
                    _ => now.duration_since(e.used) < IDLE,
                };
                dropped += usize::from(!keep);
                keep
            });
            !entries.is_empty()
        });
        inner.entries -= dropped;
    }

    /// The events of `tenant` after `since`, reading `history` at most once per position
    /// (however many sockets ask at once).
    pub(crate) async fn replay(
        self: &Arc<Self>,
        history: &Arc<dyn EventHistory>,
        tenant: TenantId,
        since: EventId,
    ) -> Replay {
        loop {
            let mut waiting = match self.look(history, tenant, since) {
                Look::Found(replay) => return replay,
                Look::Wait(waiting) => waiting,
                Look::Full => {
                    return self
                        .read(history, tenant, since)
                        .await
                        .unwrap_or(Replay::Gap);
                }
            };
            // Filled (or dropped); look again.
            let _ = waiting.wait_for(|done| *done).await;
        }
    }

    /// The entry's answer, or what to wait for (starting the read when there is no entry).
    fn look(
        self: &Arc<Self>,
        history: &Arc<dyn EventHistory>,
        tenant: TenantId,
        since: EventId,
    ) -> Look {
        let mut inner = self.lock();
        let now = Instant::now();
        Self::prune(&mut inner, now);
        if Self::is_hole(&inner, tenant, since) {
            return Look::Found(Replay::Gap);
        }
        if let Some(entry) = inner
            .by_tenant
            .get_mut(&tenant)
            .and_then(|e| e.get_mut(&since))
        {
            entry.used = now;
            return match &entry.state {
                State::Ready(events) => Look::Found(Replay::Events(events.clone())),
                State::Gap | State::Failed(_) => Look::Found(Replay::Gap),
                State::Reading { done, .. } => Look::Wait(done.subscribe()),
            };
        }
        // Beyond the cap, the socket reads for itself: correct for it alone, since it
        // registered for live events before asking.
        if inner.entries >= MAX_ENTRIES {
            return Look::Full;
        }
        let (done, waiting) = watch::channel(false);
        inner.by_tenant.entry(tenant).or_default().insert(
            since,
            Entry {
                state: State::Reading {
                    collected: Vec::new(),
                    done,
                },
                used: now,
            },
        );
        inner.entries += 1;
        // The read runs on its own: a socket that goes away while waiting must not leave the
        // others waiting forever.
        tokio::spawn(self.clone().fill(history.clone(), tenant, since));
        Look::Wait(waiting)
    }

    /// Reads the history for an entry and makes it ready.
    async fn fill(
        self: Arc<Self>,
        history: Arc<dyn EventHistory>,
        tenant: TenantId,
        since: EventId,
    ) {
        let read = self.read(&history, tenant, since).await;
        let mut inner = self.lock();
        let Some(entry) = inner
            .by_tenant
            .get_mut(&tenant)
            .and_then(|e| e.get_mut(&since))
        else {
            return; // dropped meanwhile (a hole): its waiters were told.
        };
        let state = std::mem::replace(&mut entry.state, State::Gap);
        let State::Reading { collected, done } = state else {
            entry.state = state;
            return;
        };
        entry.state = match read {
            None => State::Failed(Instant::now()),
            Some(Replay::Events(mut events)) => {
                let seen: HashSet<EventId> = events.iter().filter_map(|e| e.id()).collect();
                events.extend(
                    collected
                        .into_iter()
                        .filter(|e| e.id().is_some_and(|id| id > since && !seen.contains(&id))),
                );
                if events.len() > self.limit as usize {
                    State::Gap
                } else {
                    State::Ready(events)
                }
            }
            Some(Replay::Gap) => State::Gap,
        };
        let _ = done.send(true);
    }

    /// One history read; `None` when it failed.
    async fn read(
        &self,
        history: &Arc<dyn EventHistory>,
        tenant: TenantId,
        since: EventId,
    ) -> Option<Replay> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        match history.since(tenant, since, self.limit).await {
            Ok(Since::Events(records)) => Some(Replay::Events(
                records
                    .into_iter()
                    .map(|r| Arc::new(LiveEvent::new(Some(r.id), r.event)))
                    .collect(),
            )),
            Ok(Since::Gap) => Some(Replay::Gap),
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, error = %e, "event history unavailable: recovery reports a gap");
                None
            }
        }
    }
}
