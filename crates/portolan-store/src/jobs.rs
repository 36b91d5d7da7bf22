//! Durable background jobs: queue, leases, fair claims.

use async_trait::async_trait;
use std::time::Duration;

use serde_json::Value;

use crate::db::{Conn, Db, Q, Row, Tx};
use crate::sql::{Dialect, SqlFrag};
use crate::{OrgId, Result, SqlStore, StoreError};

/// Where a background job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting to be claimed (at or after `run_at`).
    Queued,
    /// Leased by a node; claimable again once its lease expires.
    Running,
    Succeeded,
    /// Failed for good: a permanent error, or no attempts left.
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    /// Succeeded, failed or cancelled: nothing will run it again.
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: Value,
    /// Claims allowed before the job fails for good (at least 1).
    pub max_attempts: u32,
}

/// A durable background job. Times are the database's clock, in the store's timestamp format.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `job_<n>`.
    pub id: String,
    pub org: OrgId,
    pub kind: String,
    pub payload: Value,
    pub status: JobStatus,
    /// Claims so far; also the fencing token of the current lease (see [`Lease`]).
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_at: String,
    /// The node holding (or that last held) the lease.
    pub lease_owner: Option<String>,
    /// When the current lease expires (`None` once the job is finished or back in the queue).
    pub lease_until: Option<String>,
    /// The last checkpoint the handler saved; a node taking the job over resumes from it.
    pub progress: Option<Value>,
    pub last_error: Option<String>,
    /// The handler's result, or the detail of the error it failed with.
    pub result: Option<Value>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Job {
    /// The lease a claim returned this job under (for a job in `running`).
    pub fn lease(&self) -> Option<Lease> {
        match (self.status, &self.lease_owner) {
            (JobStatus::Running, Some(owner)) => {
                Some(Lease { job_id: self.id.clone(), owner: owner.clone(), attempt: self.attempts })
            }
            _ => None,
        }
    }
}

/// A node's hold on a running job. Heartbeats, progress and completion are accepted only while
/// the job is still running under this exact lease; a node whose lease expired and was claimed
/// by another node (a higher `attempt`) is refused and must stop working on the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: String,
    pub owner: String,
    pub attempt: u32,
}

/// How many jobs of one organization may run at once (see [`Jobs::claim_job_fairly`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobShare {
    /// Across every node of the cluster.
    pub per_org: u32,
    /// On the claiming node.
    pub per_org_on_node: u32,
}

impl JobShare {
    /// No caps: the oldest due job first, whatever its organization runs already.
    pub const UNLIMITED: JobShare = JobShare { per_org: u32::MAX, per_org_on_node: u32::MAX };
}

/// Filters of a job listing, AND-ed; newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub limit: u32,
}

/// The columns of `jobs` [`job_from_row`] reads (JSON as text, counters as 64-bit integers).
pub(crate) const JOB_COLUMNS: &str = "id, org_id, kind, CAST(payload AS TEXT), status, CAST(attempts AS BIGINT), \
     CAST(max_attempts AS BIGINT), run_at, lease_owner, lease_until, CAST(progress AS TEXT), last_error, \
     CAST(result AS TEXT), created_at, updated_at, started_at, finished_at";

/// The row id of a `job_<n>` id (`None` for anything else: such a job does not exist).
pub(crate) fn job_rowid(id: &str) -> Option<i64> {
    id.strip_prefix("job_")?.parse().ok()
}

