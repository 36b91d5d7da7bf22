//! What a rule looks at ([`Field`]) and the positive predicate of each operator on it.

use chrono::{DateTime, Utc};
use portolan_core::FieldError;
use portolan_core::error::join_path;
use portolan_core::search::{Bound, Literal, MetaProperty, Positive, format_timestamp, parse_timestamp};

use crate::sql::{SqlFrag, SqlParam, like_escape};

/// `strftime` format giving the canonical timestamp text (`2024-01-31T10:00:00.000Z`).
const TS: &str = "'%Y-%m-%dT%H:%M:%fZ'";

/// A table alias: the searched entity `e`, or a generated `m<n>` (mirror hops).
#[derive(Debug, Clone, Copy)]
pub(super) enum Alias {
    E,
    M(usize),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Col {
    pub alias: Alias,
    pub name: &'static str,
}

impl Col {
    pub fn e(name: &'static str) -> Self {
        Col { alias: Alias::E, name }
    }
    fn write(self, f: &mut SqlFrag) {
        match self.alias {
            Alias::E => f.push("e."),
            Alias::M(n) => f.name("m", n).push("."),
        };
        f.push(self.name);
    }
}

/// The value a rule tests.
#[derive(Debug, Clone)]
pub(super) enum Field {
    /// A value of a JSON object column (`properties`) at a bound JSON path.
    Json { col: Col, path: String },
    /// A relation of the `relations` column: a string, an array of strings, or null.
    Relation { col: Col, path: String },
    /// A nullable text column (`identifier`, `title`, …).
    Text(Col),
    /// A timestamp column in canonical form (`created_at`, `updated_at`).
    Time(Col),
    /// A JSON array of strings (`team`).
    Team(Col),
}

/// The column behind a meta-property, on `alias`.
pub(super) fn meta_field(m: MetaProperty, alias: Alias) -> Field {
    let col = |name| Col { alias, name };
    match m {
        MetaProperty::Identifier => Field::Text(col("identifier")),
        MetaProperty::Title => Field::Text(col("title")),
        MetaProperty::Icon => Field::Text(col("icon")),
        MetaProperty::Blueprint => Field::Text(col("blueprint")),
        MetaProperty::CreatedBy => Field::Text(col("created_by")),
        MetaProperty::UpdatedBy => Field::Text(col("updated_by")),
        MetaProperty::Datasource => Field::Text(col("datasource")),
        MetaProperty::CreatedAt => Field::Time(col("created_at")),
        MetaProperty::UpdatedAt => Field::Time(col("updated_at")),
        MetaProperty::Team => Field::Team(col("team")),
    }
}

/// `NOT coalesce((p), 0)` when negated: a negative operator is the complement of its positive
/// twin, so it matches where the positive predicate is false *or* unknown (missing values).
pub(super) fn negate_if(negated: bool, p: SqlFrag) -> SqlFrag {
    if !negated {
        return p;
    }
    let mut f = SqlFrag::new("NOT coalesce((");
    f.append(p).push("), 0)");
    f
}

/// The positive predicate of `pos` on `field`. `path` is the rule's path, for errors.
pub(super) fn predicate(
    field: &Field,
    pos: Positive<'_>,
    now: DateTime<Utc>,
    path: &str,
) -> Result<SqlFrag, FieldError> {
    match field {
        Field::Json { col, path: jp } => Ok(json(*col, jp, pos, now)),
        Field::Relation { col, path: jp } => Ok(relation(*col, jp, pos, now)),
        Field::Text(col) => text(*col, false, pos, now, path),
        Field::Time(col) => text(*col, true, pos, now, path),
        Field::Team(col) => team(*col, pos, path),
    }
}

fn value_error(path: &str, message: &str) -> FieldError {
    FieldError::new(join_path(path, "value"), message)
}

/// `LIKE` pattern for the pattern operators: ASCII-case-folded, wildcards escaped.
fn like_pattern(pos: Positive<'_>) -> Option<String> {
    let (s, before, after) = match pos {
        Positive::Contains(s) => (s, "%", "%"),
        Positive::BeginsWith(s) => (s, "", "%"),
        Positive::EndsWith(s) => (s, "%", ""),
        _ => return None,
    };
    Some(format!("{before}{}{after}", like_escape(&s.to_ascii_lowercase())))
}

/// Writes `json_extract(col, ?)`, `json_type(col, ?)` … for one JSON path.
struct JsonAt<'a> {
    col: Col,
    path: &'a str,
}

