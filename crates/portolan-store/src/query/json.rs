//! JSON access per dialect: the pieces of SQL the predicates use to look at a JSON value,
//! written with SQLite's JSON1 functions or PostgreSQL's jsonb operators.
//!
//! Types are reported with SQLite's `json_type` names on both dialects (`'text'`, `'integer'` /
//! `'real'`, `'true'`, `'false'`, `'null'`, `'array'`, `'object'`, SQL NULL when missing), so
//! the operators are written once. On PostgreSQL a jsonb type becomes such a name through a
//! `CASE`; numbers are read through a `CASE` that only casts a value that is a number, because
//! PostgreSQL does not promise to evaluate `AND` left to right.

use super::operand::Col;
use crate::sql::{Dialect, SqlFrag, SqlParam, json_key_path};

/// `strftime` format giving the canonical timestamp text (`2024-01-31T10:00:00.000Z`).
const TS: &str = "'%Y-%m-%dT%H:%M:%fZ'";

/// Where the value is: at a top-level key of a JSON column, or the `value` of the current row
/// of `j`, the elements of an array ([`JsonAt::each`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum Src<'a> {
    Key { col: Col, key: &'a str },
    Elem,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct JsonAt<'a> {
    pub d: Dialect,
    pub src: Src<'a>,
}

impl<'a> JsonAt<'a> {
    pub fn key(d: Dialect, col: Col, key: &'a str) -> Self {
        JsonAt { d, src: Src::Key { col, key } }
    }

    pub fn elem(d: Dialect) -> Self {
        JsonAt { d, src: Src::Elem }
    }

    /// PostgreSQL: the jsonb value (`col -> ?`, `j.value`).
    fn raw(&self, f: &mut SqlFrag) {
        match self.src {
            Src::Key { col, key } => {
                f.push("(");
                col.write(f);
                f.push(" -> ").param(key).push(")");
            }
            Src::Elem => {
                f.push("j.value");
            }
        }
    }

    /// SQLite: `func(col, '$."key"')`.
    fn call(&self, f: &mut SqlFrag, func: &str, col: Col, key: &str) {
        f.push(func).push("(");
        col.write(f);
        f.push(", ").param(json_key_path(key)).push(")");
    }

    pub fn dialect(&self) -> Dialect {
        self.d
    }

    /// The value's type, as SQLite's `json_type` names it.
    pub fn ty(&self, f: &mut SqlFrag) {
        match (self.d, self.src) {
            (Dialect::Sqlite, Src::Key { col, key }) => self.call(f, "json_type", col, key),
            (Dialect::Sqlite, Src::Elem) => {
                f.push("j.type");
            }
            (Dialect::Postgres, _) => {
                f.push("(CASE jsonb_typeof(");
                self.raw(f);
                f.push(") WHEN 'string' THEN 'text' WHEN 'number' THEN 'real' WHEN 'boolean' THEN ");
                self.raw(f);
                f.push(" #>> '{}' ELSE jsonb_typeof(");
                self.raw(f);
                f.push(") END)");
            }
        }
    }

    /// The value as SQL text (strings unquoted; other values as JSON text). Compare it only
    /// where [`JsonAt::ty`] says `'text'` (or `'object'`).
    pub fn text(&self, f: &mut SqlFrag) {
        match (self.d, self.src) {
            (Dialect::Sqlite, Src::Key { col, key }) => self.call(f, "json_extract", col, key),
            (Dialect::Sqlite, Src::Elem) => {
                f.push("j.value");
            }
            (Dialect::Postgres, _) => {
                f.push("(");
                self.raw(f);
                f.push(" #>> '{}')");
            }
        }
    }

    /// The value as an SQL number (NULL when it is not a number on PostgreSQL).
    pub fn num(&self, f: &mut SqlFrag) {
        match self.d {
            Dialect::Sqlite => self.text(f),
            Dialect::Postgres => {
                f.push("(CASE WHEN jsonb_typeof(");
                self.raw(f);
                f.push(") = 'number' THEN ");
                self.text(f);
                f.push("::numeric END)");
            }
        }
    }

