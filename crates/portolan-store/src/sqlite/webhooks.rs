//! Custom webhook integrations on SQLite: the webhook object (secret encrypted by the server),
//! deliveries de-duplicated by request id, and the webhook's event log. `postgres/webhooks.rs`
//! is the same on PostgreSQL and shares the log query built here.

use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool};

use super::audit;
use super::jobs::{NOW, raw};
use crate::sql::{SqlFrag, SqlParam};
use crate::{
    AuditCtx, Delivery, IntegrationLog, JOB_COLUMNS, LogFilter, NewJob, OrgId, Result, SaveMode, StoreError,
    StoredWebhook, WebhookWrite, job_rowid, webhook_audit_record,
};

fn parse_json(what: &str, s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Db(format!("stored {what} is not JSON: {e}")))
}

/// The columns of a webhook row (JSON as text), shared with PostgreSQL.
pub(crate) const WEBHOOK_COLUMNS: &str = "identifier, CAST(data AS TEXT) AS data, webhook_key, secret, secret_key_id, \
     created_at, created_by, updated_at, updated_by FROM webhooks";

fn webhook_from_row(r: &SqliteRow) -> Result<StoredWebhook> {
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

pub(crate) async fn get(pool: &SqlitePool, org: &OrgId, id: &str) -> Result<Option<StoredWebhook>> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? AND identifier = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(webhook_from_row).transpose()
}

/// By ingest key, in any organization: (organization, webhook).
pub(crate) async fn by_key(pool: &SqlitePool, key: &str) -> Result<Option<(OrgId, StoredWebhook)>> {
    let sql = format!("SELECT org_id, {WEBHOOK_COLUMNS} WHERE webhook_key = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(pool).await?;
    row.as_ref().map(|r| Ok((OrgId(r.get("org_id")), webhook_from_row(r)?))).transpose()
}

pub(crate) async fn list(pool: &SqlitePool, org: &OrgId) -> Result<Vec<StoredWebhook>> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? ORDER BY identifier");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).fetch_all(pool).await?;
    rows.iter().map(webhook_from_row).collect()
}

fn conflict(id: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!("webhook {id:?}")),
        e => e.into(),
    }
}

