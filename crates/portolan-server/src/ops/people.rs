//! Users and teams (port-api.md §8.2): checking team and user bodies with every error at its
//! path, invitations (the API's and the web UI's), and rendering both in Port's shapes. Roles
//! are Port's `Admin` and `Member` (stored as `admin` / `member`, the web UI's roles).

use portolan_core::error::join_path;
use portolan_core::{FieldError, FieldErrors};
use portolan_store::{Invitation, OrgId, Person, PersonEdit, SaveMode, Team, TeamWrite};
use serde_json::{Map, Value, json};

use crate::auth::{hash_secret, random_bytes};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::Actor;
use crate::ops::audit::audit_ctx;
use crate::state::AppState;

/// Longest team name.
pub const MAX_TEAM_NAME: usize = 100;
/// Most members one team body may list.
pub const MAX_TEAM_MEMBERS: usize = 10_000;

/// A plausible e-mail address (what the web UI and the API accept for invitations).
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && s.len() <= 254
        && !s.contains(char::is_whitespace)
}

/// Port's team name rule: no `;`, `#`, `/`, `?`, and no whitespace at either end.
pub fn check_team_name(name: &str) -> Result<(), String> {
    let bad = |c: char| matches!(c, ';' | '#' | '/' | '?');
    if name.is_empty() || name.chars().count() > MAX_TEAM_NAME {
        return Err(format!("must be 1 to {MAX_TEAM_NAME} characters"));
    }
    if let Some(c) = name.chars().find(|c| bad(*c)) {
        return Err(format!("must not contain {c:?} (team names cannot hold ; # / ?)"));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err("must not start or end with whitespace".into());
    }
    Ok(())
}

/// A team as Port answers it.
pub fn render_team(t: &Team, people: &[Person]) -> Value {
    let users: Vec<Value> = t
        .members
        .iter()
        .map(|email| match people.iter().find(|p| &p.email == email) {
            Some(p) => json!({"email": p.email, "firstName": p.first_name, "lastName": p.last_name,
                              "status": p.status}),
            None => json!({"email": email, "status": "Invited"}),
        })
        .collect();
    json!({"id": t.id, "name": t.name, "description": t.description, "provider": t.provider,
           "createdAt": t.created_at, "updatedAt": t.updated_at, "users": users})
}

/// Port's role name of a stored role.
pub fn role_name(role: &str) -> &'static str {
    if role == "admin" { "Admin" } else { "Member" }
}

/// A user as Port answers it.
pub fn render_user(p: &Person) -> Value {
    json!({"id": p.user_id, "email": p.email, "firstName": p.first_name, "lastName": p.last_name,
           "status": p.status, "type": p.kind, "providers": p.providers, "createdAt": p.created_at,
           "teams": p.teams, "teamsIdentifiers": p.teams, "roles": roles_json(p)})
}

/// Port's `roles` of a user: `Admin` or `Member`, then `<blueprint>-moderator`s.
fn roles_json(p: &Person) -> Vec<Value> {
    std::iter::once(role_name(&p.role).to_string())
        .chain(p.moderates.iter().map(|b| format!("{b}-moderator")))
        .map(|name| json!({"name": name}))
        .collect()
}

pub(crate) fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", crate::auth::hex(&random_bytes::<10>()))
}

fn strings(errs: &mut FieldErrors, v: &Value, path: &str, max: usize) -> Vec<String> {
    let Some(items) = v.as_array() else {
        errs.push(path, "must be an array of strings");
        return Vec::new();
    };
    if items.len() > max {
        errs.push(path, format!("must hold at most {max} items"));
        return Vec::new();
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => out.push(s.to_string()),
            None => errs.push(join_path(path, &format!("[{i}]")), "must be a string"),
        }
    }
    out
}

fn only_keys(errs: &mut FieldErrors, obj: &Map<String, Value>, allowed: &[&str]) {
    for k in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errs.push(k.as_str(), format!("is not a field of this object (fields: {})", allowed.join(", ")));
    }
}

