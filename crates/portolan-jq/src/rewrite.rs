//! Source rewrites applied before jaq sees a filter.
//!
//! 1. **Port's single-quote rewrite.** Port's jq wrapper (`jq-node-bindings`, `lib/jq.js`
//!    `formatFilter`) turns single-quoted string literals into double-quoted ones with a regular
//!    expression. That regex also rewrites quotes inside double-quoted strings (`"rock 'n roll"`)
//!    and misses `.properties.'prop-with-dash'`. Here a small lexer does it: a `'` is only
//!    rewritten where it opens or closes a string literal in code position. A single quote is
//!    never valid jq outside a string or comment, so this cannot change a filter libjq accepts.
//! 2. **Recursion guard.** The body of every user `def` becomes `GUARD | (body)`, where `GUARD`
//!    is a native filter that fails once the worker's stack is three quarters full. Without it
//!    `def f: 1+f; f` overflows the stack, which aborts the whole process.

/// Name of the native stack-guard filter.
pub const GUARD: &str = "__portolan_guard";
/// Prefix of the engine's internal names; user filters may not mention it.
pub const RESERVED: &str = "__portolan_";

/// Where the scanner is.
enum Mode {
    /// Filter code. `depth` counts open brackets of this frame (a `)` at depth 0 closes a
    /// string interpolation); `defs` holds the `def`s whose signature or body is open.
    Code { depth: usize, defs: Vec<Def> },
    /// Inside a `"…"` literal.
    Double,
    /// Inside a `'…'` literal (emitted as `"…"`).
    Single,
}

