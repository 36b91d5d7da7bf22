//! Self-service actions (port-api.md §5): saving definitions, starting runs, the run's
//! lifecycle (PATCH, logs, response), affected entities, and the execution agent's claim
//! protocol. The invocation itself is the `action_run` job (`jobs/action_run.rs`).
//!
//! *Secrets:* inputs defined with `encryption: "aes256-gcm"` are encrypted as Port does (key:
//! the first 32 bytes of the organization's client secret; `base64(IV ‖ ciphertext ‖ tag)`)
//! before the run is stored, so no clear value is ever stored, logged or returned. Organization
//! secrets reach templates only inside the job and are censored from everything it stores.

use portolan_core::permissions::ActionPermissions;
use std::time::Duration;

use portolan_core::action::{self as core_action, CheckedInputs};
use portolan_core::{FieldError, FieldErrors};
use portolan_store::{ActionWrite, NewJob, OrgId, Run, RunFilter, RunLog, SaveMode, StoreError, StoredAction};
use serde_json::{Map, Value, json};

use super::Actor;
use super::audit::{audit_ctx, now_iso};
use super::run_timeout;
use crate::auth::random_bytes;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

mod signing;

use signing::encrypt_inputs;
pub use signing::{credential_aad, keep_signing_secret, port_encrypt, signing_secret};

/// The job kind that invokes a run.
pub const RUN_JOB: &str = "action_run";
/// Run statuses (§5.6).
pub const STATUSES: &[&str] = &["IN_PROGRESS", "SUCCESS", "FAILURE", "WAITING_FOR_APPROVAL", "DECLINED"];
/// Terminal statuses a backend may set.
pub const TERMINAL: &[&str] = &["SUCCESS", "FAILURE"];
/// Keys of a run's `data` that begin with `_` (below) are the server's own and never shown.
/// The payload an agent receives (secrets rendered), encrypted with the master key.
pub const AGENT_PAYLOAD_KEY: &str = "_agentPayload";
/// How long an agent's claim holds a run before another agent may take it.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);
/// Longest log message kept (longer ones are cut, saying so).
const MAX_LOG: usize = 64 * 1024;

fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = random_bytes::<16>();
    let s: String = bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
    format!("{prefix}{s}")
}

/// The associated data of a run's encrypted agent payload.
pub fn agent_payload_aad(org: &OrgId, run: &str) -> String {
    format!("run-payload:{}:{run}", org.0)
}

/// Port's action object: the stored definition plus id and meta.
pub fn render_action(a: &StoredAction) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(a.id));
    out.insert("identifier".into(), json!(a.identifier));
    for (k, v) in a.data.as_object().into_iter().flatten() {
        if k != "identifier" {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("createdAt".into(), json!(a.created_at));
    out.insert("createdBy".into(), json!(a.created_by));
    out.insert("updatedAt".into(), json!(a.updated_at));
    out.insert("updatedBy".into(), json!(a.updated_by));
    Value::Object(out)
}

pub async fn load_action(state: &AppState, org: &OrgId, id: &str) -> ApiResult<StoredAction> {
    state.store.get_action(org, id).await?.ok_or_else(|| ApiError::not_found(format!("action {id:?} was not found")))
}

/// Validate and save an action body. `path_id`: the identifier in the URL (PUT), which the
/// body may repeat but not contradict.
pub async fn save_action(
    state: &AppState,
    actor: &Actor,
    body: &Value,
    path_id: Option<&str>,
    mode: SaveMode,
) -> ApiResult<StoredAction> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object (an action)").into());
    };
    let mut data: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !core_action::SERVER_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(id) = path_id {
        match data.get("identifier") {
            None => {
                data.insert("identifier".into(), json!(id));
            }
            Some(Value::String(given)) if given == id => {}
            Some(_) => {
                return Err(FieldError::new(
                    "identifier",
                    format!("must be {id:?}, the identifier in the URL (an action cannot be renamed)"),
                )
                .into());
            }
        }
    }
    let body = Value::Object(data);
    let mut errs = match core_action::check_action(&body) {
        Ok(()) => FieldErrors::default(),
        Err(e) => e,
    };
    check_jq(state, &body, &mut errs);
    let blueprints = state.blueprints(&actor.org).await?;
    for (path, bp) in core_action::blueprint_refs(&body) {
        if !blueprints.contains_key(&bp) {
            errs.push(path, format!("names blueprint {bp:?}, which does not exist; create it first"));
        }
    }
    if !errs.0.is_empty() {
        return Err(ApiError::invalid(&errs));
    }
    let identifier = body["identifier"].as_str().unwrap_or_default().to_string();
    let w = ActionWrite { identifier, id: random_id("action_"), data: body };
    Ok(state.store.save_action(&actor.org, &w, mode, &audit_ctx(actor)).await?)
}

