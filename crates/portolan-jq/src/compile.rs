//! Building Port's dialect on top of jaq: prelude definitions, native overrides, compile errors.

use crate::prune;
use crate::rewrite::GUARD;
use crate::{JqError, truncate};
use jaq_core::load::{self, Arena, File, Loader, parse::Def};
use jaq_core::native::{Fun, bome, run, v};
use jaq_core::{Compiler, ValR, ValT as _, data};
use jaq_json::Val;
use std::sync::OnceLock;

/// The data kind the engine runs on.
pub type D = data::JustLut<Val>;
/// A compiled jaq filter.
pub type Filter = jaq_core::Filter<D>;

/// Native jaq filters that Port's dialect removes: `env` leaks the process environment,
/// `halt` would end the process, `debug`/`stderr` write user data to the server log, and
/// `input`/`inputs` make no sense for mappings.
const REMOVED_NATIVES: &[&str] = &["env", "halt", "debug_empty", "stderr_empty", "input", "inputs"];

/// Definitions loaded before jaq's standard library (which refers to some of them).
const PRE_DEFS: &str = r#"
def env: $ENV;
def debug_empty: empty;
def stderr_empty: empty;
def halt($code): error("halt is not supported");
def input: error("input is not supported");
def inputs: error("inputs is not supported");
"#;

/// jq-compatible replacements, loaded after jaq's standard library so that they shadow it.
const POST_DEFS: &str = r#"
def join($x): reduce .[] as $i (null;
    (if . == null then "" else . + $x end) +
    ($i | if . == null then "" elif isstring then . elif isnumber or isboolean then tojson
          else error("cannot join with \(type)") end)) // "";
def from_entries: reduce .[] as $x ({};
    . + { ($x | if .key == null then .k // .name // .Name // .K // .Key else .key end
              | if isstring then . else tojson end):
          ($x | if has("value") then .value elif has("v") then .v else .Value end) });
def @csv: if isarray then . else error("cannot csv-format \(type), only an array") end
    | map(if isstring then "\"" + (split("\"") | join("\"\"")) + "\""
          elif . == null then ""
          elif isnumber or isboolean then tojson
          else error("\(type) is not valid in a csv row") end)
    | join(",");
def @tsv: if isarray then . else error("cannot tsv-format \(type), only an array") end
    | map(if isstring then split("\\") | join("\\\\") | split("\t") | join("\\t")
                         | split("\n") | join("\\n") | split("\r") | join("\\r")
          elif . == null then ""
          elif isnumber or isboolean then tojson
          else error("\(type) is not valid in a tsv row") end)
    | join("\t");
"#;

/// Names of jaq definitions replaced by a native filter below.
const REPLACED_DEFS: &[&str] = &["tonumber"];

fn parse_defs(src: &'static str) -> Vec<Def<&'static str>> {
    load::parse(src, |p| p.defs()).unwrap_or_default()
}

/// The prelude (parsed once): jaq core + Port overrides + jaq std + jaq json + jq compat defs.
pub(crate) fn prelude() -> &'static [prune::Entry] {
    static PRELUDE: OnceLock<Vec<prune::Entry>> = OnceLock::new();
    PRELUDE.get_or_init(|| {
        let defs = jaq_core::defs()
            .chain(parse_defs(PRE_DEFS))
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .filter(|d| !REPLACED_DEFS.contains(&d.name))
            .chain(parse_defs(POST_DEFS))
            .collect();
        prune::index(defs)
    })
}

fn funs() -> impl Iterator<Item = Fun<D>> {
    jaq_core::funs::<D>()
        .chain(jaq_std::funs::<D>())
        .chain(jaq_json::funs::<D>())
        .filter(|(name, _, _)| !REMOVED_NATIVES.contains(name) && !REPLACED_NATIVES.contains(name))
        .chain([
            run::<D>(("tonumber", v(0), |cv| bome(to_number(&cv.1)))),
            run::<D>(("fromjson", v(0), |cv| bome(from_json(&cv.1)))),
            run::<D>((GUARD, v(0), |cv| bome(stack_guard(cv.1)))),
        ])
}

/// Native filters replaced by the ones above.
const REPLACED_NATIVES: &[&str] = &["tonumber", "fromjson", GUARD];

/// Identity, or an error when the worker's stack is nearly full (see `guard.rs`).
fn stack_guard(v: Val) -> ValR<Val> {
    if crate::guard::check() { Ok(v) } else { Err(jaq_core::Error::str("recursion too deep")) }
}

