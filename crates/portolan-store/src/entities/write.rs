//! Entity writes in batches: a constant number of statements per batch instead of several per
//! entity — on PostgreSQL one advisory-lock statement, then on both one read of the stored
//! entities, one existence check of relation targets, one multi-row upsert, one edge insert,
//! one audit insert per 500 entities. SQLite pays a fixed cost per statement (sqlx hands each
//! one to the connection's worker thread) and PostgreSQL a network round trip, so this is what
//! makes bulk ingestion fast.
//!
//! Semantics match writing the entities one by one, except that a relation may point at an
//! entity created later in the same batch (a batch is one unit: targets are checked against
//! the database plus every entity the batch writes). A batch that names one entity twice is
//! written one by one ([`write_sequential`]), so the second write sees the first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use portolan_core::Entity;

use super::{COLUMNS, from_row};
use crate::db::{Db, Row, Tx};
use crate::dialect::{entity_locks, lock_entities, nul_rejection};
use crate::plan::{
    Key, Outcome, Plan, added_teams, empty_entity, entity_record, json_text, quota_rejection, system_creation,
    team_rejection,
};
use crate::sql::{Dialect, SqlFrag, SqlParam};
use crate::{AuditCtx, EntityWrite, OrgId, RelTarget, Result, WriteRejection, Written};
use crate::{aggregations, automations, orgs, scorecards, teams};

/// Rows per multi-row statement (SQLite allows 32,766 parameters, PostgreSQL 65,535; entities
/// bind 13 each).
const CHUNK: usize = 500;

/// The rejection of an entity this database cannot store (PostgreSQL: a NUL character).
fn refusal(dialect: Dialect) -> impl Fn(&Entity) -> Option<WriteRejection> {
    move |e| if dialect == Dialect::Postgres { nul_rejection(e) } else { None }
}

/// A batch's outcomes, and whether its transaction gave a job work (scorecards, aggregations,
/// automation events, changelog deliveries: a worker is to be woken once it committed).
pub(crate) async fn write(
    db: &Db,
    org: &OrgId,
    writes: Vec<EntityWrite>,
    ctx: &AuditCtx,
) -> Result<(Vec<Outcome>, bool)> {
    if !distinct_keys(&writes) {
        return write_sequential(db, org, writes, ctx).await;
    }
    let (mut out, queued) = write_together(db, org, vec![writes], &[ctx]).await?;
    Ok((out.pop().unwrap_or_default(), queued))
}

/// Whether no two of `writes` name the same entity.
pub(crate) fn distinct_keys(writes: &[EntityWrite]) -> bool {
    let mut keys = HashSet::with_capacity(writes.len());
    writes.iter().all(|w| keys.insert((w.blueprint.as_str(), w.identifier.as_str())))
}

