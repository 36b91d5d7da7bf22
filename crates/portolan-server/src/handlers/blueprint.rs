//! `/v1/blueprints` routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_store::StoredBlueprint;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::ops::blueprint::{self, RenameKind};
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

fn respond(status: StatusCode, b: &StoredBlueprint) -> (StatusCode, Json<Value>) {
    (status, Json(json!({"ok": true, "blueprint": blueprint_json(b)})))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let list = state.store.list_blueprints(&caller.org).await?;
    let blueprints: Vec<Value> = list.iter().map(blueprint_json).collect();
    Ok(Json(json!({"ok": true, "blueprints": blueprints})))
}

/// `GET /v1/blueprints/{id}/changelog` → `{ok, changelog: {destination, delivered, pending,
/// failing: [{entity, attempts, lastError, nextAttemptAt}]}}`: where the blueprint's changes go
/// and what waits (`jobs/changelog.rs`).
pub async fn changelog(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let b = state.blueprints(&caller.org).await?.get(&id).cloned();
    let b = b.ok_or_else(|| ApiError::not_found(format!("blueprint {id:?} was not found")))?;
    let status = state.store.changelog_status(&caller.org, &id).await?;
    let failing: Vec<Value> = status
        .failing
        .iter()
        .map(|(e, n, err, next)| json!({"entity": e, "attempts": n, "lastError": err, "nextAttemptAt": next}))
        .collect();
    let delivered = crate::jobs::changelog::webhook_url(b.changelog_destination.as_ref()).is_some();
    let note = match (&b.changelog_destination, delivered) {
        (None, _) => Some("the blueprint has no changelogDestination: its changes are not sent"),
        (Some(_), false) => Some(
            "only WEBHOOK destinations without agent are delivered by this server (Port's agent reads changelogs \
             from Kafka, which Portolan does not run)",
        ),
        _ => None,
    };
    Ok(Json(json!({"ok": true, "changelog": {"destination": b.changelog_destination, "delivered": delivered,
        "note": note, "pending": status.pending, "failing": failing}})))
}

/// `GET /v1/blueprints/system/{id}/structure`: the structure Portolan gives a system blueprint
/// (`_user`, `_team`), before any extension (Port's Terraform provider reads it).
pub async fn system_structure(_caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let structure = portolan_core::system::structure(&id)
        .ok_or_else(|| ApiError::not_found(format!("{id:?} is not a system blueprint (they are _user and _team)")))?;
    Ok(Json(json!({"ok": true, "blueprint": structure})))
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
    let stored = blueprint::create(&state, &caller, &body).await?;
    Ok(respond(StatusCode::CREATED, &stored))
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let stored = blueprint::put(&state, &caller, &id, body).await?;
    Ok(respond(StatusCode::OK, &stored))
}

/// PATCH: top-level fields replace; the keyed maps (properties, relations, mirror, calculation
/// and aggregation properties) merge key by key.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let stored = blueprint::patch(&state, &caller, &id, &body).await?;
    Ok(respond(StatusCode::OK, &stored))
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    blueprint::delete(&state, &caller, &id).await?;
    Ok(Json(json!({"ok": true})))
}

async fn rename(
    state: AppState,
    caller: Caller,
    (bp, key): (String, String),
    body: Value,
    kind: RenameKind,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = body.get(kind.field()).and_then(Value::as_str);
    let stored = blueprint::rename(&state, &caller, &bp, &key, kind, new).await?;
    Ok(respond(StatusCode::OK, &stored))
}

/// `PATCH /v1/blueprints/{id}/properties/{key}/rename` `{newPropertyName}`.
pub async fn rename_property(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    rename(state, caller, path, body, RenameKind::Property).await
}

/// `PATCH /v1/blueprints/{id}/mirror/{key}/rename` `{newMirrorName}`.
pub async fn rename_mirror(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    rename(state, caller, path, body, RenameKind::Mirror).await
}

/// `PATCH /v1/blueprints/{id}/relations/{key}/rename` `{newRelationIdentifier}`.
pub async fn rename_relation(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    rename(state, caller, path, body, RenameKind::Relation).await
}

/// `GET /v1/blueprints/{id}/permissions`: `{ok, permissions: {entities: {…}}}` (the defaults
/// when none were set).
pub async fn get_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    crate::ops::entity::blueprint(&state, &caller.org, &id).await?;
    let perms = crate::access::permissions(&state, &caller.org, &id).await?;
    Ok(Json(json!({"ok": true, "permissions": perms.to_json()})))
}

/// `PATCH /v1/blueprints/{id}/permissions` `{entities: {read?, register?, update?, unregister?,
/// updateProperties?, updateRelations?}}`: only the keys given change (Port's semantics).
pub async fn patch_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let perms = blueprint::patch_permissions(&state, &caller, &id, &body).await?;
    Ok(Json(json!({"ok": true, "permissions": perms.to_json()})))
}
