//! Scorecards (port-api.md §6): definitions per blueprint (audited), each entity's result per
//! scorecard (level and each rule's status), and the history of its level.
//!
//! Results are computed here, by the search compiler: for a set of entities of the blueprint,
//! one statement for the filter and one per rule (`SELECT e.identifier FROM entities e WHERE
//! <the set> AND (<compiled rule>)`), never a second evaluator. The level follows
//! [`Scorecard::level_of`]. Only what changed is written: a result whose level or rule statuses
//! differ is upserted, and a history row is appended when the level differs from the stored one
//! (an entity's first result included).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portolan_core::scorecard::Scorecard;
use portolan_core::search::Query;
use portolan_core::{Blueprint, FieldError};
use serde_json::{Value, json};

use crate::audit;
use crate::db::{Row, Tx, is_unique_violation};
use crate::entities::SearchRequest;
use crate::jobs::{self, now};
use crate::query::{CompileCtx, ScorecardDef, compile_where_in};
use crate::sql::{Dialect, SqlFrag};
use crate::ui::parse_json;
use crate::{AuditCtx, Job, NewJob, OrgId, Result, SaveMode, SqlStore, StoreError};

/// The job kind the store enqueues, in the transaction of every entity write that touches a
/// blueprint with scorecards, to recompute the written entities' results. Payload:
/// `{"blueprint": …, "entities": [identifiers]}`.
pub const SCORE_ENTITIES_JOB: &str = "scorecard_entities";

/// Rows per multi-row insert (7 parameters each).
const CHUNK: usize = 500;

/// A scorecard as stored: Port's scorecard object without the server's keys (`data`), its `id`
/// and meta.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredScorecard {
    pub blueprint: String,
    pub identifier: String,
    pub id: String,
    pub data: Value,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// What [`Scorecards::save_scorecard`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorecardWrite {
    pub blueprint: String,
    pub identifier: String,
    /// Used on create; an update keeps the stored id.
    pub id: String,
    pub data: Value,
}

/// An entity's current result in one scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorecardResult {
    pub blueprint: String,
    pub entity: String,
    pub scorecard: String,
    pub level: String,
    /// `[{identifier, status: "SUCCESS" | "FAILURE", level}]`, in the scorecard's rule order.
    pub rules: Value,
    pub updated_at: String,
}

/// One change of an entity's level (the database's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct LevelChange {
    pub level: String,
    pub at: String,
}

/// Which entities of the scorecard's blueprint [`Scorecards::score_entities`] evaluates.
#[derive(Debug, Clone, Copy)]
pub enum ScoreTargets<'a> {
    /// These identifiers (at most a few thousand); results of those that no longer exist go.
    Entities(&'a [String]),
    /// The next `limit` entities after row `after` (0: from the start), in row order. The call
    /// that reaches the end also removes results of entities that no longer exist.
    After { after: i64, limit: u32 },
}

/// What one [`Scorecards::score_entities`] call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreOutcome {
    /// Entities looked at (in the set, whether the filter kept them or not).
    pub scanned: u64,
    /// Results written or removed.
    pub changed: u64,
    /// History rows appended.
    pub level_changes: u64,
    /// For [`ScoreTargets::After`]: the row to continue after; `None` when the end was reached.
    pub next: Option<i64>,
}

