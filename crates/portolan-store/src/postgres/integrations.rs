//! Integrations on PostgreSQL: the same as `sqlite/integrations.rs` (whose helpers for audit
//! records and log filters it shares). JSON columns are `json`, read back as text; text holding
//! a NUL character (which PostgreSQL text cannot store) has it replaced by U+FFFD.

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::{audit, frag_query, pgq};
use crate::sql::{SqlFrag, SqlParam};
use crate::sqlite::integrations::{audit_record, log_from_raw, log_query};
use crate::{
    AuditCtx, ConfigVersion, DeletionGuard, IntegrationLog, LogFilter, Org, OrgId, Reservation, Result, Resync,
    SaveMode, StoreError, StoredIntegration, prefixed_rowid,
};

fn parse_json(what: &str, s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Db(format!("stored {what} is not JSON: {e}")))
}

fn integration_from_row(r: &PgRow) -> Result<StoredIntegration> {
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
    "identifier, data::text AS data, config_version, created_at, created_by, updated_at, updated_by FROM integrations";

pub(crate) async fn get(pool: &PgPool, org: &OrgId, id: &str) -> Result<Option<StoredIntegration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} WHERE org_id = ? AND identifier = ?");
    let row = pgq(&sql).bind(&org.0).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(integration_from_row).transpose()
}

pub(crate) async fn list(pool: &PgPool, org: &OrgId) -> Result<Vec<StoredIntegration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} WHERE org_id = ? ORDER BY identifier");
    let rows = pgq(&sql).bind(&org.0).fetch_all(pool).await?;
    rows.iter().map(integration_from_row).collect()
}