/// Compile every jq program of an action: the user inputs' `jqQuery` slots and an automation's
/// condition expressions. Templates (`{{ }}`) are checked when a run renders them.
fn check_jq(state: &AppState, action: &Value, errs: &mut FieldErrors) {
    let trigger = &action["trigger"];
    for slot in core_action::jq_queries(&trigger["userInputs"]) {
        if let Err(e) = state.jq.compile(&slot.query) {
            errs.push(
                format!("trigger.userInputs.{}.jqQuery", slot.path),
                format!("is not a valid jq expression: {e}"),
            );
        }
    }
    if let Some(exprs) = trigger["condition"]["expressions"].as_array() {
        for (i, e) in exprs.iter().enumerate() {
            if let Some(src) = e.as_str()
                && let Err(err) = state.jq.compile(src)
            {
                errs.push(
                    format!("trigger.condition.expressions[{i}]"),
                    format!("is not a valid jq expression: {err}"),
                );
            }
        }
    }
}

pub async fn delete_action(state: &AppState, actor: &Actor, id: &str) -> ApiResult<()> {
    Ok(state.store.delete_action(&actor.org, id, &audit_ctx(actor)).await?)
}

/// What starts a run: the inputs, the entity (DAY-2 / DELETE), and where it came from.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub properties: Value,
    pub entity: Option<String>,
    /// `API` or `UI`.
    pub source: &'static str,
}

/// A new run of `action`, in progress, created by `by` at `now`, with Port's run keys at their
/// starting values (`blueprint`, `entity`, `properties` and `source` for the caller to fill).
pub fn new_run(action: &StoredAction, blueprint: Option<String>, entity: Option<String>, by: &str, now: &str) -> Run {
    let mut data = Map::new();
    data.insert("statusLabel".into(), Value::Null);
    data.insert(
        "action".into(),
        json!({"identifier": action.identifier, "title": action.data.get("title"), "icon": action.data.get("icon")}),
    );
    for key in ["blueprint", "entity", "summary", "payload", "response"] {
        data.insert(key.into(), Value::Null);
    }
    data.insert("properties".into(), json!({}));
    data.insert("rawProperties".into(), json!({}));
    data.insert("requiredApproval".into(), json!(false));
    data.insert("link".into(), json!([]));
    data.insert("encryptedProperties".into(), json!([]));
    Run {
        rid: 0,
        id: random_id("r_"),
        action: action.identifier.clone(),
        blueprint,
        entity,
        status: "IN_PROGRESS".into(),
        external_run_id: None,
        data,
        trace: vec![],
        pending_execution: false,
        claimed_until: None,
        installation_id: None,
        ended_by_log: false,
        created_by: by.to_string(),
        created_at: now.to_string(),
        updated_by: by.to_string(),
        updated_at: now.to_string(),
        ended_at: None,
        timeout_at: None,
    }
}