/// A duration in whole milliseconds, for SQL.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
pub trait Jobs: Send + Sync {
    /// Queue a job, runnable now.
    async fn enqueue_job(&self, org: &OrgId, job: &NewJob) -> Result<Job>;
    /// Queue a job runnable `delay` from now (by the database's clock): a poll that waits
    /// without holding a worker.
    async fn enqueue_job_after(&self, org: &OrgId, job: &NewJob, delay: Duration) -> Result<Job>;
    /// Claim the next runnable job of one of `kinds` for `node`, for `lease`: a queued job that is
    /// due, or a running job whose lease expired (its node died) and that has attempts left.
    /// Each runnable job is handed to exactly one claimer; `attempts` is incremented. Running
    /// jobs whose lease expired on their last attempt are marked failed on the way.
    async fn claim_job(&self, node: &str, kinds: &[String], lease: std::time::Duration) -> Result<Option<Job>> {
        self.claim_job_fairly(node, kinds, lease, &JobShare::UNLIMITED).await
    }
    /// [`Jobs::claim_job`] within each organization's share of the workers: a job of an
    /// organization that already has `share.per_org` jobs running (live leases, any node) or
    /// `share.per_org_on_node` running on `node` is skipped. Among the rest, the organization
    /// with the fewest running jobs goes first, then the oldest due job — so one organization's
    /// flood of jobs cannot hold every worker while another organization's jobs wait. The cap
    /// is exact on both backends (SQLite's single writer; a transaction-scoped advisory lock
    /// serializes claims on PostgreSQL).
    async fn claim_job_fairly(
        &self,
        node: &str,
        kinds: &[String],
        lease: std::time::Duration,
        share: &JobShare,
    ) -> Result<Option<Job>>;
    /// Extend a lease to `lease` from now. `false`: the lease is lost (the job was taken over,
    /// cancelled or finished) and the holder must stop working on it.
    async fn heartbeat_job(&self, lease: &Lease, extend: std::time::Duration) -> Result<bool>;
    /// Save the handler's checkpoint; `false` (nothing saved) when the lease is lost.
    async fn save_job_progress(&self, lease: &Lease, progress: &Value) -> Result<bool>;
    /// Finish the job successfully; `false` (nothing changed) when the lease is lost.
    async fn complete_job(&self, lease: &Lease, result: &Value) -> Result<bool>;
    /// Record a failed attempt. With `retry_in` and attempts left the job goes back to the queue,
    /// runnable after `retry_in`; otherwise it fails for good. Returns the new status, or `None`
    /// (nothing changed) when the lease is lost.
    async fn fail_job(
        &self,
        lease: &Lease,
        error: &str,
        detail: Option<&Value>,
        retry_in: Option<std::time::Duration>,
    ) -> Result<Option<JobStatus>>;
    /// Give a running job back to the queue (graceful shutdown): runnable at once by any node,
    /// and the interrupted attempt is not counted against `max_attempts`. `false` when the
    /// lease is lost.
    async fn release_job(&self, lease: &Lease) -> Result<bool>;
    /// Cancel a queued or running job of `org` (a running job's holder loses its lease).
    /// `false` when there is no such unfinished job.
    async fn cancel_job(&self, org: &OrgId, id: &str) -> Result<bool>;
    async fn get_job(&self, org: &OrgId, id: &str) -> Result<Option<Job>>;
    async fn list_jobs(&self, org: &OrgId, filter: &JobFilter) -> Result<Vec<Job>>;
    /// Unfinished jobs per kind over every organization (for `/metrics`): queued and running
    /// counts and the `run_at` of the oldest queued job. One aggregate over the unfinished
    /// jobs (the partial indexes `jobs_queued` and `jobs_running`), never a row list.
    async fn queue_stats(&self) -> Result<Vec<QueueStat>>;
}

/// One kind's line of [`Jobs::queue_stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStat {
    pub kind: String,
    pub queued: u64,
    pub running: u64,
    /// `run_at` of the oldest queued job (store timestamp format), if any is queued.
    pub oldest_queued: Option<String>,
}

