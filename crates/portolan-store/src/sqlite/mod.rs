//! The SQLite backend: WAL, one writer connection, a pool of readers.

mod accounts;
mod audit;
mod blueprints;
mod budget;
mod catalog;
mod entities;
pub(crate) mod integrations;
mod jobs;
mod write;
// Webhooks
pub(crate) mod webhooks;
// Web UI
mod ui;

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
use crate::{Job, JobFilter, JobStatus, Lease, NewJob};

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("no database connection became free in time; try again shortly".into())
        }
        e => StoreError::Db(e.to_string()),
    }
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
    budget: crate::Budget,
    gate: crate::SearchGate,
    /// Set by [`SqliteStore::close`]: running searches stop at once.
    closing: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
            .after_release(budget::clear_handler)
            .connect_with(opts)
            .await?;
        let store = SqliteStore {
            writer: pool.clone(),
            reader: pool,
            budget: crate::Budget::default(),
            gate: crate::SearchGate::for_pool(1),
            closing: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn with_options(opts: SqliteConnectOptions, readers: u32) -> Result<Self> {
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
        let store = SqliteStore {
            writer,
            reader: SqlitePool::connect_lazy_with(opts.clone()),
            budget: crate::Budget::default(),
            gate: crate::SearchGate::for_pool(readers),
            closing: Default::default(),
        };
        store.migrate().await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers)
            .after_release(budget::clear_handler)
            .connect_with(opts.read_only(true))
            .await?;
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

    /// Stop running searches, then close both pools (checkpointing the WAL).
    pub async fn close(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::Relaxed);
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self, wait: Duration) -> Result<()> {
        let starved = || {
            StoreError::Unavailable(format!(
                "no read connection became free within {} ms (every one is busy)",
                wait.as_millis()
            ))
        };
        let mut conn = tokio::time::timeout(wait, self.reader.acquire()).await.map_err(|_| starved())??;
        tokio::time::timeout(wait, sqlx::query("SELECT 1").execute(&mut *conn)).await.map_err(|_| {
            StoreError::Unavailable(format!("the database did not answer within {} ms", wait.as_millis()))
        })??;
        Ok(())
    }

    fn set_query_budget(&self, budget: Duration) {
        self.budget.set(budget);
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

    async fn replace_setting(&self, key: &str, old: &str, new: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE settings SET value = ? WHERE key = ? AND value = ?")
            .bind(new)
            .bind(key)
            .bind(old)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
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

    async fn update_credential(
        &self,
        org: &OrgId,
        client_id: &str,
        name: Option<&str>,
        secret_hash: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE credentials SET name = COALESCE(?, name), secret_hash = COALESCE(?, secret_hash) \
             WHERE org_id = ? AND client_id = ?",
        )
        .bind(name)
        .bind(secret_hash)
        .bind(&org.0)
        .bind(client_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_credential(&self, org: &OrgId, client_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM credentials WHERE org_id = ? AND client_id = ?")
            .bind(&org.0)
            .bind(client_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
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
        let _slot = self.gate.enter(org, self.budget.get()).await?;
        entities::count(&self.reader, (self.budget.get(), &self.closing), org, req).await
    }
    async fn search(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<Page> {
        let _slot = self.gate.enter(org, self.budget.get()).await?;
        entities::search(&self.reader, (self.budget.get(), &self.closing), org, req).await
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

    async fn blueprints_version(&self, org: &OrgId) -> Result<i64> {
        jobs::blueprints_version(&self.reader, org).await
    }
    async fn required_dependents(&self, org: &OrgId, bp: &str, limit: u32) -> Result<Vec<(String, String, String)>> {
        jobs::required_dependents(&self.reader, org, bp, limit).await
    }

    async fn enqueue_job(&self, org: &OrgId, job: &NewJob) -> Result<Job> {
        jobs::enqueue(&self.writer, org, job).await
    }
    async fn claim_job_fairly(
        &self,
        node: &str,
        kinds: &[String],
        lease: std::time::Duration,
        share: &crate::JobShare,
    ) -> Result<Option<Job>> {
        jobs::claim(&self.writer, node, kinds, lease, share).await
    }
    async fn heartbeat_job(&self, lease: &Lease, extend: std::time::Duration) -> Result<bool> {
        jobs::heartbeat(&self.writer, lease, extend).await
    }
    async fn save_job_progress(&self, lease: &Lease, progress: &serde_json::Value) -> Result<bool> {
        jobs::save_progress(&self.writer, lease, progress).await
    }
    async fn complete_job(&self, lease: &Lease, result: &serde_json::Value) -> Result<bool> {
        jobs::complete(&self.writer, lease, result).await
    }
    async fn fail_job(
        &self,
        lease: &Lease,
        error: &str,
        detail: Option<&serde_json::Value>,
        retry_in: Option<std::time::Duration>,
    ) -> Result<Option<JobStatus>> {
        jobs::fail(&self.writer, lease, error, detail, retry_in).await
    }
    async fn release_job(&self, lease: &Lease) -> Result<bool> {
        jobs::release(&self.writer, lease).await
    }
    async fn cancel_job(&self, org: &OrgId, id: &str) -> Result<bool> {
        jobs::cancel(&self.writer, org, id).await
    }
    async fn get_job(&self, org: &OrgId, id: &str) -> Result<Option<Job>> {
        jobs::get(&self.reader, org, id).await
    }
    async fn list_jobs(&self, org: &OrgId, filter: &JobFilter) -> Result<Vec<Job>> {
        jobs::list(&self.reader, org, filter).await
    }
    // ---- Integrations ----
    async fn get_integration(&self, org: &OrgId, id: &str) -> Result<Option<crate::StoredIntegration>> {
        integrations::get(&self.reader, org, id).await
    }
    async fn list_integrations(&self, org: &OrgId) -> Result<Vec<crate::StoredIntegration>> {
        integrations::list(&self.reader, org).await
    }
    async fn save_integration(
        &self,
        org: &OrgId,
        id: &str,
        data: &serde_json::Value,
        mode: crate::SaveMode,
        audit: bool,
        ctx: &AuditCtx,
    ) -> Result<crate::StoredIntegration> {
        integrations::save(&self.writer, org, id, data, mode, audit, ctx).await
    }
    async fn delete_integration(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
        integrations::delete(&self.writer, org, id, ctx).await
    }
    async fn integration_config_versions(&self, org: &OrgId, id: &str) -> Result<Vec<crate::ConfigVersion>> {
        integrations::config_versions(&self.reader, org, id).await
    }
    async fn put_kind_examples(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        examples: &serde_json::Value,
        at: &str,
    ) -> Result<()> {
        integrations::put_examples(&self.writer, org, id, kind, examples, at).await
    }
    async fn kind_examples(&self, org: &OrgId, id: &str, kind: &str) -> Result<Option<serde_json::Value>> {
        integrations::examples(&self.reader, org, id, kind).await
    }
    async fn append_integration_logs(&self, org: &OrgId, id: &str, lines: &[crate::IntegrationLog]) -> Result<()> {
        integrations::append_logs(&self.writer, org, id, lines).await
    }
    async fn list_integration_logs(
        &self,
        org: &OrgId,
        id: &str,
        filter: &crate::LogFilter,
    ) -> Result<Vec<crate::IntegrationLog>> {
        integrations::list_logs(&self.reader, org, id, filter).await
    }
    async fn start_resync(&self, org: &OrgId, id: &str, at: &str, entities: u64) -> Result<crate::Resync> {
        integrations::start_resync(&self.writer, org, id, at, entities).await
    }
    async fn latest_resync(&self, org: &OrgId, id: &str) -> Result<Option<crate::Resync>> {
        integrations::latest_resync(&self.writer, org, id).await
    }
    async fn finish_resync(&self, org: &OrgId, id: &str, status: &str, at: &str) -> Result<Option<crate::Resync>> {
        integrations::finish_resync(&self.writer, org, id, status, at).await
    }
    async fn reserve_deletions(
        &self,
        org: &OrgId,
        id: &str,
        n: u64,
        projected: u64,
        guard: &crate::DeletionGuard,
    ) -> Result<crate::Reservation> {
        integrations::reserve_deletions(&self.writer, org, id, n, projected, guard).await
    }
    async fn release_deletions(&self, org: &OrgId, resync_id: &str, n: u64) -> Result<()> {
        integrations::release_deletions(&self.writer, org, resync_id, n).await
    }
    async fn confirm_deletions(&self, org: &OrgId, id: &str) -> Result<Option<crate::Resync>> {
        integrations::confirm_deletions(&self.writer, org, id).await
    }
    async fn get_org(&self, org: &OrgId) -> Result<Option<Org>> {
        integrations::get_org(&self.reader, org).await
    }
    // ---- Local accounts of the web UI ----
    async fn create_user(&self, user: &crate::User) -> Result<()> {
        accounts::create_user(&self.writer, user).await
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<crate::User>> {
        accounts::user_by_email(&self.writer, email).await
    }
    async fn get_user(&self, org: &OrgId, id: &str) -> Result<Option<crate::User>> {
        accounts::get_user(&self.reader, org, id).await
    }
    async fn delete_user(&self, org: &OrgId, user_id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE org_id = ? AND user_id = ?")
            .bind(&org.0)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE org_id = ? AND id = ?")
            .bind(&org.0)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
    async fn list_users(&self, org: &OrgId) -> Result<Vec<crate::User>> {
        accounts::list_users(&self.reader, org).await
    }
    async fn create_session(&self, session: &crate::Session) -> Result<()> {
        accounts::create_session(&self.writer, session).await
    }
    async fn session(&self, id_hash: &str) -> Result<Option<crate::Session>> {
        accounts::get_session(&self.writer, id_hash).await
    }
    async fn touch_session(&self, id_hash: &str, last_seen: i64) -> Result<()> {
        accounts::touch_session(&self.writer, id_hash, last_seen).await
    }
    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        accounts::delete_session(&self.writer, id_hash).await
    }
    async fn create_invitation(&self, invitation: &crate::Invitation) -> Result<()> {
        accounts::create_invitation(&self.writer, invitation).await
    }
    async fn invitation(&self, token_hash: &str) -> Result<Option<crate::Invitation>> {
        accounts::get_invitation(&self.writer, token_hash).await
    }
    async fn accept_invitation(&self, token_hash: &str, user: &crate::User, now: i64) -> Result<crate::User> {
        accounts::accept_invitation(&self.writer, token_hash, user, now).await
    }
    async fn search_sorted(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
        sort: &str,
        descending: bool,
        offset: u64,
    ) -> Result<crate::SortedPage> {
        let _slot = self.gate.enter(org, self.budget.get()).await?;
        catalog::search_sorted(&self.reader, (self.budget.get(), &self.closing), org, req, sort, descending, offset)
            .await
    }
    // ---- Webhooks ----
    async fn get_webhook(&self, org: &OrgId, id: &str) -> Result<Option<crate::StoredWebhook>> {
        webhooks::get(&self.reader, org, id).await
    }
    async fn webhook_by_key(&self, key: &str) -> Result<Option<(OrgId, crate::StoredWebhook)>> {
        webhooks::by_key(&self.reader, key).await
    }
    async fn list_webhooks(&self, org: &OrgId) -> Result<Vec<crate::StoredWebhook>> {
        webhooks::list(&self.reader, org).await
    }
    async fn save_webhook(
        &self,
        org: &OrgId,
        w: &crate::WebhookWrite,
        mode: crate::SaveMode,
        ctx: &AuditCtx,
    ) -> Result<crate::StoredWebhook> {
        webhooks::save(&self.writer, org, w, mode, ctx).await
    }
    async fn delete_webhook(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
        webhooks::delete(&self.writer, org, id, ctx).await
    }
    async fn enqueue_webhook_delivery(
        &self,
        org: &OrgId,
        webhook: &str,
        request_id: Option<&str>,
        job: &NewJob,
        at: &str,
    ) -> Result<crate::Delivery> {
        webhooks::enqueue_delivery(&self.writer, org, webhook, request_id, job, at).await
    }
    async fn append_webhook_logs(&self, org: &OrgId, webhook: &str, lines: &[crate::IntegrationLog]) -> Result<()> {
        webhooks::append_logs(&self.writer, org, webhook, lines).await
    }
    async fn list_webhook_logs(
        &self,
        org: &OrgId,
        webhook: &str,
        filter: &crate::LogFilter,
    ) -> Result<Vec<crate::IntegrationLog>> {
        webhooks::list_logs(&self.reader, org, webhook, filter).await
    }
    async fn webhook_secret_key_ids(&self) -> Result<Vec<String>> {
        webhooks::secret_key_ids(&self.reader).await
    }

    // ---- Integration cursors (integrations.rs, migration 0007) ----
    async fn integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
    ) -> Result<Option<serde_json::Value>> {
        integrations::cursor(&self.reader, org, id, kind, index).await
    }
    async fn save_integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
        cursor: &serde_json::Value,
        at: &str,
    ) -> Result<()> {
        integrations::save_cursor(&self.writer, org, (id, kind, index), cursor, at, true).await.map(|_| ())
    }
    async fn update_integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
        cursor: &serde_json::Value,
        at: &str,
    ) -> Result<bool> {
        integrations::save_cursor(&self.writer, org, (id, kind, index), cursor, at, false).await
    }
    // ---- end of Integration cursors ----

    // ---- Web UI ----
    async fn initial_filter(&self, org: &OrgId, blueprint: &str) -> Result<Option<crate::InitialFilter>> {
        ui::initial_filter(&self.reader, org, blueprint).await
    }
    async fn set_initial_filter(
        &self,
        org: &OrgId,
        blueprint: &str,
        filter: Option<&crate::InitialFilter>,
    ) -> Result<()> {
        ui::set_initial_filter(&self.writer, org, blueprint, filter).await
    }
    async fn recent_config_versions(&self, org: &OrgId, id: &str, limit: u32) -> Result<Vec<crate::ConfigVersion>> {
        ui::recent_config_versions(&self.reader, org, id, limit).await
    }
}
