//! Entity writes and deletes: one request body (or many) to a store write, with the audit
//! records of refused writes, the integration event log and the mass-deletion guard.

use std::sync::Arc;

use base64::Engine;
use portolan_core::entity::{compose, relation_targets};
use portolan_core::{Blueprint, Entity, EntityInput, FieldError, WriteMeta, WriteMode};
use portolan_store::{EntityWrite, Job, JobStatus, OrgId, RelTarget, WriteRejection, Written};
use serde_json::Value;

use super::audit::{audit_ctx, failure_record, now_iso, record_failures};
use super::system_entity::{self, SystemWritten};
use super::{Actor, deletion_guard, event_log};
use crate::access::{self, WriteGuard};
use crate::auth::random_bytes;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, delete_all};
use crate::state::AppState;

/// What a write does with an existing entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Create; an existing entity is a conflict.
    Create,
    /// Create or replace.
    Upsert,
    /// Create or merge into the existing entity.
    UpsertMerge,
    /// Replace an existing entity.
    Put,
    /// Merge into an existing entity.
    Patch,
}

impl Op {
    /// Port's `upsert` and `merge` flags of the create routes.
    pub fn from_flags(upsert: bool, merge: bool) -> Op {
        match (upsert, merge) {
            (false, _) => Op::Create,
            (true, false) => Op::Upsert,
            (true, true) => Op::UpsertMerge,
        }
    }

    /// How the write composes over the stored entity (`stored`: there is one), or why it is
    /// refused (a create of an existing entity, a replace or change of a missing one).
    pub fn mode(self, stored: bool, bp: &str, id: &str) -> Result<WriteMode, WriteRejection> {
        match (self, stored) {
            (Op::Create, true) => Err(WriteRejection::Conflict(format!(
                "entity {id:?} of blueprint {bp:?} already exists; use upsert=true to update it"
            ))),
            (Op::Put | Op::Patch, false) => {
                Err(WriteRejection::NotFound(format!("entity {id:?} of blueprint {bp:?} was not found")))
            }
            (Op::Create, false) => Ok(WriteMode::Create),
            (Op::Upsert | Op::Put, _) => Ok(WriteMode::Replace),
            (Op::UpsertMerge | Op::Patch, _) => Ok(WriteMode::Merge),
        }
    }

    /// The audit action of a refused write.
    fn action(self) -> &'static str {
        if self == Op::Create { "CREATE" } else { "UPDATE" }
    }
}

/// How a write runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Create entities that relations point at and that do not exist yet.
    pub create_missing_related: bool,
    /// Check everything, store nothing (`validation_only=true`).
    pub validation_only: bool,
    /// The answer can show a new service account's one-time credentials (a single write of the
    /// API); elsewhere (bulk, webhooks, actions, the web UI) creating one is refused.
    pub show_credentials: bool,
}

/// The blueprint `bp` of `org`, or 404.
pub async fn blueprint(state: &AppState, org: &OrgId, bp: &str) -> ApiResult<Arc<Blueprint>> {
    blueprint_in(state.blueprints(org).await?, bp)
}

/// The blueprint `bp` of `all` (an organization's blueprints), or 404.
pub fn blueprint_in(all: crate::state::Blueprints, bp: &str) -> ApiResult<Arc<Blueprint>> {
    all.get(bp).cloned().map(Arc::new).ok_or_else(|| ApiError::not_found(format!("blueprint {bp:?} was not found")))
}

