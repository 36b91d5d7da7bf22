//! **Physical-ceiling baseline — not product code.**
//!
//! Inserts the same rows the API load creates straight into a fresh SQLite file, with the
//! store's settings (WAL, `synchronous = NORMAL`, foreign keys on, same cache size) and one
//! transaction per batch of the same size, into tables with the columns and indexes of
//! `crates/portolan-store/migrations/sqlite/0001_init.sql` (`blueprints`, `entities`,
//! `entity_relations`). No HTTP, no JSON parsing, no validation, no existence checks, no audit
//! log: the rate it reaches is an upper bound for what the API could do on this machine, and the
//! benchmark reports the API's throughput as a fraction of it. Three variants run, each on its
//! own file: one statement per row (the store's write pattern, so the cost of the driver's
//! per-statement round trip shows), multi-row `INSERT`s (the ceiling of these three tables), and
//! multi-row `INSERT`s into a file with **the store's schema as it is now** (its migrations
//! applied: every index and trigger of `entities`, `entity_relations` and `audit_log`) with one
//! audit row per entity, as the PostgreSQL baseline (`pg_baseline.rs`) does — the rows the API
//! writes, audit records included (their diff is the whole entity, as the API records a
//! creation), so the API's ratio to it is the cost of the API path itself.
//!
//! This is the only SQL outside `portolan-store`, and it exists only to measure that ceiling;
//! nothing in the product may depend on it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row, Sqlite};

use crate::model::Dataset;

/// The tables of `0001_init.sql` that an entity write touches, verbatim in columns and indexes.
const SCHEMA: &str = "
CREATE TABLE blueprints (
    org_id     TEXT NOT NULL,
    identifier TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);
CREATE TABLE entities (
    rid        INTEGER PRIMARY KEY,
    org_id     TEXT NOT NULL,
    blueprint  TEXT NOT NULL,
    identifier TEXT NOT NULL,
    title      TEXT,
    icon       TEXT,
    team       TEXT NOT NULL DEFAULT '[]',
    properties TEXT NOT NULL DEFAULT '{}',
    relations  TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    datasource TEXT,
    FOREIGN KEY (org_id, blueprint) REFERENCES blueprints(org_id, identifier)
);
CREATE UNIQUE INDEX entities_key ON entities(org_id, blueprint, identifier);
CREATE INDEX entities_org_rid ON entities(org_id, rid);
CREATE TABLE entity_relations (
    org_id            TEXT NOT NULL,
    src_rid           INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    relation          TEXT NOT NULL,
    target_blueprint  TEXT NOT NULL,
    target_identifier TEXT NOT NULL,
    required          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX entity_relations_src ON entity_relations(src_rid);
CREATE INDEX entity_relations_target ON entity_relations(org_id, target_blueprint, target_identifier);
";

pub(crate) const ORG: &str = "org_bench";
pub(crate) const AT: &str = "2024-06-01T00:00:00.000Z";
/// Who wrote the rows: as long as the API's client ids (24 random bytes in base64), which the
/// API writes as `created_by` / `updated_by` and into each audit record's entity.
pub(crate) const BY: &str = "bench-client-id-0000000000000000";

/// One `entities` row and its `entity_relations` rows, prepared before the clock starts.
pub(crate) struct PreparedRow {
    pub(crate) blueprint: &'static str,
    pub(crate) identifier: String,
    pub(crate) title: String,
    pub(crate) properties: String,
    pub(crate) relations: String,
    /// The audit record's `diff`, as the API writes it for a creation: `{"before": null,
    /// "after": <the entity as the API returns it>}` (about four times the properties' size).
    pub(crate) audit_diff: String,
    /// (relation, target blueprint, target identifier); every relation here targets the
    /// blueprint of the same name.
    pub(crate) edges: Vec<(String, String)>,
}

pub(crate) fn prepare(data: &Dataset) -> Vec<PreparedRow> {
    let mut rows = Vec::with_capacity(data.total());
    for (bp, n) in data.order() {
        for i in 0..n {
            let e = data.entity(bp, i);
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let edges = e
                .get("relations")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default();
            let object = |k: &str| e.get(k).cloned().unwrap_or_else(|| serde_json::json!({}));
            let (properties, relations) = (object("properties"), object("relations"));
            let after = serde_json::json!({
                "identifier": text("identifier"), "title": text("title"), "icon": null, "blueprint": bp,
                "team": [], "properties": properties, "relations": relations,
                "createdAt": AT, "createdBy": BY, "updatedAt": AT, "updatedBy": BY,
            });
            rows.push(PreparedRow {
                blueprint: bp,
                identifier: text("identifier"),
                title: text("title"),
                properties: after["properties"].to_string(),
                relations: after["relations"].to_string(),
                audit_diff: serde_json::json!({"before": null, "after": after}).to_string(),
                edges,
            });
        }
    }
    rows
}

/// Entity rows per multi-row `INSERT` (13 parameters each, far below SQLite's 32766).
const ROWS_PER_STATEMENT: usize = 500;

/// One way of inserting the rows.
#[derive(Debug, Clone)]
pub struct Variant {
    pub rows: usize,
    pub relation_rows: usize,
    pub elapsed: Duration,
}

impl Variant {
    pub fn per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64()
    }
}

