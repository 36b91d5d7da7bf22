//! Many entities at once: bulk create (200 / 207), bulk delete and delete-all.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::FieldError;
use portolan_store::JobStatus;
use serde_json::{Value, json};

use super::{EntityParams, Op, audit_failures, blueprint_of, dry_run, meta, prepare, rejection_error};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams, flag};
use crate::handlers::audit_ctx;
use crate::jobs::{self, delete_all};
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
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a bulk request may hold at most {max} entities (got {}); send smaller batches", items.len()),
        ));
    }
    let op = Op::from_flags(&params)?;
    let create_missing = flag("create_missing_related_entities", &params.create_missing_related_entities)?;
    let m = meta(&caller);
    let mut writes = Vec::new();
    let mut errors = Vec::new();
    let mut index_of = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match prepare(&bp, None, item, op, m.clone(), create_missing) {
            Ok(w) => {
                index_of.push((i, w.identifier.clone()));
                writes.push(w);
            }
            Err((id, rej)) => errors.push((i, id, rejection_error(&rej))),
        }
    }
    let validation_only = flag("validation_only", &params.validation_only)?;
    let results = if validation_only {
        dry_run(&state, &caller, writes).await?
    } else {
        state.store.write_entities(&caller.org, writes, &audit_ctx(&caller)).await?
    };
    let mut ok = Vec::new();
    for ((i, id), r) in index_of.into_iter().zip(results) {
        match r {
            Ok(w) => ok.push(
                json!({"identifier": w.entity.identifier, "index": i, "created": w.created, "additionalData": {}}),
            ),
            Err(rej) => errors.push((i, id, rejection_error(&rej))),
        }
    }
    errors.sort_by_key(|(i, _, _)| *i);
    let action = if op == Op::Create { "CREATE" } else { "UPDATE" };
    let fails: Vec<_> = errors.iter().map(|(_, id, e)| (id.clone(), e.message.clone(), action)).collect();
    if !validation_only {
        audit_failures(&state, &caller, &bp_id, &fails).await;
    }
    let errors_json: Vec<Value> = errors
        .iter()
        .map(|(i, id, e)| json!({"identifier": if id.is_empty() { "unknown" } else { id }, "index": i, "statusCode": e.status.as_u16(), "error": e.code, "message": e.message}))
        .collect();
    // Port answers a partial success with 207 and `ok: true`; the errors say what failed.
    let status = if errors_json.is_empty() { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    Ok((status, Json(json!({"ok": true, "entities": ok, "errors": errors_json}))))
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
    let ids =
        if caller.user_agent.as_deref().and_then(crate::handlers::integration::events::ocean_integration).is_some() {
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
    // Integration hook (handlers/integration/events.rs): mass-deletion guard, deletion log.
    let ticket = crate::handlers::integration::events::before_delete(&state, &caller, &bp, &ids).await?;
    let res = state.store.delete_entities(&caller.org, &bp, &ids, cascade, &audit_ctx(&caller)).await;
    crate::handlers::integration::events::after_delete(&state, &caller, ticket, res.as_deref().ok()).await;
    let deleted = match res {
        Ok(d) => d,
        Err(e) => {
            let err = ApiError::from(e);
            let fails: Vec<_> = ids.iter().map(|id| (id.clone(), err.message.clone(), "DELETE")).collect();
            audit_failures(&state, &caller, &bp, &fails).await;
            return Err(err);
        }
    };
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
    let (cascade, delete_blueprint) =
        (flag("delete_dependents", &params.delete_dependents)?, flag("delete_blueprint", &params.delete_blueprint)?);
    let payload = delete_all::Payload {
        blueprint: bp,
        delete_dependents: cascade,
        delete_blueprint,
        run_id: params.run_id.clone(),
        client_id: caller.client_id.clone(),
        user_agent: caller.user_agent.clone(),
    };
    let payload = serde_json::to_value(&payload).map_err(|e| ApiError::internal("job payload", e))?;
    let job = jobs::enqueue(&state, &caller.org, delete_all::KIND, payload).await?;
    let job = jobs::wait_for(&state, &caller.org, &job.id, state.config.job_wait).await?;
    match job.status {
        JobStatus::Failed => Err(jobs::job_failure(&job)),
        JobStatus::Cancelled => Err(ApiError::conflict(format!("job {} was cancelled", job.id))),
        JobStatus::Succeeded | JobStatus::Queued | JobStatus::Running => {
            if delete_blueprint && job.status == JobStatus::Succeeded {
                state.blueprints_changed(&caller.org);
            }
            Ok(Json(json!({"ok": true, "jobId": job.id, "jobStatus": job.status.as_str()})))
        }
    }
}
