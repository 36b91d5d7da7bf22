//! The `changelog_deliver` job: sends an organization's entity changes to their blueprints'
//! webhook `changelogDestination` (port-api.md §1.8), in order per entity.
//!
//! Each change is POSTed through the guarded outbound client as Port's changelog message
//! (`{action, resourceType, status, trigger, context, diff}`), signed like action webhooks
//! (`X-Port-Signature`, §5.8). A 2xx answer delivers it; anything else (or no answer) keeps it
//! and tries again with a growing delay (5 s doubling up to 10 minutes), holding back only the
//! later changes of the same entity. A batch holds one change per entity and is sent up to
//! eight calls at once. The changes are claimed (`Changelog::claim_changes`), so
//! jobs on several nodes never send one entity's changes at once. `GET
//! /v1/blueprints/{id}/changelog` shows what waits and why.

use std::time::{Duration, Instant};

use portolan_store::{ChangelogEvent, JobFilter, JobStatus, NewJob, OrgId};
use serde_json::{Value, json};

use super::{JobCtx, JobError};
use crate::ops::action::signing_secret;
use crate::ops::audit::iso;
use crate::outbound::{OutboundRequest, port_signature};
use crate::state::AppState;

pub const KIND: &str = portolan_store::CHANGELOG_JOB;
/// Changes claimed at once.
const BATCH: u32 = 100;
/// Calls in flight at once (to different entities).
const PARALLEL: usize = 8;
/// How long a claim holds (longer than a batch of calls takes, at the outbound timeout).
const CLAIM: Duration = Duration::from_secs(300);
/// After this long a job hands over to a fresh one, so it never holds a worker for long.
const RUN_FOR: Duration = Duration::from_secs(60);

/// The delay before attempt `attempts + 2` of a change: `first` (5 s by default), doubling,
/// up to 10 minutes.
pub fn retry_delay(first: Duration, attempts: u32) -> Duration {
    (first * (1u32 << attempts.min(10))).min(Duration::from_secs(600))
}

pub async fn run(ctx: JobCtx) -> Result<Value, JobError> {
    let (org, state) = (ctx.job.org.clone(), &ctx.state);
    let started = Instant::now();
    let (mut delivered, mut failed, mut dropped) = (0u64, 0u64, 0u64);
    loop {
        let now = chrono::Utc::now();
        let until = now + chrono::Duration::from_std(CLAIM).unwrap_or_default();
        let batch = state.store.claim_changes(&org, &iso(now), &iso(until), BATCH).await?;
        if batch.is_empty() {
            break;
        }
        // Read per batch: a destination changed or removed meanwhile applies to what is left.
        let blueprints = state.blueprints(&org).await?;
        let signing = signing_secret(state, &org).await?;
        // A batch holds one change per entity: up to PARALLEL calls at once keep each
        // entity's order, and a slow endpoint is not called one change at a time.
        let mut calls = tokio::task::JoinSet::new();
        let mut batch = batch.into_iter();
        loop {
            while calls.len() < PARALLEL {
                let Some(ev) = batch.next() else { break };
                let dest = blueprints.get(&ev.blueprint).and_then(|b| b.changelog_destination.clone());
                let Some(url) = webhook_url(dest.as_ref()) else {
                    // The destination was removed (or the blueprint deleted): its changes go nowhere.
                    state.store.change_delivered(&org, ev.id).await?;
                    dropped += 1;
                    continue;
                };
                let (st, signing) = (state.clone(), signing.clone());
                calls.spawn(async move {
                    let outcome = deliver(&st, &ev, &url, signing.as_deref()).await;
                    (ev, outcome)
                });
            }
            let Some(done) = calls.join_next().await else { break };
            let (ev, outcome) = done.map_err(|e| JobError::Retry(format!("a changelog call stopped: {e}")))?;
            match outcome {
                Ok(()) => {
                    state.store.change_delivered(&org, ev.id).await?;
                    delivered += 1;
                }
                Err(why) => {
                    let next = chrono::Utc::now()
                        + chrono::Duration::from_std(retry_delay(state.config.changelog_retry, ev.attempts))
                            .unwrap_or_default();
                    tracing::warn!(org.id = %org.0, blueprint = %ev.blueprint, entity = %ev.entity, error = %why,
                        "changelog delivery failed; retried later");
                    state.store.change_failed(&org, ev.id, &why, &iso(next)).await?;
                    failed += 1;
                }
            }
        }
        if started.elapsed() > RUN_FOR {
            break;
        }
    }
    follow_up(state, &org).await?;
    Ok(json!({"delivered": delivered, "failed": failed, "dropped": dropped}))
}

/// Queue the job again for the earliest change still waiting (a retry, or what this run left),
/// unless a delivery job is queued already (one chain of retries per organization; a write
/// queues its own job at once).
async fn follow_up(state: &AppState, org: &OrgId) -> Result<(), JobError> {
    let Some(next) = state.store.next_change_at(org).await? else { return Ok(()) };
    let queued = JobFilter { status: Some(JobStatus::Queued), kind: Some(KIND.into()), limit: 1 };
    if !state.store.list_jobs(org, &queued).await?.is_empty() {
        return Ok(());
    }
    let delay = chrono::DateTime::parse_from_rfc3339(&next)
        .map(|t| (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default())
        .unwrap_or_default()
        .max(Duration::from_millis(200));
    let job = NewJob { kind: KIND.into(), payload: json!({}), max_attempts: 5 };
    state.store.enqueue_job_after(org, &job, delay).await?;
    Ok(())
}

/// The URL of a webhook destination the server calls itself (not `agent`: Port's agent takes
/// changelogs from Kafka only).
pub fn webhook_url(dest: Option<&Value>) -> Option<String> {
    let d = dest?;
    if d["type"] != json!("WEBHOOK") || d["agent"] == json!(true) {
        return None;
    }
    d["url"].as_str().map(str::to_string)
}

/// Send one change to `url`; `Err` says why it was not delivered.
async fn deliver(state: &AppState, ev: &ChangelogEvent, url: &str, signing: Option<&str>) -> Result<(), String> {
    let body = serde_json::to_vec(&ev.message).unwrap_or_default();
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(secret) = signing {
        let ts = chrono::Utc::now().timestamp();
        headers.push(("X-Port-Timestamp".into(), ts.to_string()));
        headers.push(("X-Port-Signature".into(), port_signature(secret, ts, &body)));
    }
    let req = OutboundRequest { method: "POST".into(), url: url.to_string(), headers, body: Some(body) };
    let ex = state.outbound.send(req).await;
    match (&ex.response, &ex.error) {
        (_, Some(e)) => Err(format!("the call to {url} failed: {e}")),
        (Some(r), None) if (200..300).contains(&r.status) => Ok(()),
        (Some(r), None) => Err(format!("{url} answered {}", r.status)),
        (None, None) => Err(format!("{url} gave no answer")),
    }
}
