//! Port's search language → a boolean SQL expression (SQLite or PostgreSQL, by
//! [`CompileCtx::dialect`]) over the `entities` row `e`.
//!
//! [`compile_where`] translates a parsed [`Query`] into a parameterized [`SqlFrag`]; the caller
//! puts it after `WHERE e.org_id = ? AND (…)`. Subqueries stay inside the tenant: correlated
//! ones (mirror properties) join on `org_id = e.org_id`, and the relation walks (`relatedTo`,
//! `matchAny`) carry `org_id` through every hop and test `e.rid IN (… WHERE w.org_id = ?)`.
//!
//! Semantics chosen where Port's docs are silent:
//! - Negative operators (`!=`, `notIn`, `doesNot…`, `notBetween`, `isEmpty`, `isNotExpired`)
//!   are exact complements of their positive twins: an entity whose property is missing or
//!   null matches `!= "x"`, `notIn`, `doesNotContains`, …
//! - `=` is exact and type-strict (`"5"` ≠ `5`; `true` ≠ `1`); `= null` matches null or missing.
//!   `=` with an ISO date-time also matches the same instant written in another form.
//! - `contains`, `beginsWith`, `endsWith` (and negations) are case-insensitive for ASCII
//!   letters (SQLite's `lower()` folds ASCII only); `=`, `in`, `containsAny` are case-sensitive.
//! - `isEmpty` counts null, missing, `""`, `[]` and `{}` as empty.
//! - `>`/`<`… compare numbers numerically and date-times as instants (`strftime`-normalized).
//! - `containsAny` on an array property: any element equals one of the values; on a scalar
//!   property it behaves like `in`.
//! - `$team` `=` / `in` / `containsAny` mean "belongs to (one of) these teams".
//! - `relatedTo` follows relations transitively, up to 15 hops; without `direction` it is the
//!   union of upstream and downstream. A start entity is only reported when a cycle leads back
//!   to it.
//! - `matchAny`'s `{relation, maxHops: n}` step follows the relation 1..=n times.
//! - Calculation properties cannot be computed in SQL: filtering on one is an error, as is a
//!   mirror property that goes through a `many` relation. An aggregation property is read from
//!   its computed value (`aggregation_values`, see `query/aggregate.rs`): a number or null.
//!
//! Callers substitute request context before parsing: contextual references
//! (`{"context": "user", …}`) and the `"My Teams"` value of `$team` rules.

mod aggregate;
mod graph;
mod json;
mod operand;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use portolan_core::error::join_path;
use portolan_core::search::{
    Combinator, MetaProperty, PropertyOp, PropertyRef, PropertySchemaFilter, Query, Rule, ScorecardRule,
};
use portolan_core::{Blueprint, FieldError, Property};

use crate::sql::{Dialect, SqlFrag, SqlParam};
pub use aggregate::{middle_select, related_identifiers, stored_value, summary_select};
use json::JsonAt;
use operand::{Alias, Col, Field, meta_field, negate_if, predicate};

/// SQLite binds at most 32766 parameters; stay clear of it.
const MAX_PARAMS: usize = 30_000;

/// What the compiler needs besides the query.
#[derive(Debug, Clone, Copy)]
pub struct CompileCtx<'a> {
    /// The organization being searched: walks over relations start inside it.
    pub org_id: &'a str,
    /// The instant date presets and `isExpired` are resolved against.
    pub now: DateTime<Utc>,
    /// The organization's blueprints: property kinds, relations and mirror paths.
    pub blueprints: &'a HashMap<String, Blueprint>,
    /// The SQL dialect to write.
    pub dialect: Dialect,
    /// The organization's scorecards, for `{"scorecard": …}` rules; `None` where such rules
    /// cannot be used (a scorecard's own rules and filter).
    pub scorecards: Option<&'a [ScorecardDef]>,
    /// The statement reads the whole matching set (a count, an aggregate): `$team` rules naming
    /// teams gather the teams' entities from `entity_teams` once. Pages leave it off, so they
    /// test each row's teams and stop at their limit.
    pub team_rows: bool,
    /// The reader's read restriction (`SearchRequest::visible`): an aggregation property whose
    /// targets it does not read whole cannot be searched or sorted by, since its stored value
    /// counts entities hidden from it ([`CompileCtx::hides_targets_of`]).
    pub reader: Option<&'a Query>,
}

