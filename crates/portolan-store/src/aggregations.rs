//! Aggregation properties (port-api.md §1.7): each entity's computed value per aggregation
//! property of its blueprint (`aggregation_values`), computed here with SQL aggregates over the
//! target entities the search compiler selects (`query::summary_select`: the relation walk of
//! `relatedTo`, or `matchAny` for a `pathFilter`, and the aggregation's `query`), finished by
//! [`portolan_core::aggregation::finish`]. Only changed values are written.
//!
//! Upkeep is durable jobs, enqueued in the transactions that change what a value depends on:
//! - every entity write and delete enqueues [`AGGREGATE_ENTITIES_JOB`] (when the organization
//!   has an aggregation property at all) naming the *seeds*: the written entities, the
//!   targets their relations no longer point at, and, for a delete, the deleted entities'
//!   neighbours. Its handler asks [`Aggregations::aggregating_entities`] which
//!   entities may have changed (those of blueprints with aggregation properties among the
//!   seeds or related to them) and recomputes those.
//! - a blueprint save that changes its aggregation properties enqueues
//!   [`AGGREGATE_RECOMPUTE_JOB`] (unless one for that blueprint is queued and not started).

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portolan_core::aggregation::{Aggregation, Func, Summary, finish, median_of_middle};
use portolan_core::search::{Combinator, Query, RelatedTo, parse_timestamp};
use portolan_core::{Blueprint, FieldError};
use serde_json::json;

use crate::db::{Db, Tx};
use crate::jobs::{self, now};
use crate::query::{CompileCtx, middle_select, related_identifiers, summary_select};
use crate::sql::{Dialect, SqlFrag};
use crate::{NewJob, OrgId, Result, SqlStore, StoreError};

/// The job kind entity writes and deletes enqueue. Payload: `{"seeds": [[blueprint, id]…]}`.
pub const AGGREGATE_ENTITIES_JOB: &str = "aggregation_entities";
/// The job kind a blueprint save enqueues. Payload: `{"blueprint": …}`.
pub const AGGREGATE_RECOMPUTE_JOB: &str = "aggregation_recompute";

/// Rows per multi-row statement.
const CHUNK: usize = 500;
/// At most this many aggregating entities are reported per blueprint by one
/// [`Aggregations::aggregating_entities`] call; beyond it the caller recomputes the blueprint.
pub const MAX_AFFECTED: usize = 10_000;

/// An entity's computed value of one aggregation property.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregationValue {
    pub blueprint: String,
    pub entity: String,
    pub property: String,
    /// `None`: no value (min, max, median or a property average of no values).
    pub value: Option<f64>,
}

/// Which entities of a blueprint [`Aggregations::compute_aggregations`] computes.
#[derive(Debug, Clone, Copy)]
pub enum AggregateTargets<'a> {
    /// These identifiers (values of those that no longer exist go).
    Entities(&'a [String]),
    /// The next `limit` entities after row `after` (0: from the start). The call that reaches
    /// the end also removes values of deleted entities and of properties the blueprint no
    /// longer has.
    After { after: i64, limit: u32 },
}

/// What one [`Aggregations::compute_aggregations`] call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregateOutcome {
    pub scanned: u64,
    /// Values written or removed.
    pub changed: u64,
    /// For [`AggregateTargets::After`]: the row to continue after; `None` at the end.
    pub next: Option<i64>,
    /// Aggregation properties that could not be computed (`aggregationProperties.<id>…: why`);
    /// their stored values are left as they are.
    pub invalid: Vec<String>,
}

/// Which entities a change of some entities (the seeds) may have changed the values of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Affected {
    /// Identifiers by blueprint (blueprints with aggregation properties).
    pub entities: BTreeMap<String, Vec<String>>,
    /// Blueprints with more than [`MAX_AFFECTED`] such entities: recompute them whole.
    pub whole: Vec<String>,
}

