//! Schema parity: the SQLite and PostgreSQL migrations (`migrations/{sqlite,postgres}`) make
//! the same tables with the same columns, and `migrate-data` (`src/migrate/tables.rs`) copies
//! every one of them or says why not (`migrate::NOT_COPIED`, `migrate::DERIVED_COLUMNS`). A migration that adds a table or
//! a column without teaching `migrate-data` to move it fails here, naming it. The PostgreSQL
//! half is skipped (with a note on stderr) without `PORTOLAN_TEST_DATABASE_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};

use portolan_store::SqliteStore;
use portolan_store::migrate::{DERIVED_COLUMNS, NOT_COPIED, copied_columns};

/// Table → columns.
type Schema = BTreeMap<String, BTreeSet<String>>;

/// The schema of a freshly migrated SQLite database (its own `sqlite_*` tables left out).
async fn sqlite_schema() -> Schema {
    use sqlx::Connection;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("portolan-schema-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("schema.sqlite");
    SqliteStore::open(&path).await.expect("migrate a fresh SQLite database").close().await;
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open the migrated database");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("introspect SQLite");
    conn.close().await.ok();
    std::fs::remove_dir_all(&dir).ok();
    collect(rows)
}

/// The schema of a freshly migrated PostgreSQL database (base tables of `public`).
async fn postgres_schema(url: &str) -> Schema {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c \
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("introspect PostgreSQL");
    conn.close().await.ok();
    collect(rows)
}

fn collect(rows: Vec<(String, String)>) -> Schema {
    let mut schema = Schema::new();
    for (table, column) in rows {
        schema.entry(table).or_default().insert(column);
    }
    schema
}

/// What is wrong between `schema` (of `backend`) and what `migrate-data` copies.
fn copy_gaps(schema: &Schema, backend: &str) -> Vec<String> {
    let copied: BTreeMap<&str, Vec<&str>> = copied_columns().into_iter().collect();
    let skipped: BTreeMap<&str, &str> = NOT_COPIED.iter().copied().collect();
    let mut gaps = Vec::new();
    for (table, columns) in schema {
        if let Some(reason) = skipped.get(table.as_str()) {
            assert!(!reason.trim().is_empty(), "NOT_COPIED lists {table} without a reason");
            continue;
        }
        let Some(copied_cols) = copied.get(table.as_str()) else {
            gaps.push(format!(
                "table {table} ({backend}) is not copied by migrate-data: add a TableSpec for it to \
                 src/migrate/tables.rs, or list it in NOT_COPIED with the reason"
            ));
            continue;
        };
        for column in columns {
            let derived =
                DERIVED_COLUMNS.iter().any(|(t, c, why)| *t == table && *c == column && !why.trim().is_empty());
            if !copied_cols.contains(&column.as_str()) && !derived {
                gaps.push(format!(
                    "column {table}.{column} ({backend}) is not copied by migrate-data: add it to the \
                     {table} TableSpec in src/migrate/tables.rs"
                ));
            }
        }
    }
    for (table, columns) in &copied {
        match schema.get(*table) {
            None => gaps.push(format!("migrate-data copies table {table}, which the {backend} schema does not have")),
            Some(have) => {
                for column in columns.iter().filter(|c| !have.contains(**c)) {
                    gaps.push(format!(
                        "migrate-data copies column {table}.{column}, which the {backend} schema does not have"
                    ));
                }
            }
        }
    }
    for table in skipped.keys().filter(|t| !schema.contains_key(**t)) {
        gaps.push(format!("NOT_COPIED lists table {table}, which the {backend} schema does not have"));
    }
    gaps
}

/// Tables and columns that one backend's migrations make and the other's do not.
fn backend_differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut diffs = Vec::new();
    let tables: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    for table in tables {
        match (sqlite.get(table), postgres.get(table)) {
            (Some(_), None) => diffs.push(format!("table {table} exists on SQLite only")),
            (None, Some(_)) => diffs.push(format!("table {table} exists on PostgreSQL only")),
            (Some(s), Some(p)) => {
                diffs.extend(s.difference(p).map(|c| format!("column {table}.{c} exists on SQLite only")));
                diffs.extend(p.difference(s).map(|c| format!("column {table}.{c} exists on PostgreSQL only")));
            }
            (None, None) => {}
        }
    }
    diffs
}

#[tokio::test]
async fn migrate_data_copies_every_table_and_column_of_the_sqlite_schema() {
    let schema = sqlite_schema().await;
    assert!(schema.contains_key("entities") && schema.len() >= 20, "introspection found {schema:?}");
    let gaps = copy_gaps(&schema, "SQLite");
    assert!(gaps.is_empty(), "migrate-data and the SQLite schema disagree:\n  {}", gaps.join("\n  "));
}

#[tokio::test]
async fn postgres_migrations_make_the_sqlite_schema_and_migrate_data_copies_it() {
    let sqlite = sqlite_schema().await;
    let Some(db) = pg::fresh().await else { return };
    let postgres = postgres_schema(&db.url()).await;
    drop(db);
    assert!(postgres.contains_key("entities") && postgres.len() >= 20, "introspection found {postgres:?}");
    let diffs = backend_differences(&sqlite, &postgres);
    assert!(diffs.is_empty(), "the SQLite and PostgreSQL migrations disagree:\n  {}", diffs.join("\n  "));
    let gaps = copy_gaps(&postgres, "PostgreSQL");
    assert!(gaps.is_empty(), "migrate-data and the PostgreSQL schema disagree:\n  {}", gaps.join("\n  "));
}

/// The checks above are not decorative: a column or a table a migration would add, a table
/// only one backend has, and a column migrate-data copies that is gone are each reported by name.
#[tokio::test]
async fn a_new_table_or_column_is_reported_by_name() {
    let mut schema = sqlite_schema().await;
    assert!(copy_gaps(&schema, "SQLite").is_empty());
    schema.get_mut("entities").unwrap().insert("owner_team".into());
    schema.insert("entity_scores".into(), ["org_id".to_string(), "score".to_string()].into());
    let gaps = copy_gaps(&schema, "SQLite").join("\n");
    assert!(gaps.contains("column entities.owner_team (SQLite) is not copied"), "{gaps}");
    assert!(gaps.contains("table entity_scores (SQLite) is not copied"), "{gaps}");

    let mut other = sqlite_schema().await;
    other.remove("entity_scores");
    other.get_mut("webhooks").unwrap().remove("secret_key_id");
    let diffs = backend_differences(&schema, &other).join("\n");
    assert!(diffs.contains("table entity_scores exists on SQLite only"), "{diffs}");
    assert!(diffs.contains("column entities.owner_team exists on SQLite only"), "{diffs}");
    assert!(diffs.contains("column webhooks.secret_key_id exists on SQLite only"), "{diffs}");
    let gaps = copy_gaps(&other, "PostgreSQL").join("\n");
    assert!(gaps.contains("migrate-data copies column webhooks.secret_key_id, which the PostgreSQL schema"), "{gaps}");
}

/// Says whether this binary ran its PostgreSQL half (see `test_db::postgresql_half`).
#[tokio::test]
async fn postgresql_half() {
    pg::postgresql_half("schema parity, tests/schema_parity").await;
}
