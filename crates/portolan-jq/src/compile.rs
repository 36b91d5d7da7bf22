//! Building Port's dialect on top of jaq: prelude definitions, native overrides, compile errors.

use crate::rewrite::GUARD;
use crate::{JqError, truncate};
use crate::{ast, natives, prune, regex};
use jaq_core::box_iter::box_once;
use jaq_core::load::{self, Arena, File, Loader, parse::Def};
use jaq_core::native::{Fun, bome, run, v};
use jaq_core::{Bind, Compiler, ValR, ValT as _, data};
use jaq_json::Val;
use std::sync::OnceLock;

/// The data kind the engine runs on.
pub type D = data::JustLut<Val>;
/// A compiled jaq filter.
pub type Filter = jaq_core::Filter<D>;

/// Native jaq filters that Port's dialect removes: `env` leaks the process environment,
/// `halt` would end the process, `debug`/`stderr` write user data to the server log, and
/// `input`/`inputs` make no sense for mappings.
const REMOVED_NATIVES: &[&str] = &[
    "env",
    "halt",
    "debug_empty",
    "stderr_empty",
    "input",
    "inputs",
    // regex-lite based; replaced by `regex.rs`
    "matches",
    "split_matches",
    "split_",
];

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
def input_filename: null;
def have_decnum: false;
def have_literal_numbers: true;
def trimstr($x): ltrimstr($x) | rtrimstr($x);
def IN(s): any(s == .; .);
def IN(src; s): any(src == s; .);
def INDEX(stream; idx_expr): reduce stream as $row ({}; .[$row | idx_expr | tostring] |= $row);
def INDEX(idx_expr): INDEX(.[]; idx_expr);
def JOIN($idx; idx_expr): [.[] | [., $idx[idx_expr]]];
def JOIN($idx; stream; idx_expr): stream | [., $idx[idx_expr]];
def JOIN($idx; stream; idx_expr; join_expr): stream | [., $idx[idx_expr]] | join_expr;
def getpath($path): if ($path | type) != "array" then error("Path must be specified as an array") else
    reduce $path[] as $p (.; if ($p | type) == "object" then .[$p.start:$p.end] else .[$p] end) end;
def delpaths($paths): if ($paths | type) != "array" then error("Paths must be specified as an array") else
    reduce ($paths | sort | reverse[]) as $p (.;
        # jq deletes nothing below a null, nor at an array index past either end; jaq's update
        # fails on both.
        if ($p | length) > 0 and (getpath($p[:-1]) as $c | $c == null or (($c | type) == "array"
             and ($p[-1] | type) == "number" and (($p[-1] | floor) as $i | ($c | length) as $n | $i >= $n or $i < -$n)))
        then . else getpath($p) |= empty end) end;
def del(f): delpaths([path(f)]);
def __portolan_assign(paths; $v): reduce path(paths) as $p (.; setpath($p; $v));
def __portolan_modify(paths; update): __portolan_modify_paths(paths; update) as [$x, $del]
  | if $del == [] then $x else $x | delpaths($del) end;
def to_entries: __portolan_to_entries // [keys_unsorted[] as $k | {key: $k, value: .[$k]}];
def with_entries(f): to_entries | map(f) | from_entries;
def pick(pathexps): . as $top | reduce path(pathexps) as $p (null; setpath($p; $top | getpath($p)));
def walk(f): def w: if type == "object" then map_values(w) elif type == "array" then map(w) else . end | f; w;
def limit($n; f): if $n > 0 then __portolan_limit($n; f) elif $n == 0 then empty
    else error("limit doesn't support negative count") end;
def tostream: path(def r: (.[]? | r), .; r) as $p | getpath($p) | reduce path(.[]?) as $q ([$p, .]; [$p + $q]);
def fromstream(f): {x: null, e: false} as $init
  | foreach f as $i ($init;
      if .e then $init else . end
      | if $i | length == 2
        then setpath(["e"]; $i[0] | length == 0) | setpath(["x"] + $i[0]; $i[1])
        else setpath(["e"]; $i[0] | length == 1) end;
      if .e then .x else empty end);
def truncate_stream(stream): . as $n | null | stream | . as $input
  | if (.[0] | length) > $n then setpath([0]; .[0][$n:]) else empty end;
def @text: tostring;
def contains($b): if type == ($b | type) then __portolan_contains($b)
    else error("\(type) (\(tojson)) and \($b | type) (\($b | tojson)) cannot have their containment checked") end;
def strftime($f): if type == "number" then trunc else . end | __portolan_strftime($f);
def todateiso8601: strftime("%Y-%m-%dT%H:%M:%SZ");
def todate: todateiso8601;
def @base32d: __portolan_base32d;
def ltrimstr($x): if type != "string" or ($x | type) != "string" then error("startswith() requires string inputs")
    elif startswith($x) then .[($x | length):] else . end;
