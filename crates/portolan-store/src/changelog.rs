//! Changelog destinations (port-api.md §1.8; issue 14): every change of an entity whose
//! blueprint has a webhook `changelogDestination` becomes a `changelog_events` row in the
//! transaction of the change (migration 0024; the audit record holds the diff), and the
//! organization's [`CHANGELOG_JOB`] delivers them. Delivered rows are deleted; a failed one is
//! retried later and holds back the later changes of its entity only, so each entity's changes
//! arrive in order and a dead endpoint for one entity does not stop the others.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::db::{Row, Tx};
use crate::jobs;
use crate::sql::{Dialect, SqlFrag};
use crate::{OrgId, Result, SqlStore};

/// The job kind that delivers an organization's changelog.
pub const CHANGELOG_JOB: &str = "changelog_deliver";

/// A change waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangelogEvent {
    /// Increasing in commit order within the organization.
    pub id: i64,
    pub blueprint: String,
    pub entity: String,
    /// Port's changelog message (§1.8) without `changelogDestination`.
    pub message: Value,
    /// Failed deliveries so far.
    pub attempts: u32,
}

/// How an organization's changelog of one blueprint stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangelogStatus {
    /// Changes not delivered yet.
    pub pending: u64,
    /// The oldest failing deliveries (at most 20): `(entity, attempts, last error, next attempt)`.
    pub failing: Vec<(String, u32, String, String)>,
}

#[async_trait]
pub trait Changelog: Send + Sync {
    /// Claim the next changes to deliver until `until`, oldest first, at most `limit`: for
    /// each entity only its oldest change, and only when it is due (`next_at <= now`) and not
    /// held by another deliverer's claim (times in the store's timestamp format). Delivering
    /// these and claiming again walks every entity's changes in order; two deliverers never
    /// hold one entity's changes at once.
    async fn claim_changes(&self, org: &OrgId, now: &str, until: &str, limit: u32) -> Result<Vec<ChangelogEvent>>;
    /// The change `id` was delivered: forget it.
    async fn change_delivered(&self, org: &OrgId, id: i64) -> Result<()>;
    /// Delivering change `id` failed with `error`: count the attempt, drop the claim and try
    /// again at `next_at`.
    async fn change_failed(&self, org: &OrgId, id: i64, error: &str, next_at: &str) -> Result<()>;
    /// When the earliest change still waiting can be claimed (due, and its claim over),
    /// counting only each entity's oldest (the others wait for it): `None` when none waits.
    async fn next_change_at(&self, org: &OrgId) -> Result<Option<String>>;
    /// The changelog of blueprint `bp`: how many changes wait, and the failing ones.
    async fn changelog_status(&self, org: &OrgId, bp: &str) -> Result<ChangelogStatus>;
}

/// The blueprints of `org` whose changes go to a webhook changelog destination (not through an
/// agent: Port's agent takes changelogs from Kafka only, which Portolan does not run), as
/// `(identifier, "CHANGELOG")` rows for [`crate::automations::listening`].
pub(crate) fn destinations_sql(d: Dialect) -> &'static str {
    match d {
        // `changelog_webhook`: set from the body when it is written (migration 0035): a webhook
        // destination, not the agent.
        Dialect::Sqlite => "SELECT identifier, 'CHANGELOG' FROM blueprints WHERE org_id = ? AND changelog_webhook <> 0",
        Dialect::Postgres => "SELECT identifier, 'CHANGELOG' FROM blueprints WHERE org_id = ? AND changelog_webhook",
    }
}

/// Record the changes `rows` (`(blueprint, entity, audit id, time)`) for delivery and queue the
/// delivery job, in the writing transaction. Whether there were changes (a job has work).
pub(crate) async fn record(tx: &mut Tx, org: &OrgId, rows: &[(&str, &str, i64, &str)]) -> Result<bool> {
    if rows.is_empty() {
        return Ok(false);
    }
    for chunk in rows.chunks(500) {
        let values = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO changelog_events(org_id, blueprint, entity, audit_id, next_at, created_at) VALUES {values}"
        );
        let mut q = tx.q(&sql);
        for (bp, entity, audit_id, at) in chunk {
            q = q.bind(&org.0).bind(*bp).bind(*entity).bind(*audit_id).bind(*at).bind(*at);
        }
        q.execute(&mut *tx).await?;
    }
    jobs::enqueue_once(tx, org, CHANGELOG_JOB).await?;
    Ok(true)
}

/// Port's changelog message (§1.8) of a change, from its audit record's columns.
fn message(org: &OrgId, r: &Row) -> Result<Value> {
    let mut m = crate::automations::audited_change(org, r)?;
    let text = |c: &str| r.get::<Option<String>, _>(c);
    m["status"] = json!("SUCCESS");
    m["context"] = json!({"blueprint": text("blueprint"), "entity": text("entity")});
    Ok(m)
}

