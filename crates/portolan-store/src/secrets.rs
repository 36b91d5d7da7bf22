//! Organization secrets (`/v1/organization/secrets`), organization settings
//! (`PATCH /v1/organization`) and the encrypted client secret that signs action webhooks.
//! The store never sees a secret in clear: values arrive encrypted by the server.

use async_trait::async_trait;
use serde_json::Value;

use crate::audit;
use crate::db::{Row, Tx};
use crate::sql::Dialect;
use crate::ui::parse_json;
use crate::{AuditCtx, OrgId, Result, SaveMode, SqlStore, StoreError};

/// An organization secret as stored (`value` is ciphertext, `key_id` the master key's id).
#[derive(Debug, Clone, PartialEq)]
pub struct OrgSecret {
    pub name: String,
    pub value: String,
    pub key_id: String,
    pub description: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

#[async_trait]
pub trait Secrets: Send + Sync {
    /// Secrets of `org`, by name.
    async fn list_secrets(&self, org: &OrgId) -> Result<Vec<OrgSecret>>;
    async fn get_secret(&self, org: &OrgId, name: &str) -> Result<Option<OrgSecret>>;
    /// Create (`Conflict` when taken) or replace (`NotFound` when missing; creation meta kept)
    /// a secret, audited (`resourceType` secret; the value never in the record).
    async fn save_secret(&self, org: &OrgId, s: &OrgSecret, mode: SaveMode, ctx: &AuditCtx) -> Result<OrgSecret>;
    async fn delete_secret(&self, org: &OrgId, name: &str, ctx: &AuditCtx) -> Result<()>;
    /// The distinct master-key ids that organization secrets and signing secrets are encrypted
    /// with, in every organization (start-up refuses a key that cannot decrypt them).
    async fn secrets_key_ids(&self) -> Result<Vec<String>>;
    /// The organization's settings object (`{}` until set).
    async fn org_settings(&self, org: &OrgId) -> Result<Value>;
    /// Replace the organization's settings (audited as `resourceType` organization).
    async fn set_org_settings(&self, org: &OrgId, settings: &Value, ctx: &AuditCtx) -> Result<()>;
    /// Keep the credential's client secret, encrypted (`false` when `org` has no such credential).
    async fn set_credential_secret(&self, org: &OrgId, client_id: &str, enc: &str, key_id: &str) -> Result<bool>;
    /// The client secret that signs the organization's action webhooks: the oldest credential
    /// whose encrypted secret is on record, as `(client_id, ciphertext)`.
    async fn signing_secret(&self, org: &OrgId) -> Result<Option<(String, String)>>;
}

const SECRET_COLUMNS: &str =
    "name, value, key_id, description, created_at, created_by, updated_at, updated_by FROM org_secrets";

fn secret_from_row(r: &Row) -> OrgSecret {
    OrgSecret {
        name: r.get("name"),
        value: r.get("value"),
        key_id: r.get("key_id"),
        description: r.get("description"),
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        updated_at: r.get("updated_at"),
        updated_by: r.get("updated_by"),
    }
}

async fn secret_for_update(tx: &mut Tx, org: &OrgId, name: &str) -> Result<Option<OrgSecret>> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {SECRET_COLUMNS} WHERE org_id = ? AND name = ?{lock}");
    Ok(tx.q(&sql).bind(&org.0).bind(name).fetch_optional(&mut *tx).await?.as_ref().map(secret_from_row))
}

/// What an audit record shows of a secret: never its value.
fn described(s: &OrgSecret) -> Value {
    serde_json::json!({"secretName": s.name, "description": s.description})
}

#[async_trait]
impl Secrets for SqlStore {
    async fn list_secrets(&self, org: &OrgId) -> Result<Vec<OrgSecret>> {
        let db = &self.db;
        let sql = format!("SELECT {SECRET_COLUMNS} WHERE org_id = ? ORDER BY name");
        Ok(db.q(&sql).bind(&org.0).fetch_all(db.read()).await?.iter().map(secret_from_row).collect())
    }

    async fn get_secret(&self, org: &OrgId, name: &str) -> Result<Option<OrgSecret>> {
        let db = &self.db;
        let sql = format!("SELECT {SECRET_COLUMNS} WHERE org_id = ? AND name = ?");
        Ok(db
            .q(&sql)
            .bind(&org.0)
            .bind(db.storable(name))
            .fetch_optional(db.read())
            .await?
            .as_ref()
            .map(secret_from_row))
    }

