//! Integrations on SQLite: the integration object and its config versions, kind examples,
//! resyncs with the mass-deletion guard's counters, and the per-integration event log.
//! `postgres/integrations.rs` is the same on PostgreSQL.

use serde_json::{Value, json};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool};

use super::audit;
use crate::sql::{SqlFrag, SqlParam};
use crate::{
    AuditCtx, AuditRecord, ConfigVersion, DeletionGuard, IntegrationLog, LogFilter, Org, OrgId, Reservation, Result,
    Resync, SaveMode, StoreError, StoredIntegration, prefixed_rowid,
};

fn parse_json(what: &str, s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Db(format!("stored {what} is not JSON: {e}")))
}

fn integration_from_row(r: &SqliteRow) -> Result<StoredIntegration> {
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

const INTEGRATION_COLUMNS: &str =
    "identifier, data, config_version, created_at, created_by, updated_at, updated_by FROM integrations";

pub(crate) async fn get(pool: &SqlitePool, org: &OrgId, id: &str) -> Result<Option<StoredIntegration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} WHERE org_id = ? AND identifier = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(integration_from_row).transpose()
}

pub(crate) async fn list(pool: &SqlitePool, org: &OrgId) -> Result<Vec<StoredIntegration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} WHERE org_id = ? ORDER BY identifier");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).fetch_all(pool).await?;
    rows.iter().map(integration_from_row).collect()
}

/// The audit record of an integration change.
pub(crate) fn audit_record(
    id: &str,
    action: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    ctx: &AuditCtx,
) -> AuditRecord {
    AuditRecord {
        id: String::new(),
        at: ctx.at.clone(),
        resource_type: "integration".into(),
        action: action.into(),
        status: "SUCCESS".into(),
        identifier: id.into(),
        blueprint: None,
        entity: None,
        origin: ctx.origin.clone(),
        user_id: ctx.user_id.clone(),
        diff: Some(json!({"before": before, "after": after})),
        message: None,
    }
}

