//! Self-service actions and automations (port-api.md §5), their runs, run logs, affected
//! entities, and the claim protocol of Port's execution agent.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::audit;
use crate::automations;
use crate::db::{Db, Q, Row, Tx, is_unique_violation};
use crate::jobs::{self, now, push_now_plus};
use crate::permission_docs::{self, Holder};
use crate::sql::{Dialect, SqlFrag};
use crate::ui::parse_json;
use crate::{AuditCtx, Job, NewJob, OrgId, Result, SaveMode, SqlStore, StoreError};

/// An action as stored: Port's action object without the server's keys (`data`), its `id`
/// (`action_…`) and meta.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAction {
    pub identifier: String,
    pub id: String,
    pub data: Value,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// What [`Actions::save_action`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionWrite {
    pub identifier: String,
    /// Used on create; an update keeps the stored id.
    pub id: String,
    pub data: Value,
}

/// One run of an action (port-api.md §5.6). The columns a listing filters on are fields; the
/// rest of Port's run object is `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Assigned by the store (the listing cursor); ignored by [`Actions::create_run`].
    pub rid: i64,
    /// `r_…`.
    pub id: String,
    pub action: String,
    pub blueprint: Option<String>,
    pub entity: Option<String>,
    /// `IN_PROGRESS`, `SUCCESS`, `FAILURE`, `WAITING_FOR_APPROVAL`, `DECLINED`.
    pub status: String,
    pub external_run_id: Option<String>,
    /// The rest of the run object (`statusLabel`, `link`, `summary`, `properties`, `payload`,
    /// `response`, `source`, …).
    pub data: Map<String, Value>,
    /// The outbound calls made for the run (Portolan: requests and answers, secrets censored).
    pub trace: Vec<Value>,
    /// Waiting for an execution agent to claim and acknowledge it.
    pub pending_execution: bool,
    /// Until when the last claim holds it (the database's clock).
    pub claimed_until: Option<String>,
    pub installation_id: Option<String>,
    /// Terminated by a log with `terminationStatus`: no further changes.
    pub ended_by_log: bool,
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
    pub ended_at: Option<String>,
    /// When the run ends `FAILURE` unless something ends it first (the server's clock). The
    /// store keeps it only while the run has not ended: a run with `ended_at` is written
    /// without it.
    pub timeout_at: Option<String>,
}

/// Filters of a run listing (all AND-ed), newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub action: Option<String>,
    pub blueprint: Option<String>,
    pub entity: Option<String>,
    pub statuses: Vec<String>,
    pub external_run_id: Option<String>,
    pub created_by: Option<String>,
    /// Runs with a `rid` below this one (the next page).
    pub before: Option<i64>,
    pub limit: u32,
}

/// One run log line (`POST /v1/actions/runs/{id}/logs`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunLog {
    /// Assigned by the store (`log_<n>`, increasing); ignored on append.
    pub id: String,
    pub at: String,
    pub message: String,
    pub termination_status: Option<String>,
    pub status_label: Option<String>,
    pub user_id: String,
}

/// The change [`Actions::update_run`] applies to the stored run, inside its transaction.
pub type RunEdit<'a> = &'a mut (dyn FnMut(&mut Run) -> Result<()> + Send);

/// The most runs one claim hands out.
pub const MAX_CLAIM: u32 = 500;

#[async_trait]
pub trait Actions: Send + Sync {
    async fn get_action(&self, org: &OrgId, identifier: &str) -> Result<Option<StoredAction>>;
    /// Actions of `org`, by identifier (an organization has tens, not thousands).
    async fn list_actions(&self, org: &OrgId) -> Result<Vec<StoredAction>>;
    /// Create (`Conflict` when taken) or replace (`NotFound` when missing; id and creation meta
    /// kept) an action, audited (`resourceType` action) in the same transaction.
    async fn save_action(&self, org: &OrgId, w: &ActionWrite, mode: SaveMode, ctx: &AuditCtx) -> Result<StoredAction>;
    /// Delete an action (audited). Its runs stay (their `action.deleted` says so).
    async fn delete_action(&self, org: &OrgId, identifier: &str, ctx: &AuditCtx) -> Result<()>;
    /// The permission document of action `identifier` (`None`: the defaults); `NotFound` when
    /// there is no such action.
    async fn action_permissions(&self, org: &OrgId, identifier: &str) -> Result<Option<Value>>;
    /// Replace an action's permission document, audited (`resourceType` action, the diff under
    /// `permissions`). `NotFound` when there is no such action.
    async fn set_action_permissions(&self, org: &OrgId, identifier: &str, doc: &Value, ctx: &AuditCtx) -> Result<()>;

