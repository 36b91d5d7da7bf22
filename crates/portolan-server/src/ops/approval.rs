//! Approvals of action runs (port-api.md §5.7): a run of an action with `requiredApproval`
//! waits (`WAITING_FOR_APPROVAL`) for the approvers its `approve` permission names, who are
//! notified by the `approval_notify` job (`jobs/approval.rs`); `PATCH …/approval` records a
//! decision and, once the run is approved, stores its invocation job in the same transaction
//! ([`portolan_store::Actions::update_run_or_start`]). A declined run ends `DECLINED` and is
//! never invoked. The rules of a decision are `portolan_core::approval`'s.

use portolan_core::approval::{self, Approval, Decider, Mode, Outcome};
use portolan_core::permissions::{ActionPermissions, Principal};
use portolan_core::{FieldError, FieldErrors};
use portolan_store::{NewJob, OrgId, Run, RunFilter, RunLog, StoreError, StoredAction};
use serde_json::{Value, json};

use super::Actor;
use super::action::{RUN_JOB, load_run, permissions};
use super::run_timeout;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The job kind that tells a waiting run's approvers.
pub const NOTIFY_JOB: &str = "approval_notify";
/// Where a run keeps its [`Approval`] (hidden from the run object, like every `_` key).
pub const APPROVAL_KEY: &str = "_approval";
/// Most waiting runs the approvals inbox reads at once.
pub const INBOX_SCAN: u32 = 500;

/// The run's approval, `None` for a run that needed none.
pub fn of(run: &Run) -> Option<Approval> {
    run.data.get(APPROVAL_KEY).and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The designated approvers of an action's runs now: the active people its `approve` grant
/// names (by role, e-mail or team).
pub async fn designated(state: &AppState, org: &OrgId, perms: &ActionPermissions) -> ApiResult<Vec<String>> {
    let people = state.store.list_people(org).await?;
    Ok(people
        .into_iter()
        .filter(|p| p.status != "Disabled")
        .map(crate::access::principal_of)
        .filter(|p| perms.designates(p))
        .filter_map(|p| match p {
            Principal::User(u) => Some(u.email),
            Principal::Machine => None,
        })
        .collect())
}

/// Make a new run of `action` wait for approval when the action requires one: its status, its
/// designated approvers, and the notification job to store with it (instead of its
/// invocation). `None`: the action needs no approval and the run starts at once.
pub async fn hold(
    state: &AppState,
    org: &OrgId,
    action: &StoredAction,
    perms: &ActionPermissions,
    context: &Value,
    run: &mut Run,
) -> ApiResult<Option<NewJob>> {
    let Some(mode) = approval::required(&action.data) else { return Ok(None) };
    // An approve policy names the approvers (its e-mails); else the grant does.
    let approvers = match &perms.approve.policy {
        Some(policy) => super::policy::evaluate(state, org, policy, context).await?.emails(),
        None => designated(state, org, perms).await?,
    };
    let approval = Approval::new(mode, approvers);
    run.status = "WAITING_FOR_APPROVAL".into();
    run.data.insert("requiredApproval".into(), action.data["requiredApproval"].clone());
    run.data.insert("approval".into(), Value::Null);
    run.data.insert(APPROVAL_KEY.into(), serde_json::to_value(&approval).unwrap_or(Value::Null));
    Ok(Some(NewJob { kind: NOTIFY_JOB.into(), payload: json!({"runId": run.id}), max_attempts: 5 }))
}

/// Who decides: a person by e-mail, or the organization through its credential.
fn decider(actor: &Actor) -> (String, bool) {
    match &actor.principal {
        Principal::User(u) => (u.email.clone(), false),
        Principal::Machine => (actor.client_id.clone(), true),
    }
}

/// May `actor` see run `run` because they are asked to approve it?
pub fn asks(run: &Run, actor: &Actor) -> bool {
    let (user, _) = decider(actor);
    of(run).is_some_and(|a| a.approvers.contains(&user))
}

/// `PATCH /v1/actions/runs/{id}/approval` `{status: "APPROVE" | "DECLINE", description?}`.
pub async fn decide(state: &AppState, actor: &Actor, id: &str, body: &Value) -> ApiResult<Run> {
    let Some(obj) = body.as_object() else {
        return Err(
            FieldError::new("", "the body must be a JSON object {\"status\": \"APPROVE\" | \"DECLINE\"}").into()
        );
    };
    let mut errs = FieldErrors::default();
    for k in obj.keys().filter(|k| !["status", "description"].contains(&k.as_str())) {
        errs.push(k.clone(), "is not a field of an approval (status, description)");
    }
    let approve = match obj.get("status").and_then(Value::as_str) {
        Some("APPROVE") => true,
        Some("DECLINE") => false,
        _ => {
            errs.push("status", "is required: \"APPROVE\" or \"DECLINE\"");
            false
        }
    };
    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.chars().take(2000).collect::<String>()),
        Some(_) => {
            errs.push("description", "must be a string");
            None
        }
    };
    errs.into_result()?;

    let run = load_run(state, &actor.org, id).await?;
    let perms = permissions(state, &actor.org, &run.action).await?;
    let (user, organization) = decider(actor);
    // With an approve policy, the approvers it named when the run was created decide (and
    // administrators); without one, the grant.
    let allowed = match &perms.approve.policy {
        Some(_) => actor.principal.is_admin() || asks(&run, actor),
        None => perms.may_approve(&actor.principal),
    };
    if !allowed && perms.approve.policy.is_some() {
        return Err(ApiError::forbidden(format!(
            "{user} may not approve run {id}: the approve policy of action {:?} named {} when the run was created",
            run.action,
            of(&run).map(|a| a.approvers.join(", ")).filter(|s| !s.is_empty()).unwrap_or_else(|| "nobody".into())
        )));
    }
    if !allowed {
        let g = &perms.approve;
        return Err(ApiError::forbidden(format!(
            "{user} may not approve runs of action {:?}: its permissions grant approve to roles {:?}, users {:?}, \
             teams {:?} (and to administrators)",
            run.action, g.roles, g.users, g.teams
        )));
    }
    if approve
        && let Some(a) = of(&run)
        && a.mode == Mode::All
        && !organization
        && !a.approvers.is_empty()
        && !a.approvers.contains(&user)
    {
        return Err(ApiError::forbidden(format!(
            "run {id} needs the approval of each of its designated approvers ({}), and {user} is not one of them; \
             anyone allowed to approve may still decline it",
            a.approvers.join(", ")
        )));
    }
    let timeout = match state.store.get_action(&actor.org, &run.action).await? {
        Some(action) => run_timeout::timeout_for(state, &actor.org, &action).await?,
        None if approve => {
            return Err(ApiError::new(
                crate::error::ErrorCode::InvalidRequest,
                format!("action {:?} of run {id} was deleted, so the run cannot start; decline it instead", run.action),
            ));
        }
        None => (portolan_core::action::DEFAULT_RUN_TIMEOUT_SECS, "the default timeout"),
    };
    let now = chrono::Utc::now();
    let at = super::audit::iso(now);
    let verb = if approve { "approved" } else { "declined" };
    let log = RunLog {
        id: String::new(),
        at: at.clone(),
        message: match &description {
            Some(d) => format!("{user} {verb} the run: {d}"),
            None => format!("{user} {verb} the run"),
        },
        termination_status: None,
        status_label: None,
        user_id: actor.client_id.clone(),
    };
    let mut edit = |run: &mut Run| {
        if run.status != "WAITING_FOR_APPROVAL" {
            return Err(StoreError::Conflict(format!(
                "run {} is not waiting for approval: it is {}",
                run.id, run.status
            )));
        }
        let Some(mut a) = of(run) else {
            return Err(StoreError::Conflict(format!("run {} has no approval on record", run.id)));
        };
        let outcome = a
            .decide(Decider { user_id: &user, organization }, approve, description.clone(), &at)
            .map_err(StoreError::Conflict)?;
        match outcome {
            Outcome::Approved => {
                run.status = "IN_PROGRESS".into();
                run_timeout::arm(run, now, timeout);
            }
            Outcome::Declined => {
                run.status = "DECLINED".into();
                run.ended_at = Some(at.clone());
                run.data.insert(
                    "summary".into(),
                    json!(match &description {
                        Some(d) => format!("Declined by {user}: {d}"),
                        None => format!("Declined by {user}"),
                    }),
                );
            }
            Outcome::Waiting(_) => {}
        }
        run.data.insert("approval".into(), a.last_json());
        run.data.insert(APPROVAL_KEY.into(), serde_json::to_value(&a).unwrap_or(Value::Null));
        run.updated_at = at.clone();
        run.updated_by = actor.client_id.clone();
        Ok(())
    };
    let job = NewJob { kind: RUN_JOB.into(), payload: json!({"runId": id}), max_attempts: 3 };
    let (run, started) =
        match state.store.update_run_or_start(&actor.org, id, std::slice::from_ref(&log), &mut edit, &job).await {
            Ok(done) => done,
            // The edit's refusals say why in a sentence (not "… already exists").
            Err(StoreError::Conflict(why)) => return Err(ApiError::conflict(why)),
            Err(e) => return Err(e.into()),
        };
    if started.is_some() {
        crate::jobs::wake_workers(state);
    }
    Ok(run)
}