/// Several requests' batches in one transaction (group commit, `entities/group.rs`), as one
/// batch: `batches[i]` by `ctxs[i]`, no entity named twice across all of them, every context of
/// the same automation depth. Each batch's outcomes, in order, and whether the transaction
/// gave a job work.
pub(crate) async fn write_together(
    db: &Db,
    org: &OrgId,
    batches: Vec<Vec<EntityWrite>>,
    ctxs: &[&AuditCtx],
) -> Result<(Vec<Vec<Outcome>>, bool)> {
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    let depth = ctxs.first().map_or(0, |c| c.depth);
    let writes: Vec<(EntityWrite, usize)> =
        batches.into_iter().enumerate().flat_map(|(i, b)| b.into_iter().map(move |w| (w, i))).collect();
    let mut tx = db.begin().await?;
    let locks = entity_locks(org, writes.iter().map(|(w, _)| (w.blueprint.as_str(), w.identifier.as_str())));
    lock_entities(&mut tx, locks).await?;
    let wanted: Vec<Key> = writes.iter().map(|(w, _)| (w.blueprint.clone(), w.identifier.clone())).collect();
    let mut stored = load(db, &mut tx, org, wanted).await?;

    // Aggregation seeds: what the written entities' relations pointed at before the write.
    let config = OrgWrites::read(&mut tx, org).await?;
    let aggregates = config.aggregates;
    let before_seeds =
        if aggregates { old_targets(&mut tx, org, stored.values().map(|(_, e)| e)).await? } else { HashMap::new() };
    let mut plan = Plan::compose(writes.into_iter(), &mut stored, refusal(db.dialect()));
    // Teams a write adds must exist (before relation targets: a rejected write creates none).
    let missing = teams::missing_in(db, &mut tx, org, &plan.added_teams()).await?;
    plan.reject_missing_teams(&missing);
    // Relation targets: stored, or written by this batch.
    let existing = existing_keys(db, &mut tx, org, plan.targets()).await?;
    plan.reject_missing_targets(&existing);
    let mut stubs = plan.stubs(&existing, ctxs);
    // The entity quota, when the organization has one (the count is bounded by it).
    if let Some(room) = orgs::entity_room(&mut tx, org, config.max_entities, plan.creating() + stubs.len()).await? {
        plan.reject_creating(&existing, room.max, room.left);
        stubs = plan.stubs(&existing, ctxs);
    }

    // Write: stubs, entities (one upsert statement per chunk), edges, audit records. A stub that
    // another node created meanwhile (PostgreSQL: its key was not locked here) is left as it is.
    let stub_rows: Vec<&Entity> = stubs.iter().map(|s| &s.entity).collect();
    let created_stubs = upsert(&mut tx, org, &stub_rows, false).await?;
    stubs.retain(|s| created_stubs.contains_key(&(s.entity.blueprint.clone(), s.entity.identifier.clone())));
    let rows: Vec<&Entity> = plan.accepted().map(|b| &b.entity).collect();
    // The audit records are built while SQLite runs the upsert (its first statement is sent
    // before the records are started): the writer is held by one chain of turns between this
    // task and SQLite's thread, and this takes a turn out of it (BENCHMARKS.md, "Checkpoints
    // off the writer").
    let (rids, records) = tokio::join!(biased; upsert(&mut tx, org, &rows, true), async {
        plan.audit_records(&stubs, ctxs)
    });
    let rids = rids?;
    let unlink = unlink_sql(db.dialect());
    for chunk in plan.replaced().chunks(CHUNK) {
        tx.q(&unlink).bind_ints(chunk).execute(&mut tx).await?;
    }
    insert_edges(&mut tx, org, &plan.edges(&rids)).await?;
    let mut queued = automations::audit_and_record(&mut tx, org, &config.listening, &records, depth).await?;
    let written: Vec<(&str, &str)> = rows
        .iter()
        .copied()
        .chain(stubs.iter().map(|s| &s.entity))
        .map(|e| (e.blueprint.as_str(), e.identifier.as_str()))
        .collect();
    queued |= scorecards::enqueue_scored(db, &mut tx, org, &written, &config.scored).await?;
    if aggregates {
        let mut seeds: Vec<(String, String)> = rows.iter().flat_map(|e| unlinked(&before_seeds, e)).collect();
        seeds.extend(written.iter().map(|(b, i)| (b.to_string(), i.to_string())));
        queued |= aggregations::enqueue_for_seeds(db, &mut tx, org, &seeds).await?;
    }
    tx.commit().await?;
    let mut outcomes = plan.finish().into_iter();
    Ok((sizes.into_iter().map(|n| outcomes.by_ref().take(n).collect()).collect(), queued))
}

/// What the organization's configuration asks of an entity write, read in its transaction with
/// one statement (each statement is a hand-off to SQLite's thread, or a round trip to
/// PostgreSQL, while the writer is held): the events its automations and changelog
/// destinations listen to ([`automations::listening`]), whether a blueprint has aggregation
/// properties, which blueprints have scorecards, and the organization's entity quota. Entity
/// writes, deletes and the system entities' upkeep (`mirror.rs`) read it once per transaction.
pub(crate) struct OrgWrites {
    pub(crate) aggregates: bool,
    pub(crate) listening: automations::Listening,
    pub(crate) scored: HashSet<String>,
    /// The entity quota (`organizations.max_entities`), `None` when there is none.
    pub(crate) max_entities: Option<u64>,
}