#[async_trait]
pub trait Aggregations: Send + Sync {
    /// Compute blueprint `bp`'s aggregation properties (as `blueprints` has them) for `targets`
    /// on the read pool and store the values that changed in one short transaction; a value is
    /// only replaced by one computed from a later snapshot, so a late computation never
    /// overwrites a newer one. `now`: for the time averages.
    async fn compute_aggregations(
        &self,
        org: &OrgId,
        bp: &str,
        blueprints: &HashMap<String, Blueprint>,
        now: DateTime<Utc>,
        targets: AggregateTargets<'_>,
    ) -> Result<AggregateOutcome>;
    /// The entities of blueprints with aggregation properties that are among `seeds` or related
    /// to one (any relation path, either direction, up to the search language's hop limit).
    async fn aggregating_entities(
        &self,
        org: &OrgId,
        seeds: &[(String, String)],
        blueprints: &HashMap<String, Blueprint>,
    ) -> Result<Affected>;
    /// The stored values of these `(blueprint, identifier)` entities, in one query.
    async fn aggregation_values(&self, org: &OrgId, entities: &[(String, String)]) -> Result<Vec<AggregationValue>>;
    /// Blueprint `bp`'s aggregation properties of entities `ids`, computed now over only the
    /// targets `visible` admits (a reader's read restriction, ANDed with each aggregation's
    /// `query`): what a reader who may not read every target sees. Not stored; one statement
    /// per entity and property (two for a median). An aggregation that no longer compiles has
    /// no value.
    async fn aggregation_values_visible(
        &self,
        org: &OrgId,
        bp: &str,
        ids: &[String],
        blueprints: &HashMap<String, Blueprint>,
        now: DateTime<Utc>,
        visible: &Query,
    ) -> Result<Vec<AggregationValue>>;
}

/// The condition on a `blueprints` row that it has aggregation properties (writes and deletes
/// ask once per transaction whether any blueprint meets it, and do nothing more for aggregations
/// when none does).
pub(crate) fn aggregating(d: Dialect) -> &'static str {
    match d {
        // Set from the body when it is written (migration 0035).
        Dialect::Sqlite => "aggregates <> 0",
        Dialect::Postgres => "aggregates",
    }
}

/// Seeds one coalesced [`AGGREGATE_ENTITIES_JOB`] may hold; beyond it a new job is enqueued.
pub const MAX_JOB_SEEDS: usize = 10_000;

/// Enqueue, in a write's or delete's transaction, an [`AGGREGATE_ENTITIES_JOB`] for `seeds`
/// (callers ask `entities::OrgWrites` first) — or add them to the organization's one that is
/// queued and not yet claimed, while it holds at most [`MAX_JOB_SEEDS`]: a burst of writes
/// becomes one recomputation of each affected entity, not one per write. Whether a job got
/// work (queued here, or added to one queued).
pub(crate) async fn enqueue_for_seeds(db: &Db, tx: &mut Tx, org: &OrgId, seeds: &[(String, String)]) -> Result<bool> {
    if seeds.is_empty() {
        return Ok(false);
    }
    let d = tx.dialect();
    let lock = if d == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let pending = tx
        .q(&format!(
            "SELECT CAST(id AS BIGINT), CAST(payload AS TEXT) FROM jobs WHERE status = 'queued' AND org_id = ? \
             AND kind = ? AND attempts = 0 ORDER BY id DESC LIMIT 1{lock}"
        ))
        .bind(&org.0)
        .bind(AGGREGATE_ENTITIES_JOB)
        .fetch_optional(&mut *tx)
        .await?;
    let mut all: Vec<(String, String)> = seeds.to_vec();
    let mut into = None;
    if let Some(r) = pending {
        let payload: serde_json::Value = serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default();
        let queued: Vec<(String, String)> = serde_json::from_value(payload["seeds"].clone()).unwrap_or_default();
        if queued.len() + seeds.len() <= MAX_JOB_SEEDS {
            all.extend(queued);
            into = Some(r.get::<i64, _>(0));
        }
    }
    all.sort();
    all.dedup();
    let payload = json!({"seeds": all});
    if let Some(id) = into {
        let updated = tx
            .q(&format!(
                "UPDATE jobs SET payload = ?{}, updated_at = {} WHERE id = ? AND status = 'queued' AND attempts = 0",
                d.jsonb_cast(),
                now(d)
            ))
            .bind(payload.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if updated == 1 {
            return Ok(true);
        }
    }
    let job = NewJob { kind: AGGREGATE_ENTITIES_JOB.into(), payload, max_attempts: 5 };
    jobs::enqueue(db, &mut *tx, org, &job).await?;
    Ok(true)
}

/// The relation targets of an entity's `relations` JSON, `(relation, blueprint, id)`, given
/// the blueprint's relation targets.
pub(crate) fn relation_seeds(
    relations: &serde_json::Map<String, serde_json::Value>,
    targets: &HashMap<String, String>,
    out: &mut Vec<(String, String, String)>,
) {
    for (rel, v) in relations {
        let Some(bp) = targets.get(rel) else { continue };
        let ids: Vec<&str> = match v {
            serde_json::Value::String(s) => vec![s.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
            _ => vec![],
        };
        out.extend(ids.into_iter().map(|id| (rel.clone(), bp.clone(), id.to_string())));
    }
}

/// `relation id → target blueprint` of each of `bps`, read in `tx` (for [`relation_seeds`]).
pub(crate) async fn relation_targets(
    tx: &mut Tx,
    org: &OrgId,
    bps: &[&str],
) -> Result<HashMap<String, HashMap<String, String>>> {
    let mut out = HashMap::new();
    if bps.is_empty() {
        return Ok(out);
    }
    let mut f = SqlFrag::new("SELECT identifier, CAST(body AS TEXT) FROM blueprints WHERE org_id = ");
    f.param(org.0.as_str()).push(" AND identifier IN (").param_list(bps.iter().copied()).push(")");
    for r in tx.frag(&f).fetch_all(&mut *tx).await? {
        let id: String = r.get(0);
        let body: serde_json::Value = serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default();
        let rels = body
            .get("relations")
            .and_then(|v| v.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.get("target")?.as_str()?.to_string())))
                    .collect::<HashMap<_, _>>()
            })
            .unwrap_or_default();
        out.insert(id, rels);
    }
    Ok(out)
}

