//! The organization page (admins): its name, and its quotas beside what it uses. Quotas are set
//! by the operator (`portolan org quota`), so the page only shows them.

use axum::extract::State;
use serde::Serialize;

use super::respond::{chrome, page, require_admin};
use super::session::WebUser;
use super::{Chrome, WebResult};
use crate::state::AppState;

#[derive(Serialize)]
struct Line {
    what: &'static str,
    used: u64,
    limit: Option<u64>,
    /// Whether the quota is reached (no more can be created).
    full: bool,
}

#[derive(Serialize)]
struct OrgPage {
    chrome: Chrome,
    title: &'static str,
    name: String,
    id: String,
    lines: Vec<Line>,
}

/// `GET /ui/organization`.
pub async fn organization(State(state): State<AppState>, user: WebUser) -> WebResult {
    require_admin(&user, "see the organization's quotas")?;
    let org = state
        .store
        .get_org(&user.org)
        .await?
        .ok_or_else(|| super::WebError::NotFound("No such organization.".into()))?;
    let q = state.store.quotas(&user.org).await?;
    let usage = state.store.usage(&user.org).await?;
    let line = |what, used: u64, limit: Option<u64>| Line { what, used, limit, full: limit.is_some_and(|l| used >= l) };
    let lines = vec![line("Users", usage.users, q.max_users), line("Entities", usage.entities, q.max_entities)];
    page(
        &state,
        "organization.html",
        OrgPage { chrome: chrome(&state, &user), title: "Organization", name: org.name, id: org.id.0, lines },
    )
}
