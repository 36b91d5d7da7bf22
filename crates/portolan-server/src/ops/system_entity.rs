//! Writes to `_user` and `_team` entities are changes to people and teams (port-api.md §8.2):
//! a `_user` entity of type `Service Account` that does not exist yet is a new service account
//! (its one-time credentials in the answer), `status`, `port_role`, `moderated_blueprints` and
//! `$team` change the person, `description` the team; deleting the entity removes the person or
//! the team. The change and the entity's write are one store transaction
//! (`Teams::write_system_entity`). What an organization added to the blueprints is written as
//! on any entity, under the blueprint's permissions; changing a person or a team takes Admin.

use std::sync::Arc;

use portolan_core::system::{self, SERVICE_ACCOUNT, SERVICE_ACCOUNT_DOMAIN, TEAM, USER};
use portolan_core::{Blueprint, Entity, EntityInput, FieldError, FieldErrors};
use portolan_store::{PersonEdit, SaveMode, SystemChange, TeamWrite, User, Written};
use serde_json::{Value, json};

use super::entity::{Op, WriteOptions, meta, prepare, rejection_error};
use super::people::{check_team_name, checked_edit, random_id, valid_email};
use super::{Actor, audit::audit_ctx};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A `_user` / `_team` write's outcome: the entity, and a new service account's credentials
/// (client id, secret), shown once.
#[derive(Debug)]
pub struct SystemWritten {
    pub written: Written,
    pub credentials: Option<(String, String)>,
}

/// The answer's `additionalData` for a new service account.
pub fn additional_data(credentials: &Option<(String, String)>) -> Option<Value> {
    credentials.as_ref().map(|(id, secret)| json!({"credentials": {"clientId": id, "clientSecret": secret}}))
}

fn admin_only(what: &str) -> ApiError {
    ApiError::forbidden(format!(
        "{what} changes a person or a team of the organization: it takes the Admin role (an organization \
         credential or an administrator's)"
    ))
}

fn str_prop<'a>(e: &'a Entity, key: &str) -> Option<&'a str> {
    e.properties.get(key).and_then(Value::as_str)
}

/// Write a `_user` or `_team` entity (`bp` is one of them).
pub async fn write(
    state: &AppState,
    actor: &Actor,
    bp: &Arc<Blueprint>,
    path_id: Option<&str>,
    body: &Value,
    op: Op,
    opts: WriteOptions,
) -> ApiResult<SystemWritten> {
    let input = EntityInput::parse(body).map_err(ApiError::from)?;
    let body_id = input.identifier_str().map_err(ApiError::from)?;
    let Some(id) = path_id.or(body_id).map(str::to_string) else {
        let what = if bp.identifier == USER { "the person's e-mail" } else { "the team's name" };
        return Err(FieldError::new("identifier", format!("is required: {what}")).into());
    };
    let stored = state.store.get_entity(&actor.org, &bp.identifier, &id).await?;
    let mode = op.mode(stored.is_some(), &bp.identifier, &id).map_err(|rej| rejection_error(&rej))?;
    let mut wanted = portolan_core::entity::compose(bp, &id, &input, stored.as_ref(), mode, &meta(actor))
        .map_err(|e| ApiError::invalid(&e))?;
    if let Some(s) = &stored {
        keep_unnamed(body, s, &mut wanted);
    }
    if touches_people(stored.as_ref(), &wanted) && !actor.principal.is_admin() {
        return Err(admin_only(&format!("this write of {} entity {id:?}", bp.identifier)));
    }
    let (change, credentials) = match bp.identifier.as_str() {
        USER => user_change(state, actor, stored.as_ref(), &wanted, opts.show_credentials).await?,
        _ => (team_change(state, actor, stored.as_ref(), &wanted).await?, None),
    };
    if opts.validation_only {
        let written = Written { entity: wanted, created: stored.is_none() };
        return Ok(SystemWritten { written, credentials: None });
    }
    // The entity is written over the mirror the change made (so a create merges into it).
    let wop = if op == Op::Create { Op::UpsertMerge } else { op };
    let guard = if change.is_some() { None } else { crate::access::write_guard(state, actor, &bp.identifier).await? };
    let w = prepare(bp, Some(&id), body, wop, meta(actor), opts.create_missing_related, guard)
        .map_err(|(_, rej)| rejection_error(&rej))?;
    match state.store.write_system_entity(&actor.org, change, w, &audit_ctx(actor)).await? {
        Ok(written) => {
            crate::jobs::wake_workers(state);
            Ok(SystemWritten { written, credentials })
        }
        Err(rej) => Err(rejection_error(&rej)),
    }
}