/// A job row read with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(r: &Row) -> Result<Job> {
    let id: i64 = r.get(0);
    let json = |what: &str, s: &str| {
        serde_json::from_str::<Value>(s).map_err(|e| StoreError::Db(format!("job {id} has invalid {what}: {e}").into()))
    };
    let status: String = r.get(4);
    Ok(Job {
        id: format!("job_{id}"),
        org: OrgId(r.get(1)),
        kind: r.get(2),
        payload: json("payload", &r.get::<String, _>(3))?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Db(format!("job {id} has unknown status {status:?}").into()))?,
        attempts: u32::try_from(r.get::<i64, _>(5)).unwrap_or(0),
        max_attempts: u32::try_from(r.get::<i64, _>(6)).unwrap_or(0),
        run_at: r.get(7),
        lease_owner: r.get(8),
        lease_until: r.get(9),
        progress: r.get::<Option<String>, _>(10).as_deref().map(|p| json("progress", p)).transpose()?,
        last_error: r.get(11),
        result: r.get::<Option<String>, _>(12).as_deref().map(|p| json("result", p)).transpose()?,
        created_at: r.get(13),
        updated_at: r.get(14),
        started_at: r.get(15),
        finished_at: r.get(16),
    })
}

/// The database's clock. Job times come from it, so nodes with skewed clocks agree on when a
/// lease expires: SQLite's `strftime` (fixed for the duration of one statement), PostgreSQL's
/// `portolan_now_ms` (migration 0002).
pub(crate) fn now(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        Dialect::Postgres => "portolan_now_ms(0)",
    }
}

/// Append the time `dur` from now (one bound parameter) to `f`.
pub(crate) fn push_now_plus(f: &mut SqlFrag, d: Dialect, dur: Duration) {
    match d {
        Dialect::Sqlite => {
            let ms = millis(dur);
            f.push("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ").param(format!("+{}.{:03} seconds", ms / 1000, ms % 1000));
        }
        Dialect::Postgres => {
            f.push("portolan_now_ms(").param(millis(dur));
        }
    }
    f.push(")");
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

/// Key of the transaction-scoped advisory lock that serializes job claims across PostgreSQL
/// nodes, so an organization's share is never exceeded by two nodes claiming at once
/// ("jobclaim"). SQLite's one writer serializes them already.
pub const CLAIM_LOCK: i64 = 0x006a_6f62_636c_6169;

/// Queue a `kind` job of `org` (empty payload, 5 attempts) unless one is queued, runnable now
/// and not yet claimed — it will see what the caller's transaction adds, as it reads when it
/// runs (a job queued for later, such as a retry, does not hold new work back). One
/// statement, as it runs in the writes that give such jobs work.
pub(crate) async fn enqueue_once(tx: &mut Tx, org: &OrgId, kind: &str) -> Result<()> {
    let sql = enqueue_once_sql(tx.dialect());
    tx.q(&sql).bind(&org.0).bind(kind).bind("{}").bind(&org.0).bind(kind).execute(&mut *tx).await?;
    Ok(())
}

/// [`enqueue_once`]'s statement (org, kind, payload, org, kind): the queued-and-due probe is one
/// step of the `jobs_queued_kind` index (migration 0025), whatever the queue holds.
fn enqueue_once_sql(d: Dialect) -> String {
    let now = now(d);
    format!(
        "INSERT INTO jobs(org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
         SELECT ?, ?, ?{}, 'queued', 0, 5, {now}, {now}, {now} \
         WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND org_id = ? AND kind = ? \
         AND run_at <= {now})",
        d.jsonb_cast()
    )
}

/// Queue `job` of `org` (in the caller's transaction: a webhook delivery records itself beside it).
pub(crate) async fn enqueue<'c>(db: &Db, c: impl Into<Conn<'c>>, org: &OrgId, job: &NewJob) -> Result<Job> {
    enqueue_at(db, c, org, job, Duration::ZERO).await
}

async fn enqueue_at<'c>(db: &Db, c: impl Into<Conn<'c>>, org: &OrgId, job: &NewJob, delay: Duration) -> Result<Job> {
    let d = db.dialect();
    let mut f = SqlFrag::new(INSERT_JOBS);
    push_job_values(&mut f, d, org, job, delay);
    f.push(&format!(" RETURNING {JOB_COLUMNS}"));
    job_from_row(&db.frag(&f).fetch_one(c).await?)
}

