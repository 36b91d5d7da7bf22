//! `DELETE /v1/blueprints/{id}/all-entities` as a durable job: the blueprint's entities are
//! deleted a chunk at a time ([`ApiConfig::delete_chunk_size`](crate::ApiConfig) per store
//! transaction), with a checkpoint after each chunk, then (with `delete_blueprint`) the
//! blueprint itself.
//!
//! *Resuming:* each chunk is "the first N entities the blueprint still has", so a node taking
//! the job over simply continues; the checkpoint carries the counts so far.
//!
//! *Required relations:* before deleting anything, entities of other blueprints that require
//! one of these entities refuse the whole job (409, nothing deleted) unless `delete_dependents`
//! is set, as Port does. Required relations between entities of the blueprint itself do not
//! block it (they all go); when a chunk meets one, that chunk is deleted with its same-blueprint
//! dependents. Entities written while the job runs are deleted too if they exist when it
//! reaches them.

use portolan_store::{SearchRequest, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{JobCtx, JobError};
use crate::error::ErrorCode;
use crate::ops::Actor;
use crate::ops::audit::{audit_ctx, failure_record, record_failures};
use portolan_core::permissions::Principal;

pub const KIND: &str = "delete_all_entities";

/// The job's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub blueprint: String,
    pub delete_dependents: bool,
    pub delete_blueprint: bool,
    /// Port's `run_id` (an action run this deletion belongs to), kept for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Who asked, for the audit log.
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// The checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Entities of the blueprint deleted so far.
    pub deleted: u64,
    /// Entities of other blueprints deleted with them (`delete_dependents`).
    pub dependents_deleted: u64,
    /// Chunks done (by any node).
    pub chunks: u64,
}

pub async fn run(ctx: JobCtx) -> Result<Value, JobError> {
    let p: Payload = serde_json::from_value(ctx.job.payload.clone())
        .map_err(|e| JobError::fail(ErrorCode::Internal, format!("bad payload: {e}")))?;
    // The request that queued the job was decided then; the job finishes it.
    let actor = Actor {
        client_id: p.client_id.clone(),
        org: ctx.job.org.clone(),
        user_agent: p.user_agent.clone(),
        principal: Principal::Machine,
        depth: 0,
        blueprints_version: None,
    };
    match delete(&ctx, &p, &actor).await {
        Err(JobError::Fail { status, code, message }) => {
            // Recorded as the request used to record it.
            let resource = if p.delete_blueprint { "blueprint" } else { "entity" };
            let rec = failure_record(&actor, resource, "DELETE", &p.blueprint, Some(&p.blueprint), None, &message);
            record_failures(&ctx.state, &actor, &[rec]).await;
            Err(JobError::Fail { status, code, message })
        }
        other => other,
    }
}

async fn delete(ctx: &JobCtx, p: &Payload, actor: &Actor) -> Result<Value, JobError> {
    let (state, org, bp) = (&ctx.state, &actor.org, p.blueprint.as_str());
    let mut progress: Progress =
        ctx.job.progress.clone().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    if !p.delete_dependents {
        let deps = state.store.required_dependents(org, bp, 20).await?;
        if let Some((_, _, target)) = deps.first() {
            let target = target.clone();
            let dependents = deps.into_iter().map(|(b, i, _)| (b, i)).collect();
            return Err(StoreError::RequiredBy { blueprint: bp.to_string(), identifier: target, dependents }.into());
        }
    }
    let chunk = state.config.delete_chunk_size.max(1);
    loop {
        let blueprints = state.blueprints(org).await?;
        let page = state.store.search(org, &SearchRequest::new(&blueprints, Some(bp), None, chunk)).await?;
        if page.entities.is_empty() {
            break;
        }
        let ids: Vec<String> = page.entities.into_iter().map(|e| e.identifier).collect();
        let audit = audit_ctx(actor);
        let deleted = match state.store.delete_entities(org, bp, &ids, p.delete_dependents, &audit).await {
            Ok(d) => d,
            // Required by entities of this same blueprint: they are deleted by this job anyway.
            Err(StoreError::RequiredBy { dependents, .. })
                if !p.delete_dependents && dependents.iter().all(|(b, _)| b == bp) =>
            {
                state.store.delete_entities(org, bp, &ids, true, &audit).await?
            }
            Err(e) => return Err(e.into()),
        };
        let own = deleted.iter().filter(|(b, _)| b == bp).count() as u64;
        progress.deleted += own;
        progress.dependents_deleted += deleted.len() as u64 - own;
        progress.chunks += 1;
        ctx.checkpoint(json!(progress)).await?;
    }
    if p.delete_blueprint {
        match state.store.delete_blueprint(org, bp, &audit_ctx(actor)).await {
            Ok(()) => {}
            // An earlier attempt deleted it and died before recording the outcome.
            Err(StoreError::NotFound(_)) if ctx.job.attempts > 1 => {}
            Err(e) => return Err(e.into()),
        }
        state.blueprints_changed(org);
    }
    Ok(json!({"deleted": progress.deleted, "dependentsDeleted": progress.dependents_deleted,
              "blueprintDeleted": p.delete_blueprint}))
}