    /// Store a new run and, with `job`, the job that invokes it, in one transaction: a run is
    /// never without its invocation, and a crash after the answer loses nothing.
    async fn create_run(&self, org: &OrgId, run: &Run, job: Option<&NewJob>) -> Result<(Run, Option<Job>)>;
    async fn get_run(&self, org: &OrgId, id: &str) -> Result<Option<Run>>;
    /// Runs matching `filter`, newest first, at most `filter.limit` (capped at 1,000).
    async fn list_runs(&self, org: &OrgId, filter: &RunFilter) -> Result<Vec<Run>>;
    /// Read the run (locked against concurrent updates), apply `edit`, write it back and append
    /// `logs`, in one transaction. `NotFound` when there is no such run; `edit`'s error aborts.
    async fn update_run(&self, org: &OrgId, id: &str, logs: &[RunLog], edit: RunEdit<'_>) -> Result<Run>;
    /// [`Self::update_run`], and when the edit moves the run from `WAITING_FOR_APPROVAL` to
    /// `IN_PROGRESS` (approved), enqueue `job` (its invocation) in the same transaction.
    async fn update_run_or_start(
        &self,
        org: &OrgId,
        id: &str,
        logs: &[RunLog],
        edit: RunEdit<'_>,
        job: &NewJob,
    ) -> Result<(Run, Option<Job>)>;
    /// A run's log lines in order, after the line `after` (`log_<n>`'s n), at most `limit`.
    async fn list_run_logs(&self, org: &OrgId, id: &str, after: Option<i64>, limit: u32) -> Result<Vec<RunLog>>;
    /// Claim up to `limit` runs waiting for an agent whose last claim (if any) expired: each
    /// is held for `lease` (the database's clock), so a second agent does not get it until the
    /// lease runs out without an [`ack_runs`](Actions::ack_runs).
    async fn claim_pending_runs(
        &self,
        org: &OrgId,
        installation_id: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Run>>;
    /// Acknowledge claimed runs: they stop waiting. Counts only runs that were still waiting,
    /// so of two agents acknowledging one run, exactly one counts it.
    async fn ack_runs(&self, org: &OrgId, ids: &[String]) -> Result<u64>;
    /// Runs of every organization whose `timeout_at` is at or before `now` (the store's
    /// timestamp format), earliest first, at most `limit`: what the timer loop ends. A system
    /// read across organizations, like claiming jobs; each run is then ended through
    /// [`update_run`](Actions::update_run) in its own organization.
    async fn due_run_timeouts(&self, now: &str, limit: u32) -> Result<Vec<(OrgId, String)>>;
    /// A run's newest log line, if any.
    async fn last_run_log(&self, org: &OrgId, id: &str) -> Result<Option<RunLog>>;
    /// Record entities written for a run (`?run_id=`); repeated pairs are kept once.
    async fn add_run_entities(&self, org: &OrgId, run: &str, entities: &[(String, String)], at: &str) -> Result<()>;
    /// The entities recorded for a run, `(blueprint, identifier)`, in the order first recorded.
    async fn run_entities(&self, org: &OrgId, run: &str) -> Result<Vec<(String, String)>>;
}

const ACTION_COLUMNS: &str =
    "identifier, id, CAST(data AS TEXT) AS data, created_at, created_by, updated_at, updated_by FROM actions";

fn action_from_row(r: &Row) -> Result<StoredAction> {
    Ok(StoredAction {
        identifier: r.get("identifier"),
        id: r.get("id"),
        data: parse_json("action", &r.get::<String, _>("data"))?,
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        updated_at: r.get("updated_at"),
        updated_by: r.get("updated_by"),
    })
}

const RUN_COLUMNS: &str = "rid, id, action, blueprint, entity, status, external_run_id, CAST(data AS TEXT) AS data, \
     CAST(trace AS TEXT) AS trace, pending_execution, claimed_until, installation_id, ended_by_log, created_by, \
     created_at, updated_by, updated_at, ended_at, timeout_at";

fn run_from_row(r: &Row) -> Result<Run> {
    let data = match parse_json("run", &r.get::<String, _>("data"))? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let trace = match parse_json("run trace", &r.get::<String, _>("trace"))? {
        Value::Array(v) => v,
        _ => Vec::new(),
    };
    Ok(Run {
        rid: r.get("rid"),
        id: r.get("id"),
        action: r.get("action"),
        blueprint: r.get("blueprint"),
        entity: r.get("entity"),
        status: r.get("status"),
        external_run_id: r.get("external_run_id"),
        data,
        trace,
        pending_execution: r.flag("pending_execution"),
        claimed_until: r.get("claimed_until"),
        installation_id: r.get("installation_id"),
        ended_by_log: r.flag("ended_by_log"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        updated_by: r.get("updated_by"),
        updated_at: r.get("updated_at"),
        ended_at: r.get("ended_at"),
        timeout_at: r.get("timeout_at"),
    })
}

/// A run's deadline as stored: none once it has ended.
fn stored_timeout(run: &Run) -> Option<&str> {
    run.timeout_at.as_deref().filter(|_| run.ended_at.is_none())
}

fn log_from_row(r: &Row) -> RunLog {
    RunLog {
        id: format!("log_{}", r.get::<i64, _>(0)),
        at: r.get(1),
        message: r.get(2),
        termination_status: r.get(3),
        status_label: r.get(4),
        user_id: r.get(5),
    }
}

fn bool_sql(b: bool) -> &'static str {
    if b { "TRUE" } else { "FALSE" }
}

async fn action_for_update(tx: &mut Tx, org: &OrgId, id: &str) -> Result<Option<StoredAction>> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {ACTION_COLUMNS} WHERE org_id = ? AND identifier = ?{lock}");
    let old = tx.q(&sql).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
    old.as_ref().map(action_from_row).transpose()
}

async fn run_rid(tx: &mut Tx, org: &OrgId, id: &str) -> Result<Option<i64>> {
    let row = tx
        .q("SELECT rid FROM action_runs WHERE org_id = ? AND id = ?")
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row.map(|r| r.get(0)))
}