pub(crate) async fn save(
    pool: &PgPool,
    org: &OrgId,
    id: &str,
    data: &Value,
    mode: SaveMode,
    audit_it: bool,
    ctx: &AuditCtx,
) -> Result<StoredIntegration> {
    let mut tx = pool.begin().await?;
    let sql = format!("SELECT {INTEGRATION_COLUMNS} WHERE org_id = ? AND identifier = ? FOR UPDATE");
    let old = pgq(&sql).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
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
    pgq("INSERT INTO integrations(org_id, identifier, data, config_version, created_at, created_by, updated_at, updated_by) \
         VALUES (?, ?, ?::json, ?, ?, ?, ?, ?) ON CONFLICT(org_id, identifier) DO UPDATE SET data = excluded.data, \
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
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!("integration {id:?}")),
        e => e.into(),
    })?;
    if old.as_ref().is_none_or(|o| o.config_version != version) {
        pgq("INSERT INTO integration_config_versions(org_id, integration, version, config, created_at, created_by) \
             VALUES (?, ?, ?, ?::json, ?, ?)")
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

pub(crate) async fn delete(pool: &PgPool, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
    let mut tx = pool.begin().await?;
    let old = pgq("SELECT data::text FROM integrations WHERE org_id = ? AND identifier = ?")
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
        pgq(&sql).bind(&org.0).bind(id).execute(&mut *tx).await?;
    }
    pgq("DELETE FROM integrations WHERE org_id = ? AND identifier = ?").bind(&org.0).bind(id).execute(&mut *tx).await?;
    audit::insert(&mut tx, org, &audit_record(id, "DELETE", Some(&before), None, ctx)).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn config_versions(pool: &PgPool, org: &OrgId, id: &str) -> Result<Vec<ConfigVersion>> {
    let rows = pgq("SELECT version, config::text, created_at, created_by FROM integration_config_versions \
         WHERE org_id = ? AND integration = ? ORDER BY version DESC")
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
    pool: &PgPool,
    org: &OrgId,
    id: &str,
    kind: &str,
    examples: &Value,
    at: &str,
) -> Result<()> {
    pgq("INSERT INTO integration_examples(org_id, integration, kind, examples, updated_at) VALUES (?, ?, ?, ?::json, ?) \
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

pub(crate) async fn examples(pool: &PgPool, org: &OrgId, id: &str, kind: &str) -> Result<Option<Value>> {
    let row = pgq("SELECT examples::text FROM integration_examples WHERE org_id = ? AND integration = ? AND kind = ?")
        .bind(&org.0)
        .bind(id)
        .bind(kind)
        .fetch_optional(pool)
        .await?;
    row.map(|r| parse_json("examples", &r.get::<String, _>(0))).transpose()
}

pub(crate) async fn append_logs(pool: &PgPool, org: &OrgId, id: &str, lines: &[IntegrationLog]) -> Result<()> {
    for chunk in lines.chunks(500) {
        let mut q = SqlFrag::new(
            "INSERT INTO integration_logs(org_id, integration, resync_id, at, level, source, event, message, extra) VALUES ",
        );
        for (i, l) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            let resync = l.resync_id.as_deref().and_then(|r| prefixed_rowid(r, "rs_"));
            q.param_list([SqlParam::Text(org.0.clone()), SqlParam::Text(nul(id))]).push(", ");
            // A NULL is bound as text: cast it to the column's type.
            q.param(resync.map_or(SqlParam::Null, SqlParam::Int)).push("::int8, ");
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

/// The columns of a log row, JSON as text.
const LOG_SELECT: &str = "SELECT id, resync_id, at, level, source, event, message, extra::text";

/// PostgreSQL text cannot hold NUL.
fn nul(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

pub(crate) async fn list_logs(pool: &PgPool, org: &OrgId, id: &str, f: &LogFilter) -> Result<Vec<IntegrationLog>> {
    let q = log_query(LOG_SELECT, org, id, f);
    let rows = frag_query(&q).fetch_all(pool).await?;
    rows.iter()
        .map(|r| log_from_raw((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7))))
        .collect()
}

const RESYNC_COLUMNS: &str =
    "id, integration, status, started_at, ended_at, entities_at_start, deleted, refused, tripped, confirmed";

fn resync_from_row(r: &PgRow) -> Resync {
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
        tripped: r.get::<bool, _>(8),
        confirmed: r.get::<bool, _>(9),
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `id = <the latest resync of the integration>` (two bound parameters: org, integration).
const LATEST: &str = "id = (SELECT MAX(id) FROM integration_resyncs WHERE org_id = ? AND integration = ?)";

pub(crate) async fn start_resync(pool: &PgPool, org: &OrgId, id: &str, at: &str, entities: u64) -> Result<Resync> {
    let mut tx = pool.begin().await?;
    pgq("UPDATE integration_resyncs SET status = 'abandoned', ended_at = ? \
         WHERE org_id = ? AND integration = ? AND status = 'running'")
    .bind(at)
    .bind(&org.0)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let confirmed: bool = pgq("SELECT confirm_next FROM integrations WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some_and(|r| r.get::<bool, _>(0));
    pgq("UPDATE integrations SET confirm_next = FALSE WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let sql = format!(
        "INSERT INTO integration_resyncs(org_id, integration, status, started_at, entities_at_start, confirmed) \
         VALUES (?, ?, 'running', ?, ?, ?) RETURNING {RESYNC_COLUMNS}"
    );
    let row =
        pgq(&sql).bind(&org.0).bind(id).bind(at).bind(count(entities)).bind(confirmed).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(resync_from_row(&row))
}

pub(crate) async fn latest_resync(pool: &PgPool, org: &OrgId, id: &str) -> Result<Option<Resync>> {
    let sql = format!("SELECT {RESYNC_COLUMNS} FROM integration_resyncs WHERE {LATEST}");
    let row = pgq(&sql).bind(&org.0).bind(id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(resync_from_row))
}

pub(crate) async fn finish_resync(
    pool: &PgPool,
    org: &OrgId,
    id: &str,
    status: &str,
    at: &str,
) -> Result<Option<Resync>> {
    let sql = format!(
        "UPDATE integration_resyncs SET status = ?, ended_at = ? WHERE {LATEST} AND status = 'running' \
         RETURNING {RESYNC_COLUMNS}"
    );
    let row = pgq(&sql).bind(status).bind(at).bind(&org.0).bind(id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(resync_from_row))
}

pub(crate) async fn reserve_deletions(
    pool: &PgPool,
    org: &OrgId,
    id: &str,
    n: u64,
    projected: u64,
    guard: &DeletionGuard,
) -> Result<Reservation> {
    let sql = format!(
        "UPDATE integration_resyncs SET deleted = deleted + ? WHERE {LATEST} AND status = 'running' \
         AND (confirmed OR (NOT tripped AND (GREATEST(deleted + ?, ?) <= ? OR GREATEST(deleted + ?, ?) <= ?::float8 * entities_at_start))) \
         RETURNING {RESYNC_COLUMNS}"
    );
    let (n, p) = (count(n), count(projected));
    let granted = pgq(&sql)
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
        "UPDATE integration_resyncs SET tripped = TRUE, refused = refused + ? WHERE {LATEST} AND status = 'running' \
         RETURNING {RESYNC_COLUMNS}"
    );
    let refused = pgq(&sql).bind(n).bind(&org.0).bind(id).fetch_optional(pool).await?;
    Ok(refused.map_or(Reservation::NoResync, |r| Reservation::Refused(resync_from_row(&r))))
}

pub(crate) async fn release_deletions(pool: &PgPool, org: &OrgId, resync_id: &str, n: u64) -> Result<()> {
    let Some(rowid) = prefixed_rowid(resync_id, "rs_") else { return Ok(()) };
    pgq("UPDATE integration_resyncs SET deleted = GREATEST(deleted - ?, 0) WHERE org_id = ? AND id = ?")
        .bind(count(n))
        .bind(&org.0)
        .bind(rowid)
        .execute(pool)
        .await?;
    Ok(())
}

/// Confirm the running resync's deletions, or (none running) the next resync's.
pub(crate) async fn confirm_deletions(pool: &PgPool, org: &OrgId, id: &str) -> Result<Option<Resync>> {
    let mut tx = pool.begin().await?;
    let exists = pgq("SELECT 1 FROM integrations WHERE org_id = ? AND identifier = ?")
        .bind(&org.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("integration {id:?}")));
    }
    let sql = format!(
        "UPDATE integration_resyncs SET confirmed = TRUE WHERE {LATEST} AND status = 'running' RETURNING {RESYNC_COLUMNS}"
    );
    let row = pgq(&sql).bind(&org.0).bind(id).fetch_optional(&mut *tx).await?;
    if row.is_none() {
        pgq("UPDATE integrations SET confirm_next = TRUE WHERE org_id = ? AND identifier = ?")
            .bind(&org.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(row.as_ref().map(resync_from_row))
}

pub(crate) async fn get_org(pool: &PgPool, org: &OrgId) -> Result<Option<Org>> {
    let row =
        pgq("SELECT id, name, created_at FROM organizations WHERE id = ?").bind(&org.0).fetch_optional(pool).await?;
    Ok(row.map(|r| Org { id: OrgId(r.get(0)), name: r.get(1), created_at: r.get(2) }))
}

// ---- Integration cursors (migration 0007): the latest Ocean's incremental sync cursors ----

pub(crate) async fn cursor(pool: &PgPool, org: &OrgId, id: &str, kind: &str, index: &str) -> Result<Option<Value>> {
    let row = pgq(
        "SELECT cursor::text FROM integration_cursors WHERE org_id = ? AND integration = ? AND kind = ? AND idx = ?",
    )
    .bind(&org.0)
    .bind(nul(id))
    .bind(nul(kind))
    .bind(nul(index))
    .fetch_optional(pool)
    .await?;
    row.map(|r| parse_json("cursor", &r.get::<String, _>(0))).transpose()
}

pub(crate) async fn save_cursor(
    pool: &PgPool,
    org: &OrgId,
    key: (&str, &str, &str),
    cursor: &Value,
    at: &str,
    create: bool,
) -> Result<bool> {
    let (id, kind, index) = key;
    let done = if create {
        pgq("INSERT INTO integration_cursors(org_id, integration, kind, idx, cursor, updated_at) VALUES (?, ?, ?, ?, ?::json, ?) \
             ON CONFLICT(org_id, integration, kind, idx) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at")
        .bind(&org.0)
        .bind(nul(id))
        .bind(nul(kind))
        .bind(nul(index))
        .bind(nul(&cursor.to_string()))
        .bind(at)
        .execute(pool)
        .await?
    } else {
        pgq("UPDATE integration_cursors SET cursor = ?::json, updated_at = ? \
             WHERE org_id = ? AND integration = ? AND kind = ? AND idx = ?")
        .bind(nul(&cursor.to_string()))
        .bind(at)
        .bind(&org.0)
        .bind(nul(id))
        .bind(nul(kind))
        .bind(nul(index))
        .execute(pool)
        .await?
    };
    Ok(done.rows_affected() > 0)
}
