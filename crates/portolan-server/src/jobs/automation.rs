//! The `automation_dispatch` job: an organization's automation events (recorded by the store in
//! the transaction of each entity change, `portolan_store::Automations`) become runs of the
//! automations that listen to them.
//!
//! For each event, oldest first: the automations whose `trigger.event` names its type (or
//! `ANY_ENTITY_CHANGE` / `ANY_RUN_CHANGE`) and its blueprint (or action), published, whose JQ `condition` holds over Port's
//! event object, each get a run (`origin: AUTOMATION`) with its `action_run` invocation job;
//! the runs and the event's taking are one transaction, so each automation runs once per
//! event however many nodes dispatch. A condition that fails to evaluate, and an event at the
//! end of too long a chain of automation runs (a loop: an automation whose write triggers
//! itself), still get a run — ended `FAILURE` at once with the reason — so nothing is skipped
//! silently.

use std::time::{Duration, Instant};

use portolan_store::{AutomationEvent, Dispatch, NewJob, OrgId, Run, StoredAction};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{JobCtx, JobError};
use crate::ops::action::{self, RUN_JOB, set_status};
use crate::ops::audit::now_iso;
use crate::ops::run_timeout;
use crate::state::AppState;

pub const KIND: &str = portolan_store::AUTOMATION_JOB;

/// The longest chain of automation runs an event may start another run from: an automation
/// whose writes trigger automations that write … is cut here, its run saying why.
pub const MAX_DEPTH: u32 = 10;

/// Who creates automation runs (their `createdBy`).
pub const AUTOMATION_USER: &str = "portolan-automation";

/// The run's `data` keys (never shown) holding the event that started it and its depth.
pub const EVENT_KEY: &str = "_event";
pub const DEPTH_KEY: &str = "_depth";

/// Events read per round: their runs are stored by one transaction, which holds SQLite's one
/// writer that every entity write waits for, so rounds are few and large.
const BATCH: u32 = 1000;

/// Under a stream of writes (a round read at least [`GATHER_MIN`] events, but not a whole
/// [`BATCH`]), how long the job waits before reading again, so that rounds gather their events
/// instead of taking a few each, flat out. After a smaller round it reads again at once, and
/// it ends on a read that finds nothing (so a write whose transaction was still open when the
/// job was claimed, on PostgreSQL, has had a round's time to commit and be read).
const GATHER: Duration = Duration::from_millis(100);
const GATHER_MIN: usize = 50;

/// How long one dispatch job runs before it queues a successor and ends, so that no job runs
/// for ever under a stream of writes (a job a write queued meanwhile may then read nothing:
/// each event is taken once).
const SLICE: Duration = Duration::from_secs(2);

/// What the dispatch job does after a round that read `read` events, `elapsed` into the job.
#[derive(Debug, PartialEq)]
enum Next {
    HandOver,
    Gather,
    ReadAgain,
}

fn next_step(read: usize, elapsed: Duration) -> Next {
    if elapsed >= SLICE {
        Next::HandOver
    } else if (GATHER_MIN..BATCH as usize).contains(&read) {
        Next::Gather
    } else {
        Next::ReadAgain
    }
}

/// Most events one condition hand-off to the jq engine evaluates, each hand-off within its own
/// time budget.
const CONDITION_CHUNK: usize = 100;

pub async fn run(ctx: JobCtx) -> Result<Value, JobError> {
    let org = ctx.job.org.clone();
    let state = &ctx.state;
    let (mut events, mut runs) = (0u64, 0u64);
    let started = Instant::now();
    loop {
        // Before each round of up to BATCH events (where a claim starts one job), it waits for
        // this node's entity writes in flight up to four times a claim's yield
        // (`jobs::Foreground`).
        state.jobs.foreground.yield_to(state.config.job_yield * 4).await;
        let pending = state.store.pending_events(&org, BATCH).await?;
        if pending.is_empty() {
            break;
        }
        let read = pending.len();
        let automations = automations_of(state, &org).await?;
        let batch = runs_for(state, &org, &automations, &pending).await?;
        let done: std::collections::HashSet<i64> =
            state.store.dispatch_events(&org, &batch).await?.into_iter().collect();
        for (id, new_runs) in &batch {
            if done.contains(id) {
                events += 1;
                runs += new_runs.len() as u64;
            }
        }
        let next = next_step(read, started.elapsed());
        if next == Next::HandOver {
            let successor = NewJob { kind: KIND.into(), payload: json!({}), max_attempts: 5 };
            state.store.enqueue_job(&org, &successor).await?;
        }
        // The runs just stored (and a successor) wait for a worker.
        super::wake_workers(state);
        match next {
            Next::HandOver => break,
            Next::Gather => tokio::time::sleep(GATHER).await,
            Next::ReadAgain => {}
        }
    }
    Ok(json!({"events": events, "runs": runs}))
}