/// Create (`current` None, mode Create) or change (`current` the name in the URL) a team from
/// Port's body `{name, description?, users?: [emails]}`; `PUT` (`replace`) clears what it
/// leaves out. Every member must be a user of the organization.
pub async fn save_team(
    state: &AppState,
    actor: &Actor,
    current: Option<&str>,
    body: &Value,
    replace: bool,
) -> ApiResult<Team> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object (a team)").into());
    };
    let mut errs = FieldErrors::default();
    only_keys(&mut errs, obj, &["name", "description", "users", "id", "provider", "createdAt", "updatedAt"]);
    let old = match current {
        Some(name) => Some(state.store.get_team(&actor.org, name).await?.ok_or_else(|| team_not_found(name))?),
        None => None,
    };
    // Port: teams an identity provider provides are read-only; their members follow its groups.
    if let Some(t) = old.as_ref().filter(|t| t.provider != "Port") {
        let msg = format!(
            "team {:?} is provided by single sign-on ({}): its members follow the identity provider's groups at each sign-in; change the groups there (deleting the team is allowed)",
            t.name, t.provider
        );
        return Err(ApiError::new(ErrorCode::InvalidRequest, msg));
    }
    let name = match obj.get("name") {
        Some(Value::String(n)) => n.clone(),
        Some(_) => {
            errs.push("name", "must be a string");
            String::new()
        }
        None => match &old {
            Some(o) if !replace => o.name.clone(),
            _ => {
                errs.push("name", "is required");
                String::new()
            }
        },
    };
    if let Err(m) = check_team_name(&name)
        && !name.is_empty()
    {
        errs.push("name", m);
    }
    let description = match obj.get("description") {
        None if !replace => old.as_ref().and_then(|o| o.description.clone()),
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.chars().count() <= 1000 => Some(d.clone()),
        Some(_) => {
            errs.push("description", "must be a string of at most 1,000 characters or null");
            None
        }
    };
    let members = match obj.get("users") {
        Some(v) => Some(strings(&mut errs, v, "users", MAX_TEAM_MEMBERS)),
        None if replace => Some(Vec::new()),
        None => None,
    };
    let members = match members {
        Some(list) => {
            let people = state.store.list_people(&actor.org).await?;
            let mut out = Vec::with_capacity(list.len());
            for (i, e) in list.iter().enumerate() {
                let email = e.trim().to_lowercase();
                if people.iter().any(|p| p.email == email) {
                    out.push(email);
                } else {
                    let msg =
                        format!("{e:?} is not a user of this organization; invite them first (POST /v1/users/invite)");
                    errs.push(format!("users[{i}]"), msg);
                }
            }
            Some(out)
        }
        None => None,
    };
    errs.into_result()?;
    let w = TeamWrite { name, id: random_id("team_"), description, provider: "Port".into(), members };
    let mode = if current.is_some() { SaveMode::Update } else { SaveMode::Create };
    let team = state.store.save_team(&actor.org, current, &w, mode, &audit_ctx(actor)).await?;
    // Its `_team` entity's upkeep may have given jobs work.
    crate::jobs::wake_workers(state);
    Ok(team)
}

pub fn team_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("team {name:?} was not found"))
}

pub fn user_not_found(email: &str) -> ApiError {
    ApiError::not_found(format!("user {email:?} was not found in this organization"))
}

/// Teams named in `names` that exist, or a 422 at `path[i]` for each that does not.
pub(crate) async fn existing_teams(
    state: &AppState,
    org: &OrgId,
    names: Vec<String>,
    path: &str,
) -> ApiResult<Vec<String>> {
    let missing = state.store.missing_teams(org, &names).await?;
    let mut errs = FieldErrors::default();
    for (i, n) in names.iter().enumerate() {
        if missing.contains(n) {
            errs.push(format!("{path}[{i}]"), format!("team {n:?} does not exist; create it first (POST /v1/teams)"));
        }
    }
    errs.into_result()?;
    Ok(names)
}

/// The stored role and moderated blueprints of Port's `roles` array: `Admin` or `Member` (at
/// most one; `Member` when only moderator roles are given) and any `<blueprint>-moderator`s.
fn roles_of(errs: &mut FieldErrors, v: &Value, path: &str) -> Option<(String, Vec<String>)> {
    let roles = strings(errs, v, path, 100);
    let mut base = Vec::new();
    let mut moderates = Vec::new();
    for (i, r) in roles.iter().enumerate() {
        match r.as_str() {
            "Admin" => base.push("admin"),
            "Member" => base.push("member"),
            _ => match r.strip_suffix("-moderator") {
                Some(bp) if !bp.is_empty() => moderates.push(bp.to_string()),
                _ => errs.push(
                    format!("{path}[{i}]"),
                    format!("{r:?} is not a role: use Admin, Member or <blueprint>-moderator"),
                ),
            },
        }
    }
    if base.len() > 1 {
        errs.push(path, "holds both Admin and Member: give one of them");
        return None;
    }
    Some((base.first().copied().unwrap_or("member").to_string(), moderates))
}

