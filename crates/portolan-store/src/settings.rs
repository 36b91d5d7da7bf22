//! Process-wide settings, and the store's own health and budget.

use std::time::Duration;

use async_trait::async_trait;

use crate::db::Db;
use crate::{Result, SqlStore, StoreError, WriteGroupUse};

#[async_trait]
pub trait Settings: Send + Sync {
    /// Cheap round trip to the database (readiness checks) through the pool that serves
    /// reads: waits at most `wait` for a connection, so a starved pool is reported
    /// ([`StoreError::Unavailable`]) instead of queued behind.
    async fn ping(&self, wait: Duration) -> Result<()>;
    /// The time budget of every search statement (`search`, `count_entities`, `search_sorted`)
    /// from now on: a statement still running when it ends is stopped and the call returns
    /// [`StoreError::OverBudget`]. A search whose caller goes away (its future dropped) is
    /// stopped at once on SQLite and at its budget on PostgreSQL; either way its connection
    /// goes back to the pool. Default [`crate::DEFAULT_QUERY_BUDGET`].
    fn set_query_budget(&self, budget: Duration);
    /// The fewest entities a dashboard's scan hands to one more connection
    /// ([`crate::Widgets::measure`]; default [`crate::SCAN_PART_ROWS`]); tests lower it
    /// to split small scans.
    fn set_scan_part_rows(&self, rows: u64);
    /// A value of the process-wide settings table; `init` is stored and returned if absent.
    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String>;
    /// Replace a setting's value only if it is still `old` (compare-and-set: of several nodes
    /// upgrading the same value, one wins); `false` when it was not `old`.
    async fn replace_setting(&self, key: &str, old: &str, new: &str) -> Result<bool>;
    /// The connection pools' use now (for `/metrics`).
    fn pool_use(&self) -> PoolUse;
    /// Entity write requests answered and the transactions they took, since the store opened
    /// (group commit: concurrent requests of one organization share one; `/metrics`).
    fn write_group_use(&self) -> WriteGroupUse;
}

/// Connections of the store's pools: open and idle (SQLite: the writer and the readers
/// together; PostgreSQL: its one pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUse {
    pub open: u32,
    pub idle: u32,
    /// The most the pools may open.
    pub max: u32,
}

#[async_trait]
impl Settings for SqlStore {
    fn write_group_use(&self) -> WriteGroupUse {
        self.writes.usage()
    }

    fn pool_use(&self) -> PoolUse {
        let one =
            |open: u32, idle: usize, max: u32| PoolUse { open, idle: u32::try_from(idle).unwrap_or(u32::MAX), max };
        match &self.db {
            Db::Sqlite { writer, reader, .. } => {
                let (w, r) = (
                    one(writer.size(), writer.num_idle(), writer.options().get_max_connections()),
                    one(reader.size(), reader.num_idle(), reader.options().get_max_connections()),
                );
                PoolUse { open: w.open + r.open, idle: w.idle + r.idle, max: w.max + r.max }
            }
            Db::Postgres(pool) => one(pool.size(), pool.num_idle(), pool.options().get_max_connections()),
        }
    }

    async fn ping(&self, wait: Duration) -> Result<()> {
        let starved = || {
            let what = match self.db {
                Db::Sqlite { .. } => "read connection",
                Db::Postgres(_) => "database connection",
            };
            StoreError::Unavailable(format!("no {what} became free within {} ms (every one is busy)", wait.as_millis()))
        };
        let answered = |r: std::result::Result<std::result::Result<u64, sqlx::Error>, _>| match r {
            Err(_) => {
                Err(StoreError::Unavailable(format!("the database did not answer within {} ms", wait.as_millis())))
            }
            Ok(done) => done.map(|_| ()).map_err(StoreError::from),
        };
        match &self.db {
            Db::Sqlite { reader, .. } => {
                let mut conn = tokio::time::timeout(wait, reader.acquire()).await.map_err(|_| starved())??;
                answered(tokio::time::timeout(wait, self.db.q("SELECT 1").run(&mut *conn)).await)
            }
            Db::Postgres(pool) => {
                let mut conn = tokio::time::timeout(wait, pool.acquire()).await.map_err(|_| starved())??;
                answered(tokio::time::timeout(wait, self.db.q("SELECT 1").run(&mut *conn)).await)
            }
        }
    }

    fn set_query_budget(&self, budget: Duration) {
        self.budget.set(budget);
    }

    fn set_scan_part_rows(&self, rows: u64) {
        self.scan_part_rows.store(rows.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String> {
        let db = &self.db;
        db.q("INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING")
            .bind(key)
            .bind(init)
            .execute(db.write())
            .await?;
        let row = db.q("SELECT value FROM settings WHERE key = ?").bind(key).fetch_one(db.write()).await?;
        Ok(row.get(0))
    }

    async fn replace_setting(&self, key: &str, old: &str, new: &str) -> Result<bool> {
        let db = &self.db;
        let done = db
            .q("UPDATE settings SET value = ? WHERE key = ? AND value = ?")
            .bind(new)
            .bind(key)
            .bind(old)
            .execute(db.write())
            .await?;
        Ok(done > 0)
    }
}
