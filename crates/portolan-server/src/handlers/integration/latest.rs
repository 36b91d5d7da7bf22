//! What the latest Ocean (0.48) calls beyond 0.12.9 and that needs more than a shape
//! (docs/reference/ocean-protocol.md §7; docs/ocean.md "Latest Ocean"):
//!
//! - the incremental sync cursor, `GET/PUT/POST /v1/integration/{id}/cursor?kind=&index=`, one
//!   per (integration, kind, index), stored as Ocean sends it (`{"primary": "<iso>"}`); PUT of a
//!   missing cursor is a 404 so that Ocean falls back to POST;
//! - the metrics ingest URL (`integration.metricAttributes.ingestUrl` =
//!   `<base>/v1/integration/{id}/metrics`): `POST …/syncMetrics`, `PUT
//!   …/syncMetrics/resync/{eventId}/kind/{kind}` and `POST …/heartbeat`, each kept as a line of
//!   the integration's event log (source `ocean`, event `sync_metrics` / `heartbeat`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::FieldError;
use portolan_store::IntegrationLog;
use serde::Deserialize;
use serde_json::{Value, json};

use super::events::running_resync;
use super::load;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::handlers::now_iso;
use crate::state::AppState;

/// Query of the cursor routes: which resource of the mapping (`kind` and its `index` in
/// `config.resources`).
#[derive(Debug, Default, Deserialize)]
pub struct CursorParams {
    kind: Option<Value>,
    index: Option<Value>,
}

fn cursor_key(p: &CursorParams) -> ApiResult<(String, String)> {
    let one = |name: &str, v: &Option<Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Array(_)) => Err(FieldError::new(name, "must be given once")),
        _ => Err(FieldError::new(
            name,
            "is required: the query is ?kind=<kind>&index=<the resource's index in config.resources>",
        )),
    };
    Ok((one("kind", &p.kind)?, one("index", &p.index)?))
}

/// The cursor of a PUT/POST body: `{"cursor": {...}}` (or the object itself).
fn cursor_of(body: &Value) -> ApiResult<Value> {
    match body.get("cursor") {
        Some(c @ Value::Object(_)) => Ok(c.clone()),
        Some(_) => Err(FieldError::new("cursor", "must be an object, e.g. {\"primary\": \"<ISO date-time>\"}").into()),
        None if body.is_object() => Ok(body.clone()),
        None => Err(FieldError::new("cursor", "is required: {\"cursor\": {\"primary\": \"<ISO date-time>\"}}").into()),
    }
}

/// `GET /v1/integration/{id}/cursor?kind=&index=` → `{cursor}`; 404 when none is stored.
pub async fn get_cursor(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<CursorParams>,
) -> ApiResult<Json<Value>> {
    let (kind, index) = cursor_key(&p)?;
    load(&state, &caller, &id).await?;
    match state.store.integration_cursor(&caller.org, &id, &kind, &index).await? {
        Some(c) => Ok(Json(json!({"ok": true, "cursor": c}))),
        None => Err(ApiError::not_found(format!(
            "integration {id:?} has no cursor for kind {kind:?} index {index:?}; create it with POST"
        ))),
    }
}

/// `PUT /v1/integration/{id}/cursor?kind=&index=` `{cursor}`: replace an existing cursor; 404
/// when there is none (Ocean then POSTs it).
pub async fn put_cursor(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<CursorParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let (kind, index) = cursor_key(&p)?;
    let cursor = cursor_of(&body)?;
    load(&state, &caller, &id).await?;
    if !state.store.update_integration_cursor(&caller.org, &id, &kind, &index, &cursor, &now_iso()).await? {
        return Err(ApiError::not_found(format!(
            "integration {id:?} has no cursor for kind {kind:?} index {index:?}; create it with POST"
        )));
    }
    Ok(Json(json!({"ok": true, "cursor": cursor})))
}

/// `POST /v1/integration/{id}/cursor?kind=&index=` `{cursor}`: create (or replace) the cursor.
pub async fn post_cursor(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<CursorParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (kind, index) = cursor_key(&p)?;
    let cursor = cursor_of(&body)?;
    load(&state, &caller, &id).await?;
    state.store.save_integration_cursor(&caller.org, &id, &kind, &index, &cursor, &now_iso()).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "cursor": cursor}))))
}

/// Keep one metrics line Ocean sent in the integration's event log.
async fn log_ocean(
    state: &AppState,
    caller: &Caller,
    id: &str,
    level: &str,
    event: &str,
    message: String,
    extra: Value,
) -> ApiResult<()> {
    load(state, caller, id).await?;
    let resync = running_resync(state, &caller.org, id).await.map(|r| r.id);
    let line = IntegrationLog {
        id: String::new(),
        at: now_iso(),
        level: level.into(),
        source: "ocean".into(),
        event: event.into(),
        resync_id: resync,
        message,
        extra,
    };
    state.store.append_integration_logs(&caller.org, id, &[line]).await?;
    Ok(())
}

/// `POST /v1/integration/{id}/metrics/syncMetrics` `{syncKindsMetrics: [...]}`.
pub async fn post_sync_metrics(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let Some(metrics) = body.get("syncKindsMetrics").filter(|m| m.is_array()) else {
        return Err(FieldError::new("syncKindsMetrics", "is required: an array of per-kind sync metrics").into());
    };
    let n = metrics.as_array().map_or(0, Vec::len);
    let msg = format!("sync metrics of {n} kinds");
    log_ocean(&state, &caller, &id, "INFO", "sync_metrics", msg, json!({"syncKindsMetrics": metrics})).await?;
    Ok(Json(json!({"ok": true})))
}

/// `PUT /v1/integration/{id}/metrics/syncMetrics/resync/{eventId}/kind/{kind}` `{syncKindMetrics}`.
pub async fn put_kind_sync_metrics(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, event_id, kind)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let Some(metrics) = body.get("syncKindMetrics").filter(|m| m.is_object()) else {
        return Err(FieldError::new("syncKindMetrics", "is required: an object with the kind's sync metrics").into());
    };
    let msg = format!("sync metrics of kind {kind:?} (event {event_id})");
    let extra = json!({"eventId": event_id, "kind": kind, "syncKindMetrics": metrics});
    log_ocean(&state, &caller, &id, "INFO", "sync_metrics", msg, extra).await?;
    Ok(Json(json!({"ok": true})))
}

/// `POST /v1/integration/{id}/metrics/heartbeat` `{eventId}`.
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    if !body.is_object() {
        return Err(FieldError::new("", "the body must be a JSON object {eventId}").into());
    }
    let event_id = body.get("eventId").cloned().unwrap_or(Value::Null);
    let msg = match event_id.as_str() {
        Some(e) => format!("heartbeat (event {e})"),
        None => "heartbeat".to_string(),
    };
    log_ocean(&state, &caller, &id, "DEBUG", "heartbeat", msg, json!({"eventId": event_id})).await?;
    Ok(Json(json!({"ok": true})))
}
