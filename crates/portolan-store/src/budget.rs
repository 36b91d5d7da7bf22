//! Time budgets for SQLite search statements.
//!
//! sqlx runs each SQLite connection on its own worker thread, and a statement that scans
//! without producing rows never notices that its caller went away: dropping the future leaves
//! the worker stepping the statement, holding the connection, for as long as the statement
//! takes. So every budgeted statement runs on a connection with a *progress handler* (SQLite
//! calls it every [`PROGRESS_OPS`] virtual-machine instructions) that interrupts the statement
//! once its deadline passed or its [`Running`] guard was dropped — the caller's future was
//! dropped (client disconnected, server shutting down). The pool's `after_release` hook
//! ([`clear_handler`]) removes the handler before the connection serves anyone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::{PoolConnection, PoolConnectionMetadata};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use std::future::Future;
use std::pin::Pin;

use crate::{Result, StoreError};

/// Virtual-machine instructions between two checks (about 0.1–1 ms of work).
const PROGRESS_OPS: i32 = 10_000;

/// A connection armed with a budget. Dropping it (query finished, or its future dropped
/// half-way) disarms the statement: the progress handler interrupts it at its next check.
pub(crate) struct Running {
    pub(crate) conn: PoolConnection<Sqlite>,
    stop: Arc<AtomicBool>,
    budget: Duration,
    deadline: Instant,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Running {
    /// A read connection whose next statements must end within `budget`, and as soon as
    /// `closing` is set (the store is closing).
    pub(crate) async fn start(pool: &SqlitePool, budget: Duration, closing: &Arc<AtomicBool>) -> Result<Running> {
        let mut conn = pool.acquire().await?;
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + budget;
        let (flag, closing) = (Arc::clone(&stop), Arc::clone(closing));
        conn.lock_handle().await?.set_progress_handler(PROGRESS_OPS, move || {
            !flag.load(Ordering::Relaxed) && !closing.load(Ordering::Relaxed) && Instant::now() < deadline
        });
        Ok(Running { conn, stop, budget, deadline })
    }

    /// The statement's error, as [`StoreError::OverBudget`] when the handler interrupted it.
    pub(crate) fn error(&self, e: sqlx::Error) -> StoreError {
        let interrupted = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("9"));
        if interrupted || (Instant::now() >= self.deadline && e.to_string().contains("interrupted")) {
            return StoreError::OverBudget { budget: self.budget };
        }
        StoreError::from(e)
    }
}

/// The pool's `after_release` hook: a connection goes back to the pool without the progress
/// handler of the statement it ran (which would interrupt the next user's statements).
pub(crate) fn clear_handler(
    conn: &mut SqliteConnection,
    _meta: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = std::result::Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        conn.lock_handle().await?.remove_progress_handler();
        Ok(true)
    })
}