const INSERT_JOBS: &str =
    "INSERT INTO jobs(org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) VALUES ";

/// Most jobs one [`enqueue_statements`] statement inserts (4 parameters each); a power of two.
const JOBS_PER_INSERT: usize = 512;

/// One job's `VALUES` row, runnable after `delay`.
fn push_job_values(f: &mut SqlFrag, d: Dialect, org: &OrgId, job: &NewJob, delay: Duration) {
    f.push("(").param(org.0.as_str()).push(", ").param(job.kind.as_str()).push(", ");
    f.param(job.payload.to_string()).push(d.jsonb_cast()).push(", 'queued', 0, ");
    f.param(i64::from(job.max_attempts.max(1))).push(", ");
    let now = now(d);
    if delay.is_zero() {
        f.push(now);
    } else {
        push_now_plus(f, d, delay);
    }
    f.push(&format!(", {now}, {now})"));
}

/// The statements queueing `jobs` of `org`, runnable now, for the caller to run in its
/// transaction: a few multi-row statements (power-of-two chunks up to [`JOBS_PER_INSERT`], so a
/// few statement texts), built before the transaction (a dispatch of automation events queues
/// its runs' invocations while it holds SQLite's one writer).
pub(crate) fn enqueue_statements(db: &Db, org: &OrgId, jobs: &[&NewJob]) -> Vec<Q> {
    let d = db.dialect();
    crate::sql::pow2_chunks(jobs, JOBS_PER_INSERT)
        .map(|chunk| {
            let mut f = SqlFrag::new(INSERT_JOBS);
            for (i, job) in chunk.iter().enumerate() {
                if i > 0 {
                    f.push(", ");
                }
                push_job_values(&mut f, d, org, job, Duration::ZERO);
            }
            db.frag(&f)
        })
        .collect()
}

/// Read before a claim, with the claim's own choice of job: would a claim by `node` find a job
/// (one due, of an organization under its share), and is any job dead (running under an
/// expired lease on its last attempt: the claim marks it failed)? A worker whose claim would
/// find nothing — an idle queue, or due jobs all held back by their organizations' shares —
/// then neither takes SQLite's one writer nor PostgreSQL's claim lock.
fn peek_frag(d: Dialect, node: &str, kinds: &[String], share: &JobShare) -> SqlFrag {
    let now = now(d);
    let mut f = candidates(d, node, kinds, share);
    f.push(&format!(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM next) THEN TRUE ELSE FALSE END, \
         CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND lease_until < {now} \
         AND attempts >= max_attempts) THEN TRUE ELSE FALSE END"
    ));
    f
}

/// The statement that leases the next job for `node` (see [`Jobs::claim_job_fairly`]).
fn claim_frag(d: Dialect, node: &str, kinds: &[String], lease: Duration, share: &JobShare) -> SqlFrag {
    let now = now(d);
    let mut f = candidates(d, node, kinds, share);
    // One `UPDATE` that leases the chosen row, still runnable (on PostgreSQL a concurrent
    // cancel may have ended it: READ COMMITTED re-checks the condition on the row it
    // updates); claimers are serialized by SQLite's one writer and by PostgreSQL's
    // advisory lock, which `claim_job_fairly` takes first.
    let p = if d == Dialect::Postgres { "jobs." } else { "" };
    f.push(&format!("UPDATE jobs SET status = 'running', attempts = {p}attempts + 1, lease_owner = "));
    f.param(node).push(", lease_until = ");
    push_now_plus(&mut f, d, lease);
    f.push(&format!(", started_at = COALESCE({p}started_at, {now}), updated_at = {now}"));
    f.push(match d {
        Dialect::Sqlite => " WHERE id = (SELECT next_id FROM next)",
        Dialect::Postgres => " FROM next WHERE jobs.id = next.next_id",
    });
    f.push(&format!(
        " AND ({p}status = 'queued' OR ({p}status = 'running' AND {p}lease_until < {now})) RETURNING {JOB_COLUMNS}"
    ));
    f
}