def rtrimstr($x): if type != "string" or ($x | type) != "string" then error("endswith() requires string inputs")
    elif endswith($x) and ($x | length) > 0 then .[:length - ($x | length)] else . end;
def join($x): reduce .[] as $i (null;
    (if . == null then "" else . + $x end) +
    ($i | if . == null then "" elif isstring then . elif isnumber or isboolean then tojson
          else error("cannot join with \(type)") end)) // "";
def from_entries: __portolan_from_entries // reduce .[] as $x ({};
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

/// jaq's regex definitions, replaced by `regex::DEFS`.
const JAQ_REGEX_DEFS: &[&str] =
    &["capture_of_match", "test", "scan_", "match", "capture", "split", "splits", "sub", "gsub", "scan"];

/// Names of jaq definitions replaced by a native filter below.
const REPLACED_DEFS: &[&str] = &["tonumber", "setpath", "tostring"];

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
            // jaq's regex definitions refer to the removed regex-lite natives (`split/1` is not a regex).
            .filter(|d| !JAQ_REGEX_DEFS.contains(&d.name) || (d.name == "split" && d.args.len() == 1))
            .chain(parse_defs(POST_DEFS))
            .chain(parse_defs(regex::DEFS))
            .collect::<Vec<_>>();
        let mut defs = defs;
        ast::guard_prelude(&mut defs);
        prune::index(defs)
    })
}

fn funs() -> impl Iterator<Item = Fun<D>> {
    jaq_core::funs::<D>()
        .chain(jaq_std::funs::<D>())
        .chain(jaq_json::funs::<D>())
        .filter(|(name, _, _)| !REMOVED_NATIVES.contains(name) && !REPLACED_NATIVES.contains(name))
        // `limit` is wrapped by a definition that rejects negative counts, as jq 1.8 does; jaq's
        // own definitions before it keep the native.
        .chain(renamed_natives())
        .chain([
            run::<D>(("tonumber", v(0), |cv| bome(to_number(&cv.1)))),
            run::<D>(("fromjson", v(0), |cv| bome(from_json(&cv.1)))),
            (GUARD, v(0), guard_native()),
            run::<D>(("range", v(3), |mut cv| {
                let by = cv.0.pop_var();
                let to = cv.0.pop_var();
                let from = cv.0.pop_var();
                natives::range(from, to, by)
            })),
            run::<D>(("tojson", v(0), |cv| bome(natives::tojson_val(&cv.1)))),
            run::<D>(("tostring", v(0), |cv| bome(natives::to_string(cv.1)))),
            run::<D>(("decode_base64", v(0), |cv| bome(natives::base64d(&cv.1)))),
            run::<D>(("__portolan_base32d", v(0), |cv| bome(natives::base32d(&cv.1)))),
            run::<D>(("setpath", v(2), |mut cv| {
                let x = cv.0.pop_var();
                let path = cv.0.pop_var();
                bome(natives::setpath(cv.1, &path, x))
            })),
            run::<D>(("__portolan_modify_paths", [Bind::Fun(()), Bind::Fun(())].into(), |mut cv| {
                let (update, uctx) = cv.0.pop_fun();
                let (paths, pctx) = cv.0.pop_fun();
                let found = paths.paths((pctx, (cv.1.clone(), Default::default()))).map(|r| {
                    r.map(|(_, path)| {
                        let mut path: Vec<Val> = path.iter().cloned().collect();
                        path.reverse();
                        path
                    })
                });
                box_once(natives::modify(cv.1, found, |v| update.run((uctx.clone(), v)).next()))
            })),
            // `null` when the input is not the simple case: the prelude's definition runs then.
            run::<D>(("__portolan_to_entries", v(0), |cv| bome(Ok(natives::to_entries(&cv.1).unwrap_or(Val::Null))))),
            run::<D>(("__portolan_from_entries", v(0), |cv| {
                bome(Ok(natives::from_entries(&cv.1).unwrap_or(Val::Null)))
            })),
            run::<D>(("__portolan_add", v(2), |cv| binop(cv, natives::add))),
            run::<D>(("__portolan_mul", v(2), |cv| binop(cv, natives::mul))),
            run::<D>(("__portolan_div", v(2), |cv| binop(cv, natives::div))),
            run::<D>(("__portolan_rem", v(2), |cv| binop(cv, natives::rem))),
            run::<D>(("_pj_match", v(2), |cv| re(cv, regex::matches))),
            run::<D>(("_pj_test", v(2), |cv| re(cv, regex::test))),
            run::<D>(("_pj_split", v(2), |cv| re(cv, regex::split))),
            run::<D>(("_pj_sub_parts", v(2), |cv| re(cv, regex::sub_parts))),
        ])
}

