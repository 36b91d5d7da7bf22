//! `/v1/blueprints/{bp}/entities…` routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use portolan_core::entity::{compose, relation_targets};
use portolan_core::{Blueprint, Entity, EntityInput, FieldError, WriteMeta, WriteMode};
use portolan_store::{EntityWrite, RelTarget, SearchRequest, WriteRejection, Written};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, random_bytes};
use crate::catalog::{ReadOptions, render};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams, flag};
use crate::handlers::{audit_ctx, failure_record, now_iso};
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
    /// Kept with the delete-all job; action runs arrive with the actions issue.
    run_id: Option<String>,
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

/// What a write route does with an existing entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    Upsert,
    UpsertMerge,
    Put,
    Patch,
}

impl Op {
    fn from_flags(p: &EntityParams) -> ApiResult<Op> {
        Ok(match (flag("upsert", &p.upsert)?, flag("merge", &p.merge)?) {
            (false, _) => Op::Create,
            (true, false) => Op::Upsert,
            (true, true) => Op::UpsertMerge,
        })
    }
}

pub async fn blueprint_of(state: &AppState, caller: &Caller, bp: &str) -> ApiResult<Arc<Blueprint>> {
    let all = state.blueprints(&caller.org).await?;
    all.get(bp).cloned().map(Arc::new).ok_or_else(|| ApiError::not_found(format!("blueprint {bp:?} was not found")))
}

fn new_entity_id() -> String {
    format!("e_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<12>()))
}

/// Turn one request body into a store write (or an immediate rejection).
pub(crate) fn prepare(
    bp: &Arc<Blueprint>,
    path_id: Option<&str>,
    body: &Value,
    op: Op,
    meta: WriteMeta,
    create_missing: bool,
) -> Result<EntityWrite, (String, WriteRejection)> {
    let input = EntityInput::parse(body).map_err(|e| (String::new(), WriteRejection::Invalid(e.into())))?;
    let body_id = input.identifier_str().map_err(|e| (String::new(), WriteRejection::Invalid(e.into())))?;
    let id = match (path_id, body_id) {
        (Some(p), _) => p.to_string(),
        (None, Some(b)) => b.to_string(),
        (None, None) => new_entity_id(),
    };
    if let Some(Value::String(b)) = &input.blueprint
        && *b != bp.identifier
    {
        let e = FieldError::new("blueprint", format!("is {b:?} but the route is for blueprint {:?}", bp.identifier));
        return Err((id, WriteRejection::Invalid(e.into())));
    }
    let bp2 = bp.clone();
    let id2 = id.clone();
    let build = move |stored: Option<&Entity>| -> Result<(Entity, Vec<RelTarget>), WriteRejection> {
        let mode = match (op, stored) {
            (Op::Create, Some(_)) => {
                return Err(WriteRejection::Conflict(format!(
                    "entity {id2:?} of blueprint {:?} already exists; use upsert=true to update it",
                    bp2.identifier
                )));
            }
            (Op::Put | Op::Patch, None) => {
                return Err(WriteRejection::NotFound(format!(
                    "entity {id2:?} of blueprint {:?} was not found",
                    bp2.identifier
                )));
            }
            (Op::Create, None) => WriteMode::Create,
            (Op::Upsert | Op::Put, _) => WriteMode::Replace,
            (Op::UpsertMerge | Op::Patch, _) => WriteMode::Merge,
        };
        let entity = compose(&bp2, &id2, &input, stored, mode, &meta).map_err(WriteRejection::Invalid)?;
        let edges = relation_targets(&bp2, &entity)
            .into_iter()
            .map(|(relation, target_blueprint, target_identifier, required)| RelTarget {
                relation,
                target_blueprint,
                target_identifier,
                required,
            })
            .collect();
        Ok((entity, edges))
    };
    Ok(EntityWrite {
        blueprint: bp.identifier.clone(),
        identifier: id,
        build: Box::new(build),
        create_missing_related: create_missing,
    })
}

pub fn rejection_error(r: &WriteRejection) -> ApiError {
    match r {
        WriteRejection::Conflict(m) => ApiError::conflict(m.clone()),
        WriteRejection::NotFound(m) => ApiError::not_found(m.clone()),
        WriteRejection::Invalid(errs) => ApiError::invalid(errs),
        WriteRejection::MissingTarget { relation, blueprint, identifier } => ApiError::not_found(format!(
            "relation {relation:?} points at entity {identifier:?} of blueprint {blueprint:?}, which does not exist; create it first or pass create_missing_related_entities=true"
        )),
    }
}

fn meta(caller: &Caller) -> WriteMeta {
    WriteMeta { now: now_iso(), actor: caller.client_id.clone(), datasource: caller.user_agent.clone() }
}

async fn audit_failures(state: &AppState, caller: &Caller, bp: &str, fails: &[(String, String, &'static str)]) {
    // Integration event log hook (handlers/integration/events.rs): an integration's refused writes.
    crate::handlers::integration::events::on_rejected(state, caller, bp, fails).await;
    let recs: Vec<_> = fails
        .iter()
        .map(|(id, msg, action)| failure_record(caller, "entity", action, id, Some(bp), Some(id), msg))
        .collect();
    if recs.is_empty() {
        return;
    }
    if let Err(e) = state.store.append_audit(&caller.org, &recs).await {
        tracing::warn!(error = %e, "could not record failed entity writes in the audit log");
    }
}

/// Write one entity and answer with it.
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
    let create_missing = flag("create_missing_related_entities", &params.create_missing_related_entities)?;
    let validation_only = flag("validation_only", &params.validation_only)?;
    let opts = params.read_options()?;
    let action = if matches!(op, Op::Create) { "CREATE" } else { "UPDATE" };
    let write = match prepare(&bp, path_id, body, op, meta(caller), create_missing) {
        Ok(w) => w,
        Err((id, rej)) => {
            let err = rejection_error(&rej);
            audit_failures(state, caller, bp_id, &[(id, err.message.clone(), action)]).await;
            return Err(err);
        }
    };
    let id = write.identifier.clone();
    if validation_only {
        let entity = match dry_run(state, caller, vec![write]).await?.pop() {
            Some(Ok(w)) => w.entity,
            Some(Err(rej)) => return Err(rejection_error(&rej)),
            None => return Err(ApiError::internal("validation", "no result")),
        };
        let out = render(state, &caller.org, &[entity], &opts).await?;
        return Ok((StatusCode::OK, Json(json!({"ok": true, "entity": out.first()}))));
    }
    let mut results = state.store.write_entities(&caller.org, vec![write], &audit_ctx(caller)).await?;
    match results.pop() {
        Some(Ok(Written { entity, created })) => {
            let out = render(state, &caller.org, &[entity], &opts).await?;
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(json!({"ok": true, "entity": out.first()}))))
        }
        Some(Err(rej)) => {
            let err = rejection_error(&rej);
            audit_failures(state, caller, bp_id, &[(id, err.message.clone(), action)]).await;
            Err(err)
        }
        None => Err(ApiError::internal("write", "store returned no result")),
    }
}