/// `GET …/approvers`: each decision, and with `pending` the designated approvers still to
/// decide.
pub async fn approvers(state: &AppState, actor: &Actor, id: &str, pending: bool) -> ApiResult<Vec<Value>> {
    let run = super::action::load_visible_run(state, actor, id).await?;
    Ok(of(&run).map(|a| a.approvers_json(pending && run.status == "WAITING_FOR_APPROVAL")).unwrap_or_default())
}

/// The runs waiting for `actor`'s decision (the approvals inbox), newest first: those that
/// name them, and every waiting run of an action they may approve.
pub async fn inbox(state: &AppState, actor: &Actor) -> ApiResult<Vec<Run>> {
    let filter = RunFilter { statuses: vec!["WAITING_FOR_APPROVAL".into()], limit: INBOX_SCAN, ..RunFilter::default() };
    let waiting = state.store.list_runs(&actor.org, &filter).await?;
    let (user, _) = decider(actor);
    let mut perms: std::collections::HashMap<String, ActionPermissions> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for run in waiting {
        if !perms.contains_key(&run.action) {
            perms.insert(run.action.clone(), permissions(state, &actor.org, &run.action).await?);
        }
        let decided = of(&run).is_some_and(|a| a.decisions.iter().any(|d| d.user_id == user));
        let p = &perms[&run.action];
        let may = if p.approve.policy.is_some() {
            actor.principal.is_admin() || asks(&run, actor)
        } else {
            p.may_approve(&actor.principal)
        };
        if !decided && may {
            out.push(run);
        }
    }
    Ok(out)
}
