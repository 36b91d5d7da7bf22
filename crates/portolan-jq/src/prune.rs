//! Prelude pruning.
//!
//! jaq compiles every definition it is given into each filter's lookup table. With the whole
//! standard library that is about 100 KB and 0.5 ms per compiled filter, so a full cache of
//! 1024 filters would hold ~100 MB. Here each filter only gets the prelude definitions it can
//! reach: the identifiers in its source (an over-approximation that also counts field names)
//! and, transitively, the filters those definitions call.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::path::Part;
use std::collections::HashSet;

type S = &'static str;

/// A prelude definition with the names its body refers to.
pub struct Entry {
    def: Def<S>,
    calls: Vec<S>,
}

/// Pair every definition with its callees, keeping the order.
pub fn index(defs: Vec<Def<S>>) -> Vec<Entry> {
    defs.into_iter()
        .map(|def| {
            let mut calls = HashSet::new();
            term(&def.body, &mut calls);
            Entry { def, calls: calls.into_iter().collect() }
        })
        .collect()
}

/// The definitions of `prelude` that `code` may use, in prelude order.
///
/// A definition only refers to itself and to earlier ones, so one backward pass suffices.
pub fn select(prelude: &[Entry], code: &str, extra: &[&str]) -> Vec<Def<S>> {
    let mut needed: HashSet<&str> = words(code).chain(extra.iter().copied()).collect();
    let mut keep = vec![false; prelude.len()];
    for (i, e) in prelude.iter().enumerate().rev() {
        if needed.contains(e.def.name) {
            keep[i] = true;
            needed.extend(e.calls.iter().copied());
        }
    }
    prelude.iter().zip(keep).filter(|(_, k)| *k).map(|(e, _)| e.def.clone()).collect()
}

/// Identifiers (`map`, `to_entries`) and format names (`@csv`) in `code`.
fn words(code: &str) -> impl Iterator<Item = &str> {
    let bytes = code.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let start = i;
            let c = bytes[i];
            if c == b'@' || c.is_ascii_alphabetic() || c == b'_' {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                return Some(&code[start..i]);
            }
            i += 1;
            // skip the rest of a number or word-internal digits
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        None
    })
}

fn term(t: &Term<S>, out: &mut HashSet<S>) {
    match t {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => {}
        Term::Str(fmt, parts) => {
            out.extend(fmt.iter().copied());
            for p in parts {
                if let StrPart::Term(t) = p {
                    term(t, out);
                }
            }
        }
        Term::Arr(t) => t.iter().for_each(|t| term(t, out)),
        Term::Obj(kvs) => {
            for (k, v) in kvs {
                term(k, out);
                v.iter().for_each(|v| term(v, out));
            }
        }
        Term::Neg(t) | Term::Label(_, t) => term(t, out),
        Term::BinOp(l, op, r) => {
            term(l, out);
            term(r, out);
            if let BinaryOp::Pipe(Some(p)) = op {
                pattern(p, out);
            }
        }
        Term::Fold(_, xs, p, args) => {
            term(xs, out);
            pattern(p, out);
            args.iter().for_each(|t| term(t, out));
        }
        Term::TryCatch(t, c) => {
            term(t, out);
            c.iter().for_each(|c| term(c, out));
        }
        Term::IfThenElse(branches, els) => {
            for (c, t) in branches {
                term(c, out);
                term(t, out);
            }
            els.iter().for_each(|e| term(e, out));
        }
        Term::Def(defs, t) => {
            defs.iter().for_each(|d| term(&d.body, out));
            term(t, out);
        }
        Term::Call(name, args) => {
            out.insert(name);
            args.iter().for_each(|t| term(t, out));
        }
        Term::Path(t, path) => {
            term(t, out);
            for (part, _) in &path.0 {
                match part {
                    Part::Index(i) => term(i, out),
                    Part::Range(a, b) => a.iter().chain(b.iter()).for_each(|t| term(t, out)),
                }
            }
        }
    }
}

fn pattern(p: &Pattern<S>, out: &mut HashSet<S>) {
    match p {
        Pattern::Var(_) => {}
        Pattern::Arr(ps) => ps.iter().for_each(|p| pattern(p, out)),
        Pattern::Obj(kps) => {
            for (k, p) in kps {
                term(k, out);
                pattern(p, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every prelude definition compiles on its own, i.e. pruning keeps its dependencies.
    #[test]
    fn every_definition_keeps_its_dependencies() {
        let prelude = crate::compile::prelude();
        let mut failures = Vec::new();
        for e in prelude {
            let d = &e.def;
            if d.name.starts_with('!') {
                continue; // jaq-internal
            }
            let args: Vec<&str> = d.args.iter().map(|a| if a.starts_with('$') { "0" } else { "." }).collect();
            let call = if args.is_empty() { d.name.to_owned() } else { format!("{}({})", d.name, args.join("; ")) };
            if let Err(err) = crate::compile::compile(&call) {
                failures.push(format!("{call}: {err}"));
            }
        }
        assert!(prelude.len() > 120, "prelude has only {} definitions", prelude.len());
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
