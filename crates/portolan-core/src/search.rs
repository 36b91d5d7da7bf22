//! Port's search language (docs/reference/port-api.md §3): a typed syntax tree, a strict parser and date presets.
//!
//! A query is a tree of groups (`{combinator, rules}`) whose leaves are rules. [`parse_query`]
//! turns the JSON a client sent into a [`Query`], rejecting anything Port would reject with a
//! [`FieldError`] whose path is relative to the query object (`rules[2].operator`); callers
//! prefix it (`query.rules[2].operator`). Backends translate the tree (the SQLite one lives in
//! `portolan-store`); no SQL or IO happens here.
//!
//! Not accepted by the parser (each with its own message): contextual references
//! (`{"context": "user" | "userTeams", "property": …}`, which the caller must substitute before
//! parsing, as it must substitute `"My Teams"`). Scorecard rules (`{"scorecard": …}`) parse
//! here; whether the scorecard, its levels and its rules exist is checked by the backend.

mod date;
mod parse;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde_json::Number;

use crate::blueprint::PropType;

pub use date::{DatePreset, format_timestamp, parse_timestamp};
pub use parse::parse_query;

/// Deepest group nesting accepted (the root group is level 1).
pub const MAX_DEPTH: usize = 20;
/// Most rules and groups, all levels together, in one query.
pub const MAX_RULES: usize = 1000;
/// Most items in one value list (`in`, `containsAny`, `relatedTo` ids, …).
pub const MAX_VALUES: usize = 1000;
/// `maxHops` of a `matchAny` path step is 1..=this.
pub const MAX_HOPS: u8 = 15;
/// Most steps in a `matchAny` relation path (Port's paths are a few relations long; each step
/// is one deduplicated level of the walk, so the work grows with steps × entities, not with
/// the number of paths).
pub const MAX_PATH_STEPS: usize = 15;
/// Longest string (in characters) anywhere in a query: values, list items, identifiers. Bounds
/// what reaches the database (SQLite refuses `LIKE` patterns over 50,000 bytes; a value of this
/// many characters, escaped and UTF-8 encoded, stays under it).
pub const MAX_STRING_CHARS: usize = 10_000;

/// A search query: a group of rules or, where a rule stands alone, the rule itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Group { combinator: Combinator, rules: Vec<Query> },
    Rule(Rule),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combinator {
    And,
    Or,
}

/// One leaf of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `{property, operator, value?}` on a meta-property or a property of the entity.
    Property { property: PropertyRef, op: PropertyOp },
    /// `{propertySchema: {type, format?, items?}, operator, value}`: matches when any property
    /// whose schema fits the filter satisfies the operator.
    PropertySchema { schema: PropertySchemaFilter, op: PropertyOp },
    /// Blueprint-scoped `{relation, operator, value}`: the identifiers the relation points at.
    Relation { relation: String, op: PropertyOp },
    /// `{operator: "relatedTo", blueprint, value, direction?, required?}`.
    RelatedTo(RelatedTo),
    /// `{property: {path, fromBlueprint?}, operator: "matchAny", value}`.
    MatchAny(MatchAny),
    /// `{scorecard, scorecardRule?, operator, value}`: the entity's stored scorecard result.
    Scorecard(ScorecardRule),
}

/// A scorecard rule of a search: the level an entity reached in a scorecard (`=`, `!=`, `in`,
/// `notIn` with level titles), or, with `scorecardRule`, whether it passed one of its rules
/// (`=` / `!=` with `"SUCCESS"` / `"FAILURE"`, or `true` / `false`). Entities the scorecard does
/// not evaluate (outside its filter) have no level: they match only the negative operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScorecardRule {
    pub scorecard: String,
    /// `Some(rule)`: a rule's status instead of the level.
    pub rule: Option<String>,
    /// `!=` / `notIn`.
    pub negated: bool,
    /// Level titles, or the one rule status (`SUCCESS` / `FAILURE`).
    pub values: Vec<String>,
}

/// What a property rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyRef {
    Meta(MetaProperty),
    /// A schema, mirror or calculation property identifier (resolved by the backend).
    Property(String),
}

/// The `$`-prefixed meta-properties every entity has (docs/reference/port-api.md §1.3, plus Ocean's
/// `$datasource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaProperty {
    Identifier,
    Title,
    Team,
    Icon,
    Blueprint,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
    Datasource,
}

