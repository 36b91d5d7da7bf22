//! Sorted pages for the web UI's catalog table (SQLite): the search's filter, ordered by a
//! meta column or a stored property, paged by offset.

use sqlx::SqlitePool;

use crate::query::{CompileCtx, compile_where_in};
use crate::sql::{Dialect, SqlFrag, SqlParam, json_key_path};
use crate::{OrgId, Result, SearchRequest, SortedPage, StoreError};

pub(crate) async fn search_sorted(
    pool: &SqlitePool,
    (budget, closing): (std::time::Duration, &std::sync::Arc<std::sync::atomic::AtomicBool>),
    org: &OrgId,
    req: &SearchRequest<'_>,
    sort: &str,
    descending: bool,
    offset: u64,
) -> Result<SortedPage> {
    let mut q = SqlFrag::new(&format!("SELECT {}", super::entities::COLUMNS));
    q.push(" FROM entities e WHERE e.org_id = ").param(SqlParam::Text(org.0.clone()));
    if let Some(bp) = req.blueprint {
        q.push(" AND e.blueprint = ").param(SqlParam::Text(bp.to_string()));
    }
    if let Some(query) = req.query {
        let ctx = CompileCtx { org_id: &org.0, now: req.now, blueprints: req.blueprints, dialect: Dialect::Sqlite };
        let frag = compile_where_in(query, &ctx, req.blueprint).map_err(StoreError::Invalid)?;
        q.push(" AND (").append(frag).push(")");
    }
    q.push(" ORDER BY ");
    match crate::sort_column(sort) {
        Some(col) => {
            q.push(col);
        }
        None => {
            q.push("json_extract(e.properties, ").param(SqlParam::Text(json_key_path(sort))).push(")");
        }
    }
    q.push(if descending { " DESC NULLS LAST, e.rid DESC" } else { " ASC NULLS LAST, e.rid ASC" });
    let limit = i64::from(req.limit.max(1));
    q.push(" LIMIT ").param(SqlParam::Int(limit + 1));
    q.push(" OFFSET ").param(SqlParam::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
    let mut run = super::budget::Running::start(pool, budget, closing).await?;
    let query = super::entities::bind(sqlx::query(sqlx::AssertSqlSafe(q.sql)), &q.params);
    let rows = match query.fetch_all(&mut *run.conn).await {
        Ok(rows) => rows,
        Err(e) => return Err(run.error(e)),
    };
    drop(run);
    let more = rows.len() as i64 > limit;
    let entities = rows.iter().take(limit as usize).map(|r| super::entities::from_row(r).1).collect();
    Ok(SortedPage { entities, more })
}