#[derive(Debug, Clone)]
pub struct BaselineResult {
    /// One `INSERT … RETURNING rid` per entity and one `INSERT` per relation edge, as the
    /// store's write path issues them (its checks and audit rows left out).
    pub row_at_a_time: Variant,
    /// Multi-row `INSERT`s with the row ids assigned by the caller: the ceiling.
    pub multi_row: Variant,
    /// Multi-row `INSERT`s of the entity, relation and audit rows into the store's schema.
    pub store_schema: Variant,
}

impl BaselineResult {
    /// The faster of the two variants: the ceiling the API is compared with.
    pub fn ceiling(&self) -> &Variant {
        if self.multi_row.per_sec() >= self.row_at_a_time.per_sec() { &self.multi_row } else { &self.row_at_a_time }
    }
}

/// A fresh database file with the store's settings, the schema and the three blueprints.
async fn open(path: &Path, data: &Dataset) -> anyhow::Result<SqliteConnection> {
    let mut conn = connect(path).await?;
    sqlx::raw_sql(SCHEMA).execute(&mut conn).await.context("cannot create the baseline schema")?;
    insert_blueprints(&mut conn, data).await?;
    Ok(conn)
}

/// A fresh database file with the store's settings and its schema as it is now (the store's
/// migrations), the organization and the three blueprints.
async fn open_store_schema(path: &Path, data: &Dataset) -> anyhow::Result<SqliteConnection> {
    let mut conn = connect(path).await?;
    sqlx::migrate!("../portolan-store/migrations/sqlite")
        .run(&mut conn)
        .await
        .context("cannot apply the store's migrations to the baseline file")?;
    sqlx::query("INSERT INTO organizations(id, name, created_at) VALUES (?, ?, ?)")
        .bind(ORG)
        .bind(ORG)
        .bind(AT)
        .execute(&mut conn)
        .await?;
    insert_blueprints(&mut conn, data).await?;
    Ok(conn)
}