/// Start a run of a self-service action: check the entity and the inputs (every error at its
/// field path), then store the run and its invocation job in one transaction.
pub async fn create_run(state: &AppState, actor: &Actor, action_id: &str, req: RunRequest) -> ApiResult<Run> {
    let action = load_action(state, &actor.org, action_id).await?;
    let trigger = &action.data["trigger"];
    if trigger["type"].as_str() != Some("self-service") {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("action {action_id:?} is an automation: it runs on its trigger event, not on request"),
        ));
    }
    if action.data.get("publish") == Some(&Value::Bool(false)) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("action {action_id:?} is not published (publish: false); publish it to run it"),
        ));
    }
    let operation = trigger["operation"].as_str().unwrap_or("CREATE").to_string();
    let bp_id = trigger["blueprintIdentifier"].as_str().map(str::to_string);
    let entity = match (&req.entity, operation.as_str(), &bp_id) {
        (Some(e), "DAY-2" | "DELETE", Some(bp)) => {
            let found = match state.store.get_entity(&actor.org, bp, e).await? {
                Some(f) if crate::access::may_read(state, actor, &f).await? => Some(f),
                _ => None,
            };
            Some(found.ok_or_else(|| ApiError::not_found(format!("entity {e:?} of blueprint {bp:?} was not found")))?)
        }
        (None, "DAY-2" | "DELETE", Some(bp)) => {
            return Err(FieldError::new(
                "entity",
                format!("is required: a {operation} action runs on an entity of blueprint {bp:?}"),
            )
            .into());
        }
        _ => None,
    };
    let perms = permissions(state, &actor.org, &action.identifier).await?;
    if !perms.may_execute(&actor.principal, entity.as_ref().map_or(&[][..], |e| &e.team[..])) {
        let g = &perms.execute;
        return Err(ApiError::forbidden(format!(
            "{} may not run action {action_id:?}: its permissions grant execute to roles {:?}, users {:?}, teams {:?}{}",
            actor.client_id,
            g.roles,
            g.users,
            g.teams,
            if g.owned_by_team { ", and to members of the entity's team" } else { "" }
        )));
    }
    if let Some(e) = &entity
        && !condition_matches(state, &actor.org, &action, &e.identifier).await?
    {
        return Err(FieldError::new(
            "entity",
            format!(
                "entity {:?} does not match the action's trigger.condition, so the action is not offered for it",
                e.identifier
            ),
        )
        .into());
    }
    let given = match &req.properties {
        Value::Null => json!({}),
        v @ Value::Object(_) => v.clone(),
        _ => return Err(FieldError::new("properties", "must be an object of input values").into()),
    };
    let user_inputs = resolve_inputs(state, &actor.org, &trigger["userInputs"], &given, entity.as_ref(), actor).await?;
    let checked = core_action::check_inputs(&user_inputs, &given, &operation).map_err(|e| ApiError::invalid(&e))?;
    check_entity_refs(state, &actor.org, &checked).await?;
    let created = chrono::Utc::now();
    let now = super::audit::iso(created);
    // Policies (§8.4) see the inputs in clear, before encryption.
    let policy_context =
        super::policy::context(actor, &action, bp_id.as_deref(), &checked.values, entity.as_ref(), &now);
    if let Some(policy) = perms.execute.policy.as_ref().filter(|_| !actor.principal.is_admin()) {
        let outcome = super::policy::evaluate(state, &actor.org, policy, &policy_context).await?;
        if !outcome.allows() {
            return Err(ApiError::forbidden(format!(
                "{} may not run action {action_id:?}: its execute policy gave no true condition ({})",
                actor.client_id,
                outcome.explain(&super::policy::conditions(policy))
            )));
        }
    }
    let properties = encrypt_inputs(state, &actor.org, &checked).await?;

    let blueprint = match &bp_id {
        Some(bp) => {
            let b = state.blueprints(&actor.org).await?.get(bp).cloned();
            json!({"identifier": bp, "title": b.as_ref().map(|b| b.title.clone()), "icon": b.and_then(|b| b.icon)})
        }
        None => Value::Null,
    };
    let entity_ref =
        entity.as_ref().map_or(Value::Null, |e| json!({"identifier": e.identifier, "title": e.title, "icon": e.icon}));
    let mut run = new_run(&action, bp_id, entity.map(|e| e.identifier), &actor.client_id, &now);
    run.data.insert("blueprint".into(), blueprint);
    run.data.insert("entity".into(), entity_ref);
    run.data.insert("properties".into(), Value::Object(properties));
    run.data.insert("source".into(), json!(req.source));
    run.data.insert("encryptedProperties".into(), json!(checked.encrypted));
    run.data.insert("operation".into(), json!(operation));
    run.data.insert("origin".into(), json!(actor.user_agent.clone()));
    // A run that needs approval waits, and its approvers are told (`ops/approval.rs`); the
    // others start at once.
    let job = match super::approval::hold(state, &actor.org, &action, &perms, &policy_context, &mut run).await? {
        Some(notify) => notify,
        None => {
            run_timeout::arm(&mut run, created, run_timeout::timeout_for(state, &actor.org, &action).await?);
            NewJob { kind: RUN_JOB.into(), payload: json!({"runId": run.id}), max_attempts: 3 }
        }
    };
    let (run, _) = state.store.create_run(&actor.org, &run, Some(&job)).await?;
    crate::jobs::wake_workers(state);
    Ok(run)
}