/// A write that replaces the entity (PUT, upsert) keeps the person's or team's fields it does not
/// name: leaving `port_type` or `team` out of a body is not a change of them.
fn keep_unnamed(body: &Value, stored: &Entity, wanted: &mut Entity) {
    for key in system::own_properties(&stored.blueprint) {
        if body.get("properties").and_then(|p| p.get(*key)).is_none()
            && let Some(v) = stored.properties.get(*key)
        {
            wanted.properties.insert((*key).to_string(), v.clone());
        }
    }
    if body.get("team").is_none() {
        wanted.team = stored.team.clone();
    }
}

/// Does writing `wanted` over `stored` create or change a person or a team (Admin only)?
fn touches_people(stored: Option<&Entity>, wanted: &Entity) -> bool {
    let Some(s) = stored else { return true };
    let own = system::own_properties(&wanted.blueprint);
    own.iter().any(|k| *k != "size" && s.properties.get(*k) != wanted.properties.get(*k))
        || (wanted.blueprint == USER && s.team != wanted.team)
}

/// The entity's names for what `PATCH /v1/users/{email}` checks (`roles`, `teams`, `status`).
fn entity_paths(e: ApiError) -> ApiError {
    let Some(details) = e.details.as_deref().and_then(Value::as_array) else { return e };
    let mut errs = FieldErrors::default();
    for d in details {
        let path = d["path"].as_str().unwrap_or_default();
        let path = match path.split_once('[').map_or(path, |(head, _)| head) {
            "roles" => "properties.port_role".to_string(),
            "status" => "properties.status".to_string(),
            "teams" => path.replacen("teams", "team", 1),
            _ => path.to_string(),
        };
        errs.push(path, d["message"].as_str().unwrap_or_default());
    }
    ApiError::invalid(&errs)
}

/// What writing `wanted` over `stored` changes of the person, and a new service account's
/// credentials (made only where the answer can show them: `show_credentials`).
async fn user_change(
    state: &AppState,
    actor: &Actor,
    stored: Option<&Entity>,
    wanted: &Entity,
    show_credentials: bool,
) -> ApiResult<(Option<SystemChange>, Option<(String, String)>)> {
    let email = wanted.identifier.as_str();
    let kind = str_prop(wanted, "port_type");
    let Some(stored) = stored else {
        if !show_credentials {
            return Err(FieldError::new(
                "identifier",
                format!(
                    "{email:?} is not a user: service accounts are created one at a time \
                     (POST /v1/blueprints/_user/entities), whose answer shows their credentials once"
                ),
            )
            .into());
        }
        let mut errs = FieldErrors::default();
        if kind != Some(SERVICE_ACCOUNT) {
            errs.push(
                "properties.port_type",
                format!(
                    "must be {SERVICE_ACCOUNT:?}: only service accounts are created as {USER} entities; people join \
                     by invitation (POST /v1/users/invite) or single sign-on"
                ),
            );
        }
        if !valid_email(email)
            || email != email.to_lowercase()
            || !email.ends_with(&format!("@{SERVICE_ACCOUNT_DOMAIN}"))
        {
            errs.push(
                "identifier",
                format!("must be a lower-case e-mail address ending @{SERVICE_ACCOUNT_DOMAIN} (a service account)"),
            );
        }
        errs.into_result()?;
        if state.store.user_by_email(email).await?.is_some() {
            return Err(ApiError::conflict(format!("{email} already has an account")));
        }
        let edit = person_edit(state, actor, email, wanted, None).await?;
        let role = edit.role.clone().unwrap_or_else(|| "member".into());
        let user = User {
            id: crate::web::session::new_user_id(),
            org: actor.org.clone(),
            email: email.to_string(),
            password_hash: "!service-account".into(),
            role,
            created_at: super::audit::now_iso(),
        };
        let (client_id, secret) = crate::auth::new_credentials();
        let secret_hash = crate::auth::hash_secret(&secret);
        let change = SystemChange::ServiceAccount { user, client_id: client_id.clone(), secret_hash, edit };
        return Ok((Some(change), Some((client_id, secret))));
    };
    if kind != str_prop(stored, "port_type") {
        let msg = format!("cannot change (it is {:?})", str_prop(stored, "port_type").unwrap_or(system::STANDARD));
        return Err(FieldError::new("properties.port_type", msg).into());
    }
    let edit = person_edit(state, actor, email, wanted, Some(stored)).await?;
    Ok(((edit != PersonEdit::default()).then(|| SystemChange::Person { email: email.to_string(), edit }), None))
}

