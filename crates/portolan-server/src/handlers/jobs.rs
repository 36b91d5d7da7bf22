//! `/v1/jobs…` (a Portolan extension): background jobs of the caller's organization.

use axum::Json;
use axum::extract::{Path, State};
use portolan_core::FieldError;
use portolan_store::{JobFilter, JobStatus};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::jobs::job_json;
use crate::state::AppState;

/// One job: status, progress checkpoint, attempts, the node holding its lease, errors, result.
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let job = state
        .store
        .get_job(&caller.org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id:?} was not found")))?;
    Ok(Json(json!({"ok": true, "job": job_json(&job)})))
}

/// Query parameters of `GET /v1/jobs`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    kind: Option<String>,
    limit: Option<String>,
}

/// The organization's jobs, newest first (`status`, `kind`, `limit` 1–1000, default 100).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<Value>> {
    let status = match params.status.as_deref() {
        None => None,
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            FieldError::new("status", "must be one of queued, running, succeeded, failed, cancelled")
        })?),
    };
    let limit = match params.limit.as_deref() {
        None => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| FieldError::new("limit", "must be an integer from 1 to 1000"))?,
    };
    let jobs = state.store.list_jobs(&caller.org, &JobFilter { status, kind: params.kind, limit }).await?;
    Ok(Json(json!({"ok": true, "jobs": jobs.iter().map(job_json).collect::<Vec<_>>()})))
}
