//! Durable jobs on PostgreSQL, and the cheap reads the server's caches and the delete-all job
//! use.
//!
//! Several nodes claim from one table: the claim locks the chosen row with
//! `FOR UPDATE SKIP LOCKED` in the same statement that leases it, so concurrent claimers pass
//! over each other's rows instead of waiting or taking the same one. Times come from the
//! database's clock (`portolan_now_ms`, migration 0002), so nodes with skewed clocks agree on
//! when a lease expires.

use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::{frag_query, pgq};
use crate::sql::SqlFrag;
use crate::{JOB_COLUMNS, Job, JobFilter, JobStatus, Lease, NewJob, OrgId, RawJob, Result, job_rowid, millis};

/// The current time, in the store's timestamp format.
pub(super) const NOW: &str = "portolan_now_ms(0)";
/// The current time plus a bound number of milliseconds.
const NOW_PLUS: &str = "portolan_now_ms(?)";

pub(super) fn raw(r: &PgRow) -> RawJob {
    RawJob {
        id: r.get(0),
        org_id: r.get(1),
        kind: r.get(2),
        payload: r.get(3),
        status: r.get(4),
        attempts: r.get(5),
        max_attempts: r.get(6),
        run_at: r.get(7),
        lease_owner: r.get(8),
        lease_until: r.get(9),
        progress: r.get(10),
        last_error: r.get(11),
        result: r.get(12),
        created_at: r.get(13),
        updated_at: r.get(14),
        started_at: r.get(15),
        finished_at: r.get(16),
    }
}

/// ` WHERE id = ? AND status = 'running' AND lease_owner = ? AND attempts = ?` for `lease`, or
/// `None` for an id that names no job.
fn held(lease: &Lease) -> Option<SqlFrag> {
    let id = job_rowid(&lease.job_id)?;
    let mut f = SqlFrag::new(" WHERE id = ");
    f.param(id).push(" AND status = 'running' AND lease_owner = ").param(lease.owner.as_str());
    f.push(" AND attempts = ").param(i64::from(lease.attempt));
    Some(f)
}

async fn exec(p: &PgPool, f: &SqlFrag) -> Result<u64> {
    Ok(frag_query(f).execute(p).await?.rows_affected())
}

async fn fetch(p: &PgPool, f: &SqlFrag) -> Result<Vec<PgRow>> {
    Ok(frag_query(f).fetch_all(p).await?)
}

pub async fn blueprints_version(p: &PgPool, org: &OrgId) -> Result<i64> {
    let row = pgq("SELECT version FROM blueprint_versions WHERE org_id = ?").bind(&org.0).fetch_optional(p).await?;
    Ok(row.map_or(0, |r| r.get::<i64, _>(0)))
}

