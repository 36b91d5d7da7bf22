//! What of its input a filter can observe.
//!
//! A filter such as `.e | (.diff.after.properties.tick % 10 == 0)` reads one number of an event
//! of a kilobyte. [`of`] finds the paths a filter can reach from its input, over-approximated
//! from jaq's parse tree, so that the input can be read keeping only those parts
//! (`convert::Projected`): the rest of the text is skipped, never built into values.
//!
//! Soundness: a filter's `.` is its input or, to the right of a pipe, a value derived from the
//! left side's outputs. Data of the input reaches a filter only through its `.` or through
//! variables. So each term marks, at the path of the input it is evaluated on, what it
//! reads: a path of constant keys from `.` marks that path (the value there whole); a value a
//! term outputs or binds to a variable is marked whole wherever it comes from the input, so
//! what a later term reads of it (a derived `.`, `$x`) is covered without being followed. A call,
//! `..`, an assignment or a definition marks the whole of its input. Keys kept are exact: an
//! object keeps the keys marked (in their order), anything that is not an object is kept whole
//! (so a filter indexing a number or an array fails or yields as it would on the whole input).

use std::collections::BTreeMap;

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Pattern, Term};
use jaq_core::path::Part;

/// The parts of a value a filter can observe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    /// All of it.
    Whole,
    /// If it is an object, only these keys (each to its own extent); otherwise all of it.
    Keys(BTreeMap<String, Need>),
}

impl Need {
    /// Nothing (an object is read as `{}`).
    pub(crate) fn nothing() -> Need {
        Need::Keys(BTreeMap::new())
    }

    /// Mark the value at `path` whole (at most [`MAX_PATH`] keys deep: a longer path marks the
    /// value at that depth whole, so no `Need` is deeper than that, whatever the filter).
    fn mark(&mut self, path: &[String]) {
        let mut n = self;
        for key in &path[..path.len().min(MAX_PATH)] {
            match n {
                Need::Whole => return,
                Need::Keys(m) => n = m.entry(key.clone()).or_insert_with(Need::nothing),
            }
        }
        *n = Need::Whole;
    }

    /// What either needs.
    pub(crate) fn union(&mut self, other: &Need) {
        match (&mut *self, other) {
            (Need::Whole, _) => {}
            (_, Need::Whole) => *self = Need::Whole,
            (Need::Keys(a), Need::Keys(b)) => {
                for (k, n) in b {
                    a.entry(k.clone()).or_insert_with(Need::nothing).union(n);
                }
            }
        }
    }

    /// What is needed of the value at key `key`.
    pub(crate) fn at(&self, key: &str) -> Need {
        match self {
            Need::Whole => Need::Whole,
            Need::Keys(m) => m.get(key).cloned().unwrap_or_else(Need::nothing),
        }
    }
}

/// What any of `filters` can observe of the item each gets at key `key` of its input.
pub(crate) fn of_items<'a>(filters: impl IntoIterator<Item = &'a crate::Compiled>, key: &str) -> Need {
    let mut need = Need::nothing();
    for c in filters {
        need.union(&c.need.at(key));
    }
    need
}

/// What a filter (its parse tree, of the code jaq compiles) can observe of its input.
pub(crate) fn of(term: &Term<&str>) -> Need {
    let mut need = Need::nothing();
    walk(term, &[], &mut need);
    need
}

/// The deepest a [`Need`] goes: its clone, drop, union and lookups recurse that deep, on
/// whatever thread (a filter `.a.a.a…` of thousands of keys compiles). serde_json reads no
/// input deeper than 128 levels.
const MAX_PATH: usize = 128;

/// Calls that ignore their input (a user `def` of the same name is a `Def` term: all marked).
const CONSTANTS: [&str; 7] = ["true", "false", "null", "empty", "now", "nan", "infinite"];

