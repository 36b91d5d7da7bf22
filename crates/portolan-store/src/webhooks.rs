//! Custom webhook integrations, their deliveries and event log.

use async_trait::async_trait;
use serde_json::Value;

use crate::audit;
use crate::db::{Db, Row, Tx, is_unique_violation};
use crate::eventlog::WEBHOOK_LOG;
use crate::jobs;
use crate::sql::Dialect;
use crate::ui::parse_json;
use crate::{
    AuditCtx, AuditRecord, IntegrationLog, Job, LogFilter, NewJob, OrgId, Result, SaveMode, SqlStore, StoreError,
    job_rowid,
};

/// A custom webhook integration as stored: Port's webhook object (`data`: title, description,
/// icon, enabled, integrationType, mappings, security without its secret, …), its ingest key
/// and its encrypted secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    pub identifier: String,
    pub data: Value,
    /// The ingest URL's key (unguessable; unique across organizations).
    pub webhook_key: String,
    /// `security.secret`, encrypted by the server (`v1:<key id>:<nonce>:<ciphertext>`); the store
    /// never sees it in clear.
    pub secret: Option<String>,
    /// Id of the master key `secret` is encrypted with.
    pub secret_key_id: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// What [`Webhooks::save_webhook`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookWrite {
    pub identifier: String,
    pub data: Value,
    /// Used on create; an update keeps the stored key.
    pub webhook_key: String,
    pub secret: Option<String>,
    pub secret_key_id: Option<String>,
}

/// What [`Webhooks::enqueue_webhook_delivery`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Stored: this job will process it.
    Enqueued(Box<Job>),
    /// The request id was delivered before; `job_id` is the job of the first delivery.
    Duplicate { job_id: String },
}

#[async_trait]
pub trait Webhooks: Send + Sync {
    async fn get_webhook(&self, org: &OrgId, id: &str) -> Result<Option<StoredWebhook>>;
    /// The webhook whose ingest key is `key`, in any organization: the key is the ingest URL's
    /// credential, and it names the organization (as [`crate::Orgs::credential`] does for a client id).
    async fn webhook_by_key(&self, key: &str) -> Result<Option<(OrgId, StoredWebhook)>>;
    /// Webhooks of `org`, by identifier.
    async fn list_webhooks(&self, org: &OrgId) -> Result<Vec<StoredWebhook>>;
    /// Create (`SaveMode::Create`: `Conflict` when the identifier or the key is taken) or replace
    /// (`SaveMode::Update`: `NotFound` when missing; the stored `webhook_key` is kept) a webhook,
    /// appending its audit record (`resourceType` webhook, secret never included) in the same
    /// transaction.
    async fn save_webhook(
        &self,
        org: &OrgId,
        w: &WebhookWrite,
        mode: SaveMode,
        ctx: &AuditCtx,
    ) -> Result<StoredWebhook>;
    /// Delete a webhook with its deliveries and event log (audited). Queued deliveries find it
    /// gone and do nothing.
    async fn delete_webhook(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()>;
    /// Durably accept a delivery of webhook `webhook`: enqueue `job` and, with a `request_id`,
    /// record the delivery under it — in one transaction. A request id already recorded for
    /// this webhook enqueues nothing and answers [`Delivery::Duplicate`] with the first job.
    async fn enqueue_webhook_delivery(
        &self,
        org: &OrgId,
        webhook: &str,
        request_id: Option<&str>,
        job: &NewJob,
        at: &str,
    ) -> Result<Delivery>;
    /// Append to a webhook's event log (ids `wl_<n>`; `resync_id` holds the delivery's job id).
    async fn append_webhook_logs(&self, org: &OrgId, webhook: &str, lines: &[IntegrationLog]) -> Result<()>;
    /// A webhook's event log; `filter.resync_id` selects one delivery (`job_<n>`), `cursor` is
    /// a `wl_<n>` row id.
    async fn list_webhook_logs(&self, org: &OrgId, webhook: &str, filter: &LogFilter) -> Result<Vec<IntegrationLog>>;
    /// The distinct ids of the master keys stored webhook secrets are encrypted with, in every
    /// organization (start-up refuses a key that cannot decrypt them).
    async fn webhook_secret_key_ids(&self) -> Result<Vec<String>>;
}

/// The audit record of a webhook change (`data` only: the secret is never in an audit record).
fn audit_record(
    id: &str,
    action: &str,
    before: Option<&StoredWebhook>,
    after: Option<&WebhookWrite>,
    ctx: &AuditCtx,
) -> AuditRecord {
    let secret_changed = before.and_then(|b| b.secret.as_ref()) != after.and_then(|a| a.secret.as_ref());
    AuditRecord {
        message: (secret_changed && action != "DELETE").then(|| "security.secret changed".to_string()),
        ..ctx.record("webhook", action, id, before.map(|b| &b.data), after.map(|a| &a.data))
    }
}

/// The columns of a webhook row (JSON as text).
const WEBHOOK_COLUMNS: &str = "identifier, CAST(data AS TEXT) AS data, webhook_key, secret, secret_key_id, \
     created_at, created_by, updated_at, updated_by FROM webhooks";

fn webhook_from_row(r: &Row) -> Result<StoredWebhook> {
    Ok(StoredWebhook {
        identifier: r.get("identifier"),
        data: parse_json("webhook", &r.get::<String, _>("data"))?,
        webhook_key: r.get("webhook_key"),
        secret: r.get("secret"),
        secret_key_id: r.get("secret_key_id"),
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        updated_at: r.get("updated_at"),
        updated_by: r.get("updated_by"),
    })
}

/// The row a save leaves: created fields and key from the stored row (if any).
fn saved_row(w: &WebhookWrite, old: Option<&StoredWebhook>, ctx: &AuditCtx) -> StoredWebhook {
    StoredWebhook {
        identifier: w.identifier.clone(),
        data: w.data.clone(),
        webhook_key: old.map_or_else(|| w.webhook_key.clone(), |o| o.webhook_key.clone()),
        secret: w.secret.clone(),
        secret_key_id: w.secret.as_ref().and(w.secret_key_id.clone()),
        created_at: old.map_or_else(|| ctx.at.clone(), |o| o.created_at.clone()),
        created_by: old.map_or_else(|| ctx.user_id.clone(), |o| o.created_by.clone()),
        updated_at: ctx.at.clone(),
        updated_by: ctx.user_id.clone(),
    }
}

/// The stored webhook `id`, read (and on PostgreSQL locked) inside the write transaction.
async fn get_for_update(tx: &mut Tx, org: &OrgId, id: &str) -> Result<Option<StoredWebhook>> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? AND identifier = ?{lock}");
    let old = tx.q(&sql).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
    old.as_ref().map(webhook_from_row).transpose()
}

