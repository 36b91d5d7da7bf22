//! `/v1/actions…`: self-service actions and their runs in Port's shapes (port-api.md §5):
//! action CRUD, starting runs, the run's lifecycle (PATCH, logs, response), affected entities,
//! and the polling protocol of Port's execution agent (claim-pending, ack; §5.9). The work is
//! in `ops/action.rs`; invocation is the `action_run` job.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::FieldError;
use portolan_store::{MAX_CLAIM, SaveMode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::ops::action::{self, AGENT_PAYLOAD_KEY, RunRequest, agent_payload_aad, render_action, render_run};
use crate::state::AppState;

/// `GET /v1/actions` filters (Port's): `action_identifier` (repeatable), `blueprint_identifier`,
/// `trigger_type` (`self-service` | `automation`), `published`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ListParams {
    /// One identifier or several (`action_identifier=a&action_identifier=b`).
    action_identifier: Option<Value>,
    blueprint_identifier: Option<String>,
    trigger_type: Option<String>,
    published: Option<bool>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(p): QueryParams<ListParams>,
) -> ApiResult<Json<Value>> {
    let all = state.store.list_actions(&caller.org).await?;
    let wanted: Vec<&str> = match &p.action_identifier {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let out: Vec<Value> = all
        .iter()
        .filter(|a| wanted.is_empty() || wanted.contains(&a.identifier.as_str()))
        .filter(|a| {
            p.blueprint_identifier.as_ref().is_none_or(|bp| {
                let t = &a.data["trigger"];
                t["blueprintIdentifier"].as_str() == Some(bp) || t["event"]["blueprintIdentifier"].as_str() == Some(bp)
            })
        })
        .filter(|a| p.trigger_type.as_ref().is_none_or(|t| a.data["trigger"]["type"].as_str() == Some(t)))
        .filter(|a| {
            p.published.is_none_or(|want| a.data.get("publish").and_then(Value::as_bool).unwrap_or(true) == want)
        })
        .map(render_action)
        .collect();
    Ok(Json(json!({"ok": true, "actions": out})))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let saved = action::save_action(&state, &caller, &body, None, SaveMode::Create).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "action": render_action(&saved)}))))
}

pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let a = action::load_action(&state, &caller.org, &id).await?;
    Ok(Json(json!({"ok": true, "action": render_action(&a)})))
}

/// `PUT /v1/actions/{id}`: replace the action (it must exist).
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let saved = action::save_action(&state, &caller, &body, Some(&id), SaveMode::Update).await?;
    Ok(Json(json!({"ok": true, "action": render_action(&saved)})))
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    action::delete_action(&state, &caller, &id).await?;
    Ok(Json(json!({"ok": true})))
}

/// `POST /v1/actions/{id}/runs` `{properties, entity?}` → 202 `{ok, run}`: the run is stored with
/// its invocation job before the answer.
pub async fn create_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object {properties, entity}").into());
    };
    if let Some(k) = obj.keys().find(|k| !["properties", "entity"].contains(&k.as_str())) {
        return Err(FieldError::new(k.clone(), "is not a field of a run request (properties, entity)").into());
    }
    let entity = match obj.get("entity") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.clone()),
        Some(_) => return Err(FieldError::new("entity", "must be the entity's identifier (a string)").into()),
    };
    let req = RunRequest { properties: obj.get("properties").cloned().unwrap_or(Value::Null), entity, source: "API" };
    let run = action::create_run(&state, &caller, &id, req).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"ok": true, "run": render_run(&run)}))))
}

/// `GET /v1/actions/runs` ([`action::RunQuery`]) → `{ok, runs, next}`, newest first.
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<action::RunQuery>,
) -> ApiResult<Json<Value>> {
    let mut f = q.filter();
    // A member sees their own runs.
    if !action::sees_all_runs(&caller) {
        f.created_by = Some(caller.client_id.clone());
    }
    let runs = state.store.list_runs(&caller.org, &f).await?;
    let next = (runs.len() == f.limit as usize).then(|| runs.last().map(|r| r.rid)).flatten();
    Ok(Json(json!({"ok": true, "runs": runs.iter().map(render_run).collect::<Vec<_>>(), "next": next})))
}

pub async fn get_run(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let run = action::load_visible_run(&state, &caller, &id).await?;
    Ok(Json(json!({"ok": true, "run": render_run(&run)})))
}

pub async fn patch_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let run = action::patch_run(&state, &caller, &id, &body).await?;
    Ok(Json(json!({"ok": true, "run": render_run(&run)})))
}

/// `PATCH /v1/actions/runs/{id}/approval` `{status: "APPROVE" | "DECLINE", description?}` →
/// 201 `{ok, run}` (§5.7): the run starts once approved, ends `DECLINED` when declined.
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let run = crate::ops::approval::decide(&state, &caller, &id, &body).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "run": render_run(&run)}))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ApproversParams {
    include_pending_approvers: Option<bool>,
}

/// `GET /v1/actions/runs/{id}/approvers?include_pending_approvers=` →
/// `{ok, approvers: [{userId, state, description}]}`.
pub async fn approvers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<ApproversParams>,
) -> ApiResult<Json<Value>> {
    let pending = p.include_pending_approvers.unwrap_or(false);
    let list = crate::ops::approval::approvers(&state, &caller, &id, pending).await?;
    Ok(Json(json!({"ok": true, "approvers": list})))
}

