//! Blueprints: the schema of an organization's catalog.

use async_trait::async_trait;
use portolan_core::Blueprint;

use crate::audit;
use crate::db::{Row, Tx, is_unique_violation};
use crate::dialect::has_nul;
use crate::permission_docs::{self, Holder};
use crate::sql::{Dialect, json_key_path};
use crate::{AuditCtx, AuditRecord, OrgId, Result, SqlStore, StoreError};

/// A blueprint with the meta fields the store keeps beside it.
#[derive(Debug, Clone)]
pub struct StoredBlueprint {
    pub blueprint: Blueprint,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// A key renamed in a blueprint update; entity data follows it.
#[derive(Debug, Clone)]
pub enum Rename {
    Property { from: String, to: String },
    Relation { from: String, to: String },
}

#[async_trait]
pub trait Blueprints: Send + Sync {
    async fn list_blueprints(&self, org: &OrgId) -> Result<Vec<StoredBlueprint>>;
    async fn get_blueprint(&self, org: &OrgId, id: &str) -> Result<Option<StoredBlueprint>>;
    async fn create_blueprint(&self, org: &OrgId, bp: &Blueprint, ctx: &AuditCtx) -> Result<StoredBlueprint>;
    /// Replace blueprint `id` (which may be renamed to `bp.identifier`); entity data whose keys
    /// are renamed is carried along through `renames`.
    async fn update_blueprint(
        &self,
        org: &OrgId,
        id: &str,
        bp: &Blueprint,
        renames: &[Rename],
        ctx: &AuditCtx,
    ) -> Result<StoredBlueprint>;
    async fn delete_blueprint(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()>;
    /// The version of `org`'s blueprints: it changes (in the same transaction) whenever any of
    /// them is created, changed or deleted, through any node. One primary-key lookup; 0 before
    /// the organization's first blueprint.
    async fn blueprints_version(&self, org: &OrgId) -> Result<i64>;
    /// Entities of other blueprints with a required relation to an entity of `bp`:
    /// (their blueprint, their identifier, the identifier of the `bp` entity), at most `limit`.
    async fn required_dependents(&self, org: &OrgId, bp: &str, limit: u32) -> Result<Vec<(String, String, String)>>;
    /// The permission document of blueprint `bp` (`None`: the defaults); `NotFound` when there
    /// is no such blueprint.
    async fn blueprint_permissions(&self, org: &OrgId, bp: &str) -> Result<Option<serde_json::Value>>;
    /// Every blueprint of `org` that has a permission document, with it.
    async fn all_blueprint_permissions(&self, org: &OrgId) -> Result<Vec<(String, serde_json::Value)>>;
    /// Replace blueprint `bp`'s permission document, audited (`resourceType` blueprint, the
    /// diff under `permissions`). `NotFound` when there is no such blueprint.
    async fn set_blueprint_permissions(
        &self,
        org: &OrgId,
        bp: &str,
        doc: &serde_json::Value,
        ctx: &AuditCtx,
    ) -> Result<()>;
}

/// The columns `from_row` reads (`body` as text, so its key order is the stored one).
const COLUMNS: &str = "identifier, CAST(body AS TEXT) AS body, created_at, created_by, updated_at, updated_by";

fn from_row(r: &Row) -> Result<StoredBlueprint> {
    let body: String = r.get("body");
    let blueprint =
        serde_json::from_str(&body).map_err(|e| StoreError::Db(format!("corrupt blueprint row: {e}").into()))?;
    Ok(StoredBlueprint {
        blueprint,
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        updated_at: r.get("updated_at"),
        updated_by: r.get("updated_by"),
    })
}

fn to_json(bp: &Blueprint) -> Result<String> {
    serde_json::to_string(bp).map_err(|e| StoreError::Db(e.to_string().into()))
}

fn record(
    ctx: &AuditCtx,
    action: &str,
    id: &str,
    before: Option<&Blueprint>,
    after: Option<&Blueprint>,
) -> AuditRecord {
    AuditRecord { blueprint: Some(id.into()), ..ctx.record("blueprint", action, id, before, after) }
}

/// The stored blueprint `id`, read (and on PostgreSQL locked: `FOR UPDATE`) inside the write
/// transaction; NotFound if absent.
async fn get_for_update(tx: &mut Tx, org: &OrgId, id: &str) -> Result<StoredBlueprint> {
    let lock = match tx.dialect() {
        Dialect::Sqlite => "", // the one writer connection serializes writes
        Dialect::Postgres if has_nul(id) => return Err(StoreError::NotFound(format!("blueprint {id:?}"))),
        Dialect::Postgres => " FOR UPDATE",
    };
    let row = tx
        .q(&format!("SELECT {COLUMNS} FROM blueprints WHERE org_id = ? AND identifier = ?{lock}"))
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    match row {
        Some(row) => from_row(&row),
        None => Err(StoreError::NotFound(format!("blueprint {id:?}"))),
    }
}

/// The edges whose source is an entity of blueprint `?` (after the organization `?`).
const OF_BLUEPRINT: &str = "src_rid IN (SELECT rid FROM entities WHERE org_id = ? AND blueprint = ?)";

/// Move (`to` is `Some`) or remove the key `key` of column `col` of every entity of blueprint
/// `bp`, with the edges of a relation.
async fn move_key(tx: &mut Tx, org: &OrgId, bp: &str, col: &str, key: &str, to: Option<&str>) -> Result<()> {
    let (from_k, to_k) = match tx.dialect() {
        Dialect::Sqlite => (json_key_path(key), to.map(json_key_path)),
        Dialect::Postgres => (key.to_string(), to.map(str::to_string)),
    };
    let (set, has) = match (tx.dialect(), to.is_some()) {
        (Dialect::Sqlite, true) => (
            format!("json_set(json_remove({col}, ?), ?, json_extract({col}, ?))"),
            format!("json_type({col}, ?) IS NOT NULL"),
        ),
        (Dialect::Sqlite, false) => (format!("json_remove({col}, ?)"), format!("json_type({col}, ?) IS NOT NULL")),
        (Dialect::Postgres, true) => (
            format!("({col} - ?::text) || jsonb_build_object(?::text, {col} -> ?::text)"),
            format!("jsonb_exists({col}, ?)"),
        ),
        (Dialect::Postgres, false) => (format!("{col} - ?::text"), format!("jsonb_exists({col}, ?)")),
    };
    let mut q =
        tx.q(&format!("UPDATE entities SET {col} = {set} WHERE org_id = ? AND blueprint = ? AND {has}")).bind(&from_k);
    if let Some(to_k) = &to_k {
        q = q.bind(to_k).bind(&from_k);
    }
    q.bind(&org.0).bind(bp).bind(&from_k).execute(&mut *tx).await?;
    if col == "relations" {
        let q = match to {
            Some(to) => tx
                .q(&format!(
                    "UPDATE entity_relations SET relation = ? WHERE org_id = ? AND relation = ? AND {OF_BLUEPRINT}"
                ))
                .bind(to),
            None => tx.q(&format!("DELETE FROM entity_relations WHERE org_id = ? AND relation = ? AND {OF_BLUEPRINT}")),
        };
        q.bind(&org.0).bind(key).bind(&org.0).bind(bp).execute(&mut *tx).await?;
    }
    Ok(())
}

#[async_trait]
impl Blueprints for SqlStore {
    async fn list_blueprints(&self, org: &OrgId) -> Result<Vec<StoredBlueprint>> {
        let db = &self.db;
        let rows = db
            .q(&format!("SELECT {COLUMNS} FROM blueprints WHERE org_id = ? ORDER BY created_at, identifier"))
            .bind(&org.0)
            .fetch_all(db.read())
            .await?;
        rows.iter().map(from_row).collect()
    }

