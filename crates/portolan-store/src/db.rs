//! The database layer every aggregate is written against: one executor over either backend.
//!
//! Statements are store-written SQL with `?` placeholders (see [`crate::sql`]); [`Db::q`] and
//! [`Tx::q`] make a [`Q`] for the backend at hand (numbering the placeholders for PostgreSQL),
//! [`Q::bind`] takes any value both backends can encode, and a [`Row`]'s [`Row::get`] decodes
//! any value both can decode. Nothing is converted through an intermediate value: a bind goes
//! straight into the backend's argument buffer and a column straight out of its row.
//!
//! *Architecture invariant:* only this file and `dialect.rs` name `Sqlite` or `Postgres`
//! types; the aggregates ask [`Db::dialect`] where the SQL differs.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{ColumnIndex, Decode, Encode, PgPool, Postgres, Sqlite, SqlitePool, Type};

use crate::sql::{Dialect, SqlFrag, SqlParam, texts_json};
use crate::{Result, StoreError};

/// The pools of a store.
#[derive(Clone)]
pub(crate) enum Db {
    /// WAL, exactly one writer connection (SQLite allows one writer at a time, and queuing in
    /// the pool is cheaper than retrying SQLITE_BUSY), a pool of read-only readers.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
        /// Set by [`crate::SqlStore::close`]: running searches stop at once.
        closing: Arc<AtomicBool>,
        /// The WAL's checkpoints, off the writer (none for an in-memory database).
        checkpoints: Option<Arc<Checkpointer>>,
    },
    Postgres(PgPool),
}

impl Db {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A statement of store-written SQL (`?` placeholders) for this database.
    pub(crate) fn q(&self, sql: &str) -> Q {
        Q::new(self.dialect(), sql)
    }

    /// A statement from a fragment, its parameters bound.
    pub(crate) fn frag(&self, f: &SqlFrag) -> Q {
        Q::frag(self.dialect(), f)
    }

    /// Where reads go: the reader pool on SQLite.
    pub(crate) fn read(&self) -> Conn<'_> {
        match self {
            Db::Sqlite { reader, .. } => Conn::SqlitePool(reader),
            Db::Postgres(pool) => Conn::PgPool(pool),
        }
    }

    /// Where writes (and reads that must see the latest write) go: the writer on SQLite.
    pub(crate) fn write(&self) -> Conn<'_> {
        match self {
            Db::Sqlite { writer, .. } => Conn::SqlitePool(writer),
            Db::Postgres(pool) => Conn::PgPool(pool),
        }
    }

    /// A transaction on the writer.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite { writer, checkpoints, .. } => Tx::Sqlite(writer.begin().await?, checkpoints.clone()),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

/// A transaction on either backend; rolled back when dropped uncommitted.
pub(crate) enum Tx {
    /// With the checkpointer to wake once it committed.
    Sqlite(sqlx::Transaction<'static, Sqlite>, Option<Arc<Checkpointer>>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(..) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(crate) fn q(&self, sql: &str) -> Q {
        Q::new(self.dialect(), sql)
    }

