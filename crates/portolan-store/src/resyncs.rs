//! Resyncs of an integration and the mass-deletion guard.

use crate::db::Row;
use crate::{OrgId, Result, SqlStore, StoreError};
use async_trait::async_trait;

/// A resync of an integration, with the deletion guard's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Resync {
    /// `rs_<n>`.
    pub id: String,
    pub integration: String,
    /// running, completed, failed, or abandoned (a new resync started first).
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The integration's entities when the resync started.
    pub entities_at_start: u64,
    /// Deletions the guard let through.
    pub deleted: u64,
    /// Deletions the guard refused.
    pub refused: u64,
    /// The guard refused a deletion; every further one is refused unless `confirmed`.
    pub tripped: bool,
    /// An admin confirmed the deletions of this resync.
    pub confirmed: bool,
}

/// Limits of the mass-deletion guard: a resync may delete at most `max_share` of the entities
/// its integration had at its start, once more than `min_count` deletions are at stake.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeletionGuard {
    pub max_share: f64,
    pub min_count: u64,
}

impl Default for DeletionGuard {
    fn default() -> Self {
        DeletionGuard { max_share: 0.5, min_count: 10 }
    }
}

impl DeletionGuard {
    /// May `n` deletions happen in a resync that started with `total` entities?
    pub fn allows(&self, n: u64, total: u64) -> bool {
        n <= self.min_count || (n as f64) <= self.max_share * total as f64
    }
}

/// What [`Resyncs::reserve_deletions`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// Go ahead (the counter now includes these deletions).
    Granted(Resync),
    /// Refused (the resync is now tripped and counts them as refused).
    Refused(Resync),
    /// No such running resync: the guard does not apply.
    NoResync,
}

/// The row id of an `<prefix><n>` id.
pub(crate) fn prefixed_rowid(id: &str, prefix: &str) -> Option<i64> {
    id.strip_prefix(prefix)?.parse().ok()
}

#[async_trait]
pub trait Resyncs: Send + Sync {
    /// Start a resync (a running one of the same integration becomes `abandoned`). It starts
    /// confirmed if an admin confirmed deletions for the next resync (which that consumes).
    async fn start_resync(&self, org: &OrgId, id: &str, at: &str, entities: u64) -> Result<Resync>;
    /// The latest resync of an integration.
    async fn latest_resync(&self, org: &OrgId, id: &str) -> Result<Option<Resync>>;
    /// End the running resync of an integration (`None` when none is running).
    async fn finish_resync(&self, org: &OrgId, id: &str, status: &str, at: &str) -> Result<Option<Resync>>;
    /// Atomically count `n` deletions against the running resync of integration `id`, or refuse
    /// them: refused when the resync is tripped, or when `max(deleted + n, projected)` breaks
    /// `guard` — unless the resync is confirmed. `projected` is how many deletions the caller
    /// expects the whole resync to make (0 if unknown).
    async fn reserve_deletions(
        &self,
        org: &OrgId,
        id: &str,
        n: u64,
        projected: u64,
        guard: &DeletionGuard,
    ) -> Result<Reservation>;
    /// Give back reserved deletions that did not happen.
    async fn release_deletions(&self, org: &OrgId, resync_id: &str, n: u64) -> Result<()>;
    /// Confirm deletions past the guard: those of the running resync, or (none running) those of
    /// the next resync to start. Returns the running resync it confirmed, if any.
    async fn confirm_deletions(&self, org: &OrgId, id: &str) -> Result<Option<Resync>>;
}

const RESYNC_COLUMNS: &str =
    "id, integration, status, started_at, ended_at, entities_at_start, deleted, refused, tripped, confirmed";