/// The `WITH` clause of [`claim_frag`] and [`peek_frag`]: `next`, the job a claim by `node`
/// leases (one row or none).
fn candidates(d: Dialect, node: &str, kinds: &[String], share: &JobShare) -> SqlFrag {
    let now = now(d);
    // The candidates, each found with index steps whatever the jobs table's history holds
    // (partial indexes of migration 0025): the organizations with queued jobs, walked one
    // index step each (`orgs`), each one's oldest due job of a known kind, and the jobs
    // whose holder's lease expired with attempts left. Then, of the organizations under
    // their share (jobs running under a live lease, per organization: all of them, `n`, and
    // this node's, `mine`), the least busy one's candidate, oldest first.
    let mut f = SqlFrag::new(
        "WITH RECURSIVE orgs(o) AS (SELECT MIN(org_id) FROM jobs WHERE status = 'queued' UNION ALL \
         SELECT (SELECT MIN(q.org_id) FROM jobs q WHERE q.status = 'queued' AND q.org_id > orgs.o) \
         FROM orgs WHERE orgs.o IS NOT NULL), \
         live AS (SELECT org_id, COUNT(*) AS n, SUM(CASE WHEN lease_owner = ",
    );
    f.param(node).push(&format!(
        " THEN 1 ELSE 0 END) AS mine FROM jobs WHERE status = 'running' AND lease_until >= {now} GROUP BY org_id), \
         cand(id, org_id, run_at) AS ("
    ));
    // Each organization's oldest due job of a known kind, read by its key: SQLite keeps the
    // left side of a `CROSS JOIN` outside, PostgreSQL runs a `LATERAL` subquery per row.
    let oldest =
        "SELECT q.id, q.org_id, q.run_at FROM jobs q WHERE q.status = 'queued' AND q.org_id = orgs.o AND q.run_at <= ";
    match d {
        Dialect::Sqlite => {
            f.push("SELECT j.id, j.org_id, j.run_at FROM orgs CROSS JOIN jobs j WHERE orgs.o IS NOT NULL AND j.id = (");
            f.push(&oldest.replace("q.id, q.org_id, q.run_at", "q.id"));
        }
        Dialect::Postgres => {
            f.push("SELECT q.id, q.org_id, q.run_at FROM orgs CROSS JOIN LATERAL (").push(oldest);
        }
    }
    f.push(&format!("{now} AND q.kind IN ("));
    f.param_list(kinds.iter().map(String::as_str));
    f.push(") ORDER BY q.run_at, q.id LIMIT 1)");
    if d == Dialect::Postgres {
        f.push(" q WHERE orgs.o IS NOT NULL");
    }
    f.push(&format!(
        " UNION ALL SELECT q.id, q.org_id, q.run_at FROM jobs q WHERE q.status = 'running' AND q.lease_until < {now} \
         AND q.attempts < q.max_attempts AND q.kind IN ("
    ));
    f.param_list(kinds.iter().map(String::as_str));
    f.push(
        ")), next AS (SELECT c.id AS next_id FROM cand c LEFT JOIN live r ON r.org_id = c.org_id \
         WHERE COALESCE(r.n, 0) < ",
    );
    f.param(i64::from(share.per_org)).push(" AND COALESCE(r.mine, 0) < ").param(i64::from(share.per_org_on_node));
    f.push(" ORDER BY COALESCE(r.n, 0), c.run_at, c.id LIMIT 1) ");
    f
}