async fn insert_logs(tx: &mut Tx, org: &OrgId, rid: i64, logs: &[RunLog]) -> Result<()> {
    for l in logs {
        tx.q("INSERT INTO action_run_logs(org_id, run_rid, at, message, termination_status, status_label, user_id) \
              VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&org.0)
            .bind(rid)
            .bind(&l.at)
            .bind(l.message.as_str())
            .bind(&l.termination_status)
            .bind(&l.status_label)
            .bind(&l.user_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Port's run object (§5.6), with Portolan's `trace` of the calls made and `timeoutAt`. Keys
/// of `data` that begin with `_` are the server's own bookkeeping and left out.
pub fn run_json(run: &Run) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(run.id));
    out.insert("status".into(), json!(run.status));
    for (k, v) in &run.data {
        if !k.starts_with('_') {
            out.insert(k.clone(), v.clone());
        }
    }
    for key in ["action", "blueprint", "entity"] {
        if let Some(Value::Object(o)) = out.get_mut(key) {
            o.entry("deleted").or_insert(json!(false));
        }
    }
    out.insert("externalRunId".into(), json!(run.external_run_id));
    out.insert("pendingExecution".into(), json!(run.pending_execution));
    out.insert("claimedUntil".into(), json!(run.claimed_until));
    out.insert("installationId".into(), json!(run.installation_id));
    out.insert("endedAt".into(), json!(run.ended_at));
    // Portolan: when the run ends FAILURE unless it ends before (null once ended).
    out.insert("timeoutAt".into(), json!(run.timeout_at));
    out.insert("createdBy".into(), json!(run.created_by));
    out.insert("impersonatedBy".into(), Value::Null);
    out.insert("updatedBy".into(), json!(run.updated_by));
    out.insert("createdAt".into(), json!(run.created_at));
    out.insert("updatedAt".into(), json!(run.updated_at));
    out.insert("trace".into(), Value::Array(run.trace.clone()));
    Value::Object(out)
}

/// Insert `run` in the caller's transaction; its row id.
/// Lock run `id`, apply `edit`, write it back when it changed (recording its automation
/// events) and append `logs`: the stored run before and after.
async fn edit_run(
    db: &Db,
    tx: &mut Tx,
    org: &OrgId,
    id: &str,
    logs: &[RunLog],
    edit: RunEdit<'_>,
) -> Result<(Run, Run)> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {RUN_COLUMNS} FROM action_runs WHERE org_id = ? AND id = ?{lock}");
    let row = tx.q(&sql).bind(&org.0).bind(db.storable(id)).fetch_optional(&mut *tx).await?;
    let Some(old) = row.as_ref().map(run_from_row).transpose()? else {
        return Err(StoreError::NotFound(format!("run {id:?}")));
    };
    let mut run = old.clone();
    edit(&mut run)?;
    if run.ended_at.is_some() {
        run.timeout_at = None;
    }
    if run != old {
        let json = tx.dialect().json_cast();
        tx.q(&format!(
            "UPDATE action_runs SET status = ?, external_run_id = ?, data = ?{json}, trace = ?{json}, \
                 pending_execution = {}, claimed_until = ?, installation_id = ?, ended_by_log = {}, updated_by = ?, \
                 updated_at = ?, ended_at = ?, timeout_at = ? WHERE rid = ?",
            bool_sql(run.pending_execution),
            bool_sql(run.ended_by_log)
        ))
        .bind(&run.status)
        .bind(run.external_run_id.as_deref().map(|e| db.storable(e).into_owned()))
        .bind(Value::Object(run.data.clone()).to_string())
        .bind(Value::Array(run.trace.clone()).to_string())
        .bind(&run.claimed_until)
        .bind(run.installation_id.as_deref().map(|v| db.storable(v).into_owned()))
        .bind(db.storable(&run.updated_by).into_owned())
        .bind(&run.updated_at)
        .bind(&run.ended_at)
        .bind(stored_timeout(&run).map(str::to_string))
        .bind(old.rid)
        .execute(&mut *tx)
        .await?;
    }
    insert_logs(&mut *tx, org, old.rid, logs).await?;
    if run != old {
        automations::record_run(&mut *tx, org, Some(&old), &run).await?;
    }
    Ok((old, run))
}

pub(crate) async fn insert_run(db: &Db, tx: &mut Tx, org: &OrgId, run: &Run) -> Result<i64> {
    let rids = insert_runs(db, tx, org, &[run]).await?;
    rids.first().map(|(_, rid)| *rid).ok_or_else(|| StoreError::Db("the run insert returned no row".into()))
}

/// Most runs one `INSERT` writes (19 parameters each, below both databases' limits); a power
/// of two ([`crate::sql::pow2_chunks`]).
const RUNS_PER_INSERT: usize = 256;

/// Insert `runs` with a few multi-row statements ([`run_inserts`]): each run's id and `rid`, in
/// no particular order (neither database promises `RETURNING` rows in `VALUES` order).
pub(crate) async fn insert_runs(db: &Db, tx: &mut Tx, org: &OrgId, runs: &[&Run]) -> Result<Vec<(String, i64)>> {
    run_inserts_in(tx, run_inserts(db, org, runs)).await
}

/// Run the statements of [`run_inserts`] in `tx`: each run's id and `rid`.
pub(crate) async fn run_inserts_in(tx: &mut Tx, statements: Vec<Q>) -> Result<Vec<(String, i64)>> {
    let mut rids = Vec::new();
    for q in statements {
        let rows = q.fetch_all(&mut *tx).await?;
        rids.extend(rows.iter().map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))));
    }
    Ok(rids)
}

