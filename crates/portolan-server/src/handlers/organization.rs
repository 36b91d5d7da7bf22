//! `/v1/organization`: the caller's organization, its settings (`PATCH` merges `settings`;
//! Port's execution agent sets `portAgentStreamerName` there) and, read-only, its quotas and
//! usage (the operator sets quotas: `portolan org quota`), and `/v1/organization/secrets`
//! (write-only values: answers never contain them; `ops/secrets.rs`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::FieldError;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::ops::audit::audit_ctx;
use crate::ops::secrets;
use crate::state::AppState;

/// Most keys the settings object may hold (it is small configuration, not storage).
const MAX_SETTINGS: usize = 100;

async fn render_org(state: &AppState, caller: &Caller) -> ApiResult<Value> {
    let org = state
        .store
        .get_org(&caller.org)
        .await?
        .ok_or_else(|| ApiError::not_found("the caller's organization was not found"))?;
    let mut settings = state.store.org_settings(&caller.org).await?;
    // Single sign-on has its own route (it holds an encrypted secret and is checked on save).
    if let Some(o) = settings.as_object_mut() {
        o.remove(crate::sso::SETTINGS_KEY);
    }
    let q = state.store.quotas(&caller.org).await?;
    let usage = state.store.usage(&caller.org).await?;
    Ok(json!({"id": org.id.0, "name": org.name, "createdAt": org.created_at, "featureFlags": [], "settings": settings,
              "quotas": {"maxUsers": q.max_users, "maxEntities": q.max_entities},
              "usage": {"users": usage.users, "entities": usage.entities}}))
}

/// `GET /v1/organization`.
pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"ok": true, "organization": render_org(&state, &caller).await?})))
}

/// `PATCH /v1/organization` `{settings: {…}}`: the given settings keys replace the stored ones
/// (`null` removes a key); audited. `runTimeoutSeconds` (the default run timeout of the
/// organization's actions) is checked.
pub async fn patch(State(state): State<AppState>, caller: Caller, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object {settings}").into());
    };
    if let Some(k) = obj.keys().find(|k| k.as_str() != "settings") {
        return Err(FieldError::new(k.clone(), "cannot be changed here; only settings can").into());
    }
    let Some(given) = obj.get("settings").and_then(Value::as_object) else {
        return Err(FieldError::new("settings", "is required: an object of settings to change").into());
    };
    let mut settings: Map<String, Value> =
        state.store.org_settings(&caller.org).await?.as_object().cloned().unwrap_or_default();
    for (k, v) in given {
        if k == crate::sso::SETTINGS_KEY {
            let msg = "single sign-on is set with PUT /v1/organization/sso (its settings are checked there)";
            return Err(FieldError::new(format!("settings.{k}"), msg).into());
        }
        if k == "runTimeoutSeconds" {
            let mut errs = portolan_core::FieldErrors::default();
            portolan_core::action::check_run_timeout(&mut errs, "settings.runTimeoutSeconds", v);
            errs.into_result().map_err(|e| crate::error::ApiError::invalid(&e))?;
        }
        if v.is_null() {
            settings.remove(k);
        } else {
            settings.insert(k.clone(), v.clone());
        }
    }
    if settings.len() > MAX_SETTINGS {
        return Err(FieldError::new("settings", format!("may hold at most {MAX_SETTINGS} keys")).into());
    }
    state.store.set_org_settings(&caller.org, &Value::Object(settings), &audit_ctx(&caller)).await?;
    Ok(Json(json!({"ok": true, "organization": render_org(&state, &caller).await?})))
}

/// `GET /v1/organization/sso`: the single sign-on settings (never the client secret), the
/// redirect URI to register at the identity provider, and the sign-in link.
pub async fn get_sso(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let sso = crate::sso::load(&state, &caller.org).await?;
    Ok(Json(json!({"ok": true, "sso": render_sso(&state, &caller, &headers, &sso).await?})))
}

/// `PUT /v1/organization/sso` `{oidc: {issuer, clientId, clientSecret, scopes, groupsClaim,
/// displayName, enabled} | null, localPasswords}`: checked (the provider's discovery document
/// is read when enabled), audited.
pub async fn put_sso(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let sso = crate::sso::save(&state, &caller, &body).await?;
    Ok(Json(json!({"ok": true, "sso": render_sso(&state, &caller, &headers, &sso).await?})))
}

async fn render_sso(
    state: &AppState,
    caller: &Caller,
    headers: &axum::http::HeaderMap,
    sso: &crate::sso::Sso,
) -> ApiResult<Value> {
    let org = state.store.get_org(&caller.org).await?.map(|o| o.name).unwrap_or_default();
    Ok(crate::sso::render(sso, &crate::sso::base_url(state, headers), &org, state.clock.now()))
}

pub async fn list_secrets(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let all = state.store.list_secrets(&caller.org).await?;
    Ok(Json(json!({"ok": true, "secrets": all.iter().map(secrets::render).collect::<Vec<_>>()})))
}

pub async fn create_secret(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let s = secrets::save(&state, &caller, &body, None).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "secret": secrets::render(&s)}))))
}

pub async fn get_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = state
        .store
        .get_secret(&caller.org, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("secret {name:?} was not found")))?;
    Ok(Json(json!({"ok": true, "secret": secrets::render(&s)})))
}

pub async fn patch_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let s = secrets::save(&state, &caller, &body, Some(&name)).await?;
    Ok(Json(json!({"ok": true, "secret": secrets::render(&s)})))
}

pub async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    state.store.delete_secret(&caller.org, &name, &audit_ctx(&caller)).await?;
    Ok(Json(json!({"ok": true})))
}