/// The job queue's statements as workers and writes issue them, by name, their parameters bound
/// (organization `org`, a sample node, kinds and share). Public for the plan tests, which
/// `EXPLAIN` them over a table holding many finished jobs: each must reach its rows through the
/// partial indexes of migration 0025, never by walking the table's history.
pub fn job_queue_statements(d: Dialect, org: &OrgId) -> Vec<(&'static str, SqlFrag)> {
    let kinds: Vec<String> = ["action_run", "automation_dispatch", "webhook_delivery"].map(String::from).into();
    let share = JobShare { per_org: 8, per_org_on_node: 2 };
    let claim = claim_frag(d, "node-1", &kinds, Duration::from_secs(30), &share);
    let mut once = SqlFrag::new(&enqueue_once_sql(d));
    once.params = vec![
        org.0.as_str().into(),
        "automation_dispatch".into(),
        "{}".into(),
        org.0.as_str().into(),
        "automation_dispatch".into(),
    ];
    vec![
        ("look for a claimable job", peek_frag(d, "node-1", &kinds, &share)),
        ("claim a job", claim),
        ("queue a job once", once),
    ]
}

impl SqlStore {
    /// Run a lease-holder's update; `true` when it changed the job (the lease is still held).
    async fn held_update(&self, f: SqlFrag) -> Result<bool> {
        Ok(self.db.frag(&f).execute(self.db.write()).await? == 1)
    }
}

#[async_trait]
impl Jobs for SqlStore {
    async fn enqueue_job(&self, org: &OrgId, job: &NewJob) -> Result<Job> {
        enqueue(&self.db, self.db.write(), org, job).await
    }

    async fn enqueue_job_after(&self, org: &OrgId, job: &NewJob, delay: Duration) -> Result<Job> {
        enqueue_at(&self.db, self.db.write(), org, job, delay).await
    }

