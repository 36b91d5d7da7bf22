//! jq's regex builtins over `fancy-regex` (look-around, back-references, atomic groups,
//! possessive quantifiers, `\h`, Oniguruma-style anchors).
//!
//! jaq's own regex support uses `regex-lite`, which has no look-around or back-references: the
//! github Ocean mapping's `gsub("\\](?=[^$])"; "-")` fails there. The natives below replace jaq's
//! (`matches`, `split_`, `split_matches`) and the jq-level definitions in `compile.rs` follow
//! jq 1.8's `builtin.jq`:
//!
//! - flags as in jq: `g` global, `i` case-insensitive, `x` extended, `n` ignore empty matches,
//!   `p` (`.` matches newlines), `s` (single-line, jq's default), `l` (longest: accepted,
//!   leftmost-first is used); `null` means none; anything else is an error.
//! - Oniguruma's default anchors in jq: `^` is the start of the string, `$` its end or before a
//!   final newline; `.` does not match a newline unless `p`.
//! - offsets and lengths count code points; an optional group that did not participate is
//!   `{"offset": -1, "length": 0, "string": null}`; unnamed groups have `"name": null`.
//!
//! Compiled regexes are cached per worker thread (256 entries).

use crate::guard;
use fancy_regex::{Regex, RegexBuilder};
use jaq_core::{Error, ValR};
use jaq_json::{Map, Val};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Regex compile options derived from jq's flag string.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Flags {
    global: bool,
    ignore_empty: bool,
    icase: bool,
    extended: bool,
    dot_nl: bool,
}

fn err(msg: impl std::fmt::Display) -> Error<Val> {
    Error::str(msg)
}

fn flags_of(v: &Val) -> Result<Flags, Error<Val>> {
    let s = match v {
        Val::Null => return Ok(Flags::default()),
        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
        other => return Err(err(format_args!("{} is not a string", crate::truncate(other.to_string())))),
    };
    let mut f = Flags::default();
    for c in s.chars() {
        match c {
            'g' => f.global = true,
            'i' => f.icase = true,
            'x' => f.extended = true,
            'n' => f.ignore_empty = true,
            'p' => f.dot_nl = true,
            's' | 'l' => {}
            _ => return Err(err(format_args!("{s} is not a valid modifier string"))),
        }
    }
    Ok(f)
}

/// Translate Oniguruma-only syntax: `$` (outside classes, unescaped) becomes "end or before a
/// final newline", `\h`/`\H` become hex-digit classes.
fn translate(re: &str) -> String {
    let mut out = String::with_capacity(re.len() + 8);
    let mut chars = re.chars().peekable();
    let mut class = 0usize; // nesting of `[...]`
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('h') if class > 0 => out.push_str("0-9a-fA-F"),
                Some('h') => out.push_str("[0-9a-fA-F]"),
                Some('H') if class == 0 => out.push_str("[^0-9a-fA-F]"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' => {
                class += 1;
                out.push('[');
                // a `]` right after `[` or `[^` is literal
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if class > 0 => {
                class -= 1;
                out.push(']');
            }
            '$' if class == 0 => out.push_str("(?=\\n?\\z)"),
            c => out.push(c),
        }
    }
    out
}

thread_local! {
    static CACHE: RefCell<HashMap<(String, Flags), Rc<Regex>>> = RefCell::new(HashMap::new());
}

const CACHE_CAP: usize = 256;

fn regex(re: &Val, flags: Flags) -> Result<Rc<Regex>, Error<Val>> {
    let src = match re {
        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
        other => {
            return Err(err(format_args!(
                "{} ({}) cannot be matched, as it is not a string",
                crate::truncate(other.to_string()),
                type_name(other)
            )));
        }
    };
    let key = (src, flags);
    if let Some(r) = CACHE.with_borrow(|c| c.get(&key).cloned()) {
        return Ok(r);
    }
    let built = RegexBuilder::new(&translate(&key.0))
        .oniguruma_mode(true)
        .case_insensitive(flags.icase)
        .ignore_whitespace(flags.extended)
        .dot_matches_new_line(flags.dot_nl)
        .backtrack_limit(1_000_000)
        .build()
        .map_err(|e| err(format_args!("{} (at offset 0) is not a valid regex: {e}", crate::truncate(key.0.clone()))))?;
    let built = Rc::new(built);
    CACHE.with_borrow_mut(|c| {
        if c.len() >= CACHE_CAP {
            c.clear();
        }
        c.insert(key, Rc::clone(&built));
    });
    Ok(built)
}

fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Num(_) => "number",
        Val::TStr(_) | Val::BStr(_) => "string",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
    }
}

fn input_str(v: &Val) -> Result<String, Error<Val>> {
    match v {
        Val::TStr(b) | Val::BStr(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(err(format_args!(
            "{} ({}) cannot be matched, as it is not a string",
            crate::truncate(other.to_string()),
            type_name(other)
        ))),
    }
}

/// Byte offset to code-point offset.
struct Offsets<'a> {
    s: &'a str,
    ascii: bool,
}

impl Offsets<'_> {
    fn chars(&self, byte: usize) -> usize {
        if self.ascii { byte } else { self.s.get(..byte).map_or(byte, |p| p.chars().count()) }
    }
}

fn key(k: &str) -> Val {
    Val::utf8_str(k.to_owned())
}

fn num(n: usize) -> Val {
    Val::from(n as isize)
}

/// One match as jq's match object (with `captures`).
struct Found {
    start: usize,
    end: usize,
    groups: Vec<Option<(usize, usize)>>,
}

/// All matches (one unless global), each with its groups' byte ranges.
fn find_all(s: &str, re: &Regex, flags: Flags) -> Result<Vec<Found>, Error<Val>> {
    let mut out = Vec::new();
    for caps in re.captures_iter(s) {
        guard::tick().map_err(guard::error)?;
        let caps = caps.map_err(|e| err(format_args!("regex match failed: {e}")))?;
        let Some(whole) = caps.get(0) else { continue };
        if flags.ignore_empty && whole.start() == whole.end() {
            continue;
        }
        let groups = (1..caps.len()).map(|i| caps.get(i).map(|m| (m.start(), m.end()))).collect();
        out.push(Found { start: whole.start(), end: whole.end(), groups });
        if !flags.global {
            break;
        }
    }
    Ok(out)
}

fn match_obj(s: &str, off: &Offsets, names: &[Option<&str>], f: &Found) -> Val {
    let mut m = Map::default();
    let (o, l) = (off.chars(f.start), off.chars(f.end));
    m.insert(key("offset"), num(o));
    m.insert(key("length"), num(l - o));
    m.insert(key("string"), Val::utf8_str(s[f.start..f.end].to_owned()));
    let caps: Vec<Val> = f
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut c = Map::default();
            match g {
                Some((a, b)) => {
                    let (o, l) = (off.chars(*a), off.chars(*b));
                    c.insert(key("offset"), num(o));
                    c.insert(key("length"), num(l - o));
                    c.insert(key("string"), Val::utf8_str(s[*a..*b].to_owned()));
                }
                None => {
                    c.insert(key("offset"), Val::from(-1isize));
                    c.insert(key("length"), num(0));
                    c.insert(key("string"), Val::Null);
                }
            }
            let name = names.get(i + 1).copied().flatten();
            c.insert(key("name"), name.map_or(Val::Null, key));
            Val::obj(c)
        })
        .collect();
    m.insert(key("captures"), caps.into_iter().collect());
    Val::obj(m)
}

/// `_pj_match(re; flags)`: the array of jq match objects.
pub fn matches(input: &Val, re: &Val, flags: &Val) -> ValR<Val> {
    let flags = flags_of(flags)?;
    let re = regex(re, flags)?;
    let s = input_str(input)?;
    let found = find_all(&s, &re, flags)?;
    let names: Vec<Option<&str>> = re.capture_names().collect();
    let off = Offsets { s: &s, ascii: s.is_ascii() };
    Ok(found.iter().map(|f| match_obj(&s, &off, &names, f)).collect())
}

/// `_pj_test(re; flags)`: whether there is a match.
pub fn test(input: &Val, re: &Val, flags: &Val) -> ValR<Val> {
    let mut flags = flags_of(flags)?;
    flags.global = flags.ignore_empty; // need to look further only to skip empty matches
    let re = regex(re, flags)?;
    let s = input_str(input)?;
    if flags.ignore_empty {
        return Ok(Val::Bool(!find_all(&s, &re, flags)?.is_empty()));
    }
    guard::tick().map_err(guard::error)?;
    re.is_match(&s).map(Val::Bool).map_err(|e| err(format_args!("regex match failed: {e}")))
}