impl OrgWrites {
    pub(crate) async fn read(tx: &mut Tx, org: &OrgId) -> Result<OrgWrites> {
        let d = tx.dialect();
        // Rows (kind, a, b): `L` an event listened to (target, event), `A` some blueprint
        // aggregates, `S` a blueprint with scorecards, `Q` the entity quota (its decimal text).
        let sql = format!(
            "SELECT 'L', l.trigger_target, l.trigger_event FROM ({}) l \
             UNION ALL SELECT 'A', '', '' WHERE EXISTS (SELECT 1 FROM blueprints WHERE org_id = ? AND {}) \
             UNION ALL SELECT 'S', s.blueprint, '' FROM ({}) s \
             UNION ALL SELECT 'Q', CAST(max_entities AS TEXT), '' FROM organizations \
             WHERE id = ? AND max_entities IS NOT NULL",
            automations::listening_sql(d),
            aggregations::aggregating(d),
            scorecards::SCORED_SQL
        );
        let q = tx.q(&sql).bind(&org.0).bind(&org.0).bind(&org.0).bind(&org.0).bind(&org.0);
        let mut out =
            OrgWrites { aggregates: false, listening: Default::default(), scored: HashSet::new(), max_entities: None };
        for r in q.fetch_all(&mut *tx).await? {
            match r.get::<String, _>(0).as_str() {
                "L" => out.listening.add(r.get(1), r.get(2)),
                "A" => out.aggregates = true,
                // An integer column's text; were it unreadable, no room (never no quota).
                "Q" => out.max_entities = orgs::limit(Some(r.get::<String, _>(1).parse::<i64>().unwrap_or(0))),
                _ => {
                    out.scored.insert(r.get(1));
                }
            }
        }
        Ok(out)
    }
}

/// The relation targets of `entities` as stored, by entity: `(relation, target blueprint,
/// target identifier)`. Those a write unlinks ([`unlinked`]) are seeds of aggregation upkeep.
async fn old_targets<'e>(
    tx: &mut Tx,
    org: &OrgId,
    entities: impl Iterator<Item = &'e Entity>,
) -> Result<HashMap<Key, Vec<(String, String, String)>>> {
    let entities: Vec<&Entity> = entities.filter(|e| !e.relations.is_empty()).collect();
    if entities.is_empty() {
        return Ok(HashMap::new());
    }
    let mut bps: Vec<&str> = entities.iter().map(|e| e.blueprint.as_str()).collect();
    bps.sort_unstable();
    bps.dedup();
    let targets = aggregations::relation_targets(tx, org, &bps).await?;
    let mut out = HashMap::new();
    for e in entities {
        if let Some(t) = targets.get(&e.blueprint) {
            let mut seeds = Vec::new();
            aggregations::relation_seeds(&e.relations, t, &mut seeds);
            out.insert((e.blueprint.clone(), e.identifier.clone()), seeds);
        }
    }
    Ok(out)
}

/// The stored targets of `e` that its written relations no longer name (an unchanged relation
/// is followed from `e` itself, which is a seed).
fn unlinked(before: &HashMap<Key, Vec<(String, String, String)>>, e: &Entity) -> Vec<(String, String)> {
    let Some(old) = before.get(&(e.blueprint.clone(), e.identifier.clone())) else { return Vec::new() };
    let names = |rel: &str, id: &str| match e.relations.get(rel) {
        Some(serde_json::Value::String(s)) => s == id,
        Some(serde_json::Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(id)),
        _ => false,
    };
    old.iter().filter(|(rel, _, id)| !names(rel, id)).map(|(_, bp, id)| (bp.clone(), id.clone())).collect()
}

/// Keys this database can hold (PostgreSQL: none with a NUL character; such a key is not there).
fn storable_keys(db: &Db, keys: Vec<Key>) -> Vec<Key> {
    keys.into_iter().filter(|(bp, id)| !db.refuses(bp) && !db.refuses(id)).collect()
}

/// Stored entities for `keys`, by key, with their row ids.
async fn load(db: &Db, tx: &mut Tx, org: &OrgId, keys: Vec<Key>) -> Result<HashMap<Key, (i64, Entity)>> {
    let mut out = HashMap::with_capacity(keys.len());
    for r in lookup(db, tx, org, keys, &load_sql(db.dialect())).await? {
        let (rid, e) = from_row(&r);
        out.insert((e.blueprint.clone(), e.identifier.clone()), (rid, e));
    }
    Ok(out)
}

