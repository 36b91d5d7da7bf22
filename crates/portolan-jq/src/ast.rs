//! Rewrites of parsed jq terms (after the textual rewrites of `rewrite.rs`).
//!
//! User filters:
//! - `+`, `*`, `/`, `%` call guarded natives (`natives.rs`): length caps for string and array
//!   concatenation and string repetition, jq's division-by-zero error, jq's integer `%`.
//! - `=`, `|=`, `op=`, `//=` are jq 1.8's path-based definitions (`_assign`, `_modify`) over a
//!   jq-compatible native `setpath`, so `null | .a.b = 1` and `.a[2] = 1` create structure
//!   (`_modify`'s loop runs natively: `natives::modify`).
//! - `$__loc__` is `{"file": "<top-level>", "line": N}`.
//!
//! Prelude: the bodies of nested definitions (`def rec: …` in `repeat`, `recurse`, `while`,
//! `until`, …) and of directly recursive definitions start with the guard filter, so that these
//! generators respect the deadline, the step budget and the stack limit.

use crate::rewrite::GUARD;
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::ops::Math;
use jaq_core::path::Part;

/// Names of the prelude helpers that rewritten user terms call.
pub const HELPERS: &[&str] =
    &["__portolan_add", "__portolan_mul", "__portolan_div", "__portolan_rem", "__portolan_assign", "__portolan_modify"];

const TMP: &str = "$__portolan_x";

/// Apply `f` to every term below and including `t`, children first.
fn walk<S>(t: &mut Term<S>, f: &mut dyn FnMut(&mut Term<S>)) {
    match t {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => {}
        Term::Str(_, parts) => {
            for p in parts {
                if let StrPart::Term(t) = p {
                    walk(t, f);
                }
            }
        }
        Term::Arr(t) => {
            if let Some(t) = t {
                walk(t, f);
            }
        }
        Term::Obj(kvs) => {
            for (k, v) in kvs {
                walk(k, f);
                if let Some(v) = v {
                    walk(v, f);
                }
            }
        }
        Term::Neg(t) | Term::Label(_, t) => walk(t, f),
        Term::BinOp(l, op, r) => {
            walk(l, f);
            walk(r, f);
            if let BinaryOp::Pipe(Some(p)) = op {
                pattern(p, f);
            }
        }
        Term::Fold(_, xs, p, args) => {
            walk(xs, f);
            pattern(p, f);
            args.iter_mut().for_each(|t| walk(t, f));
        }
        Term::TryCatch(t, c) => {
            walk(t, f);
            if let Some(c) = c {
                walk(c, f);
            }
        }
        Term::IfThenElse(branches, els) => {
            for (c, t) in branches {
                walk(c, f);
                walk(t, f);
            }
            if let Some(e) = els {
                walk(e, f);
            }
        }
        Term::Def(defs, t) => {
            defs.iter_mut().for_each(|d| walk(&mut d.body, f));
            walk(t, f);
        }
        Term::Call(_, args) => args.iter_mut().for_each(|t| walk(t, f)),
        Term::Path(t, path) => {
            walk(t, f);
            for (part, _) in &mut path.0 {
                match part {
                    Part::Index(i) => walk(i, f),
                    Part::Range(a, b) => {
                        if let Some(a) = a {
                            walk(a, f);
                        }
                        if let Some(b) = b {
                            walk(b, f);
                        }
                    }
                }
            }
        }
    }
    f(t);
}

fn pattern<S>(p: &mut Pattern<S>, f: &mut dyn FnMut(&mut Term<S>)) {
    match p {
        Pattern::Var(_) => {}
        Pattern::Arr(ps) => ps.iter_mut().for_each(|p| pattern(p, f)),
        Pattern::Obj(kps) => {
            for (k, p) in kps {
                walk(k, f);
                pattern(p, f);
            }
        }
    }
}

