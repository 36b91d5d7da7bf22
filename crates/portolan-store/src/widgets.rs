//! Widgets (port-api.md §9): the bounded aggregate reads dashboards render — counts grouped by
//! a value (pie charts, the home page's catalog counts), one aggregate of a number property
//! (number charts) and the entities of a scorecard per level. Every statement is one `COUNT` /
//! aggregate over the entities a search selects (the search compiler's filter, within the
//! search gate and query budget), with a `LIMIT` on its groups; no widget reads a table whole.

use async_trait::async_trait;

use crate::entities::filter;
use crate::sql::{Dialect, SqlFrag, SqlParam, json_key_path};
use crate::{OrgId, Result, SearchRequest, SqlStore, StoreError};

/// Most groups [`Widgets::count_by`] answers (Port's pie charts show at most 14 slices).
pub const MAX_GROUPS: u32 = 100;

/// An aggregate of a number property over entities ([`Widgets::aggregate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// Entities counted by a value: the largest groups, most first, and the count of all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Breakdown {
    /// (value as text, `None` for null or missing; entities with it).
    pub groups: Vec<(Option<String>, u64)>,
    /// Every entity selected, in the groups shown or not.
    pub total: u64,
}

impl Breakdown {
    /// Entities in groups not shown.
    pub fn other(&self) -> u64 {
        self.total.saturating_sub(self.groups.iter().map(|g| g.1).sum())
    }
}

#[async_trait]
pub trait Widgets: Send + Sync {
    /// The entities `req` selects (its blueprint and query; not its cursor or limit) counted by
    /// `field` — a property's value as text (arrays and objects as JSON), or `$blueprint` — the
    /// `top` largest groups (at most [`MAX_GROUPS`]), ties by value.
    async fn count_by(&self, org: &OrgId, req: &SearchRequest<'_>, field: &str, top: u32) -> Result<Breakdown>;
    /// `func` of the number values of `property` over the entities `req` selects; values that
    /// are not numbers are left out; `None` when there is none.
    async fn aggregate(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
        property: &str,
        func: Aggregate,
    ) -> Result<Option<f64>>;
    /// Entities of blueprint `bp` per level of its scorecard `scorecard` (stored results), most
    /// first; at most [`MAX_GROUPS`] levels.
    async fn level_counts(&self, org: &OrgId, bp: &str, scorecard: &str) -> Result<Vec<(String, u64)>>;
}

/// The value of `field` of `e` as text, per dialect.
fn value_text(d: Dialect, field: &str) -> SqlFrag {
    if field == "$blueprint" {
        return SqlFrag::new("e.blueprint");
    }
    let mut f = SqlFrag::new("");
    match d {
        Dialect::Sqlite => {
            let path = || SqlParam::Text(json_key_path(field));
            f.push("CASE json_type(e.properties, ").param(path());
            f.push(") WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(json_extract(e.properties, ");
            f.param(path()).push(") AS TEXT) END");
        }
        Dialect::Postgres => {
            f.push("(e.properties ->> ").param(SqlParam::Text(field.to_string())).push(")");
        }
    }
    f
}

/// The number value of `property` of `e` (NULL when it is not a number), as a double.
fn value_number(d: Dialect, property: &str) -> SqlFrag {
    let mut f = SqlFrag::new("");
    match d {
        Dialect::Sqlite => {
            let path = || SqlParam::Text(json_key_path(property));
            f.push("CASE WHEN json_type(e.properties, ").param(path());
            f.push(") IN ('integer', 'real') THEN CAST(json_extract(e.properties, ").param(path());
            f.push(") AS REAL) END");
        }
        Dialect::Postgres => {
            let key = || SqlParam::Text(property.to_string());
            f.push("CASE WHEN jsonb_typeof(e.properties -> ").param(key());
            f.push(") = 'number' THEN CAST(e.properties ->> ").param(key()).push(" AS DOUBLE PRECISION) END");
        }
    }
    f
}

fn refused(what: &str) -> StoreError {
    StoreError::Invalid(portolan_core::FieldError::new(what, "contains the NUL character (U+0000)"))
}

#[async_trait]
impl Widgets for SqlStore {
    async fn count_by(&self, org: &OrgId, req: &SearchRequest<'_>, field: &str, top: u32) -> Result<Breakdown> {
        let db = &self.db;
        if db.refuses(field) {
            return Err(refused("property"));
        }
        let defs = self.scorecard_defs(org, req).await?;
        let top = top.clamp(1, MAX_GROUPS);
        let mut groups = SqlFrag::new("SELECT ");
        groups.append(value_text(db.dialect(), field)).push(" AS v, COUNT(*) AS n");
        groups.append(filter(db, org, req, defs.as_deref(), "", true)?);
        groups.push(" GROUP BY v ORDER BY n DESC, v LIMIT ").param(SqlParam::Int(i64::from(top)));
        let rows = self.search_rows(org, &groups).await?;
        let groups: Vec<(Option<String>, u64)> =
            rows.iter().map(|r| (r.get::<Option<String>, _>(0), r.get::<i64, _>(1).max(0) as u64)).collect();
        let shown: u64 = groups.iter().map(|g| g.1).sum();
        // Fewer groups than asked: they hold every entity, no second statement needed.
        let total = if (groups.len() as u32) < top {
            shown
        } else {
            let count = filter(db, org, req, defs.as_deref(), "SELECT COUNT(*)", true)?;
            let rows = self.search_rows(org, &count).await?;
            rows.first().map_or(0, |r| r.get::<i64, _>(0).max(0) as u64)
        };
        Ok(Breakdown { groups, total })
    }

    async fn aggregate(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
        property: &str,
        func: Aggregate,
    ) -> Result<Option<f64>> {
        let db = &self.db;
        if db.refuses(property) {
            return Err(refused("property"));
        }
        let defs = self.scorecard_defs(org, req).await?;
        let name = match func {
            Aggregate::Sum => "SUM(",
            Aggregate::Average => "AVG(",
            Aggregate::Min => "MIN(",
            Aggregate::Max => "MAX(",
        };
        let mut q = SqlFrag::new("SELECT ");
        q.push(name).append(value_number(db.dialect(), property)).push(")");
        q.append(filter(db, org, req, defs.as_deref(), "", true)?);
        let rows = self.search_rows(org, &q).await?;
        Ok(rows.first().and_then(|r| r.get::<Option<f64>, _>(0)))
    }

    async fn level_counts(&self, org: &OrgId, bp: &str, scorecard: &str) -> Result<Vec<(String, u64)>> {
        let db = &self.db;
        let rows = db
            .q("SELECT level, COUNT(*) AS n FROM scorecard_results WHERE org_id = ? AND blueprint = ? \
                AND scorecard = ? GROUP BY level ORDER BY n DESC, level LIMIT ?")
            .bind(&org.0)
            .bind(db.storable(bp))
            .bind(db.storable(scorecard))
            .bind(i64::from(MAX_GROUPS))
            .fetch_all(db.read())
            .await?;
        Ok(rows.iter().map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1).max(0) as u64)).collect())
    }
}
