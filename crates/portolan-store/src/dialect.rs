//! What really differs between SQLite and PostgreSQL: opening the pools (SQLite's one writer
//! and read-only readers; PostgreSQL's migration lock), the search budgets (SQLite's progress
//! handler, PostgreSQL's `SET LOCAL statement_timeout`), the search gate, NUL refusal and
//! closing. The SQL text differences live beside the statements (`match db.dialect()`).

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions as _, PgPool, SqlitePool};

use crate::budget;
use crate::db::{Checkpointer, Db, Q, Row, Tx};
use crate::sql::{Dialect, SqlFrag};
use portolan_core::Entity;
use serde_json::Value;

use crate::{OrgId, Result, SqlStore, StoreError, WriteRejection};

/// Key of the advisory lock held while PostgreSQL migrations run (arbitrary, fixed: "portolan"
/// in ASCII).
const MIGRATION_LOCK: i64 = 0x706f_7274_6f6c_616e;

/// A budget as people write it: "20-second", "250 ms".
pub fn budget_text(budget: Duration) -> String {
    if budget.subsec_millis() == 0 && budget.as_secs() > 0 {
        format!("{}-second", budget.as_secs())
    } else {
        format!("{} ms", budget.as_millis())
    }
}

/// How long one search statement (entity search, count, sorted page) may run when nothing else
/// is configured. The review measured PostgreSQL answering the worst relation walk it tried in
/// 2.4 s; 20 s leaves room for large catalogs and still frees a connection long before a client
/// or proxy gives up.
pub const DEFAULT_QUERY_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// The budget shared by a store's clones (milliseconds; set at runtime).
#[derive(Debug, Clone)]
pub(crate) struct Budget(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Default for Budget {
    fn default() -> Self {
        Budget(std::sync::Arc::new(std::sync::atomic::AtomicU64::new(DEFAULT_QUERY_BUDGET.as_millis() as u64)))
    }
}

/// Each organization's share of the connections that run searches: at most `per_org` of its
/// search statements hold a connection at once, so one organization's slow searches cannot
/// take every connection and starve the others' reads. A search over the share waits for a
/// slot, at most its budget.
#[derive(Debug, Clone)]
pub(crate) struct SearchGate {
    per_org: usize,
    slots: std::sync::Arc<std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>>,
}

impl SearchGate {
    /// A gate for a pool of `connections`: an organization may use all of them but one.
    pub(crate) fn for_pool(connections: u32) -> SearchGate {
        let per_org = usize::try_from(connections.saturating_sub(1).max(1)).unwrap_or(1);
        SearchGate { per_org, slots: Default::default() }
    }

    /// A slot for one search of `org`, waiting at most `wait`.
    pub(crate) async fn enter(
        &self,
        org: &OrgId,
        wait: std::time::Duration,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let sem = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if slots.len() > 1024 {
                // Forget idle organizations (no permit out, no one waiting).
                slots.retain(|_, s| std::sync::Arc::strong_count(s) > 1 || s.available_permits() < self.per_org);
            }
            slots
                .entry(org.0.clone())
                .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(self.per_org)))
                .clone()
        };
        match tokio::time::timeout(wait, sem.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(StoreError::Unavailable(format!(
                "this organization already runs {} searches at once (its share of the database connections) \
                 and none ended within {} ms; wait for them to end or narrow them",
                self.per_org,
                wait.as_millis()
            ))),
        }
    }
}

impl Budget {
    pub(crate) fn get(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
    pub(crate) fn set(&self, budget: std::time::Duration) {
        let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX).max(1);
        self.0.store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

impl SqlStore {
    /// Open (creating if needed) the SQLite database file at `path` and apply migrations.
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
        let readers = 4;
        // The writer keeps SQLite's default 2 MB page cache, the readers 64 MB each: at every
        // commit SQLite walks the writer's whole page-cache hash table (pcache1TruncateUnsafe,
        // 12 % of the writer's time with 64 MB), and the writer's few reads hit the OS cache.
        // Bulk ingest at 20 per request: +26 % (BENCHMARKS.md, "Group commit").
        // Checkpoints run on a connection of their own (`db::Checkpointer` says when, and what
        // the writer's own automatic checkpoint at 16,384 pages still does).
        let writer_opts = opts
            .clone()
            .pragma("cache_size", "-2000")
            .pragma("wal_autocheckpoint", Checkpointer::WRITER_BACKSTOP_PAGES.to_string());
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(writer_opts).await?;
        migrate_sqlite(&writer).await?;
        let checkpoints = Some(Checkpointer::start(opts.connect().await?));
        let reader = SqlitePoolOptions::new()
            .max_connections(readers)
            .after_release(budget::clear_handler)
            .connect_with(opts.read_only(true))
            .await?;
        SqlStore::new(Db::Sqlite { writer, reader, closing: Default::default(), checkpoints }, readers).ready().await
    }

    /// An in-memory SQLite database (tests): one shared connection for reads and writes.
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
        migrate_sqlite(&pool).await?;
        let db = Db::Sqlite { writer: pool.clone(), reader: pool, closing: Default::default(), checkpoints: None };
        SqlStore::new(db, 1).ready().await
    }

