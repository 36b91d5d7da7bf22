//! Group commit of entity writes on SQLite: concurrent requests of one organization share a
//! transaction.
//!
//! Every batch of entity writes costs about a dozen statements and a commit whatever its size
//! (`write.rs`): on SQLite each statement is a hand-off to the one writer connection's thread
//! and each commit writes the changed pages to the WAL. At Port's bulk size (20 entities per
//! request, what Ocean sends) that fixed cost is a large part of a request. So on SQLite a
//! write does not run in its caller: it joins a queue, and one group runs at a time (SQLite's
//! writer is one connection anyway). A group is the oldest waiting request and the requests of
//! the same organization and automation depth queued behind it, up to [`MAX_GROUP`] writes,
//! stopping at one that names an entity the group already writes (a batch names each entity
//! once; that request starts a later group). Requests that arrive while a group runs form the
//! next one: nothing waits for a timer, and a request that finds the writer free runs at once.
//! (Requests in the queue together were sent concurrently, so no order between them was
//! promised; of two naming one entity, one sees the other's write.)
//!
//! PostgreSQL writes in the caller, one transaction per request, as before: its connections
//! run concurrently, grouping measured no gain there (BENCHMARKS.md, "Group commit"), and a
//! queue would let one organization's writes waiting on locks hold up every other's.
//!
//! Each request is still answered with its own outcomes, audited with its own context, and a
//! rejection is its entity's own (the batch semantics of `write.rs`: a relation may name an
//! entity that another request of the group writes); the entity quota admits requests in order.
//! A group is one transaction: if it fails (the database is unavailable, or refuses a
//! statement), nothing of it is written and every request of it gets the error — a request's
//! writes are closures consumed by the attempt, so they cannot be retried alone. A group runs
//! in a task of its own, so a caller that goes away once its request is queued (a client that
//! disconnected, a job that lost its lease) does not cut the group's transaction short: a
//! write handed to the store is committed or not like everyone else's in its group.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, oneshot};

use super::write::{distinct_keys, write, write_together};
use crate::db::Db;
use crate::plan::Outcome;
use crate::{AuditCtx, EntityWrite, OrgId, Result, StoreError};

/// Most writes in one group (a request larger than this runs alone).
pub(crate) const MAX_GROUP: usize = 1000;

/// The write queue of a store, shared by its clones.
pub(crate) struct Groups {
    /// Whether writes are grouped (SQLite) or written in their caller (PostgreSQL).
    grouped: bool,
    queue: Mutex<VecDeque<Pending>>,
    /// The one group that may run (SQLite has one writer).
    lane: Arc<Semaphore>,
    requests: AtomicU64,
    transactions: AtomicU64,
    /// Transactions that gave a job work (see [`WriteGroupUse::queued_jobs`]).
    queued_jobs: AtomicU64,
}

/// A request waiting for its group.
struct Pending {
    org: OrgId,
    writes: Vec<EntityWrite>,
    ctx: AuditCtx,
    reply: oneshot::Sender<Result<Vec<Outcome>>>,
}

impl Pending {
    /// Whether this request can share a transaction with others (a request naming one entity
    /// twice is written one write after another, alone).
    fn groupable(&self) -> bool {
        self.writes.len() < MAX_GROUP && distinct_keys(&self.writes)
    }
}

/// How many write requests a store answered and in how many transactions (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteGroupUse {
    pub requests: u64,
    pub transactions: u64,
    /// Whether concurrent requests share transactions (SQLite) or not (PostgreSQL).
    pub grouped: bool,
    /// Committed entity write transactions (`write_entities`) that gave a job work (scorecard
    /// recomputation, aggregations, automation events, changelog deliveries: a job queued, or
    /// one already queued given more), counted before the writes are answered: a caller that
    /// sees it change across its write wakes a job worker; one whose write gave no job work
    /// leaves the workers asleep.
    pub queued_jobs: u64,
}

impl Groups {
    /// A queue (`grouped`: SQLite), or writes in their callers (PostgreSQL).
    pub(crate) fn new(grouped: bool) -> Groups {
        Groups {
            grouped,
            queue: Mutex::new(VecDeque::new()),
            lane: Arc::new(Semaphore::new(1)),
            requests: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            queued_jobs: AtomicU64::new(0),
        }
    }

    pub(crate) fn usage(&self) -> WriteGroupUse {
        WriteGroupUse {
            requests: self.requests.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
            grouped: self.grouped,
            queued_jobs: self.queued_jobs.load(Ordering::SeqCst),
        }
    }

    /// Write `writes` in the next group of `org` and answer with their outcomes.
    pub(crate) async fn write(
        self: &Arc<Self>,
        db: &Db,
        org: &OrgId,
        writes: Vec<EntityWrite>,
        ctx: &AuditCtx,
    ) -> Result<Vec<Outcome>> {
        if !self.grouped {
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.transactions.fetch_add(1, Ordering::Relaxed);
            return self.counted(write(db, org, writes, ctx).await);
        }
        let (reply, answer) = oneshot::channel();
        self.lock().push_back(Pending { org: org.clone(), writes, ctx: ctx.clone(), reply });
        self.pump(db);
        answer.await.map_err(|_| {
            StoreError::Unavailable(
                "the entity write ended without an answer: the server is stopping, or the write failed \
                 unexpectedly (the server log says why)"
                    .into(),
            )
        })?
    }

