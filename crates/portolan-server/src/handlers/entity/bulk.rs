//! Many entities at once: bulk create (200 / 207), bulk delete and delete-all.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::FieldError;
use serde_json::{Value, json};

use super::{EntityParams, blueprint_of, op_of};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{JsonBody, QueryParams, flag};
use crate::ops::entity::{self, DeleteAll, WriteOptions};
use crate::ops::event_log::ocean_integration;
use crate::state::AppState;

pub async fn bulk_create(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp_id): Path<String>,
    QueryParams(params): QueryParams<EntityParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let bp = blueprint_of(&state, &caller, &bp_id).await?;
    let Some(items) = body.get("entities").and_then(Value::as_array) else {
        return Err(FieldError::new("entities", "is required: an array of entities").into());
    };
    let max = state.config.max_bulk_entities;
    if items.is_empty() {
        return Err(FieldError::new("entities", format!("must hold 1 to {max} entities (got none)")).into());
    }
    if items.len() > max {
        // 413, as Port answers: the latest Ocean then falls back to one upsert per entity.
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("a bulk request may hold at most {max} entities (got {}); send smaller batches", items.len()),
        ));
    }
    let op = op_of(&params)?;
    let opts = WriteOptions {
        create_missing_related: flag("create_missing_related_entities", &params.create_missing_related_entities)?,
        validation_only: flag("validation_only", &params.validation_only)?,
        show_credentials: false,
    };
    crate::ops::action::check_run_id(&state, &caller.org, params.run_id.as_deref()).await?;
    // Background work yields to the request while it runs (`jobs::Foreground`).
    let _foreground = state.jobs.foreground.enter();
    let results = entity::write_many(&state, &caller, &bp, items, op, opts).await?;
    if !opts.validation_only {
        let written: Vec<(String, String)> = results
            .iter()
            .filter_map(|r| r.result.as_ref().ok())
            .map(|w| (w.entity.blueprint.clone(), w.entity.identifier.clone()))
            .collect();
        crate::ops::action::record_affected(&state, &caller.org, params.run_id.as_deref(), &written).await;
    }
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r.result {
            Ok(w) => ok.push(
                json!({"identifier": w.entity.identifier, "index": r.index, "created": w.created, "additionalData": {}}),
            ),
            Err(e) => {
                let id = if r.identifier.is_empty() { "unknown" } else { r.identifier.as_str() };
                errors.push(json!({"identifier": id, "index": r.index, "statusCode": e.status.as_u16(), "error": e.code, "message": e.message}));
            }
        }
    }
    // Port answers a partial success with 207 and `ok: true`; the errors say what failed.
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    Ok((status, Json(json!({"ok": true, "entities": ok, "errors": errors}))))
}

pub async fn bulk_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp): Path<String>,
    QueryParams(params): QueryParams<EntityParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    blueprint_of(&state, &caller, &bp).await?;
    let ids: Option<Vec<String>> = body
        .get("entities")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect());
    let Some(ids) = ids.filter(|ids| (1..=100).contains(&ids.len())) else {
        return Err(FieldError::new("entities", "must be an array of 1 to 100 entity identifiers (strings)").into());
    };
    let cascade = flag("delete_dependents", &params.delete_dependents)?;
    // Ocean (its User-Agent) treats a 404 as "already deleted" (ocean-protocol.md §0.10), and a
    // cascade of an earlier batch can remove entities of a later one: for it, identifiers that
    // are gone are skipped (absent from `deletedEntities`) instead of failing the whole batch.
    let ids = if caller.user_agent.as_deref().and_then(ocean_integration).is_some() {
        let mut existing = Vec::with_capacity(ids.len());
        for id in ids {
            if state.store.get_entity(&caller.org, &bp, &id).await?.is_some() {
                existing.push(id);
            }
        }
        if existing.is_empty() {
            return Ok(Json(json!({"ok": true, "deletedEntities": []})));
        }
        existing
    } else {
        ids
    };
    let deleted = entity::delete(&state, &caller, &bp, &ids, cascade).await?;
    let deleted: Vec<&str> = deleted.iter().filter(|(b, _)| *b == bp).map(|(_, id)| id.as_str()).collect();
    Ok(Json(json!({"ok": true, "deletedEntities": deleted})))
}

/// Delete every entity of a blueprint (and with `delete_blueprint=true` the blueprint): a
/// durable job (`jobs::delete_all`), deleted in chunks by whichever node's worker claims it.
/// The request waits for it up to `ApiConfig::job_wait` and answers as the job ended: `{ok: true}`
/// or the job's error (409 when entities of other blueprints require these, unless
/// `delete_dependents=true`). A job still running then is answered with `{ok: true}` too, as
/// Port does for this asynchronous route. Portolan adds `jobId` (see `GET /v1/jobs/{id}`) and
/// `jobStatus`.
pub async fn delete_all(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp): Path<String>,
    QueryParams(params): QueryParams<EntityParams>,
) -> ApiResult<Json<Value>> {
    blueprint_of(&state, &caller, &bp).await?;
    let what = DeleteAll {
        delete_dependents: flag("delete_dependents", &params.delete_dependents)?,
        delete_blueprint: flag("delete_blueprint", &params.delete_blueprint)?,
        run_id: params.run_id.clone(),
    };
    let job = entity::delete_all(&state, &caller, &bp, what).await?;
    Ok(Json(json!({"ok": true, "jobId": job.id, "jobStatus": job.status.as_str()})))
}
