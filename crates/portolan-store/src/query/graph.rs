//! Relation walks: `relatedTo` and `matchAny`, as recursive CTEs over `entity_relations`.
//!
//! Each walk is an uncorrelated subquery (computed once per statement, not once per row) whose
//! rows carry `org_id` from hop to hop; its rows are `SELECT DISTINCT w.rid FROM (…) w WHERE
//! w.org_id = <the caller's>` ([`Compiler::related_rows`], [`Compiler::match_any_rows`]), so a
//! walk never crosses tenants, and the searched row matches with `e.rid IN (<rows>)` (row ids
//! are unique across organizations). The start entities are looked up through `entities_key`
//! with the caller's `org_id`; forward hops use `entity_relations_src`, backward hops
//! `entity_relations_target`.
//!
//! A statement that reads only a walk's entities (an aggregation property's value,
//! `aggregate.rs`) joins the rows instead: SQLite, given `e.blueprint = ? AND e.rid IN (…)`,
//! scans the blueprint and probes the walk for each row when the scan reads a covering index.

use portolan_core::FieldError;
use portolan_core::error::join_path;
use portolan_core::search::{Direction, MAX_HOPS, MatchAny, RelatedTo};

use super::Compiler;
use crate::sql::{SqlFrag, SqlParam};

/// The direction a hop follows a relation edge (source → target is "forward").
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Forward,
    Backward,
}

/// One hop from the rows of CTE `prev` (named `<prefix><n>`).
struct Hop<'a> {
    way: Way,
    relation: Option<&'a str>,
    required: Option<bool>,
    /// `None`: a plain hop (no depth column). `Some(None)`: the base of a recursive CTE
    /// (depth 1). `Some(Some(max))`: the recursive step, `p.depth + 1` while `p.depth < max`.
    depth: Option<Option<i64>>,
}

impl Hop<'_> {
    fn write(&self, f: &mut SqlFrag, prev: (&'static str, usize)) {
        let depth_col = match self.depth {
            None => "",
            Some(None) => ", 1",
            Some(Some(_)) => ", p.depth + 1",
        };
        let edge_filters = |f: &mut SqlFrag| {
            if let Some(rel) = self.relation {
                f.push(" AND r.relation = ").param(rel);
            }
            if let Some(req) = self.required {
                f.push(" AND r.required = ").param(req);
            }
        };
        // A plain hop is one level of the walk: its rows are deduplicated, so the next level
        // starts from each entity once and the work grows with levels × entities, not with the
        // number of distinct paths (5 relations per entity over 15 levels would be 5^15 rows).
        // Recursive steps dedupe through their UNION already.
        let select = if self.depth.is_none() { "SELECT DISTINCT " } else { "SELECT " };
        match self.way {
            Way::Forward => {
                f.push(select).push("t.org_id, t.rid").push(depth_col).push(" FROM ").name(prev.0, prev.1);
                f.push(" p JOIN entity_relations r ON r.src_rid = p.rid");
                edge_filters(f);
                f.push(
                    " JOIN entities t ON t.org_id = r.org_id AND t.blueprint = r.target_blueprint \
                     AND t.identifier = r.target_identifier",
                );
            }
            Way::Backward => {
                f.push(select).push("r.org_id, r.src_rid").push(depth_col).push(" FROM ").name(prev.0, prev.1);
                f.push(
                    " p JOIN entities t ON t.rid = p.rid JOIN entity_relations r ON r.org_id = t.org_id \
                     AND r.target_blueprint = t.blueprint AND r.target_identifier = t.identifier",
                );
                edge_filters(f);
            }
        }
        if let Some(Some(max)) = self.depth {
            f.push(" WHERE p.depth < ").param(max);
        }
    }
}

/// How a walk's rows start (module docs).
const WALK_OPEN: &str = "SELECT DISTINCT w.rid FROM (WITH RECURSIVE ";

/// How they end: only the caller's organization's rows.
fn close_walk(f: &mut SqlFrag, org_id: &str) {
    f.push(") w WHERE w.org_id = ").param(SqlParam::Text(org_id.to_string()));
}

/// `e.rid IN (<rows>)`, or `FALSE` for a walk from nothing.
fn row_in(rows: Option<SqlFrag>) -> SqlFrag {
    match rows {
        Some(rows) => {
            let mut f = SqlFrag::new("e.rid IN (");
            f.append(rows).push(")");
            f
        }
        None => SqlFrag::new("FALSE"),
    }
}

