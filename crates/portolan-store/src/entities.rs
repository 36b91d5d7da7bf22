//! Entities: reads, batched writes, deletes, searches.

use async_trait::async_trait;
use std::collections::HashMap;

use portolan_core::search::Query;
use portolan_core::{Blueprint, Entity, FieldErrors};

use serde_json::{Map, Value};

use crate::db::{Db, Row};
use crate::query::{CompileCtx, ScorecardDef, compile_where_in};
use crate::sql::{Dialect, SqlFrag, SqlParam, json_key_path};
use crate::{AuditCtx, OrgId, Result, SqlStore, StoreError};

mod delete;
mod group;
mod team_count;
mod write;

pub(crate) use group::Groups;
pub use group::WriteGroupUse;
pub use team_count::count_sql as team_count_sql;
pub use team_count::walk_sql as team_walk_sql;
pub(crate) use team_count::{Admits, admits};

pub(crate) use delete::delete_in;
pub(crate) use write::{OrgWrites, Sequential, get_in_tx, save};
pub use write::{write_path_lookup_key, write_path_lookups};

/// A relation edge of an entity: (relation, target blueprint, target identifier, required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelTarget {
    pub relation: String,
    pub target_blueprint: String,
    pub target_identifier: String,
    pub required: bool,
}

/// Why one entity of a write was not written.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteRejection {
    /// Creating an entity that exists.
    Conflict(String),
    /// Updating an entity that does not exist.
    NotFound(String),
    /// The composed entity breaks the blueprint.
    Invalid(FieldErrors),
    /// A relation points at an entity that does not exist (and stubs were not asked for).
    MissingTarget { relation: String, blueprint: String, identifier: String },
    /// The writer's permissions do not allow it (decided on the stored entity, in the write's
    /// transaction).
    Forbidden(String),
}

/// Computes the entity to store from the stored one (or `None`), inside the write transaction,
/// so read-modify-write is atomic. Returns the entity and the relation edges it has.
pub type BuildEntity = Box<dyn FnOnce(Option<&Entity>) -> Result<(Entity, Vec<RelTarget>), WriteRejection> + Send>;

pub struct EntityWrite {
    pub blueprint: String,
    pub identifier: String,
    pub build: BuildEntity,
    /// Create a stub entity for each missing relation target instead of rejecting.
    pub create_missing_related: bool,
}

/// What a successful entity write did.
#[derive(Debug, Clone)]
pub struct Written {
    pub entity: Entity,
    pub created: bool,
}

/// A page request over entities.
#[derive(Debug, Clone)]
pub struct SearchRequest<'a> {
    /// Restrict to one blueprint (`POST /v1/blueprints/{bp}/entities/search`).
    pub blueprint: Option<&'a str>,
    pub query: Option<&'a Query>,
    /// Blueprints of the organization, for the query compiler.
    pub blueprints: &'a HashMap<String, Blueprint>,
    /// Cursor: return entities after this position.
    pub after: Option<i64>,
    pub limit: u32,
    pub now: chrono::DateTime<chrono::Utc>,
    /// What the reader may see (its read permissions), AND-ed with `query`; compiled apart
    /// from it, so errors in `query` keep their paths.
    pub visible: Option<&'a Query>,
}

impl<'a> SearchRequest<'a> {
    /// A first page (no cursor) evaluated at the current time.
    pub fn new(
        blueprints: &'a HashMap<String, Blueprint>,
        blueprint: Option<&'a str>,
        query: Option<&'a Query>,
        limit: u32,
    ) -> Self {
        SearchRequest { blueprint, query, blueprints, after: None, limit, now: chrono::Utc::now(), visible: None }
    }
}

#[derive(Debug, Clone)]
pub struct Page {
    pub entities: Vec<Entity>,
    /// Position to pass as `after` for the next page; `None` on the last page.
    pub next: Option<i64>,
}

/// A page of [`Entities::search_sorted`].
#[derive(Debug, Clone)]
pub struct SortedPage {
    pub entities: Vec<Entity>,
    /// More entities follow this page.
    pub more: bool,
}