impl<'a> CompileCtx<'a> {
    /// The context of a statement Portolan runs for itself (upkeep jobs, checks): no reader
    /// restriction, no scorecard rules, each row's teams tested in place.
    pub fn internal(
        org_id: &'a str,
        now: DateTime<Utc>,
        blueprints: &'a HashMap<String, Blueprint>,
        dialect: Dialect,
    ) -> CompileCtx<'a> {
        CompileCtx { org_id, now, blueprints, dialect, scorecards: None, team_rows: false, reader: None }
    }

    /// Why the reader may not search or sort by aggregation property `name` of blueprint `bp`:
    /// its target blueprint is one the reader reads only in part.
    pub fn hides_targets_of(&self, bp: &str, name: &str) -> Option<String> {
        let visible = self.reader?;
        let target = self.blueprints.get(bp)?.aggregation_properties.get(name)?["target"].as_str()?;
        match crate::entities::admits(visible, target) {
            Some(crate::entities::Admits::All) => None,
            _ => Some(format!(
                "'{name}' aggregates {target} entities, some of which you may not read: its value counts them, so it \
                 cannot be searched or sorted by (it is shown computed over the ones you read)"
            )),
        }
    }
}

/// What the compiler needs of a scorecard: its key, level titles and rule identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScorecardDef {
    pub blueprint: String,
    pub identifier: String,
    pub levels: Vec<String>,
    pub rules: Vec<String>,
}