#[async_trait]
impl Changelog for SqlStore {
    async fn claim_changes(&self, org: &OrgId, now: &str, until: &str, limit: u32) -> Result<Vec<ChangelogEvent>> {
        let db = &self.db;
        // The claim condition is in the outer WHERE too: PostgreSQL re-checks it on a row
        // another deliverer claimed meanwhile, so that row is skipped, not claimed twice.
        let claimed = db
            .q("UPDATE changelog_events SET claimed_until = ? WHERE org_id = ? \
                AND (claimed_until IS NULL OR claimed_until <= ?) AND id IN (SELECT e.id FROM changelog_events e \
                WHERE e.org_id = ? AND e.next_at <= ? AND (e.claimed_until IS NULL OR e.claimed_until <= ?) \
                AND NOT EXISTS (SELECT 1 FROM changelog_events p WHERE p.org_id = e.org_id \
                AND p.blueprint = e.blueprint AND p.entity = e.entity AND p.id < e.id) ORDER BY e.id LIMIT ?) \
                RETURNING id")
            .bind(until)
            .bind(&org.0)
            .bind(now)
            .bind(&org.0)
            .bind(now)
            .bind(now)
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(db.write())
            .await?;
        let ids: Vec<i64> = claimed.iter().map(|r| r.get(0)).collect();
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut f = SqlFrag::new(
            "SELECT e.id, e.blueprint, e.entity, e.attempts, a.action AS a_action, a.user_id AS a_user, \
             a.origin AS a_origin, a.at AS a_at, CAST(a.diff AS TEXT) AS a_diff FROM changelog_events e \
             LEFT JOIN audit_log a ON a.id = e.audit_id AND a.org_id = e.org_id WHERE e.org_id = ",
        );
        f.param(org.0.as_str()).push(" AND e.id IN (").param_list(ids.iter().copied()).push(") ORDER BY e.id");
        let rows = db.frag(&f).fetch_all(db.write()).await?;
        rows.iter()
            .map(|r| {
                Ok(ChangelogEvent {
                    id: r.get(0),
                    blueprint: r.get(1),
                    entity: r.get(2),
                    attempts: u32::try_from(r.get::<i64, _>(3)).unwrap_or(u32::MAX),
                    message: message(org, r)?,
                })
            })
            .collect()
    }

    async fn change_delivered(&self, org: &OrgId, id: i64) -> Result<()> {
        let db = &self.db;
        db.q("DELETE FROM changelog_events WHERE org_id = ? AND id = ?")
            .bind(&org.0)
            .bind(id)
            .execute(db.write())
            .await?;
        Ok(())
    }

    async fn change_failed(&self, org: &OrgId, id: i64, error: &str, next_at: &str) -> Result<()> {
        let db = &self.db;
        db.q("UPDATE changelog_events SET attempts = attempts + 1, last_error = ?, next_at = ?, claimed_until = NULL \
              WHERE org_id = ? AND id = ?")
            .bind(error)
            .bind(next_at)
            .bind(&org.0)
            .bind(id)
            .execute(db.write())
            .await?;
        Ok(())
    }

    async fn next_change_at(&self, org: &OrgId) -> Result<Option<String>> {
        let db = &self.db;
        let row = db
            .q("SELECT MIN(CASE WHEN e.claimed_until > e.next_at THEN e.claimed_until ELSE e.next_at END) \
                FROM changelog_events e WHERE e.org_id = ? AND NOT EXISTS (SELECT 1 \
                FROM changelog_events p WHERE p.org_id = e.org_id AND p.blueprint = e.blueprint \
                AND p.entity = e.entity AND p.id < e.id)")
            .bind(&org.0)
            .fetch_one(db.read())
            .await?;
        Ok(row.get(0))
    }

    async fn changelog_status(&self, org: &OrgId, bp: &str) -> Result<ChangelogStatus> {
        let db = &self.db;
        let n: i64 = db
            .q("SELECT COUNT(*) FROM changelog_events WHERE org_id = ? AND blueprint = ?")
            .bind(&org.0)
            .bind(bp)
            .fetch_one(db.read())
            .await?
            .get(0);
        let failing = db
            .q("SELECT entity, attempts, last_error, next_at FROM changelog_events \
                WHERE org_id = ? AND blueprint = ? AND attempts > 0 ORDER BY id LIMIT 20")
            .bind(&org.0)
            .bind(bp)
            .fetch_all(db.read())
            .await?
            .iter()
            .map(|r| {
                let attempts = u32::try_from(r.get::<i64, _>(1)).unwrap_or(u32::MAX);
                (r.get(0), attempts, r.get::<Option<String>, _>(2).unwrap_or_default(), r.get(3))
            })
            .collect();
        Ok(ChangelogStatus { pending: u64::try_from(n).unwrap_or(0), failing })
    }
}