/// What the store checks on a real write, for `validation_only`: every relation target exists.
async fn missing_target(
    state: &AppState,
    caller: &Caller,
    e: &Entity,
    edges: &[RelTarget],
) -> ApiResult<Option<WriteRejection>> {
    for edge in edges {
        if edge.target_blueprint == e.blueprint && edge.target_identifier == e.identifier {
            continue;
        }
        if state.store.get_entity(&caller.org, &edge.target_blueprint, &edge.target_identifier).await?.is_none() {
            return Ok(Some(WriteRejection::MissingTarget {
                relation: edge.relation.clone(),
                blueprint: edge.target_blueprint.clone(),
                identifier: edge.target_identifier.clone(),
            }));
        }
    }
    Ok(None)
}

/// Run writes without storing them (`validation_only=true`): what the store would answer.
async fn dry_run(
    state: &AppState,
    caller: &Caller,
    writes: Vec<EntityWrite>,
) -> ApiResult<Vec<Result<Written, WriteRejection>>> {
    let mut out = Vec::with_capacity(writes.len());
    for w in writes {
        let stored = state.store.get_entity(&caller.org, &w.blueprint, &w.identifier).await?;
        let result = match (w.build)(stored.as_ref()) {
            Ok((entity, edges)) => match w.create_missing_related {
                false => match missing_target(state, caller, &entity, &edges).await? {
                    Some(rej) => Err(rej),
                    None => Ok(Written { entity, created: stored.is_none() }),
                },
                true => Ok(Written { entity, created: stored.is_none() }),
            },
            Err(rej) => Err(rej),
        };
        out.push(result);
    }
    Ok(out)
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp): Path<String>,
    QueryParams(params): QueryParams<EntityParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let op = Op::from_flags(&params)?;
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
    let out = render(&state, &caller.org, &[e], &params.read_options()?).await?;
    Ok(Json(json!({"ok": true, "entity": out.first()})))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(bp): Path<String>,
    QueryParams(params): QueryParams<EntityParams>,
) -> ApiResult<Json<Value>> {
    blueprint_of(&state, &caller, &bp).await?;
    let blueprints = state.blueprints(&caller.org).await?;
    let max = state.config.max_unpaginated;
    let req = SearchRequest::new(&blueprints, Some(&bp), None, max);
    let page = state.store.search(&caller.org, &req).await?;
    if page.next.is_some() {
        return Err(too_many(max, &bp));
    }
    let out = render(&state, &caller.org, &page.entities, &params.read_options()?).await?;
    Ok(Json(json!({"ok": true, "entities": out})))
}

pub fn too_many(max: u32, bp: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_results",
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
    // Integration hook (handlers/integration/events.rs): mass-deletion guard, deletion log.
    let ticket =
        crate::handlers::integration::events::before_delete(&state, &caller, &bp, std::slice::from_ref(&id)).await?;
    let res =
        state.store.delete_entities(&caller.org, &bp, std::slice::from_ref(&id), cascade, &audit_ctx(&caller)).await;
    crate::handlers::integration::events::after_delete(&state, &caller, ticket, res.as_deref().ok()).await;
    match res {
        Ok(_) => Ok(Json(json!({"ok": true}))),
        Err(e) => {
            let err = ApiError::from(e);
            audit_failures(&state, &caller, &bp, &[(id, err.message.clone(), "DELETE")]).await;
            Err(err)
        }
    }
}

pub async fn count(State(state): State<AppState>, caller: Caller, Path(bp): Path<String>) -> ApiResult<Json<Value>> {
    blueprint_of(&state, &caller, &bp).await?;
    let blueprints = state.blueprints(&caller.org).await?;
    let req = SearchRequest::new(&blueprints, Some(&bp), None, 1);
    let n = state.store.count_entities(&caller.org, &req).await?;
    Ok(Json(json!({"ok": true, "count": n})))
}
