//! A tiny SQL fragment builder: text plus positional parameters, always bound, never inlined.
//!
//! *Invariant:* the text of a [`SqlFrag`] comes from the store's own code (string literals,
//! column names, generated aliases); anything that came from a request — values, identifiers,
//! JSON paths into `properties` — is a [`SqlParam`]. Placeholders are written as `?`.

use std::borrow::Cow;

use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::{Sqlite, Type};

/// The SQL dialect a fragment is rendered for.
///
/// Fragments are built with `?` placeholders; [`SqlFrag::render`] numbers them (`$1..$n`) for
/// PostgreSQL by rewriting each `?`, each with its parameter's type (`$1::int8`). Fragment text therefore never contains a literal `?`:
/// Postgres fragments use `jsonb_exists()` rather than the `?` operator. The query compiler
/// picks its JSON functions by dialect (JSON1 on SQLite, jsonb operators on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    Sqlite,
    Postgres,
}

impl Dialect {
    /// What follows a placeholder whose text is stored in a `json` column (PostgreSQL casts).
    pub(crate) fn json_cast(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "::json",
        }
    }

    /// The function of the larger of two values.
    pub(crate) fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "MAX",
            Dialect::Postgres => "GREATEST",
        }
    }

    /// `= ANY(?)` (PostgreSQL, an array bound with [`crate::db::Q`]'s `bind_texts`/`bind_ints`)
    /// or `IN (SELECT value FROM json_each(?))` (SQLite, the same values as a JSON array): a
    /// membership test against one bound list, whatever its length. On PostgreSQL the plan
    /// does not depend on table statistics (an index probe per value), unlike `IN (VALUES …)`
    /// of pairs, which a never-analyzed table plans as a sequential scan.
    pub fn any_of(self) -> &'static str {
        match self {
            Dialect::Sqlite => " IN (SELECT value FROM json_each(?))",
            Dialect::Postgres => " = ANY(?)",
        }
    }

    /// What follows a placeholder whose text is stored in a `jsonb` column.
    pub(crate) fn jsonb_cast(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "::jsonb",
        }
    }
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
    /// A list of texts for [`SqlFrag::in_texts`] on PostgreSQL: one `text[]`. (SQLite binds
    /// each text as its own placeholder; should one reach it, it binds as a JSON array.)
    Texts(Vec<String>),
}

impl SqlParam {
    /// A JSON number as an integer when it is one, else as a real.
    pub fn number(n: &serde_json::Number) -> Self {
        match n.as_i64() {
            Some(i) => SqlParam::Int(i),
            None => SqlParam::Real(n.as_f64().unwrap_or(f64::NAN)),
        }
    }
}

impl From<&str> for SqlParam {
    fn from(s: &str) -> Self {
        SqlParam::Text(s.to_string())
    }
}
impl From<String> for SqlParam {
    fn from(s: String) -> Self {
        SqlParam::Text(s)
    }
}
impl From<i64> for SqlParam {
    fn from(i: i64) -> Self {
        SqlParam::Int(i)
    }
}
impl From<f64> for SqlParam {
    fn from(f: f64) -> Self {
        SqlParam::Real(f)
    }
}
impl From<bool> for SqlParam {
    fn from(b: bool) -> Self {
        SqlParam::Bool(b)
    }
}

/// Lets a `SqlParam` be passed straight to sqlx's `.bind()`.
impl Encode<'_, Sqlite> for SqlParam {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            SqlParam::Null => <Option<i64> as Encode<Sqlite>>::encode_by_ref(&None, buf),
            SqlParam::Bool(b) => <bool as Encode<Sqlite>>::encode_by_ref(b, buf),
            SqlParam::Int(i) => <i64 as Encode<Sqlite>>::encode_by_ref(i, buf),
            SqlParam::Real(f) => <f64 as Encode<Sqlite>>::encode_by_ref(f, buf),
            SqlParam::Text(s) => <String as Encode<Sqlite>>::encode_by_ref(s, buf),
            SqlParam::Texts(v) => <String as Encode<Sqlite>>::encode_by_ref(&texts_json(v), buf),
        }
    }

    fn produces(&self) -> Option<SqliteTypeInfo> {
        match self {
            SqlParam::Null => None,
            SqlParam::Bool(_) => Some(<bool as Type<Sqlite>>::type_info()),
            SqlParam::Int(_) => Some(<i64 as Type<Sqlite>>::type_info()),
            SqlParam::Real(_) => Some(<f64 as Type<Sqlite>>::type_info()),
            SqlParam::Text(_) | SqlParam::Texts(_) => Some(<String as Type<Sqlite>>::type_info()),
        }
    }
}

impl Type<Sqlite> for SqlParam {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(_ty: &SqliteTypeInfo) -> bool {
        true
    }
}

/// SQL text with its parameters, in placeholder order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlFrag {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

/// Most parts [`SqlFrag::join`] writes as one flat chain.
pub const FLAT_JOIN: usize = 8;