/// In a blueprint save's transaction: when its aggregation properties changed, drop the values
/// of those it no longer has and enqueue [`AGGREGATE_RECOMPUTE_JOB`] — unless one for the
/// blueprint is queued and not started (it will read the new definitions).
pub(crate) async fn on_blueprint_saved(
    db: &Db,
    tx: &mut Tx,
    org: &OrgId,
    before: Option<&Blueprint>,
    after: &Blueprint,
) -> Result<()> {
    let old = before.map(|b| &b.aggregation_properties);
    if old == Some(&after.aggregation_properties) || (old.is_none() && after.aggregation_properties.is_empty()) {
        return Ok(());
    }
    let bp = after.identifier.as_str();
    let mut f = SqlFrag::new("DELETE FROM aggregation_values WHERE org_id = ");
    f.param(org.0.as_str()).push(" AND blueprint = ").param(bp);
    if !after.aggregation_properties.is_empty() {
        f.push(" AND property NOT IN (").param_list(after.aggregation_properties.keys().map(String::as_str)).push(")");
    }
    tx.frag(&f).execute(&mut *tx).await?;
    if after.aggregation_properties.is_empty() {
        return Ok(());
    }
    let of_bp = match tx.dialect() {
        Dialect::Sqlite => "json_extract(payload, '$.blueprint') = ?",
        Dialect::Postgres => "payload ->> 'blueprint' = ?",
    };
    let queued = tx
        .q(&format!(
            "SELECT 1 FROM jobs WHERE status = 'queued' AND org_id = ? AND kind = ? AND progress IS NULL AND {of_bp}"
        ))
        .bind(&org.0)
        .bind(AGGREGATE_RECOMPUTE_JOB)
        .bind(bp)
        .fetch_optional(&mut *tx)
        .await?;
    if queued.is_none() {
        let job = NewJob { kind: AGGREGATE_RECOMPUTE_JOB.into(), payload: json!({"blueprint": bp}), max_attempts: 5 };
        jobs::enqueue(db, &mut *tx, org, &job).await?;
    }
    Ok(())
}

/// Drop the values of deleted entities (in the delete's transaction).
pub(crate) async fn forget(tx: &mut Tx, org: &OrgId, deleted: &[(String, String)]) -> Result<()> {
    let mut by_bp: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (b, i) in deleted {
        by_bp.entry(b.as_str()).or_default().push(i.as_str());
    }
    for (bp, ids) in by_bp {
        for chunk in ids.chunks(CHUNK) {
            let mut f = SqlFrag::new("DELETE FROM aggregation_values WHERE org_id = ");
            f.param(org.0.as_str()).push(" AND blueprint = ").param(bp).push(" AND entity IN (");
            f.param_list(chunk.iter().copied()).push(")");
            tx.frag(&f).execute(&mut *tx).await?;
        }
    }
    Ok(())
}

