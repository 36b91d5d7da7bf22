//! The builder: the blueprint list and graph, the blueprint JSON editor, and the forms that add
//! a property or a relation. Blueprints are the data model: only admins change them (as in
//! Port), through the API's handlers and so its validation.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::editor::{BuilderForms, Editor, editor_json};
use super::form::{Form, signed_form};
use super::respond::{caller, chrome, page, require_admin};
use super::session::WebUser;
use super::{Chrome, WebError, WebResult, format, urlencode};
use crate::ops;
use crate::state::AppState;

/// What [`require_admin`] says members may not do here.
const ADMINS_ONLY: &str = "change blueprints";

/// Formats offered by the builder's property form (Port's string formats).
const PROPERTY_FORMATS: &[&str] =
    &["url", "email", "markdown", "yaml", "date-time", "timer", "user", "team", "ipv4", "ipv6"];

const BLUEPRINT_SKELETON: &str = r#"{
  "identifier": "",
  "title": "",
  "icon": "Blueprint",
  "schema": {
    "properties": {},
    "required": []
  },
  "relations": {},
  "mirrorProperties": {},
  "calculationProperties": {}
}"#;

#[derive(Serialize)]
struct Builder<'a> {
    chrome: Chrome,
    title: &'static str,
    blueprints: Vec<BlueprintSummary<'a>>,
}

#[derive(Serialize)]
struct BlueprintSummary<'a> {
    identifier: &'a str,
    title: &'a str,
    properties: usize,
    relations: usize,
    /// Mirror and calculation properties.
    computed: usize,
}

pub async fn builder(State(state): State<AppState>, user: WebUser) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let mut blueprints: Vec<BlueprintSummary> = bps
        .values()
        .map(|b| BlueprintSummary {
            identifier: &b.identifier,
            title: &b.title,
            properties: b.schema.properties.len(),
            relations: b.relations.len(),
            computed: b.mirror_properties.len() + b.calculation_properties.len(),
        })
        .collect();
    blueprints.sort_by(|a, b| a.identifier.cmp(b.identifier));
    page(&state, "builder.html", Builder { chrome: chrome(&state, &user), title: "Builder", blueprints })
}

pub async fn graph_svg(State(state): State<AppState>, user: WebUser) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let mut res = format::graph_svg(&bps).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    Ok(res)
}

/// The editor of blueprint `bp_id` (`None`: a new one).
fn blueprint_editor(bp_id: Option<&str>) -> Editor {
    let (heading, action) = match bp_id {
        Some(b) => (format!("Edit blueprint {b}"), format!("/ui/builder/{}", urlencode(b))),
        None => ("New blueprint".to_string(), "/ui/builder".to_string()),
    };
    Editor { heading, action, back: "/ui/builder".into(), forms: None }
}

pub async fn blueprint_new(State(state): State<AppState>, user: WebUser) -> WebResult {
    blueprint_editor(None).show(&state, &user, StatusCode::OK, BLUEPRINT_SKELETON, None, vec![])
}

