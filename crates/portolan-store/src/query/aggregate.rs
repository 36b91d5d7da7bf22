//! Aggregation properties in SQL (port-api.md §1.7).
//!
//! - [`summary_select`]: one statement summarizing an entity's targets with SQL aggregates —
//!   the target blueprint's entities reached by the relation walk of `relatedTo` (any path, in
//!   either direction, up to `MAX_HOPS`) or, with `pathFilter`, of `matchAny`, and matching
//!   the aggregation's `query`; all three compiled by this search compiler.
//! - [`middle_select`]: the one or two middle values of a median.
//! - [`stored_value`]: the computed value of an entity's aggregation property (the
//!   `aggregation_values` row), which search rules and sorts read like a stored number.

use portolan_core::FieldError;
use portolan_core::aggregation::Aggregation;
use portolan_core::search::{Bound, Literal};
use portolan_core::search::{MatchAny, PathStep, Positive, RelatedTo};

use super::json::JsonAt;
use super::operand::Col;
use super::{CompileCtx, Compiler};
use crate::sql::{Dialect, SqlFrag, SqlParam};

/// `CAST(<x> AS <double>)`.
fn real(d: Dialect, f: &mut SqlFrag, x: &str) {
    let ty = match d {
        Dialect::Sqlite => "REAL",
        Dialect::Postgres => "DOUBLE PRECISION",
    };
    f.push("CAST(").push(x).push(" AS ").push(ty).push(")");
}

/// `SELECT <v> AS v, <t> AS t FROM (<walk>) ws CROSS JOIN entities e WHERE …`: the targets of
/// `owner` with their value (a JSON number of the property, else NULL) and `measureTimeBy` date
/// (canonical text). The walk's rows drive and each target is read by primary key: `CROSS
/// JOIN` keeps SQLite from scanning the target blueprint instead (it did for a count, whose
/// columns a covering index holds: 6 ms against 0.25 ms per domain at 95,000 services;
/// BENCHMARKS.md, aggregation upkeep). PostgreSQL plans the join as it sees fit.
fn targets(agg: &Aggregation, owner: (&str, &str), ctx: &CompileCtx<'_>) -> Result<SqlFrag, FieldError> {
    let d = ctx.dialect;
    let mut c = Compiler { ctx, scope: Some(vec![agg.target.clone()]), aliases: 0 };
    let walk = match &agg.path_filter {
        None => {
            let r = RelatedTo {
                blueprint: owner.0.to_string(),
                values: vec![owner.1.to_string()],
                direction: None,
                required: None,
            };
            c.related_rows(&r, "")?
        }
        Some(pf) => {
            let m = MatchAny {
                path: pf.path.iter().map(|r| PathStep { relation: r.clone(), max_hops: None }).collect(),
                from_blueprint: pf.from_blueprint.clone(),
                values: vec![owner.1.to_string()],
            };
            c.match_any_rows(&m, "pathFilter[0]").map_err(|e| FieldError::new("pathFilter[0].path", e.message))?
        }
    };
    let query = agg.query.as_ref().map(|q| c.query(q, "query")).transpose()?;
    let mut f = SqlFrag::new("SELECT ");
    match &agg.property {
        Some(p) => {
            // PostgreSQL's `num` is already NULL unless the value is a JSON number.
            let at = JsonAt::key(d, Col::e("properties"), p);
            if d == Dialect::Sqlite {
                f.push("CASE WHEN ");
                at.ty(&mut f);
                f.push(" IN ('integer', 'real') THEN ");
            }
            let mut n = SqlFrag::default();
            at.num(&mut n);
            f.push("CAST(").append(n).push(match d {
                Dialect::Sqlite => " AS REAL) END",
                Dialect::Postgres => " AS DOUBLE PRECISION)",
            });
            f.push(" AS v");
        }
        None => {
            real(d, &mut f, "NULL");
            f.push(" AS v");
        }
    }
    if agg.needs_time() {
        match agg.measure_time_by.as_str() {
            "$createdAt" => f.push(", e.created_at AS t"),
            "$updatedAt" => f.push(", e.updated_at AS t"),
            p => {
                f.push(", ");
                JsonAt::key(d, Col::e("properties"), p).ts(&mut f);
                f.push(" AS t")
            }
        };
    } else {
        f.push(", CAST(NULL AS TEXT) AS t");
    }
    from_walk(&mut f, walk, ctx.org_id, &agg.target);
    if let Some(q) = query {
        f.push(" AND (").append(q).push(")");
    }
    Ok(f)
}

/// `SELECT e.identifier FROM (<walk>) ws CROSS JOIN entities e WHERE …`: the entities of `bp`
/// related to `r`'s (`relatedTo`), read from the walk by primary key as [`targets`] reads them.
pub fn related_identifiers(r: &RelatedTo, bp: &str, ctx: &CompileCtx<'_>) -> Result<SqlFrag, FieldError> {
    let mut c = Compiler { ctx, scope: Some(vec![bp.to_string()]), aliases: 0 };
    let mut f = SqlFrag::new("SELECT e.identifier");
    from_walk(&mut f, c.related_rows(r, "")?, ctx.org_id, bp);
    Ok(f)
}