pub async fn patch_response(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let run = action::set_response(&state, &caller, &id, &body).await?;
    Ok(Json(json!({"ok": true, "run": render_run(&run)})))
}

pub async fn add_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let run = action::add_log(&state, &caller, &id, &body).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "run": render_run(&run)}))))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct LogParams {
    /// The last log id seen (`log_<n>`): lines after it.
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/actions/runs/{id}/logs` → `{ok, runLogs: [{id, message, terminationStatus, statusLabel,
/// createdAt, userId}]}`, oldest first.
pub async fn list_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<LogParams>,
) -> ApiResult<Json<Value>> {
    action::load_visible_run(&state, &caller, &id).await?;
    let after = match p.after.as_deref() {
        None => None,
        Some(a) => Some(
            a.strip_prefix("log_")
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| FieldError::new("after", "must be a log id (log_<n>) from an earlier answer"))?,
        ),
    };
    let logs = state.store.list_run_logs(&caller.org, &id, after, p.limit.unwrap_or(1000)).await?;
    let out: Vec<Value> = logs
        .iter()
        .map(|l| {
            json!({"id": l.id, "runId": id, "message": l.message, "terminationStatus": l.termination_status,
                   "statusLabel": l.status_label, "userId": l.user_id, "createdAt": l.at})
        })
        .collect();
    Ok(Json(json!({"ok": true, "runLogs": out})))
}

/// `GET /v1/actions/runs/{id}/entities` (Portolan): the entities written with `?run_id=`.
pub async fn run_entities(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    action::load_visible_run(&state, &caller, &id).await?;
    let es = state.store.run_entities(&caller.org, &id).await?;
    let out: Vec<Value> = es.iter().map(|(bp, id)| json!({"blueprint": bp, "identifier": id})).collect();
    Ok(Json(json!({"ok": true, "entities": out})))
}

/// `POST /v1/actions/runs/claim-pending` `{installationId, limit, invocationMethod}` → `{runs}`:
/// runs waiting for an execution agent, each held for the claim's lease; the payload has its
/// secrets rendered (the agent calls the backend with them).
pub async fn claim_pending(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let installation = body.get("installationId").and_then(Value::as_str).unwrap_or("_PORT_EXEC_AGENT").to_string();
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(100).clamp(1, u64::from(MAX_CLAIM)) as u32;
    if let Some(m) = body.get("invocationMethod").and_then(Value::as_str)
        && m != "WEBHOOK"
    {
        return Ok(Json(json!({"ok": true, "runs": []})));
    }
    let runs = state.store.claim_pending_runs(&caller.org, &installation, limit, action::CLAIM_LEASE).await?;
    let mut out = Vec::with_capacity(runs.len());
    for run in &runs {
        let mut v = render_run(run);
        if let Some(enc) = run.data.get(AGENT_PAYLOAD_KEY).and_then(Value::as_str) {
            let key = state.config.secrets_key.as_ref().ok_or_else(|| {
                ApiError::internal("claim", "a run's agent payload is encrypted and no secrets key is configured")
            })?;
            let clear = key
                .decrypt(enc, &agent_payload_aad(&caller.org, &run.id))
                .map_err(|e| ApiError::internal("claim: the agent payload does not decrypt", e))?;
            v["payload"] = serde_json::from_str(&clear).map_err(|e| ApiError::internal("claim", e))?;
        }
        out.push(v);
    }
    Ok(Json(json!({"ok": true, "runs": out})))
}

/// `PATCH /v1/actions/runs/ack` `{runIds}` → `{ackedCount}`: the claimed runs stop waiting;
/// a run another agent acknowledged first is not counted (the agent then skips it).
pub async fn ack(State(state): State<AppState>, caller: Caller, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let ids: Vec<String> = match body.get("runIds") {
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && a.len() <= MAX_CLAIM as usize => {
            a.iter().filter_map(Value::as_str).map(str::to_string).collect()
        }
        _ => {
            return Err(
                FieldError::new("runIds", format!("is required: an array of at most {MAX_CLAIM} run ids")).into()
            );
        }
    };
    let n = state.store.ack_runs(&caller.org, &ids).await?;
    Ok(Json(json!({"ok": true, "ackedCount": n})))
}

/// `POST /v1/workflows/runs/claim-pending`: the agent polls workflow node runs too; Portolan
/// has no workflows, so there is never one.
pub async fn claim_workflow_runs(_caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"ok": true, "nodeRuns": []})))
}

/// `GET /v1/actions/{id}/permissions`: `{ok, permissions: {execute, approve}}` (the defaults when
/// none were set).
pub async fn get_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = action::permissions(&state, &caller.org, &id).await?;
    Ok(Json(json!({"ok": true, "permissions": p.to_json()})))
}

/// `PATCH /v1/actions/{id}/permissions` `{execute?, approve?}`: only the keys given change.
pub async fn patch_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let p = action::patch_permissions(&state, &caller, &id, &body).await?;
    Ok(Json(json!({"ok": true, "permissions": p.to_json()})))
}