    async fn claim_job_fairly(
        &self,
        node: &str,
        kinds: &[String],
        lease: Duration,
        share: &JobShare,
    ) -> Result<Option<Job>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let d = self.db.dialect();
        let now = now(d);
        // Most claims find nothing — an idle or draining queue, or an organization's due jobs
        // held back by its share while another worker runs one: a read first, so they take
        // neither SQLite's one writer nor PostgreSQL's claim lock from the writes.
        let peek = self.db.frag(&peek_frag(d, node, kinds, share)).fetch_one(self.db.read()).await?;
        let (due, dead): (bool, bool) = (peek.get(0), peek.get(1));
        if !due && !dead {
            return Ok(None);
        }
        let f = claim_frag(d, node, kinds, lease, share);
        // SQLite, nothing to sweep: the claim is one statement, so no transaction around it
        // (each statement is a hand-off to the one writer that every write waits for).
        if d == Dialect::Sqlite && !dead {
            let rows = self.db.frag(&f).fetch_all(self.db.write()).await?;
            return rows.first().map(job_from_row).transpose();
        }
        let mut tx = self.db.begin().await?;
        if d == Dialect::Postgres {
            tx.q("SELECT pg_advisory_xact_lock(?)").bind(CLAIM_LOCK).execute(&mut tx).await?;
        }
        // A job whose holder died on its last attempt will not be claimed again: fail it.
        let sweep = format!(
            "UPDATE jobs SET status = 'failed', lease_until = NULL, finished_at = {now}, updated_at = {now}, \
             last_error = 'the lease of attempt ' || attempts || ' expired (its node stopped or lost the database) and no attempts are left' \
             WHERE status = 'running' AND lease_until < {now} AND attempts >= max_attempts"
        );
        if dead {
            tx.q(&sweep).execute(&mut tx).await?;
        }
        let rows = if due { tx.frag(&f).fetch_all(&mut tx).await? } else { Vec::new() };
        tx.commit().await?;
        rows.first().map(job_from_row).transpose()
    }

    async fn heartbeat_job(&self, lease: &Lease, extend: Duration) -> Result<bool> {
        let Some(cond) = held(lease) else { return Ok(false) };
        let d = self.db.dialect();
        let mut f = SqlFrag::new("UPDATE jobs SET lease_until = ");
        push_now_plus(&mut f, d, extend);
        f.push(&format!(", updated_at = {}", now(d))).append(cond);
        self.held_update(f).await
    }

    async fn save_job_progress(&self, lease: &Lease, progress: &Value) -> Result<bool> {
        let Some(cond) = held(lease) else { return Ok(false) };
        let d = self.db.dialect();
        let mut f = SqlFrag::new("UPDATE jobs SET progress = ");
        f.param(progress.to_string()).push(d.jsonb_cast()).push(&format!(", updated_at = {}", now(d))).append(cond);
        self.held_update(f).await
    }

    async fn complete_job(&self, lease: &Lease, result: &Value) -> Result<bool> {
        let Some(cond) = held(lease) else { return Ok(false) };
        let d = self.db.dialect();
        let now = now(d);
        let mut f = SqlFrag::new("UPDATE jobs SET status = 'succeeded', lease_until = NULL, result = ");
        f.param(result.to_string()).push(d.jsonb_cast());
        f.push(&format!(", finished_at = {now}, updated_at = {now}")).append(cond);
        self.held_update(f).await
    }

    async fn fail_job(
        &self,
        lease: &Lease,
        error: &str,
        detail: Option<&Value>,
        retry_in: Option<Duration>,
    ) -> Result<Option<JobStatus>> {
        let Some(cond) = held(lease) else { return Ok(None) };
        let d = self.db.dialect();
        let retry = retry_in.is_some();
        let mut f = SqlFrag::new("UPDATE jobs SET status = CASE WHEN ");
        f.param(retry).push(" AND attempts < max_attempts THEN 'queued' ELSE 'failed' END, run_at = CASE WHEN ");
        f.param(retry).push(" AND attempts < max_attempts THEN ");
        push_now_plus(&mut f, d, retry_in.unwrap_or_default());
        f.push(" ELSE run_at END, finished_at = CASE WHEN ").param(retry);
        f.push(&format!(" AND attempts < max_attempts THEN NULL ELSE {now} END, updated_at = {now}", now = now(d)));
        f.push(", lease_until = NULL, last_error = ").param(error).push(", result = ");
        match detail {
            Some(v) => f.param(v.to_string()).push(d.jsonb_cast()),
            None => f.push("NULL"),
        };
        f.append(cond).push(" RETURNING status");
        let rows = self.db.frag(&f).fetch_all(self.db.write()).await?;
        Ok(rows.first().and_then(|r| JobStatus::parse(&r.get::<String, _>(0))))
    }

    async fn release_job(&self, lease: &Lease) -> Result<bool> {
        let Some(cond) = held(lease) else { return Ok(false) };
        // `attempts` stays (it fences the released lease); the attempt is given back through
        // `max_attempts` instead.
        let now = now(self.db.dialect());
        let mut f = SqlFrag::new(&format!(
            "UPDATE jobs SET status = 'queued', lease_until = NULL, max_attempts = max_attempts + 1, \
             run_at = {now}, updated_at = {now}"
        ));
        f.append(cond);
        self.held_update(f).await
    }

    async fn cancel_job(&self, org: &OrgId, id: &str) -> Result<bool> {
        let Some(id) = job_rowid(id) else { return Ok(false) };
        let now = now(self.db.dialect());
        let mut f = SqlFrag::new(&format!(
            "UPDATE jobs SET status = 'cancelled', lease_until = NULL, finished_at = {now}, updated_at = {now} \
             WHERE org_id = "
        ));
        f.param(org.0.as_str()).push(" AND id = ").param(id).push(" AND status IN ('queued', 'running')");
        self.held_update(f).await
    }

    async fn get_job(&self, org: &OrgId, id: &str) -> Result<Option<Job>> {
        let Some(id) = job_rowid(id) else { return Ok(None) };
        let db = &self.db;
        let mut f = SqlFrag::new(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = "));
        f.param(org.0.as_str()).push(" AND id = ").param(id);
        db.frag(&f).fetch_optional(db.read()).await?.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs(&self, org: &OrgId, filter: &JobFilter) -> Result<Vec<Job>> {
        let db = &self.db;
        let mut f = SqlFrag::new(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = "));
        f.param(org.0.as_str());
        if let Some(s) = filter.status {
            f.push(" AND status = ").param(s.as_str());
        }
        if let Some(k) = &filter.kind {
            f.push(" AND kind = ").param(k.as_str());
        }
        f.push(" ORDER BY id DESC LIMIT ").param(i64::from(filter.limit));
        db.frag(&f).fetch_all(db.read()).await?.iter().map(job_from_row).collect()
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStat>> {
        let db = &self.db;
        let rows = db
            .q("SELECT kind, CAST(SUM(q) AS BIGINT), CAST(SUM(r) AS BIGINT), MIN(at) FROM \
                (SELECT kind, 1 AS q, 0 AS r, run_at AS at FROM jobs WHERE status = 'queued' UNION ALL \
                SELECT kind, 0 AS q, 1 AS r, NULL AS at FROM jobs WHERE status = 'running') u \
                GROUP BY kind ORDER BY kind")
            .fetch_all(db.read())
            .await?;
        Ok(rows
            .iter()
            .map(|r| QueueStat {
                kind: r.get(0),
                queued: u64::try_from(r.get::<i64, _>(1)).unwrap_or(0),
                running: u64::try_from(r.get::<i64, _>(2)).unwrap_or(0),
                oldest_queued: r.get(3),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::plans;

    /// The plan of each queue statement on SQLite, once with the planner's defaults (never
    /// analyzed) and once after `ANALYZE`, with 5,000 finished jobs and 300 queued ones of two
    /// organizations: every read of `jobs` goes through the partial indexes of unfinished jobs
    /// or the primary key (before migration 0025 the claim scanned every job ever run through
    /// `jobs_org`, and queueing once walked every due job of every organization).
    #[tokio::test]
    async fn queue_statements_search_indexes_whatever_the_history() {
        let store = plans::store_of_two_orgs().await;
        let db = &store.db;
        db.q("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5300) \
              INSERT INTO jobs(org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
              SELECT CASE WHEN x % 2 = 0 THEN 'org_a' ELSE 'org_b' END, 'action_run', '{}', \
              CASE WHEN x <= 5000 THEN 'succeeded' ELSE 'queued' END, 0, 3, '2026-01-01', '2026-01-01', '2026-01-01' FROM c")
            .execute(db.write())
            .await
            .unwrap();
        for analyzed in [false, true] {
            if analyzed {
                db.q("ANALYZE").execute(db.write()).await.unwrap();
            }
            for (name, f) in job_queue_statements(Dialect::Sqlite, &OrgId("org_a".into())) {
                let mut explain = SqlFrag::new("EXPLAIN QUERY PLAN ");
                explain.append(f);
                let plan = plans::lines(db, db.frag(&explain)).await.join("\n");
                // Every read of `jobs` goes through a partial index (unfinished rows only) or
                // the primary key.
                let unbounded: Vec<&str> = plan
                    .lines()
                    .filter(|l| {
                        ["SCAN jobs", "SEARCH jobs", "SCAN j ", "SEARCH j ", "SCAN q ", "SEARCH q "]
                            .iter()
                            .any(|p| l.starts_with(p) || *l == p.trim_end())
                    })
                    .filter(|l| !["jobs_queued", "jobs_running", "PRIMARY KEY"].iter().any(|i| l.contains(i)))
                    .collect();
                assert!(
                    unbounded.is_empty(),
                    "{name} (analyzed: {analyzed}) reads jobs beyond the unfinished ones:\n{plan}"
                );
                assert!(plan.contains("jobs_queued"), "{name} (analyzed: {analyzed}) misses the queue index:\n{plan}");
            }
        }
        // And the statements do their work: the claim takes org_a's or org_b's oldest queued job.
        let kinds = vec!["action_run".to_string()];
        let job = store.claim_job_fairly("n", &kinds, Duration::from_secs(30), &JobShare::UNLIMITED).await.unwrap();
        assert_eq!(job.map(|j| j.id), Some("job_5001".to_string()));
    }
}