/// Mark what `t`, evaluated on the input's value at `at`, reads of the input.
fn walk(t: &Term<&str>, at: &[String], out: &mut Need) {
    match t {
        Term::Num(_) | Term::Break(_) | Term::Var(_) => {}
        Term::Call(name, args) if args.is_empty() && CONSTANTS.contains(name) => {}
        Term::Id | Term::Recurse | Term::Call(..) | Term::Def(..) => out.mark(at),
        Term::Str(_, parts) => {
            // A format (`@base64 "…\(f)"`) applies to the interpolations' outputs, marked whole.
            for p in parts {
                if let StrPart::Term(t) = p {
                    walk(t, at, out);
                }
            }
        }
        Term::Arr(t) => {
            if let Some(t) = t {
                walk(t, at, out);
            }
        }
        Term::Obj(entries) => {
            for (k, v) in entries {
                match (k, v) {
                    (Term::Var(_), None) => {}
                    // `{a}` is `{a: .a}`.
                    (k, None) => match plain(k) {
                        Some(key) => out.mark(&joined(at, &[key])),
                        None => {
                            walk(k, at, out);
                            out.mark(at);
                        }
                    },
                    (k, Some(v)) => {
                        walk(k, at, out);
                        walk(v, at, out);
                    }
                }
            }
        }
        Term::Neg(t) | Term::Label(_, t) => walk(t, at, out),
        Term::BinOp(l, op, r) => match op {
            BinaryOp::Pipe(None) => match keys(l) {
                // `.a.b | r`: r's input is the value at `.a.b`.
                Some(ks) => walk(r, &joined(at, &ks), out),
                // r's input is derived from l's outputs, which are marked whole.
                None => walk(l, at, out),
            },
            BinaryOp::Pipe(Some(p)) => {
                walk(l, at, out);
                pattern(p, at, out);
                walk(r, at, out);
            }
            BinaryOp::Comma | BinaryOp::Alt | BinaryOp::Or | BinaryOp::And | BinaryOp::Math(_) | BinaryOp::Cmp(_) => {
                walk(l, at, out);
                walk(r, at, out);
            }
            // The output is the input, changed.
            BinaryOp::Assign | BinaryOp::Update | BinaryOp::UpdateMath(_) | BinaryOp::UpdateAlt => out.mark(at),
        },
        Term::Fold(_, xs, p, args) => {
            walk(xs, at, out);
            pattern(p, at, out);
            for a in args {
                walk(a, at, out);
            }
        }
        Term::TryCatch(t, c) => {
            walk(t, at, out);
            if let Some(c) = c {
                walk(c, at, out);
            }
        }
        Term::IfThenElse(branches, otherwise) => {
            for (c, t) in branches {
                walk(c, at, out);
                walk(t, at, out);
            }
            match otherwise {
                Some(e) => walk(e, at, out),
                // `if c then t end` is `if c then t else . end`.
                None => out.mark(at),
            }
        }
        Term::Path(head, path) => {
            // Constant keys from `.` extend the path; from the first other part on, the value
            // there is marked whole. Index terms are evaluated on the path's own input.
            let mut here = at.to_vec();
            let mut rest = &path.0[..];
            let from_input = matches!(**head, Term::Id);
            if from_input {
                while let Some(((Part::Index(k), _), tail)) = rest.split_first() {
                    match plain(k) {
                        Some(key) => {
                            here.push(key);
                            rest = tail;
                        }
                        None => break,
                    }
                }
            } else {
                walk(head, at, out);
            }
            for (part, _) in rest {
                match part {
                    Part::Index(i) => walk(i, at, out),
                    Part::Range(a, b) => {
                        for t in [a, b].into_iter().flatten() {
                            walk(t, at, out);
                        }
                    }
                }
            }
            if from_input {
                out.mark(&here);
            }
        }
    }
}

/// `.`, or `.k1.k2…` with constant keys: the path its single output has in its input.
fn keys(t: &Term<&str>) -> Option<Vec<String>> {
    match t {
        Term::Id => Some(Vec::new()),
        Term::Path(head, path) if matches!(**head, Term::Id) => path
            .0
            .iter()
            .map(|(part, _)| match part {
                Part::Index(k) => plain(k),
                Part::Range(..) => None,
            })
            .collect(),
        _ => None,
    }
}

/// Destructuring keys (`{(f): $x}`) are evaluated on the value destructured, which the caller
/// marks whole: walking them at `at` reads no less than they do.
fn pattern(p: &Pattern<&str>, at: &[String], out: &mut Need) {
    match p {
        Pattern::Var(_) => {}
        Pattern::Arr(ps) => ps.iter().for_each(|p| pattern(p, at, out)),
        Pattern::Obj(entries) => {
            for (k, p) in entries {
                walk(k, at, out);
                pattern(p, at, out);
            }
        }
    }
}

/// A string literal without escapes or interpolation.
fn plain(t: &Term<&str>) -> Option<String> {
    match t {
        Term::Str(None, parts) => parts.iter().map(|p| if let StrPart::Str(s) = p { Some(*s) } else { None }).collect(),
        _ => None,
    }
}

fn joined(at: &[String], more: &[String]) -> Vec<String> {
    at.iter().chain(more).cloned().collect()
}
