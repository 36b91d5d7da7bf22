//! The run form of a self-service action, generated from `trigger.userInputs` (§5.2).
//!
//! Every input becomes the control of its type and format (fields are named `p.<id>`); the
//! jq-valued keys (`enum`, `default`, `visible`, `disabled`, `required`, dataset rule values,
//! section and step visibility) are evaluated on the server over `{form, entity, user}`
//! (`ops::action::evaluate_user_inputs`), and when an action has any, the form posts itself to
//! `…/form` on every change and htmx swaps the fields for the re-evaluated ones. An
//! entity-format input is a select of matching entities with a search box that reloads its
//! options (`…/options/{input}`, at most [`PICKER_LIMIT`], honouring `blueprint` and
//! `dataset`). Submitting starts the run through `ops::action::create_run`; a refusal shows the
//! form again with each message next to its input and the values as they were typed.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use portolan_core::Entity;
use portolan_core::search::parse_query;
use portolan_store::{SearchRequest, StoredAction};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::super::form::{Form, query_form, signed_form};
use super::super::respond::{api_errors, caller, chrome, page_with, see_other};
use super::super::session::WebUser;
use super::super::{Chrome, WebError, WebResult, urlencode};
use super::{ActionRef, condition_query, operation};
use crate::ops;
use crate::ops::action::RunRequest;
use crate::state::AppState;

/// Most options an entity picker offers at once.
pub const PICKER_LIMIT: u32 = 20;
/// Most entities offered when a DAY-2 / DELETE form is opened without one.
const CHOOSE_LIMIT: u32 = 50;

mod picker;
pub(in crate::web) use picker::{entity_options, picker_entities};

/// The control an input is rendered as.
fn control(d: &Map<String, Value>) -> &'static str {
    let ty = d.get("type").and_then(Value::as_str).unwrap_or("string");
    let format = d.get("format").and_then(Value::as_str);
    let items = d.get("items").and_then(Value::as_object);
    let has_enum = d.get("enum").is_some_and(Value::is_array);
    match ty {
        "boolean" => "checkbox",
        "number" if has_enum => "select",
        "number" => "number",
        "array" if items.and_then(|i| i.get("format")).and_then(Value::as_str) == Some("entity") => "entities",
        "array" if has_enum || items.and_then(|i| i.get("enum")).is_some_and(Value::is_array) => "multiselect",
        "array" | "object" => "json",
        _ if format == Some("entity") => "entity",
        _ if has_enum => "select",
        _ if d.contains_key("encryption") => "password",
        _ => match format {
            Some("date-time") => "datetime",
            Some("email") => "email",
            Some("url") => "url",
            Some("multi-line" | "markdown" | "yaml" | "proto") => "textarea",
            _ => "text",
        },
    }
}

fn field_name(id: &str) -> String {
    format!("p.{id}")
}

/// A value as an option's `value` (JSON text, so numbers stay numbers).
fn option_value(v: &Value) -> String {
    v.to_string()
}

fn option_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `2024-05-01T10:30` (a `datetime-local` value, UTC) as RFC 3339; anything else unchanged.
fn datetime_from_input(s: &str) -> String {
    let b = s.as_bytes();
    if s.len() == 16 && b[10] == b'T' && b[13] == b':' { format!("{s}:00.000Z") } else { s.to_string() }
}

/// An RFC 3339 time as a `datetime-local` value (UTC, minutes).
fn datetime_to_input(s: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M").to_string(),
        Err(_) => s.to_string(),
    }
}

/// What a posted form says: the input values as JSON, which inputs the form carried, the
/// text of each as typed, and the values that could not be read (bad JSON, not a number).
#[derive(Default)]
pub(in crate::web) struct Posted {
    pub values: Map<String, Value>,
    pub present: HashSet<String>,
    pub texts: BTreeMap<String, Vec<String>>,
    pub errors: BTreeMap<String, Vec<String>>,
    /// The entity pickers' search texts (`q.<id>`).
    pub searches: BTreeMap<String, String>,
}