pub async fn required_dependents(
    p: &PgPool,
    org: &OrgId,
    bp: &str,
    limit: u32,
) -> Result<Vec<(String, String, String)>> {
    let rows = pgq("SELECT DISTINCT s.blueprint, s.identifier, r.target_identifier FROM entity_relations r \
         JOIN entities s ON s.rid = r.src_rid \
         WHERE r.org_id = ? AND s.org_id = ? AND r.target_blueprint = ? AND s.blueprint <> ? AND r.required \
         ORDER BY 1, 2, 3 LIMIT ?")
    .bind(&org.0)
    .bind(&org.0)
    .bind(bp)
    .bind(bp)
    .bind(i64::from(limit))
    .fetch_all(p)
    .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

pub async fn enqueue(p: &PgPool, org: &OrgId, job: &NewJob) -> Result<Job> {
    let mut f = SqlFrag::new(
        "INSERT INTO jobs(org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) VALUES (",
    );
    f.param(org.0.as_str()).push(", ").param(job.kind.as_str()).push(", ");
    f.param(job.payload.to_string()).push("::jsonb, 'queued', 0, ").param(i64::from(job.max_attempts.max(1)));
    f.push(&format!(", {NOW}, {NOW}, {NOW}) RETURNING {JOB_COLUMNS}"));
    let rows = fetch(p, &f).await?;
    let row = rows.first().ok_or_else(|| crate::StoreError::Db("INSERT … RETURNING returned no row".into()))?;
    raw(row).into_job()
}

/// Key of the transaction-scoped advisory lock that serializes job claims across nodes, so an
/// organization's share is never exceeded by two nodes claiming at once ("jobclaim").
const CLAIM_LOCK: i64 = 0x006a_6f62_636c_6169;

pub async fn claim(
    p: &PgPool,
    node: &str,
    kinds: &[String],
    lease: Duration,
    share: &crate::JobShare,
) -> Result<Option<Job>> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let mut tx = p.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CLAIM_LOCK).execute(&mut *tx).await?;
    // A job whose holder died on its last attempt will not be claimed again: fail it.
    let sweep = format!(
        "UPDATE jobs SET status = 'failed', lease_until = NULL, finished_at = {NOW}, updated_at = {NOW}, \
         last_error = 'the lease of attempt ' || attempts || ' expired (its node stopped or lost the database) and no attempts are left' \
         WHERE status = 'running' AND lease_until < {NOW} AND attempts >= max_attempts"
    );
    pgq(&sweep).execute(&mut *tx).await?;
    // Jobs running under a live lease, per organization: all of them, and this node's.
    let mut f = SqlFrag::new("WITH live AS (SELECT org_id, COUNT(*) AS n, COUNT(*) FILTER (WHERE lease_owner = ");
    f.param(node);
    f.push(&format!(") AS mine FROM jobs WHERE status = 'running' AND lease_until >= {NOW} GROUP BY org_id), "));
    f.push("next AS (SELECT j.id AS next_id FROM jobs j LEFT JOIN live r ON r.org_id = j.org_id WHERE j.kind IN (");
    f.param_list(kinds.iter().map(String::as_str));
    f.push(&format!(
        ") AND ((j.status = 'queued' AND j.run_at <= {NOW}) \
         OR (j.status = 'running' AND j.lease_until < {NOW} AND j.attempts < j.max_attempts))"
    ));
    f.push(" AND COALESCE(r.n, 0) < ").param(i64::from(share.per_org));
    f.push(" AND COALESCE(r.mine, 0) < ").param(i64::from(share.per_org_on_node));
    f.push(
        " ORDER BY COALESCE(r.n, 0), j.run_at, j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED) \
         UPDATE jobs SET status = 'running', attempts = jobs.attempts + 1, lease_owner = ",
    );
    f.param(node).push(", lease_until = ").push(NOW_PLUS);
    f.params.push(millis(lease).into());
    f.push(&format!(
        ", started_at = COALESCE(jobs.started_at, {NOW}), updated_at = {NOW} FROM next \
         WHERE jobs.id = next.next_id RETURNING {JOB_COLUMNS}"
    ));
    let rows = frag_query(&f).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    rows.first().map(|r| raw(r).into_job()).transpose()
}

pub async fn heartbeat(p: &PgPool, lease: &Lease, extend: Duration) -> Result<bool> {
    let Some(cond) = held(lease) else { return Ok(false) };
    let mut f = SqlFrag::new("UPDATE jobs SET lease_until = ");
    f.push(NOW_PLUS);
    f.params.push(millis(extend).into());
    f.push(&format!(", updated_at = {NOW}")).append(cond);
    Ok(exec(p, &f).await? == 1)
}

pub async fn save_progress(p: &PgPool, lease: &Lease, progress: &Value) -> Result<bool> {
    let Some(cond) = held(lease) else { return Ok(false) };
    let mut f = SqlFrag::new("UPDATE jobs SET progress = ");
    f.param(progress.to_string()).push(&format!("::jsonb, updated_at = {NOW}")).append(cond);
    Ok(exec(p, &f).await? == 1)
}