type Cv<'a> = jaq_core::Cv<'a, D>;

/// jaq natives also available under another name, for the jq-compatible wrappers in `POST_DEFS`.
fn renamed_natives() -> impl Iterator<Item = Fun<D>> {
    const RENAMED: &[(&str, &str)] =
        &[("limit", "__portolan_limit"), ("contains", "__portolan_contains"), ("strftime", "__portolan_strftime")];
    jaq_core::funs::<D>()
        .chain(jaq_std::funs::<D>())
        .chain(jaq_json::funs::<D>())
        .filter_map(|(name, a, f)| RENAMED.iter().find(|(from, _)| *from == name).map(|(_, to)| (*to, a, f)))
}

/// The guard filter: identity (also in path expressions and updates) or a limit error.
fn guard_native() -> jaq_core::Native<D> {
    use jaq_core::box_iter::box_once;
    use jaq_core::{Exn, Native};
    Native::new(|cv| bome(natives::stack_guard(cv.1)))
        .with_paths(|cv| match crate::guard::check() {
            Ok(()) => box_once(Ok(cv.1)),
            Err(t) => box_once(Err(Exn::from(crate::guard::error(t)))),
        })
        .with_update(|cv, f| match crate::guard::check() {
            Ok(()) => f(cv.1),
            Err(t) => box_once(Err(Exn::from(crate::guard::error(t)))),
        })
}

/// A binary operator called as `op(r; l)` (see `ast.rs`).
fn binop<'a>(mut cv: Cv<'a>, f: fn(Val, Val) -> ValR<Val>) -> jaq_core::ValXs<'a, Val> {
    let l = cv.0.pop_var();
    let r = cv.0.pop_var();
    bome(f(l, r))
}

/// A regex native called as `f(re; flags)`.
fn re<'a>(mut cv: Cv<'a>, f: fn(&Val, &Val, &Val) -> ValR<Val>) -> jaq_core::ValXs<'a, Val> {
    let flags = cv.0.pop_var();
    let re = cv.0.pop_var();
    bome(f(&cv.1, &re, &flags))
}

/// Native filters replaced by the ones above.
const REPLACED_NATIVES: &[&str] =
    &["tonumber", "fromjson", GUARD, "range", "tojson", "tostring", "decode_base64", "setpath"];

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