impl ScorecardDef {
    /// From a stored scorecard's JSON (`levels[].title`, `rules[].identifier`).
    pub fn from_json(blueprint: &str, identifier: &str, data: &serde_json::Value) -> Self {
        let titles = |key: &str, field: &str| -> Vec<String> {
            data.get(key)
                .and_then(|v| v.as_array())
                .map(|items| items.iter().filter_map(|i| i.get(field)?.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        ScorecardDef {
            blueprint: blueprint.to_string(),
            identifier: identifier.to_string(),
            levels: titles("levels", "title"),
            rules: titles("rules", "identifier"),
        }
    }
}

/// Compile `q` into a boolean SQL expression over `entities e`. Errors carry paths relative to
/// the query (`rules[1].property`).
pub fn compile_where(q: &Query, ctx: &CompileCtx<'_>) -> Result<SqlFrag, FieldError> {
    compile_where_in(q, ctx, None)
}

/// [`compile_where`] for a search the caller already restricts to `blueprint`
/// (`POST /v1/blueprints/{bp}/entities/search`): only that blueprint's definitions are
/// consulted, so a same-named calculation property on another blueprint is no obstacle.
pub fn compile_where_in(q: &Query, ctx: &CompileCtx<'_>, blueprint: Option<&str>) -> Result<SqlFrag, FieldError> {
    let scope = match (blueprint, q.blueprint_scope()) {
        (Some(bp), _) => Some(vec![bp.to_string()]),
        (None, scope) => scope,
    };
    let mut c = Compiler { ctx, scope, aliases: 0 };
    let frag = c.query(q, "")?;
    if frag.values() > MAX_PARAMS {
        return Err(FieldError::new("", "is too large; use fewer rules or shorter value lists"));
    }
    Ok(frag)
}

/// The blueprints named by positive `$blueprint` `=` / `in` rules (Port's `matchingBlueprints`).
pub fn referenced_blueprints(q: &Query) -> Vec<String> {
    q.referenced_blueprints()
}

struct Compiler<'a, 'c> {
    ctx: &'c CompileCtx<'a>,
    /// Blueprints the searched entities can belong to; `None`: any.
    scope: Option<Vec<String>>,
    /// Generated `m<n>` aliases so far.
    aliases: usize,
}

/// Where a property of a blueprint comes from.
enum Source {
    Stored,
    /// The computed value of an aggregation property.
    Aggregation,
    /// Follow single relations (`(relation, target blueprint)`) to the entity
    /// holding `last`.
    Mirror {
        hops: Vec<(String, String)>,
        last: PropertyRef,
    },
}

/// The entities a [`Source`] applies to.
enum Applies {
    All,
    Except(Vec<String>),
    Only(String),
}

impl<'a> Compiler<'a, '_> {
    fn query(&mut self, q: &Query, path: &str) -> Result<SqlFrag, FieldError> {
        match q {
            Query::Group { combinator, rules } => {
                let rpath = join_path(path, "rules");
                let parts = rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| self.query(r, &join_path(&rpath, &format!("[{i}]"))))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(match combinator {
                    Combinator::And => SqlFrag::join(parts, " AND ", "TRUE"),
                    Combinator::Or => SqlFrag::join(parts, " OR ", "FALSE"),
                })
            }
            Query::Rule(rule) => self.rule(rule, path),
        }
    }

    fn rule(&mut self, rule: &Rule, path: &str) -> Result<SqlFrag, FieldError> {
        let now = self.ctx.now;
        match rule {
            Rule::Property { property: PropertyRef::Meta(m), op } => {
                let (negated, pos) = op.positive();
                Ok(negate_if(
                    negated,
                    predicate(
                        self.ctx.dialect,
                        &meta_field(*m, Alias::E, self.ctx.team_rows.then_some(self.ctx.org_id)),
                        pos,
                        now,
                        path,
                    )?,
                ))
            }
            Rule::Property { property: PropertyRef::Property(name), op } => self.property(name, op, path),
            Rule::PropertySchema { schema, op } => self.property_schema(schema, op, path),
            Rule::Relation { relation, op } => {
                self.check_relation(relation, path)?;
                let (negated, pos) = op.positive();
                let field = Field::Relation { col: Col::e("relations"), key: relation.clone() };
                Ok(negate_if(negated, predicate(self.ctx.dialect, &field, pos, now, path)?))
            }
            Rule::RelatedTo(r) => self.related_to(r, path),
            Rule::MatchAny(m) => self.match_any(m, path),
            Rule::Scorecard(s) => self.scorecard(s, path),
        }
    }

    /// `[NOT] EXISTS` a stored result of the scorecard for `e` at one of the levels (or with
    /// the rule at the status). The scorecard, its levels and its rule must exist on a
    /// blueprint in scope: a misspelt one is an error, never a query that matches nothing.
    fn scorecard(&mut self, s: &ScorecardRule, path: &str) -> Result<SqlFrag, FieldError> {
        let Some(defs) = self.ctx.scorecards else {
            return Err(FieldError::new(path, "scorecard rules cannot be used here"));
        };
        let in_scope = |bp: &str| self.scope.as_ref().is_none_or(|ids| ids.iter().any(|i| i == bp));
        let found: Vec<&ScorecardDef> =
            defs.iter().filter(|d| d.identifier == s.scorecard && in_scope(&d.blueprint)).collect();
        if found.is_empty() {
            let mut known: Vec<String> = defs
                .iter()
                .filter(|d| in_scope(&d.blueprint))
                .map(|d| format!("{}.{}", d.blueprint, d.identifier))
                .collect();
            known.sort();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            let msg =
                format!("unknown scorecard '{}'; the scorecards here (blueprint.scorecard) are: {known}", s.scorecard);
            return Err(FieldError::new(join_path(path, "scorecard"), msg));
        }
        match &s.rule {
            Some(rule) => {
                if !found.iter().any(|d| d.rules.contains(rule)) {
                    let rules = found[0].rules.join(", ");
                    let msg = format!("scorecard '{}' has no rule '{rule}'; its rules are: {rules}", s.scorecard);
                    return Err(FieldError::new(join_path(path, "scorecardRule"), msg));
                }
            }
            None => {
                for (i, v) in s.values.iter().enumerate() {
                    if !found.iter().any(|d| d.levels.contains(v)) {
                        let levels = found[0].levels.join(", ");
                        let msg =
                            format!("'{v}' is not a level of scorecard '{}'; its levels are: {levels}", s.scorecard);
                        let vpath = join_path(path, "value");
                        let vpath = if s.values.len() > 1 { join_path(&vpath, &format!("[{i}]")) } else { vpath };
                        return Err(FieldError::new(vpath, msg));
                    }
                }
            }
        }
        let mut bps: Vec<&str> = found.iter().map(|d| d.blueprint.as_str()).collect();
        bps.sort_unstable();
        bps.dedup();
        let mut f = SqlFrag::new(if s.negated { "NOT EXISTS (" } else { "EXISTS (" });
        f.push(
            "SELECT 1 FROM scorecard_results r WHERE r.org_id = e.org_id AND r.blueprint = e.blueprint \
             AND r.entity = e.identifier AND r.scorecard = ",
        )
        .param(s.scorecard.as_str())
        .push(" AND r.blueprint")
        .in_texts(self.ctx.dialect, bps, false);
        match &s.rule {
            None => {
                f.push(" AND r.level").in_texts(self.ctx.dialect, s.values.iter().map(String::as_str), false);
            }
            Some(rule) => {
                let status = s.values.first().map_or("", String::as_str);
                f.push(match self.ctx.dialect {
                    Dialect::Sqlite => {
                        " AND EXISTS (SELECT 1 FROM json_each(r.rules) x WHERE json_extract(x.value, '$.identifier') = "
                    }
                    Dialect::Postgres => {
                        " AND EXISTS (SELECT 1 FROM json_array_elements(r.rules) x(value) WHERE x.value->>'identifier' = "
                    }
                });
                f.param(rule.as_str());
                f.push(match self.ctx.dialect {
                    Dialect::Sqlite => " AND json_extract(x.value, '$.status') = ",
                    Dialect::Postgres => " AND x.value->>'status' = ",
                });
                f.param(status).push(")");
            }
        }
        f.push(")");
        Ok(f)
    }

    /// The blueprints in scope, by identifier (deterministic SQL).
    fn scoped(&self) -> Vec<&'a Blueprint> {
        let bps = self.ctx.blueprints;
        let mut out: Vec<&Blueprint> = match &self.scope {
            Some(ids) => ids.iter().filter_map(|id| bps.get(id)).collect(),
            None => bps.values().collect(),
        };
        out.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        out
    }