/// The stored role of an invitation's `roles`: exactly one of `Admin`, `Member`.
fn role_of(errs: &mut FieldErrors, v: &Value, path: &str) -> Option<String> {
    let roles = strings(errs, v, path, 10);
    match roles.as_slice() {
        [r] if r == "Admin" => Some("admin".into()),
        [r] if r == "Member" => Some("member".into()),
        [r] if r.ends_with("-moderator") => {
            let msg = format!(
                "{r:?}: an invitation gives Admin or Member; make the user a moderator once they have signed up \
                 (PATCH /v1/users/{{email}} with roles)"
            );
            errs.push(format!("{path}[0]"), msg);
            None
        }
        _ => {
            errs.push(path, "must be [\"Admin\"] or [\"Member\"]");
            None
        }
    }
}

/// `PATCH /v1/users/{email}`: `{roles?, teams?, firstName?, lastName?, status?}`. The last
/// active admin cannot lose the role or be disabled; disabling ends the user's sessions.
pub async fn update_user(state: &AppState, actor: &Actor, email: &str, body: &Value) -> ApiResult<Person> {
    let email = email.trim().to_lowercase();
    let edit = checked_edit(state, actor, &email, body).await?;
    let person = state.store.update_person(&actor.org, &email, &edit, &audit_ctx(actor)).await?;
    // Its `_user` (and `_team`) entities' upkeep may have given jobs work.
    crate::jobs::wake_workers(state);
    Ok(person)
}

/// The edit of a `PATCH /v1/users/{email}` body (also what a `_user` entity write changes),
/// checked: teams and moderated blueprints exist, the last active admin stays one.
pub async fn checked_edit(state: &AppState, actor: &Actor, email: &str, body: &Value) -> ApiResult<PersonEdit> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object").into());
    };
    let mut errs = FieldErrors::default();
    only_keys(&mut errs, obj, &["roles", "teams", "firstName", "lastName", "status"]);
    let mut edit = PersonEdit::default();
    if let Some(v) = obj.get("roles")
        && let Some((role, moderates)) = roles_of(&mut errs, v, "roles")
    {
        edit.role = Some(role);
        edit.moderates = Some(moderates);
    }
    let teams = obj.get("teams").map(|v| strings(&mut errs, v, "teams", 1000));
    for (key, slot) in [("firstName", &mut edit.first_name), ("lastName", &mut edit.last_name)] {
        match obj.get(key) {
            None => {}
            Some(Value::Null) => *slot = Some(None),
            Some(Value::String(s)) if s.chars().count() <= 100 => *slot = Some(Some(s.clone())),
            Some(_) => errs.push(key, "must be a string of at most 100 characters or null"),
        }
    }
    match obj.get("status") {
        None => {}
        Some(Value::String(s)) if s == "Active" || s == "Disabled" => edit.status = Some(s.clone()),
        Some(_) => errs.push("status", "must be \"Active\" or \"Disabled\""),
    }
    errs.into_result()?;
    if let Some(t) = teams {
        edit.teams = Some(existing_teams(state, &actor.org, t, "teams").await?);
    }
    if let Some(m) = &edit.moderates {
        let blueprints = state.blueprints(&actor.org).await?;
        let mut errs = FieldErrors::default();
        for bp in m.iter().filter(|b| !blueprints.contains_key(*b)) {
            errs.push("roles", format!("\"{bp}-moderator\": there is no blueprint {bp:?}"));
        }
        errs.into_result()?;
    }
    let people = state.store.list_people(&actor.org).await?;
    let Some(person) = people.iter().find(|p| p.email == email) else {
        return Err(user_not_found(email));
    };
    let stays_admin = edit.role.as_deref().unwrap_or(&person.role) == "admin"
        && edit.status.as_deref().unwrap_or(&person.status) == "Active";
    let active_admins = people.iter().filter(|p| p.role == "admin" && p.status == "Active").count();
    if person.role == "admin" && person.status == "Active" && !stays_admin && active_admins == 1 {
        let msg = format!("{email} is the organization's last active admin: make another user admin first");
        return Err(ApiError::new(ErrorCode::LastAdmin, msg));
    }
    Ok(edit)
}

/// Remove the user `email` (`DELETE /v1/users/{email}`, or their `_user` entity deleted); their
/// sessions and credentials end at once. The last admin cannot be removed.
pub async fn delete_user(state: &AppState, actor: &Actor, email: &str) -> ApiResult<()> {
    let email = email.trim().to_lowercase();
    let users = state.store.list_users(&actor.org).await?;
    let Some(user) = users.iter().find(|u| u.email == email) else {
        return Err(ApiError::not_found(format!("user {email:?} was not found in this organization")));
    };
    if user.role == "admin" && users.iter().filter(|u| u.role == "admin").count() == 1 {
        return Err(ApiError::new(
            ErrorCode::LastAdmin,
            format!("{email} is the organization's last admin: invite another admin before removing them"),
        ));
    }
    state.store.delete_user(&actor.org, &user.id, &audit_ctx(actor)).await?;
    crate::jobs::wake_workers(state);
    tracing::info!(user = %user.id, by = %actor.client_id, "web user removed");
    let diff = json!({"before": {"email": email, "role": user.role}});
    crate::ops::audit::record_change(state, actor, "user", "DELETE", &email, Some(diff)).await;
    Ok(())
}

