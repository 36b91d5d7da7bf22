//! Pages (port-api.md §9): validation and saving of Port's page object, and widget-level changes.
//! Widgets are kept as given (their rendering is a later step); what is checked here is what makes
//! a page usable: its type, identifier, blueprint, parent folder and unique widget ids.

use portolan_core::permissions::PagePermissions;
use portolan_core::{FieldError, FieldErrors};
use portolan_store::{OrgId, SaveMode, StoredPage};
use serde_json::{Map, Value, json};

use super::Actor;
use super::audit::audit_ctx;
use crate::auth::random_bytes;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Page types (§9.1); `folder` holds pages in the sidebar.
pub const PAGE_TYPES: &[&str] = &["blueprint-entities", "dashboard", "home", "entity", "folder"];
/// Keys the server keeps; ignored in bodies.
const SERVER_KEYS: &[&str] = &["createdAt", "createdBy", "updatedAt", "updatedBy"];
/// Most widgets a page may hold, containers' included.
const MAX_WIDGETS: usize = 200;

/// Port's page object: the stored page plus identifier and meta.
pub fn render(p: &StoredPage) -> Value {
    let mut out = Map::new();
    out.insert("identifier".into(), json!(p.identifier));
    for (k, v) in p.data.as_object().into_iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out.insert("createdAt".into(), json!(p.created_at));
    out.insert("createdBy".into(), json!(p.created_by));
    out.insert("updatedAt".into(), json!(p.updated_at));
    out.insert("updatedBy".into(), json!(p.updated_by));
    Value::Object(out)
}

pub async fn load(state: &AppState, actor: &Actor, id: &str) -> ApiResult<StoredPage> {
    let missing = || ApiError::not_found(format!("page {id:?} was not found"));
    let p = state.store.get_page(&actor.org, id).await?.ok_or_else(missing)?;
    // A page the caller may not read is not found, like a missing one.
    if !actor.principal.is_admin() && !permissions(state, &actor.org, id).await?.may_read(&actor.principal) {
        return Err(missing());
    }
    Ok(p)
}

/// Refuse `actor` a change of page `id` unless its `update` permission admits it (a page it
/// may not read is not found, as in [`load`]).
pub async fn check_update(state: &AppState, actor: &Actor, id: &str) -> ApiResult<()> {
    if actor.principal.is_admin() {
        return Ok(());
    }
    load(state, actor, id).await?;
    if permissions(state, &actor.org, id).await?.may_update(&actor.principal) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "you may read page {id:?} but not change it: its update permissions name neither you, your roles nor \
         your teams (an admin sets them with PATCH /v1/pages/{id}/permissions)"
    )))
}

/// The permissions of page `id` (the defaults when none were set).
pub async fn permissions(state: &AppState, org: &OrgId, id: &str) -> ApiResult<PagePermissions> {
    let doc = state.store.page_permissions(org, id).await?;
    Ok(doc.and_then(|d| PagePermissions::from_stored(&d)).unwrap_or_else(PagePermissions::defaults))
}

/// The pages of `pages` that `actor` may read (one read of the organization's documents).
pub async fn readable(state: &AppState, actor: &Actor, pages: Vec<StoredPage>) -> ApiResult<Vec<StoredPage>> {
    if actor.principal.is_admin() {
        return Ok(pages);
    }
    let docs: std::collections::HashMap<String, Value> =
        state.store.all_page_permissions(&actor.org).await?.into_iter().collect();
    Ok(pages
        .into_iter()
        .filter(|p| match docs.get(&p.identifier) {
            Some(d) => {
                PagePermissions::from_stored(d).unwrap_or_else(PagePermissions::defaults).may_read(&actor.principal)
            }
            None => PagePermissions::defaults().may_read(&actor.principal),
        })
        .collect())
}

/// Apply a permissions `PATCH` to page `id` (audited); the grants' teams must exist.
pub async fn patch_permissions(state: &AppState, actor: &Actor, id: &str, body: &Value) -> ApiResult<PagePermissions> {
    let next = permissions(state, &actor.org, id).await?.patched(body).map_err(ApiError::from)?;
    let mut errs = FieldErrors::default();
    for (key, g) in [("read", &next.read), ("update", &next.update)] {
        let missing = state.store.missing_teams(&actor.org, &g.teams).await?;
        for (i, t) in g.teams.iter().enumerate().filter(|(_, t)| missing.contains(t)) {
            errs.push(format!("{key}.teams[{i}]"), format!("there is no team {t:?}; create it first (POST /v1/teams)"));
        }
    }
    errs.into_result()?;
    state.store.set_page_permissions(&actor.org, id, &next.to_json(), &audit_ctx(actor)).await?;
    Ok(next)
}

