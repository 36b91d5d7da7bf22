//! The approvals inbox (`/ui/approvals`): the runs waiting for the signed-in user's decision,
//! each with who asked, for what and with which inputs, who else is asked, and Approve /
//! Decline buttons. A decision is `ops/approval.rs`'s, the same as
//! `PATCH /v1/actions/runs/{id}/approval`; the run page then shows the run going on (or
//! declined).

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use minijinja::Value as Mj;
use serde::Serialize;
use serde_json::{Value, json};

use super::super::form::signed_form;
use super::super::respond::{api_errors, caller, chrome, now_secs, page_with, see_other};
use super::super::session::WebUser;
use super::super::{Chrome, WebResult, format, urlencode};
use crate::ops::approval;
use crate::state::AppState;

#[derive(Serialize)]
struct Waiting {
    id: String,
    url: String,
    decide_url: String,
    action_title: String,
    entity: Option<String>,
    requested_by: String,
    /// Safe HTML (a `<time>`).
    requested: Mj,
    inputs: Vec<(String, String)>,
    /// "any one of" / "each of".
    mode: &'static str,
    approvers: Vec<String>,
    approved_by: Vec<String>,
}

#[derive(Serialize)]
struct InboxPage {
    chrome: Chrome,
    title: &'static str,
    runs: Vec<Waiting>,
    error: Option<String>,
}

async fn inbox_page(state: &AppState, user: &WebUser, status: StatusCode, error: Option<String>) -> WebResult {
    let runs = approval::inbox(state, &caller(user)).await?;
    let now = now_secs(state);
    let rows = runs
        .iter()
        .map(|r| {
            let a = approval::of(r);
            let inputs = r
                .data
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect();
            Waiting {
                id: r.id.clone(),
                url: format!("/ui/runs/{}", urlencode(&r.id)),
                decide_url: format!("/ui/approvals/{}", urlencode(&r.id)),
                action_title: r.data["action"]["title"].as_str().unwrap_or(&r.action).to_string(),
                entity: r.entity.clone(),
                requested_by: r.created_by.clone(),
                requested: Mj::from_safe_string(format::date_time(&r.created_at, now)),
                inputs,
                mode: match a.as_ref().map(|a| a.mode) {
                    Some(portolan_core::approval::Mode::All) => "each of",
                    _ => "any one of",
                },
                approvers: a.as_ref().map(|a| a.approvers.clone()).unwrap_or_default(),
                approved_by: a
                    .map(|a| a.decisions.into_iter().filter(|d| d.state == "APPROVED").map(|d| d.user_id).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    let ctx = InboxPage { chrome: chrome(state, user), title: "Approvals", runs: rows, error };
    page_with(state, status, "approvals.html", ctx)
}

/// `GET /ui/approvals`.
pub async fn inbox(State(state): State<AppState>, user: WebUser) -> WebResult {
    inbox_page(&state, &user, StatusCode::OK, None).await
}

/// `POST /ui/approvals/{id}` `decision=APPROVE|DECLINE&description=…`: decide, then show the
/// run (or the inbox again, saying why the decision was refused).
pub async fn decide(State(state): State<AppState>, user: WebUser, Path(id): Path<String>, req: Request) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    let description = form.get("description").unwrap_or_default().trim().to_string();
    let body = json!({
        "status": form.get("decision").unwrap_or_default(),
        "description": if description.is_empty() { Value::Null } else { json!(description) },
    });
    match approval::decide(&state, &caller(&user), &id, &body).await {
        Ok(run) => Ok(see_other(&format!("/ui/runs/{}", urlencode(&run.id)))),
        Err(e) => {
            let (msg, _) = api_errors(&e);
            inbox_page(&state, &user, e.code.status(), Some(msg)).await
        }
    }
}