pub(crate) async fn save(
    pool: &SqlitePool,
    org: &OrgId,
    id: &str,
    data: &Value,
    mode: SaveMode,
    audit_it: bool,
    ctx: &AuditCtx,
) -> Result<StoredIntegration> {
    let mut tx = pool.begin().await?;
    let sql = format!("SELECT {INTEGRATION_COLUMNS} WHERE org_id = ? AND identifier = ?");
    let old = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
    let old = old.as_ref().map(integration_from_row).transpose()?;
    let version = match (mode, &old) {
        (SaveMode::Create, Some(_)) => return Err(StoreError::Conflict(format!("integration {id:?}"))),
        (SaveMode::Update, None) => return Err(StoreError::NotFound(format!("integration {id:?}"))),
        (_, None) => 1,
        (_, Some(o)) if o.data.get("config") != data.get("config") => o.config_version + 1,
        (_, Some(o)) => o.config_version,
    };
    let (created_at, created_by) =
        old.as_ref().map_or((ctx.at.clone(), ctx.user_id.clone()), |o| (o.created_at.clone(), o.created_by.clone()));
    sqlx::query(
        "INSERT INTO integrations(org_id, identifier, data, config_version, created_at, created_by, updated_at, updated_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(org_id, identifier) DO UPDATE SET data = excluded.data, \
         config_version = excluded.config_version, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(&org.0)
    .bind(id)
    .bind(data.to_string())
    .bind(version)
    .bind(&created_at)
    .bind(&created_by)
    .bind(&ctx.at)
    .bind(&ctx.user_id)
    .execute(&mut *tx)
    .await?;
    if old.as_ref().is_none_or(|o| o.config_version != version) {
        sqlx::query(
            "INSERT INTO integration_config_versions(org_id, integration, version, config, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&org.0)
        .bind(id)
        .bind(version)
        .bind(data.get("config").unwrap_or(&Value::Null).to_string())
        .bind(&ctx.at)
        .bind(&ctx.user_id)
        .execute(&mut *tx)
        .await?;
    }
    if audit_it {
        let action = if old.is_some() { "UPDATE" } else { "CREATE" };
        let rec = audit_record(id, action, old.as_ref().map(|o| &o.data), Some(data), ctx);
        audit::insert(&mut tx, org, &rec).await?;
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

pub(crate) async fn delete(pool: &SqlitePool, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
    let mut tx = pool.begin().await?;
    let old = sqlx::query("SELECT data FROM integrations WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(old) = old else {
        return Err(StoreError::NotFound(format!("integration {id:?}")));
    };
    let before = parse_json("integration", &old.get::<String, _>(0))?;
    for table in [
        "integration_config_versions",
        "integration_examples",
        "integration_resyncs",
        "integration_logs",
        "integration_cursors",
    ] {
        let sql = format!("DELETE FROM {table} WHERE org_id = ? AND integration = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM integrations WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::insert(&mut tx, org, &audit_record(id, "DELETE", Some(&before), None, ctx)).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn config_versions(pool: &SqlitePool, org: &OrgId, id: &str) -> Result<Vec<ConfigVersion>> {
    let rows = sqlx::query(
        "SELECT version, config, created_at, created_by FROM integration_config_versions \
         WHERE org_id = ? AND integration = ? ORDER BY version DESC",
    )
    .bind(&org.0)
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ConfigVersion {
                version: r.get(0),
                config: parse_json("config", &r.get::<String, _>(1))?,
                created_at: r.get(2),
                created_by: r.get(3),
            })
        })
        .collect()
}

pub(crate) async fn put_examples(
    pool: &SqlitePool,
    org: &OrgId,
    id: &str,
    kind: &str,
    examples: &Value,
    at: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO integration_examples(org_id, integration, kind, examples, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT(org_id, integration, kind) DO UPDATE SET examples = excluded.examples, updated_at = excluded.updated_at",
    )
    .bind(&org.0)
    .bind(id)
    .bind(kind)
    .bind(examples.to_string())
    .bind(at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn examples(pool: &SqlitePool, org: &OrgId, id: &str, kind: &str) -> Result<Option<Value>> {
    let row =
        sqlx::query("SELECT examples FROM integration_examples WHERE org_id = ? AND integration = ? AND kind = ?")
            .bind(&org.0)
            .bind(id)
            .bind(kind)
            .fetch_optional(pool)
            .await?;
    row.map(|r| parse_json("examples", &r.get::<String, _>(0))).transpose()
}

pub(crate) async fn append_logs(pool: &SqlitePool, org: &OrgId, id: &str, lines: &[IntegrationLog]) -> Result<()> {
    for chunk in lines.chunks(500) {
        let mut q = SqlFrag::new(
            "INSERT INTO integration_logs(org_id, integration, resync_id, at, level, source, event, message, extra) VALUES ",
        );
        for (i, l) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            let resync = l.resync_id.as_deref().and_then(|r| prefixed_rowid(r, "rs_"));
            q.param_list([
                SqlParam::Text(org.0.clone()),
                SqlParam::Text(id.to_string()),
                resync.map_or(SqlParam::Null, SqlParam::Int),
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

/// The WHERE clause and ORDER BY of a log listing (shared text with PostgreSQL).
pub(crate) fn log_query(select: &str, org: &OrgId, id: &str, f: &LogFilter) -> SqlFrag {
    let mut q = SqlFrag::new(select);
    q.push(" FROM integration_logs WHERE org_id = ");
    q.param(SqlParam::Text(org.0.clone()));
    q.push(" AND integration = ");
    q.param(SqlParam::Text(id.to_string()));
    for (col, list) in [("level", &f.levels), ("event", &f.events)] {
        if !list.is_empty() {
            q.push(&format!(" AND {col} IN ("));
            for (i, v) in list.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.param(SqlParam::Text(v.clone()));
            }
            q.push(")");
        }
    }
    if let Some(s) = &f.source {
        q.push(" AND source = ");
        q.param(SqlParam::Text(s.clone()));
    }
    if let Some(r) = &f.resync_id {
        q.push(" AND resync_id = ");
        q.param(SqlParam::Int(prefixed_rowid(r, "rs_").unwrap_or(-1)));
    }
    if let Some((cursor, below)) = f.cursor {
        q.push(if below { " AND id < " } else { " AND id > " });
        q.param(SqlParam::Int(cursor));
    }
    if let Some(from) = &f.from {
        q.push(" AND at >= ");
        q.param(SqlParam::Text(from.clone()));
    }
    if let Some(to) = &f.to {
        q.push(" AND at <= ");
        q.param(SqlParam::Text(to.clone()));
    }
    q.push(if f.ascending { " ORDER BY id ASC LIMIT " } else { " ORDER BY id DESC LIMIT " });
    q.param(SqlParam::Int(i64::from(f.limit.clamp(1, 10_000))));
    q
}

/// A log row: (id, resync id, at, level, source, event, message, extra as text).
pub(crate) type RawLog = (i64, Option<i64>, String, String, String, String, String, String);

pub(crate) fn log_from_raw(r: RawLog) -> Result<IntegrationLog> {
    Ok(IntegrationLog {
        id: format!("il_{}", r.0),
        resync_id: r.1.map(|n| format!("rs_{n}")),
        at: r.2,
        level: r.3,
        source: r.4,
        event: r.5,
        message: r.6,
        extra: parse_json("log extra", &r.7)?,
    })
}

pub(crate) const LOG_SELECT: &str = "SELECT id, resync_id, at, level, source, event, message, extra";

pub(crate) async fn list_logs(pool: &SqlitePool, org: &OrgId, id: &str, f: &LogFilter) -> Result<Vec<IntegrationLog>> {
    let q = log_query(LOG_SELECT, org, id, f);
    let rows = super::entities::bind(sqlx::query::<Sqlite>(sqlx::AssertSqlSafe(q.sql.clone())), &q.params)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| log_from_raw((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7))))
        .collect()
}

const RESYNC_COLUMNS: &str =
    "id, integration, status, started_at, ended_at, entities_at_start, deleted, refused, tripped, confirmed";

fn resync_from_row(r: &SqliteRow) -> Resync {
    let n = |i: usize| u64::try_from(r.get::<i64, _>(i)).unwrap_or(0);
    Resync {
        id: format!("rs_{}", r.get::<i64, _>(0)),
        integration: r.get(1),
        status: r.get(2),
        started_at: r.get(3),
        ended_at: r.get(4),
        entities_at_start: n(5),
        deleted: n(6),
        refused: n(7),
        tripped: r.get::<i64, _>(8) != 0,
        confirmed: r.get::<i64, _>(9) != 0,
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `id = <the latest resync of the integration>` (two bound parameters: org, integration).
const LATEST: &str = "id = (SELECT MAX(id) FROM integration_resyncs WHERE org_id = ? AND integration = ?)";

pub(crate) async fn start_resync(pool: &SqlitePool, org: &OrgId, id: &str, at: &str, entities: u64) -> Result<Resync> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE integration_resyncs SET status = 'abandoned', ended_at = ? \
         WHERE org_id = ? AND integration = ? AND status = 'running'",
    )
    .bind(at)
    .bind(&org.0)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let confirmed: bool = sqlx::query("SELECT confirm_next FROM integrations WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some_and(|r| r.get::<i64, _>(0) != 0);
    sqlx::query("UPDATE integrations SET confirm_next = 0 WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let sql = format!(
        "INSERT INTO integration_resyncs(org_id, integration, status, started_at, entities_at_start, confirmed) \
         VALUES (?, ?, 'running', ?, ?, ?) RETURNING {RESYNC_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&org.0)
        .bind(id)
        .bind(at)
        .bind(count(entities))
        .bind(i64::from(confirmed))
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(resync_from_row(&row))
}

pub(crate) async fn latest_resync(pool: &SqlitePool, org: &OrgId, id: &str) -> Result<Option<Resync>> {
    let sql = format!("SELECT {RESYNC_COLUMNS} FROM integration_resyncs WHERE {LATEST}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(resync_from_row))
}

pub(crate) async fn finish_resync(
    pool: &SqlitePool,
    org: &OrgId,
    id: &str,
    status: &str,
    at: &str,
) -> Result<Option<Resync>> {
    let sql = format!(
        "UPDATE integration_resyncs SET status = ?, ended_at = ? WHERE {LATEST} AND status = 'running' \
         RETURNING {RESYNC_COLUMNS}"
    );
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(status).bind(at).bind(&org.0).bind(id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(resync_from_row))
}

pub(crate) async fn reserve_deletions(
    pool: &SqlitePool,
    org: &OrgId,
    id: &str,
    n: u64,
    projected: u64,
    guard: &DeletionGuard,
) -> Result<Reservation> {
    let sql = format!(
        "UPDATE integration_resyncs SET deleted = deleted + ? WHERE {LATEST} AND status = 'running' \
         AND (confirmed = 1 OR (tripped = 0 AND (MAX(deleted + ?, ?) <= ? OR MAX(deleted + ?, ?) <= ? * entities_at_start))) \
         RETURNING {RESYNC_COLUMNS}"
    );
    let (n, p) = (count(n), count(projected));
    let granted = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(n)
        .bind(&org.0)
        .bind(id)
        .bind(n)
        .bind(p)
        .bind(count(guard.min_count))
        .bind(n)
        .bind(p)
        .bind(guard.max_share)
        .fetch_optional(pool)
        .await?;
    if let Some(r) = granted {
        return Ok(Reservation::Granted(resync_from_row(&r)));
    }
    let sql = format!(
        "UPDATE integration_resyncs SET tripped = 1, refused = refused + ? WHERE {LATEST} AND status = 'running' \
         RETURNING {RESYNC_COLUMNS}"
    );
    let refused = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(n).bind(&org.0).bind(id).fetch_optional(pool).await?;
    Ok(refused.map_or(Reservation::NoResync, |r| Reservation::Refused(resync_from_row(&r))))
}

pub(crate) async fn release_deletions(pool: &SqlitePool, org: &OrgId, resync_id: &str, n: u64) -> Result<()> {
    let Some(rowid) = prefixed_rowid(resync_id, "rs_") else { return Ok(()) };
    sqlx::query("UPDATE integration_resyncs SET deleted = MAX(deleted - ?, 0) WHERE org_id = ? AND id = ?")
        .bind(count(n))
        .bind(&org.0)
        .bind(rowid)
        .execute(pool)
        .await?;
    Ok(())
}

/// Confirm the running resync's deletions, or (none running) the next resync's.
pub(crate) async fn confirm_deletions(pool: &SqlitePool, org: &OrgId, id: &str) -> Result<Option<Resync>> {
    let mut tx = pool.begin().await?;
    let exists = sqlx::query("SELECT 1 FROM integrations WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("integration {id:?}")));
    }
    let sql = format!(
        "UPDATE integration_resyncs SET confirmed = 1 WHERE {LATEST} AND status = 'running' RETURNING {RESYNC_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
    if row.is_none() {
        sqlx::query("UPDATE integrations SET confirm_next = 1 WHERE org_id = ? AND identifier = ?")
            .bind(&org.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(row.as_ref().map(resync_from_row))
}

pub(crate) async fn get_org(pool: &SqlitePool, org: &OrgId) -> Result<Option<Org>> {
    let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = ?")
        .bind(&org.0)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| Org { id: OrgId(r.get(0)), name: r.get(1), created_at: r.get(2) }))
}

// ---- Integration cursors (migration 0007): the latest Ocean's incremental sync cursors ----

pub(crate) async fn cursor(pool: &SqlitePool, org: &OrgId, id: &str, kind: &str, index: &str) -> Result<Option<Value>> {
    let row = sqlx::query(
        "SELECT cursor FROM integration_cursors WHERE org_id = ? AND integration = ? AND kind = ? AND idx = ?",
    )
    .bind(&org.0)
    .bind(id)
    .bind(kind)
    .bind(index)
    .fetch_optional(pool)
    .await?;
    row.map(|r| parse_json("cursor", &r.get::<String, _>(0))).transpose()
}

pub(crate) async fn save_cursor(
    pool: &SqlitePool,
    org: &OrgId,
    key: (&str, &str, &str),
    cursor: &Value,
    at: &str,
    create: bool,
) -> Result<bool> {
    let (id, kind, index) = key;
    let sql = if create {
        "INSERT INTO integration_cursors(org_id, integration, kind, idx, cursor, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT(org_id, integration, kind, idx) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at"
    } else {
        "UPDATE integration_cursors SET cursor = ?5, updated_at = ?6 \
         WHERE org_id = ?1 AND integration = ?2 AND kind = ?3 AND idx = ?4"
    };
    let done = sqlx::query(sql)
        .bind(&org.0)
        .bind(id)
        .bind(kind)
        .bind(index)
        .bind(cursor.to_string())
        .bind(at)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}
