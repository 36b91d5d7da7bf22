//! Moving an embedded install to PostgreSQL (`portolan migrate-data`): every row of the chosen
//! organizations — blueprints, entities, relation edges, audit log, API credentials,
//! integrations (config versions, kind examples, resyncs, event log), webhooks (deliveries,
//! event log), users, sessions, invitations and the web UI's saved initial filters — copied from a SQLite database into a PostgreSQL one in a single transaction,
//! then verified by counting and checksumming both sides. Background jobs are not copied:
//! move an install with no job queued or running (`GET /v1/jobs`).
//!
//! *Identity:* entity `rid`s and the ids of the audit log, resyncs and integration log lines
//! keep their order (they are cursors and the log order); when the target already holds rows
//! they are shifted past its largest id, so nothing collides. Checksums are computed over the logical content of each row (ids normalized by
//! that shift, JSON canonicalized: sorted keys, integral numbers as integers), so a jsonb
//! column that reorders keys still checks equal and a lost or altered row does not.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Row, SqlitePool};

use crate::db::pg_query as frag_query;
use crate::sql::{SqlFrag, SqlParam};
use crate::{PgStore, SqliteStore, StoreError};

mod tables;

use tables::{Col, ID_SPACES, TABLES, TableSpec};
pub use tables::{DERIVED_COLUMNS, NOT_COPIED, copied_columns};

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Refused before anything was written (a non-empty target, an unknown organization…).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MigrateError {
    fn from(e: sqlx::Error) -> Self {
        MigrateError::Store(e.into())
    }
}

type Result<T, E = MigrateError> = std::result::Result<T, E>;

/// Rows per `SELECT` page and per multi-row `INSERT` (14 columns × 1000 stays well under
/// PostgreSQL's 65,535 parameters).
const CHUNK: i64 = 1000;

/// What to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Organization names to copy; empty copies every organization.
    pub organizations: Vec<String>,
    /// Write into a target that already has organizations (the copied ones must not exist there).
    pub allow_non_empty: bool,
}

/// Count and checksum of one table, on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    pub table: &'static str,
    pub source_rows: u64,
    pub target_rows: u64,
    pub source_sha256: String,
    pub target_sha256: String,
}

impl TableCheck {
    /// Same count and same checksum.
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_sha256 == self.target_sha256
    }
}

/// The outcome of a copy.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Names of the organizations copied.
    pub organizations: Vec<String>,
    /// Whether the source's settings (the token signing key) were copied: only into an empty
    /// target, so tokens issued before the move stay valid.
    pub settings_copied: bool,
    /// Whether the copy was committed: only when every table matched.
    pub committed: bool,
    pub tables: Vec<TableCheck>,
    orgs: Vec<OrgRow>,
    /// What was added to entity rids and audit ids (the target's largest before the copy).
    pub rid_offset: i64,
    pub audit_offset: i64,
    /// The shift of every id space (table of the identity column → what was added).
    offsets: Vec<(&'static str, i64)>,
}