fn new_widget_id() -> String {
    crate::auth::hex(&random_bytes::<8>())
}

/// Give every widget without an `id` one, and report broken widgets and repeated ids.
fn check_widgets(widgets: &mut [Value], path: &str, seen: &mut Vec<String>, errs: &mut FieldErrors) {
    for (i, w) in widgets.iter_mut().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(o) = w.as_object_mut() else {
            errs.push(at, "must be a widget object {id, type, …}");
            continue;
        };
        if !o.get("type").is_some_and(Value::is_string) {
            errs.push(
                format!("{at}.type"),
                "is required: the widget's type, e.g. \"markdown\" or \"entities-pie-chart\"",
            );
        }
        let id = match o.get("id") {
            None | Some(Value::Null) => {
                let id = new_widget_id();
                o.insert("id".into(), json!(id));
                id
            }
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(_) => {
                errs.push(format!("{at}.id"), "must be a non-empty string");
                continue;
            }
        };
        if seen.contains(&id) {
            errs.push(format!("{at}.id"), format!("{id:?} is the id of another widget of this page; ids are unique"));
        }
        seen.push(id);
        // Containers: a dashboard's widgets and a grouper's groups.
        if let Some(Value::Array(inner)) = o.get_mut("widgets") {
            check_widgets(inner, &format!("{at}.widgets"), seen, errs);
        }
        if let Some(Value::Array(groups)) = o.get_mut("groups") {
            for (g, group) in groups.iter_mut().enumerate() {
                if let Some(Value::Array(inner)) = group.get_mut("widgets") {
                    check_widgets(inner, &format!("{at}.groups[{g}].widgets"), seen, errs);
                }
            }
        }
    }
}

/// Validate a page body (`path_id`: the identifier in the URL, which the body may repeat) and
/// save it.
pub async fn save(
    state: &AppState,
    actor: &Actor,
    body: &Value,
    path_id: Option<&str>,
    mode: SaveMode,
) -> ApiResult<StoredPage> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object (a page)").into());
    };
    let mut errs = FieldErrors::default();
    let mut data: Map<String, Value> =
        obj.iter().filter(|(k, _)| !SERVER_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let identifier = match (data.remove("identifier"), path_id) {
        (None, Some(p)) => p.to_string(),
        (Some(Value::String(i)), Some(p)) if i == p => i,
        (Some(_), Some(p)) => {
            errs.push("identifier", format!("must be {p:?}, the identifier in the URL (a page cannot be renamed)"));
            p.to_string()
        }
        (Some(Value::String(i)), None) => i,
        (_, None) => {
            errs.push("identifier", "is required: letters, digits and @_.+:\\/- (at most 100)");
            String::new()
        }
    };
    if !identifier.is_empty()
        && let Err(e) = portolan_core::ident::check_blueprint_id("identifier", &identifier)
    {
        errs.0.push(e);
    }
    let kind = data.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    if !PAGE_TYPES.contains(&kind.as_str()) {
        errs.push("type", format!("must be one of {}", PAGE_TYPES.join(", ")));
    }
    for key in ["title", "icon", "description", "parent", "after"] {
        if data.get(key).is_some_and(|v| !(v.is_string() || v.is_null())) {
            errs.push(key, "must be a string");
        }
    }
    let blueprints = state.blueprints(&actor.org).await?;
    match data.get("blueprint") {
        Some(Value::String(bp)) if !blueprints.contains_key(bp) => {
            errs.push("blueprint", format!("names blueprint {bp:?}, which does not exist"));
        }
        None | Some(Value::Null) if matches!(kind.as_str(), "blueprint-entities" | "entity") => {
            errs.push("blueprint", format!("is required for a {kind} page: the blueprint it shows"));
        }
        Some(v) if !(v.is_string() || v.is_null()) => errs.push("blueprint", "must be a blueprint identifier"),
        _ => {}
    }
    if let Some(Value::String(parent)) = data.get("parent") {
        match state.store.get_page(&actor.org, parent).await? {
            Some(p) if p.data["type"] == json!("folder") => {}
            Some(_) => errs.push("parent", format!("page {parent:?} is not a folder")),
            None => errs.push("parent", format!("folder {parent:?} does not exist; create it first (type \"folder\")")),
        }
    }
    match data.get_mut("widgets") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ws)) => {
            let mut seen = Vec::new();
            check_widgets(ws, "widgets", &mut seen, &mut errs);
            if seen.len() > MAX_WIDGETS {
                errs.push("widgets", format!("a page may hold at most {MAX_WIDGETS} widgets (it has {})", seen.len()));
            }
        }
        Some(_) => errs.push("widgets", "must be an array of widgets"),
    }
    if data.get("pageFilters").is_some_and(|v| !(v.is_array() || v.is_null())) {
        errs.push("pageFilters", "must be an array of filters");
    }
    if !errs.0.is_empty() {
        return Err(ApiError::invalid(&errs));
    }
    Ok(state.store.save_page(&actor.org, &identifier, &Value::Object(data), mode, &audit_ctx(actor)).await?)
}

