//! Integrations (Ocean installations): their objects, config versions, kind examples, event log and sync cursors.

use async_trait::async_trait;
use serde_json::Value;

use crate::audit;
use crate::db::Row;
use crate::eventlog::INTEGRATION_LOG;
use crate::sql::Dialect;
use crate::ui::parse_json;
use crate::{AuditCtx, AuditRecord, IntegrationLog, LogFilter, OrgId, Result, SqlStore, StoreError};

/// An integration: Port's integration object (`data`: `installationAppType`, `version`,
/// `config`, `changelogDestination`, `resyncState`, … as written) and the meta fields the store
/// keeps beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIntegration {
    pub identifier: String,
    pub data: Value,
    /// Version of `data.config`: 1 when created, +1 on every change of the config.
    pub config_version: i64,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// One version of an integration's config (its mapping).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigVersion {
    pub version: i64,
    pub config: Value,
    pub created_at: String,
    pub created_by: String,
}

/// How [`Integrations::save_integration`] treats an existing row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Fail with `Conflict` if it exists.
    Create,
    /// Fail with `NotFound` if it does not.
    Update,
}

#[async_trait]
pub trait Integrations: Send + Sync {
    async fn get_integration(&self, org: &OrgId, id: &str) -> Result<Option<StoredIntegration>>;
    async fn list_integrations(&self, org: &OrgId) -> Result<Vec<StoredIntegration>>;
    /// Create or replace an integration's object. When `data.config` differs from the stored one
    /// (or on create), the config version is bumped and the new config kept as a version. With
    /// `audit`, an audit record (`resourceType` integration) is appended in the same transaction.
    async fn save_integration(
        &self,
        org: &OrgId,
        id: &str,
        data: &Value,
        mode: SaveMode,
        audit: bool,
        ctx: &AuditCtx,
    ) -> Result<StoredIntegration>;
    /// Delete an integration with its versions, examples, resyncs and event log.
    async fn delete_integration(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()>;
    /// Every version of the config, newest first.
    async fn integration_config_versions(&self, org: &OrgId, id: &str) -> Result<Vec<ConfigVersion>>;
    /// The newest `limit` config versions of an integration, newest first.
    async fn recent_config_versions(&self, org: &OrgId, id: &str, limit: u32) -> Result<Vec<ConfigVersion>>;
    async fn put_kind_examples(&self, org: &OrgId, id: &str, kind: &str, examples: &Value, at: &str) -> Result<()>;
    async fn kind_examples(&self, org: &OrgId, id: &str, kind: &str) -> Result<Option<Value>>;
    async fn append_integration_logs(&self, org: &OrgId, id: &str, lines: &[IntegrationLog]) -> Result<()>;
    async fn list_integration_logs(&self, org: &OrgId, id: &str, filter: &LogFilter) -> Result<Vec<IntegrationLog>>;
    /// The cursor stored for (integration `id`, `kind`, `index`), if any.
    async fn integration_cursor(&self, org: &OrgId, id: &str, kind: &str, index: &str) -> Result<Option<Value>>;
    /// Create or replace the cursor of (integration `id`, `kind`, `index`).
    async fn save_integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
        cursor: &Value,
        at: &str,
    ) -> Result<()>;
    /// Replace an existing cursor only: `false` (nothing written) when there is none.
    async fn update_integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
        cursor: &Value,
        at: &str,
    ) -> Result<bool>;
}

const INTEGRATION_COLUMNS: &str = "identifier, CAST(data AS TEXT) AS data, config_version, created_at, created_by, \
     updated_at, updated_by FROM integrations";

fn integration_from_row(r: &Row) -> Result<StoredIntegration> {
    Ok(StoredIntegration {
        identifier: r.get("identifier"),
        data: parse_json("integration", &r.get::<String, _>("data"))?,
        config_version: r.get("config_version"),
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        updated_at: r.get("updated_at"),
        updated_by: r.get("updated_by"),
    })
}

fn version_from_row(r: &Row) -> Result<ConfigVersion> {
    Ok(ConfigVersion {
        version: r.get(0),
        config: parse_json("config", &r.get::<String, _>(1))?,
        created_at: r.get(2),
        created_by: r.get(3),
    })
}

/// The audit record of an integration change.
fn audit_record(id: &str, action: &str, before: Option<&Value>, after: Option<&Value>, ctx: &AuditCtx) -> AuditRecord {
    ctx.record("integration", action, id, before, after)
}

/// The tables of an integration's dependent rows, deleted with it.
const DEPENDENT_TABLES: [&str; 5] = [
    "integration_config_versions",
    "integration_examples",
    "integration_resyncs",
    "integration_logs",
    "integration_cursors",
];