/// Which of `keys` exist.
async fn existing_keys(db: &Db, tx: &mut Tx, org: &OrgId, keys: Vec<Key>) -> Result<HashSet<Key>> {
    let rows = lookup(db, tx, org, keys, &existing_sql(db.dialect())).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Run a key lookup (`load_sql` / `existing_sql`) for the storable `keys` (PostgreSQL: none
/// with a NUL character; such a key is not there), deduplicated. PostgreSQL: one statement
/// per chunk, over [`lookup_key`]s (`entities_lookup_key`, a unique single-column index: an
/// index probe per key whatever the statistics). The key holds the organization, so the
/// statement needs no `org_id = ?` (which a never-analyzed table would AND in as a bitmap of
/// the organization's every row). SQLite: one per blueprint and chunk, over
/// identifiers (entities_key).
async fn lookup(db: &Db, tx: &mut Tx, org: &OrgId, keys: Vec<Key>, sql: &str) -> Result<Vec<Row>> {
    let keys: BTreeSet<Key> = storable_keys(db, keys).into_iter().collect();
    let mut rows = Vec::new();
    match db.dialect() {
        Dialect::Postgres => {
            let lookup: Vec<String> = keys.iter().map(|(bp, id)| lookup_key(org, bp, id)).collect();
            let lookup: Vec<&str> = lookup.iter().map(String::as_str).collect();
            for chunk in lookup.chunks(CHUNK) {
                rows.extend(tx.q(sql).bind_texts(chunk).fetch_all(&mut *tx).await?);
            }
        }
        Dialect::Sqlite => {
            let mut by_bp: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (bp, id) in &keys {
                by_bp.entry(bp.as_str()).or_default().push(id.as_str());
            }
            for (bp, ids) in by_bp {
                for chunk in ids.chunks(CHUNK) {
                    rows.extend(tx.q(sql).bind(&org.0).bind(bp).bind_texts(chunk).fetch_all(&mut *tx).await?);
                }
            }
        }
    }
    Ok(rows)
}

/// The text PostgreSQL's `entities_lookup_key` index holds for an entity (migration 0011):
/// `length(org_id)::text || ':' || org_id || length(blueprint)::text || ':' || blueprint ||
/// identifier`, lengths in characters.
fn lookup_key(org: &OrgId, bp: &str, id: &str) -> String {
    format!("{}:{}{}:{bp}{id}", org.0.chars().count(), org.0, bp.chars().count())
}

/// `entities_lookup_key`'s expression (migration 0011), over the table's columns.
const LOOKUP_KEY: &str =
    "(length(org_id)::text || ':' || org_id || length(blueprint)::text || ':' || blueprint || identifier)";

/// The write path's lookups as the store issues them (`?` placeholders), by name, with the
/// parameters they take: a list of [`lookup_key`]s on PostgreSQL (org, blueprint and
/// identifiers on SQLite), or a list of row ids. Public for the PostgreSQL plan test
/// (`tests/pg_plans.rs`), which `EXPLAIN`s each on a never-analyzed table.
pub fn write_path_lookups(d: Dialect) -> Vec<(&'static str, String)> {
    vec![
        ("load stored entities", load_sql(d)),
        ("check relation targets", existing_sql(d)),
        ("unlink replaced relations", unlink_sql(d)),
    ]
}

/// The PostgreSQL lookup key of `(org, blueprint, identifier)`, for [`write_path_lookups`]'s
/// parameters.
pub fn write_path_lookup_key(org: &OrgId, bp: &str, id: &str) -> String {
    lookup_key(org, bp, id)
}

fn load_sql(d: Dialect) -> String {
    match d {
        Dialect::Postgres => format!("SELECT {COLUMNS} FROM entities e WHERE {LOOKUP_KEY} = ANY(?)"),
        Dialect::Sqlite => format!(
            "SELECT {COLUMNS} FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.identifier{}",
            d.any_of()
        ),
    }
}

fn existing_sql(d: Dialect) -> String {
    match d {
        Dialect::Postgres => format!("SELECT blueprint, identifier FROM entities WHERE {LOOKUP_KEY} = ANY(?)"),
        Dialect::Sqlite => format!(
            "SELECT blueprint, identifier FROM entities WHERE org_id = ? AND blueprint = ? AND identifier{}",
            d.any_of()
        ),
    }
}

fn unlink_sql(d: Dialect) -> String {
    format!("DELETE FROM entity_relations WHERE src_rid{}", d.any_of())
}

/// Insert or update entity rows (creation meta is kept on update); row ids by key. With
/// `update` false, rows that exist are left alone and are not in the result.
async fn upsert(tx: &mut Tx, org: &OrgId, rows: &[&Entity], update: bool) -> Result<HashMap<Key, i64>> {
    let jsonb = tx.dialect().jsonb_cast();
    let mut rids = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK) {
        let mut q = SqlFrag::new(
            "INSERT INTO entities(org_id, blueprint, identifier, title, icon, team, properties, relations, \
             created_at, created_by, updated_at, updated_by, datasource) VALUES ",
        );
        for (i, e) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            let values = [
                SqlParam::Text(org.0.clone()),
                SqlParam::Text(e.blueprint.clone()),
                SqlParam::Text(e.identifier.clone()),
                e.title.clone().map_or(SqlParam::Null, SqlParam::Text),
                e.icon.clone().map_or(SqlParam::Null, SqlParam::Text),
                SqlParam::Text(json_text(&e.team)),
                SqlParam::Text(json_text(&e.properties)),
                SqlParam::Text(json_text(&e.relations)),
                SqlParam::Text(e.created_at.clone()),
                SqlParam::Text(e.created_by.clone()),
                SqlParam::Text(e.updated_at.clone()),
                SqlParam::Text(e.updated_by.clone()),
                e.datasource.clone().map_or(SqlParam::Null, SqlParam::Text),
            ];
            for (k, v) in values.into_iter().enumerate() {
                if k > 0 {
                    q.push(", ");
                }
                q.param(v);
                if (5..=7).contains(&k) {
                    q.push(jsonb);
                }
            }
            q.push(")");
        }
        if update {
            q.push(
                " ON CONFLICT(org_id, blueprint, identifier) DO UPDATE SET title = excluded.title, \
                 icon = excluded.icon, team = excluded.team, properties = excluded.properties, \
                 relations = excluded.relations, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by, datasource = excluded.datasource",
            );
        } else {
            q.push(" ON CONFLICT(org_id, blueprint, identifier) DO NOTHING");
        }
        q.push(" RETURNING rid, blueprint, identifier");
        for r in tx.frag(&q).fetch_all(&mut *tx).await? {
            rids.insert((r.get(1), r.get(2)), r.get(0));
        }
    }
    Ok(rids)
}