impl MetaProperty {
    pub const ALL: [MetaProperty; 10] = [
        MetaProperty::Identifier,
        MetaProperty::Title,
        MetaProperty::Team,
        MetaProperty::Icon,
        MetaProperty::Blueprint,
        MetaProperty::CreatedAt,
        MetaProperty::UpdatedAt,
        MetaProperty::CreatedBy,
        MetaProperty::UpdatedBy,
        MetaProperty::Datasource,
    ];

    /// The wire name, with its `$`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetaProperty::Identifier => "$identifier",
            MetaProperty::Title => "$title",
            MetaProperty::Team => "$team",
            MetaProperty::Icon => "$icon",
            MetaProperty::Blueprint => "$blueprint",
            MetaProperty::CreatedAt => "$createdAt",
            MetaProperty::UpdatedAt => "$updatedAt",
            MetaProperty::CreatedBy => "$createdBy",
            MetaProperty::UpdatedBy => "$updatedBy",
            MetaProperty::Datasource => "$datasource",
        }
    }

    /// Parse a wire name (with its `$`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Every operator of the language, by wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Between,
    NotBetween,
    Contains,
    ContainsAny,
    DoesNotContains,
    BeginsWith,
    DoesNotBeginsWith,
    EndsWith,
    DoesNotEndsWith,
    In,
    NotIn,
    IsEmpty,
    IsNotEmpty,
    IsExpired,
    IsNotExpired,
    RelatedTo,
    MatchAny,
}

impl Operator {
    pub const ALL: [Operator; 23] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Ge,
        Operator::Lt,
        Operator::Le,
        Operator::Between,
        Operator::NotBetween,
        Operator::Contains,
        Operator::ContainsAny,
        Operator::DoesNotContains,
        Operator::BeginsWith,
        Operator::DoesNotBeginsWith,
        Operator::EndsWith,
        Operator::DoesNotEndsWith,
        Operator::In,
        Operator::NotIn,
        Operator::IsEmpty,
        Operator::IsNotEmpty,
        Operator::IsExpired,
        Operator::IsNotExpired,
        Operator::RelatedTo,
        Operator::MatchAny,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Ne => "!=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Between => "between",
            Operator::NotBetween => "notBetween",
            Operator::Contains => "contains",
            Operator::ContainsAny => "containsAny",
            Operator::DoesNotContains => "doesNotContains",
            Operator::BeginsWith => "beginsWith",
            Operator::DoesNotBeginsWith => "doesNotBeginsWith",
            Operator::EndsWith => "endsWith",
            Operator::DoesNotEndsWith => "doesNotEndsWith",
            Operator::In => "in",
            Operator::NotIn => "notIn",
            Operator::IsEmpty => "isEmpty",
            Operator::IsNotEmpty => "isNotEmpty",
            Operator::IsExpired => "isExpired",
            Operator::IsNotExpired => "isNotExpired",
            Operator::RelatedTo => "relatedTo",
            Operator::MatchAny => "matchAny",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// An operator of a property, property-schema or relation rule, with its typed value.
///
/// Every negative operator (`!=`, `notBetween`, `doesNot…`, `notIn`, `isEmpty`,
/// `isNotExpired`) is the exact complement of its positive twin, so entities where the property
/// is missing or null match it (see [`PropertyOp::positive`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyOp {
    Eq(Literal),
    Ne(Literal),
    Cmp(CmpOp, Bound),
    Between(DateRange),
    NotBetween(DateRange),
    Contains(String),
    DoesNotContain(String),
    BeginsWith(String),
    DoesNotBeginWith(String),
    EndsWith(String),
    DoesNotEndWith(String),
    /// Array property has any of the values (a scalar property: equals any of them).
    ContainsAny(Vec<Literal>),
    In(Vec<Literal>),
    NotIn(Vec<Literal>),
    IsEmpty,
    IsNotEmpty,
    /// A timer (date-time) property lies at or before `now`.
    IsExpired,
    IsNotExpired,
}