#[async_trait]
pub trait Scorecards: Send + Sync {
    async fn get_scorecard(&self, org: &OrgId, bp: &str, identifier: &str) -> Result<Option<StoredScorecard>>;
    /// Scorecards of `org` (of one blueprint, or all), by blueprint and identifier.
    async fn list_scorecards(&self, org: &OrgId, bp: Option<&str>) -> Result<Vec<StoredScorecard>>;
    /// Create (`Conflict` when taken) or replace (`NotFound` when missing; id and creation meta
    /// kept) a scorecard, audited (`resourceType` scorecard), and enqueue `job` (its full
    /// recomputation), all in one transaction.
    async fn save_scorecard(
        &self,
        org: &OrgId,
        w: &ScorecardWrite,
        mode: SaveMode,
        ctx: &AuditCtx,
        job: Option<&NewJob>,
    ) -> Result<(StoredScorecard, Option<Job>)>;
    /// Delete a scorecard with its results and level history (audited).
    async fn delete_scorecard(&self, org: &OrgId, bp: &str, identifier: &str, ctx: &AuditCtx) -> Result<()>;
    /// Make `writes` the scorecards of blueprint `bp` in one transaction (Port's `PUT
    /// /v1/blueprints/{bp}/scorecards`): each is created or replaced, with its job enqueued;
    /// the blueprint's other scorecards are deleted with their results and history. Every
    /// change is audited. Answers the saved scorecards in the order given.
    async fn replace_scorecards(
        &self,
        org: &OrgId,
        bp: &str,
        writes: &[(ScorecardWrite, NewJob)],
        ctx: &AuditCtx,
    ) -> Result<Vec<StoredScorecard>>;
    /// Evaluate `sc` on `targets` with the search compiler (`blueprints` and `now` as a search
    /// has them) and store what changed, in one transaction. Computations of one scorecard are
    /// serialized (PostgreSQL: its row is locked), so a late one never overwrites a newer one.
    /// `NotFound` when the scorecard no longer exists; `Invalid` when a rule no longer compiles
    /// (path `rules[i].query…`).
    async fn score_entities(
        &self,
        org: &OrgId,
        sc: &Scorecard,
        blueprints: &HashMap<String, Blueprint>,
        now: DateTime<Utc>,
        targets: ScoreTargets<'_>,
    ) -> Result<ScoreOutcome>;
    /// The results of these `(blueprint, identifier)` entities in every scorecard, in one query.
    async fn scorecard_results(&self, org: &OrgId, entities: &[(String, String)]) -> Result<Vec<ScorecardResult>>;
    /// An entity's level changes in a scorecard, oldest first, the last `limit`.
    async fn level_history(
        &self,
        org: &OrgId,
        bp: &str,
        entity: &str,
        scorecard: &str,
        limit: u32,
    ) -> Result<Vec<LevelChange>>;
}

const COLUMNS: &str = "blueprint, identifier, id, CAST(data AS TEXT) AS data, created_at, created_by, updated_at, \
     updated_by FROM scorecards";

fn from_row(r: &Row) -> Result<StoredScorecard> {
    Ok(StoredScorecard {
        blueprint: r.get("blueprint"),
        identifier: r.get("identifier"),
        id: r.get("id"),
        data: parse_json("scorecard", &r.get::<String, _>("data"))?,
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        updated_at: r.get("updated_at"),
        updated_by: r.get("updated_by"),
    })
}

async fn for_update(tx: &mut Tx, org: &OrgId, bp: &str, id: &str) -> Result<Option<StoredScorecard>> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} WHERE org_id = ? AND blueprint = ? AND identifier = ?{lock}");
    let old = tx.q(&sql).bind(&org.0).bind(bp).bind(id).fetch_optional(&mut *tx).await?;
    old.as_ref().map(from_row).transpose()
}

