//! Aggregation values as durable jobs (port-api.md §1.7).
//!
//! - `aggregation_recompute` (the store enqueues it with a blueprint save that changes the
//!   blueprint's aggregation properties): every entity of the blueprint, [`CHUNK`] per store
//!   transaction in row order, a checkpoint (`after`) after each; a node taking the job over
//!   continues after it. Each chunk reads the current definitions. The last chunk removes
//!   values of deleted entities and of properties the blueprint no longer has.
//! - `aggregation_entities` (the store enqueues it in the transaction of every entity write
//!   and delete, when the organization has aggregation properties): the entities whose values
//!   the written or deleted entities may have changed (`Aggregations::aggregating_entities`),
//!   recomputed; a blueprint with too many of them is recomputed whole, in this job.
//!
//! Computation is the store's (SQL aggregates over the search compiler's relation walks).

use portolan_store::{AGGREGATE_ENTITIES_JOB, AGGREGATE_RECOMPUTE_JOB, AggregateTargets};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{JobCtx, JobError};
use crate::error::ErrorCode;

pub const RECOMPUTE_KIND: &str = AGGREGATE_RECOMPUTE_JOB;
pub const ENTITIES_KIND: &str = AGGREGATE_ENTITIES_JOB;

/// Entities per store transaction of a full recomputation.
pub const CHUNK: u32 = 500;
/// Entities per store transaction of an entity-write recomputation.
const ENTITY_CHUNK: usize = 100;

fn bad_payload(e: serde_json::Error) -> JobError {
    JobError::fail(ErrorCode::Internal, format!("bad payload: {e}"))
}

#[derive(Debug, Clone, Deserialize)]
struct RecomputePayload {
    blueprint: String,
}

/// The checkpoint of `aggregation_recompute`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The last entity row done.
    pub after: i64,
    pub scanned: u64,
    pub changed: u64,
    pub chunks: u64,
    /// Aggregation properties that could not be computed, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<String>,
}

pub async fn recompute(ctx: JobCtx) -> Result<Value, JobError> {
    let p: RecomputePayload = serde_json::from_value(ctx.job.payload.clone()).map_err(bad_payload)?;
    let mut progress: Progress =
        ctx.job.progress.clone().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let (state, org) = (&ctx.state, &ctx.job.org);
    loop {
        let blueprints = state.blueprints(org).await?;
        if !blueprints.contains_key(&p.blueprint) {
            return Ok(json!({"deleted": true, "progress": progress}));
        }
        let targets = AggregateTargets::After { after: progress.after, limit: CHUNK };
        let o = state.store.compute_aggregations(org, &p.blueprint, &blueprints, chrono::Utc::now(), targets).await?;
        progress.scanned += o.scanned;
        progress.changed += o.changed;
        progress.chunks += 1;
        for i in o.invalid {
            if !progress.invalid.contains(&i) {
                progress.invalid.push(i);
            }
        }
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
    seeds: Vec<(String, String)>,
}

pub async fn entities(ctx: JobCtx) -> Result<Value, JobError> {
    let p: EntitiesPayload = serde_json::from_value(ctx.job.payload.clone()).map_err(bad_payload)?;
    let (state, org) = (&ctx.state, &ctx.job.org);
    let blueprints = state.blueprints(org).await?;
    let affected = state.store.aggregating_entities(org, &p.seeds, &blueprints).await?;
    let (mut recomputed, mut changed, mut invalid) = (0u64, 0u64, Vec::new());
    for (bp, ids) in &affected.entities {
        for chunk in ids.chunks(ENTITY_CHUNK) {
            let now = chrono::Utc::now();
            let o =
                state.store.compute_aggregations(org, bp, &blueprints, now, AggregateTargets::Entities(chunk)).await?;
            recomputed += o.scanned;
            changed += o.changed;
            invalid.extend(o.invalid);
        }
    }
    for bp in &affected.whole {
        let mut after = 0;
        loop {
            let targets = AggregateTargets::After { after, limit: CHUNK };
            let o = state.store.compute_aggregations(org, bp, &blueprints, chrono::Utc::now(), targets).await?;
            recomputed += o.scanned;
            changed += o.changed;
            match o.next {
                Some(n) => after = n,
                None => break,
            }
        }
    }
    invalid.sort();
    invalid.dedup();
    Ok(json!({"seeds": p.seeds.len(), "recomputed": recomputed, "changed": changed, "whole": affected.whole,
              "invalid": invalid}))
}
