//! The entity form: creating and editing an entity with the run form's engine
//! (`actions/form.rs`), its inputs made from the blueprint — identifier and title, every
//! property as the control of its type and format, every relation as an entity picker (several
//! choices for a `many` relation). The JSON editor (`editor.rs`) stays the other way to edit.
//! Saving goes through `ops::entity::write` as the editor's does (create, or replace as `PUT`);
//! a refusal shows the form again with each message next to its input.

use std::collections::BTreeMap;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use portolan_core::{Blueprint, Entity};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::actions::form::{FormState, Group, OptionView, Posted, entity_options, fields, picker_entities, read_form};
use super::form::signed_form;
use super::respond::{api_errors, caller, chrome, page_with, see_other};
use super::session::WebUser;
use super::{Chrome, WebError, WebResult, urlencode};
use crate::ops;
use crate::ops::entity::{Op, WriteOptions};
use crate::state::AppState;

/// Input ids of the entity's own fields; property ids never start with `$`.
const IDENTIFIER: &str = "$identifier";
const TITLE: &str = "$title";
/// Relation inputs are `rel:<id>` (a relation may share its id with a property).
const REL: &str = "rel:";

/// The blueprint as form inputs (`userInputs` layout: properties, required, order).
fn inputs_of(bp: &Blueprint, editing: bool) -> Value {
    let mut props = Map::new();
    let mut required: Vec<String> = vec![];
    let mut id_def = json!({"type": "string", "title": "Identifier"});
    if editing {
        id_def["disabled"] = json!(true);
        id_def["description"] = json!("An entity keeps its identifier.");
    } else {
        required.push(IDENTIFIER.into());
    }
    props.insert(IDENTIFIER.into(), id_def);
    props.insert(TITLE.into(), json!({"type": "string", "title": "Title"}));
    for (id, p) in &bp.schema.properties {
        let mut d = serde_json::to_value(p).unwrap_or_else(|_| json!({"type": "string"}));
        if let Some(o) = d.as_object_mut() {
            if o.get("format").and_then(Value::as_str) == Some("timer") {
                o.insert("format".into(), json!("date-time"));
            }
            o.entry("title").or_insert_with(|| json!(id));
        }
        props.insert(id.clone(), d);
        if bp.schema.required.contains(id) {
            required.push(id.clone());
        }
    }
    for (id, r) in &bp.relations {
        let picker = json!({"type": "string", "format": "entity", "blueprint": r.target});
        let mut d = if r.many { json!({"type": "array", "items": picker}) } else { picker };
        d["title"] = json!(r.title.clone().unwrap_or_else(|| id.clone()));
        if let Some(desc) = &r.description {
            d["description"] = json!(desc);
        }
        props.insert(format!("{REL}{id}"), d);
        if r.required {
            required.push(format!("{REL}{id}"));
        }
    }
    json!({"properties": props, "required": required})
}

/// A stored entity as the values of its form.
fn values_of(e: &Entity) -> Posted {
    let mut p = Posted::default();
    p.values.insert(IDENTIFIER.into(), json!(e.identifier));
    if let Some(t) = &e.title {
        p.values.insert(TITLE.into(), json!(t));
    }
    for (k, v) in &e.properties {
        if !v.is_null() {
            p.values.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in &e.relations {
        if !v.is_null() {
            p.values.insert(format!("{REL}{k}"), v.clone());
        }
    }
    p.present = p.values.keys().cloned().collect();
    p.present.insert(TITLE.into());
    p
}

/// The entity body a posted form means (as the API takes it).
fn body_of(values: &Map<String, Value>, bp: &Blueprint) -> Value {
    let mut properties = Map::new();
    let mut relations = Map::new();
    for (k, v) in values {
        if let Some(r) = k.strip_prefix(REL) {
            relations.insert(r.to_string(), v.clone());
        } else if !k.starts_with('$') {
            properties.insert(k.clone(), v.clone());
        }
    }
    // Unset inputs clear their value (the save replaces the entity).
    for id in bp.schema.properties.keys() {
        properties.entry(id.clone()).or_insert(Value::Null);
    }
    for (id, r) in &bp.relations {
        relations.entry(id.clone()).or_insert(if r.many { json!([]) } else { Value::Null });
    }
    let mut body = json!({"properties": properties, "relations": relations});
    if let Some(id) = values.get(IDENTIFIER) {
        body["identifier"] = id.clone();
    }
    if let Some(t) = values.get(TITLE) {
        body["title"] = t.clone();
    }
    body
}

/// The input an API error path names: `properties.x…` → `x`, `relations.r…` → `rel:r`.
fn input_of(path: &str) -> Option<(String, String)> {
    let split = |rest: &str| {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        (rest[..end].to_string(), rest[end..].trim_start_matches('.').to_string())
    };
    if let Some(rest) = path.strip_prefix("properties.") {
        return Some(split(rest));
    }
    if let Some(rest) = path.strip_prefix("relations.") {
        let (id, more) = split(rest);
        return Some((format!("{REL}{id}"), more));
    }
    match path {
        "identifier" => Some((IDENTIFIER.into(), String::new())),
        "title" => Some((TITLE.into(), String::new())),
        _ => None,
    }
}

#[derive(Serialize)]
struct EntityFormPage {
    chrome: Chrome,
    title: String,
    heading: String,
    bp: String,
    post_url: String,
    json_url: String,
    back: String,
    fields_url: String,
    groups: Vec<Group>,
    messages: Vec<String>,
}

struct Target<'a> {
    bp: &'a Blueprint,
    /// The stored entity (editing), or none (creating).
    entity: Option<&'a Entity>,
}

impl Target<'_> {
    fn post_url(&self) -> String {
        match self.entity {
            Some(e) => format!("/ui/entity-form/{}/{}", urlencode(&self.bp.identifier), urlencode(&e.identifier)),
            None => format!("/ui/entity-form/{}", urlencode(&self.bp.identifier)),
        }
    }
}