async fn insert_edges(tx: &mut Tx, org: &OrgId, edges: &[(i64, &RelTarget)]) -> Result<()> {
    for chunk in edges.chunks(CHUNK) {
        let mut q = SqlFrag::new(
            "INSERT INTO entity_relations(org_id, src_rid, relation, target_blueprint, target_identifier, required) VALUES ",
        );
        for (i, (rid, e)) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            let values = [
                SqlParam::Text(org.0.clone()),
                SqlParam::Int(*rid),
                SqlParam::Text(e.relation.clone()),
                SqlParam::Text(e.target_blueprint.clone()),
                SqlParam::Text(e.target_identifier.clone()),
                SqlParam::Bool(e.required),
            ];
            q.param_list(values).push(")");
        }
        tx.frag(&q).execute(&mut *tx).await?;
    }
    Ok(())
}

/// The stored entity (with its row id), read inside the write transaction.
pub(crate) async fn get_in_tx(db: &Db, tx: &mut Tx, org: &OrgId, bp: &str, id: &str) -> Result<Option<(i64, Entity)>> {
    if db.refuses(bp) || db.refuses(id) {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.identifier = ?");
    let row = tx.q(&sql).bind(&org.0).bind(bp).bind(id).fetch_optional(&mut *tx).await?;
    Ok(row.map(|r| from_row(&r)))
}

async fn exists(db: &Db, tx: &mut Tx, org: &OrgId, bp: &str, id: &str) -> Result<bool> {
    if db.refuses(bp) || db.refuses(id) {
        return Ok(false);
    }
    let row = tx
        .q("SELECT 1 FROM entities WHERE org_id = ? AND blueprint = ? AND identifier = ?")
        .bind(&org.0)
        .bind(bp)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row.is_some())
}