    fn property(&mut self, name: &str, op: &PropertyOp, path: &str) -> Result<SqlFrag, FieldError> {
        let (negated, pos) = op.positive();
        let mut parts = Vec::new();
        for (applies, source) in self.resolve(name, &join_path(path, "property"))? {
            let pred = match source {
                Source::Stored => {
                    let field = Field::Json { col: Col::e("properties"), key: name.to_string() };
                    predicate(self.ctx.dialect, &field, pos, self.ctx.now, path)?
                }
                Source::Mirror { hops, last } => {
                    self.mirror(&hops, &last, |d, field, now| predicate(d, field, pos, now, path))?
                }
                Source::Aggregation => {
                    let Applies::Only(bp) = &applies else {
                        return Err(FieldError::new(path, "an aggregation property belongs to one blueprint"));
                    };
                    if let Some(why) = self.ctx.hides_targets_of(bp, name) {
                        return Err(FieldError::new(join_path(path, "property"), why));
                    }
                    aggregate::predicate(self.ctx, bp, name, pos, path)?
                }
            };
            let mut part = SqlFrag::default();
            match applies {
                Applies::All => {}
                Applies::Except(bps) => {
                    part.push("e.blueprint").in_texts(self.ctx.dialect, bps, true).push(" AND ");
                }
                Applies::Only(bp) => {
                    part.push("e.blueprint = ").param(bp).push(" AND ");
                }
            }
            part.push("(").append(pred).push(")");
            parts.push(part);
        }
        Ok(negate_if(negated, SqlFrag::join(parts, " OR ", "FALSE")))
    }

