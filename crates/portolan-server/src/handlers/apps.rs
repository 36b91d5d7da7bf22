//! API credentials (Port's `/v1/apps`) and web users (`DELETE /v1/users/{email}`).
//!
//! Secrets are shown once, when created or rotated; the store keeps their SHA-256 only. Deleting
//! or rotating a credential revokes every token issued for it before, on every node, at once
//! (`auth::Caller` checks the credential on each request).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::auth::{Caller, hash_secret, new_credentials};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::JsonBody;
use crate::ops::audit::{now_iso, record_change};
use crate::state::AppState;

fn app_json(id: &str, name: &str, created_at: &str, secret: Option<&str>) -> Value {
    let mut v = json!({"id": id, "name": name, "enabled": true, "createdAt": created_at, "updatedAt": created_at});
    if let Some(s) = secret {
        v["secret"] = json!(s);
    }
    v
}

fn name_of(body: &Value) -> ApiResult<String> {
    match body.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 200 => Ok(n.trim().to_string()),
        _ => Err(portolan_core::FieldError::new("name", "is required: a non-empty string of at most 200 bytes").into()),
    }
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(String, String, String)> {
    let list = state.store.list_credentials(&caller.org).await?;
    list.into_iter()
        .find(|(cid, _, _)| cid == id)
        .ok_or_else(|| ApiError::not_found(format!("credential (app) {id:?} was not found in this organization")))
}

/// `GET /v1/apps`: the organization's credentials (without secrets).
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let list = state.store.list_credentials(&caller.org).await?;
    let apps: Vec<Value> = list.iter().map(|(id, name, at)| app_json(id, name, at, None)).collect();
    Ok(Json(json!({"ok": true, "apps": apps})))
}

/// `POST /v1/apps` `{name}`: a new credential; its secret is in this answer only.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = name_of(&body)?;
    let (id, secret) = new_credentials();
    let at = now_iso();
    state.store.add_credential(&caller.org, &id, &hash_secret(&secret), &name, &at).await?;
    crate::ops::action::keep_signing_secret(&state, &caller.org, &id, &secret).await?;
    tracing::info!(client_id = %id, by = %caller.client_id, "API credential created");
    record_change(&state, &caller, "credential", "CREATE", &id, Some(json!({"after": {"name": name}}))).await;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "app": app_json(&id, &name, &at, Some(&secret))}))))
}

/// `PUT /v1/apps/{id}` `{name}`: rename.
pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let name = name_of(&body)?;
    let (_, old_name, at) = find(&state, &caller, &id).await?;
    state.store.update_credential(&caller.org, &id, Some(&name), None).await?;
    let diff = json!({"before": {"name": old_name}, "after": {"name": name}});
    record_change(&state, &caller, "credential", "UPDATE", &id, Some(diff)).await;
    Ok(Json(json!({"ok": true, "app": app_json(&id, &name, &at, None)})))
}

/// `POST /v1/apps/{id}/rotate-secret`: a new secret (in this answer only); tokens issued with
/// the old one stop working at once.
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_, name, at) = find(&state, &caller, &id).await?;
    let (_, secret) = new_credentials();
    if !state.store.update_credential(&caller.org, &id, None, Some(&hash_secret(&secret))).await? {
        return Err(ApiError::not_found(format!("credential (app) {id:?} was not found in this organization")));
    }
    crate::ops::action::keep_signing_secret(&state, &caller.org, &id, &secret).await?;
    tracing::info!(client_id = %id, by = %caller.client_id, "API credential secret rotated");
    record_change(&state, &caller, "credential", "UPDATE", &id, Some(json!({"after": {"secret": "rotated"}}))).await;
    Ok(Json(json!({"ok": true, "app": app_json(&id, &name, &at, Some(&secret))})))
}

/// `DELETE /v1/apps/{id}`: tokens issued for it stop working at once. The organization's last
/// credential cannot be deleted (nothing could call the API afterwards).
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let list = state.store.list_credentials(&caller.org).await?;
    if !list.iter().any(|(cid, _, _)| *cid == id) {
        return Err(ApiError::not_found(format!("credential (app) {id:?} was not found in this organization")));
    }
    if list.len() == 1 {
        return Err(ApiError::new(
            ErrorCode::LastCredential,
            "this is the organization's last API credential: create another (POST /v1/apps) before deleting it",
        ));
    }
    state.store.delete_credential(&caller.org, &id).await?;
    tracing::info!(client_id = %id, by = %caller.client_id, "API credential deleted");
    record_change(&state, &caller, "credential", "DELETE", &id, None).await;
    Ok(Json(json!({"ok": true})))
}

/// `DELETE /v1/users/{email}`: remove a web user of the organization; their sessions end at
/// once. The last admin cannot be removed.
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> ApiResult<Json<Value>> {
    crate::ops::people::delete_user(&state, &caller, &email).await?;
    Ok(Json(json!({"ok": true})))
}