/// Read the inputs `defs` from a posted form.
pub(in crate::web) fn read_form(defs: &Map<String, Value>, form: &Form) -> Posted {
    let mut out = Posted::default();
    for (id, def) in defs {
        let Some(d) = def.as_object() else { continue };
        let name = field_name(id);
        // Browsers send a text area's line breaks as CRLF (HTML's form encoding); an input's
        // value has the LF line breaks that were typed.
        let raw: Vec<String> = form.raw(&name).into_iter().map(|v| v.replace("\r\n", "\n")).collect();
        let marker = form.0.iter().any(|(k, _)| k == &format!("m.{id}"));
        if let Some(q) = form.get(&format!("q.{id}")) {
            out.searches.insert(id.clone(), q.trim().to_string());
        }
        if raw.is_empty() && !marker {
            continue;
        }
        out.present.insert(id.clone());
        out.texts.insert(id.clone(), raw.clone());
        let first = raw.iter().find(|v| !v.is_empty()).map(String::as_str);
        let mut bad = |m: String| out.errors.entry(id.clone()).or_default().push(m);
        let value = match control(d) {
            "checkbox" => Some(Value::Bool(raw.iter().any(|v| v == "true"))),
            "multiselect" => {
                let items: Vec<Value> = raw
                    .iter()
                    .filter(|v| !v.is_empty())
                    .map(|v| serde_json::from_str(v).unwrap_or_else(|_| json!(v)))
                    .collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            "entities" => {
                let items: Vec<Value> = raw.iter().filter(|v| !v.is_empty()).map(|v| json!(v)).collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            "select" => first.map(|v| serde_json::from_str(v).unwrap_or_else(|_| json!(v))),
            "number" => match first.map(str::trim) {
                None | Some("") => None,
                Some(t) => match serde_json::from_str::<serde_json::Number>(t) {
                    Ok(n) => Some(Value::Number(n)),
                    Err(_) => {
                        bad(format!("{t:?} is not a number"));
                        None
                    }
                },
            },
            "json" => match first.map(str::trim).filter(|t| !t.is_empty()) {
                None => None,
                Some(t) => match serde_json::from_str::<Value>(t) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        bad(format!("is not valid JSON: {e}"));
                        None
                    }
                },
            },
            "datetime" => first.map(|v| json!(datetime_from_input(v))),
            _ => first.map(|v| json!(v)),
        };
        if let Some(v) = value {
            out.values.insert(id.clone(), v);
        }
    }
    out
}

