//! Custom webhook integrations on PostgreSQL: the same as `sqlite/webhooks.rs` (whose log query
//! it shares). Replayed deliveries are refused by the primary key of `webhook_deliveries`: the
//! delivery row is inserted first (`ON CONFLICT DO NOTHING`), so of two concurrent deliveries
//! with one request id the second waits for the first's transaction and then finds its row.

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::jobs::{NOW, raw};
use super::{audit, frag_query, pgq};
use crate::sql::{SqlFrag, SqlParam};
use crate::sqlite::webhooks::{WEBHOOK_COLUMNS, log_from_raw, log_query, saved_row};
use crate::{
    AuditCtx, Delivery, IntegrationLog, JOB_COLUMNS, LogFilter, NewJob, OrgId, Result, SaveMode, StoreError,
    StoredWebhook, WebhookWrite, job_rowid, webhook_audit_record,
};

fn parse_json(what: &str, s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Db(format!("stored {what} is not JSON: {e}")))
}

fn webhook_from_row(r: &PgRow) -> Result<StoredWebhook> {
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

/// PostgreSQL text cannot hold NUL.
fn nul(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

pub(crate) async fn get(pool: &PgPool, org: &OrgId, id: &str) -> Result<Option<StoredWebhook>> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? AND identifier = ?");
    let row = pgq(&sql).bind(&org.0).bind(nul(id)).fetch_optional(pool).await?;
    row.as_ref().map(webhook_from_row).transpose()
}

pub(crate) async fn by_key(pool: &PgPool, key: &str) -> Result<Option<(OrgId, StoredWebhook)>> {
    let sql = format!("SELECT org_id, {WEBHOOK_COLUMNS} WHERE webhook_key = ?");
    let row = pgq(&sql).bind(nul(key)).fetch_optional(pool).await?;
    row.as_ref().map(|r| Ok((OrgId(r.get("org_id")), webhook_from_row(r)?))).transpose()
}

pub(crate) async fn list(pool: &PgPool, org: &OrgId) -> Result<Vec<StoredWebhook>> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? ORDER BY identifier");
    let rows = pgq(&sql).bind(&org.0).fetch_all(pool).await?;
    rows.iter().map(webhook_from_row).collect()
}

pub(crate) async fn save(
    pool: &PgPool,
    org: &OrgId,
    w: &WebhookWrite,
    mode: SaveMode,
    ctx: &AuditCtx,
) -> Result<StoredWebhook> {
    let id = w.identifier.as_str();
    let mut tx = pool.begin().await?;
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? AND identifier = ? FOR UPDATE");
    let old = pgq(&sql).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
    let old = old.as_ref().map(webhook_from_row).transpose()?;
    match (mode, &old) {
        (SaveMode::Create, Some(_)) => return Err(StoreError::Conflict(format!("webhook {id:?}"))),
        (SaveMode::Update, None) => return Err(StoreError::NotFound(format!("webhook {id:?}"))),
        _ => {}
    }
    let saved = saved_row(w, old.as_ref(), ctx);
    pgq("INSERT INTO webhooks(org_id, identifier, data, webhook_key, secret, secret_key_id, created_at, created_by, \
         updated_at, updated_by) VALUES (?, ?, ?::json, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(org_id, identifier) DO UPDATE SET \
         data = excluded.data, secret = excluded.secret, secret_key_id = excluded.secret_key_id, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by")
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
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!("webhook {id:?}")),
        e => e.into(),
    })?;
    let action = if old.is_some() { "UPDATE" } else { "CREATE" };
    audit::insert(&mut tx, org, &webhook_audit_record(id, action, old.as_ref(), Some(w), ctx)).await?;
    tx.commit().await?;
    Ok(saved)
}