    pub(crate) fn frag(&self, f: &SqlFrag) -> Q {
        Q::frag(self.dialect(), f)
    }

    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(tx, _) => Conn::Sqlite(tx),
            Tx::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx, checkpoints) => {
                tx.commit().await?;
                if let Some(c) = checkpoints {
                    c.signals.wake.notify_one();
                }
            }
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// SQLite's WAL checkpoints on a connection of their own, so that the writer does not copy
/// pages into the database file (and sync it) inside a commit while every other write waits:
/// after a transaction's commit (at most every [`Checkpointer::SPACING`]), and at least every
/// [`Checkpointer::IDLE`] (writes outside a transaction, on `Db::write`, wake nothing), a passive
/// checkpoint copies what was committed and no reader still needs, while the writer goes on.
/// The writer's own automatic checkpoint stays at [`Checkpointer::WRITER_BACKSTOP_PAGES`]:
/// under sustained writes it is what lets the WAL start over (SQLite restarts the WAL only when
/// a write transaction begins with every frame copied, which a concurrent checkpointer rarely
/// achieves), and it then finds little left to copy. BENCHMARKS.md, "Checkpoints off the writer".
pub(crate) struct Checkpointer {
    signals: Arc<Signals>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the checkpointer's task waits for (the task holds these, not the [`Checkpointer`], so
/// that a store dropped without [`crate::SqlStore::close`] stops it too).
struct Signals {
    wake: tokio::sync::Notify,
    stop: tokio::sync::Notify,
}

impl Checkpointer {
    /// The least time between two checkpoints: commits in between share the next one.
    const SPACING: std::time::Duration = std::time::Duration::from_millis(50);
    /// The most time between two checkpoints.
    const IDLE: std::time::Duration = std::time::Duration::from_secs(1);
    /// The writer's `wal_autocheckpoint` (SQLite's default is 1,000 pages).
    pub(crate) const WRITER_BACKSTOP_PAGES: u32 = 16_384;

    /// Start checkpointing on `conn`, a read-write connection to the database (not the writer).
    pub(crate) fn start(conn: sqlx::SqliteConnection) -> Arc<Checkpointer> {
        let signals = Arc::new(Signals { wake: tokio::sync::Notify::new(), stop: tokio::sync::Notify::new() });
        let task = tokio::spawn(Self::run(Arc::clone(&signals), conn));
        Arc::new(Checkpointer { signals, task: std::sync::Mutex::new(Some(task)) })
    }

    async fn run(signals: Arc<Signals>, mut conn: sqlx::SqliteConnection) {
        let mut failing = false;
        loop {
            tokio::select! {
                biased;
                () = signals.stop.notified() => break,
                () = signals.wake.notified() => {}
                () = tokio::time::sleep(Self::IDLE) => {}
            }
            // PASSIVE: copies what it can without waiting for readers or the writer (a page a
            // reader's snapshot still needs is copied by a later checkpoint). A failure is
            // logged once until a checkpoint succeeds again.
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "SQLite WAL checkpoint failed (retried every second; meanwhile the writer checkpoints once the WAL holds {} pages)", Self::WRITER_BACKSTOP_PAGES);
                }
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("SQLite WAL checkpoints succeed again");
                }
                _ => {}
            }
            tokio::select! {
                biased;
                () = signals.stop.notified() => break,
                () = tokio::time::sleep(Self::SPACING) => {}
            }
        }
        let _ = sqlx::Connection::close(conn).await;
    }

    /// Stop checkpointing and close the connection (before the pools close: the last
    /// connection to close checkpoints the whole WAL and removes it).
    pub(crate) async fn stop(&self) {
        self.signals.stop.notify_one();
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.signals.stop.notify_one();
    }
}

/// Where a statement runs: a pool or a connection (of a transaction).
pub(crate) enum Conn<'c> {
    SqlitePool(&'c SqlitePool),
    PgPool(&'c PgPool),
    Sqlite(&'c mut sqlx::SqliteConnection),
    Postgres(&'c mut sqlx::PgConnection),
}

impl<'c> From<&'c mut Tx> for Conn<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        tx.conn()
    }
}

impl<'c> From<&'c mut sqlx::SqliteConnection> for Conn<'c> {
    fn from(c: &'c mut sqlx::SqliteConnection) -> Self {
        Conn::Sqlite(c)
    }
}

impl<'c> From<&'c mut sqlx::PgConnection> for Conn<'c> {
    fn from(c: &'c mut sqlx::PgConnection) -> Self {
        Conn::Postgres(c)
    }
}