impl JsonAt<'_> {
    fn call(&self, f: &mut SqlFrag, func: &str) {
        f.push(func).push("(");
        self.col.write(f);
        f.push(", ").param(self.path).push(")");
    }
    fn value(&self, f: &mut SqlFrag) {
        self.call(f, "json_extract");
    }
    fn ty(&self, f: &mut SqlFrag) {
        self.call(f, "json_type");
    }
    /// `(json_type(..) = 'text' AND <op on json_extract(..)>)`: `write_op` writes what
    /// follows the value, e.g. ` = ?`.
    fn typed(&self, f: &mut SqlFrag, types: &str, wrap_ts: bool, write_op: impl FnOnce(&mut SqlFrag)) {
        f.push("(");
        self.ty(f);
        f.push(types).push(" AND ");
        if wrap_ts {
            f.push("strftime(").push(TS).push(", ");
            self.value(f);
            f.push(")");
        } else {
            self.value(f);
        }
        write_op(f);
        f.push(")");
    }
}

const IS_TEXT: &str = " = 'text'";
const IS_NUMBER: &str = " IN ('integer', 'real')";

fn json(col: Col, jp: &str, pos: Positive<'_>, now: DateTime<Utc>) -> SqlFrag {
    let at = JsonAt { col, path: jp };
    let mut f = SqlFrag::default();
    match pos {
        Positive::Eq(Literal::Null) => {
            f.push("coalesce(");
            at.ty(&mut f);
            f.push(", 'null') = 'null'");
        }
        Positive::Eq(Literal::Bool(b)) => {
            at.ty(&mut f);
            f.push(if *b { " = 'true'" } else { " = 'false'" });
        }
        Positive::Eq(Literal::Number(n)) => at.typed(&mut f, IS_NUMBER, false, |f| {
            f.push(" = ").param(SqlParam::number(n));
        }),
        Positive::Eq(Literal::String(s)) => match parse_timestamp(s) {
            None => at.typed(&mut f, IS_TEXT, false, |f| {
                f.push(" = ").param(s.as_str());
            }),
            // An ISO date-time also matches the same instant written differently.
            Some(t) => {
                f.push("(");
                at.ty(&mut f);
                f.push(IS_TEXT).push(" AND (");
                at.value(&mut f);
                f.push(" = ").param(s.as_str()).push(" OR strftime(").push(TS).push(", ");
                at.value(&mut f);
                f.push(") = ").param(format_timestamp(t)).push("))");
            }
        },
        Positive::Eq(arr @ Literal::Array(_)) => at.typed(&mut f, " = 'array'", false, |f| {
            f.push(" = json(").param(arr.to_json().to_string()).push(")");
        }),
        Positive::Cmp(op, Bound::Number(n)) => at.typed(&mut f, IS_NUMBER, false, |f| {
            f.push(" ").push(op.as_str()).push(" ").param(SqlParam::number(n));
        }),
        Positive::Cmp(op, Bound::DateTime(t)) => at.typed(&mut f, IS_TEXT, true, |f| {
            f.push(" ").push(op.as_str()).push(" ").param(format_timestamp(*t));
        }),
        Positive::Between(range) => {
            let (from, to) = range.resolve(now);
            at.typed(&mut f, IS_TEXT, true, |f| {
                f.push(" BETWEEN ").param(format_timestamp(from)).push(" AND ").param(format_timestamp(to));
            });
        }
        Positive::Contains(_) | Positive::BeginsWith(_) | Positive::EndsWith(_) => {
            let pattern = like_pattern(pos).unwrap_or_default();
            f.push("(");
            at.ty(&mut f);
            f.push(IS_TEXT).push(" AND lower(");
            at.value(&mut f);
            f.push(") LIKE ").param(pattern).push(" ESCAPE '\\')");
        }
        Positive::ContainsAny(list) => {
            f.push("EXISTS (SELECT 1 FROM json_each(");
            col.write(&mut f);
            f.push(", ").param(jp).push(") j WHERE ");
            f.append(scalar_in("j.value", "j.type", list));
            f.push(")");
        }
        Positive::In(list) => {
            f.append(scalar_in_json(&at, list));
        }
        Positive::NonEmpty => {
            f.push("CASE coalesce(");
            at.ty(&mut f);
            f.push(", 'null') WHEN 'null' THEN 0 WHEN 'text' THEN ");
            at.value(&mut f);
            f.push(" <> '' WHEN 'array' THEN ");
            at.call(&mut f, "json_array_length");
            f.push(" > 0 WHEN 'object' THEN ");
            at.value(&mut f);
            f.push(" <> '{}' ELSE 1 END");
        }
        Positive::Expired => at.typed(&mut f, IS_TEXT, true, |f| {
            f.push(" <= ").param(format_timestamp(now));
        }),
    }
    f
}

