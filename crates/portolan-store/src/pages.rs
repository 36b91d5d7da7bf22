//! Pages (port-api.md §9): catalog pages, dashboards, the home page, folders; Port's page object
//! (widgets and containers included) kept as JSON, one row per page.

use async_trait::async_trait;
use serde_json::Value;

use crate::audit;
use crate::db::{Row, Tx};
use crate::permission_docs::{self, Holder};
use crate::sql::Dialect;
use crate::ui::parse_json;
use crate::{AuditCtx, OrgId, Result, SaveMode, SqlStore, StoreError};

/// A page as stored: Port's page object without identifier and meta (`data`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPage {
    pub identifier: String,
    pub data: Value,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

#[async_trait]
pub trait Pages: Send + Sync {
    async fn get_page(&self, org: &OrgId, identifier: &str) -> Result<Option<StoredPage>>;
    /// Pages of `org`, by identifier (a sidebar's worth: tens to hundreds).
    async fn list_pages(&self, org: &OrgId) -> Result<Vec<StoredPage>>;
    /// Create (`Conflict` when taken) or replace (`NotFound` when missing; creation meta kept) a
    /// page, audited (`resourceType` page) in the same transaction.
    async fn save_page(
        &self,
        org: &OrgId,
        identifier: &str,
        data: &Value,
        mode: SaveMode,
        ctx: &AuditCtx,
    ) -> Result<StoredPage>;
    async fn delete_page(&self, org: &OrgId, identifier: &str, ctx: &AuditCtx) -> Result<()>;
    /// The permission document of page `identifier` (`None`: the defaults); `NotFound` when
    /// there is no such page.
    async fn page_permissions(&self, org: &OrgId, identifier: &str) -> Result<Option<Value>>;
    /// Every page of `org` that has a permission document, with it.
    async fn all_page_permissions(&self, org: &OrgId) -> Result<Vec<(String, Value)>>;
    /// Replace a page's permission document, audited (`resourceType` page, the diff under
    /// `permissions`). `NotFound` when there is no such page.
    async fn set_page_permissions(&self, org: &OrgId, identifier: &str, doc: &Value, ctx: &AuditCtx) -> Result<()>;
}

const PAGE_COLUMNS: &str =
    "identifier, CAST(data AS TEXT) AS data, created_at, created_by, updated_at, updated_by FROM pages";

fn page_from_row(r: &Row) -> Result<StoredPage> {
    Ok(StoredPage {
        identifier: r.get("identifier"),
        data: parse_json("page", &r.get::<String, _>("data"))?,
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        updated_at: r.get("updated_at"),
        updated_by: r.get("updated_by"),
    })
}

async fn page_for_update(tx: &mut Tx, org: &OrgId, id: &str) -> Result<Option<StoredPage>> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {PAGE_COLUMNS} WHERE org_id = ? AND identifier = ?{lock}");
    let old = tx.q(&sql).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
    old.as_ref().map(page_from_row).transpose()
}

#[async_trait]
impl Pages for SqlStore {
    async fn get_page(&self, org: &OrgId, identifier: &str) -> Result<Option<StoredPage>> {
        let db = &self.db;
        let sql = format!("SELECT {PAGE_COLUMNS} WHERE org_id = ? AND identifier = ?");
        let row = db.q(&sql).bind(&org.0).bind(db.storable(identifier)).fetch_optional(db.read()).await?;
        row.as_ref().map(page_from_row).transpose()
    }

    async fn list_pages(&self, org: &OrgId) -> Result<Vec<StoredPage>> {
        let db = &self.db;
        let sql = format!("SELECT {PAGE_COLUMNS} WHERE org_id = ? ORDER BY identifier");
        let rows = db.q(&sql).bind(&org.0).fetch_all(db.read()).await?;
        rows.iter().map(page_from_row).collect()
    }

    async fn save_page(
        &self,
        org: &OrgId,
        identifier: &str,
        data: &Value,
        mode: SaveMode,
        ctx: &AuditCtx,
    ) -> Result<StoredPage> {
        let id = self.db.storable(identifier).into_owned();
        let mut tx = self.db.begin().await?;
        let old = page_for_update(&mut tx, org, &id).await?;
        match (mode, &old) {
            (SaveMode::Create, Some(_)) => return Err(StoreError::Conflict(format!("page {identifier:?}"))),
            (SaveMode::Update, None) => return Err(StoreError::NotFound(format!("page {identifier:?}"))),
            _ => {}
        }
        let saved = StoredPage {
            identifier: id.clone(),
            data: data.clone(),
            created_at: old.as_ref().map_or_else(|| ctx.at.clone(), |o| o.created_at.clone()),
            created_by: old.as_ref().map_or_else(|| ctx.user_id.clone(), |o| o.created_by.clone()),
            updated_at: ctx.at.clone(),
            updated_by: ctx.user_id.clone(),
        };
        let json = tx.dialect().json_cast();
        tx.q(&format!(
            "INSERT INTO pages(org_id, identifier, data, created_at, created_by, updated_at, updated_by) \
             VALUES (?, ?, ?{json}, ?, ?, ?, ?) ON CONFLICT(org_id, identifier) DO UPDATE SET \
             data = excluded.data, updated_at = excluded.updated_at, updated_by = excluded.updated_by"
        ))
        .bind(&org.0)
        .bind(&id)
        .bind(saved.data.to_string())
        .bind(&saved.created_at)
        .bind(&saved.created_by)
        .bind(&saved.updated_at)
        .bind(&saved.updated_by)
        .execute(&mut tx)
        .await?;
        let action = if old.is_some() { "UPDATE" } else { "CREATE" };
        let rec = ctx.record("page", action, &id, old.as_ref().map(|o| &o.data), Some(&saved.data));
        audit::insert(&mut tx, org, &[rec]).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn page_permissions(&self, org: &OrgId, identifier: &str) -> Result<Option<Value>> {
        permission_docs::get(&self.db, Holder::Page, org, identifier).await
    }

    async fn all_page_permissions(&self, org: &OrgId) -> Result<Vec<(String, Value)>> {
        permission_docs::all(&self.db, Holder::Page, org).await
    }

    async fn set_page_permissions(&self, org: &OrgId, identifier: &str, doc: &Value, ctx: &AuditCtx) -> Result<()> {
        permission_docs::set(&self.db, Holder::Page, org, identifier, doc, ctx).await
    }

    async fn delete_page(&self, org: &OrgId, identifier: &str, ctx: &AuditCtx) -> Result<()> {
        let id = self.db.storable(identifier).into_owned();
        let mut tx = self.db.begin().await?;
        let Some(old) = page_for_update(&mut tx, org, &id).await? else {
            return Err(StoreError::NotFound(format!("page {identifier:?}")));
        };
        tx.q("DELETE FROM pages WHERE org_id = ? AND identifier = ?").bind(&org.0).bind(&id).execute(&mut tx).await?;
        let rec = ctx.record("page", "DELETE", &id, Some(&old.data), None);
        audit::insert(&mut tx, org, &[rec]).await?;
        tx.commit().await
    }
}