pub async fn blueprint_edit(State(state): State<AppState>, user: WebUser, Path(bp_id): Path<String>) -> WebResult {
    let b = state
        .store
        .get_blueprint(&user.org, &bp_id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let text = serde_json::to_string_pretty(&b.blueprint).unwrap_or_default();
    let mut targets: Vec<String> = state.blueprints(&user.org).await?.keys().cloned().collect();
    targets.sort();
    let forms = BuilderForms { bp: bp_id.clone(), targets, formats: PROPERTY_FORMATS };
    let editor = Editor { forms: Some(forms), ..blueprint_editor(Some(&bp_id)) };
    editor.show(&state, &user, StatusCode::OK, &text, None, vec![])
}

/// The builder's forms: add a property or a relation to a blueprint, through the API's
/// validation (a refused change shows the blueprint JSON with the API's messages at the field).
async fn change_blueprint(
    state: AppState,
    user: WebUser,
    bp_id: String,
    req: Request,
    change: fn(&mut Value, &Form) -> Result<(), String>,
) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    require_admin(&user, ADMINS_ONLY)?;
    let stored = state
        .store
        .get_blueprint(&user.org, &bp_id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let mut doc = serde_json::to_value(&stored.blueprint).map_err(|e| WebError::internal("blueprint json", e))?;
    let editor = blueprint_editor(Some(&bp_id));
    let changed = change(&mut doc, &form);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    if let Err(m) = changed {
        return editor.invalid(&state, &user, &text, m);
    }
    // The write, through the service layer the API uses.
    let result = ops::blueprint::put(&state, &caller(&user), &bp_id, doc).await;
    editor.after_write(&state, &user, &text, result, |_| editor.action.clone())
}

fn add_property(doc: &mut Value, form: &Form) -> Result<(), String> {
    let id = form.get("identifier").ok_or("The property needs an identifier.")?.trim().to_string();
    let mut prop = Map::new();
    prop.insert("type".into(), json!(form.get("type").unwrap_or("string")));
    if let Some(t) = form.get("title") {
        prop.insert("title".into(), json!(t));
    }
    if let Some(f) = form.get("format") {
        prop.insert("format".into(), json!(f));
    }
    if form.get("type") == Some("array") {
        prop.insert("items".into(), json!({"type": "string"}));
    }
    if let Some(e) = form.get("enum") {
        prop.insert("enum".into(), json!(e.split(',').map(str::trim).filter(|x| !x.is_empty()).collect::<Vec<_>>()));
    }
    let schema = doc.get_mut("schema").and_then(Value::as_object_mut).ok_or("The blueprint has no schema.")?;
    let props = schema.entry("properties").or_insert_with(|| json!({}));
    if props.get(&id).is_some() {
        return Err(format!("The blueprint already has a property \"{id}\"."));
    }
    props[&id] = Value::Object(prop);
    if form.get("required").is_some() {
        let req = schema.entry("required").or_insert_with(|| json!([]));
        if let Some(a) = req.as_array_mut() {
            a.push(json!(id));
        }
    }
    Ok(())
}

fn add_relation(doc: &mut Value, form: &Form) -> Result<(), String> {
    let id = form.get("identifier").ok_or("The relation needs an identifier.")?.trim().to_string();
    let target = form.get("target").ok_or("The relation needs a target blueprint.")?;
    let mut rel =
        json!({"target": target, "many": form.get("many").is_some(), "required": form.get("required").is_some()});
    if let Some(t) = form.get("title") {
        rel["title"] = json!(t);
    }
    let obj = doc.as_object_mut().ok_or("The blueprint is not an object.")?;
    let rels = obj.entry("relations").or_insert_with(|| json!({}));
    if rels.get(&id).is_some() {
        return Err(format!("The blueprint already has a relation \"{id}\"."));
    }
    rels[&id] = rel;
    Ok(())
}

pub async fn blueprint_add_property(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    change_blueprint(state, user, bp_id, req, add_property).await
}

pub async fn blueprint_add_relation(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    change_blueprint(state, user, bp_id, req, add_relation).await
}

async fn save_blueprint(state: AppState, user: WebUser, bp_id: Option<String>, req: Request) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    require_admin(&user, ADMINS_ONLY)?;
    let text = form.get("json").unwrap_or("").to_string();
    let editor = blueprint_editor(bp_id.as_deref());
    let body = match editor_json(&text) {
        Ok(b) => b,
        Err(m) => return editor.invalid(&state, &user, &text, m),
    };
    let actor = caller(&user);
    // The write, through the service layer the API uses.
    let result = match &bp_id {
        Some(b) => ops::blueprint::put(&state, &actor, b, body).await,
        None => ops::blueprint::create(&state, &actor, &body).await,
    };
    editor.after_write(&state, &user, &text, result, |_| "/ui/builder".to_string())
}

pub async fn blueprint_save_new(State(state): State<AppState>, user: WebUser, req: Request) -> WebResult {
    save_blueprint(state, user, None, req).await
}

pub async fn blueprint_save(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    save_blueprint(state, user, Some(bp_id), req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::form::parse_form;

    fn blueprint() -> Value {
        json!({"identifier": "svc", "title": "Service", "schema": {"properties": {"lang": {"type": "string"}}}})
    }

    #[test]
    fn the_property_form_adds_a_property() {
        let mut doc = blueprint();
        let form = Form(parse_form("identifier=tags&type=array&title=Tags&required=1"));
        add_property(&mut doc, &form).unwrap();
        assert_eq!(
            doc["schema"]["properties"]["tags"],
            json!({"type": "array", "title": "Tags", "items": {"type": "string"}})
        );
        assert_eq!(doc["schema"]["required"], json!(["tags"]));
        let again = add_property(&mut doc, &Form(parse_form("identifier=lang")));
        assert_eq!(again.unwrap_err(), "The blueprint already has a property \"lang\".");
        let form = Form(parse_form("identifier=tier&enum=a%2C+b%2C"));
        add_property(&mut doc, &form).unwrap();
        assert_eq!(doc["schema"]["properties"]["tier"]["enum"], json!(["a", "b"]));
    }

    #[test]
    fn the_relation_form_adds_a_relation() {
        let mut doc = blueprint();
        assert!(add_relation(&mut doc, &Form(parse_form("identifier=owner"))).is_err(), "needs a target");
        add_relation(&mut doc, &Form(parse_form("identifier=owner&target=team&many=1"))).unwrap();
        assert_eq!(doc["relations"]["owner"], json!({"target": "team", "many": true, "required": false}));
        let again = add_relation(&mut doc, &Form(parse_form("identifier=owner&target=team")));
        assert_eq!(again.unwrap_err(), "The blueprint already has a relation \"owner\".");
    }
}