/// The organization's published automations.
async fn automations_of(state: &AppState, org: &OrgId) -> Result<Vec<StoredAction>, JobError> {
    Ok(state
        .store
        .list_actions(org)
        .await?
        .into_iter()
        .filter(|a| a.data["trigger"]["type"] == json!("automation") && a.data.get("publish") != Some(&json!(false)))
        .collect())
}

/// Does automation `a` listen to `ev`'s type and blueprint (or action)?
fn listens(a: &StoredAction, ev: &AutomationEvent) -> bool {
    let e = &a.data["trigger"]["event"];
    let target = e["blueprintIdentifier"].as_str().or_else(|| e["actionIdentifier"].as_str());
    let kind = e["type"].as_str().unwrap_or_default();
    let any = match ev.kind.as_str() {
        "ENTITY_CREATED" | "ENTITY_UPDATED" | "ENTITY_DELETED" => "ANY_ENTITY_CHANGE",
        "TIMER_PROPERTY_EXPIRED" => "TIMER_PROPERTY_EXPIRED",
        _ => "ANY_RUN_CHANGE",
    };
    let property = e["propertyIdentifier"].as_str();
    target == Some(ev.target.as_str())
        && (kind == ev.kind || kind == any)
        && (ev.kind != "TIMER_PROPERTY_EXPIRED" || property == ev.property.as_deref())
}

/// For each of `events`, whether automation `a`'s condition holds over it (no condition: it
/// holds), or the failing expression and why — evaluated on one blocking thread for the lot.
/// The events go to the jq worker as the texts the store read, never parsed here.
async fn conditions(
    state: &AppState,
    org: &OrgId,
    a: &StoredAction,
    events: Vec<Box<RawValue>>,
) -> Result<Vec<Result<bool, String>>, JobError> {
    let c = &a.data["trigger"]["condition"];
    let exprs: Vec<String> = c["expressions"]
        .as_array()
        .map(|x| x.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if exprs.is_empty() {
        return Ok(vec![Ok(true); events.len()]);
    }
    let or = c["combinator"].as_str() == Some("or");
    let (jq, budget) = (state.jq.clone(), state.jq.budget_for(&org.0));
    // One hand-off for the lot: each expression applied to `.e` of `{e: event}`.
    let verdicts = tokio::task::spawn_blocking(move || {
        let mut compiled = Vec::with_capacity(exprs.len());
        for (i, src) in exprs.iter().enumerate() {
            match jq.compile(&format!(".e | ({src}\n)")) {
                Ok(c) => compiled.push(c),
                Err(e) => {
                    let why = format!("trigger.condition.expressions[{i}] ({src:?}) does not compile: {e}");
                    return Ok(vec![Err(why); events.len()]);
                }
            }
        }
        let rows = match jq.first_many_texts_in(&budget, &compiled, &json!({}), "e", &events) {
            Ok(rows) => rows,
            Err(e @ portolan_jq::JqError::Limit(_)) => {
                return Ok(vec![Err(format!("the conditions ran out of budget: {e}")); events.len()]);
            }
            Err(e) => return Err(e.to_string()),
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut holds = Vec::with_capacity(row.len());
                for (i, r) in row.into_iter().enumerate() {
                    match r {
                        Ok(v) => holds.push(!matches!(v, Value::Null | Value::Bool(false))),
                        Err(e) => {
                            return Err(format!("trigger.condition.expressions[{i}] ({:?}) failed: {e}", exprs[i]));
                        }
                    }
                }
                Ok(if or { holds.iter().any(|h| *h) } else { holds.iter().all(|h| *h) })
            })
            .collect::<Vec<_>>())
    })
    .await
    .map_err(|e| JobError::Retry(format!("the jq worker stopped: {e}")))?
    .map_err(|e| JobError::Retry(format!("the conditions could not be evaluated now: {e}")))?;
    Ok(verdicts)
}