    /// A write's outcomes, counted if it gave a job work.
    fn counted<T>(&self, written: Result<(T, bool)>) -> Result<T> {
        let (out, queued) = written?;
        if queued {
            self.queued_jobs.fetch_add(1, Ordering::SeqCst);
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start the next group if requests wait and no group runs. Called after a request joins
    /// the queue and when a group ends (its lane free again, also if it panicked), and the lane
    /// is only taken with the queue locked and not empty, so no request is left waiting with
    /// the lane free: a request that fails to take the lane was queued before the running group
    /// frees it, and that group's end looks at the queue.
    fn pump(self: &Arc<Self>, db: &Db) {
        let mut queue = self.lock();
        if queue.is_empty() {
            return;
        }
        let Ok(lane) = self.lane.clone().try_acquire_owned() else { return };
        let group = take_group(&mut queue);
        drop(queue);
        let next = Next { groups: Arc::clone(self), db: db.clone(), lane: Some(lane) };
        tokio::spawn(async move {
            next.groups.run(&next.db, group).await;
            drop(next);
        });
    }

    async fn run(&self, db: &Db, mut group: Vec<Pending>) {
        self.requests.fetch_add(group.len() as u64, Ordering::Relaxed);
        self.transactions.fetch_add(1, Ordering::Relaxed);
        if group.len() == 1 {
            let Some(p) = group.pop() else { return };
            let _ = p.reply.send(self.counted(write(db, &p.org, p.writes, &p.ctx).await));
            return;
        }
        let org = group[0].org.clone();
        let mut batches = Vec::with_capacity(group.len());
        let mut ctxs = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        for p in group {
            batches.push(p.writes);
            ctxs.push(p.ctx);
            replies.push(p.reply);
        }
        let ctx_refs: Vec<&AuditCtx> = ctxs.iter().collect();
        match self.counted(write_together(db, &org, batches, &ctx_refs).await) {
            Ok(outcomes) => {
                for (reply, out) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(out));
                }
            }
            Err(e) => {
                tracing::warn!(requests = replies.len(), error = %e, "a group of entity writes failed; each of its requests gets the error");
                for reply in replies {
                    let _ = reply.send(Err(copy(&e)));
                }
            }
        }
    }
}

/// A running group's hold on the lane: dropped when the group ends (or its task panics or is
/// dropped), it frees the lane and starts the next group.
struct Next {
    groups: Arc<Groups>,
    db: Db,
    lane: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for Next {
    fn drop(&mut self) {
        drop(self.lane.take());
        // A runtime that is shutting down drops its tasks: there is nothing left to start.
        if tokio::runtime::Handle::try_current().is_ok() {
            self.groups.pump(&self.db);
        }
    }
}

/// The next group: the oldest request, then the requests of its organization and automation
/// depth queued behind it, while they fit in [`MAX_GROUP`] and name no entity the group writes.
/// Requests of other organizations keep their places.
fn take_group(queue: &mut VecDeque<Pending>) -> Vec<Pending> {
    let Some(first) = queue.pop_front() else { return Vec::new() };
    if !first.groupable() {
        return vec![first];
    }
    let mut keys: HashSet<(String, String)> =
        first.writes.iter().map(|w| (w.blueprint.clone(), w.identifier.clone())).collect();
    let mut size = first.writes.len();
    let (org, depth) = (first.org.clone(), first.ctx.depth);
    let mut group = vec![first];
    let mut i = 0;
    while i < queue.len() {
        let p = &queue[i];
        if p.org != org || p.ctx.depth != depth {
            i += 1;
            continue;
        }
        let overlaps = p.writes.iter().any(|w| keys.contains(&(w.blueprint.clone(), w.identifier.clone())));
        if !p.groupable() || overlaps || size + p.writes.len() > MAX_GROUP {
            break;
        }
        let Some(p) = queue.remove(i) else { break };
        keys.extend(p.writes.iter().map(|w| (w.blueprint.clone(), w.identifier.clone())));
        size += p.writes.len();
        group.push(p);
    }
    group
}

/// The same error for another request of a failed group (a database error keeps its message;
/// its sqlx source, logged once, is not copied).
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(s) => StoreError::Conflict(s.clone()),
        StoreError::NotFound(s) => StoreError::NotFound(s.clone()),
        StoreError::Invalid(f) => StoreError::Invalid(f.clone()),
        StoreError::RequiredBy { blueprint, identifier, dependents } => StoreError::RequiredBy {
            blueprint: blueprint.clone(),
            identifier: identifier.clone(),
            dependents: dependents.clone(),
        },
        StoreError::HasEntities { blueprint, count } => {
            StoreError::HasEntities { blueprint: blueprint.clone(), count: *count }
        }
        StoreError::Referenced { blueprint, source_bp, relation } => StoreError::Referenced {
            blueprint: blueprint.clone(),
            source_bp: source_bp.clone(),
            relation: relation.clone(),
        },
        StoreError::OverBudget { budget } => StoreError::OverBudget { budget: *budget },
        StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
        StoreError::Db(d) => StoreError::Db(d.message().to_string().into()),
    }
}
