//! The `permissions` column of blueprints, actions and pages (migration 0019): a JSON document
//! beside the row, read one or all at a time, and replaced in one transaction with an audit
//! record of its before and after (`diff.{before,after}.permissions`). One implementation for
//! the three aggregates.

use serde_json::{Value, json};

use crate::db::Db;
use crate::{AuditCtx, OrgId, Result, StoreError, audit};

/// A table with a `permissions` column, and the audit resource type of its rows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Holder {
    Blueprint,
    Action,
    Page,
}

impl Holder {
    fn table(self) -> &'static str {
        match self {
            Holder::Blueprint => "blueprints",
            Holder::Action => "actions",
            Holder::Page => "pages",
        }
    }
    fn resource(self) -> &'static str {
        match self {
            Holder::Blueprint => "blueprint",
            Holder::Action => "action",
            Holder::Page => "page",
        }
    }
    fn not_found(self, id: &str) -> StoreError {
        StoreError::NotFound(format!("{} {id:?}", self.resource()))
    }
}

fn doc(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// The row's document (`None`: never set); `NotFound` when there is no such row.
pub(crate) async fn get(db: &Db, h: Holder, org: &OrgId, id: &str) -> Result<Option<Value>> {
    let sql = format!("SELECT permissions FROM {} WHERE org_id = ? AND identifier = ?", h.table());
    let row = db.q(&sql).bind(&org.0).bind(id).fetch_optional(db.read()).await?;
    let Some(row) = row else { return Err(h.not_found(id)) };
    Ok(doc(row.get(0)))
}

/// Every row of `org` that has a document, by identifier.
pub(crate) async fn all(db: &Db, h: Holder, org: &OrgId) -> Result<Vec<(String, Value)>> {
    let sql = format!(
        "SELECT identifier, permissions FROM {} WHERE org_id = ? AND permissions IS NOT NULL ORDER BY identifier",
        h.table()
    );
    let rows = db.q(&sql).bind(&org.0).fetch_all(db.read()).await?;
    Ok(rows.iter().filter_map(|r| Some((r.get(0), doc(r.get(1))?))).collect())
}

/// Replace the row's document, audited; `NotFound` when there is no such row.
pub(crate) async fn set(db: &Db, h: Holder, org: &OrgId, id: &str, new: &Value, ctx: &AuditCtx) -> Result<()> {
    let mut tx = db.begin().await?;
    let table = h.table();
    let before = tx
        .q(&format!("SELECT permissions FROM {table} WHERE org_id = ? AND identifier = ?"))
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut tx)
        .await?;
    let Some(before) = before else { return Err(h.not_found(id)) };
    let before = json!({"permissions": doc(before.get(0))});
    tx.q(&format!(
        "UPDATE {table} SET permissions = ?, updated_at = ?, updated_by = ? WHERE org_id = ? AND identifier = ?"
    ))
    .bind(new.to_string())
    .bind(&ctx.at)
    .bind(&ctx.user_id)
    .bind(&org.0)
    .bind(id)
    .execute(&mut tx)
    .await?;
    let after = json!({"permissions": new});
    let rec = ctx.record(h.resource(), "UPDATE", id, Some(&before), Some(&after));
    audit::insert(&mut tx, org, &[rec]).await?;
    tx.commit().await
}