/// An open `def` at bracket depth `depth`; `body` once its `:` was seen.
struct Def {
    depth: usize,
    body: bool,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Apply both rewrites (see the module docs).
///
/// - Single quotes inside `"…"` strings and in `#` comments are left alone.
/// - Inside a single-quoted literal, `"` becomes `\"` and `\'` becomes `'`; other escapes
///   (`\n`, `\\`, `\(…)` interpolation) are kept as written.
/// - String interpolations are scanned recursively, so `"\(.a + 'x')"` works.
/// - An unterminated literal is copied as is; the jq parser reports the error.
pub fn rewrite(src: &str) -> String {
    rewrite_with(src, true)
}

/// Only the recursion-guard rewrite (plain jq, where `'` is not a string delimiter).
pub fn guard_defs_only(src: &str) -> String {
    rewrite_with(src, false)
}

fn rewrite_with(src: &str, single_quotes: bool) -> String {
    // Fast path: nothing to do for the vast majority of filters.
    if !(src.contains("def") || single_quotes && src.contains('\'')) {
        return src.to_owned();
    }
    let mut out = String::with_capacity(src.len() + 32);
    let mut stack = vec![Mode::Code { depth: 0, defs: Vec::new() }];
    let mut chars = src.char_indices().peekable();
    // Last character emitted in code position (for word boundaries).
    let mut prev = ' ';
    while let Some((i, c)) = chars.next() {
        let frames = stack.len();
        let Some(mode) = stack.last_mut() else {
            out.push(c); // unreachable: the outermost frame is never popped
            continue;
        };
        match mode {
            Mode::Code { depth, defs } => {
                match c {
                    '"' => stack.push(Mode::Double),
                    '\'' if single_quotes => stack.push(Mode::Single),
                    '#' => {
                        out.push('#');
                        while let Some(&(_, n)) = chars.peek() {
                            if n == '\n' {
                                break;
                            }
                            out.push(n);
                            chars.next();
                        }
                        continue;
                    }
                    '(' | '[' | '{' => *depth += 1,
                    ')' if *depth == 0 && frames > 1 => {
                        out.push(')'); // closes a `\(` interpolation
                        stack.pop();
                        continue;
                    }
                    ')' | ']' | '}' => *depth = depth.saturating_sub(1),
                    ':' if defs.last().is_some_and(|d| !d.body && d.depth == *depth) => {
                        if let Some(d) = defs.last_mut() {
                            d.body = true;
                        }
                        out.push_str(": ");
                        out.push_str(GUARD);
                        out.push_str(" | (");
                        prev = '(';
                        continue;
                    }
                    ';' if defs.last().is_some_and(|d| d.body && d.depth == *depth) => {
                        defs.pop();
                        out.push_str(");");
                        prev = ';';
                        continue;
                    }
                    'd' if !is_ident(prev) && !matches!(prev, '.' | '$' | '@') && src[i..].starts_with("def") => {
                        // `def` keyword followed by a name (not `{def: 1}` or `.def`)
                        let after = &src[i + 3..];
                        let next = after.trim_start().chars().next();
                        if !after.starts_with(is_ident) && next.is_some_and(|n| n.is_ascii_alphabetic() || n == '_') {
                            defs.push(Def { depth: *depth, body: false });
                        }
                    }
                    _ => {}
                }
                out.push(match c {
                    '\'' if single_quotes => '"',
                    c => c,
                });
                prev = c;
            }
            Mode::Double | Mode::Single => {
                let single = matches!(mode, Mode::Single);
                match c {
                    '\\' => match chars.next().map(|(_, n)| n) {
                        Some('(') => {
                            out.push_str("\\(");
                            stack.push(Mode::Code { depth: 0, defs: Vec::new() });
                            prev = '(';
                        }
                        Some('\'') if single => out.push('\''),
                        Some(n) => {
                            out.push('\\');
                            out.push(n);
                        }
                        None => out.push('\\'),
                    },
                    '"' if single => out.push_str("\\\""),
                    '"' | '\'' if single == (c == '\'') => {
                        out.push('"');
                        stack.pop();
                        prev = '"';
                    }
                    _ => out.push(c),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::rewrite as rw;

    #[test]
    fn rewrites_literals() {
        assert_eq!(rw("'https://datadog.com/' + .identifier"), "\"https://datadog.com/\" + .identifier");
        assert_eq!(rw(".properties.'prop-with-dash'"), ".properties.\"prop-with-dash\"");
        assert_eq!(rw(".a // ''"), ".a // \"\"");
        assert_eq!(rw("['a','b']"), "[\"a\",\"b\"]");
    }

    #[test]
    fn leaves_double_quoted_strings_alone() {
        for s in [
            "\"rock 'n roll\"",
            "\"it's\"",
            r#"gsub("[^A-Za-z0-9@_.+:\\\\/='-]"; "_")"#,
            r#""https://app.wiz.io/issues#~(issue~'" + $id + ")""#,
            r#""a \"q\" 'b'""#,
            ".a # it's a comment\n| .b",
            "{def: 1, undef: 2} | .def, $__loc__, \"def f: 1;\"",
        ] {
            assert_eq!(rw(s), s);
        }
    }

    #[test]
    fn escapes_and_interpolation() {
        assert_eq!(rw(r#"'say "hi"'"#), r#""say \"hi\"""#);
        assert_eq!(rw(r"'it\'s'"), r#""it's""#);
        assert_eq!(rw(r"'a\nb'"), r#""a\nb""#);
        assert_eq!(rw(r#""x\(.a + 'y')z""#), r#""x\(.a + "y")z""#);
        assert_eq!(rw(r"'x\((.a) + 'y')z'"), r#""x\((.a) + "y")z""#);
        assert_eq!(rw("'open"), "\"open");
    }

    #[test]
    fn guards_def_bodies() {
        let g = super::GUARD;
        assert_eq!(rw("def f: 1+f; f"), format!("def f: {g} | ( 1+f); f"));
        assert_eq!(
            rw("def f(g; $x): def h: g; [h, $x]; f(.; 1)"),
            format!("def f(g; $x): {g} | ( def h: {g} | ( g); [h, $x]); f(.; 1)")
        );
        assert_eq!(
            rw("reduce .[] as $x (0; def f: {a: $x}; . + f)"),
            format!("reduce .[] as $x (0; def f: {g} | ( {{a: $x}}); . + f)")
        );
        assert_eq!(rw("\"\\(def f: 1; f)\""), format!("\"\\(def f: {g} | ( 1); f)\""));
    }
}
