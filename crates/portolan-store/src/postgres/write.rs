//! Entity writes in batches (PostgreSQL): a constant number of statements per batch instead of
//! several per entity — one advisory-lock statement, one read of the stored entities, one
//! existence check of relation targets, one multi-row upsert, one edge insert, one audit insert
//! per 500 entities; each statement is a network round trip.
//!
//! Semantics match writing the entities one by one, except that a relation may point at an
//! entity created later in the same batch (a batch is one unit: targets are checked against
//! the database plus every entity the batch writes). A batch that names one entity twice is
//! written one by one (`entities::write_sequential`), so the second write sees the first.

use std::collections::{HashMap, HashSet};

use portolan_core::Entity;
use sqlx::{PgConnection, PgPool, Row};

use super::audit;
use super::entities::{COLUMNS, from_row, has_nul, lock_keys, lock_name, nul_rejection, write_sequential};
use super::frag_query;
use crate::plan::{Key, Outcome, Plan, json_text};
use crate::sql::{SqlFrag, SqlParam};
use crate::{AuditCtx, EntityWrite, OrgId, RelTarget, Result};

/// Rows per multi-row statement (PostgreSQL allows 65,535 parameters; entities bind 13 each).
const CHUNK: usize = 500;

pub(crate) async fn write(
    pool: &PgPool,
    org: &OrgId,
    writes: Vec<EntityWrite>,
    ctx: &AuditCtx,
) -> Result<Vec<Outcome>> {
    let mut keys = HashSet::new();
    if !writes.iter().all(|w| keys.insert((w.blueprint.clone(), w.identifier.clone()))) {
        return write_sequential(pool, org, writes, ctx).await;
    }
    let names: Vec<String> = writes.iter().map(|w| lock_name(org, &w.blueprint, &w.identifier)).collect();
    let mut tx = pool.begin().await?;
    lock_keys(&mut tx, names).await?;
    let wanted: Vec<Key> = writes.iter().map(|w| (w.blueprint.clone(), w.identifier.clone())).collect();
    let mut stored = load(&mut tx, org, wanted.into_iter()).await?;

    let mut plan = Plan::compose(writes, &mut stored, nul_rejection);
    // Relation targets: stored, or written by this batch.
    let existing = existing_keys(&mut tx, org, plan.targets().into_iter()).await?;
    plan.reject_missing_targets(&existing);
    let stubs = plan.stubs(&existing, ctx);

    // Write: stubs, entities (one upsert statement per chunk), edges, audit records. A stub that
    // another node created meanwhile is left as it is (its key was not locked here).
    let stub_rows: Vec<&Entity> = stubs.iter().collect();
    let created_stubs = upsert(&mut tx, org, &stub_rows, false).await?;
    let stubs: Vec<Entity> = stubs
        .into_iter()
        .filter(|s| created_stubs.contains_key(&(s.blueprint.clone(), s.identifier.clone())))
        .collect();
    let rows: Vec<&Entity> = plan.accepted().map(|b| &b.entity).collect();
    let rids = upsert(&mut tx, org, &rows, true).await?;
    for chunk in plan.replaced().chunks(CHUNK) {
        let mut q = SqlFrag::new("DELETE FROM entity_relations WHERE src_rid IN (");
        q.param_list(chunk.iter().map(|r| SqlParam::Int(*r))).push(")");
        frag_query(&q).execute(&mut *tx).await?;
    }
    insert_edges(&mut tx, org, &plan.edges(&rids)).await?;
    audit::insert_many(&mut tx, org, &plan.audit_records(&stubs, ctx)).await?;
    tx.commit().await?;
    Ok(plan.finish())
}

/// Stored entities for `keys`, by key, with their row ids.
async fn load(
    conn: &mut PgConnection,
    org: &OrgId,
    keys: impl Iterator<Item = Key>,
) -> Result<HashMap<Key, (i64, Entity)>> {
    // A key with a NUL character cannot be stored (nor bound) on PostgreSQL: it is not there.
    let keys: Vec<Key> = keys.filter(|(bp, id)| !has_nul(bp) && !has_nul(id)).collect();
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let mut q = SqlFrag::new(&format!("SELECT {COLUMNS} FROM entities e WHERE e.org_id = "));
        q.param(SqlParam::Text(org.0.clone())).push(" AND (e.blueprint, e.identifier) IN (VALUES ");
        pairs(&mut q, chunk);
        q.push(")");
        for r in frag_query(&q).fetch_all(&mut *conn).await? {
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
async fn existing_keys(conn: &mut PgConnection, org: &OrgId, keys: impl Iterator<Item = Key>) -> Result<HashSet<Key>> {
    let mut keys: Vec<Key> = keys.filter(|(bp, id)| !has_nul(bp) && !has_nul(id)).collect();
    keys.sort();
    keys.dedup();
    let mut out = HashSet::new();
    for chunk in keys.chunks(CHUNK) {
        let mut q = SqlFrag::new("SELECT blueprint, identifier FROM entities WHERE org_id = ");
        q.param(SqlParam::Text(org.0.clone())).push(" AND (blueprint, identifier) IN (VALUES ");
        pairs(&mut q, chunk);
        q.push(")");
        for r in frag_query(&q).fetch_all(&mut *conn).await? {
            out.insert((r.get(0), r.get(1)));
        }
    }
    Ok(out)
}

/// Insert or update entity rows (creation meta is kept on update); row ids by key. With
/// `update` false, rows that exist are left alone and are not in the result.
async fn upsert(conn: &mut PgConnection, org: &OrgId, rows: &[&Entity], update: bool) -> Result<HashMap<Key, i64>> {
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
                    q.push("::jsonb");
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
        for r in frag_query(&q).fetch_all(&mut *conn).await? {
            rids.insert((r.get(1), r.get(2)), r.get(0));
        }
    }
    Ok(rids)
}

async fn insert_edges(conn: &mut PgConnection, org: &OrgId, edges: &[(i64, &RelTarget)]) -> Result<()> {
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
        frag_query(&q).execute(&mut *conn).await?;
    }
    Ok(())
}