async fn show(
    state: &AppState,
    user: &WebUser,
    t: &Target<'_>,
    posted: Option<Posted>,
    field_errors: BTreeMap<String, Vec<String>>,
    messages: Vec<String>,
    status: StatusCode,
) -> WebResult {
    let ui = inputs_of(t.bp, t.entity.is_some());
    let mut fs = FormState {
        ui: &ui,
        options_base: format!("/ui/entity-form-options/{}", urlencode(&t.bp.identifier)),
        options_query: String::new(),
        entity: t.entity,
        posted,
        field_errors,
        messages,
    };
    let groups = fields(state, user, &mut fs).await?;
    let bp_id = urlencode(&t.bp.identifier);
    let (heading, json_url, back) = match t.entity {
        Some(e) => {
            let page = format!("/ui/entities/{bp_id}/{}", urlencode(&e.identifier));
            (format!("Edit {}", e.identifier), format!("{page}/edit"), page)
        }
        None => (format!("New {}", t.bp.title), format!("/ui/entities/{bp_id}/new"), format!("/ui/catalog/{bp_id}")),
    };
    let ctx = EntityFormPage {
        chrome: chrome(state, user),
        title: heading.clone(),
        heading,
        bp: t.bp.identifier.clone(),
        post_url: t.post_url(),
        json_url,
        back,
        fields_url: String::new(),
        groups,
        messages: fs.messages,
    };
    page_with(state, status, "entity_form.html", ctx)
}

async fn load(
    state: &AppState,
    user: &WebUser,
    bp_id: &str,
    id: Option<&str>,
) -> WebResult<(Blueprint, Option<Entity>)> {
    let bps = state.blueprints(&user.org).await?;
    let bp =
        bps.get(bp_id).cloned().ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let entity = match id {
        Some(id) => Some(super::respond::readable_entity(state, user, bp_id, id).await?),
        None => None,
    };
    Ok((bp, entity))
}

/// `GET /ui/entity-form/{bp}`: a new entity's form.
pub async fn new_form(State(state): State<AppState>, user: WebUser, Path(bp_id): Path<String>) -> WebResult {
    let (bp, _) = load(&state, &user, &bp_id, None).await?;
    show(&state, &user, &Target { bp: &bp, entity: None }, None, BTreeMap::new(), vec![], StatusCode::OK).await
}

/// `GET /ui/entity-form/{bp}/{id}`: an entity's form, holding its values.
pub async fn edit_form(
    State(state): State<AppState>,
    user: WebUser,
    Path((bp_id, id)): Path<(String, String)>,
) -> WebResult {
    let (bp, e) = load(&state, &user, &bp_id, Some(&id)).await?;
    let posted = e.as_ref().map(values_of);
    show(&state, &user, &Target { bp: &bp, entity: e.as_ref() }, posted, BTreeMap::new(), vec![], StatusCode::OK).await
}