fn resync_from_row(r: &Row) -> Resync {
    let n = |i: usize| u64::try_from(r.get::<i64, _>(i)).unwrap_or(0);
    Resync {
        id: format!("rs_{}", r.get::<i64, _>(0)),
        integration: r.get(1),
        status: r.get(2),
        started_at: r.get(3),
        ended_at: r.get(4),
        entities_at_start: n(5),
        deleted: n(6),
        refused: n(7),
        tripped: r.flag(8),
        confirmed: r.flag(9),
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `id = <the latest resync of the integration>` (two bound parameters: org, integration).
const LATEST: &str = "id = (SELECT MAX(id) FROM integration_resyncs WHERE org_id = ? AND integration = ?)";

#[async_trait]
impl Resyncs for SqlStore {
    async fn start_resync(&self, org: &OrgId, id: &str, at: &str, entities: u64) -> Result<Resync> {
        let mut tx = self.db.begin().await?;
        tx.q("UPDATE integration_resyncs SET status = 'abandoned', ended_at = ? \
              WHERE org_id = ? AND integration = ? AND status = 'running'")
            .bind(at)
            .bind(&org.0)
            .bind(id)
            .execute(&mut tx)
            .await?;
        let confirmed = tx
            .q("SELECT confirm_next FROM integrations WHERE org_id = ? AND identifier = ?")
            .bind(&org.0)
            .bind(id)
            .fetch_optional(&mut tx)
            .await?
            .is_some_and(|r| r.flag(0));
        tx.q("UPDATE integrations SET confirm_next = FALSE WHERE org_id = ? AND identifier = ?")
            .bind(&org.0)
            .bind(id)
            .execute(&mut tx)
            .await?;
        let sql = format!(
            "INSERT INTO integration_resyncs(org_id, integration, status, started_at, entities_at_start, confirmed) \
             VALUES (?, ?, 'running', ?, ?, ?) RETURNING {RESYNC_COLUMNS}"
        );
        let row =
            tx.q(&sql).bind(&org.0).bind(id).bind(at).bind(count(entities)).bind(confirmed).fetch_one(&mut tx).await?;
        tx.commit().await?;
        Ok(resync_from_row(&row))
    }

    async fn latest_resync(&self, org: &OrgId, id: &str) -> Result<Option<Resync>> {
        let db = &self.db;
        let sql = format!("SELECT {RESYNC_COLUMNS} FROM integration_resyncs WHERE {LATEST}");
        let row = db.q(&sql).bind(&org.0).bind(id).fetch_optional(db.write()).await?;
        Ok(row.as_ref().map(resync_from_row))
    }

    async fn finish_resync(&self, org: &OrgId, id: &str, status: &str, at: &str) -> Result<Option<Resync>> {
        let db = &self.db;
        let sql = format!(
            "UPDATE integration_resyncs SET status = ?, ended_at = ? WHERE {LATEST} AND status = 'running' \
             RETURNING {RESYNC_COLUMNS}"
        );
        let row = db.q(&sql).bind(status).bind(at).bind(&org.0).bind(id).fetch_optional(db.write()).await?;
        Ok(row.as_ref().map(resync_from_row))
    }

    async fn reserve_deletions(
        &self,
        org: &OrgId,
        id: &str,
        n: u64,
        projected: u64,
        guard: &DeletionGuard,
    ) -> Result<Reservation> {
        let db = &self.db;
        let greatest = db.dialect().greatest();
        let sql = format!(
            "UPDATE integration_resyncs SET deleted = deleted + ? WHERE {LATEST} AND status = 'running' \
             AND (confirmed OR (NOT tripped AND ({greatest}(deleted + ?, ?) <= ? \
             OR {greatest}(deleted + ?, ?) <= CAST(? AS DOUBLE PRECISION) * entities_at_start))) \
             RETURNING {RESYNC_COLUMNS}"
        );
        let (n, p) = (count(n), count(projected));
        let granted = db
            .q(&sql)
            .bind(n)
            .bind(&org.0)
            .bind(id)
            .bind(n)
            .bind(p)
            .bind(count(guard.min_count))
            .bind(n)
            .bind(p)
            .bind(guard.max_share)
            .fetch_optional(db.write())
            .await?;
        if let Some(r) = granted {
            return Ok(Reservation::Granted(resync_from_row(&r)));
        }
        let sql = format!(
            "UPDATE integration_resyncs SET tripped = TRUE, refused = refused + ? WHERE {LATEST} AND status = 'running' \
             RETURNING {RESYNC_COLUMNS}"
        );
        let refused = db.q(&sql).bind(n).bind(&org.0).bind(id).fetch_optional(db.write()).await?;
        Ok(refused.map_or(Reservation::NoResync, |r| Reservation::Refused(resync_from_row(&r))))
    }

    async fn release_deletions(&self, org: &OrgId, resync_id: &str, n: u64) -> Result<()> {
        let Some(rowid) = prefixed_rowid(resync_id, "rs_") else { return Ok(()) };
        let db = &self.db;
        let greatest = db.dialect().greatest();
        db.q(&format!(
            "UPDATE integration_resyncs SET deleted = {greatest}(deleted - ?, 0) WHERE org_id = ? AND id = ?"
        ))
        .bind(count(n))
        .bind(&org.0)
        .bind(rowid)
        .execute(db.write())
        .await?;
        Ok(())
    }

    async fn confirm_deletions(&self, org: &OrgId, id: &str) -> Result<Option<Resync>> {
        let mut tx = self.db.begin().await?;
        let exists = tx
            .q("SELECT 1 FROM integrations WHERE org_id = ? AND identifier = ?")
            .bind(&org.0)
            .bind(id)
            .fetch_optional(&mut tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("integration {id:?}")));
        }
        let sql = format!(
            "UPDATE integration_resyncs SET confirmed = TRUE WHERE {LATEST} AND status = 'running' RETURNING {RESYNC_COLUMNS}"
        );
        let row = tx.q(&sql).bind(&org.0).bind(id).fetch_optional(&mut tx).await?;
        if row.is_none() {
            tx.q("UPDATE integrations SET confirm_next = TRUE WHERE org_id = ? AND identifier = ?")
                .bind(&org.0)
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(row.as_ref().map(resync_from_row))
    }
}