/// The statements inserting `runs`, their rows' JSON texts written and bound: a few multi-row
/// statements (chunks of power-of-two sizes up to [`RUNS_PER_INSERT`]: a few statement texts,
/// whatever the count). Built before the transaction where it matters: a dispatch of automation
/// events writes its runs while it holds SQLite's one writer, and each run's text (its event
/// with the entity before and after) is most of the statements' cost.
pub(crate) fn run_inserts(db: &Db, org: &OrgId, runs: &[&Run]) -> Vec<Q> {
    let json = db.dialect().json_cast();
    let mut out = Vec::new();
    for chunk in crate::sql::pow2_chunks(runs, RUNS_PER_INSERT) {
        let row = format!("(?, ?, ?, ?, ?, ?, ?, ?{json}, ?{json}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        let sql = format!(
            "INSERT INTO action_runs(org_id, id, action, blueprint, entity, status, external_run_id, data, trace, \
             pending_execution, claimed_until, installation_id, ended_by_log, created_by, created_at, updated_by, \
             updated_at, ended_at, timeout_at) VALUES {} RETURNING id, rid",
            vec![row.as_str(); chunk.len()].join(", ")
        );
        let mut q = db.q(&sql);
        for run in chunk {
            q = q
                .bind(&org.0)
                .bind(&run.id)
                .bind(db.storable(&run.action))
                .bind(run.blueprint.as_deref().map(|b| db.storable(b).into_owned()))
                .bind(run.entity.as_deref().map(|e| db.storable(e).into_owned()))
                .bind(&run.status)
                .bind(run.external_run_id.as_deref().map(|v| db.storable(v).into_owned()))
                .bind(Value::Object(run.data.clone()).to_string())
                .bind(Value::Array(run.trace.clone()).to_string())
                .bind(run.pending_execution)
                .bind(&run.claimed_until)
                .bind(run.installation_id.as_deref().map(|v| db.storable(v).into_owned()))
                .bind(run.ended_by_log)
                .bind(db.storable(&run.created_by).into_owned())
                .bind(&run.created_at)
                .bind(db.storable(&run.updated_by).into_owned())
                .bind(&run.updated_at)
                .bind(&run.ended_at)
                .bind(stored_timeout(run).map(str::to_string));
        }
        out.push(q);
    }
    out
}

