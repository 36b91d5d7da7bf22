//! The `automation_dispatch` job: an organization's automation events (recorded by the store in
//! the transaction of each entity change, `portolan_store::Automations`) become runs of the
//! automations that listen to them.
//!
//! For each event, oldest first: the automations whose `trigger.event` names its type (or
//! `ANY_ENTITY_CHANGE` / `ANY_RUN_CHANGE`) and its blueprint (or action), published, whose JQ `condition` holds over Port's
//! event object, each get a run (`origin: AUTOMATION`) with its `action_run` invocation job;
//! the runs and the event's deletion are one transaction, so each automation runs once per
//! event however many nodes dispatch. A condition that fails to evaluate, and an event at the
//! end of too long a chain of automation runs (a loop: an automation whose write triggers
//! itself), still get a run — ended `FAILURE` at once with the reason — so nothing is skipped
//! silently.

use portolan_store::{AutomationEvent, NewJob, OrgId, Run, StoredAction};
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

/// Events read per round.
const BATCH: u32 = 100;

pub async fn run(ctx: JobCtx) -> Result<Value, JobError> {
    let org = ctx.job.org.clone();
    let state = &ctx.state;
    let (mut events, mut runs) = (0u64, 0u64);
    loop {
        let pending = state.store.pending_events(&org, BATCH).await?;
        if pending.is_empty() {
            break;
        }
        let automations = automations_of(state, &org).await?;
        for ev in pending {
            let new_runs = runs_for(state, &org, &automations, &ev).await?;
            if state.store.dispatch_event(&org, ev.id, &new_runs).await? {
                events += 1;
                runs += new_runs.len() as u64;
            }
        }
        super::wake_workers(state);
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
        && (ev.kind != "TIMER_PROPERTY_EXPIRED" || property == ev.event["context"]["propertyIdentifier"].as_str())
}

/// `Ok(true)` when the automation's condition holds over the event (no condition: it holds);
/// `Err` with the failing expression and why.
async fn condition_holds(state: &AppState, org: &OrgId, a: &StoredAction, event: &Value) -> Result<bool, String> {
    let c = &a.data["trigger"]["condition"];
    let exprs: Vec<String> = c["expressions"]
        .as_array()
        .map(|x| x.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if exprs.is_empty() {
        return Ok(true);
    }
    let or = c["combinator"].as_str() == Some("or");
    let (jq, budget, input) = (state.jq.clone(), state.jq.budget_for(&org.0), event.clone());
    let results = tokio::task::spawn_blocking(move || {
        exprs.into_iter().map(|e| (jq.first_in(&budget, &e, &input), e)).collect::<Vec<_>>()
    })
    .await
    .map_err(|e| format!("the jq worker stopped: {e}"))?;
    let mut verdicts = Vec::with_capacity(results.len());
    for (i, (r, src)) in results.into_iter().enumerate() {
        match r {
            Ok(v) => verdicts.push(!matches!(v, Value::Null | Value::Bool(false))),
            Err(e) => return Err(format!("trigger.condition.expressions[{i}] ({src:?}) failed: {e}")),
        }
    }
    Ok(if or { verdicts.iter().any(|v| *v) } else { verdicts.iter().all(|v| *v) })
}

/// The runs `ev` starts.
async fn runs_for(
    state: &AppState,
    org: &OrgId,
    automations: &[StoredAction],
    ev: &AutomationEvent,
) -> Result<Vec<(Run, Option<NewJob>)>, JobError> {
    let mut out = Vec::new();
    for a in automations.iter().filter(|a| listens(a, ev)) {
        let refused = match condition_holds(state, org, a, &ev.event).await {
            Ok(false) => continue,
            Ok(true) if ev.depth >= MAX_DEPTH => Some(format!(
                "Not run: this {} event comes from a chain of {} automation runs, each caused by the one before \
                 (a loop, e.g. an automation whose write triggers itself); chains are cut at {MAX_DEPTH}. Make the \
                 automation's condition false for its own writes (e.g. compare .diff.before and .diff.after).",
                ev.kind, ev.depth
            )),
            Ok(true) => None,
            Err(why) => Some(format!("Not run: the automation's condition could not be evaluated: {why}")),
        };
        let mut run = new_run(a, ev);
        run_timeout::arm(&mut run, chrono::Utc::now(), run_timeout::timeout_for(state, org, a).await?);
        match refused {
            Some(why) => {
                let at = run.created_at.clone();
                set_status(&mut run, "FAILURE", &at);
                run.data.insert("summary".into(), json!(why));
                out.push((run, None));
            }
            None => {
                let job = NewJob { kind: RUN_JOB.into(), payload: json!({"runId": run.id}), max_attempts: 3 };
                out.push((run, Some(job)));
            }
        }
    }
    Ok(out)
}

fn new_run(a: &StoredAction, ev: &AutomationEvent) -> Run {
    let ctx = &ev.event["context"];
    let blueprint = ctx["blueprintIdentifier"].as_str().map(str::to_string);
    let entity = ctx["entityIdentifier"].as_str().map(str::to_string);
    let mut run = action::new_run(a, blueprint.clone(), entity.clone(), AUTOMATION_USER, &now_iso());
    run.data.insert("blueprint".into(), json!(blueprint.map(|b| json!({"identifier": b}))));
    run.data.insert("entity".into(), json!(entity.map(|e| json!({"identifier": e}))));
    run.data.insert("source".into(), json!("AUTOMATION"));
    run.data.insert(EVENT_KEY.into(), ev.event.clone());
    run.data.insert(DEPTH_KEY.into(), json!(ev.depth));
    run
}