fn new_entity_id() -> String {
    format!("e_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<12>()))
}

/// The `$updatedBy` and `$datasource` of the actor's writes, now.
pub fn meta(actor: &Actor) -> WriteMeta {
    WriteMeta { now: now_iso(), actor: actor.client_id.clone(), datasource: actor.user_agent.clone() }
}

/// Turn one request body into a store write (or an immediate rejection, with the identifier
/// it was for when known).
pub fn prepare(
    bp: &Arc<Blueprint>,
    path_id: Option<&str>,
    body: &Value,
    op: Op,
    meta: WriteMeta,
    create_missing: bool,
    guard: Option<Arc<WriteGuard>>,
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
        let mode = op.mode(stored.is_some(), &bp2.identifier, &id2)?;
        let entity = compose(&bp2, &id2, &input, stored, mode, &meta).map_err(WriteRejection::Invalid)?;
        // The writer's permissions, decided on the entity as stored in this transaction.
        if let Some(why) = guard.as_ref().and_then(|g| g.refusal(stored, &entity)) {
            return Err(WriteRejection::Forbidden(why));
        }
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

/// The API error of a refused write.
pub fn rejection_error(r: &WriteRejection) -> ApiError {
    match r {
        WriteRejection::Conflict(m) => ApiError::conflict(m.clone()),
        WriteRejection::Forbidden(m) => ApiError::forbidden(m.clone()),
        WriteRejection::NotFound(m) => ApiError::not_found(m.clone()),
        WriteRejection::Invalid(errs) => ApiError::invalid(errs),
        WriteRejection::MissingTarget { relation, blueprint, identifier } => ApiError::not_found(format!(
            "relation {relation:?} points at entity {identifier:?} of blueprint {blueprint:?}, which does not exist; create it first or pass create_missing_related_entities=true"
        )),
    }
}

/// Refused writes `(identifier, reason, action)` go to the audit log and, for an integration,
/// to its event log.
async fn record_refused(state: &AppState, actor: &Actor, bp: &str, fails: &[(String, String, &'static str)]) {
    event_log::on_rejected(state, actor, bp, fails).await;
    let recs: Vec<_> = fails
        .iter()
        .map(|(id, msg, action)| failure_record(actor, "entity", action, id, Some(bp), Some(id), msg))
        .collect();
    record_failures(state, actor, &recs).await;
}

/// Write one entity of blueprint `bp`: `path_id` names it (else the body does, else a new id
/// is made). Returns the entity as stored (or, with `validation_only`, as it would be).
pub async fn write(
    state: &AppState,
    actor: &Actor,
    bp: &Arc<Blueprint>,
    path_id: Option<&str>,
    body: &Value,
    op: Op,
    opts: WriteOptions,
) -> ApiResult<Written> {
    Ok(write_full(state, actor, bp, path_id, body, op, opts).await?.written)
}

/// [`write`], with what a `_user` write may also answer (a new service account's credentials).
pub async fn write_full(
    state: &AppState,
    actor: &Actor,
    bp: &Arc<Blueprint>,
    path_id: Option<&str>,
    body: &Value,
    op: Op,
    opts: WriteOptions,
) -> ApiResult<SystemWritten> {
    let bp_id = bp.identifier.as_str();
    if system_entity::is_system(bp_id) {
        let res = system_entity::write(state, actor, bp, path_id, body, op, opts).await;
        if let Err(e) = &res
            && !opts.validation_only
        {
            let id = path_id.or_else(|| body.get("identifier").and_then(Value::as_str)).unwrap_or_default();
            record_refused(state, actor, bp_id, &[(id.to_string(), e.message.clone(), op.action())]).await;
        }
        return res;
    }
    let plain = |written| SystemWritten { written, credentials: None };
    let guard = access::write_guard(state, actor, bp_id).await?;
    let write = match prepare(bp, path_id, body, op, meta(actor), opts.create_missing_related, guard) {
        Ok(w) => w,
        Err((id, rej)) => {
            let err = rejection_error(&rej);
            record_refused(state, actor, bp_id, &[(id, err.message.clone(), op.action())]).await;
            return Err(err);
        }
    };
    let id = write.identifier.clone();
    if opts.validation_only {
        return match dry_run(state, &actor.org, vec![write]).await?.pop() {
            Some(Ok(w)) => Ok(plain(w)),
            Some(Err(rej)) => Err(rejection_error(&rej)),
            None => Err(ApiError::internal("validation", "no result")),
        };
    }
    // A worker is woken if the write gave a job work (scorecards, aggregations, automations).
    let mut results = crate::jobs::write_entities_and_wake(state, &actor.org, vec![write], &audit_ctx(actor)).await?;
    match results.pop() {
        Some(Ok(w)) => Ok(plain(w)),
        Some(Err(rej)) => {
            let err = rejection_error(&rej);
            record_refused(state, actor, bp_id, &[(id, err.message.clone(), op.action())]).await;
            Err(err)
        }
        None => Err(ApiError::internal("write", "store returned no result")),
    }
}

/// The outcome of one item of [`write_many`].
#[derive(Debug)]
pub struct ItemResult {
    /// The item's index in the request.
    pub index: usize,
    /// Its entity identifier (empty when the body had none that could be read).
    pub identifier: String,
    pub result: Result<Written, ApiError>,
}

/// Write many entities of blueprint `bp` in one store transaction; each item succeeds or fails
/// on its own. Results are in item order.
pub async fn write_many(
    state: &AppState,
    actor: &Actor,
    bp: &Arc<Blueprint>,
    items: &[Value],
    op: Op,
    opts: WriteOptions,
) -> ApiResult<Vec<ItemResult>> {
    if system_entity::is_system(&bp.identifier) {
        return write_many_system(state, actor, bp, items, op, opts).await;
    }
    let m = meta(actor);
    let guard = access::write_guard(state, actor, &bp.identifier).await?;
    let mut writes = Vec::new();
    let mut out = Vec::new();
    let mut index_of = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match prepare(bp, None, item, op, m.clone(), opts.create_missing_related, guard.clone()) {
            Ok(w) => {
                index_of.push((index, w.identifier.clone()));
                writes.push(w);
            }
            Err((identifier, rej)) => out.push(ItemResult { index, identifier, result: Err(rejection_error(&rej)) }),
        }
    }
    let results = if opts.validation_only {
        dry_run(state, &actor.org, writes).await?
    } else {
        crate::jobs::write_entities_and_wake(state, &actor.org, writes, &audit_ctx(actor)).await?
    };
    for ((index, identifier), r) in index_of.into_iter().zip(results) {
        out.push(ItemResult { index, identifier, result: r.map_err(|rej| rejection_error(&rej)) });
    }
    out.sort_by_key(|r| r.index);
    if !opts.validation_only {
        let fails: Vec<_> = out
            .iter()
            .filter_map(|r| r.result.as_ref().err().map(|e| (r.identifier.clone(), e.message.clone(), op.action())))
            .collect();
        record_refused(state, actor, &bp.identifier, &fails).await;
    }
    Ok(out)
}

/// [`write_many`] for `_user` / `_team`: one item after another, each a person or team change.
/// A new service account's secret is shown once, in a single write's answer, so bulk writes
/// cannot create one.
async fn write_many_system(
    state: &AppState,
    actor: &Actor,
    bp: &Arc<Blueprint>,
    items: &[Value],
    op: Op,
    opts: WriteOptions,
) -> ApiResult<Vec<ItemResult>> {
    let opts = WriteOptions { show_credentials: false, ..opts };
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let identifier = item.get("identifier").and_then(Value::as_str).unwrap_or_default().to_string();
        let result = write_full(state, actor, bp, None, item, op, opts).await.map(|s| s.written);
        out.push(ItemResult { index, identifier, result });
    }
    Ok(out)
}

/// What the store checks on a real write, for `validation_only`: every relation target exists.
async fn missing_target(
    state: &AppState,
    org: &OrgId,
    e: &Entity,
    edges: &[RelTarget],
) -> ApiResult<Option<WriteRejection>> {
    for edge in edges {
        if edge.target_blueprint == e.blueprint && edge.target_identifier == e.identifier {
            continue;
        }
        if state.store.get_entity(org, &edge.target_blueprint, &edge.target_identifier).await?.is_none() {
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
    org: &OrgId,
    writes: Vec<EntityWrite>,
) -> ApiResult<Vec<Result<Written, WriteRejection>>> {
    let mut out = Vec::with_capacity(writes.len());
    for w in writes {
        let stored = state.store.get_entity(org, &w.blueprint, &w.identifier).await?;
        let result = match (w.build)(stored.as_ref()) {
            Ok((entity, edges)) => match w.create_missing_related {
                false => match missing_target(state, org, &entity, &edges).await? {
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

/// Delete entities `ids` of blueprint `bp` (with `cascade`, the entities that require them
/// too), through the mass-deletion guard. Returns every deleted `(blueprint, identifier)`.
pub async fn delete(
    state: &AppState,
    actor: &Actor,
    bp: &str,
    ids: &[String],
    cascade: bool,
) -> ApiResult<Vec<(String, String)>> {
    if system_entity::is_system(bp) {
        if cascade {
            system_entity::protected(bp, "deleting dependents with its entities")?;
        }
        // Removing people through their entities passes the integrations' mass-deletion guard
        // too (an Ocean integration that adds properties to `_user` entities owns them).
        let ticket = deletion_guard::before_delete(state, actor, bp, ids).await?;
        let res = system_entity::delete(state, actor, bp, ids).await;
        deletion_guard::after_delete(state, actor, ticket, res.as_deref().ok()).await;
        return res;
    }
    if let Some(guard) = access::write_guard(state, actor, bp).await? {
        if cascade {
            return Err(ApiError::forbidden(format!(
                "deleting dependents (delete_dependents=true) reaches entities of other blueprints: it takes the \
                 Admin role or the {bp}-moderator role"
            )));
        }
        for e in state.store.get_entities(&actor.org, bp, ids).await? {
            if let Some(why) = guard.delete_refusal(&e) {
                return Err(ApiError::forbidden(why));
            }
        }
    }
    let ticket = deletion_guard::before_delete(state, actor, bp, ids).await?;
    let res = state.store.delete_entities(&actor.org, bp, ids, cascade, &audit_ctx(actor)).await;
    // The deletes may have given jobs work (automation events, aggregations, changelog).
    crate::jobs::wake_workers(state);
    deletion_guard::after_delete(state, actor, ticket, res.as_deref().ok()).await;
    match res {
        Ok(deleted) => Ok(deleted),
        Err(e) => {
            let err = ApiError::from(e);
            let fails: Vec<_> = ids.iter().map(|id| (id.clone(), err.message.clone(), "DELETE")).collect();
            record_refused(state, actor, bp, &fails).await;
            Err(err)
        }
    }
}

/// What [`delete_all`] deletes.
#[derive(Debug, Clone, Default)]
pub struct DeleteAll {
    /// Also the entities of other blueprints that require them.
    pub delete_dependents: bool,
    /// Then the blueprint itself.
    pub delete_blueprint: bool,
    /// Port's `run_id`, kept with the job.
    pub run_id: Option<String>,
}

/// Delete every entity of blueprint `bp` as a durable job (`jobs::delete_all`), waiting for it
/// up to `ApiConfig::job_wait`. Returns the job as last seen (finished, or still queued or
/// running); a job that failed or was cancelled is its error.
pub async fn delete_all(state: &AppState, actor: &Actor, bp: &str, what: DeleteAll) -> ApiResult<Job> {
    system_entity::protected(bp, "deleting all its entities")?;
    let payload = delete_all::Payload {
        blueprint: bp.to_string(),
        delete_dependents: what.delete_dependents,
        delete_blueprint: what.delete_blueprint,
        run_id: what.run_id,
        client_id: actor.client_id.clone(),
        user_agent: actor.user_agent.clone(),
    };
    let payload = serde_json::to_value(&payload).map_err(|e| ApiError::internal("job payload", e))?;
    let job = jobs::enqueue(state, &actor.org, delete_all::KIND, payload).await?;
    let job = jobs::wait_for(state, &actor.org, &job.id, state.config.job_wait).await?;
    match job.status {
        JobStatus::Failed => Err(jobs::job_failure(&job)),
        JobStatus::Cancelled => Err(ApiError::conflict(format!("job {} was cancelled", job.id))),
        JobStatus::Succeeded | JobStatus::Queued | JobStatus::Running => {
            if what.delete_blueprint && job.status == JobStatus::Succeeded {
                state.blueprints_changed(&actor.org);
            }
            Ok(job)
        }
    }
}
