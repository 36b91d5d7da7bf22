//! `/v1/blueprints` routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::blueprint_check::{BlueprintLookup, check_blueprint, parse_blueprint};
use portolan_core::{Blueprint, FieldErrors};
use portolan_store::{AuditRecord, Rename, StoredBlueprint};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::handlers::{audit_ctx, failure_record};
use crate::state::AppState;

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

/// Parse and check a blueprint body, compiling its calculation properties.
async fn checked(state: &AppState, caller: &Caller, body: &Value) -> ApiResult<Blueprint> {
    let bp = parse_blueprint(body)?;
    let all = state.blueprints(&caller.org).await?;
    let mut all = (*all).clone();
    all.insert(bp.identifier.clone(), bp.clone());
    let mut errs = match check_blueprint(&bp, &Lookup { all: &all }) {
        Ok(()) => FieldErrors::default(),
        Err(e) => e,
    };
    for (id, calc) in &bp.calculation_properties {
        if let Err(e) = state.jq.compile(&calc.calculation) {
            errs.push(format!("calculationProperties.{id}.calculation"), format!("is not a valid jq expression: {e}"));
        }
    }
    errs.into_result()?;
    Ok(bp)
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
        let bp = checked(&state, &caller, &body).await?;
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

/// Keys renamed or retyped between `old` and `new`: types of existing properties are immutable.
fn check_immutable(old: &Blueprint, new: &Blueprint) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    for (k, p) in &new.schema.properties {
        if let Some(o) = old.schema.properties.get(k) {
            if o.ty != p.ty {
                errs.push(
                    format!("schema.properties.{k}.type"),
                    format!(
                        "cannot change from {} to {}: a property's type is immutable; add a new property instead",
                        o.ty.as_str(),
                        p.ty.as_str()
                    ),
                );
            }
        }
    }
    for (k, r) in &new.relations {
        if let Some(o) = old.relations.get(k) {
            if o.many != r.many {
                errs.push(format!("relations.{k}.many"), "cannot be changed after the relation is created");
            }
            if o.target != r.target {
                errs.push(format!("relations.{k}.target"), "cannot be changed after the relation is created");
            }
        }
    }
    errs.into_result()
}

async fn replace(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: Value,
    renames: &[Rename],
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
        let bp = checked(state, caller, &body).await?;
        if renames.is_empty() {
            check_immutable(&old.blueprint, &bp)?;
        }
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
    replace(&state, &caller, &id, body, &[]).await
}

/// PATCH: top-level fields replace; the keyed maps (properties, relations, mirror, calculation
/// and aggregation properties) merge key by key.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(patch) = body.as_object() else {
        return Err(ApiError::from(portolan_core::FieldError::new("", "the body must be a JSON object")));
    };
    let old = state
        .store
        .get_blueprint(&caller.org, &id)
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
    replace(&state, &caller, &id, merged, &[]).await
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

/// Which map a rename route touches.
#[derive(Clone, Copy)]
pub enum RenameKind {
    Property,
    Mirror,
    Relation,
}

async fn rename(
    state: AppState,
    caller: Caller,
    bp_id: String,
    key: String,
    body: Value,
    kind: RenameKind,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let field = match kind {
        RenameKind::Property => "newPropertyName",
        RenameKind::Mirror => "newMirrorName",
        RenameKind::Relation => "newRelationIdentifier",
    };
    let Some(new) = body.get(field).and_then(Value::as_str).map(str::to_string) else {
        return Err(portolan_core::FieldError::new(field, "is required (a string)").into());
    };
    let old = state
        .store
        .get_blueprint(&caller.org, &bp_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("blueprint {bp_id:?} was not found")))?;
    let mut bp = old.blueprint.clone();
    let (renamed, rename) = match kind {
        RenameKind::Property => {
            let r = rename_key(&mut bp.schema.properties, &key, &new);
            for req in &mut bp.schema.required {
                if *req == key {
                    *req = new.clone();
                }
            }
            (r, Some(Rename::Property { from: key.clone(), to: new.clone() }))
        }
        RenameKind::Mirror => (rename_key(&mut bp.mirror_properties, &key, &new), None),
        RenameKind::Relation => {
            (rename_key(&mut bp.relations, &key, &new), Some(Rename::Relation { from: key.clone(), to: new.clone() }))
        }
    };
    if !renamed {
        return Err(ApiError::not_found(format!("{key:?} was not found on blueprint {bp_id:?}")));
    }
    let body = serde_json::to_value(&bp).map_err(|e| ApiError::internal("serialize", e))?;
    replace(&state, &caller, &bp_id, body, rename.as_slice()).await
}

fn rename_key<V: Clone>(m: &mut indexmap::IndexMap<String, V>, from: &str, to: &str) -> bool {
    let Some(idx) = m.get_index_of(from) else { return false };
    let Some((_, v)) = m.shift_remove_index(idx) else { return false };
    m.shift_insert(idx, to.to_string(), v);
    true
}

pub async fn rename_property(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, key)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    rename(state, caller, bp, key, body, RenameKind::Property).await
}

pub async fn rename_mirror(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, key)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    rename(state, caller, bp, key, body, RenameKind::Mirror).await
}

pub async fn rename_relation(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, key)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    rename(state, caller, bp, key, body, RenameKind::Relation).await
}