/// The person edit `wanted` asks for (what differs from `stored`), checked as
/// `PATCH /v1/users/{email}` checks its body.
async fn person_edit(
    state: &AppState,
    actor: &Actor,
    email: &str,
    wanted: &Entity,
    stored: Option<&Entity>,
) -> ApiResult<PersonEdit> {
    let changed = |key: &str| stored.is_none_or(|s| s.properties.get(key) != wanted.properties.get(key));
    let mut body = serde_json::Map::new();
    if changed("port_role") || changed("moderated_blueprints") {
        let moderates: Vec<String> = match wanted.properties.get("moderated_blueprints") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let role = str_prop(wanted, "port_role").unwrap_or("Member");
        if role == "Moderator" && moderates.is_empty() {
            let msg = "must name the blueprints a Moderator moderates (port_role is \"Moderator\")";
            return Err(FieldError::new("properties.moderated_blueprints", msg).into());
        }
        let base = if role == "Admin" { "Admin" } else { "Member" };
        let roles: Vec<String> =
            std::iter::once(base.to_string()).chain(moderates.iter().map(|b| format!("{b}-moderator"))).collect();
        body.insert("roles".into(), json!(roles));
    }
    if changed("status")
        && let Some(s) = str_prop(wanted, "status")
    {
        body.insert("status".into(), json!(s));
    }
    if stored.is_none_or(|s| s.team != wanted.team) {
        body.insert("teams".into(), json!(wanted.team));
    }
    if body.is_empty() {
        return Ok(PersonEdit::default());
    }
    let body = Value::Object(body);
    if stored.is_some() {
        return checked_edit(state, actor, email, &body).await.map_err(entity_paths);
    }
    // A new account: nothing to compare with, no last-admin rule to keep.
    let (role, moderates, teams) = checked_new(state, actor, &body).await?;
    let status = body.get("status").and_then(Value::as_str).map(str::to_string);
    Ok(PersonEdit { role, moderates, status, teams, ..PersonEdit::default() })
}