/// Does entity `id` match a DAY-2 / DELETE action's `trigger.condition` (a search query, §5.2)?
/// `true` when the action has none. The store's search decides, so the rules mean exactly what
/// they mean in a search.
pub async fn condition_matches(state: &AppState, org: &OrgId, action: &StoredAction, id: &str) -> ApiResult<bool> {
    let trigger = &action.data["trigger"];
    let (Some(cond), Some(bp)) = (trigger.get("condition"), trigger["blueprintIdentifier"].as_str()) else {
        return Ok(true);
    };
    if cond.is_null() {
        return Ok(true);
    }
    let mut q = cond.clone();
    if let Some(o) = q.as_object_mut() {
        o.remove("type");
    }
    let query = json!({"combinator": "and", "rules": [q, {"property": "$identifier", "operator": "=", "value": id}]});
    let query = portolan_core::search::parse_query(&query).map_err(|e| ApiError::from(e.under("trigger.condition")))?;
    let blueprints = state.blueprints(org).await?;
    let req = portolan_store::SearchRequest::new(&blueprints, Some(bp), Some(&query), 1);
    Ok(!state.store.search(org, &req).await?.entities.is_empty())
}

/// The `{"jqQuery"}` slots of the user inputs, evaluated over `{form, entity, user}` (§5.2) and
/// written back; a slot that fails is reported at its path.
async fn resolve_inputs(
    state: &AppState,
    org: &OrgId,
    user_inputs: &Value,
    form: &Value,
    entity: Option<&portolan_core::Entity>,
    actor: &Actor,
) -> ApiResult<Value> {
    let (resolved, failed) = evaluate_user_inputs(state, org, user_inputs, form_context(form, entity, actor)).await?;
    if !failed.is_empty() {
        return Err(ApiError::invalid(&FieldErrors(failed)));
    }
    Ok(resolved)
}

async fn check_entity_refs(state: &AppState, org: &OrgId, checked: &CheckedInputs) -> ApiResult<()> {
    let mut errs = FieldErrors::default();
    for r in &checked.entity_refs {
        if state.store.get_entity(org, &r.blueprint, &r.identifier).await?.is_none() {
            errs.push(
                r.path.clone(),
                format!("names entity {:?} of blueprint {:?}, which does not exist", r.identifier, r.blueprint),
            );
        }
    }
    if errs.0.is_empty() { Ok(()) } else { Err(ApiError::invalid(&errs)) }
}

/// Port's run object (§5.6), with Portolan's `trace` of the calls made and `timeoutAt`
/// ([`portolan_store::run_json`]: automation events carry the same object).
pub fn render_run(run: &Run) -> Value {
    portolan_store::run_json(run)
}

pub async fn load_run(state: &AppState, org: &OrgId, id: &str) -> ApiResult<Run> {
    state.store.get_run(org, id).await?.ok_or_else(|| ApiError::not_found(format!("run {id:?} was not found")))
}

/// Does `actor` see every run of the organization (administrators), or only its own?
pub fn sees_all_runs(actor: &Actor) -> bool {
    actor.principal.is_admin()
}

/// A run `actor` may see: a member's own runs only (another's answers 404, as a missing one).
pub async fn load_visible_run(state: &AppState, actor: &Actor, id: &str) -> ApiResult<Run> {
    let run = load_run(state, &actor.org, id).await?;
    if !sees_all_runs(actor) && run.created_by != actor.client_id && !super::approval::asks(&run, actor) {
        return Err(ApiError::not_found(format!("run {id:?} was not found")));
    }
    Ok(run)
}

/// The permissions of action `id` (the defaults when none were set).
pub async fn permissions(state: &AppState, org: &OrgId, id: &str) -> ApiResult<ActionPermissions> {
    let doc = state.store.action_permissions(org, id).await?;
    Ok(doc.and_then(|d| ActionPermissions::from_stored(&d)).unwrap_or_else(ActionPermissions::defaults))
}

