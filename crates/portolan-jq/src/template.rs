//! Port's `{{ … }}` template renderer (`jq-node-bindings` `lib/template.js`; `docs/reference/port-api.md` §5.5).
//!
//! [`render`] walks a JSON value and evaluates every `{{ expr }}` in its strings (object keys
//! included) with the engine's Port dialect (single-quoted strings, no `env`, first output):
//!
//! - A string that is exactly one template (surrounding whitespace allowed) is replaced by the
//!   jq result **with its JSON type**: `"{{ .inputs }}"` can become an object or a number.
//! - Otherwise every template's result is inserted as text (strings raw, other values as JSON)
//!   between the literal parts: `"id-{{ .n }}"` → `"id-3"`.
//! - Braces inside quoted strings of an expression do not end it (`{{ "}}" }}`); a `{{` inside
//!   an expression is an error, as is an unterminated `{{`.
//! - Keys are templated too (always as text). A key that renders to `null` or `""` drops its
//!   pair. The key `{{ spreadValue() }}` merges its value (which must render to an object, or
//!   `null` for nothing) into the enclosing object at that position.
//! - A failing jq expression renders as `null` (Port's rule) with [`render`];
//!   [`render_strict`] reports it instead. Time, step and size limits, template syntax errors
//!   and filters that do not compile are errors in both.
//!
//! Every error names the place in the template (`.body.labels[1]`, or `.headers["{{ .k }}"]`
//! for a key) and the expression.

use crate::{JqBudget, JqEngine, JqError};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Why rendering a template failed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error at {path}: {kind}")]
pub struct TemplateError {
    /// Where in the template: a jq-style path (`.` is the root), with `(key)` for object keys.
    pub path: String,
    /// What went wrong.
    pub kind: TemplateErrorKind,
}

/// The cause of a [`TemplateError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateErrorKind {
    /// `{{` without a closing `}}`.
    #[error("unterminated `{{{{` in {0:?}")]
    Unterminated(String),
    /// `{{` inside an expression.
    #[error("nested `{{{{` in {0:?}")]
    Nested(String),
    /// The expression failed (compile errors and limits always; runtime errors in strict mode).
    #[error("expression `{expr}` failed: {error}")]
    Jq {
        /// The expression between the braces, trimmed.
        expr: String,
        /// The engine's error.
        error: JqError,
    },
    /// `{{ spreadValue() }}` whose value is not an object.
    #[error("spreadValue() needs an object value, got {0}")]
    Spread(&'static str),
}

/// Render `template` against `context` with Port's rules (a failing expression is `null`),
/// every expression within `budget` (one deadline for the whole template, spent for its
/// tenant: a template of many slow expressions ends when the budget does, and one
/// organization's templates wait only for that organization's evaluations).
pub fn render(engine: &JqEngine, budget: &JqBudget, template: &Value, context: &Value) -> Result<Value, TemplateError> {
    Renderer { engine, budget, context, strict: false }.value(template, &mut String::from("."))
}

/// Like [`render`], but any failing expression is an error.
pub fn render_strict(
    engine: &JqEngine,
    budget: &JqBudget,
    template: &Value,
    context: &Value,
) -> Result<Value, TemplateError> {
    Renderer { engine, budget, context, strict: true }.value(template, &mut String::from("."))
}

/// A piece of a template string.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Expr(&'a str),
}