/// The runs each of `events` starts, in order.
async fn runs_for(
    state: &AppState,
    org: &OrgId,
    automations: &[StoredAction],
    events: &[AutomationEvent],
) -> Result<Vec<Dispatch>, JobError> {
    let mut out: Vec<Dispatch> = events.iter().map(|e| (e.id, Vec::new())).collect();
    for a in automations {
        let heard: Vec<usize> = (0..events.len()).filter(|i| listens(a, &events[*i])).collect();
        if heard.is_empty() {
            continue;
        }
        let mut verdicts = Vec::with_capacity(heard.len());
        for chunk in heard.chunks(CONDITION_CHUNK) {
            let texts = chunk.iter().map(|i| events[*i].event.clone()).collect();
            verdicts.extend(conditions(state, org, a, texts).await?);
        }
        let timeout = run_timeout::timeout_for(state, org, a).await?;
        for (i, verdict) in heard.into_iter().zip(verdicts) {
            let ev = &events[i];
            let refused = match verdict {
                Ok(false) => continue,
                Ok(true) if ev.depth >= MAX_DEPTH => Some(format!(
                    "Not run: this {} event comes from a chain of {} automation runs, each caused by the one before \
                     (a loop, e.g. an automation whose write triggers itself); chains are cut at {MAX_DEPTH}. Make \
                     the automation's condition false for its own writes (e.g. compare .diff.before and .diff.after).",
                    ev.kind, ev.depth
                )),
                Ok(true) => None,
                Err(why) => Some(format!("Not run: the automation's condition could not be evaluated: {why}")),
            };
            let mut run = new_run(a, ev)?;
            run_timeout::arm(&mut run, chrono::Utc::now(), timeout);
            let job = match refused {
                Some(why) => {
                    let at = run.created_at.clone();
                    set_status(&mut run, "FAILURE", &at);
                    run.data.insert("summary".into(), json!(why));
                    None
                }
                None => Some(NewJob { kind: RUN_JOB.into(), payload: json!({"runId": run.id}), max_attempts: 3 }),
            };
            out[i].1.push((run, job));
        }
    }
    Ok(out)
}

/// A run of automation `a` for `ev` (whose event object is parsed here, once per run).
fn new_run(a: &StoredAction, ev: &AutomationEvent) -> Result<Run, JobError> {
    let (blueprint, entity) = (ev.blueprint.clone(), ev.entity.clone());
    let mut run = action::new_run(a, blueprint.clone(), entity.clone(), AUTOMATION_USER, &now_iso());
    run.data.insert("blueprint".into(), json!(blueprint.map(|b| json!({"identifier": b}))));
    run.data.insert("entity".into(), json!(entity.map(|e| json!({"identifier": e}))));
    run.data.insert("source".into(), json!("AUTOMATION"));
    run.data.insert(EVENT_KEY.into(), ev.value()?);
    run.data.insert(DEPTH_KEY.into(), json!(ev.depth));
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of writes gathers, a trickle reads again at once (the job ends on an empty
    /// read), a full round reads again at once, and the slice hands over whatever was read.
    #[test]
    fn the_dispatch_gathers_only_under_a_stream_and_hands_over_after_its_slice() {
        let early = Duration::from_millis(10);
        assert_eq!(next_step(1, early), Next::ReadAgain);
        assert_eq!(next_step(GATHER_MIN - 1, early), Next::ReadAgain);
        assert_eq!(next_step(GATHER_MIN, early), Next::Gather);
        assert_eq!(next_step(BATCH as usize - 1, early), Next::Gather);
        assert_eq!(next_step(BATCH as usize, early), Next::ReadAgain);
        for read in [1, GATHER_MIN, BATCH as usize] {
            assert_eq!(next_step(read, SLICE), Next::HandOver, "{read} events read");
        }
    }
}