/// `ORDER BY` keys for the property `name` in the direction `dir` (see `search_sorted`).
fn property_order(q: &mut SqlFrag, dialect: Dialect, name: &str, dir: &str) {
    let key = || SqlParam::Text(name.to_string());
    match dialect {
        Dialect::Sqlite => {
            let path = || SqlParam::Text(json_key_path(name));
            q.push("CASE json_type(e.properties, ").param(path());
            q.push(") WHEN 'integer' THEN 0 WHEN 'real' THEN 0 WHEN 'text' THEN 1 WHEN 'true' THEN 2 ");
            q.push("WHEN 'false' THEN 2 WHEN 'array' THEN 3 WHEN 'object' THEN 4 END").push(dir);
            // Numbers numerically, text in BINARY (code point) order, booleans as 0/1.
            q.push(", json_extract(e.properties, ").param(path()).push(")").push(dir);
        }
        Dialect::Postgres => {
            q.push("CASE jsonb_typeof(e.properties -> ").param(key());
            q.push(") WHEN 'number' THEN 0 WHEN 'string' THEN 1 WHEN 'boolean' THEN 2 WHEN 'array' THEN 3 ");
            q.push("WHEN 'object' THEN 4 END").push(dir);
            // jsonb's own order for numbers and booleans; strings by code point (`COLLATE "C"`,
            // as SQLite's BINARY), not by the database's collation.
            q.push(", CASE WHEN jsonb_typeof(e.properties -> ").param(key());
            q.push(") NOT IN ('string', 'null') THEN e.properties -> ").param(key()).push(" END").push(dir);
            q.push(", CASE WHEN jsonb_typeof(e.properties -> ").param(key());
            q.push(") = 'string' THEN e.properties ->> ").param(key()).push(" END COLLATE \"C\"").push(dir);
        }
    }
}

/// Is `name` an aggregation property of the searched blueprint (of any, when the search is
/// not limited to one)?
fn is_aggregation(req: &SearchRequest<'_>, name: &str) -> bool {
    match req.blueprint {
        Some(bp) => req.blueprints.get(bp).is_some_and(|b| b.aggregation_properties.contains_key(name)),
        None => req.blueprints.values().any(|b| b.aggregation_properties.contains_key(name)),
    }
}

/// The column a meta sort key orders by (`None`: a property, ordered by its JSON value).
pub(crate) fn sort_column(sort: &str) -> Option<&'static str> {
    match sort {
        "$identifier" => Some("e.identifier"),
        "$title" => Some("e.title"),
        "$createdAt" => Some("e.created_at"),
        "$updatedAt" => Some("e.updated_at"),
        _ => None,
    }
}

