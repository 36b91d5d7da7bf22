//! What every page handler uses to answer: the page renderer and its chrome, redirects,
//! downloads, the admin check, and the caller writes through the API are made as.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Value as Mj;
use serde::Serialize;

use super::session::WebUser;
use super::{Chrome, WebError, WebResult, html, message_page};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// A serializable value for a template context.
pub(super) fn sv<T: Serialize>(x: T) -> Mj {
    Mj::from(minijinja::value::Serde(x))
}

/// What every signed-in page shows around its content.
pub(super) fn chrome(state: &AppState, u: &WebUser) -> Chrome {
    Chrome {
        email: u.user.email.clone(),
        admin: u.is_admin(),
        csrf: u.csrf.clone(),
        htmx_integrity: state.templates.htmx_integrity.clone(),
    }
}

/// The template `name` rendered with `ctx`, as a 200.
pub(super) fn page(state: &AppState, name: &str, ctx: impl Serialize) -> WebResult {
    page_with(state, StatusCode::OK, name, ctx)
}

/// The template `name` rendered with `ctx`, with `status`.
pub(super) fn page_with(state: &AppState, status: StatusCode, name: &str, ctx: impl Serialize) -> WebResult {
    Ok(html(status, state.templates.render(name, sv(ctx))?))
}

/// A 303 to `to`. A target that cannot be a `Location` header (control characters) is a 400
/// page, never a panic (axum's `Redirect::to` panics on it).
pub(super) fn see_other(to: &str) -> Response {
    match HeaderValue::try_from(to) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => message_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The address to go to next contains characters that cannot be part of a link.",
        ),
    }
}

/// A file to save: `body` with its content type, named `filename` (made safe for the header).
pub(super) fn download(body: String, content_type: &str, filename: &str) -> Response {
    let mut res = Response::new(Body::from(body));
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    let safe: String =
        filename.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// The API's caller for writes made through the UI: audited as the user, origin `UI`.
pub(crate) fn caller(u: &WebUser) -> Caller {
    Caller {
        client_id: u.user.email.clone(),
        org: u.org.clone(),
        user_agent: Some("UI".into()),
        principal: u.principal.clone(),
        depth: 0,
        blueprints_version: None,
    }
}

/// Only admins do `what` (change the data model, integrations, users): a 403 page saying so
/// for members.
pub(super) fn require_admin(user: &WebUser, what: &str) -> WebResult<()> {
    if user.is_admin() { Ok(()) } else { Err(WebError::Forbidden(format!("Only admins {what}."))) }
}

pub(super) fn now_secs(state: &AppState) -> i64 {
    state.clock.now()
}

/// One message of a refused write, at its field (`path` empty: the whole document).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(super) struct FieldMessage {
    pub path: String,
    pub message: String,
}

impl FieldMessage {
    pub(super) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldMessage { path: path.into(), message: message.into() }
    }
}

/// The API's error as editor messages: the summary and one entry per field.
pub(super) fn api_errors(e: &ApiError) -> (String, Vec<FieldMessage>) {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let details = e
        .details
        .as_ref()
        .and_then(|d| d.as_array())
        .map(|d| d.iter().map(|x| FieldMessage::new(text(&x["path"]), text(&x["message"]))).collect())
        .unwrap_or_default();
    (e.message.clone(), details)
}

/// Entity `id` of blueprint `bp` if it exists and `user` may read it; otherwise the same 404
/// page (what a user may not read does not show that it exists). Every web page that shows one
/// entity loads it through here.
pub(crate) async fn readable_entity(
    state: &AppState,
    user: &WebUser,
    bp: &str,
    id: &str,
) -> WebResult<portolan_core::Entity> {
    let missing = || super::error::WebError::NotFound(format!("There is no entity \"{id}\" of \"{bp}\"."));
    let e = state.store.get_entity(&user.org, bp, id).await?.ok_or_else(missing)?;
    if !crate::access::may_read(state, &caller(user), &e).await? {
        return Err(missing());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_target_with_newlines_is_a_400_not_a_panic() {
        assert_eq!(see_other("/ui/x\r\nSet-Cookie: a=b").status(), StatusCode::BAD_REQUEST);
        assert_eq!(see_other("/ui/x").status(), StatusCode::SEE_OTHER);
    }

    #[test]
    fn api_field_errors_become_messages_at_their_path() {
        let e = ApiError::from(portolan_core::FieldError::new("properties.size", "must be a number"));
        let (summary, details) = api_errors(&e);
        assert!(summary.contains("must be a number"), "{summary}");
        assert_eq!(details, [FieldMessage::new("properties.size", "must be a number")]);
    }
}