#[async_trait]
impl Actions for SqlStore {
    async fn get_action(&self, org: &OrgId, identifier: &str) -> Result<Option<StoredAction>> {
        let db = &self.db;
        let sql = format!("SELECT {ACTION_COLUMNS} WHERE org_id = ? AND identifier = ?");
        let row = db.q(&sql).bind(&org.0).bind(db.storable(identifier)).fetch_optional(db.read()).await?;
        row.as_ref().map(action_from_row).transpose()
    }

    async fn list_actions(&self, org: &OrgId) -> Result<Vec<StoredAction>> {
        let db = &self.db;
        let sql = format!("SELECT {ACTION_COLUMNS} WHERE org_id = ? ORDER BY identifier");
        let rows = db.q(&sql).bind(&org.0).fetch_all(db.read()).await?;
        rows.iter().map(action_from_row).collect()
    }

    async fn save_action(&self, org: &OrgId, w: &ActionWrite, mode: SaveMode, ctx: &AuditCtx) -> Result<StoredAction> {
        let id = w.identifier.as_str();
        let mut tx = self.db.begin().await?;
        let old = action_for_update(&mut tx, org, id).await?;
        match (mode, &old) {
            (SaveMode::Create, Some(_)) => return Err(StoreError::Conflict(format!("action {id:?}"))),
            (SaveMode::Update, None) => return Err(StoreError::NotFound(format!("action {id:?}"))),
            _ => {}
        }
        let saved = StoredAction {
            identifier: id.to_string(),
            id: old.as_ref().map_or_else(|| w.id.clone(), |o| o.id.clone()),
            data: w.data.clone(),
            created_at: old.as_ref().map_or_else(|| ctx.at.clone(), |o| o.created_at.clone()),
            created_by: old.as_ref().map_or_else(|| ctx.user_id.clone(), |o| o.created_by.clone()),
            updated_at: ctx.at.clone(),
            updated_by: ctx.user_id.clone(),
        };
        let json = tx.dialect().json_cast();
        tx.q(&format!(
            "INSERT INTO actions(org_id, identifier, id, data, created_at, created_by, updated_at, updated_by, \
             trigger_event, trigger_target) VALUES (?, ?, ?, ?{json}, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT(org_id, identifier) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by, trigger_event = excluded.trigger_event, \
             trigger_target = excluded.trigger_target"
        ))
        .bind(&org.0)
        .bind(id)
        .bind(&saved.id)
        .bind(saved.data.to_string())
        .bind(&saved.created_at)
        .bind(&saved.created_by)
        .bind(&saved.updated_at)
        .bind(&saved.updated_by)
        .bind(automations::trigger_of(&saved.data).map(|t| t.0))
        .bind(automations::trigger_of(&saved.data).map(|t| t.1))
        .run(&mut tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(format!("action {id:?}")) } else { e.into() })?;
        let action = if old.is_some() { "UPDATE" } else { "CREATE" };
        let rec = ctx.record("action", action, id, old.as_ref().map(|o| &o.data), Some(&saved.data));
        audit::insert(&mut tx, org, &[rec]).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn action_permissions(&self, org: &OrgId, identifier: &str) -> Result<Option<Value>> {
        permission_docs::get(&self.db, Holder::Action, org, identifier).await
    }