impl SqlFrag {
    /// A fragment starting with `sql` (store-written text only, see the module invariant).
    pub fn new(sql: &str) -> Self {
        Self { sql: sql.to_string(), params: Vec::new() }
    }

    /// A fragment that is just one placeholder.
    pub fn of_param(p: impl Into<SqlParam>) -> Self {
        let mut f = Self::default();
        f.param(p);
        f
    }

    /// Append store-written SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Append a placeholder bound to `p`.
    pub fn param(&mut self, p: impl Into<SqlParam>) -> &mut Self {
        self.sql.push('?');
        self.params.push(p.into());
        self
    }

    /// Append `?, ?, ?` bound to `ps` (nothing for an empty list).
    pub fn param_list<I>(&mut self, ps: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Into<SqlParam>,
    {
        for (i, p) in ps.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.param(p);
        }
        self
    }

    /// Every text bound, each of a list's too.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .flat_map(|p| match p {
                SqlParam::Text(t) => std::slice::from_ref(t),
                SqlParam::Texts(v) => v.as_slice(),
                _ => &[],
            })
            .map(String::as_str)
    }

    /// How many values are bound: each parameter, and each text of a list (the size limits
    /// of a compiled search count these, whichever way a dialect binds a list).
    pub fn values(&self) -> usize {
        self.params.iter().map(|p| if let SqlParam::Texts(v) = p { v.len() } else { 1 }).sum()
    }

    /// Append a membership test of the expression before it in `values`: ` IN (?, ?, …)` on
    /// SQLite, which builds its lookup once per statement, and ` = ANY(?)` with one `text[]` on
    /// PostgreSQL (` NOT IN` / ` <> ALL` when `negated`). A PostgreSQL `IN` of placeholders is an
    /// `ARRAY[$1, $2, …]` that a generic plan (sqlx prepares every statement; PostgreSQL plans
    /// it generically from its sixth run) rebuilds for each row it filters: a member's count over
    /// 95,000 rows took twice the unrestricted count for that alone (BENCHMARKS.md, team-scoped
    /// counts). One array is also one statement text whatever the list's length. One value is
    /// ` = ?` (` <> ?`) on both, which a planner reads as a key whatever its statistics. An
    /// empty list matches nothing (negated: everything). Numbers keep `IN (?, …)`.
    pub fn in_texts<I>(&mut self, d: Dialect, values: I, negated: bool) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut values: Vec<String> = values.into_iter().map(Into::into).collect();
        if values.len() == 1 {
            return self.push(if negated { " <> " } else { " = " }).param(SqlParam::Text(values.remove(0)));
        }
        match d {
            Dialect::Sqlite => {
                self.push(if negated { " NOT IN (" } else { " IN (" });
                self.param_list(values.into_iter().map(SqlParam::Text)).push(")")
            }
            Dialect::Postgres => {
                self.push(if negated { " <> ALL(" } else { " = ANY(" });
                self.param(SqlParam::Texts(values)).push(")")
            }
        }
    }

    /// Append a generated name (`prefix` + number): aliases and CTE names of the compiler.
    pub fn name(&mut self, prefix: &'static str, n: usize) -> &mut Self {
        self.sql.push_str(prefix);
        self.sql.push_str(&n.to_string());
        self
    }

    /// Append another fragment, text and parameters.
    pub fn append(&mut self, other: SqlFrag) -> &mut Self {
        self.sql.push_str(&other.sql);
        self.params.extend(other.params);
        self
    }

    /// `parts` joined by `sep` (`" AND "`), each in parentheses; `empty` when there are none.
    ///
    /// Up to [`FLAT_JOIN`] parts are written flat (`(a) OR (b) OR (c)`); more are split in
    /// halves, each half parenthesized, recursively, so the expression tree the database parses
    /// is `log2(n)` deep instead of `n` (SQLite refuses expressions deeper than 1,000, and a
    /// flat chain of 1,000 `OR`s is one). The halves keep the parts' order.
    pub fn join(parts: Vec<SqlFrag>, sep: &str, empty: &str) -> SqlFrag {
        if parts.is_empty() {
            return SqlFrag::new(empty);
        }
        let mut out = SqlFrag::default();
        Self::join_into(&mut out, parts, sep);
        out
    }

    fn join_into(out: &mut SqlFrag, mut parts: Vec<SqlFrag>, sep: &str) {
        if parts.len() <= FLAT_JOIN {
            for (i, p) in parts.into_iter().enumerate() {
                if i > 0 {
                    out.push(sep);
                }
                out.push("(").append(p).push(")");
            }
            return;
        }
        let second = parts.split_off(parts.len() / 2);
        out.push("(");
        Self::join_into(out, parts, sep);
        out.push(")").push(sep).push("(");
        Self::join_into(out, second, sep);
        out.push(")");
    }

    /// The text for `dialect`.
    pub fn render(&self, dialect: Dialect) -> Cow<'_, str> {
        match dialect {
            Dialect::Sqlite => Cow::Borrowed(&self.sql),
            Dialect::Postgres => {
                let mut out = String::with_capacity(self.sql.len() + 2 * self.params.len());
                let mut n = 0usize;
                for c in self.sql.chars() {
                    if c == '?' {
                        out.push('$');
                        out.push_str(&(n + 1).to_string());
                        // The parameter's type is part of the text: sqlx caches a prepared
                        // statement per text, with the parameter types of its first use, so
                        // `> $1` prepared for an integer would misread a float bound later.
                        out.push_str(match self.params.get(n) {
                            Some(SqlParam::Text(_)) => "::text",
                            Some(SqlParam::Texts(_)) => "::text[]",
                            Some(SqlParam::Int(_)) => "::int8",
                            Some(SqlParam::Real(_)) => "::float8",
                            Some(SqlParam::Bool(_)) => "::boolean",
                            Some(SqlParam::Null) | None => "",
                        });
                        n += 1;
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

/// A list of texts as a JSON array (SQLite's binding of a list: [`SqlParam::Texts`],
/// `Q::bind_texts`).
pub(crate) fn texts_json<S: serde::Serialize>(v: &[S]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// The JSON path of a top-level key, for `json_extract(col, ?)` and friends: `$."key"`, with
/// `"` and `\` escaped. The path is always bound as a parameter, so a hostile key can at worst
/// address nothing.
pub fn json_key_path(key: &str) -> String {
    let mut p = String::with_capacity(key.len() + 4);
    p.push_str("$.\"");
    for c in key.chars() {
        if c == '"' || c == '\\' {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('"');
    p
}

/// Escape `s` for use inside a `LIKE … ESCAPE '\'` pattern: `\`, `%` and `_` get a `\`.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_text_and_params_in_order() {
        let mut f = SqlFrag::new("SELECT 1 FROM t WHERE a = ");
        f.param("x").push(" AND b IN (").param_list([1i64, 2, 3]).push(")");
        let mut g = SqlFrag::new(" AND c = ");
        g.param(true);
        f.append(g);
        assert_eq!(f.sql, "SELECT 1 FROM t WHERE a = ? AND b IN (?, ?, ?) AND c = ?");
        assert_eq!(
            f.params,
            vec![
                SqlParam::Text("x".into()),
                SqlParam::Int(1),
                SqlParam::Int(2),
                SqlParam::Int(3),
                SqlParam::Bool(true)
            ]
        );
        assert_eq!(f.render(Dialect::Sqlite), f.sql);
        assert_eq!(
            f.render(Dialect::Postgres),
            "SELECT 1 FROM t WHERE a = $1::text AND b IN ($2::int8, $3::int8, $4::int8) AND c = $5::boolean"
        );
        assert_eq!(SqlFrag::new("a = ? AND b = ?").render(Dialect::Postgres), "a = $1 AND b = $2");
    }

    #[test]
    fn join_wraps_and_handles_empty() {
        let parts = vec![SqlFrag::of_param(1i64), SqlFrag::new("b")];
        let j = SqlFrag::join(parts, " OR ", "0");
        assert_eq!(j.sql, "(?) OR (b)");
        assert_eq!(SqlFrag::join(Vec::new(), " OR ", "0").sql, "0");
        let mut n = SqlFrag::default();
        n.name("m", 3).push(".rid");
        assert_eq!(n.sql, "m3.rid");
    }

    #[test]
    fn json_paths_are_quoted_and_escaped() {
        assert_eq!(json_key_path("cpu"), r#"$."cpu""#);
        assert_eq!(json_key_path("a-b@c"), r#"$."a-b@c""#);
        assert_eq!(json_key_path(r#"a"b\c"#), r#"$."a\"b\\c""#);
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(like_escape("plain"), "plain");
    }

    #[test]
    fn numbers_keep_integerness() {
        assert_eq!(SqlParam::number(&serde_json::Number::from(5)), SqlParam::Int(5));
        let n = serde_json::Number::from_f64(2.5).map(|n| SqlParam::number(&n));
        assert_eq!(n, Some(SqlParam::Real(2.5)));
    }
}

/// `items` in chunks whose lengths are powers of two, each at most `max` (a power of two), the
/// largest first: a multi-row statement per chunk then has one of a few texts, which stay in
/// each connection's prepared-statement cache instead of a new text (and a new prepare,
/// evicting the hot statements of the writes) for every row count.
pub(crate) fn pow2_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = 1usize << max.max(1).ilog2(); // a power of two, at most `max`
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut n = max;
        while n > rest.len() {
            n /= 2;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod chunk_tests {
    #[test]
    fn pow2_chunks_cover_the_items_in_order_with_few_lengths() {
        for n in 0..600usize {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = super::pow2_chunks(&items, 256).collect();
            assert_eq!(chunks.concat(), items, "{n} items, in order");
            assert!(chunks.iter().all(|c| c.len().is_power_of_two() && c.len() <= 256), "{n}: {chunks:?}");
            assert!(chunks.len() <= n / 256 + 9, "{n} items in {} chunks", chunks.len());
            let odd: Vec<&[usize]> = super::pow2_chunks(&items, 300).collect();
            assert_eq!(odd, chunks, "a maximum that is no power of two is rounded down");
        }
    }
}