    /// How `name` is defined across the blueprints in scope.
    fn resolve(&self, name: &str, path: &str) -> Result<Vec<(Applies, Source)>, FieldError> {
        let mut mirrors = Vec::new();
        for bp in self.scoped() {
            let id = &bp.identifier;
            if bp.calculation_properties.contains_key(name) {
                let msg = format!("filtering on calculation property '{name}' (blueprint '{id}') is not supported");
                return Err(FieldError::new(path, msg));
            }
            if bp.aggregation_properties.contains_key(name) {
                mirrors.push((id.clone(), Source::Aggregation));
            } else if let Some(m) = bp.mirror_properties.get(name) {
                mirrors.push((id.clone(), self.mirror_chain(bp, name, &m.path, path)?));
            }
        }
        if mirrors.is_empty() {
            self.check_defined(name, path)?;
            return Ok(vec![(Applies::All, Source::Stored)]);
        }
        let mut out = vec![(Applies::Except(mirrors.iter().map(|(id, _)| id.clone()).collect()), Source::Stored)];
        out.extend(mirrors.into_iter().map(|(id, src)| (Applies::Only(id), src)));
        Ok(out)
    }

    /// A property rule on a name no blueprint in scope defines would match nothing, silently:
    /// refuse it, and point at the relation rule when `name` is a relation.
    fn check_defined(&self, name: &str, path: &str) -> Result<(), FieldError> {
        let scoped = self.scoped();
        if scoped.iter().any(|bp| bp.schema.properties.contains_key(name)) {
            return Ok(());
        }
        let mut msg = self.missing("property", name);
        if scoped.iter().any(|bp| bp.relations.contains_key(name)) {
            msg.push_str(&format!(", but a relation of that name: use {{\"relation\": \"{name}\", …}}"));
        }
        Err(FieldError::new(path, msg))
    }

    /// "blueprint 'service' has no property 'x'", "no blueprint has a relation 'x'", …
    fn missing(&self, kind: &str, name: &str) -> String {
        match &self.scope {
            Some(ids) if ids.len() == 1 => format!("blueprint '{}' has no {kind} '{name}'", ids[0]),
            Some(ids) => {
                format!("none of the blueprints this query is limited to ({}) has a {kind} '{name}'", ids.join(", "))
            }
            None => format!("no blueprint has a {kind} '{name}'"),
        }
    }

    /// A relation rule on a name no blueprint in scope has as a relation is refused, like an
    /// unknown property.
    fn check_relation(&self, name: &str, path: &str) -> Result<(), FieldError> {
        let scoped = self.scoped();
        if scoped.iter().any(|bp| bp.relations.contains_key(name)) {
            return Ok(());
        }
        let mut msg = self.missing("relation", name);
        if scoped.iter().any(|bp| bp.schema.properties.contains_key(name)) {
            msg.push_str(&format!(", but a property of that name: use {{\"property\": \"{name}\", …}}"));
        }
        Err(FieldError::new(join_path(path, "relation"), msg))
    }

    /// The hops of mirror property `name` of `bp` (path `rel1.rel2.prop`).
    fn mirror_chain(&self, bp: &Blueprint, name: &str, mirror_path: &str, path: &str) -> Result<Source, FieldError> {
        let fail = |why: String| {
            FieldError::new(path, format!("mirror property '{name}' of blueprint '{}' {why}", bp.identifier))
        };
        let mut parts: Vec<&str> = mirror_path.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        if parts.is_empty() || last.is_empty() {
            return Err(fail(format!("has an invalid path '{mirror_path}'")));
        }
        let mut cur = bp;
        let mut hops = Vec::with_capacity(parts.len());
        for rel_id in parts {
            let rel = cur.relations.get(rel_id).ok_or_else(|| fail(format!("uses unknown relation '{rel_id}'")))?;
            if rel.many {
                return Err(fail(format!("goes through many-relation '{rel_id}'; filtering on it is not supported")));
            }
            cur = self
                .ctx
                .blueprints
                .get(&rel.target)
                .ok_or_else(|| fail(format!("targets unknown blueprint '{}'", rel.target)))?;
            hops.push((rel_id.to_string(), rel.target.clone()));
        }
        let last = if last.starts_with('$') {
            PropertyRef::Meta(MetaProperty::from_name(last).ok_or_else(|| fail(format!("ends at unknown '{last}'")))?)
        } else if cur.calculation_properties.contains_key(last) || cur.aggregation_properties.contains_key(last) {
            return Err(fail(format!("mirrors computed property '{last}'; filtering on it is not supported")));
        } else if cur.mirror_properties.contains_key(last) {
            return Err(fail(format!("mirrors mirror property '{last}'; filtering on it is not supported")));
        } else {
            PropertyRef::Property(last.to_string())
        };
        Ok(Source::Mirror { hops, last })
    }

