//! `/v1/blueprints/{bp}/scorecards…` and `/v1/scorecards`: scorecards in Port's shapes
//! (port-api.md §6), and each entity's level history in a scorecard (Portolan extension). The
//! work is in `ops/scorecard.rs`; results are computed by the jobs of `jobs/scorecard.rs`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_store::SaveMode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryParams};
use crate::ops::scorecard::{self, render_scorecard};
use crate::state::AppState;

/// `GET /v1/scorecards`: every scorecard of the organization.
pub async fn list_all(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let all = state.store.list_scorecards(&caller.org, None).await?;
    Ok(Json(json!({"ok": true, "scorecards": all.iter().map(render_scorecard).collect::<Vec<_>>()})))
}

pub async fn list(State(state): State<AppState>, caller: Caller, Path(bp): Path<String>) -> ApiResult<Json<Value>> {
    crate::ops::entity::blueprint(&state, &caller.org, &bp).await?;
    let all = state.store.list_scorecards(&caller.org, Some(&bp)).await?;
    Ok(Json(json!({"ok": true, "scorecards": all.iter().map(render_scorecard).collect::<Vec<_>>()})))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let saved = scorecard::save_scorecard(&state, &caller, &bp, &body, None, SaveMode::Create).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "scorecard": render_scorecard(&saved)}))))
}

/// `PUT /v1/blueprints/{bp}/scorecards`: the body (an array) becomes all of the blueprint's
/// scorecards, in one transaction; each is recomputed in the background.
pub async fn replace_all(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let saved = scorecard::replace_scorecards(&state, &caller, &bp, &body).await?;
    Ok(Json(json!({"ok": true, "scorecards": saved.iter().map(render_scorecard).collect::<Vec<_>>()})))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let s = scorecard::load_scorecard(&state, &caller.org, &bp, &id).await?;
    Ok(Json(json!({"ok": true, "scorecard": render_scorecard(&s)})))
}

/// `PUT …/scorecards/{id}`: replace the scorecard (it must exist); its results are recomputed.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let saved = scorecard::save_scorecard(&state, &caller, &bp, &body, Some(&id), SaveMode::Update).await?;
    Ok(Json(json!({"ok": true, "scorecard": render_scorecard(&saved)})))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    scorecard::delete_scorecard(&state, &caller, &bp, &id).await?;
    Ok(Json(json!({"ok": true})))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct HistoryParams {
    /// The last this many changes (1..=10,000; default 1,000).
    limit: Option<u32>,
}

/// `GET /v1/blueprints/{bp}/entities/{entity}/scorecards/{scorecard}/history` (Portolan):
/// `{ok, history: [{level, at}]}`, oldest first — each time the entity's level changed.
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, entity, sc)): Path<(String, String, String)>,
    QueryParams(p): QueryParams<HistoryParams>,
) -> ApiResult<Json<Value>> {
    let card = scorecard::load_scorecard(&state, &caller.org, &bp, &sc).await?;
    match state.store.get_entity(&caller.org, &bp, &entity).await? {
        Some(e) if crate::access::may_read(&state, &caller, &e).await? => {}
        _ => return Err(crate::access::unreadable(&bp, &entity)),
    }
    let limit = p.limit.unwrap_or(1000).clamp(1, 10_000);
    let changes = state.store.level_history(&caller.org, &bp, &entity, &sc, limit).await?;
    let history: Vec<Value> = changes.iter().map(|c| json!({"level": c.level, "at": c.at})).collect();
    let levels: Vec<Value> = card.data["levels"].as_array().cloned().unwrap_or_default();
    Ok(Json(json!({"ok": true, "blueprint": bp, "entity": entity, "scorecard": sc, "levels": levels,
                   "history": history})))
}