/// `fromjson` with jq semantics through serde_json: exactly one JSON value, nesting limited to
/// 128 levels. jaq's parser yields `1, 2` for `"1 2"` and overflows the stack on deep input.
fn from_json(v: &Val) -> ValR<Val> {
    let fail = |e: &dyn std::fmt::Display| {
        jaq_core::Error::str(format_args!("cannot parse {} as JSON: {e}", truncate(v.to_string())))
    };
    match v {
        Val::TStr(b) | Val::BStr(b) => {
            let json: serde_json::Value = serde_json::from_slice(b).map_err(|e| fail(&e))?;
            crate::convert::to_val(&json).map_err(|e| fail(&e))
        }
        _ => Err(jaq_core::Error::str(format_args!("cannot use {} as string", truncate(v.to_string())))),
    }
}

/// `tonumber` with jq semantics: numbers pass through; a string must be exactly one number
/// (surrounding whitespace allowed); anything else is one error. jaq-json 2.0.3 defines it via
/// `fromjson`, which reads `"12x"` as 12 and yields endless errors for `"abc"`.
fn to_number(v: &Val) -> ValR<Val> {
    let fail = |v: &Val| Err(jaq_core::Error::str(format_args!("cannot parse {} as number", truncate(v.to_string()))));
    match v {
        Val::Num(_) => Ok(v.clone()),
        Val::TStr(b) | Val::BStr(b) => {
            let Ok(s) = std::str::from_utf8(b) else {
                return fail(v);
            };
            let s = s.trim();
            let numeric = !s.is_empty()
                && s.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E'))
                && s.bytes().any(|c| c.is_ascii_digit());
            match s.parse::<f64>() {
                Ok(f) if numeric && f.is_finite() => {
                    let integral = s.bytes().all(|c| c.is_ascii_digit() || c == b'-' || c == b'+');
                    if integral { Val::from_num(s.trim_start_matches('+')) } else { Ok(Val::from(f)) }
                }
                _ => fail(v),
            }
        }
        _ => fail(v),
    }
}

/// Compile a filter that has already been through [`crate::rewrite::rewrite`].
pub fn compile(code: &str) -> Result<Filter, JqError> {
    let arena = Arena::default();
    let loader = Loader::new(prune::select(prelude(), code));
    let modules =
        loader.load(&arena, File { code, path: () }).map_err(|errs| JqError::Compile(load_errors(code, errs)))?;
    // `import "x" as $data;` would silently bind `$data` to a global; data files are not supported.
    load::import(&modules, |_| Err("data imports are not supported".to_owned()))
        .map_err(|errs| JqError::Compile(load_errors(code, errs)))?;
    Compiler::default().with_funs(funs()).with_global_vars(["$ENV"]).compile(modules).map_err(|errs| {
        let msgs: Vec<String> = errs
            .into_iter()
            .flat_map(|(_, es)| es)
            .map(|(name, undef)| format!("undefined {} `{name}`{}", undef.as_str(), at(code, name)))
            .collect();
        JqError::Compile(join_msgs(msgs))
    })
}

fn load_errors(code: &str, errs: load::Errors<&str, ()>) -> String {
    let mut msgs = Vec::new();
    for (_, e) in errs {
        match e {
            load::Error::Io(es) => msgs.extend(es.into_iter().map(|(p, e)| format!("cannot load `{p}`: {e}"))),
            load::Error::Lex(es) => msgs.extend(es.into_iter().map(|(expect, rest)| {
                use load::lex::Expect as E;
                let what = match expect {
                    E::Digit => "digit".to_owned(),
                    E::Ident => "identifier".to_owned(),
                    E::Delim(d) => format!("closing delimiter for `{d}`"),
                    E::Escape => "string escape sequence".to_owned(),
                    E::Unicode => "4-digit hexadecimal code point".to_owned(),
                    E::Token => "token".to_owned(),
                    _ => "something else".to_owned(),
                };
                format!("expected {what}{}", at(code, rest))
            })),
            load::Error::Parse(es) => msgs
                .extend(es.into_iter().map(|(expect, rest)| format!("expected {}{}", expect.as_str(), at(code, rest)))),
        }
    }
    join_msgs(msgs)
}

/// The first few messages, so that `[[[[…` does not produce one message per bracket.
fn join_msgs(msgs: Vec<String>) -> String {
    const SHOWN: usize = 3;
    let more = msgs.len().saturating_sub(SHOWN);
    let mut out = msgs.into_iter().take(SHOWN).collect::<Vec<_>>().join("; ");
    if more > 0 {
        out.push_str(&format!(" (and {more} more)"));
    }
    truncate(out)
}

/// ` at offset N near `…`` for a suffix slice of `code`, or ` at end of filter`.
fn at(code: &str, rest: &str) -> String {
    let start = (rest.as_ptr() as usize).wrapping_sub(code.as_ptr() as usize);
    if rest.is_empty() || start > code.len() || start + rest.len() > code.len() {
        return " at end of filter".to_owned();
    }
    let near: String = rest.chars().take(24).collect();
    format!(" at offset {start} near `{near}`")
}
