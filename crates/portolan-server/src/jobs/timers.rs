//! Timers: deadlines kept in the store and acted on by every node that runs job workers.
//!
//! One task per such node looks every [`ApiConfig::job_poll`](crate::ApiConfig) for entity
//! timers that expired (`TIMER_PROPERTY_EXPIRED` automations: the store records their events,
//! [`portolan_store::Automations::fire_timers`]) and for run timeouts that are due
//! ([`crate::ops::run_timeout`]), and ends those runs. The deadlines are
//! rows, not in-memory timers, so a restart loses none: a node started after a deadline passed
//! ends the run on its first tick. Several nodes may find the same due run; ending it locks the
//! run and checks again, so it ends once, with one log line.

use tokio::sync::watch;

use crate::ops::audit::now_iso;
use crate::ops::run_timeout;
use crate::state::AppState;

/// Due runs ended per tick at most; a longer backlog continues on the next tick at once.
const BATCH: u32 = 200;

/// How long automation events or changelog changes may wait with no job queued or running to
/// handle them before a tick queues one ([`portolan_store::Automations::requeue_stranded`]).
pub const STRANDED_AFTER: chrono::Duration = chrono::Duration::seconds(5);

/// Run the timers until `stop` turns true.
pub async fn run(state: AppState, stop: watch::Receiver<bool>) {
    loop {
        fire_entity_timers(&state).await;
        requeue_stranded(&state).await;
        let mut ended = BATCH;
        while ended == BATCH && !*stop.borrow() {
            ended = tick(&state).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config.job_poll) => {}
            _ = super::until_true(stop.clone()) => break,
        }
    }
}

/// Record the events of entity timers that expired since the last tick (any node's), and
/// wake the workers to dispatch them.
async fn fire_entity_timers(state: &AppState) {
    match state.store.fire_timers(&now_iso()).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::debug!(events = n, "entity timers expired");
            super::wake_workers(state);
        }
        Err(e) => tracing::warn!(error = %e, "could not fire the entity timers"),
    }
}

/// Queue a job for automation events and changelog changes that wait with none (a write on
/// PostgreSQL that committed after its organization's job had looked and ended), and wake the
/// workers.
async fn requeue_stranded(state: &AppState) {
    let before = crate::ops::audit::iso(chrono::Utc::now() - STRANDED_AFTER);
    match state.store.requeue_stranded(&before).await {
        Ok(0) => {}
        Ok(_) => super::wake_workers(state),
        Err(e) => tracing::warn!(error = %e, "could not look for events waiting with no job"),
    }
}

/// End the runs whose timeout is due; how many were due (ended here or by another node).
pub async fn tick(state: &AppState) -> u32 {
    let due = match state.store.due_run_timeouts(&now_iso(), BATCH).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the runs due to time out");
            return 0;
        }
    };
    let n = u32::try_from(due.len()).unwrap_or(BATCH);
    for (org, id) in due {
        if let Err(e) = run_timeout::expire(state, &org, &id).await {
            tracing::warn!(org.id = %org.0, run.id = %id, error = %e.message, "could not end a run that timed out");
            // Not counted as done: the next tick tries again instead of spinning on it now.
            return 0;
        }
    }
    n
}
