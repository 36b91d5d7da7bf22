//! Sorted pages for the web UI's catalog table (PostgreSQL): the search's filter, ordered by a
//! meta column or a stored property (jsonb order: numbers numerically, strings by collation),
//! paged by offset.

use sqlx::PgPool;

use crate::query::{CompileCtx, compile_where_in};
use crate::sql::{Dialect, SqlFrag, SqlParam};
use crate::{OrgId, Result, SearchRequest, SortedPage, StoreError};

pub(crate) async fn search_sorted(
    pool: &PgPool,
    budget: std::time::Duration,
    org: &OrgId,
    req: &SearchRequest<'_>,
    sort: &str,
    descending: bool,
    offset: u64,
) -> Result<SortedPage> {
    if req.blueprint.is_some_and(|b| b.contains('\0')) || sort.contains('\0') {
        return Ok(SortedPage { entities: vec![], more: false });
    }
    let mut q = SqlFrag::new(&format!("SELECT {}", super::entities::COLUMNS));
    q.push(" FROM entities e WHERE e.org_id = ").param(SqlParam::Text(org.0.clone()));
    if let Some(bp) = req.blueprint {
        q.push(" AND e.blueprint = ").param(SqlParam::Text(bp.to_string()));
    }
    if let Some(query) = req.query {
        let ctx = CompileCtx { org_id: &org.0, now: req.now, blueprints: req.blueprints, dialect: Dialect::Postgres };
        let frag = compile_where_in(query, &ctx, req.blueprint).map_err(StoreError::Invalid)?;
        if frag.params.iter().any(|p| matches!(p, SqlParam::Text(t) if t.contains('\0'))) {
            return Err(StoreError::Invalid(portolan_core::FieldError::new(
                "query",
                "a value contains the NUL character (U+0000), which this server's database (PostgreSQL) cannot compare",
            )));
        }
        q.push(" AND (").append(frag).push(")");
    }
    q.push(" ORDER BY ");
    match crate::sort_column(sort) {
        Some(col) => {
            q.push(col);
        }
        None => {
            q.push("(e.properties -> ").param(SqlParam::Text(sort.to_string())).push(")");
        }
    }
    q.push(if descending { " DESC NULLS LAST, e.rid DESC" } else { " ASC NULLS LAST, e.rid ASC" });
    let limit = i64::from(req.limit.max(1));
    q.push(" LIMIT ").param(SqlParam::Int(limit + 1));
    q.push(" OFFSET ").param(SqlParam::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
    let rows = super::budgeted_rows(pool, budget, &q).await?;
    let more = rows.len() as i64 > limit;
    let entities = rows.iter().take(limit as usize).map(|r| super::entities::from_row(r).1).collect();
    Ok(SortedPage { entities, more })
}
