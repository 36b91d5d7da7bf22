//! Run timeouts (a Portolan extension; issue 14): a run that has no terminal status
//! `runTimeoutSeconds` after it started ends `FAILURE`, with a summary that names the timeout
//! and the last thing that happened to the run, so no run stays "in progress" for ever.
//!
//! The timeout is the action's `runTimeoutSeconds`, else the organization's
//! `settings.runTimeoutSeconds`, else [`DEFAULT_RUN_TIMEOUT_SECS`] (a day). It is fixed when
//! the run is created (`timeoutAt` on the run; the store drops it when the run ends), and each
//! node with job workers ends the due runs ([`crate::jobs::timers`]). Ending one goes through
//! [`Actions::update_run`](portolan_store::Actions::update_run), which locks the run: of two
//! nodes that find the same due run, the second sees it ended and changes nothing.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use portolan_core::action::{DEFAULT_RUN_TIMEOUT_SECS, run_timeout_of};
use portolan_store::{OrgId, Run, RunLog, StoreError, StoredAction};
use serde_json::json;

use super::action::set_status;
use super::audit::{iso, now_iso};
use crate::error::ApiResult;
use crate::state::AppState;

/// The run's `data` key (never shown) that records its timeout and where it came from.
pub const TIMEOUT_KEY: &str = "_runTimeout";

/// Who ends a run that timed out (its `updatedBy` and the log line's `userId`).
pub const TIMER_USER: &str = "portolan-timer";

/// The timeout of a new run of `action`: `(seconds, where it was set)`.
pub async fn timeout_for(state: &AppState, org: &OrgId, action: &StoredAction) -> ApiResult<(u64, &'static str)> {
    if let Some(s) = run_timeout_of(action.data.get("runTimeoutSeconds")) {
        return Ok((s, "the action's runTimeoutSeconds"));
    }
    let settings = state.store.org_settings(org).await?;
    Ok(match run_timeout_of(settings.get("runTimeoutSeconds")) {
        Some(s) => (s, "the organization's settings.runTimeoutSeconds"),
        None => (DEFAULT_RUN_TIMEOUT_SECS, "the default timeout (set runTimeoutSeconds on the action or organization)"),
    })
}

/// Give the new run `run`, created at `created` (its `createdAt`), its deadline.
pub fn arm(run: &mut Run, created: DateTime<Utc>, (secs, from): (u64, &'static str)) {
    let secs_i = i64::try_from(secs).unwrap_or(i64::MAX);
    run.timeout_at = Some(iso(created + ChronoDuration::seconds(secs_i)));
    run.data.insert(TIMEOUT_KEY.into(), json!({"seconds": secs, "from": from}));
}

/// `90` → "1 minute 30 seconds".
pub fn human_duration(secs: u64) -> String {
    let parts = [(secs / 86_400, "day"), (secs / 3600 % 24, "hour"), (secs / 60 % 60, "minute"), (secs % 60, "second")];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if words.is_empty() { "0 seconds".into() } else { words.join(" ") }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}

/// What happened last to `run`, in words: its last log line, else where its execution agent
/// left it, else its last outbound call, else that its invocation has not completed.
pub fn last_event(run: &Run, last_log: Option<&RunLog>) -> String {
    if let Some(l) = last_log {
        return format!("the last log line ({}) was {:?}", l.at, clip(&l.message, 300));
    }
    if run.pending_execution {
        return match (&run.installation_id, &run.claimed_until) {
            (Some(inst), Some(_)) => format!(
                "an execution agent (installation {inst:?}) claimed it but never acknowledged it; check the agent's \
                 logs"
            ),
            _ => "no execution agent claimed it: check that Port's execution agent runs for this organization and \
                  polls this server"
                .into(),
        };
    }
    if let Some(call) = run.trace.last() {
        let req = &call["request"];
        let what = format!("{} {}", req["method"].as_str().unwrap_or("?"), req["url"].as_str().unwrap_or("?"));
        return match (call["error"].as_str(), call["response"]["status"].as_u64()) {
            (Some(err), _) => format!("the last call, {what}, failed: {err}"),
            (None, Some(status)) => {
                format!("the last call, {what}, was answered {status}, and the backend reported nothing since")
            }
            (None, None) => format!("the last call was {what}"),
        };
    }
    if let Some(inst) = &run.installation_id {
        return format!("execution agent installation {inst:?} received it and reported nothing since");
    }
    "the run's invocation has not completed (its job is still waiting, calling the backend or retrying; see \
     GET /v1/jobs)"
        .into()
}

/// End run `id` of `org` if it is still in progress and its deadline has passed: `FAILURE`,
/// the summary saying why, `statusLabel` "Timed out", and a log line with the same words.
/// `Ok(false)`: nothing to do (it ended meanwhile, or it is gone).
pub async fn expire(state: &AppState, org: &OrgId, id: &str) -> ApiResult<bool> {
    let Some(run) = state.store.get_run(org, id).await? else { return Ok(false) };
    let last_log = state.store.last_run_log(org, id).await?;
    let (secs, from) = match run.data.get(TIMEOUT_KEY) {
        Some(t) => (t["seconds"].as_u64(), t["from"].as_str().unwrap_or("its timeout").to_string()),
        None => (None, "its timeout".to_string()),
    };
    let after = secs.map_or_else(|| "its timeout".to_string(), human_duration);
    let summary = format!(
        "Timed out: no SUCCESS or FAILURE was reported within {after} ({from}, timeout at {}); {}.",
        run.timeout_at.as_deref().unwrap_or("?"),
        last_event(&run, last_log.as_ref())
    );
    let now = now_iso();
    let log = RunLog {
        id: String::new(),
        at: now.clone(),
        message: summary.clone(),
        termination_status: Some("FAILURE".into()),
        status_label: Some("Timed out".into()),
        user_id: TIMER_USER.into(),
    };
    const NOT_DUE: &str = "the run is no longer due to time out";
    let mut edit = |r: &mut Run| {
        // Checked again under the run's lock: a status reported meanwhile stands, and the
        // edit's error aborts the transaction with its log line.
        let due = r.timeout_at.as_deref().is_some_and(|t| t <= now.as_str());
        if r.status != "IN_PROGRESS" || r.ended_by_log || !due {
            return Err(StoreError::Conflict(NOT_DUE.into()));
        }
        set_status(r, "FAILURE", &now);
        r.data.insert("summary".into(), json!(summary));
        r.data.insert("statusLabel".into(), json!("Timed out"));
        r.updated_by = TIMER_USER.into();
        r.updated_at = now.clone();
        Ok(())
    };
    match state.store.update_run(org, id, &[log], &mut edit).await {
        Ok(updated) => {
            tracing::info!(org.id = %org.0, run.id = %id, run.action = %updated.action, "run timed out");
            Ok(true)
        }
        Err(StoreError::Conflict(m)) if m == NOT_DUE => Ok(false),
        Err(StoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