    /// The value normalized as a canonical timestamp (NULL when it is not one).
    pub fn ts(&self, f: &mut SqlFrag) {
        ts_call(self.d, f, |f| self.text(f));
    }

    /// The length of the value, which must be an array.
    pub fn array_len(&self, f: &mut SqlFrag) {
        match (self.d, self.src) {
            (Dialect::Sqlite, Src::Key { col, key }) => self.call(f, "json_array_length", col, key),
            (Dialect::Sqlite, Src::Elem) => {
                f.push("json_array_length(j.value)");
            }
            (Dialect::Postgres, _) => {
                f.push("jsonb_array_length(");
                self.raw(f);
                f.push(")");
            }
        }
    }

    /// `<value> = <JSON document bound as text>` (arrays, objects).
    pub fn eq_json(&self, f: &mut SqlFrag, doc: String) {
        match self.d {
            Dialect::Sqlite => {
                self.text(f);
                f.push(" = json(").param(doc).push(")");
            }
            Dialect::Postgres => {
                self.raw(f);
                f.push(" = ").param(doc).push("::jsonb");
            }
        }
    }

    /// `FROM <elements> j`: the elements of an array value (a scalar stands for itself), with
    /// columns `j.value` (and `j.type` on SQLite) for [`JsonAt::elem`].
    pub fn each(&self, f: &mut SqlFrag) {
        match (self.d, self.src) {
            (Dialect::Sqlite, Src::Key { col, key }) => {
                f.push("json_each(");
                col.write(f);
                f.push(", ").param(json_key_path(key)).push(") j");
            }
            (Dialect::Postgres, Src::Key { .. }) => {
                f.push("jsonb_array_elements(CASE WHEN jsonb_typeof(");
                self.raw(f);
                f.push(") = 'array' THEN ");
                self.raw(f);
                f.push(" ELSE jsonb_build_array(");
                self.raw(f);
                f.push(") END) j(value)");
            }
            (_, Src::Elem) => {
                f.push("(SELECT NULL AS value, NULL AS type) j");
            }
        }
    }

    /// PostgreSQL, a top-level key: `col @> {"key": <value>}`, the containment test a GIN
    /// index (`jsonb_path_ops`) answers. `None` where it does not apply.
    pub fn contains(&self, value: &SqlParam) -> Option<SqlFrag> {
        let (Dialect::Postgres, Src::Key { col, key }) = (self.d, self.src) else {
            return None;
        };
        let cast = match value {
            SqlParam::Text(_) => "::text",
            SqlParam::Int(_) | SqlParam::Real(_) => "::numeric",
            SqlParam::Bool(_) => "::boolean",
            SqlParam::Null | SqlParam::Texts(_) => return None,
        };
        let mut f = SqlFrag::default();
        col.write(&mut f);
        f.push(" @> jsonb_build_object(").param(key).push("::text, ").param(value.clone()).push(cast).push(")");
        Some(f)
    }
}

/// `wrap` (a text expression) normalized as a canonical timestamp.
pub(super) fn ts_call(d: Dialect, f: &mut SqlFrag, wrap: impl FnOnce(&mut SqlFrag)) {
    match d {
        Dialect::Sqlite => f.push("strftime(").push(TS).push(", "),
        Dialect::Postgres => f.push("portolan_ts("),
    };
    wrap(f);
    f.push(")");
}

/// `lower(<text>)` folding ASCII letters only, on both dialects.
pub(super) fn lower_ascii(d: Dialect, f: &mut SqlFrag, wrap: impl FnOnce(&mut SqlFrag)) {
    f.push("lower(");
    wrap(f);
    if d == Dialect::Postgres {
        f.push(" COLLATE \"C\"");
    }
    f.push(")");
}