/// Split a string into literal text and `{{ … }}` expressions.
fn parse(s: &str) -> Result<Vec<Piece<'_>>, TemplateErrorKind> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let body = &rest[open + 2..];
        let bytes = body.as_bytes();
        let mut i = 0;
        let mut quote: Option<u8> = None;
        let mut depth = 0usize; // single `{` of object constructions inside the expression
        let close = loop {
            let Some(&c) = bytes.get(i) else { return Err(TemplateErrorKind::Unterminated(s.to_owned())) };
            match quote {
                Some(q) => {
                    if c == b'\\' {
                        i += 1;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    b'"' | b'\'' => quote = Some(c),
                    b'{' if depth == 0 && bytes.get(i + 1) == Some(&b'{') => {
                        return Err(TemplateErrorKind::Nested(s.to_owned()));
                    }
                    b'{' => depth += 1,
                    b'}' if depth == 0 && bytes.get(i + 1) == Some(&b'}') => break i,
                    b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
            i += 1;
        };
        pieces.push(Piece::Expr(body[..close].trim()));
        rest = &body[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

fn is_spread(key: &str) -> bool {
    matches!(parse(key).as_deref(), Ok([Piece::Expr(e)]) if e.replace(' ', "") == "spreadValue()") && {
        let t = key.trim();
        t.starts_with("{{") && t.ends_with("}}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

struct Renderer<'a> {
    engine: &'a JqEngine,
    budget: &'a JqBudget,
    context: &'a Value,
    strict: bool,
}

impl Renderer<'_> {
    fn eval(&self, expr: &str, path: &str) -> Result<Value, TemplateError> {
        let fail = |error| TemplateError {
            path: path.to_owned(),
            kind: TemplateErrorKind::Jq { expr: expr.to_owned(), error },
        };
        match self.engine.first_in(self.budget, expr, self.context) {
            Ok(v) => Ok(v),
            Err(e @ (JqError::Compile(_) | JqError::Limit(_))) => Err(fail(e)),
            Err(e) if self.strict => Err(fail(e)),
            Err(_) => Ok(Value::Null),
        }
    }

    /// Render a string: typed if it is exactly one template, else interpolated text.
    fn string(&self, s: &str, path: &str, typed: bool) -> Result<Value, TemplateError> {
        if !s.contains("{{") {
            return Ok(Value::String(s.to_owned()));
        }
        let pieces = parse(s).map_err(|kind| TemplateError { path: path.to_owned(), kind })?;
        if typed && let [Piece::Expr(e)] = pieces.as_slice() {
            return self.eval(e, path);
        }
        let trimmed: Vec<&Piece> =
            pieces.iter().filter(|p| !matches!(p, Piece::Text(t) if t.trim().is_empty())).collect();
        if typed && let [Piece::Expr(e)] = trimmed.as_slice() {
            return self.eval(e, path);
        }
        let mut out = String::new();
        for p in &pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Expr(e) => out.push_str(&text_of(&self.eval(e, path)?)),
            }
        }
        Ok(Value::String(out))
    }

    fn value(&self, v: &Value, path: &mut String) -> Result<Value, TemplateError> {
        match v {
            Value::String(s) => self.string(s, path, true),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    out.push(self.value(item, path)?);
                    path.truncate(len);
                }
                Ok(Value::Array(out))
            }
            Value::Object(o) => {
                let mut out = Map::with_capacity(o.len());
                for (k, item) in o {
                    let len = path.len();
                    push_key(path, k);
                    let rendered = self.value(item, path)?;
                    if is_spread(k) {
                        match rendered {
                            Value::Object(m) => out.extend(m),
                            Value::Null => {}
                            other => {
                                let kind = TemplateErrorKind::Spread(type_name(&other));
                                return Err(TemplateError { path: path.clone(), kind });
                            }
                        }
                        path.truncate(len);
                        continue;
                    }
                    path.push_str(" (key)");
                    let key = self.string(k, path, true)?;
                    path.truncate(len);
                    match key {
                        Value::Null => {}
                        Value::String(s) if s.is_empty() => {}
                        key => {
                            out.insert(text_of(&key), rendered);
                        }
                    }
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }
}

fn push_key(path: &mut String, k: &str) {
    if !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with(|c: char| c.is_ascii_digit())
    {
        if !path.ends_with('.') {
            path.push('.');
        }
        path.push_str(k);
    } else {
        if path == "." {
            path.clear();
            path.push('.');
        }
        path.push('[');
        path.push_str(&Value::String(k.to_owned()).to_string());
        path.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::{Piece, TemplateErrorKind, parse};

    #[test]
    fn parses_pieces() {
        assert_eq!(parse("a{{ .x }}b").unwrap(), vec![Piece::Text("a"), Piece::Expr(".x"), Piece::Text("b")]);
        assert_eq!(parse("{{ \"}}\" }}").unwrap(), vec![Piece::Expr("\"}}\"")]);
        assert_eq!(parse("{{ '}}' + \"{{\" }}").unwrap(), vec![Piece::Expr("'}}' + \"{{\"")]);
        assert_eq!(parse("{{ \"a\\\"}}\" }}").unwrap(), vec![Piece::Expr("\"a\\\"}}\"")]);
        assert_eq!(parse("no braces { } }}").unwrap(), vec![Piece::Text("no braces { } }}")]);
        assert!(matches!(parse("{{ .a "), Err(TemplateErrorKind::Unterminated(_))));
        assert!(matches!(parse("{{ {{ .a }} }}"), Err(TemplateErrorKind::Nested(_))));
        assert_eq!(parse("{{ {a: {b: 1}} }}").unwrap(), vec![Piece::Expr("{a: {b: 1}}")]);
    }
}