/// One option of a select.
#[derive(Debug, Serialize)]
pub(in crate::web) struct OptionView {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One input as the template renders it.
#[derive(Debug, Serialize)]
struct FieldView {
    id: String,
    name: String,
    title: String,
    description: Option<String>,
    control: &'static str,
    /// The text of the control (text-like controls).
    value: String,
    checked: bool,
    options: Vec<OptionView>,
    required: bool,
    disabled: bool,
    /// What the control expects, when the control does not say (JSON, YAML, UTC).
    hint: Option<String>,
    errors: Vec<String>,
    /// A change of this input re-renders the form ([`form_refs`]).
    live: bool,
    /// The entity picker's search text and where it gets options.
    search: String,
    options_url: String,
}

/// A group of inputs under an optional heading: a step (`level` 2) or a `titles` section (3).
#[derive(Debug, Serialize)]
pub(in crate::web) struct Group {
    heading: Option<String>,
    description: Option<String>,
    level: u8,
    fields: Vec<FieldView>,
}

/// The layout of `userInputs`: groups of input ids. Steps become groups with their titles;
/// `order` (or the definitions' order) is followed, each `titles` id there starting a section;
/// inputs the order does not name come last. Invisible steps and titles are left out.
/// A group of input ids as [`layout`] finds them (the shape of [`Group`] before rendering).
#[derive(Debug)]
struct Section {
    heading: Option<String>,
    description: Option<String>,
    level: u8,
    ids: Vec<String>,
}

fn layout(ui: &Value) -> Vec<Section> {
    let empty = Map::new();
    let props = ui["properties"].as_object().unwrap_or(&empty);
    let titles = ui["titles"].as_object().unwrap_or(&empty);
    let ids = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let mut sequences: Vec<(Option<String>, u8, bool, Vec<String>)> = Vec::new();
    if let Some(steps) = ui["steps"].as_array() {
        for s in steps {
            let visible = s.get("visible") != Some(&Value::Bool(false));
            sequences.push((s["title"].as_str().map(str::to_string), 2, visible, ids(&s["order"])));
        }
    } else {
        let order = if ui["order"].is_array() { ids(&ui["order"]) } else { props.keys().cloned().collect() };
        sequences.push((None, 2, true, order));
    }
    let named: HashSet<String> = sequences.iter().flat_map(|s| s.3.iter().cloned()).collect();
    let rest: Vec<String> = props.keys().filter(|k| !named.contains(*k)).cloned().collect();
    if !rest.is_empty() {
        sequences.push((None, 2, true, rest));
    }
    let mut out = Vec::new();
    for (heading, level, visible, order) in sequences {
        if !visible {
            continue;
        }
        let mut current = Section { heading, description: None, level, ids: vec![] };
        for id in order {
            if let Some(t) = titles.get(&id) {
                let next = Section { heading: None, description: None, level: 3, ids: vec![] };
                out.push(std::mem::replace(&mut current, next));
                if t.get("visible") != Some(&Value::Bool(false)) {
                    current.heading = t["title"].as_str().map(str::to_string);
                    current.description = t["description"].as_str().map(str::to_string);
                }
            } else if props.contains_key(&id) {
                current.ids.push(id);
            }
        }
        out.push(current);
    }
    out.retain(|g| g.heading.is_some() || !g.ids.is_empty());
    out
}

/// The inputs whose change can change the form: those a jq query reads as `.form.<id>` or
/// `.form["id"]` (a string key), and those named in a `dependsOn`. `None`: a query reads `.form` some other
/// way, so every input counts. Only these inputs re-render the form, so typing elsewhere is
/// never interrupted by a re-render.
fn form_refs(ui: &Value) -> Option<HashSet<String>> {
    let mut out = HashSet::new();
    for slot in portolan_core::action::jq_queries(ui) {
        let q = slot.query.as_str();
        for (i, _) in q.match_indices(".form") {
            let rest = &q[i + 5..];
            if let Some(r) = rest.strip_prefix('.') {
                let id: String = r.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if id.is_empty() {
                    return None;
                }
                out.insert(id);
            } else if let Some(r) = rest.strip_prefix("[\"") {
                let id: String = r.chars().take_while(|c| *c != '"').collect();
                out.insert(id);
            } else if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                // `.formal`, another key.
                continue;
            } else {
                return None;
            }
        }
    }
    for d in ui["properties"].as_object().into_iter().flatten().map(|(_, d)| d) {
        for id in d["dependsOn"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            out.insert(id.to_string());
        }
    }
    Some(out)
}

/// Where a form is: its inputs (an action's `userInputs`, or the inputs of an entity form),
/// where its entity pickers get options, the entity it is about, and what the user entered.
pub(in crate::web) struct FormState<'a> {
    pub ui: &'a Value,
    /// An entity picker's options come from `{options_base}/{input}{options_query}`.
    pub options_base: String,
    pub options_query: String,
    pub entity: Option<&'a Entity>,
    pub posted: Option<Posted>,
    /// Messages of a refused run, by input id, and for the whole form.
    pub field_errors: BTreeMap<String, Vec<String>>,
    pub messages: Vec<String>,
}