    async fn save_secret(&self, org: &OrgId, s: &OrgSecret, mode: SaveMode, ctx: &AuditCtx) -> Result<OrgSecret> {
        let name = s.name.as_str();
        let mut tx = self.db.begin().await?;
        let old = secret_for_update(&mut tx, org, name).await?;
        match (mode, &old) {
            (SaveMode::Create, Some(_)) => return Err(StoreError::Conflict(format!("secret {name:?}"))),
            (SaveMode::Update, None) => return Err(StoreError::NotFound(format!("secret {name:?}"))),
            _ => {}
        }
        let saved = OrgSecret {
            created_at: old.as_ref().map_or_else(|| ctx.at.clone(), |o| o.created_at.clone()),
            created_by: old.as_ref().map_or_else(|| ctx.user_id.clone(), |o| o.created_by.clone()),
            updated_at: ctx.at.clone(),
            updated_by: ctx.user_id.clone(),
            ..s.clone()
        };
        tx.q("INSERT INTO org_secrets(org_id, name, value, key_id, description, created_at, created_by, updated_at, \
              updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(org_id, name) DO UPDATE SET \
              value = excluded.value, key_id = excluded.key_id, description = excluded.description, \
              updated_at = excluded.updated_at, updated_by = excluded.updated_by")
            .bind(&org.0)
            .bind(name)
            .bind(&saved.value)
            .bind(&saved.key_id)
            .bind(&saved.description)
            .bind(&saved.created_at)
            .bind(&saved.created_by)
            .bind(&saved.updated_at)
            .bind(&saved.updated_by)
            .execute(&mut tx)
            .await?;
        let action = if old.is_some() { "UPDATE" } else { "CREATE" };
        let mut rec =
            ctx.record("secret", action, name, old.as_ref().map(described).as_ref(), Some(&described(&saved)));
        if old.as_ref().is_some_and(|o| o.value != saved.value) {
            rec.message = Some("value changed".into());
        }
        audit::insert(&mut tx, org, &[rec]).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn delete_secret(&self, org: &OrgId, name: &str, ctx: &AuditCtx) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let Some(old) = secret_for_update(&mut tx, org, &self.db.storable(name)).await? else {
            return Err(StoreError::NotFound(format!("secret {name:?}")));
        };
        tx.q("DELETE FROM org_secrets WHERE org_id = ? AND name = ?").bind(&org.0).bind(name).execute(&mut tx).await?;
        let rec = ctx.record("secret", "DELETE", name, Some(&described(&old)), None);
        audit::insert(&mut tx, org, &[rec]).await?;
        tx.commit().await
    }

    async fn secrets_key_ids(&self) -> Result<Vec<String>> {
        let db = &self.db;
        let rows = db
            .q("SELECT key_id FROM org_secrets UNION SELECT secret_key_id FROM credentials \
                WHERE secret_key_id IS NOT NULL ORDER BY 1")
            .fetch_all(db.read())
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn org_settings(&self, org: &OrgId) -> Result<Value> {
        let db = &self.db;
        let row = db
            .q("SELECT CAST(settings AS TEXT) FROM organizations WHERE id = ?")
            .bind(&org.0)
            .fetch_optional(db.read())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("organization {:?}", org.0)))?;
        parse_json("organization settings", &row.get::<String, _>(0))
    }

    async fn set_org_settings(&self, org: &OrgId, settings: &Value, ctx: &AuditCtx) -> Result<()> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
        let row = tx
            .q(&format!("SELECT CAST(settings AS TEXT) FROM organizations WHERE id = ?{lock}"))
            .bind(&org.0)
            .fetch_optional(&mut tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("organization {:?}", org.0)))?;
        let before = parse_json("organization settings", &row.get::<String, _>(0))?;
        let cast = tx.dialect().jsonb_cast();
        tx.q(&format!("UPDATE organizations SET settings = ?{cast} WHERE id = ?"))
            .bind(settings.to_string())
            .bind(&org.0)
            .execute(&mut tx)
            .await?;
        let rec = ctx.record("organization", "UPDATE", &org.0, Some(&before), Some(settings));
        audit::insert(&mut tx, org, &[rec]).await?;
        tx.commit().await
    }

    async fn set_credential_secret(&self, org: &OrgId, client_id: &str, enc: &str, key_id: &str) -> Result<bool> {
        let db = &self.db;
        let n = db
            .q("UPDATE credentials SET secret_enc = ?, secret_key_id = ? WHERE org_id = ? AND client_id = ?")
            .bind(enc)
            .bind(key_id)
            .bind(&org.0)
            .bind(db.storable(client_id))
            .execute(db.write())
            .await?;
        Ok(n > 0)
    }

    async fn signing_secret(&self, org: &OrgId) -> Result<Option<(String, String)>> {
        let db = &self.db;
        let row = db
            .q("SELECT client_id, secret_enc FROM credentials WHERE org_id = ? AND secret_enc IS NOT NULL \
                ORDER BY created_at, client_id LIMIT 1")
            .bind(&org.0)
            .fetch_optional(db.read())
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }
}
