//! Blueprint rows (PostgreSQL).

use portolan_core::Blueprint;
use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::{audit, pgq};

/// The columns `from_row` reads (`body` as text, so its key order is the stored one).
const COLUMNS: &str = "identifier, body::text AS body, created_at, created_by, updated_at, updated_by";
use crate::{AuditCtx, AuditRecord, OrgId, Rename, Result, StoreError, StoredBlueprint};

fn from_row(r: &PgRow) -> Result<StoredBlueprint> {
    let body: String = r.get("body");
    let blueprint = serde_json::from_str(&body).map_err(|e| StoreError::Db(format!("corrupt blueprint row: {e}")))?;
    Ok(StoredBlueprint {
        blueprint,
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        updated_at: r.get("updated_at"),
        updated_by: r.get("updated_by"),
    })
}

fn to_json(bp: &Blueprint) -> Result<String> {
    serde_json::to_string(bp).map_err(|e| StoreError::Db(e.to_string()))
}

pub(crate) fn record(
    ctx: &AuditCtx,
    action: &str,
    id: &str,
    before: Option<&Blueprint>,
    after: Option<&Blueprint>,
) -> AuditRecord {
    AuditRecord {
        id: String::new(),
        at: ctx.at.clone(),
        resource_type: "blueprint".into(),
        action: action.into(),
        status: "SUCCESS".into(),
        identifier: id.into(),
        blueprint: Some(id.into()),
        entity: None,
        origin: ctx.origin.clone(),
        user_id: ctx.user_id.clone(),
        diff: Some(json!({"before": before, "after": after})),
        message: None,
    }
}