fn offset_of(offsets: &[(&'static str, i64)], space: &str) -> i64 {
    offsets.iter().find(|(t, _)| *t == space).map_or(0, |(_, o)| *o)
}

impl CopyReport {
    /// Every table matches.
    pub fn verified(&self) -> bool {
        self.tables.iter().all(TableCheck::matches)
    }
}

#[derive(Debug, Clone)]
struct OrgRow {
    id: String,
    name: String,
    created_at: String,
    /// The settings JSON (migration 0012).
    settings: String,
    /// Quotas (migration 0016).
    max_users: Option<i64>,
    max_entities: Option<i64>,
}

/// Copy organizations from `src` into `dst` and verify the copy.
pub async fn sqlite_to_postgres(src: &SqliteStore, dst: &PgStore, opts: &CopyOptions) -> Result<CopyReport> {
    let s = src.reader_pool();
    let d = dst.pool();
    let orgs = source_orgs(s, &opts.organizations).await?;
    let existing: Vec<(String, String)> = sqlx::query("SELECT id, name FROM organizations ORDER BY name")
        .fetch_all(d)
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if !existing.is_empty() && !opts.allow_non_empty {
        let names: Vec<&str> = existing.iter().map(|(_, n)| n.as_str()).take(5).collect();
        return Err(MigrateError::Refused(format!(
            "the target database is not empty: it has {} organization(s) ({}{}); copy into an empty database, \
             or pass --allow-non-empty to add organizations to it",
            existing.len(),
            names.join(", "),
            if existing.len() > 5 { ", …" } else { "" }
        )));
    }
    for o in &orgs {
        if let Some((id, name)) = existing.iter().find(|(id, name)| *id == o.id || *name == o.name) {
            return Err(MigrateError::Refused(format!(
                "organization {:?} ({}) already exists in the target as {name:?} ({id}); nothing was copied",
                o.name, o.id
            )));
        }
    }
    let mut offsets = Vec::new();
    for (table, col) in ID_SPACES {
        let sql = format!("SELECT COALESCE(MAX({col}), 0)::int8 FROM {table}");
        offsets.push((*table, sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).fetch_one(d).await?));
    }
    let (rid_offset, audit_offset) = (offset_of(&offsets, "entities"), offset_of(&offsets, "audit_log"));
    let settings_copied = existing.is_empty();

    let mut tx = d.begin().await?;
    if settings_copied {
        for r in sqlx::query("SELECT key, value FROM settings").fetch_all(s).await? {
            let mut q = SqlFrag::new("INSERT INTO settings(key, value) VALUES (");
            q.param(r.get::<String, _>(0)).push(", ").param(r.get::<String, _>(1));
            q.push(") ON CONFLICT (key) DO UPDATE SET value = excluded.value");
            frag_query(&q).execute(&mut *tx).await?;
        }
    }
    for o in &orgs {
        let mut q =
            SqlFrag::new("INSERT INTO organizations(id, name, created_at, settings, max_users, max_entities) VALUES (");
        q.param(o.id.as_str()).push(", ").param(o.name.as_str()).push(", ").param(o.created_at.as_str());
        q.push(", ").param(o.settings.as_str()).push("::jsonb, ");
        let limit = |v: Option<i64>| v.map_or(SqlParam::Null, SqlParam::Int);
        // Typed: an unset quota is a NULL parameter, which PostgreSQL would otherwise take as text.
        q.param(limit(o.max_users)).push("::bigint, ").param(limit(o.max_entities)).push("::bigint)");
        frag_query(&q).execute(&mut *tx).await?;
        for spec in TABLES {
            copy_rows(s, &mut tx, &o.id, spec, &offsets).await?;
        }
    }
    // Identity columns continue after the copied ids.
    for (table, col) in ID_SPACES {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), GREATEST((SELECT MAX({col}) FROM {table}), 1))"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
    }
    let mut report = CopyReport {
        organizations: orgs.iter().map(|o| o.name.clone()).collect(),
        settings_copied,
        committed: false,
        tables: Vec::new(),
        orgs,
        rid_offset,
        audit_offset,
        offsets,
    };
    // Verify inside the transaction: a copy that does not match is rolled back, not left behind.
    {
        let conn = tokio::sync::Mutex::new(&mut *tx);
        report.tables = checks(src.reader_pool(), &conn, &report).await?;
    }
    if report.verified() {
        tx.commit().await?;
        report.committed = true;
    } else {
        tx.rollback().await?;
    }
    Ok(report)
}

/// Count and checksum every copied table on both sides again (after the copy committed).
pub async fn verify(src: &SqliteStore, dst: &PgStore, report: &CopyReport) -> Result<Vec<TableCheck>> {
    let mut conn = dst.pool().acquire().await?;
    let conn = tokio::sync::Mutex::new(&mut *conn);
    checks(src.reader_pool(), &conn, report).await
}

async fn checks(src: &SqlitePool, dst: &PgConn<'_>, report: &CopyReport) -> Result<Vec<TableCheck>> {
    let mut tables = Vec::new();
    for spec in TABLES {
        let (source_rows, source_sha256) = checksum(Side::Sqlite(src), spec, &report.orgs, &[]).await?;
        let (target_rows, target_sha256) = checksum(Side::Postgres(dst), spec, &report.orgs, &report.offsets).await?;
        tables.push(TableCheck { table: spec.table, source_rows, target_rows, source_sha256, target_sha256 });
    }
    Ok(tables)
}