    async fn set_action_permissions(&self, org: &OrgId, identifier: &str, doc: &Value, ctx: &AuditCtx) -> Result<()> {
        permission_docs::set(&self.db, Holder::Action, org, identifier, doc, ctx).await
    }

    async fn delete_action(&self, org: &OrgId, identifier: &str, ctx: &AuditCtx) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let Some(old) = action_for_update(&mut tx, org, &self.db.storable(identifier)).await? else {
            return Err(StoreError::NotFound(format!("action {identifier:?}")));
        };
        tx.q("DELETE FROM actions WHERE org_id = ? AND identifier = ?")
            .bind(&org.0)
            .bind(identifier)
            .execute(&mut tx)
            .await?;
        let rec = ctx.record("action", "DELETE", identifier, Some(&old.data), None);
        audit::insert(&mut tx, org, &[rec]).await?;
        tx.commit().await
    }

    async fn create_run(&self, org: &OrgId, run: &Run, job: Option<&NewJob>) -> Result<(Run, Option<Job>)> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        let rid = insert_run(db, &mut tx, org, run).await?;
        automations::record_run(&mut tx, org, None, run).await?;
        let job = match job {
            Some(j) => Some(jobs::enqueue(db, &mut tx, org, j).await?),
            None => None,
        };
        tx.commit().await?;
        let timeout_at = stored_timeout(run).map(str::to_string);
        Ok((Run { rid, timeout_at, ..run.clone() }, job))
    }

    async fn get_run(&self, org: &OrgId, id: &str) -> Result<Option<Run>> {
        let db = &self.db;
        let sql = format!("SELECT {RUN_COLUMNS} FROM action_runs WHERE org_id = ? AND id = ?");
        let row = db.q(&sql).bind(&org.0).bind(db.storable(id)).fetch_optional(db.read()).await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn list_runs(&self, org: &OrgId, filter: &RunFilter) -> Result<Vec<Run>> {
        let db = &self.db;
        let mut f = SqlFrag::new(&format!("SELECT {RUN_COLUMNS} FROM action_runs WHERE org_id = "));
        f.param(org.0.as_str());
        let eq = [
            ("action", &filter.action),
            ("blueprint", &filter.blueprint),
            ("entity", &filter.entity),
            ("external_run_id", &filter.external_run_id),
            ("created_by", &filter.created_by),
        ];
        for (col, v) in eq {
            if let Some(v) = v {
                f.push(&format!(" AND {col} = ")).param(db.storable(v).into_owned());
            }
        }
        if !filter.statuses.is_empty() {
            f.push(" AND status IN (");
            for (i, s) in filter.statuses.iter().enumerate() {
                if i > 0 {
                    f.push(", ");
                }
                f.param(s.as_str());
            }
            f.push(")");
        }
        if let Some(before) = filter.before {
            f.push(" AND rid < ").param(before);
        }
        f.push(" ORDER BY rid DESC LIMIT ").param(i64::from(filter.limit.clamp(1, 1000)));
        let rows = db.frag(&f).fetch_all(db.read()).await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn update_run(&self, org: &OrgId, id: &str, logs: &[RunLog], edit: RunEdit<'_>) -> Result<Run> {
        let mut tx = self.db.begin().await?;
        let (_, run) = edit_run(&self.db, &mut tx, org, id, logs, edit).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn update_run_or_start(
        &self,
        org: &OrgId,
        id: &str,
        logs: &[RunLog],
        edit: RunEdit<'_>,
        job: &NewJob,
    ) -> Result<(Run, Option<Job>)> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        let (old, run) = edit_run(db, &mut tx, org, id, logs, edit).await?;
        let started = old.status == "WAITING_FOR_APPROVAL" && run.status == "IN_PROGRESS";
        let job = if started { Some(jobs::enqueue(db, &mut tx, org, job).await?) } else { None };
        tx.commit().await?;
        Ok((run, job))
    }

    async fn list_run_logs(&self, org: &OrgId, id: &str, after: Option<i64>, limit: u32) -> Result<Vec<RunLog>> {
        let db = &self.db;
        let rows = db
            .q("SELECT l.id, l.at, l.message, l.termination_status, l.status_label, l.user_id FROM action_run_logs l \
                JOIN action_runs r ON r.rid = l.run_rid WHERE r.org_id = ? AND r.id = ? AND l.org_id = ? AND l.id > ? \
                ORDER BY l.id LIMIT ?")
            .bind(&org.0)
            .bind(db.storable(id))
            .bind(&org.0)
            .bind(after.unwrap_or(0))
            .bind(i64::from(limit.clamp(1, 10_000)))
            .fetch_all(db.read())
            .await?;
        Ok(rows.iter().map(log_from_row).collect())
    }

    async fn due_run_timeouts(&self, now: &str, limit: u32) -> Result<Vec<(OrgId, String)>> {
        let db = &self.db;
        let rows = db
            .q("SELECT org_id, id FROM action_runs WHERE timeout_at IS NOT NULL AND timeout_at <= ? \
                ORDER BY timeout_at, rid LIMIT ?")
            .bind(now)
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(db.read())
            .await?;
        Ok(rows.iter().map(|r| (OrgId(r.get(0)), r.get(1))).collect())
    }

    async fn last_run_log(&self, org: &OrgId, id: &str) -> Result<Option<RunLog>> {
        let db = &self.db;
        let row = db
            .q("SELECT l.id, l.at, l.message, l.termination_status, l.status_label, l.user_id FROM action_run_logs l \
                JOIN action_runs r ON r.rid = l.run_rid WHERE r.org_id = ? AND r.id = ? AND l.org_id = ? \
                ORDER BY l.id DESC LIMIT 1")
            .bind(&org.0)
            .bind(db.storable(id))
            .bind(&org.0)
            .fetch_optional(db.read())
            .await?;
        Ok(row.as_ref().map(log_from_row))
    }

    async fn claim_pending_runs(
        &self,
        org: &OrgId,
        installation_id: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Run>> {
        let db = &self.db;
        let d = db.dialect();
        let now = now(d);
        let mut f = SqlFrag::new("UPDATE action_runs SET claimed_until = ");
        push_now_plus(&mut f, d, lease);
        f.push(", installation_id = ").param(db.storable(installation_id).into_owned());
        f.push(" WHERE rid IN (SELECT rid FROM action_runs WHERE org_id = ").param(org.0.as_str());
        f.push(&format!(
            " AND pending_execution AND (claimed_until IS NULL OR claimed_until < {now}) ORDER BY rid LIMIT "
        ));
        f.param(i64::from(limit.clamp(1, MAX_CLAIM)));
        if d == Dialect::Postgres {
            f.push(" FOR UPDATE SKIP LOCKED");
        }
        f.push(&format!(") RETURNING {RUN_COLUMNS}"));
        let rows = db.frag(&f).fetch_all(db.write()).await?;
        let mut runs = rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        runs.sort_by_key(|r| r.rid);
        Ok(runs)
    }

    async fn ack_runs(&self, org: &OrgId, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let db = &self.db;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let sql = format!(
            "UPDATE action_runs SET pending_execution = FALSE WHERE org_id = ? AND pending_execution AND id{}",
            db.dialect().any_of()
        );
        db.q(&sql).bind(&org.0).bind_texts(&ids).execute(db.write()).await
    }

    async fn add_run_entities(&self, org: &OrgId, run: &str, entities: &[(String, String)], at: &str) -> Result<()> {
        if entities.is_empty() {
            return Ok(());
        }
        let db = &self.db;
        let mut tx = db.begin().await?;
        let Some(rid) = run_rid(&mut tx, org, &db.storable(run)).await? else {
            return Err(StoreError::NotFound(format!("run {run:?}")));
        };
        for (bp, id) in entities {
            tx.q("INSERT INTO action_run_entities(org_id, run_rid, blueprint, identifier, at) VALUES (?, ?, ?, ?, ?) \
                  ON CONFLICT DO NOTHING")
                .bind(&org.0)
                .bind(rid)
                .bind(db.storable(bp))
                .bind(db.storable(id))
                .bind(at)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await
    }

    async fn run_entities(&self, org: &OrgId, run: &str) -> Result<Vec<(String, String)>> {
        let db = &self.db;
        let rows = db
            .q("SELECT e.blueprint, e.identifier FROM action_run_entities e JOIN action_runs r ON r.rid = e.run_rid \
                WHERE r.org_id = ? AND r.id = ? AND e.org_id = ? ORDER BY e.at, e.blueprint, e.identifier LIMIT 10000")
            .bind(&org.0)
            .bind(db.storable(run))
            .bind(&org.0)
            .fetch_all(db.read())
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