/// `<name>(org_id, rid) AS (SELECT … FROM entities x WHERE x is one of `ids` of `blueprints`)`.
fn start_set(f: &mut SqlFrag, org_id: &str, name: (&'static str, usize), blueprints: &[String], ids: &[String]) {
    let bps = || blueprints.iter().map(|b| SqlParam::Text(b.clone()));
    f.name(name.0, name.1).push("(org_id, rid) AS (SELECT x.org_id, x.rid FROM entities x WHERE x.org_id = ");
    f.param(SqlParam::Text(org_id.to_string()));
    f.push(" AND x.blueprint IN (").param_list(bps()).push(") AND x.identifier IN (");
    f.param_list(ids.iter().map(|i| SqlParam::Text(i.clone()))).push("))");
}

impl Compiler<'_, '_> {
    /// Entities related to any of `r.values` (entities of `r.blueprint`), transitively.
    pub(super) fn related_to(&mut self, r: &RelatedTo, path: &str) -> Result<SqlFrag, FieldError> {
        self.related_rows(r, path).map(row_in)
    }

    /// The rows of [`Self::related_to`]'s walk; `None` when it starts from no entity.
    pub(super) fn related_rows(&mut self, r: &RelatedTo, path: &str) -> Result<Option<SqlFrag>, FieldError> {
        if !self.ctx.blueprints.contains_key(&r.blueprint) {
            let msg = format!("blueprint '{}' does not exist", r.blueprint);
            return Err(FieldError::new(join_path(path, "blueprint"), msg));
        }
        if r.values.is_empty() {
            return Ok(None);
        }
        let up = r.direction != Some(Direction::Downstream);
        let down = r.direction != Some(Direction::Upstream);
        let mut f = SqlFrag::new(WALK_OPEN);
        start_set(&mut f, self.ctx.org_id, ("src", 0), std::slice::from_ref(&r.blueprint), &r.values);
        for (on, name, way) in [(up, "up", Way::Forward), (down, "down", Way::Backward)] {
            if !on {
                continue;
            }
            f.push(", ").name(name, 0).push("(org_id, rid, depth) AS (SELECT org_id, rid, 0 FROM src0 UNION ");
            let hop = Hop { way, relation: None, required: r.required, depth: Some(Some(i64::from(MAX_HOPS))) };
            hop.write(&mut f, (name, 0));
            f.push(")");
        }
        let mut selects = Vec::new();
        if up {
            selects.push("SELECT org_id, rid FROM up0 WHERE depth > 0");
        }
        if down {
            selects.push("SELECT org_id, rid FROM down0 WHERE depth > 0");
        }
        f.push(" ").push(&selects.join(" UNION "));
        close_walk(&mut f, self.ctx.org_id);
        Ok(Some(f))
    }

    /// Entities at the start (no `fromBlueprint`) or at the end (with it) of `m.path`.
    pub(super) fn match_any(&mut self, m: &MatchAny, path: &str) -> Result<SqlFrag, FieldError> {
        self.match_any_rows(m, path).map(row_in)
    }

    /// The rows of [`Self::match_any`]'s walk; `None` when it starts from no entity.
    pub(super) fn match_any_rows(&mut self, m: &MatchAny, path: &str) -> Result<Option<SqlFrag>, FieldError> {
        let ppath = join_path(path, "property");
        // Validate the path against the schema, collecting each step's target blueprints.
        let mut targets: Vec<Vec<String>> = Vec::with_capacity(m.path.len());
        for (i, step) in m.path.iter().enumerate() {
            let mut t: Vec<String> = self
                .ctx
                .blueprints
                .values()
                .filter_map(|bp| bp.relations.get(&step.relation).map(|r| r.target.clone()))
                .collect();
            if t.is_empty() {
                let spath = join_path(&join_path(&ppath, "path"), &format!("[{i}]"));
                return Err(FieldError::new(spath, format!("relation '{}' does not exist", step.relation)));
            }
            t.sort();
            t.dedup();
            targets.push(t);
        }
        if let Some(bp) = &m.from_blueprint
            && !self.ctx.blueprints.contains_key(bp)
        {
            let msg = format!("blueprint '{bp}' does not exist");
            return Err(FieldError::new(join_path(&ppath, "fromBlueprint"), msg));
        }
        if m.values.is_empty() {
            return Ok(None);
        }
        let (way, start_bps) = match &m.from_blueprint {
            Some(bp) => (Way::Forward, vec![bp.clone()]),
            None => (Way::Backward, targets.last().cloned().unwrap_or_default()),
        };
        let mut steps: Vec<_> = m.path.iter().collect();
        if way == Way::Backward {
            steps.reverse();
        }
        let mut f = SqlFrag::new(WALK_OPEN);
        start_set(&mut f, self.ctx.org_id, ("lv", 0), &start_bps, &m.values);
        for (k, step) in steps.iter().enumerate() {
            let level = k + 1;
            f.push(", ").name("lv", level);
            let relation = Some(step.relation.as_str());
            match step.max_hops {
                None => {
                    f.push("(org_id, rid) AS (");
                    Hop { way, relation, required: None, depth: None }.write(&mut f, ("lv", k));
                }
                Some(max) => {
                    f.push("(org_id, rid, depth) AS (");
                    Hop { way, relation, required: None, depth: Some(None) }.write(&mut f, ("lv", k));
                    f.push(" UNION ");
                    let depth = Some(Some(i64::from(max)));
                    Hop { way, relation, required: None, depth }.write(&mut f, ("lv", level));
                }
            }
            f.push(")");
        }
        f.push(" SELECT org_id, rid FROM ").name("lv", steps.len());
        close_walk(&mut f, self.ctx.org_id);
        Ok(Some(f))
    }
}