/// The resolved `userInputs` and the values the form holds (typed, or the defaults).
async fn resolve(state: &AppState, user: &WebUser, fs: &mut FormState<'_>) -> WebResult<(Value, Map<String, Value>)> {
    let ui = fs.ui;
    let actor = caller(user);
    let mut values = fs.posted.as_ref().map(|p| p.values.clone()).unwrap_or_default();
    let eval = |values: &Map<String, Value>| {
        let input = ops::action::form_context(&Value::Object(values.clone()), fs.entity, &actor);
        ops::action::evaluate_user_inputs(state, &user.org, ui, input)
    };
    let (mut resolved, mut failed) = eval(&values).await?;
    // Inputs the form did not carry (first display, or shown since) start at their default;
    // the jq keys are evaluated again over the form with them.
    let present = fs.posted.as_ref().map(|p| p.present.clone()).unwrap_or_default();
    let mut added = false;
    for (id, d) in resolved["properties"].as_object().into_iter().flatten() {
        if let Some(v) = d.get("default").filter(|v| !v.is_null() && ops_jq(v).is_none())
            && !present.contains(id)
            && !values.contains_key(id)
        {
            values.insert(id.clone(), v.clone());
            added = true;
        }
    }
    if added {
        (resolved, failed) = eval(&values).await?;
    }
    for e in failed {
        fs.messages.push(format!("{}: {}", e.path, e.message));
    }
    Ok((resolved, values))
}

fn ops_jq(v: &Value) -> Option<&str> {
    portolan_core::action::as_jq_query(v)
}

/// The text a control shows for `v`.
fn control_text(control: &str, v: &Value) -> String {
    match (control, v) {
        ("datetime", Value::String(s)) => datetime_to_input(s),
        ("json", v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, Value::String(s)) => s.clone(),
        (_, Value::Null) => String::new(),
        (_, v) => v.to_string(),
    }
}

fn entity_ids(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Object(o)) => o.get("identifier").and_then(Value::as_str).map(str::to_string).into_iter().collect(),
        Some(Value::Array(a)) => a.iter().flat_map(|x| entity_ids(Some(x))).collect(),
        _ => vec![],
    }
}

/// The URL suffix naming the form's entity (`?entity=…`), empty without one.
fn entity_query(entity: Option<&Entity>) -> String {
    entity.map(|e| format!("?entity={}", urlencode(&e.identifier))).unwrap_or_default()
}