/// A statement with its bound values, for one backend.
pub(crate) enum Q {
    Sqlite(Query<'static, Sqlite, SqliteArguments>),
    Postgres(Query<'static, Postgres, PgArguments>),
}

/// A value both backends can bind.
pub(crate) trait Bind<'t>: Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres> {}
impl<'t, T: Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>> Bind<'t> for T {}

fn mismatch() -> StoreError {
    StoreError::from(mismatch_sqlx())
}

fn mismatch_sqlx() -> sqlx::Error {
    sqlx::Error::Protocol("a statement was prepared for the other database backend".into())
}

impl Q {
    /// Store-written SQL with `?` placeholders, numbered (untyped) for PostgreSQL.
    pub(crate) fn new(dialect: Dialect, sql: &str) -> Q {
        let text = SqlFrag::new(sql).render(dialect).into_owned();
        match dialect {
            Dialect::Sqlite => Q::Sqlite(sqlx::query(sqlx::AssertSqlSafe(text))),
            Dialect::Postgres => Q::Postgres(sqlx::query(sqlx::AssertSqlSafe(text))),
        }
    }

    /// A fragment: text rendered for `dialect` (typed placeholders on PostgreSQL), parameters
    /// bound in order.
    pub(crate) fn frag(dialect: Dialect, f: &SqlFrag) -> Q {
        let text = f.render(dialect).into_owned();
        let mut q = match dialect {
            Dialect::Sqlite => Q::Sqlite(sqlx::query(sqlx::AssertSqlSafe(text))),
            Dialect::Postgres => Q::Postgres(sqlx::query(sqlx::AssertSqlSafe(text))),
        };
        for p in &f.params {
            q = q.param(p);
        }
        q
    }

    pub(crate) fn bind<'t, T: Bind<'t>>(self, v: T) -> Q {
        match self {
            Q::Sqlite(q) => Q::Sqlite(q.bind(v)),
            Q::Postgres(q) => Q::Postgres(q.bind(v)),
        }
    }

    /// Bind a list for [`Dialect::any_of`]: a `text[]` on PostgreSQL, a JSON array on SQLite.
    /// PostgreSQL plans the statement for the list it is given ([`Q::bind_ints`] says why); a
    /// compiled fragment's list ([`Q::param`]) does not.
    pub(crate) fn bind_texts(self, v: &[&str]) -> Q {
        match self {
            Q::Sqlite(q) => Q::Sqlite(q.bind(texts_json(v))),
            Q::Postgres(q) => {
                Q::Postgres(q.bind(v.iter().map(|s| s.to_string()).collect::<Vec<String>>()).persistent(false))
            }
        }
    }

    /// Bind a list for [`Dialect::any_of`]: a `bigint[]` on PostgreSQL, a JSON array on SQLite.
    ///
    /// On PostgreSQL a statement with a list bound here (the write path's key lookups and
    /// relation unlinks, team and member lookups, run acknowledgements, automation events) is
    /// planned for its values at every run, never from a plan cached on the connection (sqlx's
    /// unnamed statement instead of a prepared one; its text must never also run prepared on
    /// the connection, or sqlx would reuse that statement). PostgreSQL plans a prepared
    /// statement generically from its sixth run on and keeps that plan until the table's
    /// statistics change; a list lookup (`= ANY(?)`) on a table
    /// that grows from empty and has not been analyzed yet (a fresh installation's first load,
    /// autovacuum behind it) got a sequential scan chosen while the table held a few rows,
    /// kept for the whole load: the write path's key lookups read the whole table per request,
    /// quadratic (`tests/pg_plans.rs` counts the rows scanned; BENCHMARKS.md, "Plans cached
    /// while the table was small"). Not the connections' `plan_cache_mode`: that replans the
    /// foreign-key checks and trigger statements too, for every row (a bulk load a fifth slower).
    pub(crate) fn bind_ints(self, v: &[i64]) -> Q {
        match self {
            Q::Sqlite(q) => Q::Sqlite(q.bind(serde_json::to_string(v).unwrap_or_else(|_| "[]".into()))),
            Q::Postgres(q) => Q::Postgres(q.bind(v.to_vec()).persistent(false)),
        }
    }

    /// Bind a fragment parameter (a NULL binds as text).
    pub(crate) fn param(self, p: &SqlParam) -> Q {
        match p {
            SqlParam::Null => self.bind(None::<String>),
            SqlParam::Bool(b) => self.bind(*b),
            SqlParam::Int(i) => self.bind(*i),
            SqlParam::Real(f) => self.bind(*f),
            SqlParam::Text(s) => self.bind(s.as_str()),
            // A compiled statement's list (`SqlFrag::in_texts`: searches, counts, audit and event
            // log filters) stays prepared: those are reads, planned from statistics like the
            // rest of the statement, and some run once per entity in a job (an aggregation's
            // `value_of`), where planning a whole compiled statement at every run would cost more
            // than the plan it could save.
            SqlParam::Texts(v) => match self {
                Q::Postgres(q) => Q::Postgres(q.bind(v.clone())),
                sqlite => sqlite.bind_texts(&v.iter().map(String::as_str).collect::<Vec<_>>()),
            },
        }
    }

    pub(crate) async fn fetch_all<'c>(self, c: impl Into<Conn<'c>>) -> Result<Vec<Row>> {
        Ok(self.run_rows(c).await?)
    }

    /// [`Q::fetch_all`] keeping sqlx's error.
    pub(crate) async fn run_rows<'c>(self, c: impl Into<Conn<'c>>) -> std::result::Result<Vec<Row>, sqlx::Error> {
        Ok(match (self, c.into()) {
            (Q::Sqlite(q), Conn::SqlitePool(p)) => q.fetch_all(p).await?.into_iter().map(Row::Sqlite).collect(),
            (Q::Sqlite(q), Conn::Sqlite(c)) => q.fetch_all(c).await?.into_iter().map(Row::Sqlite).collect(),
            (Q::Postgres(q), Conn::PgPool(p)) => q.fetch_all(p).await?.into_iter().map(Row::Postgres).collect(),
            (Q::Postgres(q), Conn::Postgres(c)) => q.fetch_all(c).await?.into_iter().map(Row::Postgres).collect(),
            _ => return Err(mismatch_sqlx()),
        })
    }