#[async_trait]
pub trait Entities: Send + Sync {
    async fn get_entity(&self, org: &OrgId, bp: &str, id: &str) -> Result<Option<Entity>>;
    /// Entities of one blueprint by identifier (missing ones are left out).
    async fn get_entities(&self, org: &OrgId, bp: &str, ids: &[String]) -> Result<Vec<Entity>>;
    /// Apply writes in one transaction; each write succeeds or is rejected on its own.
    async fn write_entities(
        &self,
        org: &OrgId,
        writes: Vec<EntityWrite>,
        ctx: &AuditCtx,
    ) -> Result<Vec<Result<Written, WriteRejection>>>;
    /// Delete entities of one blueprint. Non-required relations pointing at them become null;
    /// required ones block the delete unless `cascade`. All or nothing. Returns what was deleted.
    async fn delete_entities(
        &self,
        org: &OrgId,
        bp: &str,
        ids: &[String],
        cascade: bool,
        ctx: &AuditCtx,
    ) -> Result<Vec<(String, String)>>;
    async fn count_entities(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<u64>;
    async fn search(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<Page>;
    /// A page of `req` (its filter and `limit`; not its cursor) ordered by `sort` — `$identifier`,
    /// `$title`, `$createdAt`, `$updatedAt`, a stored property's identifier (numbers, then
    /// strings by code point, then booleans, arrays and objects; JSON `null` and missing values
    /// last; ties by position; the same order on both databases) or an aggregation property's
    /// (its computed value; none last) — after skipping `offset`
    /// entities. The web UI's sorted catalog views page this way.
    async fn search_sorted(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
        sort: &str,
        descending: bool,
        offset: u64,
    ) -> Result<SortedPage>;
}

/// The columns [`from_row`] reads; JSON columns as text.
pub(crate) const COLUMNS: &str = "e.rid, e.blueprint, e.identifier, e.title, e.icon, CAST(e.team AS TEXT) AS team, \
     CAST(e.properties AS TEXT) AS properties, CAST(e.relations AS TEXT) AS relations, e.created_at, e.created_by, \
     e.updated_at, e.updated_by, e.datasource";

/// An entity row read with [`COLUMNS`]: its row id and the entity.
pub(crate) fn from_row(r: &Row) -> (i64, Entity) {
    (
        r.get("rid"),
        Entity {
            identifier: r.get("identifier"),
            title: r.get("title"),
            icon: r.get("icon"),
            blueprint: r.get("blueprint"),
            team: r.json("team"),
            properties: r.json::<Map<String, Value>, _>("properties"),
            relations: r.json::<Map<String, Value>, _>("relations"),
            created_at: r.get("created_at"),
            created_by: r.get("created_by"),
            updated_at: r.get("updated_at"),
            updated_by: r.get("updated_by"),
            datasource: r.get("datasource"),
        },
    )
}

/// `select` over the entities `req` selects (its blueprint and query; not its cursor).
/// `scorecards`: the organization's, when the query has scorecard rules.
pub(crate) fn filter(
    db: &Db,
    org: &OrgId,
    req: &SearchRequest<'_>,
    scorecards: Option<&[ScorecardDef]>,
    select: &str,
    whole_set: bool,
) -> Result<SqlFrag> {
    filter_through(db, org, req, scorecards, select, whole_set, None)
}

/// [`filter`], reading the entities through the index `index` on SQLite (`INDEXED BY`: the
/// statement fails rather than read another way if the index is gone); PostgreSQL, which has
/// no such clause, plans as it sees fit.
pub(crate) fn filter_through(
    db: &Db,
    org: &OrgId,
    req: &SearchRequest<'_>,
    scorecards: Option<&[ScorecardDef]>,
    select: &str,
    whole_set: bool,
    index: Option<&'static str>,
) -> Result<SqlFrag> {
    let mut q = SqlFrag::new(select);
    q.push(" FROM entities e");
    if let Some(index) = index.filter(|_| db.dialect() == Dialect::Sqlite) {
        q.push(" INDEXED BY ").push(index);
    }
    q.push(" WHERE e.org_id = ").param(SqlParam::Text(org.0.clone()));
    if let Some(bp) = req.blueprint {
        if db.refuses(bp) {
            q.push(" AND FALSE"); // no blueprint identifier has one (nor can PostgreSQL bind it)
            return Ok(q);
        }
        q.push(" AND e.blueprint = ").param(SqlParam::Text(bp.to_string()));
    }
    if let Some(visible) = req.visible {
        let frag =
            compile_ctx(db, org, req, scorecards, whole_set, |ctx| compile_where_in(visible, ctx, req.blueprint))
                .map_err(StoreError::Invalid)?;
        q.push(" AND (").append(frag).push(")");
    }
    if let Some(query) = req.query {
        q.push(" AND (").append(condition(db, org, req, scorecards, query, whole_set)?).push(")");
    }
    Ok(q)
}

/// `query` compiled as a condition on the entity row `e`, for the entities of `req`'s blueprint
/// (`req.query` itself is not read).
pub(crate) fn condition(
    db: &Db,
    org: &OrgId,
    req: &SearchRequest<'_>,
    scorecards: Option<&[ScorecardDef]>,
    query: &Query,
    whole_set: bool,
) -> Result<SqlFrag> {
    let frag = compile_ctx(db, org, req, scorecards, whole_set, |ctx| compile_where_in(query, ctx, req.blueprint))
        .map_err(StoreError::Invalid)?;
    // PostgreSQL cannot bind text holding a NUL character: a query value with one is refused
    // (SQLite compares it like any other text).
    if frag.texts().any(|t| db.refuses(t)) {
        return Err(StoreError::Invalid(portolan_core::FieldError::new(
            "query",
            "a value contains the NUL character (U+0000), which this server's database (PostgreSQL) cannot compare",
        )));
    }
    Ok(frag)
}

fn compile_ctx<T>(
    db: &Db,
    org: &OrgId,
    req: &SearchRequest<'_>,
    scorecards: Option<&[ScorecardDef]>,
    whole_set: bool,
    f: impl FnOnce(&CompileCtx<'_>) -> T,
) -> T {
    f(&CompileCtx {
        org_id: &org.0,
        now: req.now,
        blueprints: req.blueprints,
        dialect: db.dialect(),
        scorecards: Some(scorecards.unwrap_or_default()),
        team_rows: whole_set,
        reader: req.visible,
    })
}

#[async_trait]
impl Entities for SqlStore {
    async fn get_entity(&self, org: &OrgId, bp: &str, id: &str) -> Result<Option<Entity>> {
        let db = &self.db;
        if db.refuses(bp) || db.refuses(id) {
            return Ok(None);
        }
        let sql =
            format!("SELECT {COLUMNS} FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.identifier = ?");
        let row = db.q(&sql).bind(&org.0).bind(bp).bind(id).fetch_optional(db.read()).await?;
        Ok(row.map(|r| from_row(&r).1))
    }

    async fn get_entities(&self, org: &OrgId, bp: &str, ids: &[String]) -> Result<Vec<Entity>> {
        let db = &self.db;
        if db.refuses(bp) {
            return Ok(Vec::new());
        }
        let ids: Vec<&String> = ids.iter().filter(|id| !db.refuses(id)).collect();
        let mut out = Vec::with_capacity(ids.len());
        let sql = format!(
            "SELECT {COLUMNS} FROM entities e WHERE e.org_id = ? AND e.blueprint = ? AND e.identifier{}",
            db.dialect().any_of()
        );
        let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        for chunk in ids.chunks(500) {
            let rows = db.q(&sql).bind(&org.0).bind(bp).bind_texts(chunk).fetch_all(db.read()).await?;
            out.extend(rows.iter().map(|r| from_row(r).1));
        }
        Ok(out)
    }

    async fn write_entities(
        &self,
        org: &OrgId,
        writes: Vec<EntityWrite>,
        ctx: &AuditCtx,
    ) -> Result<Vec<Result<Written, WriteRejection>>> {
        self.writes.write(&self.db, org, writes, ctx).await
    }

    async fn delete_entities(
        &self,
        org: &OrgId,
        bp: &str,
        ids: &[String],
        cascade: bool,
        ctx: &AuditCtx,
    ) -> Result<Vec<(String, String)>> {
        delete::delete(&self.db, org, bp, ids, cascade, ctx).await
    }

    async fn count_entities(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<u64> {
        // A team-scoped reader's count of one blueprint, no other filter: the teams' rows alone.
        if let (Some(bp), Some(visible), None) = (req.blueprint, req.visible, req.query)
            && let Some(admits) = team_count::admits(visible, bp)
        {
            let refused = |t: &str| self.db.refuses(t);
            match admits {
                team_count::Admits::Nothing => return Ok(0),
                team_count::Admits::Teams(t) if t.is_empty() => return Ok(0),
                team_count::Admits::Teams(t) if !refused(bp) && !t.iter().any(|x| refused(x)) => {
                    let rows = self.search_rows(org, &team_count::count_sql(self.db.dialect(), &org.0, bp, &t)).await?;
                    return Ok(rows.first().map_or(0, |row| row.get::<i64, _>(0) as u64));
                }
                _ => {}
            }
        }
        let defs = self.scorecard_defs(org, req).await?;
        let q = filter(&self.db, org, req, defs.as_deref(), "SELECT COUNT(*)", true)?;
        let rows = self.search_rows(org, &q).await?;
        Ok(rows.first().map_or(0, |row| row.get::<i64, _>(0) as u64))
    }

    async fn search(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<Page> {
        let defs = self.scorecard_defs(org, req).await?;
        let select = format!("SELECT {COLUMNS}");
        // A reader in one team: walk that team's key range of entity_teams in row order (a page
        // stops at its limit after reading the team's entities only), else every row of the
        // blueprint is read and its teams tested.
        let (mut q, order) = match team_count::one_team(&self.db, req) {
            Some((bp, team)) => {
                let mut q = team_count::walk_sql(self.db.dialect(), &select, &org.0, bp, &team);
                if let Some(query) = req.query {
                    q.push(" AND (").append(condition(&self.db, org, req, defs.as_deref(), query, false)?).push(")");
                }
                (q, "et.rid")
            }
            None => (filter(&self.db, org, req, defs.as_deref(), &select, false)?, "e.rid"),
        };
        if let Some(after) = req.after {
            q.push(" AND ").push(order).push(" > ").param(SqlParam::Int(after));
        }
        let limit = i64::from(req.limit.max(1));
        q.push(" ORDER BY ").push(order).push(" LIMIT ").param(SqlParam::Int(limit + 1));
        let rows = self.search_rows(org, &q).await?;
        let mut entities = Vec::with_capacity(rows.len());
        let mut last = None;
        for r in rows.iter().take(limit as usize) {
            let (rid, e) = from_row(r);
            last = Some(rid);
            entities.push(e);
        }
        let next = if rows.len() as i64 > limit { last } else { None };
        Ok(Page { entities, next })
    }

    async fn search_sorted(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
        sort: &str,
        descending: bool,
        offset: u64,
    ) -> Result<SortedPage> {
        let db = &self.db;
        if req.blueprint.is_some_and(|b| db.refuses(b)) || db.refuses(sort) {
            return Ok(SortedPage { entities: vec![], more: false });
        }
        let defs = self.scorecard_defs(org, req).await?;
        let mut q = filter(db, org, req, defs.as_deref(), &format!("SELECT {COLUMNS}"), false)?;
        let dir = if descending { " DESC NULLS LAST" } else { " ASC NULLS LAST" };
        q.push(" ORDER BY ");
        match sort_column(sort) {
            Some(col) => {
                q.push(col).push(dir);
            }
            // An aggregation property of the blueprint searched: by its computed value (unless
            // it counts entities the reader may not read).
            None if is_aggregation(req, sort) => {
                let why = compile_ctx(db, org, req, None, false, |c| c.hides_targets_of(req.blueprint?, sort));
                if let Some(why) = why {
                    return Err(StoreError::Invalid(portolan_core::FieldError::new("sort", why)));
                }
                q.append(crate::query::stored_value(sort)).push(dir);
            }
            // A property: by the rank of its JSON type (numbers, strings, booleans, arrays,
            // objects; JSON null and missing values have none and come last), then by value
            // within the type, strings by code point — the same order on both databases.
            None => property_order(&mut q, db.dialect(), sort, dir),
        }
        q.push(if descending { ", e.rid DESC" } else { ", e.rid ASC" });
        let limit = i64::from(req.limit.max(1));
        q.push(" LIMIT ").param(SqlParam::Int(limit + 1));
        q.push(" OFFSET ").param(SqlParam::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
        let rows = self.search_rows(org, &q).await?;
        let more = rows.len() as i64 > limit;
        let entities = rows.iter().take(limit as usize).map(|r| from_row(r).1).collect();
        Ok(SortedPage { entities, more })
    }
}
