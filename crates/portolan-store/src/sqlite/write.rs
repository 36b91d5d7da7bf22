//! Entity writes in batches: a constant number of statements per batch instead of several per
//! entity. SQLite pays a fixed cost per statement (sqlx hands each one to the connection's
//! worker thread), so this is what makes bulk ingestion fast.
//!
//! Semantics match writing the entities one by one, except that a relation may point at an
//! entity created later in the same batch (a batch is one unit: targets are checked against
//! the database plus every entity the batch writes). A batch that names one entity twice is
//! written one by one (`entities::write_sequential`), so the second write sees the first.

use std::collections::{HashMap, HashSet};

use portolan_core::Entity;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::audit;
use super::entities::{COLUMNS, bind, from_row, write_sequential};
use crate::plan::{Key, Outcome, Plan, json_text};
use crate::sql::{SqlFrag, SqlParam};
use crate::{AuditCtx, EntityWrite, OrgId, RelTarget, Result};

/// Rows per multi-row statement (SQLite allows 32,766 parameters; entities bind 13 each).
const CHUNK: usize = 500;

pub(crate) async fn write(
    pool: &SqlitePool,
    org: &OrgId,
    writes: Vec<EntityWrite>,
    ctx: &AuditCtx,
) -> Result<Vec<Outcome>> {
    let mut keys = HashSet::new();
    if !writes.iter().all(|w| keys.insert((w.blueprint.clone(), w.identifier.clone()))) {
        return write_sequential(pool, org, writes, ctx).await;
    }
    let mut tx = pool.begin().await?;
    let wanted: Vec<Key> = writes.iter().map(|w| (w.blueprint.clone(), w.identifier.clone())).collect();
    let mut stored = load(&mut tx, org, wanted.into_iter()).await?;

    let mut plan = Plan::compose(writes, &mut stored, |_| None);
    // Relation targets: stored, or written by this batch.
    let existing = existing_keys(&mut tx, org, plan.targets().into_iter()).await?;
    plan.reject_missing_targets(&existing);
    let stubs = plan.stubs(&existing, ctx);

    // Write: stubs and entities (one upsert statement per chunk), edges, audit records.
    let rows: Vec<&Entity> = stubs.iter().chain(plan.accepted().map(|b| &b.entity)).collect();
    let rids = upsert(&mut tx, org, &rows).await?;
    for chunk in plan.replaced().chunks(CHUNK) {
        let mut q = SqlFrag::new("DELETE FROM entity_relations WHERE src_rid IN (");
        q.param_list(chunk.iter().map(|r| SqlParam::Int(*r))).push(")");
        bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).execute(&mut *tx).await?;
    }
    insert_edges(&mut tx, org, &plan.edges(&rids)).await?;
    audit::insert_many(&mut tx, org, &plan.audit_records(&stubs, ctx)).await?;
    tx.commit().await?;
    Ok(plan.finish())
}

/// Stored entities for `keys`, by key, with their row ids.
async fn load(
    conn: &mut SqliteConnection,
    org: &OrgId,
    keys: impl Iterator<Item = Key>,
) -> Result<HashMap<Key, (i64, Entity)>> {
    let keys: Vec<Key> = keys.collect();
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let mut q = SqlFrag::new(&format!("SELECT {COLUMNS} FROM entities e WHERE e.org_id = "));
        q.param(SqlParam::Text(org.0.clone())).push(" AND (e.blueprint, e.identifier) IN (VALUES ");
        pairs(&mut q, chunk);
        q.push(")");
        for r in bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).fetch_all(&mut *conn).await? {
            let (rid, e) = from_row(&r);
            out.insert((e.blueprint.clone(), e.identifier.clone()), (rid, e));
        }
    }
    Ok(out)
}

fn pairs(q: &mut SqlFrag, keys: &[Key]) {
    for (i, (bp, id)) in keys.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.param(SqlParam::Text(bp.clone())).push(", ").param(SqlParam::Text(id.clone())).push(")");
    }
}

/// Which of `keys` exist.
async fn existing_keys(
    conn: &mut SqliteConnection,
    org: &OrgId,
    keys: impl Iterator<Item = Key>,
) -> Result<HashSet<Key>> {
    let mut keys: Vec<Key> = keys.collect();
    keys.sort();
    keys.dedup();
    let mut out = HashSet::new();
    for chunk in keys.chunks(CHUNK) {
        let mut q = SqlFrag::new("SELECT blueprint, identifier FROM entities WHERE org_id = ");
        q.param(SqlParam::Text(org.0.clone())).push(" AND (blueprint, identifier) IN (VALUES ");
        pairs(&mut q, chunk);
        q.push(")");
        for r in bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).fetch_all(&mut *conn).await? {
            out.insert((r.get(0), r.get(1)));
        }
    }
    Ok(out)
}

/// Insert or update entity rows (creation meta is kept on update); row ids by key.
async fn upsert(conn: &mut SqliteConnection, org: &OrgId, rows: &[&Entity]) -> Result<HashMap<Key, i64>> {
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
            q.param_list(values).push(")");
        }
        q.push(
            " ON CONFLICT(org_id, blueprint, identifier) DO UPDATE SET title = excluded.title, icon = excluded.icon, \
             team = excluded.team, properties = excluded.properties, relations = excluded.relations, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by, datasource = excluded.datasource \
             RETURNING rid, blueprint, identifier",
        );
        for r in bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).fetch_all(&mut *conn).await? {
            rids.insert((r.get(1), r.get(2)), r.get(0));
        }
    }
    Ok(rids)
}

async fn insert_edges(conn: &mut SqliteConnection, org: &OrgId, edges: &[(i64, &RelTarget)]) -> Result<()> {
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
        bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).execute(&mut *conn).await?;
    }
    Ok(())
}
