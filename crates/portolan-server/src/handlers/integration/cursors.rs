//! The incremental sync cursor of the latest Ocean (0.48; docs/reference/ocean-protocol.md §7, docs/ocean.md
//! "Latest Ocean"): `GET/PUT/POST /v1/integration/{id}/cursor?kind=&index=`, one per
//! (integration, kind, index), stored as Ocean sends it (`{"primary": "<iso>"}`). PUT of a
//! missing cursor is a 404 so that Ocean falls back to POST.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::FieldError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::load;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::ops::audit::now_iso;
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
    let (kind, index) = (one("kind", &p.kind)?, one("index", &p.index)?);
    super::check_kind("kind", &kind)?;
    super::check_kind("index", &index)?;
    Ok((kind, index))
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