    /// `EXISTS (SELECT 1 FROM entities m1 JOIN entities m2 … WHERE <m1 is e's related entity>
    /// AND <pred on the last hop>)`.
    fn mirror(
        &mut self,
        hops: &[(String, String)],
        last: &PropertyRef,
        pred: impl FnOnce(Dialect, &Field, DateTime<Utc>) -> Result<SqlFrag, FieldError>,
    ) -> Result<SqlFrag, FieldError> {
        let d = self.ctx.dialect;
        let Some((rel, target)) = hops.first() else {
            return Ok(SqlFrag::new("FALSE"));
        };
        let first = self.aliases + 1;
        self.aliases += hops.len();
        let mut f = SqlFrag::new("EXISTS (SELECT 1 FROM entities ");
        f.name("m", first);
        for (i, (rel, target)) in hops.iter().enumerate().skip(1) {
            let (prev, cur) = (first + i - 1, first + i);
            f.push(" JOIN entities ").name("m", cur).push(" ON ").name("m", cur).push(".org_id = ");
            f.name("m", prev).push(".org_id AND ").name("m", cur).push(".blueprint = ").param(target.as_str());
            f.push(" AND ").name("m", cur).push(".identifier = ");
            JsonAt::key(d, Col { alias: Alias::M(prev), name: "relations" }, rel).text(&mut f);
        }
        f.push(" WHERE ").name("m", first).push(".org_id = e.org_id AND ").name("m", first).push(".blueprint = ");
        f.param(target.as_str()).push(" AND ").name("m", first).push(".identifier = ");
        JsonAt::key(d, Col::e("relations"), rel).text(&mut f);
        f.push(" AND (");
        let alias = Alias::M(first + hops.len() - 1);
        let field = match last {
            PropertyRef::Meta(m) => meta_field(*m, alias, self.ctx.team_rows.then_some(self.ctx.org_id)),
            PropertyRef::Property(p) => Field::Json { col: Col { alias, name: "properties" }, key: p.clone() },
        };
        f.append(pred(d, &field, self.ctx.now)?).push("))");
        Ok(f)
    }

    /// Any property (of the blueprints in scope) whose schema fits `filter` satisfies `op`.
    fn property_schema(
        &mut self,
        filter: &PropertySchemaFilter,
        op: &PropertyOp,
        path: &str,
    ) -> Result<SqlFrag, FieldError> {
        let (negated, pos) = op.positive();
        let mut parts = Vec::new();
        for bp in self.scoped() {
            let mut names: Vec<&String> =
                bp.schema.properties.iter().filter(|(_, p)| schema_fits(p, filter)).map(|(k, _)| k).collect();
            if names.is_empty() {
                continue;
            }
            names.sort();
            let preds = names
                .into_iter()
                .map(|n| {
                    let field = Field::Json { col: Col::e("properties"), key: n.to_string() };
                    predicate(self.ctx.dialect, &field, pos, self.ctx.now, path)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut part = SqlFrag::new("e.blueprint = ");
            part.param(SqlParam::Text(bp.identifier.clone()))
                .push(" AND (")
                .append(SqlFrag::join(preds, " OR ", "FALSE"));
            part.push(")");
            parts.push(part);
        }
        Ok(negate_if(negated, SqlFrag::join(parts, " OR ", "FALSE")))
    }
}

fn schema_fits(p: &Property, filter: &PropertySchemaFilter) -> bool {
    let format_fits = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    p.ty == filter.ty
        && format_fits(&filter.format, p.format.as_deref())
        && filter
            .items
            .as_ref()
            .is_none_or(|i| p.items_type() == Some(i.ty.as_str()) && format_fits(&i.format, p.items_format()))
}