/// The value of `agg` for entity `owner`, read on the read pool; `Ok(Err(_))` when the
/// aggregation does not compile (its `query` or `pathFilter` names what the blueprints do not
/// have).
async fn value_of(
    db: &Db,
    agg: &Aggregation,
    owner: (&str, &str),
    cctx: &CompileCtx<'_>,
) -> Result<std::result::Result<Option<f64>, FieldError>> {
    let f = match summary_select(agg, owner, cctx) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let row = db.frag(&f).fetch_one(db.read()).await?;
    let values = u64::try_from(row.get::<i64, _>(4)).unwrap_or(0);
    let mut s = Summary {
        entities: u64::try_from(row.get::<i64, _>(0)).unwrap_or(0),
        values,
        sum: row.get::<Option<f64>, _>(1).unwrap_or(0.0),
        min: row.get(2),
        max: row.get(3),
        median: None,
        earliest: row.get::<Option<String>, _>(5).as_deref().and_then(parse_timestamp),
    };
    if agg.func == Func::Median && values > 0 {
        let f = match middle_select(agg, owner, cctx, (values - 1) / 2) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let rows = db.frag(&f).fetch_all(db.read()).await?;
        let mid: Vec<f64> = rows.iter().map(|r| r.get::<f64, _>(0)).collect();
        s.median = median_of_middle(values, mid.first().copied(), mid.get(1).copied());
    }
    Ok(Ok(finish(agg, &s, cctx.now)))
}