    pub(crate) async fn fetch_optional<'c>(self, c: impl Into<Conn<'c>>) -> Result<Option<Row>> {
        Ok(match (self, c.into()) {
            (Q::Sqlite(q), Conn::SqlitePool(p)) => q.fetch_optional(p).await?.map(Row::Sqlite),
            (Q::Sqlite(q), Conn::Sqlite(c)) => q.fetch_optional(c).await?.map(Row::Sqlite),
            (Q::Postgres(q), Conn::PgPool(p)) => q.fetch_optional(p).await?.map(Row::Postgres),
            (Q::Postgres(q), Conn::Postgres(c)) => q.fetch_optional(c).await?.map(Row::Postgres),
            _ => return Err(mismatch()),
        })
    }

    pub(crate) async fn fetch_one<'c>(self, c: impl Into<Conn<'c>>) -> Result<Row> {
        self.fetch_optional(c).await?.ok_or_else(|| StoreError::from(sqlx::Error::RowNotFound))
    }

    /// Run the statement; the number of rows it changed.
    pub(crate) async fn execute<'c>(self, c: impl Into<Conn<'c>>) -> Result<u64> {
        Ok(self.run(c).await?)
    }

    /// [`Q::execute`] keeping sqlx's error (callers that map unique violations).
    pub(crate) async fn run<'c>(self, c: impl Into<Conn<'c>>) -> std::result::Result<u64, sqlx::Error> {
        match (self, c.into()) {
            (Q::Sqlite(q), Conn::SqlitePool(p)) => Ok(q.execute(p).await?.rows_affected()),
            (Q::Sqlite(q), Conn::Sqlite(c)) => Ok(q.execute(c).await?.rows_affected()),
            (Q::Postgres(q), Conn::PgPool(p)) => Ok(q.execute(p).await?.rows_affected()),
            (Q::Postgres(q), Conn::Postgres(c)) => Ok(q.execute(c).await?.rows_affected()),
            _ => Err(mismatch_sqlx()),
        }
    }
}