pub async fn complete(p: &PgPool, lease: &Lease, result: &Value) -> Result<bool> {
    let Some(cond) = held(lease) else { return Ok(false) };
    let mut f = SqlFrag::new("UPDATE jobs SET status = 'succeeded', lease_until = NULL, result = ");
    f.param(result.to_string()).push(&format!("::jsonb, finished_at = {NOW}, updated_at = {NOW}")).append(cond);
    Ok(exec(p, &f).await? == 1)
}

pub async fn fail(
    p: &PgPool,
    lease: &Lease,
    error: &str,
    detail: Option<&Value>,
    retry_in: Option<Duration>,
) -> Result<Option<JobStatus>> {
    let Some(cond) = held(lease) else { return Ok(None) };
    let retry = retry_in.is_some();
    let mut f = SqlFrag::new("UPDATE jobs SET status = CASE WHEN ");
    f.param(retry).push(" AND attempts < max_attempts THEN 'queued' ELSE 'failed' END, run_at = CASE WHEN ");
    f.param(retry).push(" AND attempts < max_attempts THEN ").push(NOW_PLUS);
    f.params.push(millis(retry_in.unwrap_or_default()).into());
    f.push(" ELSE run_at END, finished_at = CASE WHEN ").param(retry);
    f.push(&format!(" AND attempts < max_attempts THEN NULL ELSE {NOW} END, updated_at = {NOW}"));
    f.push(", lease_until = NULL, last_error = ").param(error).push(", result = ");
    match detail {
        Some(d) => f.param(d.to_string()).push("::jsonb"),
        None => f.push("NULL"),
    };
    f.append(cond).push(" RETURNING status");
    let rows = fetch(p, &f).await?;
    Ok(rows.first().and_then(|r| JobStatus::parse(&r.get::<String, _>(0))))
}

pub async fn release(p: &PgPool, lease: &Lease) -> Result<bool> {
    let Some(cond) = held(lease) else { return Ok(false) };
    // `attempts` stays (it fences the released lease); the attempt is given back through
    // `max_attempts` instead.
    let mut f = SqlFrag::new(&format!(
        "UPDATE jobs SET status = 'queued', lease_until = NULL, max_attempts = max_attempts + 1, \
         run_at = {NOW}, updated_at = {NOW}"
    ));
    f.append(cond);
    Ok(exec(p, &f).await? == 1)
}

pub async fn cancel(p: &PgPool, org: &OrgId, id: &str) -> Result<bool> {
    let Some(id) = job_rowid(id) else { return Ok(false) };
    let mut f = SqlFrag::new(&format!(
        "UPDATE jobs SET status = 'cancelled', lease_until = NULL, finished_at = {NOW}, updated_at = {NOW} \
         WHERE org_id = "
    ));
    f.param(org.0.as_str()).push(" AND id = ").param(id).push(" AND status IN ('queued', 'running')");
    Ok(exec(p, &f).await? == 1)
}

pub async fn get(p: &PgPool, org: &OrgId, id: &str) -> Result<Option<Job>> {
    let Some(id) = job_rowid(id) else { return Ok(None) };
    let mut f = SqlFrag::new(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = "));
    f.param(org.0.as_str()).push(" AND id = ").param(id);
    fetch(p, &f).await?.first().map(|r| raw(r).into_job()).transpose()
}

pub async fn list(p: &PgPool, org: &OrgId, filter: &JobFilter) -> Result<Vec<Job>> {
    let mut f = SqlFrag::new(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = "));
    f.param(org.0.as_str());
    if let Some(s) = filter.status {
        f.push(" AND status = ").param(s.as_str());
    }
    if let Some(k) = &filter.kind {
        f.push(" AND kind = ").param(k.as_str());
    }
    f.push(" ORDER BY id DESC LIMIT ").param(i64::from(filter.limit));
    fetch(p, &f).await?.iter().map(|r| raw(r).into_job()).collect()
}