/// Create or replace one scorecard in `tx`, audited. `mode`: `Create` fails with `Conflict`
/// when it exists, `Update` with `NotFound` when it does not; `None` does either.
async fn save_in(
    tx: &mut Tx,
    org: &OrgId,
    w: &ScorecardWrite,
    mode: Option<SaveMode>,
    ctx: &AuditCtx,
) -> Result<StoredScorecard> {
    let (bp, id) = (w.blueprint.as_str(), w.identifier.as_str());
    let old = for_update(tx, org, bp, id).await?;
    match (mode, &old) {
        (Some(SaveMode::Create), Some(_)) => return Err(StoreError::Conflict(format!("scorecard {id:?}"))),
        (Some(SaveMode::Update), None) => return Err(StoreError::NotFound(format!("scorecard {id:?}"))),
        _ => {}
    }
    let saved = StoredScorecard {
        blueprint: bp.to_string(),
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
        "INSERT INTO scorecards(org_id, blueprint, identifier, id, data, created_at, created_by, updated_at, \
         updated_by) VALUES (?, ?, ?, ?, ?{json}, ?, ?, ?, ?) ON CONFLICT(org_id, blueprint, identifier) DO UPDATE \
         SET data = excluded.data, updated_at = excluded.updated_at, updated_by = excluded.updated_by"
    ))
    .bind(&org.0)
    .bind(bp)
    .bind(id)
    .bind(&saved.id)
    .bind(saved.data.to_string())
    .bind(&saved.created_at)
    .bind(&saved.created_by)
    .bind(&saved.updated_at)
    .bind(&saved.updated_by)
    .run(&mut *tx)
    .await
    .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(format!("scorecard {id:?}")) } else { e.into() })?;
    let action = if old.is_some() { "UPDATE" } else { "CREATE" };
    let mut rec = ctx.record("scorecard", action, id, old.as_ref().map(|o| &o.data), Some(&saved.data));
    rec.blueprint = Some(bp.to_string());
    audit::insert(tx, org, &[rec]).await?;
    Ok(saved)
}

/// Delete one scorecard with its results and level history in `tx`, audited.
async fn delete_in(tx: &mut Tx, org: &OrgId, bp: &str, identifier: &str, ctx: &AuditCtx) -> Result<()> {
    let Some(old) = for_update(tx, org, bp, identifier).await? else {
        return Err(StoreError::NotFound(format!("scorecard {identifier:?}")));
    };
    for table in ["scorecard_results", "scorecard_level_history", "scorecards"] {
        let key = if table == "scorecards" { "identifier" } else { "scorecard" };
        tx.q(&format!("DELETE FROM {table} WHERE org_id = ? AND blueprint = ? AND {key} = ?"))
            .bind(&org.0)
            .bind(bp)
            .bind(identifier)
            .execute(&mut *tx)
            .await?;
    }
    let mut rec = ctx.record("scorecard", "DELETE", identifier, Some(&old.data), None);
    rec.blueprint = Some(bp.to_string());
    audit::insert(tx, org, &[rec]).await
}

/// The organization's blueprints that have scorecards (one parameter, the organization).
pub(crate) const SCORED_SQL: &str = "SELECT DISTINCT blueprint FROM scorecards WHERE org_id = ?";

/// Enqueue, in the write's transaction, one [`SCORE_ENTITIES_JOB`] per written blueprint that
/// has scorecards (`scored`, read in the same transaction: [`SCORED_SQL`], in
/// `entities::OrgWrites`). Whether it queued any.
pub(crate) async fn enqueue_scored(
    db: &crate::db::Db,
    tx: &mut Tx,
    org: &OrgId,
    written: &[(&str, &str)],
    scored: &HashSet<String>,
) -> Result<bool> {
    let mut bps: Vec<&str> = written.iter().map(|(b, _)| *b).filter(|b| scored.contains(*b)).collect();
    bps.sort_unstable();
    bps.dedup();
    let queued = !bps.is_empty();
    for bp in bps {
        let ids: Vec<&str> = written.iter().filter(|(b, _)| *b == bp).map(|(_, i)| *i).collect();
        let job = NewJob {
            kind: SCORE_ENTITIES_JOB.into(),
            payload: json!({"blueprint": bp, "entities": ids}),
            max_attempts: 5,
        };
        jobs::enqueue(db, &mut *tx, org, &job).await?;
    }
    Ok(queued)
}

fn compile(q: &Query, cctx: &CompileCtx<'_>, bp: &str, path: &str) -> Result<SqlFrag> {
    compile_where_in(q, cctx, Some(bp))
        .map_err(|e| StoreError::Invalid(FieldError::new(join(path, &e.path), e.message)))
}

fn join(a: &str, b: &str) -> String {
    portolan_core::error::join_path(a, b)
}

