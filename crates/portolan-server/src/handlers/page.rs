//! `/v1/pages…`: Port's pages (port-api.md §9) — catalog pages, dashboards, the home page,
//! folders — and widget-level changes. The rules are in `ops/page.rs`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_store::SaveMode;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::ops::page;
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let pages = page::readable(&state, &caller, state.store.list_pages(&caller.org).await?).await?;
    Ok(Json(json!({"ok": true, "pages": pages.iter().map(page::render).collect::<Vec<_>>()})))
}

/// `POST /v1/pages` → 201 `{ok, identifier, page}` (Port answers `{ok, identifier}`).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let p = page::save(&state, &caller, &body, None, SaveMode::Create).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "identifier": p.identifier, "page": page::render(&p)}))))
}

pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let p = page::load(&state, &caller, &id).await?;
    Ok(Json(json!({"ok": true, "page": page::render(&p)})))
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    page::check_update(&state, &caller, &id).await?;
    let p = page::save(&state, &caller, &body, Some(&id), SaveMode::Update).await?;
    Ok(Json(json!({"ok": true, "identifier": p.identifier, "page": page::render(&p)})))
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    page::delete(&state, &caller, &id).await?;
    Ok(Json(json!({"ok": true})))
}

pub async fn patch_widget(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, widget)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    page::check_update(&state, &caller, &id).await?;
    let p = page::change_widget(&state, &caller, &id, &widget, Some(&body)).await?;
    Ok(Json(json!({"ok": true, "page": page::render(&p)})))
}

pub async fn delete_widget(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, widget)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    page::check_update(&state, &caller, &id).await?;
    let p = page::change_widget(&state, &caller, &id, &widget, None).await?;
    Ok(Json(json!({"ok": true, "page": page::render(&p)})))
}

/// `GET /v1/pages/{id}/permissions` (admins): `{ok, permissions: {read, update}}`.
pub async fn get_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = page::permissions(&state, &caller.org, &id).await?;
    Ok(Json(json!({"ok": true, "permissions": p.to_json()})))
}

/// `PATCH /v1/pages/{id}/permissions` (admins) `{read?, update?}`: only the keys given change.
pub async fn patch_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let p = page::patch_permissions(&state, &caller, &id, &body).await?;
    Ok(Json(json!({"ok": true, "permissions": p.to_json()})))
}