/// ` FROM (<rows>) ws CROSS JOIN entities e WHERE e.rid = ws.rid AND e.org_id = ? AND
/// e.blueprint = ?` (no rows: no entity).
fn from_walk(f: &mut SqlFrag, rows: Option<SqlFrag>, org_id: &str, bp: &str) {
    match rows {
        Some(rows) => {
            f.push(" FROM (").append(rows).push(") ws CROSS JOIN entities e WHERE e.rid = ws.rid AND e.org_id = ");
        }
        None => {
            f.push(" FROM entities e WHERE FALSE AND e.org_id = ");
        }
    }
    f.param(org_id).push(" AND e.blueprint = ").param(bp);
}

/// `SELECT count(*), sum(v), min(v), max(v), count(v), min(t)` over the targets of `owner`
/// (`sum`, `min`, `max` as doubles; `min(t)` as canonical text). Errors at the aggregation's
/// paths (`query.rules[0]…`, `pathFilter[0].path`).
pub fn summary_select(agg: &Aggregation, owner: (&str, &str), ctx: &CompileCtx<'_>) -> Result<SqlFrag, FieldError> {
    let d = ctx.dialect;
    let mut f = SqlFrag::new("SELECT count(*), ");
    real(d, &mut f, "sum(s.v)");
    f.push(", ");
    real(d, &mut f, "min(s.v)");
    f.push(", ");
    real(d, &mut f, "max(s.v)");
    f.push(", count(s.v), min(s.t) FROM (").append(targets(agg, owner, ctx)?).push(") s");
    Ok(f)
}

/// The values at positions `offset` and `offset + 1` of the targets' sorted values (the middle
/// of a median: `offset = (n - 1) / 2`).
pub fn middle_select(
    agg: &Aggregation,
    owner: (&str, &str),
    ctx: &CompileCtx<'_>,
    offset: u64,
) -> Result<SqlFrag, FieldError> {
    let mut f = SqlFrag::new("SELECT s.v FROM (");
    f.append(targets(agg, owner, ctx)?);
    f.push(") s WHERE s.v IS NOT NULL ORDER BY s.v LIMIT 2 OFFSET ");
    f.param(i64::try_from(offset).unwrap_or(i64::MAX));
    Ok(f)
}

/// `(SELECT a.value FROM aggregation_values a WHERE <a is e's value of property>)`.
pub fn stored_value(property: &str) -> SqlFrag {
    let mut f = SqlFrag::new(
        "(SELECT a.value FROM aggregation_values a WHERE a.org_id = e.org_id AND a.blueprint = e.blueprint \
         AND a.entity = e.identifier AND a.property = ",
    );
    f.param(property).push(")");
    f
}

/// The positive predicate of `pos` on aggregation property `property` of blueprint `bp`: an
/// uncorrelated `e.identifier IN (SELECT a.entity FROM aggregation_values a WHERE <its value
/// matches>)` — the property's range of the primary key, read once per statement, never a
/// lookup per searched row (`= null` is the complement of "has a value").
pub(super) fn predicate(
    ctx: &CompileCtx<'_>,
    bp: &str,
    property: &str,
    pos: Positive<'_>,
    path: &str,
) -> Result<SqlFrag, FieldError> {
    let having = |cond: &dyn Fn(&mut SqlFrag)| {
        let mut f = SqlFrag::new("e.identifier IN (SELECT a.entity FROM aggregation_values a WHERE a.org_id = ");
        f.param(ctx.org_id).push(" AND a.blueprint = ").param(bp).push(" AND a.property = ").param(property);
        f.push(" AND a.value");
        cond(&mut f);
        f.push(")");
        f
    };
    Ok(match pos {
        Positive::Eq(Literal::Null) => {
            let mut f = SqlFrag::new("NOT (");
            f.append(having(&|f| {
                f.push(" IS NOT NULL");
            }));
            f.push(")");
            f
        }
        Positive::Eq(Literal::Number(n)) => having(&|f| {
            f.push(" = ").param(SqlParam::number(n));
        }),
        Positive::Cmp(op, Bound::Number(n)) => having(&|f| {
            f.push(" ").push(op.as_str()).push(" ").param(SqlParam::number(n));
        }),
        Positive::In(list) => {
            let numbers: Vec<SqlParam> = list
                .iter()
                .filter_map(|l| match l {
                    Literal::Number(n) => Some(SqlParam::number(n)),
                    _ => None,
                })
                .collect();
            if numbers.is_empty() {
                SqlFrag::new("FALSE")
            } else {
                having(&|f| {
                    f.push(" IN (").param_list(numbers.clone()).push(")");
                })
            }
        }
        Positive::NonEmpty => having(&|f| {
            f.push(" IS NOT NULL");
        }),
        _ => {
            let msg = "an aggregation property is a number: use =, !=, >, >=, <, <=, in, notIn, isEmpty or \
                       isNotEmpty with numbers";
            return Err(FieldError::new(portolan_core::error::join_path(path, "operator"), msg));
        }
    })
}