/// `e.org_id = ? AND e.blueprint = ? AND e.identifier IN (…)`.
fn scope(org: &OrgId, bp: &str, ids: &[String]) -> SqlFrag {
    let mut f = SqlFrag::new("e.org_id = ");
    f.param(org.0.as_str()).push(" AND e.blueprint = ").param(bp).push(" AND e.identifier IN (");
    f.param_list(ids.iter().map(String::as_str)).push(")");
    f
}

/// Identifiers of the entities of `scope` matching `cond`.
async fn matching(tx: &mut Tx, scope: &SqlFrag, cond: SqlFrag) -> Result<HashSet<String>> {
    let mut f = SqlFrag::new("SELECT e.identifier FROM entities e WHERE ");
    f.append(scope.clone()).push(" AND (").append(cond).push(")");
    let rows = tx.frag(&f).fetch_all(&mut *tx).await?;
    Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
}

#[async_trait]
impl Scorecards for SqlStore {
    async fn get_scorecard(&self, org: &OrgId, bp: &str, identifier: &str) -> Result<Option<StoredScorecard>> {
        let db = &self.db;
        let sql = format!("SELECT {COLUMNS} WHERE org_id = ? AND blueprint = ? AND identifier = ?");
        let row = db
            .q(&sql)
            .bind(&org.0)
            .bind(db.storable(bp))
            .bind(db.storable(identifier))
            .fetch_optional(db.read())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn list_scorecards(&self, org: &OrgId, bp: Option<&str>) -> Result<Vec<StoredScorecard>> {
        let db = &self.db;
        let mut f = SqlFrag::new(&format!("SELECT {COLUMNS} WHERE org_id = "));
        f.param(org.0.as_str());
        if let Some(bp) = bp {
            f.push(" AND blueprint = ").param(db.storable(bp).into_owned());
        }
        f.push(" ORDER BY blueprint, identifier");
        let rows = db.frag(&f).fetch_all(db.read()).await?;
        rows.iter().map(from_row).collect()
    }

    async fn save_scorecard(
        &self,
        org: &OrgId,
        w: &ScorecardWrite,
        mode: SaveMode,
        ctx: &AuditCtx,
        job: Option<&NewJob>,
    ) -> Result<(StoredScorecard, Option<Job>)> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        let saved = save_in(&mut tx, org, w, Some(mode), ctx).await?;
        let job = match job {
            Some(j) => Some(jobs::enqueue(db, &mut tx, org, j).await?),
            None => None,
        };
        tx.commit().await?;
        Ok((saved, job))
    }

    async fn delete_scorecard(&self, org: &OrgId, bp: &str, identifier: &str, ctx: &AuditCtx) -> Result<()> {
        let db = &self.db;
        let (bp, identifier) = (db.storable(bp), db.storable(identifier));
        let mut tx = db.begin().await?;
        delete_in(&mut tx, org, &bp, &identifier, ctx).await?;
        tx.commit().await
    }

