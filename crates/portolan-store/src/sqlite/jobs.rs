//! Durable jobs on SQLite, and the cheap reads the server's caches and the delete-all job use.
//!
//! Every job write goes through the single writer connection, so a claim (one
//! `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING`) is atomic: two workers never claim the
//! same job. Times come from SQLite's clock (`strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ±offset)`,
//! fixed for the duration of one statement).

use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::sql::SqlFrag;
use crate::{JOB_COLUMNS, Job, JobFilter, JobStatus, Lease, NewJob, OrgId, RawJob, Result, job_rowid, millis};

/// The current time, in the store's timestamp format.
pub(super) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
/// The current time plus a bound `+S.mmm seconds` modifier.
const NOW_PLUS: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)";

/// An SQLite date modifier adding `d` (millisecond precision).
fn plus(d: Duration) -> String {
    let ms = millis(d);
    format!("+{}.{:03} seconds", ms / 1000, ms % 1000)
}

pub(super) fn raw(r: &SqliteRow) -> RawJob {
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

/// `id = ? AND status = 'running' AND lease_owner = ? AND attempts = ?` for `lease`, or `None`
/// for an id that names no job.
fn held(lease: &Lease) -> Option<SqlFrag> {
    let id = job_rowid(&lease.job_id)?;
    let mut f = SqlFrag::new(" WHERE id = ");
    f.param(id).push(" AND status = 'running' AND lease_owner = ").param(lease.owner.as_str());
    f.push(" AND attempts = ").param(i64::from(lease.attempt));
    Some(f)
}

async fn exec(w: &SqlitePool, f: &SqlFrag) -> Result<u64> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(f.sql.clone()));
    for p in &f.params {
        q = q.bind(p.clone());
    }
    Ok(q.execute(w).await?.rows_affected())
}

async fn fetch(pool: &SqlitePool, f: &SqlFrag) -> Result<Vec<SqliteRow>> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(f.sql.clone()));
    for p in &f.params {
        q = q.bind(p.clone());
    }
    Ok(q.fetch_all(pool).await?)
}

pub async fn blueprints_version(r: &SqlitePool, org: &OrgId) -> Result<i64> {
    let v: Option<i64> = sqlx::query_scalar("SELECT version FROM blueprint_versions WHERE org_id = ?")
        .bind(&org.0)
        .fetch_optional(r)
        .await?;
    Ok(v.unwrap_or(0))
}