pub(crate) async fn save(
    pool: &SqlitePool,
    org: &OrgId,
    w: &WebhookWrite,
    mode: SaveMode,
    ctx: &AuditCtx,
) -> Result<StoredWebhook> {
    let id = w.identifier.as_str();
    let mut tx = pool.begin().await?;
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? AND identifier = ?");
    let old = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
    let old = old.as_ref().map(webhook_from_row).transpose()?;
    match (mode, &old) {
        (SaveMode::Create, Some(_)) => return Err(StoreError::Conflict(format!("webhook {id:?}"))),
        (SaveMode::Update, None) => return Err(StoreError::NotFound(format!("webhook {id:?}"))),
        _ => {}
    }
    let saved = saved_row(w, old.as_ref(), ctx);
    sqlx::query(
        "INSERT INTO webhooks(org_id, identifier, data, webhook_key, secret, secret_key_id, created_at, created_by, \
         updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(org_id, identifier) DO UPDATE SET \
         data = excluded.data, secret = excluded.secret, secret_key_id = excluded.secret_key_id, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
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
    .map_err(conflict(id))?;
    let action = if old.is_some() { "UPDATE" } else { "CREATE" };
    audit::insert(&mut tx, org, &webhook_audit_record(id, action, old.as_ref(), Some(w), ctx)).await?;
    tx.commit().await?;
    Ok(saved)
}

/// The row a save leaves: created fields and key from the stored row (if any).
pub(crate) fn saved_row(w: &WebhookWrite, old: Option<&StoredWebhook>, ctx: &AuditCtx) -> StoredWebhook {
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

pub(crate) async fn delete(pool: &SqlitePool, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
    let mut tx = pool.begin().await?;
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = ? AND identifier = ?");
    let old = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
    let Some(old) = old.as_ref().map(webhook_from_row).transpose()? else {
        return Err(StoreError::NotFound(format!("webhook {id:?}")));
    };
    for table in ["webhook_deliveries", "webhook_logs"] {
        let sql = format!("DELETE FROM {table} WHERE org_id = ? AND webhook = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM webhooks WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::insert(&mut tx, org, &webhook_audit_record(id, "DELETE", Some(&old), None, ctx)).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn enqueue_delivery(
    pool: &SqlitePool,
    org: &OrgId,
    webhook: &str,
    request_id: Option<&str>,
    job: &NewJob,
    at: &str,
) -> Result<Delivery> {
    let mut tx = pool.begin().await?;
    if let Some(rid) = request_id {
        let first: Option<i64> = sqlx::query_scalar(
            "SELECT job_id FROM webhook_deliveries WHERE org_id = ? AND webhook = ? AND request_id = ?",
        )
        .bind(&org.0)
        .bind(webhook)
        .bind(rid)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(job_id) = first {
            return Ok(Delivery::Duplicate { job_id: format!("job_{job_id}") });
        }
    }
    let sql = format!(
        "INSERT INTO jobs(org_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
         VALUES (?, ?, ?, 'queued', 0, ?, {NOW}, {NOW}, {NOW}) RETURNING {JOB_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&org.0)
        .bind(&job.kind)
        .bind(job.payload.to_string())
        .bind(i64::from(job.max_attempts.max(1)))
        .fetch_one(&mut *tx)
        .await?;
    let job = raw(&row).into_job()?;
    if let Some(rid) = request_id {
        // The writer connection serializes transactions, so the check above cannot race; the
        // primary key would refuse a second row anyway.
        sqlx::query(
            "INSERT INTO webhook_deliveries(org_id, webhook, request_id, job_id, received_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&org.0)
        .bind(webhook)
        .bind(rid)
        .bind(job_rowid(&job.id).unwrap_or_default())
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Delivery::Enqueued(Box::new(job)))
}

pub(crate) async fn append_logs(pool: &SqlitePool, org: &OrgId, webhook: &str, lines: &[IntegrationLog]) -> Result<()> {
    for chunk in lines.chunks(500) {
        let mut q = SqlFrag::new(
            "INSERT INTO webhook_logs(org_id, webhook, delivery, at, level, source, event, message, extra) VALUES ",
        );
        for (i, l) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            let delivery = l.resync_id.as_deref().and_then(job_rowid);
            q.param_list([
                SqlParam::Text(org.0.clone()),
                SqlParam::Text(webhook.to_string()),
                delivery.map_or(SqlParam::Null, SqlParam::Int),
                SqlParam::Text(l.at.clone()),
                SqlParam::Text(l.level.clone()),
                SqlParam::Text(l.source.clone()),
                SqlParam::Text(l.event.clone()),
                SqlParam::Text(l.message.clone()),
                SqlParam::Text(l.extra.to_string()),
            ])
            .push(")");
        }
        super::entities::bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params).execute(pool).await?;
    }
    Ok(())
}

/// A webhook log listing (shared text with PostgreSQL).
pub(crate) fn log_query(select: &str, org: &OrgId, webhook: &str, f: &LogFilter) -> SqlFrag {
    let mut q = SqlFrag::new(select);
    q.push(" FROM webhook_logs WHERE org_id = ").param(SqlParam::Text(org.0.clone()));
    q.push(" AND webhook = ").param(SqlParam::Text(webhook.to_string()));
    for (col, list) in [("level", &f.levels), ("event", &f.events)] {
        if !list.is_empty() {
            q.push(&format!(" AND {col} IN (")).param_list(list.iter().map(|v| SqlParam::Text(v.clone()))).push(")");
        }
    }
    if let Some(s) = &f.source {
        q.push(" AND source = ").param(SqlParam::Text(s.clone()));
    }
    if let Some(d) = &f.resync_id {
        q.push(" AND delivery = ").param(SqlParam::Int(job_rowid(d).unwrap_or(-1)));
    }
    if let Some((cursor, below)) = f.cursor {
        q.push(if below { " AND id < " } else { " AND id > " }).param(SqlParam::Int(cursor));
    }
    if let Some(from) = &f.from {
        q.push(" AND at >= ").param(SqlParam::Text(from.clone()));
    }
    if let Some(to) = &f.to {
        q.push(" AND at <= ").param(SqlParam::Text(to.clone()));
    }
    q.push(if f.ascending { " ORDER BY id ASC LIMIT " } else { " ORDER BY id DESC LIMIT " });
    q.param(SqlParam::Int(i64::from(f.limit.clamp(1, 10_000))));
    q
}

/// A log row: (id, delivery job row id, at, level, source, event, message, extra as text).
pub(crate) type RawLog = (i64, Option<i64>, String, String, String, String, String, String);

pub(crate) fn log_from_raw(r: RawLog) -> Result<IntegrationLog> {
    Ok(IntegrationLog {
        id: format!("wl_{}", r.0),
        resync_id: r.1.map(|n| format!("job_{n}")),
        at: r.2,
        level: r.3,
        source: r.4,
        event: r.5,
        message: r.6,
        extra: parse_json("log extra", &r.7)?,
    })
}

pub(crate) async fn list_logs(
    pool: &SqlitePool,
    org: &OrgId,
    webhook: &str,
    f: &LogFilter,
) -> Result<Vec<IntegrationLog>> {
    let q = log_query("SELECT id, delivery, at, level, source, event, message, extra", org, webhook, f);
    let rows = super::entities::bind(sqlx::query::<Sqlite>(sqlx::AssertSqlSafe(q.sql.clone())), &q.params)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| log_from_raw((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7))))
        .collect()
}

pub(crate) async fn secret_key_ids(pool: &SqlitePool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT secret_key_id FROM webhooks WHERE secret_key_id IS NOT NULL ORDER BY secret_key_id",
    )
    .fetch_all(pool)
    .await?)
}
