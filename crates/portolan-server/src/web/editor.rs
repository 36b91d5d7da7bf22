//! The JSON editors: an entity's (new and edit) and the shared editor page the builder uses for
//! blueprints. Writes go through the API's handlers, so the UI validates as the API does; a
//! refused write shows the text again with the API's status and messages at their fields.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use portolan_core::Entity;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::form::signed_form;
use super::respond::{FieldMessage, api_errors, caller, chrome, page_with, see_other};
use super::session::WebUser;
use super::{Chrome, WebError, WebResult, urlencode};
use crate::error::ApiError;
use crate::ops;
use crate::ops::entity::{Op, WriteOptions};
use crate::state::AppState;

/// An editor page: what it edits (`heading`), where it posts, where Cancel goes, and for a
/// stored blueprint the builder's add-a-property and add-a-relation forms.
pub(super) struct Editor {
    pub heading: String,
    pub action: String,
    pub back: String,
    pub forms: Option<BuilderForms>,
}

/// What the builder's forms offer.
#[derive(Serialize)]
pub(super) struct BuilderForms {
    pub bp: String,
    pub targets: Vec<String>,
    pub formats: &'static [&'static str],
}

#[derive(Serialize)]
struct EditorPage<'a> {
    chrome: Chrome,
    title: &'a str,
    heading: &'a str,
    action: &'a str,
    text: &'a str,
    errors: Vec<FieldMessage>,
    message: Option<String>,
    back: &'a str,
    forms: Option<&'a BuilderForms>,
}

impl Editor {
    /// The editor holding `text`, with `message` (and per-field `errors`) when a save failed.
    pub(super) fn show(
        &self,
        state: &AppState,
        user: &WebUser,
        status: StatusCode,
        text: &str,
        message: Option<String>,
        errors: Vec<FieldMessage>,
    ) -> WebResult {
        let ctx = EditorPage {
            chrome: chrome(state, user),
            title: &self.heading,
            heading: &self.heading,
            action: &self.action,
            text,
            errors,
            message,
            back: &self.back,
            forms: self.forms.as_ref(),
        };
        page_with(state, status, "editor.html", ctx)
    }

    /// The editor again after a refusal of ours (the text is not JSON, a form is incomplete): 422.
    pub(super) fn invalid(&self, state: &AppState, user: &WebUser, text: &str, message: String) -> WebResult {
        self.show(state, user, StatusCode::UNPROCESSABLE_ENTITY, text, Some(message), vec![])
    }

    /// After a write through the API: on success a 303 to `to(result)`; a refusal (4xx) shows
    /// the editor again with the API's status and messages; anything else is an error page.
    pub(super) fn after_write<T>(
        &self,
        state: &AppState,
        user: &WebUser,
        text: &str,
        result: Result<T, ApiError>,
        to: impl FnOnce(T) -> String,
    ) -> WebResult {
        match result {
            Ok(v) => Ok(see_other(&to(v))),
            Err(e) if e.status.is_client_error() => {
                let (message, details) = api_errors(&e);
                self.show(state, user, e.status, text, Some(message), details)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Parse the editor's JSON, or the message saying where it is broken.
pub(super) fn editor_json(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(text).map_err(|e| format!("The text is not valid JSON: {e}"))
}

fn entity_doc(e: &Entity) -> String {
    let mut v = portolan_core::export::entity_document(e);
    if let Some(o) = v.as_object_mut() {
        o.shift_remove("blueprint");
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn entity_url(bp_id: &str, id: &str) -> String {
    format!("/ui/entities/{}/{}", urlencode(bp_id), urlencode(id))
}

pub async fn entity_new(State(state): State<AppState>, user: WebUser, Path(bp_id): Path<String>) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let props: Map<String, Value> = bp.schema.properties.keys().map(|k| (k.clone(), Value::Null)).collect();
    let skeleton = json!({"identifier": "", "title": "", "properties": props, "relations": {}});
    let text = serde_json::to_string_pretty(&skeleton).unwrap_or_default();
    let editor = Editor {
        heading: format!("New {}", bp.title),
        action: format!("/ui/entities/{}", urlencode(&bp_id)),
        back: format!("/ui/catalog/{}", urlencode(&bp_id)),
        forms: None,
    };
    editor.show(&state, &user, StatusCode::OK, &text, None, vec![])
}

pub async fn entity_edit(
    State(state): State<AppState>,
    user: WebUser,
    Path((bp_id, id)): Path<(String, String)>,
) -> WebResult {
    let e = super::respond::readable_entity(&state, &user, &bp_id, &id).await?;
    let action = entity_url(&bp_id, &id);
    let editor = Editor { heading: format!("Edit {id}"), back: action.clone(), action, forms: None };
    editor.show(&state, &user, StatusCode::OK, &entity_doc(&e), None, vec![])
}

async fn save_entity(state: AppState, user: WebUser, bp_id: String, id: Option<String>, req: Request) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    let text = form.get("json").unwrap_or("").to_string();
    let (heading, action) = match &id {
        Some(i) => (format!("Edit {i}"), entity_url(&bp_id, i)),
        None => (format!("New {bp_id}"), format!("/ui/entities/{}", urlencode(&bp_id))),
    };
    let editor = Editor { heading, back: action.clone(), action, forms: None };
    let body = match editor_json(&text) {
        Ok(b) => b,
        Err(m) => return editor.invalid(&state, &user, &text, m),
    };
    // The write, through the service layer the API uses (same validation, audit and guard).
    let actor = caller(&user);
    let op = if id.is_some() { Op::Put } else { Op::from_flags(false, false) };
    let result = match ops::entity::blueprint(&state, &user.org, &bp_id).await {
        Ok(bp) => ops::entity::write(&state, &actor, &bp, id.as_deref(), &body, op, WriteOptions::default()).await,
        Err(e) => Err(e),
    };
    editor.after_write(&state, &user, &text, result, |w| entity_url(&bp_id, &w.entity.identifier))
}

pub async fn entity_save_new(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    save_entity(state, user, bp_id, None, req).await
}

pub async fn entity_save(
    State(state): State<AppState>,
    user: WebUser,
    Path((bp_id, id)): Path<(String, String)>,
    req: Request,
) -> WebResult {
    save_entity(state, user, bp_id, Some(id), req).await
}