/// Apply a permissions `PATCH` to action `id` (audited); the grants' teams must exist.
pub async fn patch_permissions(
    state: &AppState,
    actor: &Actor,
    id: &str,
    body: &Value,
) -> ApiResult<ActionPermissions> {
    let next = permissions(state, &actor.org, id).await?.patched(body).map_err(ApiError::from)?;
    let mut errs = portolan_core::FieldErrors::default();
    for (key, g) in [("execute", &next.execute), ("approve", &next.approve)] {
        let missing = state.store.missing_teams(&actor.org, &g.teams).await?;
        for (i, t) in g.teams.iter().enumerate().filter(|(_, t)| missing.contains(t)) {
            errs.push(format!("{key}.teams[{i}]"), format!("there is no team {t:?}; create it first (POST /v1/teams)"));
        }
    }
    errs.into_result()?;
    state.store.set_action_permissions(&actor.org, id, &next.to_json(), &audit_ctx(actor)).await?;
    Ok(next)
}

/// Refuse changes to a run that a log ended (`terminationStatus` is final, §5.6).
fn refuse_if_ended(run: &Run) -> Result<(), StoreError> {
    if run.ended_by_log {
        return Err(StoreError::Invalid(FieldError::new(
            "status",
            format!(
                "run {} was ended by a log with terminationStatus {}; it cannot change any more",
                run.id, run.status
            ),
        )));
    }
    Ok(())
}

/// Refuse a status change of a run waiting for approval (only `FAILURE` withdraws it, §5.6)
/// or declined (for good).
fn refuse_unapproved(run: &Run, status: &str) -> Result<(), StoreError> {
    let why = match run.status.as_str() {
        "DECLINED" => format!("run {} was declined; its status can no longer change", run.id),
        "WAITING_FOR_APPROVAL" if status != "FAILURE" => format!(
            "run {} is waiting for approval: approve or decline it with PATCH /v1/actions/runs/{}/approval, or \
             withdraw it with status FAILURE",
            run.id, run.id
        ),
        _ => return Ok(()),
    };
    Err(StoreError::Invalid(FieldError::new("status", why)))
}

/// Set a terminal or in-progress status on `run`, stamping `endedAt`.
pub fn set_status(run: &mut Run, status: &str, at: &str) {
    run.status = status.to_string();
    run.ended_at = TERMINAL.contains(&status).then(|| at.to_string());
    if TERMINAL.contains(&status) {
        run.pending_execution = false;
    }
}

/// Longest `externalRunId` in bytes (a backend's run id or URL; runs are found by it).
pub const MAX_EXTERNAL_RUN_ID: usize = 1000;

/// `PATCH /v1/actions/runs/{id}`: `status`, `statusLabel`, `link`, `summary`, `externalRunId`;
/// each given key overwrites the stored one.
pub async fn patch_run(state: &AppState, actor: &Actor, id: &str, body: &Value) -> ApiResult<Run> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object").into());
    };
    let mut errs = FieldErrors::default();
    for k in obj.keys() {
        if !["status", "statusLabel", "link", "summary", "externalRunId"].contains(&k.as_str()) {
            errs.push(k.clone(), "is not a field of a run update (status, statusLabel, link, summary, externalRunId)");
        }
    }
    let status = match obj.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if TERMINAL.contains(&s.as_str()) || s == "IN_PROGRESS" => Some(s.clone()),
        Some(_) => {
            errs.push("status", "must be \"SUCCESS\", \"FAILURE\" or \"IN_PROGRESS\"");
            None
        }
    };
    for key in ["statusLabel", "summary", "externalRunId"] {
        if obj.get(key).is_some_and(|v| !(v.is_string() || v.is_null())) {
            errs.push(key, "must be a string");
        }
    }
    // Runs are looked up by it through an index, which PostgreSQL cannot build over long keys.
    if let Some(Value::String(s)) = obj.get("externalRunId")
        && s.len() > MAX_EXTERNAL_RUN_ID
    {
        errs.push("externalRunId", format!("must be at most {MAX_EXTERNAL_RUN_ID} bytes (this one is {})", s.len()));
    }
    let link = match obj.get("link") {
        None => None,
        Some(Value::String(s)) => Some(json!([s])),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Some(Value::Array(a.clone())),
        Some(_) => {
            errs.push("link", "must be a URL or an array of URLs");
            None
        }
    };
    if !errs.0.is_empty() {
        return Err(ApiError::invalid(&errs));
    }
    let now = now_iso();
    let mut edit = |run: &mut Run| {
        refuse_if_ended(run)?;
        if let Some(s) = &status {
            // The first terminal status stands: a backend (or Port's agent, which reports a
            // failure twice) cannot overwrite how the run ended, or what its summary says.
            refuse_unapproved(run, s)?;
            if TERMINAL.contains(&run.status.as_str()) {
                return Err(StoreError::Invalid(FieldError::new(
                    "status",
                    format!("run {} has already ended with {}; its status can no longer change", run.id, run.status),
                )));
            }
            set_status(run, s, &now);
        }
        for key in ["statusLabel", "summary"] {
            if let Some(v) = obj.get(key) {
                run.data.insert(key.into(), v.clone());
            }
        }
        if let Some(l) = &link {
            run.data.insert("link".into(), l.clone());
        }
        if let Some(v) = obj.get("externalRunId") {
            run.external_run_id = v.as_str().map(str::to_string);
        }
        run.updated_at = now.clone();
        run.updated_by = actor.client_id.clone();
        Ok(())
    };
    updated(state, state.store.update_run(&actor.org, id, &[], &mut edit).await?)
}