/// The positive form of a [`PropertyOp`]; see [`PropertyOp::positive`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Positive<'a> {
    Eq(&'a Literal),
    Cmp(CmpOp, &'a Bound),
    Between(&'a DateRange),
    Contains(&'a str),
    BeginsWith(&'a str),
    EndsWith(&'a str),
    ContainsAny(&'a [Literal]),
    In(&'a [Literal]),
    /// Has a value other than null, missing, `""`, `[]` or `{}`.
    NonEmpty,
    Expired,
}

impl PropertyOp {
    pub fn operator(&self) -> Operator {
        match self {
            PropertyOp::Eq(_) => Operator::Eq,
            PropertyOp::Ne(_) => Operator::Ne,
            PropertyOp::Cmp(op, _) => op.operator(),
            PropertyOp::Between(_) => Operator::Between,
            PropertyOp::NotBetween(_) => Operator::NotBetween,
            PropertyOp::Contains(_) => Operator::Contains,
            PropertyOp::DoesNotContain(_) => Operator::DoesNotContains,
            PropertyOp::BeginsWith(_) => Operator::BeginsWith,
            PropertyOp::DoesNotBeginWith(_) => Operator::DoesNotBeginsWith,
            PropertyOp::EndsWith(_) => Operator::EndsWith,
            PropertyOp::DoesNotEndWith(_) => Operator::DoesNotEndsWith,
            PropertyOp::ContainsAny(_) => Operator::ContainsAny,
            PropertyOp::In(_) => Operator::In,
            PropertyOp::NotIn(_) => Operator::NotIn,
            PropertyOp::IsEmpty => Operator::IsEmpty,
            PropertyOp::IsNotEmpty => Operator::IsNotEmpty,
            PropertyOp::IsExpired => Operator::IsExpired,
            PropertyOp::IsNotExpired => Operator::IsNotExpired,
        }
    }

    /// Split into `(negated, positive)`: the rule matches when the positive form holds, or,
    /// when `negated`, when it does not hold (including when the value is missing).
    pub fn positive(&self) -> (bool, Positive<'_>) {
        match self {
            PropertyOp::Eq(v) => (false, Positive::Eq(v)),
            PropertyOp::Ne(v) => (true, Positive::Eq(v)),
            PropertyOp::Cmp(op, b) => (false, Positive::Cmp(*op, b)),
            PropertyOp::Between(r) => (false, Positive::Between(r)),
            PropertyOp::NotBetween(r) => (true, Positive::Between(r)),
            PropertyOp::Contains(s) => (false, Positive::Contains(s)),
            PropertyOp::DoesNotContain(s) => (true, Positive::Contains(s)),
            PropertyOp::BeginsWith(s) => (false, Positive::BeginsWith(s)),
            PropertyOp::DoesNotBeginWith(s) => (true, Positive::BeginsWith(s)),
            PropertyOp::EndsWith(s) => (false, Positive::EndsWith(s)),
            PropertyOp::DoesNotEndWith(s) => (true, Positive::EndsWith(s)),
            PropertyOp::ContainsAny(v) => (false, Positive::ContainsAny(v)),
            PropertyOp::In(v) => (false, Positive::In(v)),
            PropertyOp::NotIn(v) => (true, Positive::In(v)),
            PropertyOp::IsEmpty => (true, Positive::NonEmpty),
            PropertyOp::IsNotEmpty => (false, Positive::NonEmpty),
            PropertyOp::IsExpired => (false, Positive::Expired),
            PropertyOp::IsNotExpired => (true, Positive::Expired),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn operator(self) -> Operator {
        match self {
            CmpOp::Gt => Operator::Gt,
            CmpOp::Ge => Operator::Ge,
            CmpOp::Lt => Operator::Lt,
            CmpOp::Le => Operator::Le,
        }
    }
    /// The SQL (and wire) spelling.
    pub fn as_str(self) -> &'static str {
        self.operator().as_str()
    }
}

/// The value of `>`, `>=`, `<`, `<=`: a number, or an ISO-8601 date-time.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Number(Number),
    DateTime(DateTime<Utc>),
}

/// A rule value: JSON scalars, or (for `=` / `!=` only) an array of scalars.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Literal>),
}

impl Literal {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Literal::String(s) => Some(s),
            _ => None,
        }
    }
    /// Back to JSON (for `=` on array values, which backends compare as JSON text).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Number(n) => Value::Number(n.clone()),
            Literal::String(s) => Value::String(s.clone()),
            Literal::Array(items) => Value::Array(items.iter().map(Literal::to_json).collect()),
        }
    }
}

/// The value of `between` / `notBetween`.
#[derive(Debug, Clone, PartialEq)]
pub enum DateRange {
    /// Inclusive at both ends.
    Range {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    Preset(DatePreset),
}

impl DateRange {
    /// The concrete, inclusive `(from, to)` this range stands for at `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            DateRange::Range { from, to } => (*from, *to),
            DateRange::Preset(p) => p.resolve(now),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Entities the given entity depends on (its relations' targets, transitively).
    Upstream,
    /// Entities that depend on the given entity.
    Downstream,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelatedTo {
    pub blueprint: String,
    /// Identifiers of entities of `blueprint`; the rule matches entities related to any of them.
    pub values: Vec<String>,
    /// `None`: either direction.
    pub direction: Option<Direction>,
    /// `Some(true)`: only required relations; `Some(false)`: only non-required ones.
    pub required: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatchAny {
    pub path: Vec<PathStep>,
    /// Without it the path is followed outward from the searched entity and must end at one of
    /// `values`; with it the path starts at the `fromBlueprint` entities in `values` and must
    /// end at the searched entity.
    pub from_blueprint: Option<String>,
    pub values: Vec<String>,
}

/// One step of a `matchAny` path: a relation, followed once, or 1..=`max_hops` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStep {
    pub relation: String,
    pub max_hops: Option<u8>,
}

/// `propertySchema` of a property-schema rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySchemaFilter {
    pub ty: PropType,
    /// `None`: properties of `ty` with any (or no) format.
    pub format: Option<String>,
    pub items: Option<ItemsFilter>,
}

/// `propertySchema.items` (array properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemsFilter {
    pub ty: PropType,
    pub format: Option<String>,
}

impl Query {
    /// Whether a `{"scorecard": …}` rule appears anywhere (the backend then needs the
    /// organization's scorecards).
    pub fn uses_scorecards(&self) -> bool {
        match self {
            Query::Group { rules, .. } => rules.iter().any(Query::uses_scorecards),
            Query::Rule(rule) => matches!(rule, Rule::Scorecard(_)),
        }
    }

    /// Blueprints named by positive `$blueprint` `=` / `in` rules anywhere in the query, in the
    /// order they first appear (Port's `matchingBlueprints`).
    pub fn referenced_blueprints(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_blueprints(&mut out);
        out
    }

    fn collect_blueprints(&self, out: &mut Vec<String>) {
        match self {
            Query::Group { rules, .. } => rules.iter().for_each(|r| r.collect_blueprints(out)),
            Query::Rule(rule) => {
                for bp in blueprint_values(rule).into_iter().flatten() {
                    if !out.iter().any(|o| o == bp) {
                        out.push(bp.to_string());
                    }
                }
            }
        }
    }

    /// The blueprints every matching entity must belong to, when the query says so at its top
    /// level (an `and` group, or a lone rule, with `$blueprint` `=` / `in` rules); `None` when
    /// it does not restrict blueprints.
    pub fn blueprint_scope(&self) -> Option<Vec<String>> {
        let top: Vec<&Rule> = match self {
            Query::Rule(r) => vec![r],
            Query::Group { combinator: Combinator::And, rules } => rules
                .iter()
                .filter_map(|q| match q {
                    Query::Rule(r) => Some(r),
                    Query::Group { .. } => None,
                })
                .collect(),
            Query::Group { combinator: Combinator::Or, .. } => Vec::new(),
        };
        let mut scope: Option<Vec<String>> = None;
        for values in top.into_iter().filter_map(blueprint_values) {
            let values: Vec<String> = values.into_iter().map(str::to_string).collect();
            scope = Some(match scope {
                None => values,
                Some(prev) => prev.into_iter().filter(|b| values.contains(b)).collect(),
            });
        }
        scope
    }
}

/// The blueprint identifiers of a positive `$blueprint` `=` / `in` rule.
fn blueprint_values(rule: &Rule) -> Option<Vec<&str>> {
    let Rule::Property { property: PropertyRef::Meta(MetaProperty::Blueprint), op } = rule else {
        return None;
    };
    match op {
        PropertyOp::Eq(Literal::String(s)) => Some(vec![s.as_str()]),
        PropertyOp::In(list) => Some(list.iter().filter_map(Literal::as_str).collect()),
        _ => None,
    }
}