#[async_trait]
impl Webhooks for SqlStore {
    async fn get_webhook(&self, org: &OrgId, id: &str) -> Result<Option<StoredWebhook>> {
        let db = &self.db;
        let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? AND identifier = ?");
        let row = db.q(&sql).bind(&org.0).bind(db.storable(id)).fetch_optional(db.read()).await?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    async fn webhook_by_key(&self, key: &str) -> Result<Option<(OrgId, StoredWebhook)>> {
        let db = &self.db;
        let sql = format!("SELECT org_id, {WEBHOOK_COLUMNS} WHERE webhook_key = ?");
        let row = db.q(&sql).bind(db.storable(key)).fetch_optional(db.read()).await?;
        row.as_ref().map(|r| Ok((OrgId(r.get("org_id")), webhook_from_row(r)?))).transpose()
    }

    async fn list_webhooks(&self, org: &OrgId) -> Result<Vec<StoredWebhook>> {
        let db = &self.db;
        let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? ORDER BY identifier");
        let rows = db.q(&sql).bind(&org.0).fetch_all(db.read()).await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn save_webhook(
        &self,
        org: &OrgId,
        w: &WebhookWrite,
        mode: SaveMode,
        ctx: &AuditCtx,
    ) -> Result<StoredWebhook> {
        let id = w.identifier.as_str();
        let mut tx = self.db.begin().await?;
        let old = get_for_update(&mut tx, org, id).await?;
        match (mode, &old) {
            (SaveMode::Create, Some(_)) => return Err(StoreError::Conflict(format!("webhook {id:?}"))),
            (SaveMode::Update, None) => return Err(StoreError::NotFound(format!("webhook {id:?}"))),
            _ => {}
        }
        let saved = saved_row(w, old.as_ref(), ctx);
        let json = tx.dialect().json_cast();
        tx.q(&format!(
            "INSERT INTO webhooks(org_id, identifier, data, webhook_key, secret, secret_key_id, created_at, created_by, \
             updated_at, updated_by) VALUES (?, ?, ?{json}, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(org_id, identifier) DO UPDATE SET \
             data = excluded.data, secret = excluded.secret, secret_key_id = excluded.secret_key_id, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by"
        ))
        .bind(&org.0)
        .bind(id)
        .bind(saved.data.to_string())
        .bind(&saved.webhook_key)
        .bind(&saved.secret)
        .bind(&saved.secret_key_id)
        .bind(&saved.created_at)
        .bind(&saved.created_by)
        .bind(&saved.updated_at)
        .bind(&saved.updated_by)
        .run(&mut tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) { StoreError::Conflict(format!("webhook {id:?}")) } else { e.into() }
        })?;
        let action = if old.is_some() { "UPDATE" } else { "CREATE" };
        audit::insert(&mut tx, org, &[audit_record(id, action, old.as_ref(), Some(w), ctx)]).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn delete_webhook(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let Some(old) = get_for_update(&mut tx, org, &self.db.storable(id)).await? else {
            return Err(StoreError::NotFound(format!("webhook {id:?}")));
        };
        for table in ["webhook_deliveries", "webhook_logs"] {
            let sql = format!("DELETE FROM {table} WHERE org_id = ? AND webhook = ?");
            tx.q(&sql).bind(&org.0).bind(id).execute(&mut tx).await?;
        }
        tx.q("DELETE FROM webhooks WHERE org_id = ? AND identifier = ?").bind(&org.0).bind(id).execute(&mut tx).await?;
        audit::insert(&mut tx, org, &[audit_record(id, "DELETE", Some(&old), None, ctx)]).await?;
        tx.commit().await
    }

    async fn enqueue_webhook_delivery(
        &self,
        org: &OrgId,
        webhook: &str,
        request_id: Option<&str>,
        job: &NewJob,
        at: &str,
    ) -> Result<Delivery> {
        let db = &self.db;
        let mut tx = db.begin().await?;
        let rid = request_id.map(|r| dedup_key(db, r));
        if let Some(rid) = &rid {
            // job_id 0 until the job exists (same transaction). A concurrent insert of the same
            // id (PostgreSQL; SQLite's one writer serializes them) waits here for this
            // transaction and then inserts nothing.
            let inserted = tx
                .q("INSERT INTO webhook_deliveries(org_id, webhook, request_id, job_id, received_at) \
                    VALUES (?, ?, ?, 0, ?) ON CONFLICT (org_id, webhook, request_id) DO NOTHING RETURNING 1")
                .bind(&org.0)
                .bind(webhook)
                .bind(rid.as_ref())
                .bind(at)
                .fetch_optional(&mut tx)
                .await?;
            if inserted.is_none() {
                let first: i64 = tx
                    .q("SELECT job_id FROM webhook_deliveries WHERE org_id = ? AND webhook = ? AND request_id = ?")
                    .bind(&org.0)
                    .bind(webhook)
                    .bind(rid.as_ref())
                    .fetch_one(&mut tx)
                    .await?
                    .get(0);
                return Ok(Delivery::Duplicate { job_id: format!("job_{first}") });
            }
        }
        let job = jobs::enqueue(db, &mut tx, org, job).await?;
        if let Some(rid) = &rid {
            tx.q("UPDATE webhook_deliveries SET job_id = ? WHERE org_id = ? AND webhook = ? AND request_id = ?")
                .bind(job_rowid(&job.id).unwrap_or_default())
                .bind(&org.0)
                .bind(webhook)
                .bind(rid.as_ref())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Delivery::Enqueued(Box::new(job)))
    }

    async fn append_webhook_logs(&self, org: &OrgId, webhook: &str, lines: &[IntegrationLog]) -> Result<()> {
        WEBHOOK_LOG.append(&self.db, org, webhook, lines).await
    }

    async fn list_webhook_logs(&self, org: &OrgId, webhook: &str, filter: &LogFilter) -> Result<Vec<IntegrationLog>> {
        WEBHOOK_LOG.list(&self.db, org, webhook, filter).await
    }

    async fn webhook_secret_key_ids(&self) -> Result<Vec<String>> {
        let db = &self.db;
        let rows = db
            .q("SELECT DISTINCT secret_key_id FROM webhooks WHERE secret_key_id IS NOT NULL ORDER BY secret_key_id")
            .fetch_all(db.read())
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// The key a delivery's request ID is remembered by: the ID itself, or for an ID over
/// [`MAX_REQUEST_ID_KEY`] bytes (a `requestIdentifierPath` can select any part of a body) the
/// SHA-256 of it, which PostgreSQL's index on the key can hold; NUL characters replaced on
/// PostgreSQL.
fn dedup_key<'s>(db: &Db, id: &'s str) -> std::borrow::Cow<'s, str> {
    use sha2::Digest;
    if id.len() <= MAX_REQUEST_ID_KEY {
        return db.storable(id);
    }
    let digest = sha2::Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    std::borrow::Cow::Owned(format!("sha256:{hex}"))
}

/// Longest request ID kept as itself (longer ones by their digest).
const MAX_REQUEST_ID_KEY: usize = 512;
