//! The SQLite backend: WAL, one writer connection, a pool of readers.

mod audit;
mod blueprints;
mod entities;
mod write;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use portolan_core::{Blueprint, Entity};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::{
    AuditCtx, AuditFilter, AuditRecord, EntityWrite, Org, OrgId, Page, Rename, Result, SearchRequest, Store,
    StoreError, StoredBlueprint, WriteRejection, Written,
};

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        db_err(e)
    }
}

/// SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    /// Exactly one connection: SQLite allows one writer at a time, and queuing in the pool is
    /// cheaper than retrying SQLITE_BUSY.
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and apply migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        Self::with_options(opts, 4).await
    }

    /// An in-memory database (tests): one shared connection for reads and writes.
    pub async fn in_memory() -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        let store = SqliteStore { writer: pool.clone(), reader: pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn with_options(opts: SqliteConnectOptions, readers: u32) -> Result<Self> {
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
        let store = SqliteStore { writer, reader: SqlitePool::connect_lazy_with(opts.clone()) };
        store.migrate().await?;
        let reader = SqlitePoolOptions::new().max_connections(readers).connect_with(opts.read_only(true)).await?;
        Ok(SqliteStore { reader, ..store })
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Db(format!("migration failed: {e}")))
    }

    /// The read-only pool (data migration reads through it).
    pub(crate) fn reader_pool(&self) -> &SqlitePool {
        &self.reader
    }

    /// Close both pools (checkpointing the WAL).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String> {
        sqlx::query("INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING")
            .bind(key)
            .bind(init)
            .execute(&self.writer)
            .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?").bind(key).fetch_one(&self.writer).await?;
        Ok(row.get(0))
    }

    async fn create_org(&self, id: &OrgId, name: &str, now: &str) -> Result<Org> {
        let res = sqlx::query("INSERT INTO organizations(id, name, created_at) VALUES (?, ?, ?)")
            .bind(&id.0)
            .bind(name)
            .bind(now)
            .execute(&self.writer)
            .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("organization {name:?}")))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(Org { id: id.clone(), name: name.to_string(), created_at: now.to_string() }),
        }
    }

    async fn org_by_name(&self, name: &str) -> Result<Option<Org>> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.map(|r| Org { id: OrgId(r.get(0)), name: r.get(1), created_at: r.get(2) }))
    }

    async fn add_credential(
        &self,
        org: &OrgId,
        client_id: &str,
        secret_hash: &str,
        name: &str,
        now: &str,
    ) -> Result<()> {
        sqlx::query("INSERT INTO credentials(client_id, org_id, secret_hash, name, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(client_id)
            .bind(&org.0)
            .bind(secret_hash)
            .bind(name)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn credential(&self, client_id: &str) -> Result<Option<(OrgId, String)>> {
        let row = sqlx::query("SELECT org_id, secret_hash FROM credentials WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| (OrgId(r.get(0)), r.get(1))))
    }

    async fn list_credentials(&self, org: &OrgId) -> Result<Vec<(String, String, String)>> {
        let rows =
            sqlx::query("SELECT client_id, name, created_at FROM credentials WHERE org_id = ? ORDER BY created_at")
                .bind(&org.0)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    async fn list_blueprints(&self, org: &OrgId) -> Result<Vec<StoredBlueprint>> {
        blueprints::list(&self.reader, org).await
    }
    async fn get_blueprint(&self, org: &OrgId, id: &str) -> Result<Option<StoredBlueprint>> {
        blueprints::get(&self.reader, org, id).await
    }
    async fn create_blueprint(&self, org: &OrgId, bp: &Blueprint, ctx: &AuditCtx) -> Result<StoredBlueprint> {
        blueprints::create(&self.writer, org, bp, ctx).await
    }
    async fn update_blueprint(
        &self,
        org: &OrgId,
        id: &str,
        bp: &Blueprint,
        renames: &[Rename],
        ctx: &AuditCtx,
    ) -> Result<StoredBlueprint> {
        blueprints::update(&self.writer, org, id, bp, renames, ctx).await
    }
    async fn delete_blueprint(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
        blueprints::delete(&self.writer, org, id, ctx).await
    }

    async fn get_entity(&self, org: &OrgId, bp: &str, id: &str) -> Result<Option<Entity>> {
        entities::get(&self.reader, org, bp, id).await
    }
    async fn get_entities(&self, org: &OrgId, bp: &str, ids: &[String]) -> Result<Vec<Entity>> {
        entities::get_many(&self.reader, org, bp, ids).await
    }
    async fn write_entities(
        &self,
        org: &OrgId,
        writes: Vec<EntityWrite>,
        ctx: &AuditCtx,
    ) -> Result<Vec<Result<Written, WriteRejection>>> {
        write::write(&self.writer, org, writes, ctx).await
    }
    async fn delete_entities(
        &self,
        org: &OrgId,
        bp: &str,
        ids: &[String],
        cascade: bool,
        ctx: &AuditCtx,
    ) -> Result<Vec<(String, String)>> {
        entities::delete(&self.writer, org, bp, ids, cascade, ctx).await
    }
    async fn count_entities(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<u64> {
        entities::count(&self.reader, org, req).await
    }
    async fn search(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<Page> {
        entities::search(&self.reader, org, req).await
    }

    async fn append_audit(&self, org: &OrgId, records: &[AuditRecord]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for r in records {
            audit::insert(&mut tx, org, r).await?;
        }
        tx.commit().await?;
        Ok(())
    }
    async fn list_audit(&self, org: &OrgId, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        audit::list(&self.reader, org, filter).await
    }
}