/// Build the groups of inputs the form shows.
pub(in crate::web) async fn fields(state: &AppState, user: &WebUser, fs: &mut FormState<'_>) -> WebResult<Vec<Group>> {
    let (resolved, values) = resolve(state, user, fs).await?;
    let refs = form_refs(fs.ui);
    let required: HashSet<String> =
        resolved["required"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
    let empty = Map::new();
    let defs = resolved["properties"].as_object().unwrap_or(&empty);
    let mut groups = Vec::new();
    for Section { heading, description, level, ids } in layout(&resolved) {
        let mut group = Group { heading, description, level, fields: vec![] };
        for id in ids {
            let Some(d) = defs.get(&id).and_then(Value::as_object) else { continue };
            if d.get("visible") == Some(&Value::Bool(false)) {
                continue;
            }
            let control = control(d);
            let value = values.get(&id);
            let typed = fs.posted.as_ref().and_then(|p| p.texts.get(&id));
            let text = match typed.and_then(|t| t.first()) {
                Some(t) if !matches!(control, "datetime") || value.is_none() => t.clone(),
                _ => value.map(|v| control_text(control, v)).unwrap_or_default(),
            };
            let mut errors = fs.posted.as_ref().and_then(|p| p.errors.get(&id)).cloned().unwrap_or_default();
            errors.extend(fs.field_errors.get(&id).cloned().unwrap_or_default());
            let mut search = String::new();
            let options = match control {
                "select" | "multiselect" => {
                    let allowed = d
                        .get("enum")
                        .filter(|e| e.is_array())
                        .or_else(|| d.get("items").and_then(|i| i.get("enum")))
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let chosen: Vec<&Value> = match value {
                        Some(Value::Array(a)) => a.iter().collect(),
                        Some(v) => vec![v],
                        None => vec![],
                    };
                    allowed
                        .iter()
                        .map(|v| OptionView {
                            value: option_value(v),
                            label: option_label(v),
                            selected: chosen.contains(&v),
                        })
                        .collect()
                }
                "entity" | "entities" => {
                    search = fs.posted.as_ref().and_then(|p| p.searches.get(&id)).cloned().unwrap_or_default();
                    let found = picker_entities(state, user, d, &search, PICKER_LIMIT).await?;
                    entity_options(&found, &entity_ids(value))
                }
                _ => vec![],
            };
            let hint = match (control, d.get("format").and_then(Value::as_str)) {
                ("json", Some("labeled-url")) => Some("JSON: {\"url\": …, \"displayText\": …}".to_string()),
                ("json", _) => Some(format!("JSON {}", d.get("type").and_then(Value::as_str).unwrap_or("value"))),
                ("datetime", _) => Some("UTC".to_string()),
                ("textarea", Some(f @ ("yaml" | "markdown" | "proto"))) => Some(f.to_uppercase()),
                ("entities" | "multiselect", _) => Some("choose several with Ctrl or Cmd".to_string()),
                (_, Some(f @ ("user" | "team" | "ipv4" | "ipv6"))) => Some(f.to_string()),
                _ => None,
            };
            group.fields.push(FieldView {
                name: field_name(&id),
                title: d.get("title").and_then(Value::as_str).unwrap_or(&id).to_string(),
                description: d.get("description").and_then(Value::as_str).map(str::to_string),
                control,
                checked: value == Some(&Value::Bool(true)),
                value: text,
                options,
                required: required.contains(&id),
                disabled: d.get("disabled") == Some(&Value::Bool(true)),
                hint,
                errors,
                live: refs.as_ref().is_none_or(|r| r.contains(&id)),
                search,
                options_url: format!("{}/{}{}", fs.options_base, urlencode(&id), fs.options_query),
                id,
            });
        }
        groups.push(group);
    }
    // Errors at inputs no longer shown stay visible, for the whole form.
    let shown: HashSet<&String> = groups.iter().flat_map(|g| g.fields.iter().map(|f| &f.id)).collect();
    let orphans: Vec<String> = fs
        .field_errors
        .iter()
        .filter(|(id, _)| !shown.contains(id))
        .flat_map(|(id, ms)| ms.iter().map(move |m| format!("{id}: {m}")))
        .collect();
    fs.messages.extend(orphans);
    Ok(groups)
}

#[derive(Serialize)]
struct FormPage {
    chrome: Chrome,
    title: String,
    action: ActionRef,
    entity: Option<EntityLink>,
    button: String,
    post_url: String,
    /// Where a change of a live input posts the form to re-render the fields.
    fields_url: String,
    groups: Vec<Group>,
    messages: Vec<String>,
    /// A DAY-2 / DELETE form opened without an entity: the entities to choose from.
    choose: Option<Vec<EntityLink>>,
}

#[derive(Serialize)]
struct FieldsFragment {
    fields_url: String,
    groups: Vec<Group>,
    messages: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct EntityLink {
    pub blueprint: String,
    pub identifier: String,
    pub title: Option<String>,
    pub url: String,
}

/// The action, if it is a self-service action that may run.
async fn load(state: &AppState, user: &WebUser, id: &str) -> WebResult<StoredAction> {
    let a = ops::action::load_action(state, &user.org, id).await?;
    if a.data["trigger"]["type"].as_str() != Some("self-service") {
        return Err(WebError::NotFound(format!("\"{id}\" is an automation; it runs on its trigger, not from a form.")));
    }
    Ok(a)
}

/// The entity named by the request, for an action that runs on one.
async fn load_entity(
    state: &AppState,
    user: &WebUser,
    a: &StoredAction,
    id: Option<&str>,
) -> WebResult<Option<Entity>> {
    if operation(a) == "CREATE" {
        return Ok(None);
    }
    let (Some(id), Some(bp)) = (id, a.data["trigger"]["blueprintIdentifier"].as_str()) else { return Ok(None) };
    Ok(Some(crate::web::respond::readable_entity(state, user, bp, id).await?))
}

fn button_text(a: &StoredAction) -> String {
    a.data["trigger"]["executeActionButtonText"].as_str().map(str::to_string).unwrap_or_else(|| {
        match operation(a) {
            "CREATE" => "Create",
            "DELETE" => "Delete",
            _ => "Execute",
        }
        .to_string()
    })
}

async fn render_form(
    state: &AppState,
    user: &WebUser,
    a: &StoredAction,
    mut fs: FormState<'_>,
    status: StatusCode,
) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let entity_q = entity_query(fs.entity);
    let base = format!("/ui/self-service/{}", urlencode(&a.identifier));
    let needs_entity = operation(a) != "CREATE" && fs.entity.is_none();
    let (groups, choose) = if needs_entity {
        let bp = a.data["trigger"]["blueprintIdentifier"].as_str().unwrap_or_default();
        let mut choose = Vec::new();
        if bps.contains_key(bp) {
            let q = condition_query(&a.data["trigger"]["condition"], vec![]).and_then(|q| parse_query(&q).ok());
            let visible = crate::access::read_restriction(state, &crate::web::respond::caller(user)).await?;
            let req = SearchRequest {
                visible: visible.as_ref(),
                ..SearchRequest::new(&bps, Some(bp), q.as_ref(), CHOOSE_LIMIT)
            };
            for e in state.store.search(&user.org, &req).await?.entities {
                choose.push(EntityLink {
                    url: super::form_url(&a.identifier, Some(&e.identifier)),
                    blueprint: bp.to_string(),
                    identifier: e.identifier,
                    title: e.title,
                });
            }
        }
        (vec![], Some(choose))
    } else {
        (fields(state, user, &mut fs).await?, None)
    };
    let action = ActionRef::of(a, &bps, fs.entity.map(|e| e.identifier.as_str()));
    let ctx = FormPage {
        chrome: chrome(state, user),
        title: action.title.clone(),
        entity: fs.entity.map(|e| EntityLink {
            blueprint: e.blueprint.clone(),
            identifier: e.identifier.clone(),
            title: e.title.clone(),
            url: format!("/ui/entities/{}/{}", urlencode(&e.blueprint), urlencode(&e.identifier)),
        }),
        action,
        button: button_text(a),
        post_url: format!("{base}{entity_q}"),
        fields_url: format!("{base}/form{entity_q}"),
        groups,
        messages: fs.messages,
        choose,
    };
    page_with(state, status, "action_form.html", ctx)
}

/// `GET /ui/self-service/{action}[?entity=]`: the run form, with the defaults.
pub async fn action_form(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let a = load(&state, &user, &id).await?;
    let q = query_form(&q);
    let entity = load_entity(&state, &user, &a, q.get("entity")).await?;
    let fs = FormState {
        ui: &a.data["trigger"]["userInputs"],
        options_base: format!("/ui/self-service/{}/options", urlencode(&a.identifier)),
        options_query: entity_query(entity.as_ref()),
        entity: entity.as_ref(),
        posted: None,
        field_errors: BTreeMap::new(),
        messages: vec![],
    };
    render_form(&state, &user, &a, fs, StatusCode::OK).await
}

/// `POST /ui/self-service/{action}/form`: the fields again for the values posted (htmx swaps
/// them in on every change).
pub async fn action_fields(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    req: Request,
) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    let a = load(&state, &user, &id).await?;
    let entity = load_entity(&state, &user, &a, query_form(&q).get("entity")).await?;
    let posted = read_form(defs(&a), &form);
    let mut fs = FormState {
        ui: &a.data["trigger"]["userInputs"],
        options_base: format!("/ui/self-service/{}/options", urlencode(&a.identifier)),
        options_query: entity_query(entity.as_ref()),
        entity: entity.as_ref(),
        posted: Some(posted),
        field_errors: BTreeMap::new(),
        messages: vec![],
    };
    let groups = fields(&state, &user, &mut fs).await?;
    let fields_url = format!("/ui/self-service/{}/form{}", urlencode(&a.identifier), entity_query(entity.as_ref()));
    page_with(
        &state,
        StatusCode::OK,
        "action_fields.html",
        FieldsFragment { fields_url, groups, messages: fs.messages },
    )
}

