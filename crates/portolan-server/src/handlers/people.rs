//! `/v1/teams…` and `/v1/users…` (port-api.md §8.2) in Port's shapes: teams keyed by name with
//! their members, users with their role and teams, invitations. The rules are in
//! `ops/people.rs`; the store keeps members by e-mail (`teams.rs`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::ops::people::{self, render_team, render_user, team_not_found, user_not_found};
use crate::state::AppState;

/// `GET /v1/teams`: every team with its members.
pub async fn list_teams(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let teams = state.store.list_teams(&caller.org).await?;
    let people = state.store.list_people(&caller.org).await?;
    Ok(Json(json!({"ok": true, "teams": teams.iter().map(|t| render_team(t, &people)).collect::<Vec<_>>()})))
}

pub async fn get_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let team = state.store.get_team(&caller.org, &name).await?.ok_or_else(|| team_not_found(&name))?;
    let people = state.store.list_people(&caller.org).await?;
    Ok(Json(json!({"ok": true, "team": render_team(&team, &people)})))
}

/// `POST /v1/teams`: `{name, description?, users?}`.
pub async fn create_team(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let team = people::save_team(&state, &caller, None, &body, false).await?;
    let people = state.store.list_people(&caller.org).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "team": render_team(&team, &people)}))))
}

/// `PATCH /v1/teams/{name}`: the fields sent change (`users` replaces the members; a new
/// `name` renames the team, in entities too).
pub async fn patch_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let team = people::save_team(&state, &caller, Some(&name), &body, false).await?;
    let people = state.store.list_people(&caller.org).await?;
    Ok(Json(json!({"ok": true, "team": render_team(&team, &people)})))
}

/// `PUT /v1/teams/{name}`: replace the team (fields left out are cleared).
pub async fn put_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let team = people::save_team(&state, &caller, Some(&name), &body, true).await?;
    let people = state.store.list_people(&caller.org).await?;
    Ok(Json(json!({"ok": true, "team": render_team(&team, &people)})))
}

/// `DELETE /v1/teams/{name}`: the team goes, and leaves every entity's `team`.
pub async fn delete_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    state.store.delete_team(&caller.org, &name, &crate::ops::audit::audit_ctx(&caller)).await?;
    crate::jobs::wake_workers(&state);
    Ok(Json(json!({"ok": true})))
}

/// `GET /v1/users`: the organization's users with their roles and teams.
pub async fn list_users(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let people = state.store.list_people(&caller.org).await?;
    Ok(Json(json!({"ok": true, "users": people.iter().map(render_user).collect::<Vec<_>>()})))
}

pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> ApiResult<Json<Value>> {
    let email = email.trim().to_lowercase();
    let p = state.store.get_person(&caller.org, &email).await?.ok_or_else(|| user_not_found(&email))?;
    Ok(Json(json!({"ok": true, "user": render_user(&p)})))
}

/// `PATCH /v1/users/{email}`: `{roles?, teams?, firstName?, lastName?, status?}`.
pub async fn patch_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let p = people::update_user(&state, &caller, &email, &body).await?;
    Ok(Json(json!({"ok": true, "user": render_user(&p)})))
}

/// `POST /v1/users/invite`: `{invitee: {email, roles?, teams?}}`; answers the invitation with
/// its link's path (`/ui/invite/<token>`, shown once: Portolan sends no e-mail).
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (inv, token) = people::invite(&state, &caller, &body).await?;
    let expires = chrono::DateTime::from_timestamp(inv.expires_at, 0).map(|t| t.to_rfc3339());
    Ok((
        StatusCode::CREATED,
        Json(json!({"ok": true, "invitation": {"email": inv.email, "roles": [{"name": people::role_name(&inv.role)}],
            "expiresAt": expires, "path": format!("/ui/invite/{token}")}})),
    ))
}

/// `POST /v1/rotate-credentials/{email}`: a new personal credential for the user (an admin, or
/// the user themselves): `{ok, credentials: {clientId, clientSecret}}`, the secret shown once.
/// It acts as that user, with their role, teams and permissions; the one it replaces stops
/// working at once, and so do all of them when the user is disabled or removed.
pub async fn rotate_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> ApiResult<Json<Value>> {
    let (client_id, secret) = people::rotate_credentials(&state, &caller, &email).await?;
    Ok(Json(json!({"ok": true, "credentials": {"clientId": client_id, "clientSecret": secret}})))
}