/// Apply `op` to the list holding widget `id` and its index there, wherever the widget is
/// (containers included); `false` when no widget has that id.
fn with_widget(
    widgets: &mut Vec<Value>,
    id: &str,
    op: &mut dyn FnMut(&mut Vec<Value>, usize) -> ApiResult<()>,
) -> ApiResult<bool> {
    if let Some(i) = widgets.iter().position(|w| w["id"] == json!(id)) {
        op(widgets, i)?;
        return Ok(true);
    }
    for w in widgets.iter_mut() {
        if let Some(Value::Array(inner)) = w.get_mut("widgets")
            && with_widget(inner, id, op)?
        {
            return Ok(true);
        }
        if let Some(Value::Array(groups)) = w.get_mut("groups") {
            for g in groups.iter_mut() {
                if let Some(Value::Array(inner)) = g.get_mut("widgets")
                    && with_widget(inner, id, op)?
                {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// `PATCH /v1/pages/{page}/widgets/{id}` (merge the given fields into the widget) or, with
/// `patch: None`, `DELETE` (remove it). The page is validated and saved again.
pub async fn change_widget(
    state: &AppState,
    actor: &Actor,
    page: &str,
    id: &str,
    patch: Option<&Value>,
) -> ApiResult<StoredPage> {
    let stored = load(state, actor, page).await?;
    let mut data = stored.data.clone();
    let mut widgets: Vec<Value> = data.get("widgets").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut op = |list: &mut Vec<Value>, i: usize| -> ApiResult<()> {
        match patch {
            None => {
                list.remove(i);
            }
            Some(Value::Object(fields)) => {
                if fields.get("id").is_some_and(|v| v != &json!(id)) {
                    return Err(FieldError::new("id", "cannot change: a widget keeps its id").into());
                }
                if let Some(w) = list[i].as_object_mut() {
                    for (k, v) in fields {
                        w.insert(k.clone(), v.clone());
                    }
                }
            }
            Some(_) => return Err(FieldError::new("", "the body must be a JSON object of widget fields").into()),
        }
        Ok(())
    };
    if !with_widget(&mut widgets, id, &mut op)? {
        return Err(ApiError::not_found(format!("widget {id:?} was not found on page {page:?}")));
    }
    data["widgets"] = Value::Array(widgets);
    let mut body = data;
    body["identifier"] = json!(page);
    save(state, actor, &body, Some(page), SaveMode::Update).await
}

/// Delete a page; a folder that still holds pages is refused (409), naming them.
pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> ApiResult<()> {
    let children: Vec<String> = state
        .store
        .list_pages(&actor.org)
        .await?
        .into_iter()
        .filter(|p| p.data["parent"] == json!(id))
        .map(|p| p.identifier)
        .collect();
    if !children.is_empty() {
        return Err(ApiError::conflict(format!(
            "folder {id:?} still holds pages {}; move them (PUT with another parent) or delete them first",
            children.join(", ")
        )));
    }
    Ok(state.store.delete_page(&actor.org, id, &audit_ctx(actor)).await?)
}