/// One PostgreSQL connection (the copy's transaction, or a pooled one), shared by the
/// checksum reads.
type PgConn<'a> = tokio::sync::Mutex<&'a mut sqlx::PgConnection>;

async fn source_orgs(s: &SqlitePool, names: &[String]) -> Result<Vec<OrgRow>> {
    let all: Vec<OrgRow> = sqlx::query(
        "SELECT id, name, created_at, settings, max_users, max_entities FROM organizations ORDER BY created_at, id",
    )
    .fetch_all(s)
    .await?
    .into_iter()
    .map(|r| OrgRow {
        id: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
        settings: r.get(3),
        max_users: r.get(4),
        max_entities: r.get(5),
    })
    .collect();
    if names.is_empty() {
        if all.is_empty() {
            return Err(MigrateError::Refused("the source database has no organization: nothing to copy".into()));
        }
        return Ok(all);
    }
    let mut picked = Vec::new();
    for n in names {
        match all.iter().find(|o| &o.name == n) {
            Some(o) => picked.push(o.clone()),
            None => {
                let known: Vec<&str> = all.iter().map(|o| o.name.as_str()).collect();
                return Err(MigrateError::Refused(format!(
                    "organization {n:?} is not in the source database (it has: {})",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(picked)
}

/// A column's value read from either side, in the form both sides agree on.
#[derive(Debug)]
enum Cell {
    Null,
    Text(String),
    Int(i64),
    Real(f64),
}

fn sqlite_cells(r: &sqlx::sqlite::SqliteRow, spec: &TableSpec) -> Result<Vec<Cell>> {
    spec.cols
        .iter()
        .enumerate()
        .map(|(i, (_, col))| {
            Ok(match col {
                Col::Id(_) | Col::Int | Col::EventMark | Col::Bool => {
                    r.try_get::<Option<i64>, _>(i)?.map_or(Cell::Null, Cell::Int)
                }
                Col::Text | Col::Json => r.try_get::<Option<String>, _>(i)?.map_or(Cell::Null, Cell::Text),
                Col::Real => r.try_get::<Option<f64>, _>(i)?.map_or(Cell::Null, Cell::Real),
            })
        })
        .collect()
}

/// The table and integer key whose keyset pages drive the reading of `spec`'s rows: a page is
/// the key range `(lo, hi]` of up to [`CHUNK`] rows of the pager. Relation edges are paged by
/// their source entities, so one entity's edges never straddle two pages.
fn pager(spec: &TableSpec) -> Option<(&'static str, &'static str)> {
    match spec.table {
        "entity_relations" => Some(("entities", "rid")),
        "entities" => Some(("entities", "rid")),
        "audit_log" => Some(("audit_log", "id")),
        "integration_resyncs" => Some(("integration_resyncs", "id")),
        "integration_logs" => Some(("integration_logs", "id")),
        "webhook_logs" => Some(("webhook_logs", "id")),
        _ => None,
    }
}

/// The upper end of the next page after `after` (in that side's own numbering), if any rows remain.
async fn next_page(side: &Side<'_, '_>, spec: &TableSpec, org: &str, after: i64) -> Result<Option<i64>> {
    let Some((table, key)) = pager(spec) else { return Ok(None) };
    Ok(match side {
        Side::Sqlite(p) => {
            let sql = format!(
                "SELECT MAX({key}) FROM (SELECT {key} FROM {table} WHERE org_id = ? AND {key} > ? ORDER BY {key} LIMIT ?)"
            );
            sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .bind(after)
                .bind(CHUNK)
                .fetch_one(*p)
                .await?
        }
        Side::Postgres(p) => {
            let sql = format!(
                "SELECT MAX({key})::int8 FROM (SELECT {key} FROM {table} WHERE org_id = $1 AND {key} > $2 \
                 ORDER BY {key} LIMIT $3) page"
            );
            sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .bind(after)
                .bind(CHUNK)
                .fetch_one(&mut **p.lock().await)
                .await?
        }
    })
}

/// The rows of one page (`Some((lo, hi))`) or of the whole organization (`None`), in checksum order.
async fn read_rows(
    side: &Side<'_, '_>,
    spec: &TableSpec,
    org: &str,
    range: Option<(i64, i64)>,
) -> Result<Vec<Vec<Cell>>> {
    let pg = matches!(side, Side::Postgres(_));
    let select: Vec<String> = spec
        .cols
        .iter()
        .map(|(c, col)| match (pg, col) {
            // JSON read as text on both sides; PostgreSQL booleans as integers.
            (true, Col::Json) => format!("{c}::text"),
            (true, Col::Bool) => format!("{c}::int4::int8"),
            // SQLite's dispatch position (migration 0034): only marks above it are waiting.
            (false, Col::EventMark) => format!(
                "CASE WHEN id > COALESCE((SELECT c.audit_id FROM automation_cursors c \
                 WHERE c.org_id = {table}.org_id), 0) THEN {c} END",
                table = spec.table
            ),
            _ => (*c).to_string(),
        })
        .collect();
    let order: Vec<String> = spec
        .order
        .iter()
        .zip(std::iter::repeat(pg))
        .map(|(c, pg)| {
            let text = spec.cols.iter().any(|(n, col)| n == c && *col == Col::Text);
            // Byte order on both sides: SQLite's BINARY collation is PostgreSQL's "C".
            if pg && text { format!("{c} COLLATE \"C\"") } else { (*c).to_string() }
        })
        .collect();
    let (n1, n2, n3) = if pg { ("$1", "$2", "$3") } else { ("?", "?", "?") };
    let mut sql = format!("SELECT {} FROM {} WHERE org_id = {n1}", select.join(", "), spec.table);
    if range.is_some() {
        let key = spec.cols.iter().find(|(_, c)| matches!(c, Col::Id(_))).map_or("rid", |(n, _)| *n);
        let _ = write!(sql, " AND {key} > {n2} AND {key} <= {n3}");
    }
    let _ = write!(sql, " ORDER BY {}", order.join(", "));
    Ok(match side {
        Side::Sqlite(p) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org);
            if let Some((lo, hi)) = range {
                q = q.bind(lo).bind(hi);
            }
            q.fetch_all(*p).await?.iter().map(|r| sqlite_cells(r, spec)).collect::<Result<_>>()?
        }
        Side::Postgres(p) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org);
            if let Some((lo, hi)) = range {
                q = q.bind(lo).bind(hi);
            }
            q.fetch_all(&mut **p.lock().await).await?.iter().map(|r| pg_cells(r, spec)).collect::<Result<_>>()?
        }
    })
}

/// Call `f` with each page of `org`'s rows of `spec` on `side`.
async fn for_each_page<F>(side: &Side<'_, '_>, spec: &TableSpec, org: &str, mut f: F) -> Result<()>
where
    F: AsyncFnMut(Vec<Vec<Cell>>) -> Result<()>,
{
    if pager(spec).is_none() {
        return f(read_rows(side, spec, org, None).await?).await;
    }
    let mut last = i64::MIN;
    while let Some(hi) = next_page(side, spec, org, last).await? {
        f(read_rows(side, spec, org, Some((last, hi))).await?).await?;
        last = hi;
    }
    Ok(())
}

/// Copy one organization's rows of one table, page by page, ids shifted by `offsets`.
async fn copy_rows(
    s: &SqlitePool,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    org: &str,
    spec: &TableSpec,
    offsets: &[(&'static str, i64)],
) -> Result<()> {
    let cols: Vec<&str> = spec.cols.iter().map(|(c, _)| *c).collect();
    let json_type = spec.json_type;
    for_each_page(&Side::Sqlite(s), spec, org, async |rows: Vec<Vec<Cell>>| {
        for chunk in rows.chunks(CHUNK as usize) {
            let mut q = SqlFrag::new(&format!("INSERT INTO {}(org_id, {}) ", spec.table, cols.join(", ")));
            if spec.overriding {
                q.push("OVERRIDING SYSTEM VALUE ");
            }
            q.push("VALUES ");
            for (n, row) in chunk.iter().enumerate() {
                q.push(if n == 0 { "(" } else { ", (" }).param(org);
                for ((_, col), cell) in spec.cols.iter().zip(row) {
                    q.push(", ");
                    match (col, cell) {
                        (_, Cell::Null) => q.push("NULL"),
                        (Col::Id(space), Cell::Int(i)) => q.param(i + offset_of(offsets, space)),
                        (Col::Bool, Cell::Int(i)) => q.param(*i != 0),
                        (Col::Json, Cell::Text(t)) => {
                            q.push("CAST(").param(t.as_str()).push(" AS ").push(json_type).push(")")
                        }
                        (_, Cell::Text(t)) => q.param(t.as_str()),
                        (_, Cell::Int(i)) => q.param(*i),
                        (_, Cell::Real(x)) => q.param(*x),
                    };
                }
                q.push(")");
            }
            frag_query(&q).execute(&mut **tx).await?;
        }
        Ok(())
    })
    .await
}

enum Side<'a, 'c> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgConn<'c>),
}

/// (rows, SHA-256) of `spec`'s rows of `orgs` on one side, ids normalized by `offsets`.
async fn checksum(
    side: Side<'_, '_>,
    spec: &TableSpec,
    orgs: &[OrgRow],
    offsets: &[(&'static str, i64)],
) -> Result<(u64, String)> {
    let mut hash = Sha256::new();
    let mut rows = 0u64;
    for o in orgs {
        for_each_page(&side, spec, &o.id, async |page: Vec<Vec<Cell>>| {
            for row in &page {
                rows += 1;
                let mut line = String::new();
                for ((_, col), cell) in spec.cols.iter().zip(row) {
                    line.push('\u{1}');
                    match (col, cell) {
                        (_, Cell::Null) => line.push('\u{0}'),
                        (Col::Id(space), Cell::Int(i)) => {
                            let _ = write!(line, "{}", i - offset_of(offsets, space));
                        }
                        (_, Cell::Int(i)) => {
                            let _ = write!(line, "{i}");
                        }
                        (_, Cell::Real(x)) => {
                            let _ = write!(line, "{x:?}");
                        }
                        (Col::Json, Cell::Text(t)) => line.push_str(&canonical_json(t)),
                        (_, Cell::Text(t)) => line.push_str(t),
                    }
                }
                line.push('\n');
                hash.update(line.as_bytes());
            }
            Ok(())
        })
        .await?;
    }
    let mut hex = String::with_capacity(64);
    for b in hash.finalize().iter() {
        let _ = write!(hex, "{b:02x}");
    }
    Ok((rows, hex))
}

fn pg_cells(r: &sqlx::postgres::PgRow, spec: &TableSpec) -> Result<Vec<Cell>> {
    spec.cols
        .iter()
        .enumerate()
        .map(|(i, (_, col))| {
            Ok(match col {
                Col::Id(_) | Col::Int | Col::EventMark | Col::Bool => {
                    r.try_get::<Option<i64>, _>(i)?.map_or(Cell::Null, Cell::Int)
                }
                Col::Text | Col::Json => r.try_get::<Option<String>, _>(i)?.map_or(Cell::Null, Cell::Text),
                Col::Real => r.try_get::<Option<f64>, _>(i)?.map_or(Cell::Null, Cell::Real),
            })
        })
        .collect()
}

/// JSON text in a canonical form: object keys sorted, integral numbers written as integers.
/// Text that is not JSON is kept as it is.
pub fn canonical_json(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let mut out = String::with_capacity(text.len());
            write_canonical(&v, &mut out);
            out
        }
        Err(_) => text.to_string(),
    }
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                let _ = write!(out, "{}", f as i64);
            }
            _ => {
                let _ = write!(out, "{n}");
            }
        },
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_json;

    #[test]
    fn canonical_json_sorts_keys_and_normalizes_integral_numbers() {
        assert_eq!(canonical_json(r#"{"b":1,"a":{"d":1.0,"c":[2e0,"x"]}}"#), r#"{"a":{"c":[2,"x"],"d":1},"b":1}"#);
        assert_eq!(canonical_json(r#"{"a":1.5}"#), r#"{"a":1.5}"#);
        assert_ne!(canonical_json(r#"{"a":1}"#), canonical_json(r#"{"a":2}"#));
        assert_eq!(canonical_json("not json"), "not json");
    }
}