async fn save(state: AppState, user: WebUser, bp_id: String, id: Option<String>, req: Request) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    let (bp, e) = load(&state, &user, &bp_id, id.as_deref()).await?;
    let t = Target { bp: &bp, entity: e.as_ref() };
    let ui = inputs_of(&bp, e.is_some());
    let empty = Map::new();
    let mut posted = read_form(ui["properties"].as_object().unwrap_or(&empty), &form);
    if let Some(e) = &e {
        // The identifier input is disabled (browsers do not send it): the entity keeps its own.
        posted.values.insert(IDENTIFIER.into(), json!(e.identifier));
    }
    if !posted.errors.is_empty() {
        return show(&state, &user, &t, Some(posted), BTreeMap::new(), vec![], StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let body = body_of(&posted.values, &bp);
    let actor = caller(&user);
    let op = if e.is_some() { Op::Put } else { Op::from_flags(false, false) };
    let result = match ops::entity::blueprint(&state, &user.org, &bp_id).await {
        Ok(b) => ops::entity::write(&state, &actor, &b, id.as_deref(), &body, op, WriteOptions::default()).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(w) => Ok(see_other(&format!("/ui/entities/{}/{}", urlencode(&bp_id), urlencode(&w.entity.identifier)))),
        Err(err) if err.status.is_client_error() => {
            let (message, details) = api_errors(&err);
            let mut field_errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut messages = vec![];
            if details.is_empty() {
                messages.push(message);
            }
            for d in details {
                match input_of(&d.path) {
                    Some((input, rest)) => {
                        let m = if rest.is_empty() { d.message } else { format!("{rest}: {}", d.message) };
                        field_errors.entry(input).or_default().push(m);
                    }
                    None if d.path.is_empty() => messages.push(d.message),
                    None => messages.push(format!("{}: {}", d.path, d.message)),
                }
            }
            show(&state, &user, &t, Some(posted), field_errors, messages, err.status).await
        }
        Err(err) => Err(err.into()),
    }
}

/// `POST /ui/entity-form/{bp}`: create the entity.
pub async fn save_new(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    save(state, user, bp_id, None, req).await
}

/// `POST /ui/entity-form/{bp}/{id}`: replace the entity with the form's values.
pub async fn save_edit(
    State(state): State<AppState>,
    user: WebUser,
    Path((bp_id, id)): Path<(String, String)>,
    req: Request,
) -> WebResult {
    save(state, user, bp_id, Some(id), req).await
}

#[derive(Serialize)]
struct OptionsFragment {
    options: Vec<OptionView>,
    blank: bool,
}

/// `POST /ui/entity-form-options/{bp}/{input}`: a relation picker's options for its search text.
pub async fn options(
    State(state): State<AppState>,
    user: WebUser,
    Path((bp_id, input)): Path<(String, String)>,
    req: Request,
) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    let (bp, _) = load(&state, &user, &bp_id, None).await?;
    let ui = inputs_of(&bp, false);
    let d = ui["properties"][&input]
        .as_object()
        .cloned()
        .ok_or_else(|| WebError::NotFound(format!("Blueprint \"{bp_id}\" has no input \"{input}\".")))?;
    let empty = Map::new();
    let posted = read_form(ui["properties"].as_object().unwrap_or(&empty), &form);
    let selected: Vec<String> = match posted.values.get(&input) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    };
    let text = form.get(&format!("q.{input}")).unwrap_or("").trim().to_string();
    let found = picker_entities(&state, &user, &d, &text, super::actions::form::PICKER_LIMIT).await?;
    let blank = d.get("type").and_then(Value::as_str) != Some("array");
    page_with(
        &state,
        StatusCode::OK,
        "action_options.html",
        OptionsFragment { options: entity_options(&found, &selected), blank },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp() -> Blueprint {
        serde_json::from_value(json!({"identifier": "service", "title": "Service",
            "schema": {"properties": {"cpu": {"type": "number"}, "due": {"type": "string", "format": "timer"}},
                "required": ["cpu"]},
            "relations": {"domain": {"target": "domain", "required": true, "many": false},
                "deps": {"target": "service", "required": false, "many": true}}}))
        .unwrap()
    }

    #[test]
    fn a_blueprint_becomes_inputs() {
        let ui = inputs_of(&bp(), false);
        assert_eq!(ui["properties"]["rel:domain"]["format"], "entity");
        assert_eq!(ui["properties"]["rel:deps"]["items"]["blueprint"], "service");
        assert_eq!(ui["properties"]["due"]["format"], "date-time");
        assert_eq!(ui["required"], json!(["$identifier", "cpu", "rel:domain"]));
        assert_eq!(inputs_of(&bp(), true)["properties"]["$identifier"]["disabled"], true);
    }

    #[test]
    fn form_values_become_an_entity_body() {
        let values = json!({"$identifier": "a", "$title": "A", "cpu": 2, "rel:domain": "pay"});
        let body = body_of(values.as_object().unwrap(), &bp());
        assert_eq!(
            body,
            json!({"identifier": "a", "title": "A", "properties": {"cpu": 2, "due": null},
                   "relations": {"domain": "pay", "deps": []}})
        );
        assert_eq!(input_of("relations.domain"), Some(("rel:domain".into(), String::new())));
        assert_eq!(input_of("properties.cpu"), Some(("cpu".into(), String::new())));
        assert_eq!(input_of("identifier"), Some(("$identifier".into(), String::new())));
    }
}