    /// Connect to PostgreSQL at `url` (`postgres://user:pass@host/db`) with a pool of 10 and
    /// apply migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_pool_size(url, 10).await
    }

    /// [`SqlStore::connect`] with `max_connections` pooled connections.
    pub async fn connect_with_pool_size(url: &str, max_connections: u32) -> Result<Self> {
        let opts: PgConnectOptions =
            url.parse().map_err(|e| StoreError::Db(format!("invalid database url: {e}").into()))?;
        let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(opts.clone()).await?;
        migrate_postgres(&pool, &opts).await?;
        SqlStore::new(Db::Postgres(pool), max_connections).ready().await
    }

    /// After migrations: what must hold before the store serves (every organization has its
    /// system blueprints; concurrent nodes doing this at once are safe: see `mirror::ensure_all`).
    async fn ready(self) -> Result<Self> {
        crate::mirror::ensure_all(&self.db).await?;
        Ok(self)
    }

    fn new(db: Db, search_connections: u32) -> SqlStore {
        SqlStore {
            budget: Budget::default(),
            gate: SearchGate::for_pool(search_connections),
            scan_part_rows: std::sync::Arc::new(crate::widgets::SCAN_PART_ROWS.into()),
            // Group commit on SQLite only (`entities/group.rs` says why).
            writes: std::sync::Arc::new(crate::entities::Groups::new(db.dialect() == Dialect::Sqlite)),
            db,
        }
    }

    /// SQLite: stop running searches and the checkpointer, then close both pools
    /// (checkpointing the WAL). PostgreSQL: close the pool.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { writer, reader, closing, checkpoints } => {
                closing.store(true, std::sync::atomic::Ordering::Relaxed);
                if let Some(c) = checkpoints {
                    c.stop().await;
                }
                reader.close().await;
                writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// The read-only pool of a SQLite store (data migration reads through it).
    ///
    /// # Panics
    /// On a PostgreSQL store (a caller's bug: data migration reads SQLite only).
    pub(crate) fn reader_pool(&self) -> &SqlitePool {
        match &self.db {
            Db::Sqlite { reader, .. } => reader,
            Db::Postgres(_) => panic!("reader_pool() of a PostgreSQL store"),
        }
    }

    /// The pool of a PostgreSQL store (tests, data migration).
    ///
    /// # Panics
    /// On a SQLite store (a caller's bug: data migration writes PostgreSQL only).
    pub(crate) fn pool(&self) -> &PgPool {
        match &self.db {
            Db::Postgres(pool) => pool,
            Db::Sqlite { .. } => panic!("pool() of a SQLite store"),
        }
    }

    /// Rows of a search statement of `org`, within its search gate slot and the query budget.
    pub(crate) async fn search_rows(&self, org: &OrgId, q: &SqlFrag) -> Result<Vec<Row>> {
        let budget = self.budget.get();
        let _slot = self.gate.enter(org, budget).await?;
        match &self.db {
            // A read connection armed with a progress handler that interrupts the statement at
            // the deadline, when its future is dropped, or when the store closes.
            Db::Sqlite { reader, closing, .. } => {
                let mut run = budget::Running::start(reader, budget, closing).await?;
                match Q::frag(Dialect::Sqlite, q).run_rows(&mut *run.conn).await {
                    Ok(rows) => Ok(rows),
                    Err(e) => Err(run.error(e)),
                }
            }
            // A read-only transaction whose `statement_timeout` is the budget (`SET LOCAL`, so it
            // ends with the transaction), begun in the same round trip as `BEGIN`. PostgreSQL
            // cancels the statement at the budget (SQLSTATE 57014), also when the caller went
            // away: the statement runs on until then, and the connection returns to the pool
            // once it ended.
            Db::Postgres(pool) => {
                let ms = budget.as_millis().max(1);
                let begin = format!("BEGIN READ ONLY; SET LOCAL statement_timeout = {ms}");
                let mut tx = pool.begin_with(sqlx::AssertSqlSafe(begin)).await?;
                let rows = match Q::frag(Dialect::Postgres, q).run_rows(&mut *tx).await {
                    Ok(rows) => rows,
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014") => {
                        return Err(StoreError::OverBudget { budget });
                    }
                    Err(e) => return Err(e.into()),
                };
                tx.commit().await?;
                Ok(rows)
            }
        }
    }
}

