//! Widgets (port-api.md §9): the bounded aggregate reads dashboards render — counts grouped by
//! a value (pie charts, the home page's catalog counts), one aggregate of a number property
//! (number charts) and the entities of a scorecard per level. Every statement is one `COUNT` /
//! aggregate over the entities a search selects (the search compiler's filter, within the
//! search gate and query budget), with a `LIMIT` on its groups; no widget reads a table whole.

use async_trait::async_trait;

use portolan_core::search::Query;

use crate::db::Row;
use crate::entities::{condition, filter, filter_through};
use crate::sql::{Dialect, SqlFrag, SqlParam, json_key_path};
use crate::{OrgId, Result, SearchRequest, SqlStore, StoreError};

/// Most groups [`Widgets::count_by`] answers (Port's pie charts show at most 14 slices).
pub const MAX_GROUPS: u32 = 100;

/// Most value combinations one [`Widgets::measure`] statement may group by; beyond them (pie
/// charts by properties of many values each) it reads each measure by itself.
pub const MAX_COMBINATIONS: usize = 10_000;

/// One figure [`Widgets::measure`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure<'q> {
    /// The entities counted ([`crate::Entities::count_entities`]).
    Count,
    /// `func` of a number property ([`Widgets::aggregate`]).
    Aggregate { property: &'q str, func: Aggregate },
    /// The entities counted by a value, the `top` largest groups ([`Widgets::count_by`]).
    CountBy { field: &'q str, top: u32 },
}

/// What a [`Measure`] read.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    Count(u64),
    Aggregate(Option<f64>),
    Breakdown(Breakdown),
}

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
    /// Several figures over the entities `req` selects (its blueprint and read restriction; its
    /// query is not read), each over those of them its own query selects, read in one pass over
    /// the entities: a dashboard's number and pie widgets over one blueprint cost one scan
    /// between them, not one each. Each answer is what [`crate::Entities::count_entities`],
    /// [`Widgets::aggregate`] or [`Widgets::count_by`] gives for a request whose query is the
    /// measure's (sums may differ in the last digits: the order of additions differs). A
    /// measure whose query or property is wrong gets its own error; the others are read.
    /// Without a blueprint in `req`, each measure is read by a statement of its own (its query
    /// may name the blueprints it reads, which only its own statement can narrow the scan to).
    async fn measure(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
        measures: &[(Option<&Query>, Measure<'_>)],
    ) -> Result<Vec<Result<Measured>>>;
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

    async fn measure(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
        measures: &[(Option<&Query>, Measure<'_>)],
    ) -> Result<Vec<Result<Measured>>> {
        self.measure_within(org, req, measures, MAX_COMBINATIONS).await
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

impl SqlStore {
    /// [`Widgets::measure`], reading each measure by itself when the grouped values have more
    /// than `max_combinations` combinations.
    async fn measure_within(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
        measures: &[(Option<&Query>, Measure<'_>)],
        max_combinations: usize,
    ) -> Result<Vec<Result<Measured>>> {
        let db = &self.db;
        let base = SearchRequest { query: None, ..*req };
        if base.blueprint.is_none() {
            // No blueprint: each measure's query may name the blueprints it reads (a widget's
            // `dataset`), which only a statement of its own can use to narrow the scan.
            let mut out = Vec::with_capacity(measures.len());
            for (query, m) in measures {
                out.push(self.measure_one(org, &SearchRequest { query: *query, ..base }, *m).await);
            }
            return Ok(out);
        }
        let needed = measures.iter().any(|(q, _)| q.is_some_and(Query::uses_scorecards));
        let defs = self.scorecard_defs_if(org, needed).await?;
        let mut plan = Plan::new(db, org, &base, defs.as_deref(), measures);
        let mut out = std::mem::take(&mut plan.errors);
        if plan.columns.is_empty() {
            return Ok(finish(out));
        }
        let parts = self.scan_parts(org).await?;
        // A range of row ids is read through the blueprint's index entries, each row in the
        // range read: SQLite would otherwise walk the organization's rows in the range
        // (`entities_org_rid`), every blueprint's, however few are this one's. (PostgreSQL
        // splits by share, and has `entities_blueprint_rid` for both at once.)
        let ranged = parts.iter().any(|p| matches!(p, Part::Range(..)));
        let index = ranged.then_some("entities_key");
        let from = filter_through(db, org, &base, defs.as_deref(), "", true, index)?;
        // Each part on its own connection; dropping this future aborts them (and the progress
        // handler then ends their statements).
        let mut set = tokio::task::JoinSet::new();
        for part in parts {
            let (store, org, q) =
                (self.clone(), org.clone(), plan.statement(db.dialect(), &from, part, max_combinations));
            set.spawn(async move { store.search_rows(&org, &q).await });
        }
        let (mut rows, mut over) = (Vec::new(), false);
        while let Some(done) = set.join_next().await {
            let part = done.map_err(|e| StoreError::Db(format!("a widget scan task failed: {e}").into()))??;
            over |= part.len() > max_combinations;
            rows.extend(part);
        }
        if over {
            // Too many combinations of the grouped values: each measure by itself.
            for (i, (query, m)) in measures.iter().enumerate() {
                if out[i].is_none() {
                    let one = SearchRequest { query: *query, ..base };
                    out[i] = Some(self.measure_one(org, &one, *m).await);
                }
            }
        } else {
            for c in &plan.columns {
                out[c.measure] = Some(Ok(c.read(&rows, &plan.keys)));
            }
        }
        Ok(finish(out))
    }
}

/// The entities one statement of a split scan reads.
#[derive(Debug, Clone, Copy)]
enum Part {
    All,
    /// Row ids from .0 to .1 (SQLite).
    Range(i64, i64),
    /// Rows whose id is `k` modulo `of` (PostgreSQL).
    Share {
        of: i64,
        k: i64,
    },
}

/// Every measure has an answer or an error by then; one without would be a bug here, said as
/// an error rather than shown as a zero.
fn finish(out: Vec<Option<Result<Measured>>>) -> Vec<Result<Measured>> {
    out.into_iter().map(|r| r.unwrap_or_else(|| Err(StoreError::Db("this figure was not read".into())))).collect()
}

/// Fewest entities (by row id span) a [`Widgets::measure`] scan gives to one more connection.
pub const SCAN_PART_ROWS: u64 = 20_000;

impl SqlStore {
    /// The row id ranges a scan of the organization's entities is split into, one statement
    /// each on its own connection (a blueprint of 95,000 entities is read by two cores in
    /// about half the time); one unbounded range when the organization's row ids span fewer
    /// than two parts or the machine has one core. The bounds are the organization's (two
    /// index probes), not the blueprint's, whose minimum and maximum SQLite would have to
    /// find by walking the blueprint's index entries.
    async fn scan_parts(&self, org: &OrgId) -> Result<Vec<Part>> {
        // Read once: on Linux each call reads the cgroup's CPU quota from files.
        static CORES: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4) as u64);
        let min = self.scan_part_rows.load(std::sync::atomic::Ordering::Relaxed).max(1);
        if cores == 1 {
            return Ok(vec![Part::All]);
        }
        if self.db.dialect() == Dialect::Postgres {
            // PostgreSQL reads a blueprint's rows whole faster than by row id ranges (an index
            // scan with heap fetches): each part reads them all and evaluates its share.
            return Ok((0..cores as i64).map(|k| Part::Share { of: cores as i64, k }).collect());
        }
        // Two subqueries: SQLite answers a lone MIN or MAX from the index's ends, but walks
        // every entry for both in one select.
        let mut q = SqlFrag::new("SELECT (SELECT MIN(rid) FROM entities WHERE org_id = ");
        q.param(SqlParam::Text(org.0.clone()));
        q.push("), (SELECT MAX(rid) FROM entities WHERE org_id = ").param(SqlParam::Text(org.0.clone())).push(")");
        let rows = self.search_rows(org, &q).await?;
        let (Some(lo), Some(hi)) =
            rows.first().map_or((None, None), |r| (r.get::<Option<i64>, _>(0), r.get::<Option<i64>, _>(1)))
        else {
            return Ok(vec![Part::All]);
        };
        let span = u64::try_from(hi - lo).unwrap_or(0) + 1;
        let n = (span / min).clamp(1, cores);
        if n == 1 {
            return Ok(vec![Part::All]);
        }
        let step = (span / n) as i64;
        Ok((0..n as i64)
            .map(|k| Part::Range(lo + k * step, if k + 1 == n as i64 { hi } else { lo + (k + 1) * step - 1 }))
            .collect())
    }

    /// One measure by its own statement (the fallback of [`Widgets::measure`]).
    async fn measure_one(&self, org: &OrgId, req: &SearchRequest<'_>, m: Measure<'_>) -> Result<Measured> {
        use crate::Entities;
        Ok(match m {
            Measure::Count => Measured::Count(self.count_entities(org, req).await?),
            Measure::Aggregate { property, func } => {
                Measured::Aggregate(self.aggregate(org, req, property, func).await?)
            }
            Measure::CountBy { field, top } => Measured::Breakdown(self.count_by(org, req, field, top).await?),
        })
    }
}

/// The statement of [`Widgets::measure`]: the entities' values read once in an inner select
/// (each measure's query a `CASE WHEN` column, so every measure reads the same rows), grouped
/// outside it by the fields counted by:
/// `SELECT g0, …, COUNT(*), SUM(c0), … FROM (SELECT <value> AS g0, …, <column> AS c0, … FROM
/// entities e WHERE …) GROUP BY g0, …`. The inner select is fenced (`LIMIT -1` / `OFFSET 0`) so
/// the database does not flatten it: SQLite would otherwise keep each row's JSON through the
/// grouping sort and parse it again for the aggregates.
struct Plan<'q> {
    /// Fields grouped by (`g0`, `g1`, …), and whether the value is JSON text to decode.
    keys: Vec<(&'q str, bool)>,
    key_sql: Vec<SqlFrag>,
    /// Inner columns `c0`, `c1`, … and the aggregates over them.
    inner: Vec<SqlFrag>,
    outer: Vec<SqlFrag>,
    columns: Vec<Column>,
    /// Per measure: its error, when it has one (and no column).
    errors: Vec<Option<Result<Measured>>>,
}

/// Where one measure's figure is in the rows, and how groups add up.
struct Column {
    measure: usize,
    /// Its first column after the keys (0 is `COUNT(*)`).
    at: usize,
    kind: ColumnKind,
}

enum ColumnKind {
    /// Its count, summed over the groups.
    Count,
    /// Its count per value of key `key`.
    CountBy { key: usize, top: u32 },
    /// SUM (one column), AVG (sum and count), MIN, MAX.
    Aggregate(Aggregate),
}

impl<'q> Plan<'q> {
    fn new(
        db: &crate::db::Db,
        org: &OrgId,
        base: &SearchRequest<'_>,
        defs: Option<&[crate::query::ScorecardDef]>,
        measures: &[(Option<&Query>, Measure<'q>)],
    ) -> Plan<'q> {
        let d = db.dialect();
        let mut plan = Plan {
            keys: Vec::new(),
            key_sql: Vec::new(),
            inner: Vec::new(),
            outer: Vec::new(),
            columns: Vec::new(),
            errors: measures.iter().map(|_| None).collect(),
        };
        for (i, (query, m)) in measures.iter().enumerate() {
            let cond = match query.map(|q| condition(db, org, base, defs, q, true)).transpose() {
                Ok(c) => c,
                Err(e) => {
                    plan.errors[i] = Some(Err(e));
                    continue;
                }
            };
            let named = match m {
                Measure::Count => None,
                Measure::Aggregate { property, .. } => Some(*property),
                Measure::CountBy { field, .. } => Some(*field),
            };
            if named.is_some_and(|n| db.refuses(n)) {
                plan.errors[i] = Some(Err(refused("property")));
                continue;
            }
            let (at, kind) = match *m {
                Measure::Count => (plan.counted(cond), ColumnKind::Count),
                Measure::CountBy { field, top } => {
                    let key = plan.key(d, field);
                    (plan.counted(cond), ColumnKind::CountBy { key, top: top.clamp(1, MAX_GROUPS) })
                }
                Measure::Aggregate { property, func } => {
                    let value = match d {
                        // The value as JSON text: one JSON call per row (the number test is on
                        // the text, outside).
                        Dialect::Sqlite => {
                            let mut f = SqlFrag::new("e.properties -> ");
                            f.param(SqlParam::Text(json_key_path(property)));
                            f
                        }
                        Dialect::Postgres => value_number(d, property),
                    };
                    let c = plan.inner_column(match cond {
                        None => value,
                        Some(c) => {
                            let mut f = SqlFrag::new("CASE WHEN (");
                            f.append(c).push(") THEN ").append(value).push(" END");
                            f
                        }
                    });
                    let number = || {
                        let mut f = SqlFrag::new("");
                        match d {
                            Dialect::Sqlite => {
                                f.push("CASE WHEN ").name("c", c).push(" GLOB '[-0-9]*' THEN CAST(");
                                f.name("c", c).push(" AS REAL) END");
                            }
                            Dialect::Postgres => {
                                f.name("c", c);
                            }
                        }
                        f
                    };
                    let agg = |name: &str| {
                        let mut f = SqlFrag::new(name);
                        f.append(number()).push(")");
                        f
                    };
                    let at = plan.outer.len() + 1;
                    match func {
                        Aggregate::Sum => plan.outer.push(agg("SUM(")),
                        Aggregate::Average => {
                            plan.outer.push(agg("SUM("));
                            plan.outer.push(agg("COUNT("));
                        }
                        Aggregate::Min => plan.outer.push(agg("MIN(")),
                        Aggregate::Max => plan.outer.push(agg("MAX(")),
                    }
                    (at, ColumnKind::Aggregate(func))
                }
            };
            plan.columns.push(Column { measure: i, at, kind });
        }
        plan
    }

    /// Key of `field` (its index), added if new.
    fn key(&mut self, d: Dialect, field: &'q str) -> usize {
        if let Some(k) = self.keys.iter().position(|(f, _)| *f == field) {
            return k;
        }
        let (sql, json) = match (d, field) {
            (_, "$blueprint") => (SqlFrag::new("e.blueprint"), false),
            (Dialect::Sqlite, _) => {
                let mut f = SqlFrag::new("e.properties -> ");
                f.param(SqlParam::Text(json_key_path(field)));
                (f, true)
            }
            (Dialect::Postgres, _) => (value_text(d, field), false),
        };
        self.keys.push((field, json));
        self.key_sql.push(sql);
        self.keys.len() - 1
    }

    fn inner_column(&mut self, sql: SqlFrag) -> usize {
        self.inner.push(sql);
        self.inner.len() - 1
    }

    /// The column counting a measure's entities: `COUNT(*)` (0) without a query, else the sum
    /// of a column that is 1 where its query holds.
    fn counted(&mut self, cond: Option<SqlFrag>) -> usize {
        let Some(cond) = cond else { return 0 };
        let mut f = SqlFrag::new("CASE WHEN (");
        f.append(cond).push(") THEN 1 ELSE 0 END");
        let c = self.inner_column(f);
        let mut sum = SqlFrag::new("SUM(");
        sum.name("c", c).push(")");
        self.outer.push(sum);
        self.outer.len()
    }

    /// The statement over the entities `from` selects (` FROM entities e WHERE …`) in `part`, returning at most one group more than `max_combinations`.
    fn statement(&self, d: Dialect, from: &SqlFrag, part: Part, max_combinations: usize) -> SqlFrag {
        let mut rows = from.clone();
        if let Part::Share { of, k } = part {
            rows.push(" AND e.rid % ").param(SqlParam::Int(of)).push(" = ").param(SqlParam::Int(k));
        }
        if let Part::Range(lo, hi) = part {
            rows.push(" AND e.rid BETWEEN ").param(SqlParam::Int(lo)).push(" AND ").param(SqlParam::Int(hi));
        }
        if self.keys.is_empty() && self.inner.is_empty() {
            // A count alone: no values to read (an index may answer it).
            let mut q = SqlFrag::new("SELECT COUNT(*)");
            q.append(rows);
            return q;
        }
        let mut inner = SqlFrag::new("SELECT 1 AS one");
        for (k, sql) in self.key_sql.iter().enumerate() {
            inner.push(", ").append(sql.clone()).push(" AS ").name("g", k);
        }
        for (c, sql) in self.inner.iter().enumerate() {
            inner.push(", ").append(sql.clone()).push(" AS ").name("c", c);
        }
        inner.append(rows).push(match d {
            Dialect::Sqlite => " LIMIT -1",
            Dialect::Postgres => " OFFSET 0",
        });
        let mut q = SqlFrag::new("SELECT ");
        for k in 0..self.keys.len() {
            q.name("g", k).push(", ");
        }
        q.push("COUNT(*)");
        for sql in &self.outer {
            q.push(", ").append(sql.clone());
        }
        q.push(" FROM (").append(inner).push(") m");
        if !self.keys.is_empty() {
            q.push(" GROUP BY ");
            for k in 0..self.keys.len() {
                q.push(if k == 0 { "" } else { ", " }).name("g", k);
            }
        }
        q.push(" LIMIT ").param(SqlParam::Int(i64::try_from(max_combinations).unwrap_or(i64::MAX - 1) + 1));
        q
    }
}

/// A grouped value as [`Widgets::count_by`] writes it: JSON text decoded (strings unquoted,
/// JSON `null` as none).
fn key_text(raw: Option<String>, json: bool) -> Option<String> {
    let raw = raw?;
    if !json {
        return Some(raw);
    }
    match raw.as_bytes().first() {
        Some(b'"') => Some(serde_json::from_str::<String>(&raw).unwrap_or(raw)),
        _ if raw == "null" => None,
        _ => Some(raw),
    }
}

impl Column {
    /// The measure's figure from the rows of every part (the keys' columns first).
    fn read(&self, rows: &[Row], keys: &[(&str, bool)]) -> Measured {
        let col = keys.len() + self.at;
        let count = |r: &Row| r.get::<Option<i64>, _>(col).unwrap_or(0).max(0) as u64;
        match self.kind {
            ColumnKind::Count => Measured::Count(rows.iter().map(count).sum()),
            ColumnKind::CountBy { key, top } => {
                let mut by: std::collections::HashMap<Option<String>, u64> = Default::default();
                for r in rows {
                    let n = count(r);
                    if n > 0 {
                        *by.entry(key_text(r.get::<Option<String>, _>(key), keys[key].1)).or_default() += n;
                    }
                }
                let total = by.values().sum();
                let mut groups: Vec<(Option<String>, u64)> = by.into_iter().collect();
                // Most first; ties by value, no value last.
                groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| (a.0.is_none(), &a.0).cmp(&(b.0.is_none(), &b.0))));
                groups.truncate(top as usize);
                Measured::Breakdown(Breakdown { groups, total })
            }
            ColumnKind::Aggregate(func) => {
                let values = rows.iter().filter_map(|r| r.get::<Option<f64>, _>(col));
                Measured::Aggregate(match func {
                    Aggregate::Sum => values.reduce(|a, b| a + b),
                    Aggregate::Min => values.reduce(f64::min),
                    Aggregate::Max => values.reduce(f64::max),
                    Aggregate::Average => {
                        let n: i64 = rows.iter().map(|r| r.get::<Option<i64>, _>(col + 1).unwrap_or(0)).sum();
                        values.reduce(|a, b| a + b).filter(|_| n > 0).map(|s| s / n as f64)
                    }
                })
            }
        }
    }
}

#[cfg(all(test, feature = "conformance"))]
mod tests {
    use super::*;
    use crate::conformance::{entity, model, org, req, write_ok};
    use serde_json::json;

    /// Pie charts by properties of many values: more combinations than the statement may
    /// return, so each measure is read by itself, with the same answers.
    #[tokio::test]
    async fn too_many_combinations_read_each_measure_by_itself() {
        let s = SqlStore::in_memory().await.unwrap();
        let a = org(&s, "a").await;
        let m = model(&s, &a).await;
        write_ok(&s, &a, &m, vec![entity("team", "t", json!({}), json!({}))]).await;
        let svcs = (0..12)
            .map(|i| {
                entity("service", &format!("s{i}"), json!({"lang": format!("l{i}"), "cpu": i}), json!({"team": "t"}))
            })
            .collect();
        write_ok(&s, &a, &m, svcs).await;
        let all = req(Some("service"), None, &m);
        let ms = [
            (None, Measure::CountBy { field: "lang", top: 3 }),
            (None, Measure::CountBy { field: "cpu", top: 100 }),
            (None, Measure::Aggregate { property: "cpu", func: Aggregate::Sum }),
        ];
        let by_lang = s.count_by(&a, &all, "lang", 3).await.unwrap();
        let by_cpu = s.count_by(&a, &all, "cpu", 100).await.unwrap();
        for cap in [5, MAX_COMBINATIONS] {
            let got = s.measure_within(&a, &all, &ms, cap).await.unwrap();
            let got: Vec<Measured> = got.into_iter().map(Result::unwrap).collect();
            assert_eq!(got[0], Measured::Breakdown(by_lang.clone()), "cap {cap}");
            let Measured::Breakdown(cpu) = &got[1] else { panic!("{got:?}") };
            assert_eq!((cpu.groups.len(), cpu.total), (by_cpu.groups.len(), by_cpu.total), "cap {cap}");
            assert_eq!(got[2], Measured::Aggregate(Some(66.0)), "cap {cap}");
        }
    }
}