fn defs(a: &StoredAction) -> &Map<String, Value> {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    a.data["trigger"]["userInputs"]["properties"].as_object().unwrap_or(&EMPTY)
}

#[derive(Serialize)]
struct OptionsFragment {
    options: Vec<OptionView>,
    /// A single-entity picker offers "none" first.
    blank: bool,
}

/// `POST /ui/self-service/{action}/options/{input}`: the entity picker's options for its
/// search text (`q.<input>`), the dataset evaluated over the form posted with it.
pub async fn action_options(
    State(state): State<AppState>,
    user: WebUser,
    Path((id, input)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    let a = load(&state, &user, &id).await?;
    let entity = load_entity(&state, &user, &a, query_form(&q).get("entity")).await?;
    let posted = read_form(defs(&a), &form);
    let selected = entity_ids(posted.values.get(&input));
    let ui = &a.data["trigger"]["userInputs"];
    let input_ctx = ops::action::form_context(&Value::Object(posted.values.clone()), entity.as_ref(), &caller(&user));
    let (resolved, _) = ops::action::evaluate_user_inputs(&state, &user.org, ui, input_ctx).await?;
    let d = resolved["properties"][&input]
        .as_object()
        .cloned()
        .ok_or_else(|| WebError::NotFound(format!("Action \"{id}\" has no input \"{input}\".")))?;
    let text = form.get(&format!("q.{input}")).unwrap_or("").trim().to_string();
    let found = picker_entities(&state, &user, &d, &text, PICKER_LIMIT).await?;
    let options = entity_options(&found, &selected);
    let blank = control(&d) == "entity";
    page_with(&state, StatusCode::OK, "action_options.html", OptionsFragment { options, blank })
}

/// `POST /ui/self-service/{action}[?entity=]`: start the run, then go to its page; a refusal
/// shows the form again with each message next to its input.
pub async fn action_submit(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    req: Request,
) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    let a = load(&state, &user, &id).await?;
    let entity = load_entity(&state, &user, &a, query_form(&q).get("entity")).await?;
    let posted = read_form(defs(&a), &form);
    if posted.errors.is_empty() {
        let request = RunRequest {
            properties: Value::Object(posted.values.clone()),
            entity: entity.as_ref().map(|e| e.identifier.clone()),
            source: "UI",
        };
        match ops::action::create_run(&state, &caller(&user), &a.identifier, request).await {
            Ok(run) => return Ok(see_other(&format!("/ui/runs/{}", urlencode(&run.id)))),
            Err(e) if e.status.is_client_error() => {
                let (message, details) = api_errors(&e);
                let mut fs = FormState {
                    ui: &a.data["trigger"]["userInputs"],
                    options_base: format!("/ui/self-service/{}/options", urlencode(&a.identifier)),
                    options_query: entity_query(entity.as_ref()),
                    entity: entity.as_ref(),
                    posted: Some(posted),
                    field_errors: BTreeMap::new(),
                    messages: vec![],
                };
                if details.is_empty() {
                    fs.messages.push(message);
                }
                for d in details {
                    match input_of(&d.path) {
                        Some((input, rest)) => {
                            let m = if rest.is_empty() { d.message } else { format!("{rest}: {}", d.message) };
                            fs.field_errors.entry(input).or_default().push(m);
                        }
                        None if d.path.is_empty() => fs.messages.push(d.message),
                        None => fs.messages.push(format!("{}: {}", d.path, d.message)),
                    }
                }
                return render_form(&state, &user, &a, fs, e.status).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let fs = FormState {
        ui: &a.data["trigger"]["userInputs"],
        options_base: format!("/ui/self-service/{}/options", urlencode(&a.identifier)),
        options_query: entity_query(entity.as_ref()),
        entity: entity.as_ref(),
        posted: Some(posted),
        field_errors: BTreeMap::new(),
        messages: vec![],
    };
    render_form(&state, &user, &a, fs, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// `properties.<id>…` → (`<id>`, the rest of the path).
fn input_of(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("properties.")?;
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    Some((rest[..end].to_string(), rest[end..].trim_start_matches('.').to_string()))
}

#[cfg(test)]
mod tests;