async fn migrate_sqlite(writer: &SqlitePool) -> Result<()> {
    sqlx::migrate!("./migrations/sqlite")
        .run(writer)
        .await
        .map_err(|e| StoreError::Db(format!("migration failed: {e}").into()))
}

/// Apply pending migrations exactly once, however many nodes start together: a session
/// advisory lock is held on a dedicated connection (outside the pool, so a pool of one still
/// works) while the migrator runs. sqlx's migrator also takes an advisory lock of its own
/// (keyed by the database name); ours makes the guarantee explicit and independent of it.
async fn migrate_postgres(pool: &PgPool, opts: &PgConnectOptions) -> Result<()> {
    use sqlx::Connection;
    let mut lock = sqlx::PgConnection::connect_with(opts).await?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut lock).await?;
    let res = sqlx::migrate!("./migrations/postgres").run(pool).await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut lock).await?;
    lock.close().await?;
    res.map_err(|e| StoreError::Db(format!("migration failed: {e}").into()))
}

/// PostgreSQL cannot store (nor bind) a NUL character in text: a key or value holding one is
/// refused, or not found, there.
pub(crate) fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

impl Db {
    /// Does this database refuse `s`? PostgreSQL text cannot hold NUL: a key with one is
    /// not found there, and a write naming one is refused.
    pub(crate) fn refuses(&self, s: &str) -> bool {
        matches!(self, Db::Postgres(_)) && has_nul(s)
    }

    /// `s` as this database can store it: on PostgreSQL a NUL becomes U+FFFD.
    pub(crate) fn storable<'s>(&self, s: &'s str) -> std::borrow::Cow<'s, str> {
        match self {
            Db::Postgres(_) if has_nul(s) => std::borrow::Cow::Owned(s.replace('\0', "\u{fffd}")),
            _ => std::borrow::Cow::Borrowed(s),
        }
    }
}

/// Take the transaction-scoped advisory locks `hashes` of entities ([`entity_locks`]; PostgreSQL;
/// SQLite's one writer serializes writes already), in hash order so two transactions locking
/// overlapping sets cannot deadlock. Held until commit or rollback. The keys are hashed here
/// rather than by PostgreSQL (`hashtextextended`), because a key may hold a NUL character,
/// which PostgreSQL text cannot: a write of such an entity must reach its build closure, whose
/// validation rejects the identifier, as on SQLite.
pub(crate) async fn lock_entities(tx: &mut Tx, mut hashes: Vec<i64>) -> Result<()> {
    let Tx::Postgres(conn) = tx else {
        return Ok(());
    };
    if hashes.is_empty() {
        return Ok(());
    }
    hashes.sort_unstable();
    hashes.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(h) FROM \
         (SELECT h FROM unnest($1::bigint[]) WITH ORDINALITY t(h, n) ORDER BY n) s",
    )
    .bind(hashes)
    .execute(&mut **conn)
    .await?;
    Ok(())
}

/// The advisory lock keys of the entities `keys` of `org` (for [`lock_entities`]).
pub(crate) fn entity_locks<'k>(org: &OrgId, keys: impl Iterator<Item = (&'k str, &'k str)>) -> Vec<i64> {
    keys.map(|(bp, id)| lock_hash(&format!("{}/{}/{bp}/{id}", org.0.len(), org.0))).collect()
}

/// 64-bit FNV-1a of `key`: stable across nodes, versions and platforms (a collision only
/// serializes more).
fn lock_hash(key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

fn value_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => has_nul(s),
        Value::Array(a) => a.iter().any(value_has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| has_nul(k) || value_has_nul(v)),
        _ => false,
    }
}

/// The rejection of an entity PostgreSQL cannot store: one holding a NUL character (U+0000)
/// in its title, icon, teams, property values or relation values. SQLite stores any text; on
/// PostgreSQL such a write is a validation error naming the field, never an internal error.
pub(crate) fn nul_rejection(e: &Entity) -> Option<WriteRejection> {
    const MSG: &str = "contains the NUL character (U+0000), which this server's database (PostgreSQL) cannot store";
    let mut errs = portolan_core::FieldErrors::default();
    for (path, v) in [("title", &e.title), ("icon", &e.icon), ("datasource", &e.datasource)] {
        if v.as_deref().is_some_and(has_nul) {
            errs.push(path, MSG);
        }
    }
    if e.team.iter().any(|t| has_nul(t)) {
        errs.push("team", MSG);
    }
    for (col, map) in [("properties", &e.properties), ("relations", &e.relations)] {
        for (k, v) in map {
            if has_nul(k) || value_has_nul(v) {
                errs.push(format!("{col}.{k}"), MSG);
            }
        }
    }
    if errs.is_empty() { None } else { Some(WriteRejection::Invalid(errs)) }
}