fn math<'s>(op: &Math, l: Term<&'s str>, r: Term<&'s str>) -> Term<&'s str> {
    let name = match op {
        Math::Add => "__portolan_add",
        Math::Mul => "__portolan_mul",
        Math::Div => "__portolan_div",
        Math::Rem => "__portolan_rem",
        Math::Sub => return Term::BinOp(Box::new(l), BinaryOp::Math(Math::Sub), Box::new(r)),
    };
    // jq evaluates the right operand in the outer loop: `[(1,2) + (10,20)]` is `[11,12,21,22]`.
    Term::Call(name, vec![r, l])
}

/// `r as $x | __portolan_modify(l; update($x))`.
fn modify_with<'s>(l: Term<&'s str>, r: Term<&'s str>, update: Term<&'s str>) -> Term<&'s str> {
    let call = Term::Call("__portolan_modify", vec![l, update]);
    Term::BinOp(Box::new(r), BinaryOp::Pipe(Some(Pattern::Var(TMP))), Box::new(call))
}

/// Rewrite a user term (see the module docs). `code` is the source the term was parsed from
/// and `line_of` gives the line of a variable occurrence for `$__loc__`.
pub fn rewrite_user<'s>(t: &mut Term<&'s str>, code: &str, lines: &'s [String]) {
    walk(t, &mut |t| {
        let old = std::mem::take(t);
        *t = match old {
            Term::BinOp(l, BinaryOp::Math(op), r) => math(&op, *l, *r),
            Term::BinOp(l, BinaryOp::Assign, r) => Term::Call("__portolan_assign", vec![*l, *r]),
            Term::BinOp(l, BinaryOp::Update, r) => Term::Call("__portolan_modify", vec![*l, *r]),
            Term::BinOp(l, BinaryOp::UpdateMath(op), r) => modify_with(*l, *r, math(&op, Term::Id, Term::Var(TMP))),
            Term::BinOp(l, BinaryOp::UpdateAlt, r) => {
                modify_with(*l, *r, Term::BinOp(Box::new(Term::Id), BinaryOp::Alt, Box::new(Term::Var(TMP))))
            }
            Term::Var(v) if v == "$__loc__" => {
                let start = (v.as_ptr() as usize).wrapping_sub(code.as_ptr() as usize);
                let line = code.get(..start).map_or(1, |s| s.matches('\n').count() + 1);
                let line: &'s str = lines.get(line).map_or("1", String::as_str);
                let s = |x: &'static str| Term::Str(None, vec![StrPart::Str(x)]);
                Term::Obj(vec![(s("file"), Some(s("<top-level>"))), (s("line"), Some(Term::Num(line)))])
            }
            other => other,
        };
    });
}

/// Line-number strings for `$__loc__` (index = line).
pub fn line_numbers(code: &str) -> Vec<String> {
    (0..=code.matches('\n').count() + 1).map(|i| i.to_string()).collect()
}

fn guarded<S: From<&'static str>>(body: Term<S>) -> Term<S> {
    Term::BinOp(Box::new(Term::Call(GUARD.into(), Vec::new())), BinaryOp::Pipe(None), Box::new(body))
}

fn calls<S: PartialEq + Copy>(t: &mut Term<S>, name: S) -> bool {
    let mut found = false;
    walk(t, &mut |t| {
        if let Term::Call(n, _) = t
            && *n == name
        {
            found = true;
        }
    });
    found
}

/// Insert the guard into nested and directly recursive prelude definitions.
pub fn guard_prelude(defs: &mut [Def<&'static str>]) {
    for d in defs {
        if d.name.starts_with('!') || d.name == GUARD {
            continue;
        }
        walk(&mut d.body, &mut |t| {
            if let Term::Def(inner, _) = t {
                for i in inner {
                    i.body = guarded(std::mem::take(&mut i.body));
                }
            }
        });
        if calls(&mut d.body, d.name) {
            d.body = guarded(std::mem::take(&mut d.body));
        }
    }
}