#[async_trait]
impl Integrations for SqlStore {
    async fn get_integration(&self, org: &OrgId, id: &str) -> Result<Option<StoredIntegration>> {
        let db = &self.db;
        let sql = format!("SELECT {INTEGRATION_COLUMNS} WHERE org_id = ? AND identifier = ?");
        let row = db.q(&sql).bind(&org.0).bind(id).fetch_optional(db.read()).await?;
        row.as_ref().map(integration_from_row).transpose()
    }

    async fn list_integrations(&self, org: &OrgId) -> Result<Vec<StoredIntegration>> {
        let db = &self.db;
        let sql = format!("SELECT {INTEGRATION_COLUMNS} WHERE org_id = ? ORDER BY identifier");
        let rows = db.q(&sql).bind(&org.0).fetch_all(db.read()).await?;
        rows.iter().map(integration_from_row).collect()
    }

    async fn save_integration(
        &self,
        org: &OrgId,
        id: &str,
        data: &Value,
        mode: SaveMode,
        audit_it: bool,
        ctx: &AuditCtx,
    ) -> Result<StoredIntegration> {
        let mut tx = self.db.begin().await?;
        let (json, lock) = match tx.dialect() {
            Dialect::Sqlite => ("", ""),
            Dialect::Postgres => ("::json", " FOR UPDATE"),
        };
        let sql = format!("SELECT {INTEGRATION_COLUMNS} WHERE org_id = ? AND identifier = ?{lock}");
        let old = tx.q(&sql).bind(&org.0).bind(id).fetch_optional(&mut tx).await?;
        let old = old.as_ref().map(integration_from_row).transpose()?;
        let version = match (mode, &old) {
            (SaveMode::Create, Some(_)) => return Err(StoreError::Conflict(format!("integration {id:?}"))),
            (SaveMode::Update, None) => return Err(StoreError::NotFound(format!("integration {id:?}"))),
            (_, None) => 1,
            (_, Some(o)) if o.data.get("config") != data.get("config") => o.config_version + 1,
            (_, Some(o)) => o.config_version,
        };
        let (created_at, created_by) = old
            .as_ref()
            .map_or((ctx.at.clone(), ctx.user_id.clone()), |o| (o.created_at.clone(), o.created_by.clone()));
        tx.q(&format!(
            "INSERT INTO integrations(org_id, identifier, data, config_version, created_at, created_by, updated_at, updated_by) \
             VALUES (?, ?, ?{json}, ?, ?, ?, ?, ?) ON CONFLICT(org_id, identifier) DO UPDATE SET data = excluded.data, \
             config_version = excluded.config_version, updated_at = excluded.updated_at, updated_by = excluded.updated_by"
        ))
        .bind(&org.0)
        .bind(id)
        .bind(data.to_string())
        .bind(version)
        .bind(&created_at)
        .bind(&created_by)
        .bind(&ctx.at)
        .bind(&ctx.user_id)
        .execute(&mut tx)
        .await?;
        if old.as_ref().is_none_or(|o| o.config_version != version) {
            tx.q(&format!(
                "INSERT INTO integration_config_versions(org_id, integration, version, config, created_at, created_by) \
                 VALUES (?, ?, ?, ?{json}, ?, ?)"
            ))
            .bind(&org.0)
            .bind(id)
            .bind(version)
            .bind(data.get("config").unwrap_or(&Value::Null).to_string())
            .bind(&ctx.at)
            .bind(&ctx.user_id)
            .execute(&mut tx)
            .await?;
        }
        if audit_it {
            let action = if old.is_some() { "UPDATE" } else { "CREATE" };
            let rec = audit_record(id, action, old.as_ref().map(|o| &o.data), Some(data), ctx);
            audit::insert(&mut tx, org, &[rec]).await?;
        }
        tx.commit().await?;
        Ok(StoredIntegration {
            identifier: id.to_string(),
            data: data.clone(),
            config_version: version,
            created_at,
            created_by,
            updated_at: ctx.at.clone(),
            updated_by: ctx.user_id.clone(),
        })
    }

    async fn delete_integration(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let old = tx
            .q("SELECT CAST(data AS TEXT) FROM integrations WHERE org_id = ? AND identifier = ?")
            .bind(&org.0)
            .bind(id)
            .fetch_optional(&mut tx)
            .await?;
        let Some(old) = old else {
            return Err(StoreError::NotFound(format!("integration {id:?}")));
        };
        let before = parse_json("integration", &old.get::<String, _>(0))?;
        for table in DEPENDENT_TABLES {
            let sql = format!("DELETE FROM {table} WHERE org_id = ? AND integration = ?");
            tx.q(&sql).bind(&org.0).bind(id).execute(&mut tx).await?;
        }
        tx.q("DELETE FROM integrations WHERE org_id = ? AND identifier = ?")
            .bind(&org.0)
            .bind(id)
            .execute(&mut tx)
            .await?;
        audit::insert(&mut tx, org, &[audit_record(id, "DELETE", Some(&before), None, ctx)]).await?;
        tx.commit().await
    }

