//! `/v1/blueprints/{bp}/entities…` routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::Blueprint;
use portolan_store::{SearchRequest, Written};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access;
use crate::auth::Caller;
use crate::computed::{ReadOptions, render, render_for};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{JsonBody, QueryParams, flag};
use crate::ops::entity::{self, Op, WriteOptions};
use crate::state::AppState;

mod bulk;
pub use bulk::{bulk_create, bulk_delete, delete_all};

/// Query parameters of entity routes (all optional).
#[derive(Debug, Default, Deserialize)]
pub struct EntityParams {
    upsert: Option<Value>,
    merge: Option<Value>,
    validation_only: Option<Value>,
    create_missing_related_entities: Option<Value>,
    delete_dependents: Option<Value>,
    delete_blueprint: Option<Value>,
    exclude_calculated_properties: Option<Value>,
    attach_title_to_relation: Option<Value>,
    include: Option<Value>,
    exclude: Option<Value>,
    /// The action run this write belongs to: the written entity is recorded as one of the
    /// run's affected entities while the run is in progress (kept with the delete-all job).
    pub(crate) run_id: Option<String>,
}

fn list_param(v: &Option<Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    }
}

impl EntityParams {
    pub fn read_options(&self) -> ApiResult<ReadOptions> {
        Ok(ReadOptions {
            exclude_calculated: flag("exclude_calculated_properties", &self.exclude_calculated_properties)?,
            attach_title_to_relation: flag("attach_title_to_relation", &self.attach_title_to_relation)?,
            include: list_param(&self.include),
            exclude: list_param(&self.exclude),
        })
    }
}

/// Port's `upsert` and `merge` flags of the create routes.
fn op_of(p: &EntityParams) -> ApiResult<Op> {
    Ok(Op::from_flags(flag("upsert", &p.upsert)?, flag("merge", &p.merge)?))
}

pub async fn blueprint_of(state: &AppState, caller: &Caller, bp: &str) -> ApiResult<Arc<Blueprint>> {
    entity::blueprint_in(state.blueprints_for(caller).await?, bp)
}

/// Write one entity and answer with it (201 when it was created).
async fn write_single(
    state: &AppState,
    caller: &Caller,
    bp_id: &str,
    path_id: Option<&str>,
    body: &Value,
    op: Op,
    params: &EntityParams,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let bp = blueprint_of(state, caller, bp_id).await?;
    // Every parameter is checked before anything is written.
    let opts = WriteOptions {
        create_missing_related: flag("create_missing_related_entities", &params.create_missing_related_entities)?,
        validation_only: flag("validation_only", &params.validation_only)?,
        show_credentials: true,
    };
    let read = params.read_options()?;
    crate::ops::action::check_run_id(state, &caller.org, params.run_id.as_deref()).await?;
    // Background work yields to the request while it runs (`jobs::Foreground`).
    let _foreground = state.jobs.foreground.enter();
    let full = entity::write_full(state, caller, &bp, path_id, body, op, opts).await?;
    let Written { entity, created } = full.written;
    if !opts.validation_only {
        let written = [(entity.blueprint.clone(), entity.identifier.clone())];
        crate::ops::action::record_affected(state, &caller.org, params.run_id.as_deref(), &written).await;
    }
    let out = render(state, caller, &[entity], &read).await?;
    let status = if created && !opts.validation_only { StatusCode::CREATED } else { StatusCode::OK };
    let mut answer = json!({"ok": true, "entity": out.first()});
    if let Some(extra) = crate::ops::system_entity::additional_data(&full.credentials) {
        answer["additionalData"] = extra;
    }
    Ok((status, Json(answer)))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp): Path<String>,
    QueryParams(params): QueryParams<EntityParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let op = op_of(&params)?;
    write_single(&state, &caller, &bp, None, &body, op, &params).await
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, id)): Path<(String, String)>,
    QueryParams(params): QueryParams<EntityParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    write_single(&state, &caller, &bp, Some(&id), &body, Op::Put, &params).await
}

pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, id)): Path<(String, String)>,
    QueryParams(params): QueryParams<EntityParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    write_single(&state, &caller, &bp, Some(&id), &body, Op::Patch, &params).await
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, id)): Path<(String, String)>,
    QueryParams(params): QueryParams<EntityParams>,
) -> ApiResult<Json<Value>> {
    blueprint_of(&state, &caller, &bp).await?;
    let e = state
        .store
        .get_entity(&caller.org, &bp, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("entity {id:?} of blueprint {bp:?} was not found")))?;
    if !access::may_read(&state, &caller, &e).await? {
        return Err(access::unreadable(&bp, &id));
    }
    let out = render(&state, &caller, &[e], &params.read_options()?).await?;
    Ok(Json(json!({"ok": true, "entity": out.first()})))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp): Path<String>,
    QueryParams(params): QueryParams<EntityParams>,
) -> ApiResult<Json<Value>> {
    blueprint_of(&state, &caller, &bp).await?;
    let blueprints = state.blueprints_for(&caller).await?;
    let max = state.config.max_unpaginated;
    // One read of the permission documents for the restriction and the rendering.
    let (scope, visible) = access::reader_and_restriction(&state, &caller).await?;
    let req = SearchRequest { visible: visible.as_ref(), ..SearchRequest::new(&blueprints, Some(&bp), None, max) };
    let page = state.store.search(&caller.org, &req).await?;
    if page.next.is_some() {
        return Err(too_many(max, &bp));
    }
    let out = render_for(&state, &caller.org, scope.as_ref(), &page.entities, &params.read_options()?).await?;
    Ok(Json(json!({"ok": true, "entities": out})))
}

pub fn too_many(max: u32, bp: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyResults,
        format!(
            "more than {max} entities match; page through them with POST /v1/blueprints/{bp}/entities/search (limit and from)"
        ),
    )
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((bp, id)): Path<(String, String)>,
    QueryParams(params): QueryParams<EntityParams>,
) -> ApiResult<Json<Value>> {
    blueprint_of(&state, &caller, &bp).await?;
    let cascade = flag("delete_dependents", &params.delete_dependents)?;
    entity::delete(&state, &caller, &bp, std::slice::from_ref(&id), cascade).await?;
    Ok(Json(json!({"ok": true})))
}

pub async fn count(State(state): State<AppState>, caller: Caller, Path(bp): Path<String>) -> ApiResult<Json<Value>> {
    blueprint_of(&state, &caller, &bp).await?;
    let blueprints = state.blueprints_for(&caller).await?;
    let visible = access::read_restriction(&state, &caller).await?;
    let req = SearchRequest { visible: visible.as_ref(), ..SearchRequest::new(&blueprints, Some(&bp), None, 1) };
    let n = state.store.count_entities(&caller.org, &req).await?;
    Ok(Json(json!({"ok": true, "count": n})))
}
