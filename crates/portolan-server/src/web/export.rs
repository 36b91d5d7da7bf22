//! The export dialog and download: blueprints and their entities in JSON, YAML or HCL.

use axum::extract::{RawQuery, State};
use portolan_core::export::Format;
use portolan_core::{Blueprint, Entity};
use portolan_store::SearchRequest;
use serde::Serialize;

use super::catalog::BlueprintRef;
use super::form::query_form;
use super::respond::{chrome, download, page};
use super::session::WebUser;
use super::{Chrome, WebError, WebResult};
use crate::state::AppState;

#[derive(Serialize)]
struct ExportDialog<'a> {
    chrome: Chrome,
    title: &'static str,
    blueprints: Vec<BlueprintRef<'a>>,
}

pub async fn export_dialog(State(state): State<AppState>, user: WebUser) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    // People and teams (`_user`, `_team`) are not catalog data to carry elsewhere.
    let own = |b: &&Blueprint| !portolan_core::system::is_system(&b.identifier);
    let mut blueprints: Vec<BlueprintRef> = bps.values().filter(own).map(BlueprintRef::of).collect();
    blueprints.sort_by(|a, b| a.identifier.cmp(b.identifier));
    page(&state, "export.html", ExportDialog { chrome: chrome(&state, &user), title: "Export", blueprints })
}

/// Blueprints (chosen, or all but `_user` and `_team`) and their entities in JSON, YAML or HCL. Entities are read a
/// page of 1000 at a time, at most `max_unpaginated` in all (the CLI has no such cap).
pub async fn export_download(State(state): State<AppState>, user: WebUser, RawQuery(q): RawQuery) -> WebResult {
    let f = query_form(&q);
    let format = Format::parse(f.get("format").unwrap_or("json"))
        .ok_or_else(|| WebError::BadRequest("format must be json, yaml or hcl".into()))?;
    let all = state.blueprints(&user.org).await?;
    let chosen = f.all("blueprint");
    let ids = portolan_core::export::selection(all.keys(), &chosen);
    if let Some(missing) = chosen.iter().find(|c| !all.contains_key(*c)) {
        return Err(WebError::NotFound(format!("There is no blueprint \"{missing}\".")));
    }
    let blueprints: Vec<Blueprint> = ids.iter().map(|i| all[*i].clone()).collect();
    let mut entities: Vec<Entity> = Vec::new();
    if f.get("entities") != Some("no") {
        let visible = crate::access::read_restriction(&state, &crate::web::respond::caller(&user)).await?;
        let cap = state.config.max_unpaginated as usize;
        for id in &ids {
            let mut after = None;
            loop {
                let req = SearchRequest {
                    after,
                    visible: visible.as_ref(),
                    ..SearchRequest::new(&all, Some(id.as_str()), None, 1000)
                };
                let page = state.store.search(&user.org, &req).await?;
                entities.extend(page.entities);
                if entities.len() > cap {
                    return Err(WebError::BadRequest(format!(
                        "More than {cap} entities: export them with `portolan export`, which has no limit."
                    )));
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
    }
    let actions: Vec<serde_json::Value> =
        state.store.list_actions(&user.org).await?.into_iter().map(|a| a.data).collect();
    let actions = portolan_core::export::actions_for(&blueprints, &actions);
    let body = portolan_core::export::export_with_actions(format, &blueprints, &entities, &actions);
    Ok(download(body, format.content_type(), &format!("portolan-export.{}", format.extension())))
}