    async fn get_blueprint(&self, org: &OrgId, id: &str) -> Result<Option<StoredBlueprint>> {
        let db = &self.db;
        if db.refuses(id) {
            return Ok(None);
        }
        let row = db
            .q(&format!("SELECT {COLUMNS} FROM blueprints WHERE org_id = ? AND identifier = ?"))
            .bind(&org.0)
            .bind(id)
            .fetch_optional(db.read())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn create_blueprint(&self, org: &OrgId, bp: &Blueprint, ctx: &AuditCtx) -> Result<StoredBlueprint> {
        let mut tx = self.db.begin().await?;
        let json = tx.dialect().json_cast();
        let res = tx
            .q(&format!(
                "INSERT INTO blueprints(org_id, identifier, body, created_at, created_by, updated_at, updated_by) \
                 VALUES (?, ?, ?{json}, ?, ?, ?, ?)"
            ))
            .bind(&org.0)
            .bind(&bp.identifier)
            .bind(to_json(bp)?)
            .bind(&ctx.at)
            .bind(&ctx.user_id)
            .bind(&ctx.at)
            .bind(&ctx.user_id)
            .run(&mut tx)
            .await;
        match res {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("blueprint {:?}", bp.identifier)));
            }
            r => r?,
        };
        audit::insert(&mut tx, org, &[record(ctx, "CREATE", &bp.identifier, None, Some(bp))]).await?;
        crate::aggregations::on_blueprint_saved(&self.db, &mut tx, org, None, bp).await?;
        tx.commit().await?;
        Ok(StoredBlueprint {
            blueprint: bp.clone(),
            created_at: ctx.at.clone(),
            created_by: ctx.user_id.clone(),
            updated_at: ctx.at.clone(),
            updated_by: ctx.user_id.clone(),
        })
    }