/// `POST /v1/actions/runs/{id}/logs` `{message, terminationStatus?, statusLabel?}`: a log line;
/// with `terminationStatus` the run ends with that status, for good.
pub async fn add_log(state: &AppState, actor: &Actor, id: &str, body: &Value) -> ApiResult<Run> {
    let mut errs = FieldErrors::default();
    let message = match body.get("message") {
        Some(Value::String(m)) => m.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => {
            errs.push("message", "is required: the text of the log line");
            String::new()
        }
    };
    let termination = match body.get("terminationStatus") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if TERMINAL.contains(&s.as_str()) => Some(s.clone()),
        Some(_) => {
            errs.push("terminationStatus", "must be \"SUCCESS\" or \"FAILURE\"");
            None
        }
    };
    let label = match body.get("statusLabel") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.push("statusLabel", "must be a string");
            None
        }
    };
    if !errs.0.is_empty() {
        return Err(ApiError::invalid(&errs));
    }
    let now = now_iso();
    let log = RunLog {
        id: String::new(),
        at: now.clone(),
        message: cut(&message),
        termination_status: termination.clone(),
        status_label: label.clone(),
        user_id: actor.client_id.clone(),
    };
    let mut edit = |run: &mut Run| {
        if termination.is_some() || label.is_some() {
            refuse_if_ended(run)?;
        }
        if let Some(t) = &termination {
            refuse_unapproved(run, t)?;
            set_status(run, t, &now);
            run.ended_by_log = true;
        }
        if let Some(l) = &label {
            run.data.insert("statusLabel".into(), json!(l));
        }
        if termination.is_some() || label.is_some() {
            run.updated_at = now.clone();
            run.updated_by = actor.client_id.clone();
        }
        Ok(())
    };
    updated(state, state.store.update_run(&actor.org, id, std::slice::from_ref(&log), &mut edit).await?)
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_LOG {
        return s.to_string();
    }
    format!("{}… [cut: the line had {} bytes; {MAX_LOG} are kept]", super::audit::byte_prefix(s, MAX_LOG), s.len())
}

/// `PATCH /v1/actions/runs/{id}/response` `{response}`: the backend's answer, kept on the run.
pub async fn set_response(state: &AppState, actor: &Actor, id: &str, body: &Value) -> ApiResult<Run> {
    let response = body.get("response").cloned().unwrap_or(Value::Null);
    let now = now_iso();
    let mut edit = |run: &mut Run| {
        refuse_if_ended(run)?;
        run.data.insert("response".into(), response.clone());
        run.updated_at = now.clone();
        run.updated_by = actor.client_id.clone();
        Ok(())
    };
    updated(state, state.store.update_run(&actor.org, id, &[], &mut edit).await?)
}

/// Record entities written with `?run_id=` (only while the run is in progress, as Port does;
/// a run id that names no run of the organization is a 404 before anything is written).
pub async fn check_run_id(state: &AppState, org: &OrgId, run_id: Option<&str>) -> ApiResult<()> {
    if let Some(id) = run_id {
        load_run(state, org, id).await?;
    }
    Ok(())
}

