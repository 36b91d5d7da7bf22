//! Team pages: the teams of the organization and each team's page (members, the entities it
//! owns through their `team`). Admins create teams, set their members and delete them; the
//! rules are `ops/people.rs`'s, the same as `/v1/teams`.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use portolan_core::search::parse_query;
use portolan_store::SearchRequest;
use serde::Serialize;
use serde_json::{Value, json};

use super::form::signed_form;
use super::respond::{FieldMessage, api_errors, caller, chrome, page_with, require_admin, see_other};
use super::session::WebUser;
use super::{Chrome, WebResult, urlencode};
use crate::ops::people;
use crate::state::AppState;

/// Entities listed on a team's page (the rest are a catalog search away).
const OWNED_SHOWN: u32 = 50;

#[derive(Serialize)]
struct TeamRow {
    name: String,
    href: String,
    description: Option<String>,
    members: usize,
}

#[derive(Serialize)]
struct TeamsPage {
    chrome: Chrome,
    title: &'static str,
    teams: Vec<TeamRow>,
    error: Option<String>,
    errors: Vec<FieldMessage>,
    name: String,
    description: String,
}

#[derive(Serialize)]
struct Member {
    email: String,
    name: Option<String>,
    status: String,
}

#[derive(Serialize)]
struct Owned {
    blueprint: String,
    identifier: String,
    title: Option<String>,
    href: String,
}

#[derive(Serialize)]
struct TeamPage {
    chrome: Chrome,
    title: String,
    name: String,
    href: String,
    description: Option<String>,
    members: Vec<Member>,
    member_lines: String,
    owned: Vec<Owned>,
    owned_count: u64,
    error: Option<String>,
    errors: Vec<FieldMessage>,
}

fn team_href(name: &str) -> String {
    format!("/ui/teams/{}", urlencode(name))
}

async fn teams_page(
    state: &AppState,
    u: &WebUser,
    status: StatusCode,
    form: Option<(String, String, String, Vec<FieldMessage>)>,
) -> WebResult {
    let teams = state.store.list_teams(&u.org).await?;
    let rows = teams
        .into_iter()
        .map(|t| TeamRow {
            href: team_href(&t.name),
            members: t.members.len(),
            description: t.description,
            name: t.name,
        })
        .collect();
    let (name, description, error, errors) = match form {
        Some((n, d, e, errs)) => (n, d, Some(e), errs),
        None => (String::new(), String::new(), None, Vec::new()),
    };
    let ctx = TeamsPage { chrome: chrome(state, u), title: "Teams", teams: rows, error, errors, name, description };
    page_with(state, status, "teams.html", ctx)
}

/// `GET /ui/teams`.
pub async fn teams(State(state): State<AppState>, user: WebUser) -> WebResult {
    teams_page(&state, &user, StatusCode::OK, None).await
}

/// `POST /ui/teams`: create a team (admins).
pub async fn team_create(State(state): State<AppState>, user: WebUser, req: Request) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    require_admin(&user, "create teams")?;
    let name = form.get("name").unwrap_or_default().trim().to_string();
    let description = form.get("description").unwrap_or_default().trim().to_string();
    let mut body = json!({"name": name});
    if !description.is_empty() {
        body["description"] = json!(description);
    }
    match people::save_team(&state, &caller(&user), None, &body, false).await {
        Ok(t) => Ok(see_other(&team_href(&t.name))),
        Err(e) => {
            let (msg, errs) = api_errors(&e);
            let status = e.code.status();
            teams_page(&state, &user, status, Some((name, description, msg, errs))).await
        }
    }
}

async fn team_page(
    state: &AppState,
    u: &WebUser,
    name: &str,
    status: StatusCode,
    failure: Option<(String, Vec<FieldMessage>, String)>,
) -> WebResult {
    let team = state.store.get_team(&u.org, name).await?.ok_or_else(|| people::team_not_found(name))?;
    let everyone = state.store.list_people(&u.org).await?;
    let members = team
        .members
        .iter()
        .map(|email| match everyone.iter().find(|p| &p.email == email) {
            Some(p) => Member {
                email: email.clone(),
                name: [p.first_name.clone(), p.last_name.clone()]
                    .into_iter()
                    .flatten()
                    .reduce(|a, b| format!("{a} {b}")),
                status: p.status.clone(),
            },
            None => Member { email: email.clone(), name: None, status: "Invited".into() },
        })
        .collect();
    let blueprints = state.blueprints(&u.org).await?;
    let query = parse_query(&json!({"combinator": "and",
        "rules": [{"property": "$team", "operator": "containsAny", "value": [team.name]}]}))
    .map_err(crate::error::ApiError::from)?;
    let visible = crate::access::read_restriction(state, &super::respond::caller(u)).await?;
    let req =
        SearchRequest { visible: visible.as_ref(), ..SearchRequest::new(&blueprints, None, Some(&query), OWNED_SHOWN) };
    let owned_count = state.store.count_entities(&u.org, &req).await?;
    let owned = state
        .store
        .search(&u.org, &req)
        .await?
        .entities
        .into_iter()
        .map(|e| Owned {
            href: format!("/ui/entities/{}/{}", urlencode(&e.blueprint), urlencode(&e.identifier)),
            blueprint: e.blueprint,
            identifier: e.identifier,
            title: e.title,
        })
        .collect();
    let (error, errors, member_lines) = match failure {
        Some((m, errs, lines)) => (Some(m), errs, lines),
        None => (None, Vec::new(), team.members.join("\n")),
    };
    let ctx = TeamPage {
        chrome: chrome(state, u),
        title: format!("Team {}", team.name),
        href: team_href(&team.name),
        name: team.name,
        description: team.description,
        members,
        member_lines,
        owned,
        owned_count,
        error,
        errors,
    };
    page_with(state, status, "team.html", ctx)
}

/// `GET /ui/teams/{name}`.
pub async fn team(State(state): State<AppState>, user: WebUser, Path(name): Path<String>) -> WebResult {
    team_page(&state, &user, &name, StatusCode::OK, None).await
}

/// `POST /ui/teams/{name}`: set the members (one e-mail per line) and the description (admins).
pub async fn team_save(
    State(state): State<AppState>,
    user: WebUser,
    Path(name): Path<String>,
    req: Request,
) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    require_admin(&user, "change teams")?;
    let lines = form.get("members").unwrap_or_default().to_string();
    let members: Vec<Value> =
        lines.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| Value::String(l.to_string())).collect();
    let description = form.get("description").unwrap_or_default().trim().to_string();
    let body =
        json!({"users": members, "description": if description.is_empty() { Value::Null } else { json!(description) }});
    match people::save_team(&state, &caller(&user), Some(&name), &body, false).await {
        Ok(t) => Ok(see_other(&team_href(&t.name))),
        Err(e) => {
            let (msg, errs) = api_errors(&e);
            team_page(&state, &user, &name, e.code.status(), Some((msg, errs, lines))).await
        }
    }
}

/// `POST /ui/teams/{name}/delete` (admins): the team leaves every entity.
pub async fn team_delete(
    State(state): State<AppState>,
    user: WebUser,
    Path(name): Path<String>,
    req: Request,
) -> WebResult {
    signed_form(&user, req).await?;
    require_admin(&user, "delete teams")?;
    let actor = caller(&user);
    state.store.delete_team(&user.org, &name, &crate::ops::audit::audit_ctx(&actor)).await?;
    crate::jobs::wake_workers(&state);
    Ok(see_other("/ui/teams"))
}