    async fn update_blueprint(
        &self,
        org: &OrgId,
        id: &str,
        bp: &Blueprint,
        renames: &[Rename],
        ctx: &AuditCtx,
    ) -> Result<StoredBlueprint> {
        let mut tx = self.db.begin().await?;
        let before = get_for_update(&mut tx, org, id).await?;
        if bp.identifier != id {
            return Err(StoreError::Invalid(portolan_core::FieldError::new(
                "identifier",
                "cannot be changed; create a new blueprint instead",
            )));
        }
        let json = tx.dialect().json_cast();
        tx.q(&format!(
            "UPDATE blueprints SET body = ?{json}, updated_at = ?, updated_by = ? WHERE org_id = ? AND identifier = ?"
        ))
        .bind(to_json(bp)?)
        .bind(&ctx.at)
        .bind(&ctx.user_id)
        .bind(&org.0)
        .bind(id)
        .execute(&mut tx)
        .await?;
        for r in renames {
            let (col, from, to) = match r {
                Rename::Property { from, to } => ("properties", from, to),
                Rename::Relation { from, to } => ("relations", from, to),
            };
            move_key(&mut tx, org, id, col, from, Some(to)).await?;
        }
        // Values of properties and relations the blueprint no longer has go, with their edges, so
        // a key added again later starts empty (renamed keys were moved above).
        let removed_props =
            before.blueprint.schema.properties.keys().filter(|k| !bp.schema.properties.contains_key(*k));
        let removed_rels = before.blueprint.relations.keys().filter(|k| !bp.relations.contains_key(*k));
        for (col, key) in removed_props.map(|k| ("properties", k)).chain(removed_rels.map(|k| ("relations", k))) {
            move_key(&mut tx, org, id, col, key, None).await?;
        }
        // A relation that became (non-)required changes how deletes treat its edges.
        for (rel_id, rel) in &bp.relations {
            tx.q(&format!(
                "UPDATE entity_relations SET required = ? WHERE org_id = ? AND relation = ? AND {OF_BLUEPRINT}"
            ))
            .bind(rel.required)
            .bind(&org.0)
            .bind(rel_id)
            .bind(&org.0)
            .bind(id)
            .execute(&mut tx)
            .await?;
        }
        audit::insert(&mut tx, org, &[record(ctx, "UPDATE", id, Some(&before.blueprint), Some(bp))]).await?;
        crate::aggregations::on_blueprint_saved(&self.db, &mut tx, org, Some(&before.blueprint), bp).await?;
        tx.commit().await?;
        Ok(StoredBlueprint {
            blueprint: bp.clone(),
            updated_at: ctx.at.clone(),
            updated_by: ctx.user_id.clone(),
            ..before
        })
    }