pub(crate) async fn list(pool: &PgPool, org: &OrgId) -> Result<Vec<StoredBlueprint>> {
    let rows = pgq(&format!("SELECT {COLUMNS} FROM blueprints WHERE org_id = ? ORDER BY created_at, identifier"))
        .bind(&org.0)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn get(pool: &PgPool, org: &OrgId, id: &str) -> Result<Option<StoredBlueprint>> {
    if super::entities::has_nul(id) {
        return Ok(None); // no identifier has one; PostgreSQL text cannot hold it
    }
    let row = pgq(&format!("SELECT {COLUMNS} FROM blueprints WHERE org_id = ? AND identifier = ?"))
        .bind(&org.0)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The stored blueprint `id`, read inside the write transaction; NotFound if absent.
async fn get_for_update(conn: &mut sqlx::PgConnection, org: &OrgId, id: &str) -> Result<StoredBlueprint> {
    if super::entities::has_nul(id) {
        return Err(StoreError::NotFound(format!("blueprint {id:?}")));
    }
    let row = pgq(&format!("SELECT {COLUMNS} FROM blueprints WHERE org_id = ? AND identifier = ? FOR UPDATE"))
        .bind(&org.0)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    match row {
        Some(row) => from_row(&row),
        None => Err(StoreError::NotFound(format!("blueprint {id:?}"))),
    }
}

pub(crate) async fn create(pool: &PgPool, org: &OrgId, bp: &Blueprint, ctx: &AuditCtx) -> Result<StoredBlueprint> {
    let mut tx = pool.begin().await?;
    let res = pgq(
        "INSERT INTO blueprints(org_id, identifier, body, created_at, created_by, updated_at, updated_by) VALUES (?, ?, ?::json, ?, ?, ?, ?)",
    )
    .bind(&org.0)
    .bind(&bp.identifier)
    .bind(to_json(bp)?)
    .bind(&ctx.at)
    .bind(&ctx.user_id)
    .bind(&ctx.at)
    .bind(&ctx.user_id)
    .execute(&mut *tx)
    .await;
    match res {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(StoreError::Conflict(format!("blueprint {:?}", bp.identifier)));
        }
        r => r?,
    };
    audit::insert(&mut tx, org, &record(ctx, "CREATE", &bp.identifier, None, Some(bp))).await?;
    tx.commit().await?;
    Ok(StoredBlueprint {
        blueprint: bp.clone(),
        created_at: ctx.at.clone(),
        created_by: ctx.user_id.clone(),
        updated_at: ctx.at.clone(),
        updated_by: ctx.user_id.clone(),
    })
}

pub(crate) async fn update(
    pool: &PgPool,
    org: &OrgId,
    id: &str,
    bp: &Blueprint,
    renames: &[Rename],
    ctx: &AuditCtx,
) -> Result<StoredBlueprint> {
    let mut tx = pool.begin().await?;
    let before = get_for_update(&mut tx, org, id).await?;
    if bp.identifier != id {
        return Err(StoreError::Invalid(portolan_core::FieldError::new(
            "identifier",
            "cannot be changed; create a new blueprint instead",
        )));
    }
    pgq("UPDATE blueprints SET body = ?::json, updated_at = ?, updated_by = ? WHERE org_id = ? AND identifier = ?")
        .bind(to_json(bp)?)
        .bind(&ctx.at)
        .bind(&ctx.user_id)
        .bind(&org.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for r in renames {
        let (col, from, to) = match r {
            Rename::Property { from, to } => ("properties", from, to),
            Rename::Relation { from, to } => ("relations", from, to),
        };
        let sql = format!(
            "UPDATE entities SET {col} = ({col} - ?::text) || jsonb_build_object(?::text, {col} -> ?::text) \
             WHERE org_id = ? AND blueprint = ? AND jsonb_exists({col}, ?)"
        );
        pgq(&sql).bind(from).bind(to).bind(from).bind(&org.0).bind(id).bind(from).execute(&mut *tx).await?;
        if let Rename::Relation { from, to } = r {
            pgq("UPDATE entity_relations SET relation = ? WHERE org_id = ? AND relation = ? \
                 AND src_rid IN (SELECT rid FROM entities WHERE org_id = ? AND blueprint = ?)")
            .bind(to)
            .bind(&org.0)
            .bind(from)
            .bind(&org.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
    }
    // Values of properties and relations the blueprint no longer has go, with their edges, so a
    // key added again later starts empty (renamed keys were moved above).
    let removed_props = before.blueprint.schema.properties.keys().filter(|k| !bp.schema.properties.contains_key(*k));
    let removed_rels = before.blueprint.relations.keys().filter(|k| !bp.relations.contains_key(*k));
    for (col, key) in removed_props.map(|k| ("properties", k)).chain(removed_rels.map(|k| ("relations", k))) {
        let sql = format!(
            "UPDATE entities SET {col} = {col} - ?::text WHERE org_id = ? AND blueprint = ? AND jsonb_exists({col}, ?)"
        );
        pgq(&sql).bind(key).bind(&org.0).bind(id).bind(key).execute(&mut *tx).await?;
        if col == "relations" {
            pgq("DELETE FROM entity_relations WHERE org_id = ? AND relation = ? \
                 AND src_rid IN (SELECT rid FROM entities WHERE org_id = ? AND blueprint = ?)")
            .bind(&org.0)
            .bind(key)
            .bind(&org.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
    }
    // A relation that became (non-)required changes how deletes treat its edges.
    for (rel_id, rel) in &bp.relations {
        pgq("UPDATE entity_relations SET required = ? WHERE org_id = ? AND relation = ? \
             AND src_rid IN (SELECT rid FROM entities WHERE org_id = ? AND blueprint = ?)")
        .bind(rel.required)
        .bind(&org.0)
        .bind(rel_id)
        .bind(&org.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    audit::insert(&mut tx, org, &record(ctx, "UPDATE", id, Some(&before.blueprint), Some(bp))).await?;
    tx.commit().await?;
    Ok(StoredBlueprint { blueprint: bp.clone(), updated_at: ctx.at.clone(), updated_by: ctx.user_id.clone(), ..before })
}

pub(crate) async fn delete(pool: &PgPool, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
    let mut tx = pool.begin().await?;
    let before = get_for_update(&mut tx, org, id).await?;
    let count: i64 = pgq("SELECT COUNT(*) FROM entities WHERE org_id = ? AND blueprint = ?")
        .bind(&org.0)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
    if count > 0 {
        return Err(StoreError::HasEntities { blueprint: id.into(), count: count as u64 });
    }
    let others = pgq(&format!("SELECT {COLUMNS} FROM blueprints WHERE org_id = ? AND identifier != ?"))
        .bind(&org.0)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    for r in &others {
        let other = from_row(r)?;
        if let Some((rel_id, _)) = other.blueprint.relations.iter().find(|(_, rel)| rel.target == id) {
            return Err(StoreError::Referenced {
                blueprint: id.into(),
                source_bp: other.blueprint.identifier.clone(),
                relation: rel_id.clone(),
            });
        }
    }
    pgq("DELETE FROM blueprints WHERE org_id = ? AND identifier = ?").bind(&org.0).bind(id).execute(&mut *tx).await?;
    audit::insert(&mut tx, org, &record(ctx, "DELETE", id, Some(&before.blueprint), None)).await?;
    tx.commit().await?;
    Ok(())
}
