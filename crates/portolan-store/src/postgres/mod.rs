//! The PostgreSQL backend: one pool, jsonb columns, the same semantics as the SQLite backend
//! (the conformance suite runs on both).
//!
//! Concurrency: several nodes may share one database. Entity writes lock their keys with
//! transaction-scoped advisory locks (`pg_advisory_xact_lock`, taken in sorted order so two
//! batches cannot deadlock), so a read-modify-write sees no concurrent write of the same entity
//! and a create of the same entity by two nodes yields one create and one conflict; blueprint
//! updates and deletes lock the blueprint row (`FOR UPDATE`).

mod accounts;
mod audit;
mod blueprints;
mod catalog;
mod delete;
mod entities;
mod integrations;
mod jobs;
// Webhooks
mod webhooks;
// Web UI
mod ui;
mod write;

use async_trait::async_trait;
use portolan_core::{Blueprint, Entity};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};

use crate::sql::{Dialect, SqlFrag, SqlParam};
use crate::{
    AuditCtx, AuditFilter, AuditRecord, EntityWrite, Org, OrgId, Page, Rename, Result, SearchRequest, Store,
    StoreError, StoredBlueprint, WriteRejection, Written,
};
use crate::{Job, JobFilter, JobStatus, Lease, NewJob};

/// Key of the advisory lock held while migrations run (arbitrary, fixed: "portolan" in ASCII).
const MIGRATION_LOCK: i64 = 0x706f_7274_6f6c_616e;

/// A query from store-written SQL with `?` placeholders, numbered for PostgreSQL.
pub(crate) fn pgq(sql: &str) -> Query<'static, Postgres, PgArguments> {
    let text = SqlFrag::new(sql).render(Dialect::Postgres).into_owned();
    sqlx::query(sqlx::AssertSqlSafe(text))
}

/// A query from a fragment: text rendered for PostgreSQL, parameters bound in order.
pub(crate) fn frag_query(f: &SqlFrag) -> Query<'static, Postgres, PgArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(f.render(Dialect::Postgres).into_owned()));
    for p in &f.params {
        q = match p {
            SqlParam::Null => q.bind(None::<String>),
            SqlParam::Bool(b) => q.bind(*b),
            SqlParam::Int(i) => q.bind(*i),
            SqlParam::Real(f) => q.bind(*f),
            SqlParam::Text(s) => q.bind(s.clone()),
        };
    }
    q
}