/// A PostgreSQL query from a fragment (data migration and the query compiler's tests, which
/// work on one backend's typed pool).
pub(crate) fn pg_query(f: &SqlFrag) -> Query<'static, Postgres, PgArguments> {
    match Q::frag(Dialect::Postgres, f) {
        Q::Postgres(q) => q,
        Q::Sqlite(_) => unreachable!("Q::frag(Dialect::Postgres) is a PostgreSQL query"),
    }
}

/// A result row of either backend.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    /// Column `i` (index or name) as `T`; panics when the column is missing or of another type
    /// (a bug of the statement, as with [`sqlx::Row::get`]).
    pub(crate) fn get<'r, T, I>(&'r self, i: I) -> T
    where
        T: Decode<'r, Sqlite> + Type<Sqlite> + Decode<'r, Postgres> + Type<Postgres>,
        I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + Debug,
    {
        use sqlx::Row as _;
        match self {
            Row::Sqlite(r) => r.get(i),
            Row::Postgres(r) => r.get(i),
        }
    }

    /// A boolean column: an integer on SQLite, a boolean on PostgreSQL.
    pub(crate) fn flag<I>(&self, i: I) -> bool
    where
        I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + Debug,
    {
        use sqlx::Row as _;
        match self {
            Row::Sqlite(r) => r.get::<i64, _>(i) != 0,
            Row::Postgres(r) => r.get::<bool, _>(i),
        }
    }

    /// A JSON column read as text (`CAST(… AS TEXT)` on PostgreSQL); `T::default()` when it
    /// is NULL or unreadable.
    pub(crate) fn json<T: serde::de::DeserializeOwned + Default, I>(&self, i: I) -> T
    where
        I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + Debug,
    {
        self.get::<Option<String>, I>(i).and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default()
    }
}

/// Is `e` a unique-constraint violation?
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// What [`StoreError::Db`] holds: a message and, when sqlx failed, sqlx's error as the source.
#[derive(Debug)]
pub struct DbError {
    message: String,
    source: Option<sqlx::Error>,
}

impl DbError {
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<String> for DbError {
    fn from(message: String) -> Self {
        DbError { message, source: None }
    }
}

impl From<&str> for DbError {
    fn from(message: &str) -> Self {
        DbError { message: message.to_string(), source: None }
    }
}

/// The one conversion of sqlx's errors: a pool wait that timed out is
/// [`StoreError::Unavailable`], anything else [`StoreError::Db`] with the error as its source.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => {
                StoreError::Unavailable("no database connection became free in time; try again shortly".into())
            }
            e => StoreError::Db(DbError { message: e.to_string(), source: Some(e) }),
        }
    }
}

/// Plan tests on SQLite: a store with two organizations, and a statement's plan.
#[cfg(test)]
pub(crate) mod plans {
    use super::{Db, Q};
    use crate::{OrgId, Orgs as _, SqlStore};

    /// An in-memory SQLite store holding the organizations `org_a` and `org_b`.
    pub(crate) async fn store_of_two_orgs() -> SqlStore {
        let store = SqlStore::in_memory().await.expect("an in-memory store");
        for o in ["org_a", "org_b"] {
            store.create_org(&OrgId(o.into()), o, "2026-01-01T00:00:00.000Z").await.expect("an organization");
        }
        store
    }

    /// The plan of `explain` (an `EXPLAIN QUERY PLAN …` statement, bound): a line per step.
    pub(crate) async fn lines(db: &Db, explain: Q) -> Vec<String> {
        let rows = explain.fetch_all(db.write()).await.expect("a plan");
        rows.iter().map(|r| r.get::<String, _>("detail")).collect()
    }
}