    async fn replace_scorecards(
        &self,
        org: &OrgId,
        bp: &str,
        writes: &[(ScorecardWrite, NewJob)],
        ctx: &AuditCtx,
    ) -> Result<Vec<StoredScorecard>> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
        let sql = format!("SELECT identifier FROM scorecards WHERE org_id = ? AND blueprint = ?{lock}");
        let rows = tx.q(&sql).bind(&org.0).bind(bp).fetch_all(&mut tx).await?;
        let mut out = Vec::with_capacity(writes.len());
        for (w, job) in writes {
            if w.blueprint != bp {
                return Err(StoreError::Invalid(FieldError::new("blueprint", format!("must be {bp:?}"))));
            }
            out.push(save_in(&mut tx, org, w, None, ctx).await?);
            jobs::enqueue(db, &mut tx, org, job).await?;
        }
        for r in &rows {
            let id: String = r.get("identifier");
            if !writes.iter().any(|(w, _)| w.identifier == id) {
                delete_in(&mut tx, org, bp, &id, ctx).await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn score_entities(
        &self,
        org: &OrgId,
        sc: &Scorecard,
        blueprints: &HashMap<String, Blueprint>,
        now_at: DateTime<Utc>,
        targets: ScoreTargets<'_>,
    ) -> Result<ScoreOutcome> {
        let db = &self.db;
        let d = db.dialect();
        let bp = sc.blueprint.as_str();
        let cctx = CompileCtx::internal(&org.0, now_at, blueprints, d);
        let filter = sc.filter.as_ref().map(|f| compile(f, &cctx, bp, "filter")).transpose()?;
        let rules = sc
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile(&r.query, &cctx, bp, &format!("rules[{i}].query")))
            .collect::<Result<Vec<_>>>()?;

        let mut tx = db.begin().await?;
        if for_update(&mut tx, org, bp, &sc.identifier).await?.is_none() {
            return Err(StoreError::NotFound(format!("scorecard {:?}", sc.identifier)));
        }
        let mut out = ScoreOutcome::default();
        // The set: identifiers that exist now.
        // A full pass's chunk is a row range; scoping the rule statements by it (an index
        // condition on `entities_blueprint_rid`) keeps PostgreSQL from planning them, on tables
        // never analyzed, as a scan of the whole blueprint filtered by an identifier list.
        let mut rid_range: Option<(i64, i64)> = None;
        let (ids, gone): (Vec<String>, Vec<String>) = match targets {
            ScoreTargets::Entities(wanted) => {
                if wanted.is_empty() {
                    return Ok(out);
                }
                let mut f = SqlFrag::new("SELECT e.identifier FROM entities e WHERE ");
                f.append(scope(org, bp, wanted));
                let found: HashSet<String> =
                    tx.frag(&f).fetch_all(&mut tx).await?.iter().map(|r| r.get::<String, _>(0)).collect();
                let gone = wanted.iter().filter(|w| !found.contains(*w)).cloned().collect();
                (wanted.iter().filter(|w| found.contains(*w)).cloned().collect(), gone)
            }
            ScoreTargets::After { after, limit } => {
                let limit = limit.clamp(1, 5000);
                let rows = tx
                    .q("SELECT e.rid, e.identifier FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.rid > ? \
                        ORDER BY e.rid LIMIT ?")
                    .bind(&org.0)
                    .bind(bp)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&mut tx)
                    .await?;
                out.next = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.get::<i64, _>(0))).flatten();
                rid_range = rows.last().map(|r| (after, r.get::<i64, _>(0)));
                (rows.iter().map(|r| r.get::<String, _>(1)).collect(), Vec::new())
            }
        };
        out.scanned = ids.len() as u64;

        let mut remove: Vec<String> = gone;
        let mut upserts: Vec<(String, String, String)> = Vec::new(); // (entity, level, rules json)
        let mut changes: Vec<(String, String)> = Vec::new(); // (entity, level)
        if !ids.is_empty() {
            let scope = match rid_range {
                Some((after, last)) => {
                    let mut f = SqlFrag::new("e.org_id = ");
                    f.param(org.0.as_str()).push(" AND e.blueprint = ").param(bp);
                    f.push(" AND e.rid > ").param(after).push(" AND e.rid <= ").param(last);
                    f
                }
                None => scope(org, bp, &ids),
            };
            let kept = match filter {
                Some(f) => matching(&mut tx, &scope, f).await?,
                None => ids.iter().cloned().collect(),
            };
            let mut passed = Vec::with_capacity(rules.len());
            for r in rules {
                passed.push(matching(&mut tx, &scope, r).await?);
            }
            let mut f =
                SqlFrag::new("SELECT entity, level, CAST(rules AS TEXT) FROM scorecard_results WHERE org_id = ");
            f.param(org.0.as_str()).push(" AND blueprint = ").param(bp).push(" AND scorecard = ");
            f.param(sc.identifier.as_str()).push(" AND entity IN (");
            f.param_list(ids.iter().map(String::as_str)).push(")");
            let stored: HashMap<String, (String, String)> =
                tx.frag(&f).fetch_all(&mut tx).await?.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
            for id in &ids {
                if !kept.contains(id) {
                    if stored.contains_key(id) {
                        remove.push(id.clone());
                    }
                    continue;
                }
                let ok: Vec<bool> = passed.iter().map(|p| p.contains(id)).collect();
                let level = sc.level_of(&ok).to_string();
                let statuses: Vec<Value> = sc
                    .rules
                    .iter()
                    .zip(&ok)
                    .map(|(r, ok)| {
                        json!({"identifier": r.identifier, "status": if *ok { "SUCCESS" } else { "FAILURE" },
                               "level": r.level})
                    })
                    .collect();
                let rules_json = Value::Array(statuses);
                let prev = stored.get(id);
                let same_rules =
                    prev.is_some_and(|(_, r)| serde_json::from_str::<Value>(r).ok().as_ref() == Some(&rules_json));
                if prev.is_none_or(|(l, _)| *l != level) {
                    changes.push((id.clone(), level.clone()));
                }
                if !(same_rules && prev.is_some_and(|(l, _)| *l == level)) {
                    upserts.push((id.clone(), level, rules_json.to_string()));
                }
            }
        }
        let ts = now(d);
        let json = d.json_cast();
        for chunk in upserts.chunks(CHUNK) {
            let mut f = SqlFrag::new(
                "INSERT INTO scorecard_results(org_id, blueprint, entity, scorecard, level, rules, updated_at) VALUES ",
            );
            for (i, (e, level, rules)) in chunk.iter().enumerate() {
                f.push(if i == 0 { "(" } else { ", (" });
                f.param(org.0.as_str()).push(", ").param(bp).push(", ").param(e.as_str()).push(", ");
                f.param(sc.identifier.as_str()).push(", ").param(level.as_str()).push(", ").param(rules.as_str());
                f.push(&format!("{json}, {ts})"));
            }
            f.push(
                " ON CONFLICT(org_id, blueprint, entity, scorecard) DO UPDATE SET level = excluded.level, \
                 rules = excluded.rules, updated_at = excluded.updated_at",
            );
            tx.frag(&f).execute(&mut tx).await?;
        }
        for chunk in changes.chunks(CHUNK) {
            let mut f = SqlFrag::new(
                "INSERT INTO scorecard_level_history(org_id, blueprint, entity, scorecard, level, at) VALUES ",
            );
            for (i, (e, level)) in chunk.iter().enumerate() {
                f.push(if i == 0 { "(" } else { ", (" });
                f.param(org.0.as_str()).push(", ").param(bp).push(", ").param(e.as_str()).push(", ");
                f.param(sc.identifier.as_str()).push(", ").param(level.as_str()).push(&format!(", {ts})"));
            }
            tx.frag(&f).execute(&mut tx).await?;
        }
        for chunk in remove.chunks(CHUNK) {
            let mut f = SqlFrag::new("DELETE FROM scorecard_results WHERE org_id = ");
            f.param(org.0.as_str()).push(" AND blueprint = ").param(bp).push(" AND scorecard = ");
            f.param(sc.identifier.as_str()).push(" AND entity IN (");
            f.param_list(chunk.iter().map(String::as_str)).push(")");
            out.changed += tx.frag(&f).execute(&mut tx).await?;
        }
        if matches!(targets, ScoreTargets::After { .. }) && out.next.is_none() {
            // The end of a full pass: results of entities deleted since. On PostgreSQL this
            // anti-join over the whole blueprint must not be a nested loop: on tables never
            // analyzed (a fresh database after its first load) the planner estimates both sides
            // at a row or two and probes the blueprint's every entity for every result — 100k ×
            // 100k, minutes. Without nested loops it is a merge or hash anti-join, ~0.2 s at
            // 100k whatever the statistics (`SET LOCAL`: this transaction only; the statement is
            // its last).
            if tx.dialect() == Dialect::Postgres {
                tx.q("SET LOCAL enable_nestloop = off").execute(&mut tx).await?;
            }
            out.changed += tx
                .q("DELETE FROM scorecard_results WHERE org_id = ? AND blueprint = ? AND scorecard = ? AND NOT EXISTS \
                    (SELECT 1 FROM entities e WHERE e.org_id = scorecard_results.org_id AND \
                    e.blueprint = scorecard_results.blueprint AND e.identifier = scorecard_results.entity)")
                .bind(&org.0)
                .bind(bp)
                .bind(&sc.identifier)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        out.changed += upserts.len() as u64;
        out.level_changes = changes.len() as u64;
        Ok(out)
    }

    async fn scorecard_results(&self, org: &OrgId, entities: &[(String, String)]) -> Result<Vec<ScorecardResult>> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        let db = &self.db;
        let mut out = Vec::new();
        let mut by_bp: HashMap<&str, Vec<&str>> = HashMap::new();
        for (b, e) in entities {
            by_bp.entry(b.as_str()).or_default().push(e.as_str());
        }
        // One statement: each blueprint's identifiers as one bound list.
        let mut f = SqlFrag::new(
            "SELECT blueprint, entity, scorecard, level, CAST(rules AS TEXT), updated_at FROM scorecard_results \
             WHERE org_id = ",
        );
        f.param(org.0.as_str()).push(" AND (");
        let mut bps: Vec<_> = by_bp.into_iter().collect();
        bps.sort();
        for (i, (b, ids)) in bps.iter().enumerate() {
            if i > 0 {
                f.push(" OR ");
            }
            f.push("(blueprint = ").param(*b).push(" AND entity IN (");
            f.param_list(ids.iter().copied()).push("))");
        }
        f.push(") ORDER BY blueprint, entity, scorecard");
        for r in db.frag(&f).fetch_all(db.read()).await? {
            out.push(ScorecardResult {
                blueprint: r.get(0),
                entity: r.get(1),
                scorecard: r.get(2),
                level: r.get(3),
                rules: parse_json("scorecard result", &r.get::<String, _>(4))?,
                updated_at: r.get(5),
            });
        }
        Ok(out)
    }

    async fn level_history(
        &self,
        org: &OrgId,
        bp: &str,
        entity: &str,
        scorecard: &str,
        limit: u32,
    ) -> Result<Vec<LevelChange>> {
        let db = &self.db;
        let rows = db
            .q("SELECT level, at FROM scorecard_level_history WHERE org_id = ? AND blueprint = ? AND entity = ? \
                AND scorecard = ? ORDER BY id DESC LIMIT ?")
            .bind(&org.0)
            .bind(db.storable(bp))
            .bind(db.storable(entity))
            .bind(db.storable(scorecard))
            .bind(i64::from(limit.clamp(1, 10_000)))
            .fetch_all(db.read())
            .await?;
        let mut out: Vec<LevelChange> = rows.iter().map(|r| LevelChange { level: r.get(0), at: r.get(1) }).collect();
        out.reverse();
        Ok(out)
    }
}

impl SqlStore {
    /// The organization's scorecards as the search compiler needs them, when `req`'s query
    /// has scorecard rules (`None` otherwise: no query is spent).
    pub(crate) async fn scorecard_defs(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
    ) -> Result<Option<Vec<ScorecardDef>>> {
        self.scorecard_defs_if(org, req.query.is_some_and(Query::uses_scorecards)).await
    }

    /// The organization's scorecards for the search compiler when `needed` (`None` otherwise).
    pub(crate) async fn scorecard_defs_if(&self, org: &OrgId, needed: bool) -> Result<Option<Vec<ScorecardDef>>> {
        if !needed {
            return Ok(None);
        }
        let stored = self.list_scorecards(org, None).await?;
        Ok(Some(stored.iter().map(|s| ScorecardDef::from_json(&s.blueprint, &s.identifier, &s.data)).collect()))
    }
}