pub(crate) async fn delete(pool: &PgPool, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
    let mut tx = pool.begin().await?;
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? AND identifier = ? FOR UPDATE");
    let old = pgq(&sql).bind(&org.0).bind(nul(id)).fetch_optional(&mut *tx).await?;
    let Some(old) = old.as_ref().map(webhook_from_row).transpose()? else {
        return Err(StoreError::NotFound(format!("webhook {id:?}")));
    };
    for table in ["webhook_deliveries", "webhook_logs"] {
        let sql = format!("DELETE FROM {table} WHERE org_id = ? AND webhook = ?");
        pgq(&sql).bind(&org.0).bind(id).execute(&mut *tx).await?;
    }
    pgq("DELETE FROM webhooks WHERE org_id = ? AND identifier = ?").bind(&org.0).bind(id).execute(&mut *tx).await?;
    audit::insert(&mut tx, org, &webhook_audit_record(id, "DELETE", Some(&old), None, ctx)).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn enqueue_delivery(
    pool: &PgPool,
    org: &OrgId,
    webhook: &str,
    request_id: Option<&str>,
    job: &NewJob,
    at: &str,
) -> Result<Delivery> {
    let mut tx = pool.begin().await?;
    if let Some(rid) = request_id {
        // job_id 0 until the job exists (same transaction). A concurrent insert of the same id
        // waits here for this transaction and then inserts nothing.
        let inserted = pgq("INSERT INTO webhook_deliveries(org_id, webhook, request_id, job_id, received_at) \
             VALUES (?, ?, ?, 0, ?) ON CONFLICT (org_id, webhook, request_id) DO NOTHING RETURNING 1")
        .bind(&org.0)
        .bind(webhook)
        .bind(nul(rid))
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            let first: i64 =
                pgq("SELECT job_id FROM webhook_deliveries WHERE org_id = ? AND webhook = ? AND request_id = ?")
                    .bind(&org.0)
                    .bind(webhook)
                    .bind(nul(rid))
                    .fetch_one(&mut *tx)
                    .await?
                    .get(0);
            return Ok(Delivery::Duplicate { job_id: format!("job_{first}") });
        }
    }
    let mut f = SqlFrag::new(
        "INSERT INTO jobs(org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) VALUES (",
    );
    f.param(org.0.as_str()).push(", ").param(job.kind.as_str()).push(", ");
    f.param(job.payload.to_string()).push("::jsonb, 'queued', 0, ").param(i64::from(job.max_attempts.max(1)));
    f.push(&format!(", {NOW}, {NOW}, {NOW}) RETURNING {JOB_COLUMNS}"));
    let row = frag_query(&f).fetch_one(&mut *tx).await?;
    let job = raw(&row).into_job()?;
    if let Some(rid) = request_id {
        pgq("UPDATE webhook_deliveries SET job_id = ? WHERE org_id = ? AND webhook = ? AND request_id = ?")
            .bind(job_rowid(&job.id).unwrap_or_default())
            .bind(&org.0)
            .bind(webhook)
            .bind(nul(rid))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Delivery::Enqueued(Box::new(job)))
}

pub(crate) async fn append_logs(pool: &PgPool, org: &OrgId, webhook: &str, lines: &[IntegrationLog]) -> Result<()> {
    for chunk in lines.chunks(500) {
        let mut q = SqlFrag::new(
            "INSERT INTO webhook_logs(org_id, webhook, delivery, at, level, source, event, message, extra) VALUES ",
        );
        for (i, l) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            let delivery = l.resync_id.as_deref().and_then(job_rowid);
            q.param_list([SqlParam::Text(org.0.clone()), SqlParam::Text(nul(webhook))]).push(", ");
            // A NULL is bound as text: cast it to the column's type.
            q.param(delivery.map_or(SqlParam::Null, SqlParam::Int)).push("::int8, ");
            q.param_list([
                SqlParam::Text(nul(&l.at)),
                SqlParam::Text(nul(&l.level)),
                SqlParam::Text(nul(&l.source)),
                SqlParam::Text(nul(&l.event)),
                SqlParam::Text(nul(&l.message)),
            ])
            .push(", ");
            q.param(SqlParam::Text(l.extra.to_string())).push("::json)");
        }
        frag_query(&q).execute(pool).await?;
    }
    Ok(())
}

pub(crate) async fn list_logs(pool: &PgPool, org: &OrgId, webhook: &str, f: &LogFilter) -> Result<Vec<IntegrationLog>> {
    let q = log_query("SELECT id, delivery, at, level, source, event, message, extra::text", org, webhook, f);
    let rows = frag_query(&q).fetch_all(pool).await?;
    rows.iter()
        .map(|r| log_from_raw((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7))))
        .collect()
}

pub(crate) async fn secret_key_ids(pool: &PgPool) -> Result<Vec<String>> {
    let rows =
        pgq("SELECT DISTINCT secret_key_id FROM webhooks WHERE secret_key_id IS NOT NULL ORDER BY secret_key_id")
            .fetch_all(pool)
            .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