/// `POST /v1/users/invite`: `{invitee: {email, roles?, teams?}}`. Makes an invitation link
/// (answered: Portolan sends no e-mail) and puts the e-mail in the teams at once.
pub async fn invite(state: &AppState, actor: &Actor, body: &Value) -> ApiResult<(Invitation, String)> {
    let Some(inv) = body.get("invitee").and_then(Value::as_object) else {
        return Err(FieldError::new("invitee", "is required: an object {email, roles?, teams?}").into());
    };
    let mut errs = FieldErrors::default();
    let email = inv.get("email").and_then(Value::as_str).map(|e| e.trim().to_lowercase()).unwrap_or_default();
    if !valid_email(&email) {
        errs.push("invitee.email", "must be an e-mail address");
    }
    let role = match inv.get("roles") {
        Some(v) => role_of(&mut errs, v, "invitee.roles").unwrap_or_default(),
        None => "member".into(),
    };
    let teams = inv.get("teams").map(|v| strings(&mut errs, v, "invitee.teams", 1000)).unwrap_or_default();
    errs.into_result()?;
    let teams = existing_teams(state, &actor.org, teams, "invitee.teams").await?;
    if state.store.user_by_email(&email).await?.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, format!("{email} already has an account")));
    }
    let (invitation, token) = create_invitation(state, &actor.org, &email, &role, &actor.client_id).await?;
    state.store.set_member_teams(&actor.org, &email, &teams, &audit_ctx(actor)).await?;
    crate::jobs::wake_workers(state);
    Ok((invitation, token))
}

/// Create an invitation (the API's, the web UI's and `portolan init`'s): the invitation and
/// the link's token (stored only as its hash).
pub async fn create_invitation(
    state: &AppState,
    org: &OrgId,
    email: &str,
    role: &str,
    by: &str,
) -> ApiResult<(Invitation, String)> {
    let quotas = state.store.quotas(org).await?;
    if let Some(max) = quotas.max_users
        && state.store.list_users(org).await?.len() as u64 >= max
    {
        let msg = format!("the organization's quota of {max} users is reached; ask the operator to raise it");
        return Err(ApiError::new(ErrorCode::InvalidRequest, msg));
    }
    let token = crate::auth::new_token();
    let now = state.clock.now();
    let ttl = i64::try_from(state.config.invitation_ttl.as_secs()).unwrap_or(i64::MAX);
    let invitation = Invitation {
        token_hash: hash_secret(&token),
        org: org.clone(),
        email: email.to_string(),
        role: role.to_string(),
        created_by: by.to_string(),
        created_at: now,
        expires_at: now.saturating_add(ttl),
        used_at: None,
    };
    state.store.create_invitation(&invitation).await?;
    Ok((invitation, token))
}

/// A new personal credential for the active user `email` (replacing theirs): (client id, secret).
pub async fn rotate_credentials(state: &AppState, actor: &Actor, email: &str) -> ApiResult<(String, String)> {
    let email = email.trim().to_lowercase();
    let person = state.store.get_person(&actor.org, &email).await?.ok_or_else(|| user_not_found(&email))?;
    if person.status == "Disabled" {
        return Err(ApiError::conflict(format!(
            "user {email:?} is disabled: set their status to Active before giving them credentials"
        )));
    }
    let (client_id, secret) = crate::auth::new_credentials();
    let hash = crate::auth::hash_secret(&secret);
    state.store.set_user_credential(&actor.org, &email, &client_id, &hash, &audit_ctx(actor)).await?;
    tracing::info!(user = %email, by = %actor.client_id, "personal API credential rotated");
    Ok((client_id, secret))
}

#[cfg(test)]
mod tests {
    use super::check_team_name;

    #[test]
    fn team_names_follow_ports_rule() {
        for ok in ["platform", "Team A", "a-b_c", "x"] {
            assert!(check_team_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", " lead", "trail ", "a/b", "a;b", "a#b", "what?", &"x".repeat(101)] {
            assert!(check_team_name(bad).is_err(), "{bad:?}");
        }
    }
}
