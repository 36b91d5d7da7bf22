//! Self-service actions in the web UI: the list of the organization's actions
//! (`/ui/self-service`), the action buttons of catalog and entity pages, the run form
//! ([`form`], generated from `trigger.userInputs`) and the run pages ([`runs`]). Runs start
//! through `ops::action::create_run` (source `UI`), as the API starts them.

pub(super) mod approvals;
pub(super) mod form;
pub(super) mod runs;

use std::collections::HashMap;

use axum::extract::State;
use portolan_core::permissions::Principal;
use portolan_core::search::parse_query;
use portolan_core::{Blueprint, Entity};
use portolan_store::{OrgId, SearchRequest, StoredAction};
use serde::Serialize;
use serde_json::{Value, json};

use super::respond::{chrome, page};
use super::session::WebUser;
use super::{Chrome, WebResult, urlencode};
use crate::state::AppState;

/// An action as the pages list it and link to it.
#[derive(Debug, Serialize)]
pub(super) struct ActionRef {
    pub identifier: String,
    pub title: String,
    pub icon: Option<String>,
    pub description: Option<String>,
    pub operation: String,
    pub blueprint: Option<String>,
    pub blueprint_title: Option<String>,
    /// The run form (CREATE actions, or any action once its entity is known).
    pub url: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The trigger's operation (`CREATE` when missing).
pub(super) fn operation(a: &StoredAction) -> &str {
    a.data["trigger"]["operation"].as_str().unwrap_or("CREATE")
}

/// A self-service action that may run: published, not an automation.
pub(super) fn runnable(a: &StoredAction) -> bool {
    a.data["trigger"]["type"].as_str() == Some("self-service") && a.data.get("publish") != Some(&Value::Bool(false))
}

/// The run form of `action` (for `entity`, a DAY-2 / DELETE action's).
pub(super) fn form_url(action: &str, entity: Option<&str>) -> String {
    match entity {
        Some(e) => format!("/ui/self-service/{}?entity={}", urlencode(action), urlencode(e)),
        None => format!("/ui/self-service/{}", urlencode(action)),
    }
}

impl ActionRef {
    pub(super) fn of(a: &StoredAction, bps: &HashMap<String, Blueprint>, entity: Option<&str>) -> Self {
        let op = operation(a).to_string();
        let blueprint = text(&a.data["trigger"]["blueprintIdentifier"]);
        let url = (op == "CREATE" || entity.is_some()).then(|| form_url(&a.identifier, entity));
        ActionRef {
            identifier: a.identifier.clone(),
            title: text(&a.data["title"]).unwrap_or_else(|| a.identifier.clone()),
            icon: text(&a.data["icon"]),
            description: text(&a.data["description"]),
            blueprint_title: blueprint.as_ref().and_then(|b| bps.get(b)).map(|b| b.title.clone()),
            blueprint,
            operation: op,
            url,
        }
    }
}

#[derive(Serialize)]
struct SelfServicePage {
    chrome: Chrome,
    title: &'static str,
    actions: Vec<ActionRef>,
}

/// May `p` run action `a` (on an entity owned by `entity_teams`; `None`: some entity, so an
/// `ownedByTeam` grant offers it)? The action's `execute` permission decides which buttons show.
async fn offered(
    state: &AppState,
    org: &OrgId,
    p: &Principal,
    a: &StoredAction,
    entity_teams: Option<&[String]>,
) -> WebResult<bool> {
    if p.is_admin() {
        return Ok(true);
    }
    let perms = crate::ops::action::permissions(state, org, &a.identifier).await?;
    Ok(perms.may_execute(p, entity_teams.unwrap_or_default())
        || (entity_teams.is_none() && perms.execute.owned_by_team))
}

/// `/ui/self-service`: every self-service action the user may run, by title.
pub async fn self_service(State(state): State<AppState>, user: WebUser) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let mut actions: Vec<ActionRef> = Vec::new();
    for a in state.store.list_actions(&user.org).await? {
        if runnable(&a) && offered(&state, &user.org, &user.principal, &a, None).await? {
            actions.push(ActionRef::of(&a, &bps, None));
        }
    }
    actions.sort_by(|a, b| (a.title.to_lowercase(), &a.identifier).cmp(&(b.title.to_lowercase(), &b.identifier)));
    page(&state, "self_service.html", SelfServicePage { chrome: chrome(&state, &user), title: "Self-service", actions })
}

/// The CREATE actions of blueprint `bp` (the catalog page's buttons).
pub(super) async fn create_actions(
    state: &AppState,
    org: &OrgId,
    p: &Principal,
    bp: &str,
) -> WebResult<Vec<ActionRef>> {
    let bps = state.blueprints(org).await?;
    let mut out: Vec<ActionRef> = Vec::new();
    for a in state.store.list_actions(org).await? {
        if runnable(&a)
            && operation(&a) == "CREATE"
            && a.data["trigger"]["blueprintIdentifier"] == json!(bp)
            && offered(state, org, p, &a, Some(&[])).await?
        {
            out.push(ActionRef::of(&a, &bps, None));
        }
    }
    out.sort_by(|a, b| a.title.cmp(&b.title));
    Ok(out)
}

/// The DAY-2 and DELETE actions of blueprint `bp` whose `trigger.condition` matches entity
/// `id` (the entity page's buttons).
pub(super) async fn entity_actions(
    state: &AppState,
    org: &OrgId,
    p: &Principal,
    entity: &Entity,
) -> WebResult<Vec<ActionRef>> {
    let (bp, id) = (entity.blueprint.as_str(), entity.identifier.as_str());
    let bps = state.blueprints(org).await?;
    let mut out = Vec::new();
    for a in state.store.list_actions(org).await? {
        if !runnable(&a) || operation(&a) == "CREATE" || a.data["trigger"]["blueprintIdentifier"] != json!(bp) {
            continue;
        }
        if !offered(state, org, p, &a, Some(&entity.team)).await? {
            continue;
        }
        if condition_matches(state, org, &bps, bp, id, &a.data["trigger"]["condition"]).await? {
            out.push(ActionRef::of(&a, &bps, Some(id)));
        }
    }
    out.sort_by(|a, b| a.title.cmp(&b.title));
    Ok(out)
}

/// The search query of a trigger condition (`{type: "SEARCH", combinator, rules}` without its
/// `type`), restricted by `extra` rules (AND-ed). `None`: no condition.
pub(super) fn condition_query(condition: &Value, extra: Vec<Value>) -> Option<Value> {
    let mut cond = condition.as_object()?.clone();
    cond.remove("type");
    let mut rules = extra;
    rules.push(Value::Object(cond));
    Some(json!({"combinator": "and", "rules": rules}))
}

/// Does entity `id` of `bp` match `condition`? Evaluated by the store's search for that one
/// entity, so the condition means exactly what it means in a search. No condition matches
/// every entity; a condition that does not parse matches none.
pub(super) async fn condition_matches(
    state: &AppState,
    org: &OrgId,
    bps: &HashMap<String, Blueprint>,
    bp: &str,
    id: &str,
    condition: &Value,
) -> WebResult<bool> {
    let by_id = json!({"property": "$identifier", "operator": "=", "value": id});
    let Some(q) = condition_query(condition, vec![by_id]) else { return Ok(true) };
    let Ok(q) = parse_query(&q) else { return Ok(false) };
    let req = SearchRequest::new(bps, Some(bp), Some(&q), 1);
    Ok(!state.store.search(org, &req).await?.entities.is_empty())
}