/// `tonumber` with jq 1.8 semantics: numbers pass through; a string must be exactly one number
/// (no surrounding whitespace); anything else is one error. jaq-json 2.0.3 defines it via
/// `fromjson`, which reads `"12x"` as 12 and yields endless errors for `"abc"`.
fn to_number(v: &Val) -> ValR<Val> {
    let fail = |v: &Val| Err(jaq_core::Error::str(format_args!("cannot parse {} as number", truncate(v.to_string()))));
    match v {
        Val::Num(_) => Ok(v.clone()),
        Val::TStr(b) | Val::BStr(b) => {
            let Ok(s) = std::str::from_utf8(b) else {
                return fail(v);
            };
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

/// Name of the definition that holds the user's filter.
const MAIN: &str = "__portolan_main";

/// Compile a filter that has already been through [`crate::rewrite::rewrite`].
///
/// The filter is parsed here, rewritten (`ast.rs`) and handed to jaq's loader as the last
/// prelude definition `__portolan_main`, whose call is the main program.
pub fn compile(code: &str) -> Result<Filter, JqError> {
    let lines = ast::line_numbers(code);
    let Some(mut term) = load::parse(code, |p| p.term()) else {
        return compile_plain(code);
    };
    ast::rewrite_user(&mut term, code, &lines);
    let mut defs: Vec<Def<&str>> = prune::select(prelude(), code, ast::HELPERS);
    defs.push(Def { name: MAIN, args: Vec::new(), body: term });
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(&arena, File { code: MAIN, path: () })
        .map_err(|errs| JqError::Compile(load_errors(code, errs)))?;
    compile_modules(code, modules)
}

/// The loader's own path, for its error messages: a filter that does not parse as one term
/// (syntax errors, `import`/`include`/`module` directives).
fn compile_plain(code: &str) -> Result<Filter, JqError> {
    let arena = Arena::default();
    let loader = Loader::new(prune::select(prelude(), code, &[]));
    let modules =
        loader.load(&arena, File { code, path: () }).map_err(|errs| JqError::Compile(load_errors(code, errs)))?;
    // `import "x" as $data;` would silently bind `$data` to a global; data files are not supported.
    load::import(&modules, |_| Err("data imports are not supported".to_owned()))
        .map_err(|errs| JqError::Compile(load_errors(code, errs)))?;
    compile_modules(code, modules)?;
    Err(JqError::Compile("module directives (`module`, `import`, `include`) are not supported".to_owned()))
}

fn compile_modules(code: &str, modules: load::Modules<&str, ()>) -> Result<Filter, JqError> {
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

/// A filter whose result needs no jaq evaluation: most fields of real mappings are plain paths
/// (`.item.name`, `.metadata."app.kubernetes.io/name"`) or literals (`"service"`, `true`).
#[derive(Debug, Clone)]
pub(crate) enum Fast {
    /// `.k1.k2…`: object keys only, no `?`.
    Path(Vec<Val>),
    /// A string without escapes or interpolation, `true`, `false` or `null`.
    Literal(Val),
}

/// What is known of a filter without running it: whether [`Fast`] answers it, and what of its
/// input it can observe ([`needs`](crate::needs)) — from one parse of the code.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub(crate) fast: Option<Fast>,
    pub(crate) need: crate::needs::Need,
}

impl Shape {
    /// `code` (after `rewrite.rs`) as parsed by jaq's own parser; a filter that does not parse
    /// here (it will not compile either) needs its whole input. Recursive: call it on a
    /// big-stack thread.
    pub(crate) fn of(code: &str) -> Shape {
        match load::parse(code, |p| p.term()) {
            Some(term) => Shape { fast: Fast::of_term(&term), need: crate::needs::of(&term) },
            None => Shape { fast: None, need: crate::needs::Need::Whole },
        }
    }
}

impl Fast {
    /// Recognize a filter's parse tree.
    pub(crate) fn of_term(term: &jaq_core::load::parse::Term<&str>) -> Option<Fast> {
        use jaq_core::load::lex::StrPart;
        use jaq_core::load::parse::Term;
        use jaq_core::path::{Opt, Part};
        fn keys(t: &Term<&str>, out: &mut Vec<Val>) -> Option<()> {
            match t {
                Term::Id => Some(()),
                Term::Path(head, path) => {
                    keys(head, out)?;
                    for (part, opt) in &path.0 {
                        match (part, opt) {
                            (Part::Index(Term::Str(None, parts)), Opt::Essential) => {
                                out.push(Val::utf8_str(plain(parts)?.into_bytes()))
                            }
                            _ => return None,
                        }
                    }
                    Some(())
                }
                _ => None,
            }
        }
        fn plain(parts: &[StrPart<&str, Term<&str>>]) -> Option<String> {
            parts.iter().map(|p| if let StrPart::Str(s) = p { Some(*s) } else { None }).collect()
        }
        match term {
            Term::Str(None, parts) => Some(Fast::Literal(Val::utf8_str(plain(parts)?.into_bytes()))),
            Term::Call(name, args) if args.is_empty() => match *name {
                "null" => Some(Fast::Literal(Val::Null)),
                "true" => Some(Fast::Literal(Val::Bool(true))),
                "false" => Some(Fast::Literal(Val::Bool(false))),
                _ => None,
            },
            Term::Path(..) => {
                let mut out = Vec::new();
                keys(term, &mut out)?;
                (!out.is_empty()).then_some(Fast::Path(out))
            }
            _ => None,
        }
    }

    /// The result, or `None` where jaq must run (indexing something that is neither an object
    /// nor `null`: jaq gives the error).
    pub(crate) fn eval(&self, input: &Val) -> Option<Val> {
        match self {
            Fast::Literal(v) => Some(v.clone()),
            Fast::Path(keys) => {
                let mut v = input;
                for k in keys {
                    match v {
                        Val::Obj(o) => match o.get(k) {
                            Some(x) => v = x,
                            None => return Some(Val::Null),
                        },
                        Val::Null => return Some(Val::Null),
                        _ => return None,
                    }
                }
                Some(v.clone())
            }
        }
    }
}

#[cfg(test)]
mod prelude_tests {
    /// A definition that does not parse would silently drop every definition of its string
    /// (`parse_defs` yields none): each string parses into as many definitions as it has.
    #[test]
    fn every_prelude_string_parses_whole() {
        for (name, src) in
            [("PRE_DEFS", super::PRE_DEFS), ("POST_DEFS", super::POST_DEFS), ("regex::DEFS", super::regex::DEFS)]
        {
            let written = src.lines().filter(|l| l.starts_with("def ")).count();
            assert!(written > 0, "{name}");
            assert_eq!(super::parse_defs(src).len(), written, "{name} does not parse whole");
        }
    }
}
