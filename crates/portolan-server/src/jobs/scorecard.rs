//! Scorecard results as durable jobs.
//!
//! - `scorecard_recompute` (enqueued with every scorecard save): every entity of the blueprint,
//!   [`CHUNK`] per store transaction in row order, a checkpoint (`after`, the last row done)
//!   after each; a node taking the job over continues after the checkpoint. Each chunk reloads
//!   the definition, so a later edit is never overwritten by an earlier one's results (and the
//!   edit has enqueued its own pass). The last chunk removes results of deleted entities.
//! - `scorecard_entities` (the store enqueues it in the transaction of every entity write that
//!   touches a blueprint with scorecards, one per write batch and blueprint): the written
//!   entities in every scorecard of their blueprint.
//!
//! Evaluation is the store's (`Scorecards::score_entities`: the search compiler's SQL).

use portolan_store::{SCORE_ENTITIES_JOB, ScoreTargets, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{JobCtx, JobError};
use crate::error::ErrorCode;
use crate::ops::scorecard::parse_stored;

pub const RECOMPUTE_KIND: &str = "scorecard_recompute";
pub const ENTITIES_KIND: &str = SCORE_ENTITIES_JOB;

/// Entities per store transaction of a full recomputation.
pub const CHUNK: u32 = 2000;
/// Entities per store transaction of an entity-write recomputation.
const ENTITY_CHUNK: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecomputePayload {
    pub blueprint: String,
    pub scorecard: String,
}

/// The checkpoint of `scorecard_recompute`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The last entity row done.
    pub after: i64,
    pub scanned: u64,
    pub changed: u64,
    pub level_changes: u64,
    pub chunks: u64,
}

fn bad_payload(e: serde_json::Error) -> JobError {
    JobError::fail(ErrorCode::Internal, format!("bad payload: {e}"))
}

fn invalid(e: portolan_core::FieldErrors) -> JobError {
    JobError::fail(ErrorCode::InvalidRequest, format!("the scorecard no longer checks: {e}"))
}

pub async fn recompute(ctx: JobCtx) -> Result<Value, JobError> {
    let p: RecomputePayload = serde_json::from_value(ctx.job.payload.clone()).map_err(bad_payload)?;
    let (state, org) = (&ctx.state, &ctx.job.org);
    let mut progress: Progress =
        ctx.job.progress.clone().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    loop {
        let Some(stored) = state.store.get_scorecard(org, &p.blueprint, &p.scorecard).await? else {
            return Ok(json!({"deleted": true, "progress": progress}));
        };
        let sc = parse_stored(&stored).map_err(invalid)?;
        let blueprints = state.blueprints(org).await?;
        let targets = ScoreTargets::After { after: progress.after, limit: CHUNK };
        let o = match state.store.score_entities(org, &sc, &blueprints, chrono::Utc::now(), targets).await {
            Ok(o) => o,
            Err(StoreError::NotFound(_)) => return Ok(json!({"deleted": true, "progress": progress})),
            Err(e) => return Err(e.into()),
        };
        progress.scanned += o.scanned;
        progress.changed += o.changed;
        progress.level_changes += o.level_changes;
        progress.chunks += 1;
        match o.next {
            Some(next) => {
                progress.after = next;
                ctx.checkpoint(json!(progress)).await?;
            }
            None => return Ok(json!(progress)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct EntitiesPayload {
    blueprint: String,
    entities: Vec<String>,
}

pub async fn entities(ctx: JobCtx) -> Result<Value, JobError> {
    let p: EntitiesPayload = serde_json::from_value(ctx.job.payload.clone()).map_err(bad_payload)?;
    let (state, org) = (&ctx.state, &ctx.job.org);
    let blueprints = state.blueprints(org).await?;
    let (mut changed, mut scorecards) = (0, 0);
    for stored in state.store.list_scorecards(org, Some(&p.blueprint)).await? {
        // One that no longer checks is skipped here: its own recompute job reports it.
        let Ok(sc) = parse_stored(&stored) else { continue };
        for ids in p.entities.chunks(ENTITY_CHUNK) {
            let targets = ScoreTargets::Entities(ids);
            match state.store.score_entities(org, &sc, &blueprints, chrono::Utc::now(), targets).await {
                Ok(o) => changed += o.changed,
                Err(StoreError::NotFound(_) | StoreError::Invalid(_)) => break,
                Err(e) => return Err(e.into()),
            }
        }
        scorecards += 1;
    }
    Ok(json!({"scorecards": scorecards, "entities": p.entities.len(), "changed": changed}))
}