/// Scalars of `list` matched against a JSON value given by its SQL value and `json_type`
/// expressions (`j.value` / `j.type` of `json_each`): strings against text, numbers against
/// numbers, booleans against `true` / `false`.
fn scalar_in(value: &str, ty: &str, list: &[Literal]) -> SqlFrag {
    let (strings, numbers, bools) = split_scalars(list);
    let mut parts = Vec::new();
    if !strings.is_empty() {
        let mut p = SqlFrag::new(ty);
        p.push(" = 'text' AND ").push(value).push(" IN (").param_list(strings).push(")");
        parts.push(p);
    }
    if !numbers.is_empty() {
        let mut p = SqlFrag::new(ty);
        p.push(IS_NUMBER).push(" AND ").push(value).push(" IN (").param_list(numbers).push(")");
        parts.push(p);
    }
    for b in bools {
        let mut p = SqlFrag::new(ty);
        p.push(if b { " = 'true'" } else { " = 'false'" });
        parts.push(p);
    }
    SqlFrag::join(parts, " OR ", "0")
}

/// [`scalar_in`] for a value at a JSON path.
fn scalar_in_json(at: &JsonAt<'_>, list: &[Literal]) -> SqlFrag {
    let (strings, numbers, bools) = split_scalars(list);
    let mut parts = Vec::new();
    for (types, values) in [(IS_TEXT, strings), (IS_NUMBER, numbers)] {
        if !values.is_empty() {
            let mut p = SqlFrag::default();
            at.typed(&mut p, types, false, |f| {
                f.push(" IN (").param_list(values).push(")");
            });
            parts.push(p);
        }
    }
    for b in bools {
        let mut p = SqlFrag::default();
        at.ty(&mut p);
        p.push(if b { " = 'true'" } else { " = 'false'" });
        parts.push(p);
    }
    SqlFrag::join(parts, " OR ", "0")
}

fn split_scalars(list: &[Literal]) -> (Vec<SqlParam>, Vec<SqlParam>, Vec<bool>) {
    let mut strings = Vec::new();
    let mut numbers = Vec::new();
    let mut bools = Vec::new();
    for l in list {
        match l {
            Literal::String(s) => strings.push(SqlParam::Text(s.clone())),
            Literal::Number(n) => numbers.push(SqlParam::number(n)),
            Literal::Bool(b) if !bools.contains(b) => bools.push(*b),
            _ => {}
        }
    }
    (strings, numbers, bools)
}

/// Relations: `=` and `in` mean "points at (one of) these identifiers", for single and many
/// relations alike; `= null` means "points at nothing".
fn relation(col: Col, jp: &str, pos: Positive<'_>, now: DateTime<Utc>) -> SqlFrag {
    match pos {
        Positive::Eq(s @ Literal::String(_)) => json(col, jp, Positive::ContainsAny(std::slice::from_ref(s)), now),
        Positive::In(list) => json(col, jp, Positive::ContainsAny(list), now),
        Positive::Eq(Literal::Null) => negate_if(true, json(col, jp, Positive::NonEmpty, now)),
        Positive::Eq(Literal::Number(_) | Literal::Bool(_)) => SqlFrag::new("0"),
        _ => json(col, jp, pos, now),
    }
}