pub async fn required_dependents(
    r: &SqlitePool,
    org: &OrgId,
    bp: &str,
    limit: u32,
) -> Result<Vec<(String, String, String)>> {
    let rows = sqlx::query(
        "SELECT DISTINCT s.blueprint, s.identifier, r.target_identifier FROM entity_relations r \
         JOIN entities s ON s.rid = r.src_rid \
         WHERE r.org_id = ? AND s.org_id = ? AND r.target_blueprint = ? AND s.blueprint <> ? AND r.required \
         ORDER BY 1, 2, 3 LIMIT ?",
    )
    .bind(&org.0)
    .bind(&org.0)
    .bind(bp)
    .bind(bp)
    .bind(i64::from(limit))
    .fetch_all(r)
    .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

pub async fn enqueue(w: &SqlitePool, org: &OrgId, job: &NewJob) -> Result<Job> {
    let sql = format!(
        "INSERT INTO jobs(org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
         VALUES (?, ?, ?, 'queued', 0, ?, {NOW}, {NOW}, {NOW}) RETURNING {JOB_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&org.0)
        .bind(&job.kind)
        .bind(job.payload.to_string())
        .bind(i64::from(job.max_attempts.max(1)))
        .fetch_one(w)
        .await?;
    raw(&row).into_job()
}

pub async fn claim(
    w: &SqlitePool,
    node: &str,
    kinds: &[String],
    lease: Duration,
    share: &crate::JobShare,
) -> Result<Option<Job>> {
    if kinds.is_empty() {
        return Ok(None);
    }
    // A job whose holder died on its last attempt will not be claimed again: fail it.
    let sweep = format!(
        "UPDATE jobs SET status = 'failed', lease_until = NULL, finished_at = {NOW}, updated_at = {NOW}, \
         last_error = 'the lease of attempt ' || attempts || ' expired (its node stopped or lost the database) and no attempts are left' \
         WHERE status = 'running' AND lease_until < {NOW} AND attempts >= max_attempts"
    );
    sqlx::query(sqlx::AssertSqlSafe(sweep)).execute(w).await?;
    let mut f = SqlFrag::new("UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = ");
    f.param(node).push(", lease_until = ").push(NOW_PLUS);
    f.params.push(plus(lease).into());
    f.push(&format!(", started_at = COALESCE(started_at, {NOW}), updated_at = {NOW}"));
    // Jobs running under a live lease, per organization: all of them, and this node's.
    f.push(" WHERE id = (SELECT j.id FROM jobs j LEFT JOIN (SELECT org_id, COUNT(*) AS n, ");
    f.push("SUM(CASE WHEN lease_owner = ").param(node).push(" THEN 1 ELSE 0 END) AS mine FROM jobs ");
    f.push(&format!("WHERE status = 'running' AND lease_until >= {NOW} GROUP BY org_id) r ON r.org_id = j.org_id"));
    f.push(" WHERE j.kind IN (").param_list(kinds.iter().map(String::as_str));
    f.push(&format!(
        ") AND ((j.status = 'queued' AND j.run_at <= {NOW}) \
         OR (j.status = 'running' AND j.lease_until < {NOW} AND j.attempts < j.max_attempts))"
    ));
    f.push(" AND COALESCE(r.n, 0) < ").param(i64::from(share.per_org));
    f.push(" AND COALESCE(r.mine, 0) < ").param(i64::from(share.per_org_on_node));
    f.push(&format!(" ORDER BY COALESCE(r.n, 0), j.run_at, j.id LIMIT 1) RETURNING {JOB_COLUMNS}"));
    fetch(w, &f).await?.first().map(|r| raw(r).into_job()).transpose()
}

pub async fn heartbeat(w: &SqlitePool, lease: &Lease, extend: Duration) -> Result<bool> {
    let Some(cond) = held(lease) else { return Ok(false) };
    let mut f = SqlFrag::new("UPDATE jobs SET lease_until = ");
    f.push(NOW_PLUS);
    f.params.push(plus(extend).into());
    f.push(&format!(", updated_at = {NOW}")).append(cond);
    Ok(exec(w, &f).await? == 1)
}

pub async fn save_progress(w: &SqlitePool, lease: &Lease, progress: &Value) -> Result<bool> {
    let Some(cond) = held(lease) else { return Ok(false) };
    let mut f = SqlFrag::new("UPDATE jobs SET progress = ");
    f.param(progress.to_string()).push(&format!(", updated_at = {NOW}")).append(cond);
    Ok(exec(w, &f).await? == 1)
}

pub async fn complete(w: &SqlitePool, lease: &Lease, result: &Value) -> Result<bool> {
    let Some(cond) = held(lease) else { return Ok(false) };
    let mut f = SqlFrag::new("UPDATE jobs SET status = 'succeeded', lease_until = NULL, result = ");
    f.param(result.to_string()).push(&format!(", finished_at = {NOW}, updated_at = {NOW}")).append(cond);
    Ok(exec(w, &f).await? == 1)
}

pub async fn fail(
    w: &SqlitePool,
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
    f.params.push(plus(retry_in.unwrap_or_default()).into());
    f.push(" ELSE run_at END, finished_at = CASE WHEN ").param(retry);
    f.push(&format!(" AND attempts < max_attempts THEN NULL ELSE {NOW} END, updated_at = {NOW}"));
    f.push(", lease_until = NULL, last_error = ").param(error).push(", result = ");
    match detail {
        Some(d) => f.param(d.to_string()),
        None => f.push("NULL"),
    };
    f.append(cond).push(" RETURNING status");
    let rows = fetch(w, &f).await?;
    Ok(rows.first().and_then(|r| JobStatus::parse(&r.get::<String, _>(0))))
}

pub async fn release(w: &SqlitePool, lease: &Lease) -> Result<bool> {
    let Some(cond) = held(lease) else { return Ok(false) };
    // `attempts` stays (it fences the released lease); the attempt is given back through
    // `max_attempts` instead.
    let mut f = SqlFrag::new(&format!(
        "UPDATE jobs SET status = 'queued', lease_until = NULL, max_attempts = max_attempts + 1, \
         run_at = {NOW}, updated_at = {NOW}"
    ));
    f.append(cond);
    Ok(exec(w, &f).await? == 1)
}

pub async fn cancel(w: &SqlitePool, org: &OrgId, id: &str) -> Result<bool> {
    let Some(id) = job_rowid(id) else { return Ok(false) };
    let sql = format!(
        "UPDATE jobs SET status = 'cancelled', lease_until = NULL, finished_at = {NOW}, updated_at = {NOW} \
         WHERE org_id = ? AND id = ? AND status IN ('queued', 'running')"
    );
    let n = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).execute(w).await?.rows_affected();
    Ok(n == 1)
}

pub async fn get(r: &SqlitePool, org: &OrgId, id: &str) -> Result<Option<Job>> {
    let Some(id) = job_rowid(id) else { return Ok(None) };
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = ? AND id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).fetch_optional(r).await?;
    row.map(|r| raw(&r).into_job()).transpose()
}

pub async fn list(r: &SqlitePool, org: &OrgId, filter: &JobFilter) -> Result<Vec<Job>> {
    let mut f = SqlFrag::new(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = "));
    f.param(org.0.as_str());
    if let Some(s) = filter.status {
        f.push(" AND status = ").param(s.as_str());
    }
    if let Some(k) = &filter.kind {
        f.push(" AND kind = ").param(k.as_str());
    }
    f.push(" ORDER BY id DESC LIMIT ").param(i64::from(filter.limit));
    fetch(r, &f).await?.iter().map(|r| raw(r).into_job()).collect()
}