/// `_pj_split(re; flags)`: the parts between all matches.
pub fn split(input: &Val, re: &Val, flags: &Val) -> ValR<Val> {
    let mut flags = flags_of(flags)?;
    flags.global = true;
    let re = regex(re, flags)?;
    let s = input_str(input)?;
    let mut last = 0;
    let mut parts = Vec::new();
    for f in find_all(&s, &re, flags)? {
        parts.push(Val::utf8_str(s[last..f.start].to_owned()));
        last = f.end;
    }
    parts.push(Val::utf8_str(s[last..].to_owned()));
    Ok(parts.into_iter().collect())
}

/// `_pj_sub_parts(re; flags)`: unmatched text (strings) alternating with the named captures of
/// each match (objects), for `sub`/`gsub`.
pub fn sub_parts(input: &Val, re: &Val, flags: &Val) -> ValR<Val> {
    let flags = flags_of(flags)?;
    let re = regex(re, flags)?;
    let s = input_str(input)?;
    let names: Vec<Option<&str>> = re.capture_names().collect();
    let mut last = 0;
    let mut parts = Vec::new();
    for f in find_all(&s, &re, flags)? {
        parts.push(Val::utf8_str(s[last..f.start].to_owned()));
        let mut caps = Map::default();
        for (i, g) in f.groups.iter().enumerate() {
            if let Some(name) = names.get(i + 1).copied().flatten() {
                caps.insert(key(name), g.map_or(Val::Null, |(a, b)| Val::utf8_str(s[a..b].to_owned())));
            }
        }
        parts.push(Val::obj(caps));
        last = f.end;
    }
    parts.push(Val::utf8_str(s[last..].to_owned()));
    guard::check_len(parts.len()).map_err(guard::error)?;
    Ok(parts.into_iter().collect())
}

/// jq-level definitions over the natives (jq 1.8's `builtin.jq`).
pub const DEFS: &str = r#"
def match(re; flags): _pj_match(re; flags)[];
def match($val): ($val|type) as $vt | if $vt == "string" then match($val; null)
   elif $vt == "array" and ($val | length) > 1 then match($val[0]; $val[1])
   elif $vt == "array" and ($val | length) > 0 then match($val[0]; null)
   else error($vt + " not a string or array") end;
def test(re; flags): _pj_test(re; flags);
def test($val): ($val|type) as $vt | if $vt == "string" then test($val; null)
   elif $vt == "array" and ($val | length) > 1 then test($val[0]; $val[1])
   elif $vt == "array" and ($val | length) > 0 then test($val[0]; null)
   else error($vt + " not a string or array") end;
def capture(re; flags): match(re; flags)
   | reduce (.captures[] | select(.name != null)) as $c ({}; . + {($c.name): $c.string});
def capture($val): ($val|type) as $vt | if $vt == "string" then capture($val; null)
   elif $vt == "array" and ($val | length) > 1 then capture($val[0]; $val[1])
   elif $vt == "array" and ($val | length) > 0 then capture($val[0]; null)
   else error($vt + " not a string or array") end;
def scan($re; $flags): match($re; "g" + $flags)
   | if (.captures | length) > 0 then [.captures[].string] else .string end;
def scan($re): scan($re; null);
def split($re; flags): _pj_split($re; flags);
def splits($re; flags): split($re; flags)[];
def splits($re): splits($re; null);
def sub($re; str; $flags): reduce _pj_sub_parts($re; $flags)[] as $x ([""];
     if ($x | type) == "object" then [.[] as $acc | $x | str | $acc + .] else map(. + $x) end) | .[];
def sub($re; str): sub($re; str; "");
def gsub($re; str; $flags): sub($re; str; $flags + "g");
def gsub($re; str): sub($re; str; "g");
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn translate_oniguruma_syntax() {
        use super::translate as t;
        assert_eq!(t("a$"), "a(?=\\n?\\z)");
        assert_eq!(t("[$]\\$"), "[$]\\$");
        assert_eq!(t("\\h+[\\h_]"), "[0-9a-fA-F]+[0-9a-fA-F_]");
        assert_eq!(t("[]$]"), "[\\]$]");
        assert_eq!(t("\\](?=[^$])"), "\\](?=[^$])");
    }
}