/// A text column; `canonical` ones (timestamps) compare against normalized date-times without
/// re-formatting the column.
fn text(col: Col, canonical: bool, pos: Positive<'_>, now: DateTime<Utc>, path: &str) -> Result<SqlFrag, FieldError> {
    let mut f = SqlFrag::default();
    let as_ts = |f: &mut SqlFrag| {
        if canonical {
            col.write(f);
        } else {
            f.push("strftime(").push(TS).push(", ");
            col.write(f);
            f.push(")");
        }
    };
    match pos {
        Positive::Eq(Literal::Null) => {
            col.write(&mut f);
            f.push(" IS NULL");
        }
        Positive::Eq(Literal::String(s)) => {
            col.write(&mut f);
            match parse_timestamp(s).filter(|_| canonical) {
                Some(t) => f.push(" = ").param(format_timestamp(t)),
                None => f.push(" = ").param(s.as_str()),
            };
        }
        Positive::Eq(Literal::Number(n)) => {
            col.write(&mut f);
            f.push(" = ").param(n.to_string());
        }
        Positive::Eq(Literal::Bool(_) | Literal::Array(_)) => {
            f.push("0");
        }
        Positive::Cmp(_, Bound::Number(_)) => {
            return Err(value_error(path, "must be an ISO-8601 date-time string (this property is not a number)"));
        }
        Positive::Cmp(op, Bound::DateTime(t)) => {
            as_ts(&mut f);
            f.push(" ").push(op.as_str()).push(" ").param(format_timestamp(*t));
        }
        Positive::Between(range) => {
            let (from, to) = range.resolve(now);
            as_ts(&mut f);
            f.push(" BETWEEN ").param(format_timestamp(from)).push(" AND ").param(format_timestamp(to));
        }
        Positive::Contains(_) | Positive::BeginsWith(_) | Positive::EndsWith(_) => {
            f.push("lower(");
            col.write(&mut f);
            f.push(") LIKE ").param(like_pattern(pos).unwrap_or_default()).push(" ESCAPE '\\'");
        }
        Positive::ContainsAny(list) | Positive::In(list) => {
            let values: Vec<SqlParam> = list
                .iter()
                .filter_map(|l| match l {
                    Literal::String(s) => Some(SqlParam::Text(s.clone())),
                    Literal::Number(n) => Some(SqlParam::Text(n.to_string())),
                    _ => None,
                })
                .collect();
            if values.is_empty() {
                f.push("0");
            } else {
                col.write(&mut f);
                f.push(" IN (").param_list(values).push(")");
            }
        }
        Positive::NonEmpty => {
            f.push("coalesce(");
            col.write(&mut f);
            f.push(", '') <> ''");
        }
        Positive::Expired => {
            as_ts(&mut f);
            f.push(" <= ").param(format_timestamp(now));
        }
    }
    Ok(f)
}

/// `$team`: a JSON array of team identifiers. `=` a team and `in` / `containsAny` teams all
/// mean "belongs to (one of) these teams"; the pattern operators match any team.
fn team(col: Col, pos: Positive<'_>, path: &str) -> Result<SqlFrag, FieldError> {
    let mut f = SqlFrag::default();
    let each = |f: &mut SqlFrag| {
        f.push("EXISTS (SELECT 1 FROM json_each(");
        col.write(f);
        f.push(") j WHERE ");
    };
    match pos {
        Positive::Eq(Literal::Null) => {
            f.push("coalesce(json_array_length(");
            col.write(&mut f);
            f.push("), 0) = 0");
        }
        Positive::Eq(s @ Literal::String(_)) => return team(col, Positive::ContainsAny(std::slice::from_ref(s)), path),
        Positive::Eq(arr @ Literal::Array(_)) => {
            f.push("json(");
            col.write(&mut f);
            f.push(") = json(").param(arr.to_json().to_string()).push(")");
        }
        Positive::Eq(Literal::Number(_) | Literal::Bool(_)) => {
            f.push("0");
        }
        Positive::Cmp(..) | Positive::Between(_) | Positive::Expired => {
            return Err(FieldError::new(join_path(path, "operator"), "is not supported on $team"));
        }
        Positive::Contains(_) | Positive::BeginsWith(_) | Positive::EndsWith(_) => {
            each(&mut f);
            f.push("lower(j.value) LIKE ").param(like_pattern(pos).unwrap_or_default()).push(" ESCAPE '\\')");
        }
        Positive::ContainsAny(list) | Positive::In(list) => {
            let names: Vec<SqlParam> = list.iter().filter_map(|l| l.as_str().map(SqlParam::from)).collect();
            if names.is_empty() {
                f.push("0");
            } else {
                each(&mut f);
                f.push("j.value IN (").param_list(names).push("))");
            }
        }
        Positive::NonEmpty => {
            f.push("coalesce(json_array_length(");
            col.write(&mut f);
            f.push("), 0) > 0");
        }
    }
    Ok(f)
}