/// A new service account's role, moderated blueprints and teams, checked.
async fn checked_new(
    state: &AppState,
    actor: &Actor,
    body: &Value,
) -> ApiResult<(Option<String>, Option<Vec<String>>, Option<Vec<String>>)> {
    let roles: Vec<&str> = body["roles"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let role = roles.first().map(|r| if *r == "Admin" { "admin".to_string() } else { "member".to_string() });
    let moderates: Vec<String> =
        roles.iter().filter_map(|r| r.strip_suffix("-moderator")).map(str::to_string).collect();
    let blueprints = state.blueprints(&actor.org).await?;
    let mut errs = FieldErrors::default();
    for bp in moderates.iter().filter(|b| !blueprints.contains_key(*b)) {
        errs.push("properties.moderated_blueprints", format!("there is no blueprint {bp:?}"));
    }
    errs.into_result()?;
    let teams = match body["teams"].as_array() {
        Some(t) => {
            let names: Vec<String> = t.iter().filter_map(Value::as_str).map(str::to_string).collect();
            Some(super::people::existing_teams(state, &actor.org, names, "team").await?)
        }
        None => None,
    };
    Ok((role, Some(moderates), teams))
}

/// What writing `wanted` over `stored` changes of the team.
async fn team_change(
    state: &AppState,
    actor: &Actor,
    stored: Option<&Entity>,
    wanted: &Entity,
) -> ApiResult<Option<SystemChange>> {
    let name = wanted.identifier.clone();
    if let Err(m) = check_team_name(&name) {
        return Err(FieldError::new("identifier", format!("is the team's name and {m}")).into());
    }
    let description = str_prop(wanted, "description").map(str::to_string);
    match stored {
        None => {
            let write = TeamWrite { name, id: random_id("team_"), description, provider: "Port".into(), members: None };
            Ok(Some(SystemChange::Team { current: None, write, mode: SaveMode::Create }))
        }
        Some(s) if str_prop(s, "description") != description.as_deref() => {
            let team =
                state.store.get_team(&actor.org, &name).await?.ok_or_else(|| super::people::team_not_found(&name))?;
            if team.provider != "Port" {
                return Err(ApiError::conflict(format!(
                    "team {name:?} is managed by single sign-on ({}): change it at the identity provider",
                    team.provider
                )));
            }
            let write =
                TeamWrite { name: name.clone(), id: team.id, description, provider: team.provider, members: None };
            Ok(Some(SystemChange::Team { current: Some(name), write, mode: SaveMode::Update }))
        }
        Some(_) => Ok(None),
    }
}

/// Delete `_user` / `_team` entities: each person or team is removed (Admin only).
pub async fn delete(state: &AppState, actor: &Actor, bp: &str, ids: &[String]) -> ApiResult<Vec<(String, String)>> {
    if !actor.principal.is_admin() {
        return Err(admin_only(&format!("deleting {bp} entities")));
    }
    // Every one is checked before any goes (the API's deletes are all or nothing).
    if bp == USER {
        let users = state.store.list_users(&actor.org).await?;
        if let Some(id) = ids.iter().find(|id| !users.iter().any(|u| &u.email == *id)) {
            return Err(ApiError::not_found(format!("user {id:?} was not found in this organization")));
        }
        let mut admins = users.iter().filter(|u| u.role == "admin").peekable();
        if admins.peek().is_some_and(|u| ids.contains(&u.email)) && admins.all(|u| ids.contains(&u.email)) {
            return Err(ApiError::new(
                crate::error::ErrorCode::LastAdmin,
                "these are all of the organization's admins: invite another admin before removing them",
            ));
        }
    } else {
        for id in ids {
            state.store.get_team(&actor.org, id).await?.ok_or_else(|| super::people::team_not_found(id))?;
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if bp == USER {
            super::people::delete_user(state, actor, id).await?;
        } else {
            state.store.delete_team(&actor.org, id, &audit_ctx(actor)).await?;
        }
        out.push((bp.to_string(), id.clone()));
    }
    crate::jobs::wake_workers(state);
    Ok(out)
}

/// The refusal of an operation system blueprints do not allow (deleting them or all their
/// entities at once).
pub fn protected(bp: &str, what: &str) -> ApiResult<()> {
    if system::is_system(bp) {
        let others = if bp == USER { "DELETE /v1/users/{email}" } else { "DELETE /v1/teams/{name}" };
        return Err(ApiError::forbidden(format!(
            "{bp} is a system blueprint (Portolan keeps its entities in line with the organization's {}): {what} is \
             not allowed; remove them one at a time ({others})",
            if bp == USER { "people" } else { "teams" }
        )));
    }
    Ok(())
}

/// Is `bp` `_user` or `_team`?
pub fn is_system(bp: &str) -> bool {
    bp == USER || bp == TEAM
}