    async fn integration_config_versions(&self, org: &OrgId, id: &str) -> Result<Vec<ConfigVersion>> {
        let db = &self.db;
        let rows = db
            .q("SELECT version, CAST(config AS TEXT), created_at, created_by FROM integration_config_versions \
                WHERE org_id = ? AND integration = ? ORDER BY version DESC")
            .bind(&org.0)
            .bind(id)
            .fetch_all(db.read())
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn recent_config_versions(&self, org: &OrgId, id: &str, limit: u32) -> Result<Vec<ConfigVersion>> {
        let db = &self.db;
        if db.refuses(id) {
            return Ok(Vec::new());
        }
        let rows = db
            .q("SELECT version, CAST(config AS TEXT), created_at, created_by FROM integration_config_versions \
                WHERE org_id = ? AND integration = ? ORDER BY version DESC LIMIT ?")
            .bind(&org.0)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(db.read())
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn put_kind_examples(&self, org: &OrgId, id: &str, kind: &str, examples: &Value, at: &str) -> Result<()> {
        let db = &self.db;
        let json = db.dialect().json_cast();
        db.q(&format!(
            "INSERT INTO integration_examples(org_id, integration, kind, examples, updated_at) VALUES (?, ?, ?, ?{json}, ?) \
             ON CONFLICT(org_id, integration, kind) DO UPDATE SET examples = excluded.examples, updated_at = excluded.updated_at"
        ))
        .bind(&org.0)
        .bind(id)
        .bind(kind)
        .bind(examples.to_string())
        .bind(at)
        .execute(db.write())
        .await?;
        Ok(())
    }

    async fn kind_examples(&self, org: &OrgId, id: &str, kind: &str) -> Result<Option<Value>> {
        let db = &self.db;
        let row = db
            .q("SELECT CAST(examples AS TEXT) FROM integration_examples WHERE org_id = ? AND integration = ? AND kind = ?")
            .bind(&org.0)
            .bind(id)
            .bind(kind)
            .fetch_optional(db.read())
            .await?;
        row.map(|r| parse_json("examples", &r.get::<String, _>(0))).transpose()
    }

    async fn append_integration_logs(&self, org: &OrgId, id: &str, lines: &[IntegrationLog]) -> Result<()> {
        INTEGRATION_LOG.append(&self.db, org, id, lines).await
    }

    async fn list_integration_logs(&self, org: &OrgId, id: &str, filter: &LogFilter) -> Result<Vec<IntegrationLog>> {
        INTEGRATION_LOG.list(&self.db, org, id, filter).await
    }

    async fn integration_cursor(&self, org: &OrgId, id: &str, kind: &str, index: &str) -> Result<Option<Value>> {
        let db = &self.db;
        let row = db
            .q("SELECT CAST(cursor AS TEXT) FROM integration_cursors \
                WHERE org_id = ? AND integration = ? AND kind = ? AND idx = ?")
            .bind(&org.0)
            .bind(db.storable(id))
            .bind(db.storable(kind))
            .bind(db.storable(index))
            .fetch_optional(db.read())
            .await?;
        row.map(|r| parse_json("cursor", &r.get::<String, _>(0))).transpose()
    }

    async fn save_integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
        cursor: &Value,
        at: &str,
    ) -> Result<()> {
        let db = &self.db;
        let json = db.dialect().json_cast();
        db.q(&format!(
            "INSERT INTO integration_cursors(org_id, integration, kind, idx, cursor, updated_at) VALUES (?, ?, ?, ?, ?{json}, ?) \
             ON CONFLICT(org_id, integration, kind, idx) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at"
        ))
        .bind(&org.0)
        .bind(db.storable(id))
        .bind(db.storable(kind))
        .bind(db.storable(index))
        .bind(db.storable(&cursor.to_string()))
        .bind(at)
        .execute(db.write())
        .await?;
        Ok(())
    }

    async fn update_integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
        cursor: &Value,
        at: &str,
    ) -> Result<bool> {
        let db = &self.db;
        let json = db.dialect().json_cast();
        let done = db
            .q(&format!(
                "UPDATE integration_cursors SET cursor = ?{json}, updated_at = ? \
                 WHERE org_id = ? AND integration = ? AND kind = ? AND idx = ?"
            ))
            .bind(db.storable(&cursor.to_string()))
            .bind(at)
            .bind(&org.0)
            .bind(db.storable(id))
            .bind(db.storable(kind))
            .bind(db.storable(index))
            .execute(db.write())
            .await?;
        Ok(done > 0)
    }
}