/// Rows of a search statement run within `budget`: a read-only transaction whose
/// `statement_timeout` is the budget (`SET LOCAL`, so it ends with the transaction and no other
/// statement on the connection inherits it), begun in the same round trip as `BEGIN`.
/// PostgreSQL cancels the statement at the budget (SQLSTATE 57014), also when the caller went
/// away: a dropped future leaves the statement running on the server until then, and the
/// connection returns to the pool once it ended.
pub(crate) async fn budgeted_rows(
    pool: &PgPool,
    budget: std::time::Duration,
    q: &SqlFrag,
) -> Result<Vec<sqlx::postgres::PgRow>> {
    let ms = budget.as_millis().max(1);
    let begin = format!("BEGIN READ ONLY; SET LOCAL statement_timeout = {ms}");
    let mut tx = pool.begin_with(sqlx::AssertSqlSafe(begin)).await?;
    let rows = match frag_query(q).fetch_all(&mut *tx).await {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014") => {
            return Err(StoreError::OverBudget { budget });
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    Ok(rows)
}

/// PostgreSQL-backed [`Store`].
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    budget: crate::Budget,
    gate: crate::SearchGate,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connect to `url` (`postgres://user:pass@host/db`) with a pool of 10 and apply migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_pool_size(url, 10).await
    }

    /// [`PgStore::connect`] with `max_connections` pooled connections.
    pub async fn connect_with_pool_size(url: &str, max_connections: u32) -> Result<Self> {
        let opts: PgConnectOptions = url.parse().map_err(|e| StoreError::Db(format!("invalid database url: {e}")))?;
        let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(opts.clone()).await?;
        let store =
            PgStore { pool, budget: crate::Budget::default(), gate: crate::SearchGate::for_pool(max_connections) };
        store.migrate(&opts).await?;
        Ok(store)
    }

    /// Apply pending migrations exactly once, however many nodes start together: a session
    /// advisory lock is held on a dedicated connection (outside the pool, so a pool of one
    /// still works) while the migrator runs. sqlx's migrator also takes an advisory lock of its
    /// own (keyed by the database name); ours makes the guarantee explicit and independent of it.
    async fn migrate(&self, opts: &PgConnectOptions) -> Result<()> {
        use sqlx::Connection;
        let mut lock = sqlx::PgConnection::connect_with(opts).await?;
        sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut lock).await?;
        let res = sqlx::migrate!("./migrations/postgres").run(&self.pool).await;
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut lock).await?;
        lock.close().await?;
        res.map_err(|e| StoreError::Db(format!("migration failed: {e}")))
    }

    /// The connection pool (tests, data migration).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self, wait: std::time::Duration) -> Result<()> {
        let starved = || {
            StoreError::Unavailable(format!(
                "no database connection became free within {} ms (every one is busy)",
                wait.as_millis()
            ))
        };
        let mut conn = tokio::time::timeout(wait, self.pool.acquire()).await.map_err(|_| starved())??;
        tokio::time::timeout(wait, sqlx::query("SELECT 1").execute(&mut *conn)).await.map_err(|_| {
            StoreError::Unavailable(format!("the database did not answer within {} ms", wait.as_millis()))
        })??;
        Ok(())
    }

    fn set_query_budget(&self, budget: std::time::Duration) {
        self.budget.set(budget);
    }

    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String> {
        pgq("INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING")
            .bind(key)
            .bind(init)
            .execute(&self.pool)
            .await?;
        let row = pgq("SELECT value FROM settings WHERE key = ?").bind(key).fetch_one(&self.pool).await?;
        Ok(row.get(0))
    }

    async fn replace_setting(&self, key: &str, old: &str, new: &str) -> Result<bool> {
        let done = pgq("UPDATE settings SET value = ? WHERE key = ? AND value = ?")
            .bind(new)
            .bind(key)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_org(&self, id: &OrgId, name: &str, now: &str) -> Result<Org> {
        let res = pgq("INSERT INTO organizations(id, name, created_at) VALUES (?, ?, ?)")
            .bind(&id.0)
            .bind(name)
            .bind(now)
            .execute(&self.pool)
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
        let row = pgq("SELECT id, name, created_at FROM organizations WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
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
        pgq("INSERT INTO credentials(client_id, org_id, secret_hash, name, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(client_id)
            .bind(&org.0)
            .bind(secret_hash)
            .bind(name)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn credential(&self, client_id: &str) -> Result<Option<(OrgId, String)>> {
        let row = pgq("SELECT org_id, secret_hash FROM credentials WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (OrgId(r.get(0)), r.get(1))))
    }

    async fn list_credentials(&self, org: &OrgId) -> Result<Vec<(String, String, String)>> {
        let rows = pgq("SELECT client_id, name, created_at FROM credentials WHERE org_id = ? ORDER BY created_at")
            .bind(&org.0)
            .fetch_all(&self.pool)
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
        let done = pgq("UPDATE credentials SET name = COALESCE(?, name), secret_hash = COALESCE(?, secret_hash) \
             WHERE org_id = ? AND client_id = ?")
        .bind(name)
        .bind(secret_hash)
        .bind(&org.0)
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_credential(&self, org: &OrgId, client_id: &str) -> Result<bool> {
        let done = pgq("DELETE FROM credentials WHERE org_id = ? AND client_id = ?")
            .bind(&org.0)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_blueprints(&self, org: &OrgId) -> Result<Vec<StoredBlueprint>> {
        blueprints::list(&self.pool, org).await
    }
    async fn get_blueprint(&self, org: &OrgId, id: &str) -> Result<Option<StoredBlueprint>> {
        blueprints::get(&self.pool, org, id).await
    }
    async fn create_blueprint(&self, org: &OrgId, bp: &Blueprint, ctx: &AuditCtx) -> Result<StoredBlueprint> {
        blueprints::create(&self.pool, org, bp, ctx).await
    }
    async fn update_blueprint(
        &self,
        org: &OrgId,
        id: &str,
        bp: &Blueprint,
        renames: &[Rename],
        ctx: &AuditCtx,
    ) -> Result<StoredBlueprint> {
        blueprints::update(&self.pool, org, id, bp, renames, ctx).await
    }
    async fn delete_blueprint(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
        blueprints::delete(&self.pool, org, id, ctx).await
    }

    async fn get_entity(&self, org: &OrgId, bp: &str, id: &str) -> Result<Option<Entity>> {
        entities::get(&self.pool, org, bp, id).await
    }
    async fn get_entities(&self, org: &OrgId, bp: &str, ids: &[String]) -> Result<Vec<Entity>> {
        entities::get_many(&self.pool, org, bp, ids).await
    }
    async fn write_entities(
        &self,
        org: &OrgId,
        writes: Vec<EntityWrite>,
        ctx: &AuditCtx,
    ) -> Result<Vec<Result<Written, WriteRejection>>> {
        write::write(&self.pool, org, writes, ctx).await
    }
    async fn delete_entities(
        &self,
        org: &OrgId,
        bp: &str,
        ids: &[String],
        cascade: bool,
        ctx: &AuditCtx,
    ) -> Result<Vec<(String, String)>> {
        delete::delete(&self.pool, org, bp, ids, cascade, ctx).await
    }
    async fn count_entities(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<u64> {
        let _slot = self.gate.enter(org, self.budget.get()).await?;
        entities::count(&self.pool, self.budget.get(), org, req).await
    }
    async fn search(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<Page> {
        let _slot = self.gate.enter(org, self.budget.get()).await?;
        entities::search(&self.pool, self.budget.get(), org, req).await
    }

    async fn append_audit(&self, org: &OrgId, records: &[AuditRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        audit::insert_many(&mut tx, org, records).await?;
        tx.commit().await?;
        Ok(())
    }
    async fn list_audit(&self, org: &OrgId, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        audit::list(&self.pool, org, filter).await
    }

    async fn blueprints_version(&self, org: &OrgId) -> Result<i64> {
        jobs::blueprints_version(&self.pool, org).await
    }
    async fn required_dependents(&self, org: &OrgId, bp: &str, limit: u32) -> Result<Vec<(String, String, String)>> {
        jobs::required_dependents(&self.pool, org, bp, limit).await
    }

    async fn enqueue_job(&self, org: &OrgId, job: &NewJob) -> Result<Job> {
        jobs::enqueue(&self.pool, org, job).await
    }
    async fn claim_job_fairly(
        &self,
        node: &str,
        kinds: &[String],
        lease: std::time::Duration,
        share: &crate::JobShare,
    ) -> Result<Option<Job>> {
        jobs::claim(&self.pool, node, kinds, lease, share).await
    }
    async fn heartbeat_job(&self, lease: &Lease, extend: std::time::Duration) -> Result<bool> {
        jobs::heartbeat(&self.pool, lease, extend).await
    }
    async fn save_job_progress(&self, lease: &Lease, progress: &serde_json::Value) -> Result<bool> {
        jobs::save_progress(&self.pool, lease, progress).await
    }
    async fn complete_job(&self, lease: &Lease, result: &serde_json::Value) -> Result<bool> {
        jobs::complete(&self.pool, lease, result).await
    }
    async fn fail_job(
        &self,
        lease: &Lease,
        error: &str,
        detail: Option<&serde_json::Value>,
        retry_in: Option<std::time::Duration>,
    ) -> Result<Option<JobStatus>> {
        jobs::fail(&self.pool, lease, error, detail, retry_in).await
    }
    async fn release_job(&self, lease: &Lease) -> Result<bool> {
        jobs::release(&self.pool, lease).await
    }
    async fn cancel_job(&self, org: &OrgId, id: &str) -> Result<bool> {
        jobs::cancel(&self.pool, org, id).await
    }
    async fn get_job(&self, org: &OrgId, id: &str) -> Result<Option<Job>> {
        jobs::get(&self.pool, org, id).await
    }
    async fn list_jobs(&self, org: &OrgId, filter: &JobFilter) -> Result<Vec<Job>> {
        jobs::list(&self.pool, org, filter).await
    }
    // ---- Integrations ----
    async fn get_integration(&self, org: &OrgId, id: &str) -> Result<Option<crate::StoredIntegration>> {
        integrations::get(&self.pool, org, id).await
    }
    async fn list_integrations(&self, org: &OrgId) -> Result<Vec<crate::StoredIntegration>> {
        integrations::list(&self.pool, org).await
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
        integrations::save(&self.pool, org, id, data, mode, audit, ctx).await
    }
    async fn delete_integration(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
        integrations::delete(&self.pool, org, id, ctx).await
    }
    async fn integration_config_versions(&self, org: &OrgId, id: &str) -> Result<Vec<crate::ConfigVersion>> {
        integrations::config_versions(&self.pool, org, id).await
    }
    async fn put_kind_examples(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        examples: &serde_json::Value,
        at: &str,
    ) -> Result<()> {
        integrations::put_examples(&self.pool, org, id, kind, examples, at).await
    }
    async fn kind_examples(&self, org: &OrgId, id: &str, kind: &str) -> Result<Option<serde_json::Value>> {
        integrations::examples(&self.pool, org, id, kind).await
    }
    async fn append_integration_logs(&self, org: &OrgId, id: &str, lines: &[crate::IntegrationLog]) -> Result<()> {
        integrations::append_logs(&self.pool, org, id, lines).await
    }
    async fn list_integration_logs(
        &self,
        org: &OrgId,
        id: &str,
        filter: &crate::LogFilter,
    ) -> Result<Vec<crate::IntegrationLog>> {
        integrations::list_logs(&self.pool, org, id, filter).await
    }
    async fn start_resync(&self, org: &OrgId, id: &str, at: &str, entities: u64) -> Result<crate::Resync> {
        integrations::start_resync(&self.pool, org, id, at, entities).await
    }
    async fn latest_resync(&self, org: &OrgId, id: &str) -> Result<Option<crate::Resync>> {
        integrations::latest_resync(&self.pool, org, id).await
    }
    async fn finish_resync(&self, org: &OrgId, id: &str, status: &str, at: &str) -> Result<Option<crate::Resync>> {
        integrations::finish_resync(&self.pool, org, id, status, at).await
    }
    async fn reserve_deletions(
        &self,
        org: &OrgId,
        id: &str,
        n: u64,
        projected: u64,
        guard: &crate::DeletionGuard,
    ) -> Result<crate::Reservation> {
        integrations::reserve_deletions(&self.pool, org, id, n, projected, guard).await
    }
    async fn release_deletions(&self, org: &OrgId, resync_id: &str, n: u64) -> Result<()> {
        integrations::release_deletions(&self.pool, org, resync_id, n).await
    }
    async fn confirm_deletions(&self, org: &OrgId, id: &str) -> Result<Option<crate::Resync>> {
        integrations::confirm_deletions(&self.pool, org, id).await
    }
    async fn get_org(&self, org: &OrgId) -> Result<Option<Org>> {
        integrations::get_org(&self.pool, org).await
    }
    // ---- Local accounts of the web UI ----
    async fn create_user(&self, user: &crate::User) -> Result<()> {
        accounts::create_user(&self.pool, user).await
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<crate::User>> {
        accounts::user_by_email(&self.pool, email).await
    }
    async fn get_user(&self, org: &OrgId, id: &str) -> Result<Option<crate::User>> {
        accounts::get_user(&self.pool, org, id).await
    }
    async fn delete_user(&self, org: &OrgId, user_id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        pgq("DELETE FROM sessions WHERE org_id = ? AND user_id = ?")
            .bind(&org.0)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let done =
            pgq("DELETE FROM users WHERE org_id = ? AND id = ?").bind(&org.0).bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
    async fn list_users(&self, org: &OrgId) -> Result<Vec<crate::User>> {
        accounts::list_users(&self.pool, org).await
    }
    async fn create_session(&self, session: &crate::Session) -> Result<()> {
        accounts::create_session(&self.pool, session).await
    }
    async fn session(&self, id_hash: &str) -> Result<Option<crate::Session>> {
        accounts::get_session(&self.pool, id_hash).await
    }
    async fn touch_session(&self, id_hash: &str, last_seen: i64) -> Result<()> {
        accounts::touch_session(&self.pool, id_hash, last_seen).await
    }
    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        accounts::delete_session(&self.pool, id_hash).await
    }
    async fn create_invitation(&self, invitation: &crate::Invitation) -> Result<()> {
        accounts::create_invitation(&self.pool, invitation).await
    }
    async fn invitation(&self, token_hash: &str) -> Result<Option<crate::Invitation>> {
        accounts::get_invitation(&self.pool, token_hash).await
    }
    async fn accept_invitation(&self, token_hash: &str, user: &crate::User, now: i64) -> Result<crate::User> {
        accounts::accept_invitation(&self.pool, token_hash, user, now).await
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
        catalog::search_sorted(&self.pool, self.budget.get(), org, req, sort, descending, offset).await
    }
    // ---- Webhooks ----
    async fn get_webhook(&self, org: &OrgId, id: &str) -> Result<Option<crate::StoredWebhook>> {
        webhooks::get(&self.pool, org, id).await
    }
    async fn webhook_by_key(&self, key: &str) -> Result<Option<(OrgId, crate::StoredWebhook)>> {
        webhooks::by_key(&self.pool, key).await
    }
    async fn list_webhooks(&self, org: &OrgId) -> Result<Vec<crate::StoredWebhook>> {
        webhooks::list(&self.pool, org).await
    }
    async fn save_webhook(
        &self,
        org: &OrgId,
        w: &crate::WebhookWrite,
        mode: crate::SaveMode,
        ctx: &AuditCtx,
    ) -> Result<crate::StoredWebhook> {
        webhooks::save(&self.pool, org, w, mode, ctx).await
    }
    async fn delete_webhook(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()> {
        webhooks::delete(&self.pool, org, id, ctx).await
    }
    async fn enqueue_webhook_delivery(
        &self,
        org: &OrgId,
        webhook: &str,
        request_id: Option<&str>,
        job: &NewJob,
        at: &str,
    ) -> Result<crate::Delivery> {
        webhooks::enqueue_delivery(&self.pool, org, webhook, request_id, job, at).await
    }
    async fn append_webhook_logs(&self, org: &OrgId, webhook: &str, lines: &[crate::IntegrationLog]) -> Result<()> {
        webhooks::append_logs(&self.pool, org, webhook, lines).await
    }
    async fn list_webhook_logs(
        &self,
        org: &OrgId,
        webhook: &str,
        filter: &crate::LogFilter,
    ) -> Result<Vec<crate::IntegrationLog>> {
        webhooks::list_logs(&self.pool, org, webhook, filter).await
    }
    async fn webhook_secret_key_ids(&self) -> Result<Vec<String>> {
        webhooks::secret_key_ids(&self.pool).await
    }

    // ---- Integration cursors (integrations.rs, migration 0007) ----
    async fn integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
    ) -> Result<Option<serde_json::Value>> {
        integrations::cursor(&self.pool, org, id, kind, index).await
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
        integrations::save_cursor(&self.pool, org, (id, kind, index), cursor, at, true).await.map(|_| ())
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
        integrations::save_cursor(&self.pool, org, (id, kind, index), cursor, at, false).await
    }
    // ---- end of Integration cursors ----

    // ---- Web UI ----
    async fn initial_filter(&self, org: &OrgId, blueprint: &str) -> Result<Option<crate::InitialFilter>> {
        ui::initial_filter(&self.pool, org, blueprint).await
    }
    async fn set_initial_filter(
        &self,
        org: &OrgId,
        blueprint: &str,
        filter: Option<&crate::InitialFilter>,
    ) -> Result<()> {
        ui::set_initial_filter(&self.pool, org, blueprint, filter).await
    }
    async fn recent_config_versions(&self, org: &OrgId, id: &str, limit: u32) -> Result<Vec<crate::ConfigVersion>> {
        ui::recent_config_versions(&self.pool, org, id, limit).await
    }
}