    async fn delete_blueprint(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let before = get_for_update(&mut tx, org, id).await?;
        let count: i64 = tx
            .q("SELECT COUNT(*) FROM entities WHERE org_id = ? AND blueprint = ?")
            .bind(&org.0)
            .bind(id)
            .fetch_one(&mut tx)
            .await?
            .get(0);
        if count > 0 {
            return Err(StoreError::HasEntities { blueprint: id.into(), count: count as u64 });
        }
        let others = tx
            .q(&format!("SELECT {COLUMNS} FROM blueprints WHERE org_id = ? AND identifier != ?"))
            .bind(&org.0)
            .bind(id)
            .fetch_all(&mut tx)
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
        // Its scorecards (and their history) and aggregation values go with it.
        for table in ["scorecard_level_history", "scorecard_results", "aggregation_values"] {
            tx.q(&format!("DELETE FROM {table} WHERE org_id = ? AND blueprint = ?"))
                .bind(&org.0)
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        tx.q("DELETE FROM scorecards WHERE org_id = ? AND blueprint = ?")
            .bind(&org.0)
            .bind(id)
            .execute(&mut tx)
            .await?;
        tx.q("DELETE FROM blueprints WHERE org_id = ? AND identifier = ?")
            .bind(&org.0)
            .bind(id)
            .execute(&mut tx)
            .await?;
        audit::insert(&mut tx, org, &[record(ctx, "DELETE", id, Some(&before.blueprint), None)]).await?;
        tx.commit().await
    }

    async fn blueprints_version(&self, org: &OrgId) -> Result<i64> {
        let db = &self.db;
        let row = db
            .q("SELECT version FROM blueprint_versions WHERE org_id = ?")
            .bind(&org.0)
            .fetch_optional(db.read())
            .await?;
        Ok(row.map_or(0, |r| r.get::<i64, _>(0)))
    }

    async fn blueprint_permissions(&self, org: &OrgId, bp: &str) -> Result<Option<serde_json::Value>> {
        if self.db.refuses(bp) {
            return Err(StoreError::NotFound(format!("blueprint {bp:?}")));
        }
        permission_docs::get(&self.db, Holder::Blueprint, org, bp).await
    }

    async fn all_blueprint_permissions(&self, org: &OrgId) -> Result<Vec<(String, serde_json::Value)>> {
        permission_docs::all(&self.db, Holder::Blueprint, org).await
    }

    async fn set_blueprint_permissions(
        &self,
        org: &OrgId,
        bp: &str,
        doc: &serde_json::Value,
        ctx: &AuditCtx,
    ) -> Result<()> {
        permission_docs::set(&self.db, Holder::Blueprint, org, bp, doc, ctx).await
    }

    async fn required_dependents(&self, org: &OrgId, bp: &str, limit: u32) -> Result<Vec<(String, String, String)>> {
        let db = &self.db;
        let rows = db
            .q("SELECT DISTINCT s.blueprint, s.identifier, r.target_identifier FROM entity_relations r \
                JOIN entities s ON s.rid = r.src_rid \
                WHERE r.org_id = ? AND s.org_id = ? AND r.target_blueprint = ? AND s.blueprint <> ? AND r.required \
                ORDER BY 1, 2, 3 LIMIT ?")
            .bind(&org.0)
            .bind(&org.0)
            .bind(bp)
            .bind(bp)
            .bind(i64::from(limit))
            .fetch_all(db.read())
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }
}
