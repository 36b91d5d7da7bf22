//! Deleting entities: non-required relations pointing at them are unlinked,
//! required ones block the delete or, with `cascade`, delete their sources too.

use std::collections::{HashMap, HashSet};

use portolan_core::Entity;
use serde_json::Value;

use super::write::{OrgWrites, get_in_tx};
use super::{COLUMNS, from_row};
use crate::audit;
use crate::db::{Db, Tx};
use crate::dialect::{entity_locks, lock_entities};
use crate::plan::{entity_record, json_text};
use crate::{AuditCtx, OrgId, Result, StoreError, aggregations, automations};

/// Remove `target` from a relation value: a single relation becomes null, a many relation
/// loses the identifier.
fn unlink(v: &Value, target: &str) -> Value {
    match v {
        Value::String(s) if s == target => Value::Null,
        Value::Array(a) => Value::Array(a.iter().filter(|x| x.as_str() != Some(target)).cloned().collect()),
        other => other.clone(),
    }
}

pub(crate) async fn delete(
    db: &Db,
    org: &OrgId,
    bp: &str,
    ids: &[String],
    cascade: bool,
    ctx: &AuditCtx,
) -> Result<Vec<(String, String)>> {
    let mut tx = db.begin().await?;
    let deleted = delete_in(db, &mut tx, org, bp, ids, cascade, ctx).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// [`delete`] inside the caller's transaction (the `_user` / `_team` entity of a person or team
/// that goes: `mirror`).
pub(crate) async fn delete_in(
    db: &Db,
    tx: &mut Tx,
    org: &OrgId,
    bp: &str,
    ids: &[String],
    cascade: bool,
    ctx: &AuditCtx,
) -> Result<Vec<(String, String)>> {
    lock_entities(tx, entity_locks(org, ids.iter().map(|id| (bp, id.as_str())))).await?;
    let mut doomed: Vec<(i64, Entity)> = Vec::new();
    let mut doomed_keys: HashSet<(String, String)> = HashSet::new();
    for id in ids {
        match get_in_tx(db, tx, org, bp, id).await? {
            Some(x) => {
                if doomed_keys.insert((bp.to_string(), id.clone())) {
                    doomed.push(x);
                }
            }
            None => return Err(StoreError::NotFound(format!("entity {id:?} of blueprint {bp:?}"))),
        }
    }
    // Walk edges pointing at doomed entities: required ones cascade or block, others unlink.
    let mut blocked = Vec::new();
    let mut unlinks: Vec<(i64, String, String)> = Vec::new(); // (source rid, relation, target id)
    let mut i = 0;
    while i < doomed.len() {
        let (tbp, tid) = (doomed[i].1.blueprint.clone(), doomed[i].1.identifier.clone());
        i += 1;
        let rows = tx
            .q("SELECT er.src_rid, er.relation, er.required, e.blueprint, e.identifier FROM entity_relations er \
             JOIN entities e ON e.rid = er.src_rid \
             WHERE er.org_id = ? AND er.target_blueprint = ? AND er.target_identifier = ? AND e.org_id = ?")
            .bind(&org.0)
            .bind(&tbp)
            .bind(&tid)
            .bind(&org.0)
            .fetch_all(&mut *tx)
            .await?;
        for r in rows {
            let key: (String, String) = (r.get(3), r.get(4));
            if doomed_keys.contains(&key) {
                continue;
            }
            let required: bool = r.get(2);
            if !required {
                unlinks.push((r.get(0), r.get(1), tid.clone()));
            } else if cascade {
                if let Some(x) = get_in_tx(db, tx, org, &key.0, &key.1).await? {
                    doomed_keys.insert(key);
                    doomed.push(x);
                }
            } else {
                blocked.push(key);
            }
        }
    }
    if !blocked.is_empty() {
        blocked.sort();
        blocked.dedup();
        return Err(StoreError::RequiredBy {
            blueprint: bp.to_string(),
            identifier: ids.first().cloned().unwrap_or_default(),
            dependents: blocked,
        });
    }
    // Aggregation seeds: the deleted entities' neighbours (their relations' targets and the
    // entities unlinked from them), which survive the delete.
    let mut seeds = Vec::new();
    let config = OrgWrites::read(tx, org).await?;
    if config.aggregates {
        let mut bps: Vec<&str> = doomed.iter().map(|(_, e)| e.blueprint.as_str()).collect();
        bps.sort_unstable();
        bps.dedup();
        let targets = aggregations::relation_targets(tx, org, &bps).await?;
        for (_, e) in &doomed {
            if let Some(t) = targets.get(&e.blueprint) {
                let mut s = Vec::new();
                aggregations::relation_seeds(&e.relations, t, &mut s);
                seeds.extend(s.into_iter().map(|(_, bp, id)| (bp, id)));
            }
        }
    }
    let mut changed: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    for (rid, rel, target) in unlinks {
        changed.entry(rid).or_default().push((rel, target));
    }
    for (rid, rels) in changed {
        let sql = format!("SELECT {COLUMNS} FROM entities e WHERE e.rid = ? AND e.org_id = ?");
        let Some(row) = tx.q(&sql).bind(rid).bind(&org.0).fetch_optional(&mut *tx).await? else {
            continue;
        };
        let (_, before) = from_row(&row);
        if config.aggregates {
            seeds.push((before.blueprint.clone(), before.identifier.clone()));
        }
        let mut after = before.clone();
        for (rel, target) in &rels {
            if let Some(v) = after.relations.get(rel) {
                let nv = unlink(v, target);
                after.relations.insert(rel.clone(), nv);
            }
            tx.q("DELETE FROM entity_relations WHERE src_rid = ? AND relation = ? AND target_identifier = ?")
                .bind(rid)
                .bind(rel)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        after.updated_at = ctx.at.clone();
        after.updated_by = ctx.user_id.clone();
        let jsonb = tx.dialect().jsonb_cast();
        tx.q(&format!(
            "UPDATE entities SET relations = ?{jsonb}, updated_at = ?, updated_by = ? WHERE rid = ? AND org_id = ?"
        ))
        .bind(json_text(&after.relations))
        .bind(&after.updated_at)
        .bind(&after.updated_by)
        .bind(rid)
        .bind(&org.0)
        .execute(&mut *tx)
        .await?;
        let rec = entity_record(ctx, "UPDATE", &after.blueprint, &after.identifier, Some(&before), Some(&after));
        audit::insert(tx, org, &[rec]).await?;
    }
    let mut deleted = Vec::with_capacity(doomed.len());
    for (rid, e) in &doomed {
        tx.q("DELETE FROM entities WHERE rid = ? AND org_id = ?").bind(rid).bind(&org.0).execute(&mut *tx).await?;
        let rec = entity_record(ctx, "DELETE", &e.blueprint, &e.identifier, Some(e), None);
        // Not for the dependents' relations unlinked above: Port fires no automation for a
        // relation nulled because its target was deleted.
        automations::audit_and_record(tx, org, &config.listening, &[rec], ctx.depth).await?;
        deleted.push((e.blueprint.clone(), e.identifier.clone()));
    }
    if config.aggregates {
        aggregations::forget(tx, org, &deleted).await?;
        seeds.retain(|k| !doomed_keys.contains(k));
        aggregations::enqueue_for_seeds(db, tx, org, &seeds).await?;
    }
    Ok(deleted)
}