#[async_trait]
impl Aggregations for SqlStore {
    async fn compute_aggregations(
        &self,
        org: &OrgId,
        bp: &str,
        blueprints: &HashMap<String, Blueprint>,
        now_at: DateTime<Utc>,
        targets: AggregateTargets<'_>,
    ) -> Result<AggregateOutcome> {
        let db = &self.db;
        let d = db.dialect();
        let mut out = AggregateOutcome::default();
        let aggs = blueprints.get(bp).map(Aggregation::of_blueprint).unwrap_or_default();
        let cctx = CompileCtx::internal(&org.0, now_at, blueprints, d);
        // The snapshot: everything below is read after this instant (the database's clock), on
        // the read pool — no lock is held while computing. Values are written with it as
        // `computed_at`, and a stored value is replaced only by one of a later snapshot, so a
        // computation that read before a write can never overwrite one that read after it.
        let snapshot: String = db.q(&format!("SELECT {}", now(d))).fetch_one(db.read()).await?.get(0);
        let (ids, gone): (Vec<String>, Vec<String>) = match targets {
            AggregateTargets::Entities(wanted) => {
                let wanted: Vec<&String> = wanted.iter().filter(|w| !db.refuses(w)).collect();
                if wanted.is_empty() || db.refuses(bp) {
                    return Ok(out);
                }
                let mut found = HashSet::new();
                for chunk in wanted.chunks(CHUNK) {
                    let mut f = SqlFrag::new("SELECT e.identifier FROM entities e WHERE e.org_id = ");
                    f.param(org.0.as_str()).push(" AND e.blueprint = ").param(bp).push(" AND e.identifier IN (");
                    f.param_list(chunk.iter().map(|s| s.as_str())).push(")");
                    found.extend(db.frag(&f).fetch_all(db.read()).await?.iter().map(|r| r.get::<String, _>(0)));
                }
                let gone = wanted.iter().filter(|w| !found.contains(**w)).map(|w| (*w).clone()).collect();
                (wanted.into_iter().filter(|w| found.contains(*w)).cloned().collect(), gone)
            }
            AggregateTargets::After { after, limit } => {
                let limit = limit.clamp(1, 5000);
                let rows = db
                    .q("SELECT e.rid, e.identifier FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.rid > ? \
                        ORDER BY e.rid LIMIT ?")
                    .bind(&org.0)
                    .bind(bp)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(db.read())
                    .await?;
                out.next = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.get::<i64, _>(0))).flatten();
                (rows.iter().map(|r| r.get::<String, _>(1)).collect(), Vec::new())
            }
        };
        out.scanned = ids.len() as u64;

        // Stored values of these entities, to write only what changed.
        let mut stored: HashMap<(String, String), Option<f64>> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let mut f = SqlFrag::new("SELECT entity, property, value FROM aggregation_values WHERE org_id = ");
            f.param(org.0.as_str()).push(" AND blueprint = ").param(bp).push(" AND entity IN (");
            f.param_list(chunk.iter().map(String::as_str)).push(")");
            for r in db.frag(&f).fetch_all(db.read()).await? {
                stored.insert((r.get(0), r.get(1)), r.get(2));
            }
        }
        let mut upserts: Vec<(&str, &str, Option<f64>)> = Vec::new();
        let mut invalid: HashSet<&str> = HashSet::new();
        for id in &ids {
            for agg in &aggs {
                if invalid.contains(agg.id.as_str()) {
                    continue;
                }
                match value_of(db, agg, (bp, id), &cctx).await? {
                    Ok(v) => {
                        if stored.get(&(id.clone(), agg.id.clone())) != Some(&v) {
                            upserts.push((id, &agg.id, v));
                        }
                    }
                    Err(e) => {
                        invalid.insert(&agg.id);
                        let path =
                            portolan_core::error::join_path(&format!("aggregationProperties.{}", agg.id), &e.path);
                        out.invalid.push(format!("{path}: {}", e.message));
                    }
                }
            }
        }
        let mut tx = db.begin().await?;
        for chunk in upserts.chunks(CHUNK) {
            let mut f = SqlFrag::new(
                "INSERT INTO aggregation_values(org_id, blueprint, entity, property, value, computed_at) VALUES ",
            );
            for (i, (e, p, v)) in chunk.iter().enumerate() {
                f.push(if i == 0 { "(" } else { ", (" });
                f.param(org.0.as_str()).push(", ").param(bp).push(", ").param(*e).push(", ").param(*p).push(", ");
                match v {
                    Some(x) => f.param(*x),
                    None => f.push("NULL"),
                };
                f.push(", ").param(snapshot.as_str()).push(")");
            }
            f.push(
                " ON CONFLICT(org_id, blueprint, property, entity) DO UPDATE SET value = excluded.value, \
                 computed_at = excluded.computed_at WHERE aggregation_values.computed_at <= excluded.computed_at",
            );
            out.changed += tx.frag(&f).execute(&mut tx).await?;
        }
        for chunk in gone.chunks(CHUNK) {
            let mut f = SqlFrag::new("DELETE FROM aggregation_values WHERE org_id = ");
            f.param(org.0.as_str()).push(" AND blueprint = ").param(bp).push(" AND entity IN (");
            f.param_list(chunk.iter().map(String::as_str)).push(")");
            out.changed += tx.frag(&f).execute(&mut tx).await?;
        }
        if matches!(targets, AggregateTargets::After { .. }) && out.next.is_none() {
            // The end of a full pass: values of properties the blueprint no longer has, and of
            // entities deleted since (an anti-join; see `scorecards.rs` on nested loops).
            let mut f = SqlFrag::new("DELETE FROM aggregation_values WHERE org_id = ");
            f.param(org.0.as_str()).push(" AND blueprint = ").param(bp);
            if !aggs.is_empty() {
                f.push(" AND property NOT IN (").param_list(aggs.iter().map(|a| a.id.as_str())).push(")");
            }
            out.changed += tx.frag(&f).execute(&mut tx).await?;
            if d == Dialect::Postgres {
                tx.q("SET LOCAL enable_nestloop = off").execute(&mut tx).await?;
            }
            out.changed += tx
                .q("DELETE FROM aggregation_values WHERE org_id = ? AND blueprint = ? AND NOT EXISTS \
                    (SELECT 1 FROM entities e WHERE e.org_id = aggregation_values.org_id AND \
                    e.blueprint = aggregation_values.blueprint AND e.identifier = aggregation_values.entity)")
                .bind(&org.0)
                .bind(bp)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn aggregating_entities(
        &self,
        org: &OrgId,
        seeds: &[(String, String)],
        blueprints: &HashMap<String, Blueprint>,
    ) -> Result<Affected> {
        let db = &self.db;
        let mut out = Affected::default();
        let mut by_bp: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (b, i) in seeds {
            if blueprints.contains_key(b) && !db.refuses(b) && !db.refuses(i) {
                by_bp.entry(b.as_str()).or_default().push(i.clone());
            }
        }
        let mut aggregating: Vec<&str> = blueprints
            .values()
            .filter(|b| !b.aggregation_properties.is_empty())
            .map(|b| b.identifier.as_str())
            .collect();
        aggregating.sort_unstable();
        let cctx = CompileCtx::internal(&org.0, Utc::now(), blueprints, db.dialect());
        for agg_bp in aggregating {
            let mut found: Vec<String> = by_bp.get(agg_bp).cloned().unwrap_or_default();
            'seeds: for (seed_bp, ids) in &by_bp {
                for chunk in ids.chunks(CHUNK) {
                    let r = RelatedTo {
                        blueprint: seed_bp.to_string(),
                        values: chunk.to_vec(),
                        direction: None,
                        required: None,
                    };
                    let mut f = related_identifiers(&r, agg_bp, &cctx).map_err(StoreError::Invalid)?;
                    f.push(" LIMIT ").param(i64::try_from(MAX_AFFECTED + 1).unwrap_or(i64::MAX));
                    let rows = db.frag(&f).fetch_all(db.read()).await?;
                    found.extend(rows.iter().map(|r| r.get::<String, _>(0)));
                    found.sort();
                    found.dedup();
                    if found.len() > MAX_AFFECTED {
                        break 'seeds;
                    }
                }
            }
            if found.len() > MAX_AFFECTED {
                out.whole.push(agg_bp.to_string());
            } else if !found.is_empty() {
                out.entities.insert(agg_bp.to_string(), found);
            }
        }
        Ok(out)
    }

    async fn aggregation_values_visible(
        &self,
        org: &OrgId,
        bp: &str,
        ids: &[String],
        blueprints: &HashMap<String, Blueprint>,
        now_at: DateTime<Utc>,
        visible: &Query,
    ) -> Result<Vec<AggregationValue>> {
        let db = &self.db;
        let cctx = CompileCtx::internal(&org.0, now_at, blueprints, db.dialect());
        let aggs: Vec<Aggregation> = blueprints
            .get(bp)
            .map(Aggregation::of_blueprint)
            .unwrap_or_default()
            .into_iter()
            .map(|mut a| {
                let rules = a.query.take().into_iter().chain(std::iter::once(visible.clone())).collect();
                a.query = Some(Query::Group { combinator: Combinator::And, rules });
                a
            })
            .collect();
        let mut out = Vec::with_capacity(ids.len() * aggs.len());
        for id in ids.iter().filter(|i| !db.refuses(i) && !db.refuses(bp)) {
            for agg in &aggs {
                let value = value_of(db, agg, (bp, id), &cctx).await?.ok().flatten();
                out.push(AggregationValue {
                    blueprint: bp.to_string(),
                    entity: id.clone(),
                    property: agg.id.clone(),
                    value,
                });
            }
        }
        Ok(out)
    }

    async fn aggregation_values(&self, org: &OrgId, entities: &[(String, String)]) -> Result<Vec<AggregationValue>> {
        let db = &self.db;
        let mut by_bp: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (b, e) in entities {
            if !db.refuses(b) && !db.refuses(e) {
                by_bp.entry(b.as_str()).or_default().push(e.as_str());
            }
        }
        if by_bp.is_empty() {
            return Ok(Vec::new());
        }
        // One statement: each blueprint's identifiers as one bound list.
        let mut f = SqlFrag::new("SELECT blueprint, entity, property, value FROM aggregation_values WHERE org_id = ");
        f.param(org.0.as_str()).push(" AND (");
        for (i, (b, ids)) in by_bp.iter().enumerate() {
            if i > 0 {
                f.push(" OR ");
            }
            f.push("(blueprint = ").param(*b).push(" AND entity IN (").param_list(ids.iter().copied()).push("))");
        }
        f.push(") ORDER BY blueprint, entity, property");
        let rows = db.frag(&f).fetch_all(db.read()).await?;
        Ok(rows
            .iter()
            .map(|r| AggregationValue { blueprint: r.get(0), entity: r.get(1), property: r.get(2), value: r.get(3) })
            .collect())
    }
}