/// The three blueprints' rows (the columns both schemas have).
async fn insert_blueprints(conn: &mut SqliteConnection, data: &Dataset) -> anyhow::Result<()> {
    for (bp, _) in data.order() {
        sqlx::query(
            "INSERT INTO blueprints(org_id, identifier, body, created_at, created_by, updated_at, updated_by) \
             VALUES (?, ?, '{}', ?, ?, ?, ?)",
        )
        .bind(ORG)
        .bind(bp)
        .bind(AT)
        .bind(BY)
        .bind(AT)
        .bind(BY)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A connection with the store's settings (WAL, `synchronous = NORMAL`, foreign keys, cache).
async fn connect(path: &Path) -> anyhow::Result<SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .pragma("cache_size", "-65536")
        .pragma("temp_store", "memory")
        .connect()
        .await
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Insert every entity of `data` twice, each time into a fresh file in `dir`, `batch` rows per
/// transaction: row at a time, then with multi-row statements.
pub async fn run(dir: &Path, data: &Dataset, batch: usize) -> anyhow::Result<BaselineResult> {
    let rows = prepare(data);
    let row_at_a_time = row_at_a_time(&dir.join("baseline-rows.sqlite"), data, &rows, batch).await?;
    let conn = open(&dir.join("baseline-multi.sqlite"), data).await?;
    let multi_row = multi_row(conn, &rows, batch, false).await?;
    let conn = open_store_schema(&dir.join("baseline-store.sqlite"), data).await?;
    let store_schema = multi_row_store(conn, &rows, batch).await?;
    Ok(BaselineResult { row_at_a_time, multi_row, store_schema })
}

async fn row_at_a_time(path: &Path, data: &Dataset, rows: &[PreparedRow], batch: usize) -> anyhow::Result<Variant> {
    let mut conn = open(path, data).await?;
    let mut relation_rows = 0;
    let started = Instant::now();
    for chunk in rows.chunks(batch.max(1)) {
        let mut tx = conn.begin().await?;
        for r in chunk {
            let rid: i64 = sqlx::query(
                "INSERT INTO entities(org_id, blueprint, identifier, title, icon, team, properties, relations, \
                 created_at, created_by, updated_at, updated_by, datasource) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rid",
            )
            .bind(ORG)
            .bind(r.blueprint)
            .bind(&r.identifier)
            .bind(&r.title)
            .bind(None::<String>)
            .bind("[]")
            .bind(&r.properties)
            .bind(&r.relations)
            .bind(AT)
            .bind(BY)
            .bind(AT)
            .bind(BY)
            .bind(None::<String>)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            for (relation, target) in &r.edges {
                sqlx::query(
                    "INSERT INTO entity_relations(org_id, src_rid, relation, target_blueprint, target_identifier, \
                     required) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(ORG)
                .bind(rid)
                .bind(relation)
                .bind(relation)
                .bind(target)
                .bind(0_i64)
                .execute(&mut *tx)
                .await?;
                relation_rows += 1;
            }
        }
        tx.commit().await?;
    }
    let elapsed = started.elapsed();
    conn.close().await?;
    Ok(Variant { rows: rows.len(), relation_rows, elapsed })
}

async fn multi_row_store(conn: SqliteConnection, rows: &[PreparedRow], batch: usize) -> anyhow::Result<Variant> {
    multi_row(conn, rows, batch, true).await
}

/// Multi-row `INSERT`s, `batch` entities per transaction; with `audit`, one audit row each.
async fn multi_row(
    mut conn: SqliteConnection,
    rows: &[PreparedRow],
    batch: usize,
    audit: bool,
) -> anyhow::Result<Variant> {
    let mut relation_rows = 0;
    let mut next_rid: i64 = 1;
    let started = Instant::now();
    for chunk in rows.chunks(batch.max(1)) {
        let mut tx = conn.begin().await?;
        for part in chunk.chunks(ROWS_PER_STATEMENT) {
            let first = next_rid;
            next_rid += part.len() as i64;
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO entities(rid, org_id, blueprint, identifier, title, icon, team, properties, relations, \
                 created_at, created_by, updated_at, updated_by, datasource) ",
            );
            q.push_values(part.iter().zip(first..), |mut b, (r, rid)| {
                b.push_bind(rid).push_bind(ORG).push_bind(r.blueprint).push_bind(r.identifier.as_str());
                b.push_bind(r.title.as_str()).push_bind(None::<String>).push_bind("[]");
                b.push_bind(r.properties.as_str()).push_bind(r.relations.as_str());
                b.push_bind(AT).push_bind(BY).push_bind(AT).push_bind(BY).push_bind(None::<String>);
            });
            q.build().execute(&mut *tx).await?;
            if audit {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO audit_log(org_id, at, resource_type, action, status, identifier, blueprint, entity, \
                     origin, user_id, diff) ",
                );
                q.push_values(part, |mut b, r| {
                    b.push_bind(ORG).push_bind(AT).push_bind("entity").push_bind("CREATE").push_bind("SUCCESS");
                    b.push_bind(r.identifier.as_str()).push_bind(r.blueprint).push_bind(r.identifier.as_str());
                    b.push_bind("API").push_bind(BY).push_bind(r.audit_diff.as_str());
                });
                q.build().execute(&mut *tx).await?;
            }
            let edges: Vec<(i64, &str, &str)> = part
                .iter()
                .zip(first..)
                .flat_map(|(r, rid)| r.edges.iter().map(move |(rel, t)| (rid, rel.as_str(), t.as_str())))
                .collect();
            if edges.is_empty() {
                continue;
            }
            relation_rows += edges.len();
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO entity_relations(org_id, src_rid, relation, target_blueprint, target_identifier, required) ",
            );
            q.push_values(edges, |mut b, (rid, rel, target)| {
                b.push_bind(ORG).push_bind(rid).push_bind(rel).push_bind(rel).push_bind(target).push_bind(0_i64);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    let elapsed = started.elapsed();
    conn.close().await?;
    Ok(Variant { rows: rows.len(), relation_rows, elapsed })
}