pub async fn record_affected(state: &AppState, org: &OrgId, run_id: Option<&str>, written: &[(String, String)]) {
    let Some(id) = run_id else { return };
    match state.store.get_run(org, id).await {
        Ok(Some(run)) if run.status == "IN_PROGRESS" => {
            if let Err(e) = state.store.add_run_entities(org, id, written, &now_iso()).await {
                tracing::warn!(run = id, error = %e, "could not record the run's affected entities");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(run = id, error = %e, "could not read the run to record affected entities"),
    }
}

/// Filters of `GET /v1/actions/runs` (Port's): `action_identifier`, `entity`, `blueprint`,
/// `external_run_id`, `active`, `limit`; `before` is Portolan's page cursor (a run's `rid`, the
/// answer's `next`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct RunQuery {
    pub action_identifier: Option<String>,
    pub entity: Option<String>,
    pub blueprint: Option<String>,
    pub external_run_id: Option<String>,
    pub active: Option<bool>,
    pub limit: Option<u32>,
    pub before: Option<i64>,
}

impl RunQuery {
    /// The store's filter: `active` selects in-progress (true) or ended (false) runs.
    pub fn filter(self) -> RunFilter {
        let statuses = match self.active {
            Some(true) => vec!["IN_PROGRESS".into(), "WAITING_FOR_APPROVAL".into()],
            Some(false) => vec!["SUCCESS".into(), "FAILURE".into(), "DECLINED".into()],
            None => vec![],
        };
        RunFilter {
            action: self.action_identifier,
            blueprint: self.blueprint,
            entity: self.entity,
            statuses,
            external_run_id: self.external_run_id,
            created_by: None,
            before: self.before,
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
        }
    }
}

/// The input of a user-inputs jq slot (§5.2): `{form, entity, user}`. `entity` is the entity a
/// DAY-2 / DELETE run is for.
pub fn form_context(form: &Value, entity: Option<&portolan_core::Entity>, actor: &Actor) -> Value {
    json!({
        "form": form,
        "entity": entity.map_or(Value::Null, |e| Value::Object(crate::computed::entity_json(e))),
        "user": {"email": actor.client_id, "userId": actor.client_id, "roles": [], "teams": [], "teamsIdentifiers": []},
    })
}

/// Evaluate the jq slots of `user_inputs` over `input` ([`form_context`]) under the
/// organization's jq budget, off the async runtime. Unlike a run's start, a failing slot does
/// not stop the others: the web UI's run form shows each failure at its slot and renders the
/// rest (`user_inputs` with the evaluated slots written back, failed ones left as they are).
pub async fn evaluate_user_inputs(
    state: &AppState,
    org: &OrgId,
    user_inputs: &Value,
    input: Value,
) -> ApiResult<(Value, Vec<FieldError>)> {
    let slots = core_action::jq_queries(user_inputs);
    if slots.is_empty() {
        return Ok((user_inputs.clone(), vec![]));
    }
    let (jq, budget) = (state.jq.clone(), state.jq.budget_for(&org.0));
    let results = tokio::task::spawn_blocking(move || {
        slots.into_iter().map(|s| (jq.first_in(&budget, &s.query, &input), s)).collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal("jq", e))?;
    let mut failed = Vec::new();
    let mut values = Vec::new();
    for (r, slot) in results {
        match r {
            Ok(v) => values.push((slot.pointer, v)),
            Err(e) => failed
                .push(FieldError::new(format!("trigger.userInputs.{}.jqQuery", slot.path), format!("failed: {e}"))),
        }
    }
    Ok((core_action::resolve(user_inputs, &values), failed))
}

/// The runs `created_by` started (the web UI's "My runs"), newest first, `limit` of them
/// before the cursor `before` (a run's `rid`).
pub async fn runs_of_user(
    state: &AppState,
    org: &OrgId,
    created_by: &str,
    before: Option<i64>,
    limit: u32,
) -> ApiResult<Vec<Run>> {
    let filter = RunFilter { created_by: Some(created_by.to_string()), before, limit, ..RunFilter::default() };
    Ok(state.store.list_runs(org, &filter).await?)
}

/// A run a request updated, after waking a job worker: the update recorded a `RUN_UPDATED`
/// event for the automations listening.
fn updated(state: &AppState, run: Run) -> ApiResult<Run> {
    crate::jobs::wake_workers(state);
    Ok(run)
}