/// Insert or update the entity row and replace its relation edges. Returns the row id.
pub(crate) async fn save(tx: &mut Tx, org: &OrgId, rid: Option<i64>, e: &Entity, edges: &[RelTarget]) -> Result<i64> {
    let jsonb = tx.dialect().jsonb_cast();
    let rid = match rid {
        Some(rid) => {
            tx.q(&format!(
                "UPDATE entities SET title = ?, icon = ?, team = ?{jsonb}, properties = ?{jsonb}, relations = ?{jsonb}, \
                 updated_at = ?, updated_by = ?, datasource = ? WHERE rid = ? AND org_id = ?"
            ))
            .bind(&e.title)
            .bind(&e.icon)
            .bind(json_text(&e.team))
            .bind(json_text(&e.properties))
            .bind(json_text(&e.relations))
            .bind(&e.updated_at)
            .bind(&e.updated_by)
            .bind(&e.datasource)
            .bind(rid)
            .bind(&org.0)
            .execute(&mut *tx)
            .await?;
            tx.q("DELETE FROM entity_relations WHERE src_rid = ?").bind(rid).execute(&mut *tx).await?;
            rid
        }
        None => tx
            .q(&format!(
                "INSERT INTO entities(org_id, blueprint, identifier, title, icon, team, properties, relations, \
                 created_at, created_by, updated_at, updated_by, datasource) \
                 VALUES (?, ?, ?, ?, ?, ?{jsonb}, ?{jsonb}, ?{jsonb}, ?, ?, ?, ?, ?) RETURNING rid"
            ))
            .bind(&org.0)
            .bind(&e.blueprint)
            .bind(&e.identifier)
            .bind(&e.title)
            .bind(&e.icon)
            .bind(json_text(&e.team))
            .bind(json_text(&e.properties))
            .bind(json_text(&e.relations))
            .bind(&e.created_at)
            .bind(&e.created_by)
            .bind(&e.updated_at)
            .bind(&e.updated_by)
            .bind(&e.datasource)
            .fetch_one(&mut *tx)
            .await?
            .get(0),
    };
    for edge in edges {
        tx.q("INSERT INTO entity_relations(org_id, src_rid, relation, target_blueprint, target_identifier, required) \
              VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&org.0)
            .bind(rid)
            .bind(&edge.relation)
            .bind(&edge.target_blueprint)
            .bind(&edge.target_identifier)
            .bind(edge.required)
            .execute(&mut *tx)
            .await?;
    }
    Ok(rid)
}

/// One write after another, each seeing the previous ones: used when a batch names the same
/// entity twice. (Batches of distinct entities take [`write`].)
async fn write_sequential(
    db: &Db,
    org: &OrgId,
    writes: Vec<EntityWrite>,
    ctx: &AuditCtx,
) -> Result<(Vec<Outcome>, bool)> {
    let mut tx = db.begin().await?;
    let locks = entity_locks(org, writes.iter().map(|w| (w.blueprint.as_str(), w.identifier.as_str())));
    lock_entities(&mut tx, locks).await?;
    let mut out = Vec::with_capacity(writes.len());
    let mut seq = Sequential::start(&mut tx, org).await?;
    for w in writes {
        out.push(seq.write(db, &mut tx, org, w, ctx).await?);
    }
    let queued = seq.finish(db, &mut tx, org).await?;
    tx.commit().await?;
    Ok((out, queued))
}

/// Writes one at a time inside a transaction ([`write_sequential`], and a `_user` / `_team`
/// entity written with its person or team: `mirror`): what they wrote, for the upkeep jobs
/// queued by [`Sequential::finish`].
pub(crate) struct Sequential {
    written: Vec<(String, String)>,
    unlinked_seeds: Vec<(String, String)>,
    config: OrgWrites,
    /// Whether a write gave the automation dispatch or the changelog delivery work.
    queued: bool,
}

impl Sequential {
    pub(crate) async fn start(tx: &mut Tx, org: &OrgId) -> Result<Sequential> {
        Ok(Sequential {
            written: Vec::new(),
            unlinked_seeds: Vec::new(),
            config: OrgWrites::read(tx, org).await?,
            queued: false,
        })
    }

    /// Write one entity (its key locked by the caller), seeing what was written before it.
    pub(crate) async fn write(
        &mut self,
        db: &Db,
        tx: &mut Tx,
        org: &OrgId,
        w: EntityWrite,
        ctx: &AuditCtx,
    ) -> Result<Outcome> {
        let before = get_in_tx(db, tx, org, &w.blueprint, &w.identifier).await?;
        let before_targets = if self.config.aggregates {
            old_targets(tx, org, before.iter().map(|(_, e)| e)).await?
        } else {
            HashMap::new()
        };
        let (entity, edges) = match (w.build)(before.as_ref().map(|(_, e)| e)) {
            Ok(x) => x,
            Err(rej) => return Ok(Err(rej)),
        };
        if let Some(rej) = refusal(db.dialect())(&entity) {
            return Ok(Err(rej));
        }
        if before.is_none()
            && let Some(rej) = system_creation(&entity.blueprint, &entity.identifier)
        {
            return Ok(Err(rej));
        }
        let before_entity = before.as_ref().map(|(_, e)| e);
        let added = added_teams(&entity, before_entity).collect();
        let missing = teams::missing_in(db, tx, org, &added).await?;
        if let Some(rej) = team_rejection(&entity, before_entity, &missing) {
            return Ok(Err(rej));
        }
        let mut stubs = Vec::new();
        for edge in &edges {
            let is_self = edge.target_blueprint == entity.blueprint && edge.target_identifier == entity.identifier;
            if is_self || exists(db, tx, org, &edge.target_blueprint, &edge.target_identifier).await? {
                continue;
            }
            if !w.create_missing_related || portolan_core::system::is_system(&edge.target_blueprint) {
                return Ok(Err(WriteRejection::MissingTarget {
                    relation: edge.relation.clone(),
                    blueprint: edge.target_blueprint.clone(),
                    identifier: edge.target_identifier.clone(),
                }));
            }
            stubs.push(edge);
        }
        let adding = usize::from(before.is_none()) + stubs.len();
        if let Some(room) = orgs::entity_room(tx, org, self.config.max_entities, adding).await? {
            return Ok(Err(quota_rejection(room.max)));
        }
        for edge in stubs {
            if exists(db, tx, org, &edge.target_blueprint, &edge.target_identifier).await? {
                continue; // two relations naming the same missing target
            }
            let stub = empty_entity(&edge.target_blueprint, &edge.target_identifier, ctx, entity.datasource.clone());
            save(tx, org, None, &stub, &[]).await?;
            self.written.push((stub.blueprint.clone(), stub.identifier.clone()));
            let rec = entity_record(ctx, "CREATE", &stub.blueprint, &stub.identifier, None, Some(&stub));
            self.queued |= automations::audit_and_record(tx, org, &self.config.listening, &[rec], ctx.depth).await?;
        }
        save(tx, org, before.as_ref().map(|(rid, _)| *rid), &entity, &edges).await?;
        let action = if before.is_some() { "UPDATE" } else { "CREATE" };
        let rec = entity_record(ctx, action, &entity.blueprint, &entity.identifier, before_entity, Some(&entity));
        self.queued |= automations::audit_and_record(tx, org, &self.config.listening, &[rec], ctx.depth).await?;
        self.written.push((entity.blueprint.clone(), entity.identifier.clone()));
        self.unlinked_seeds.extend(unlinked(&before_targets, &entity));
        Ok(Ok(Written { entity, created: before.is_none() }))
    }

    /// Queue the scorecard and aggregation upkeep of everything written. Whether the writes
    /// gave any job work (a worker is to be woken once they commit).
    pub(crate) async fn finish(mut self, db: &Db, tx: &mut Tx, org: &OrgId) -> Result<bool> {
        let seen: Vec<(&str, &str)> = self.written.iter().map(|(b, i)| (b.as_str(), i.as_str())).collect();
        let mut queued = self.queued;
        queued |= scorecards::enqueue_scored(db, tx, org, &seen, &self.config.scored).await?;
        if self.config.aggregates {
            self.written.extend(self.unlinked_seeds);
            queued |= aggregations::enqueue_for_seeds(db, tx, org, &self.written).await?;
        }
        Ok(queued)
    }
}
