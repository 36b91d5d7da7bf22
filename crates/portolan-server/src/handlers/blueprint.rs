//! `/v1/blueprints` routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::blueprint_check::{
    BlueprintLookup, check_blueprint, check_change, check_dependents, parse_blueprint,
};
use portolan_core::{Blueprint, FieldErrors};
use portolan_store::{AuditRecord, OrgId, Rename, StoredBlueprint};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::handlers::{audit_ctx, failure_record};
use crate::state::AppState;

mod rename;
pub use rename::{rename_mirror, rename_property, rename_relation};

/// The wire JSON of a stored blueprint, meta fields included.
pub fn blueprint_json(b: &StoredBlueprint) -> Value {
    let mut v = serde_json::to_value(&b.blueprint).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("createdAt".into(), json!(b.created_at));
        m.insert("createdBy".into(), json!(b.created_by));
        m.insert("updatedAt".into(), json!(b.updated_at));
        m.insert("updatedBy".into(), json!(b.updated_by));
    }
    v
}

fn warnings(bp: &Blueprint) -> Vec<String> {
    bp.aggregation_properties
        .keys()
        .map(|k| format!("aggregation property {k:?} is stored, but Portolan does not compute aggregation values yet; entities will not include it"))
        .collect()
}

fn respond(status: StatusCode, b: &StoredBlueprint) -> (StatusCode, Json<Value>) {
    let mut body = json!({"ok": true, "blueprint": blueprint_json(b)});
    let w = warnings(&b.blueprint);
    if !w.is_empty() {
        body["warnings"] = json!(w);
    }
    (status, Json(body))
}

struct Lookup<'a> {
    all: &'a std::collections::HashMap<String, Blueprint>,
}
impl BlueprintLookup for Lookup<'_> {
    fn blueprint(&self, id: &str) -> Option<&Blueprint> {
        self.all.get(id)
    }
}

/// Parse and check a blueprint body, compiling its calculation properties. With `old`, also
/// check that nothing immutable changed.
async fn checked(state: &AppState, caller: &Caller, body: &Value, old: Option<&Blueprint>) -> ApiResult<Blueprint> {
    let bp = parse_blueprint(body)?;
    let all = state.blueprints(&caller.org).await?;
    let mut all = (*all).clone();
    all.insert(bp.identifier.clone(), bp.clone());
    let mut errs = FieldErrors::default();
    if let Some(Err(e)) = old.map(|old| check_change(old, &bp)) {
        errs.0.extend(e.0);
    }
    if let Err(e) = check_blueprint(&bp, &Lookup { all: &all }) {
        errs.0.extend(e.0);
    }
    for (id, calc) in &bp.calculation_properties {
        let path = format!("calculationProperties.{id}.calculation");
        if let Err(e) = state.jq.compile(&calc.calculation) {
            errs.push(path, format!("is not a valid jq expression: {e}"));
        } else if let Some(msg) = trial_run(state, &caller.org, &bp, &calc.calculation).await {
            errs.push(path, msg);
        }
    }
    errs.into_result()?;
    Ok(bp)
}

/// Run a calculation on a sample entity of the blueprint; a filter that does not finish within
/// the jq time budget would stall every read of the blueprint's entities, so it is refused.
async fn trial_run(state: &AppState, org: &OrgId, bp: &Blueprint, filter: &str) -> Option<String> {
    let sample = json!({
        "identifier": "sample", "title": "Sample", "icon": null, "blueprint": bp.identifier, "team": [],
        "properties": {}, "relations": {}, "createdAt": "2024-01-01T00:00:00.000Z", "createdBy": "sample",
        "updatedAt": "2024-01-01T00:00:00.000Z", "updatedBy": "sample"
    });
    let (jq, filter, budget) = (state.jq.clone(), filter.to_string(), state.jq.budget_for(&org.0));
    match tokio::task::spawn_blocking(move || jq.first_in(&budget, &filter, &sample)).await {
        Ok(Err(portolan_jq::JqError::Limit(msg))) => {
            Some(format!("did not finish on a sample entity ({msg}); a calculation must finish within the time budget"))
        }
        _ => None,
    }
}

async fn record_failure(state: &AppState, caller: &Caller, action: &str, id: &str, err: &ApiError) {
    let rec: AuditRecord = failure_record(caller, "blueprint", action, id, Some(id), None, &err.message);
    if let Err(e) = state.store.append_audit(&caller.org, &[rec]).await {
        tracing::warn!(error = %e, "could not record a failed blueprint write in the audit log");
    }
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let list = state.store.list_blueprints(&caller.org).await?;
    let blueprints: Vec<Value> = list.iter().map(blueprint_json).collect();
    Ok(Json(json!({"ok": true, "blueprints": blueprints})))
}

pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let b = state
        .store
        .get_blueprint(&caller.org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("blueprint {id:?} was not found")))?;
    Ok(Json(json!({"ok": true, "blueprint": blueprint_json(&b)})))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = body.get("identifier").and_then(Value::as_str).unwrap_or_default().to_string();
    let result = async {
        let bp = checked(&state, &caller, &body, None).await?;
        let stored = state.store.create_blueprint(&caller.org, &bp, &audit_ctx(&caller)).await?;
        state.blueprints_changed(&caller.org);
        Ok(respond(StatusCode::CREATED, &stored))
    }
    .await;
    if let Err(e) = &result {
        record_failure(&state, &caller, "CREATE", &id, e).await;
    }
    result
}

async fn replace(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: Value,
    renames: Option<&[Rename]>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let result = async {
        let old = state
            .store
            .get_blueprint(&caller.org, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("blueprint {id:?} was not found")))?;
        let mut body = body;
        if let Some(m) = body.as_object_mut() {
            m.entry("identifier").or_insert_with(|| json!(id));
        }
        // The rename routes change keys on purpose and rewrite dependent mirror paths after.
        let bp = checked(state, caller, &body, renames.is_none().then_some(&old.blueprint)).await?;
        if renames.is_none() {
            let before = state.blueprints(&caller.org).await?;
            let mut after = (*before).clone();
            after.insert(bp.identifier.clone(), bp.clone());
            let dependents = before.values().filter(|b| b.identifier != id);
            check_dependents(dependents, &Lookup { all: &before }, &Lookup { all: &after })?;
        }
        let renames = renames.unwrap_or_default();
        let stored = state.store.update_blueprint(&caller.org, id, &bp, renames, &audit_ctx(caller)).await?;
        state.blueprints_changed(&caller.org);
        Ok(respond(StatusCode::OK, &stored))
    }
    .await;
    if let Err(e) = &result {
        record_failure(state, caller, "UPDATE", id, e).await;
    }
    result
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    replace(&state, &caller, &id, body, None).await
}

/// PATCH: top-level fields replace; the keyed maps (properties, relations, mirror, calculation
/// and aggregation properties) merge key by key.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    match patched(&state, &caller, &id, &body).await {
        Ok(merged) => replace(&state, &caller, &id, merged, None).await,
        Err(e) => {
            record_failure(&state, &caller, "UPDATE", &id, &e).await;
            Err(e)
        }
    }
}

/// The stored blueprint `id` with `patch` applied.
async fn patched(state: &AppState, caller: &Caller, id: &str, patch: &Value) -> ApiResult<Value> {
    let Some(patch) = patch.as_object() else {
        return Err(ApiError::from(portolan_core::FieldError::new("", "the body must be a JSON object")));
    };
    let old = state
        .store
        .get_blueprint(&caller.org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("blueprint {id:?} was not found")))?;
    let mut merged = serde_json::to_value(&old.blueprint).map_err(|e| ApiError::internal("serialize", e))?;
    let Some(m) = merged.as_object_mut() else { return Err(ApiError::internal("patch", "blueprint is not an object")) };
    for (k, v) in patch {
        match (k.as_str(), v) {
            ("schema", Value::Object(s)) => {
                let schema = m.entry("schema").or_insert_with(|| json!({}));
                for (sk, sv) in s {
                    if let (Some(Value::Object(cur)), "properties", Value::Object(new)) =
                        (schema.get_mut(sk), sk.as_str(), sv)
                    {
                        merge_keys(cur, new);
                    } else {
                        schema[sk] = sv.clone();
                    }
                }
            }
            (
                "relations" | "mirrorProperties" | "calculationProperties" | "aggregationProperties",
                Value::Object(new),
            ) => match m.get_mut(k) {
                Some(Value::Object(cur)) => merge_keys(cur, new),
                _ => {
                    m.insert(k.clone(), v.clone());
                }
            },
            _ => {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(merged)
}

fn merge_keys(cur: &mut Map<String, Value>, new: &Map<String, Value>) {
    for (k, v) in new {
        if v.is_null() {
            cur.remove(k);
        } else {
            cur.insert(k.clone(), v.clone());
        }
    }
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let result = state.store.delete_blueprint(&caller.org, &id, &audit_ctx(&caller)).await.map_err(ApiError::from);
    if let Err(e) = &result {
        record_failure(&state, &caller, "DELETE", &id, e).await;
    }
    result?;
    state.blueprints_changed(&caller.org);
    Ok(Json(json!({"ok": true})))
}
