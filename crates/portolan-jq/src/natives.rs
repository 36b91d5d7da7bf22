//! Native filters that replace or extend jaq's: jq-compatible semantics plus the guards of
//! `guard.rs` (step budget, deadline, maximum value length).

use crate::guard::{self, Trip};
use jaq_core::{Error, Exn, ValR, ValX};
use jaq_json::{Map, Num, Rc, Val};

type Xs<'a> = Box<dyn Iterator<Item = ValX<'a, Val>> + 'a>;

fn err(msg: impl std::fmt::Display) -> Error<Val> {
    Error::str(msg)
}

fn limit(t: Trip) -> Error<Val> {
    guard::error(t)
}

pub fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Num(_) => "number",
        Val::TStr(_) | Val::BStr(_) => "string",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
    }
}

/// `number (1)` / `string ("a")`, as in jq's messages.
fn described(v: &Val) -> String {
    format!("{} ({})", type_name(v), crate::truncate(v.to_string()))
}

pub fn f64_of(n: &Num) -> f64 {
    match n {
        Num::Int(i) => *i as f64,
        Num::Float(f) => *f,
        Num::BigInt(b) => b.to_string().parse().unwrap_or(f64::NAN),
        Num::Dec(s) => s.parse().unwrap_or(f64::NAN),
    }
}

fn is_zero(n: &Num) -> bool {
    f64_of(n) == 0.0
}

fn str_len(v: &Val) -> Option<usize> {
    match v {
        Val::TStr(b) | Val::BStr(b) => Some(b.len()),
        _ => None,
    }
}

/// `l + r` with a length cap on string and array concatenation.
pub fn add(l: Val, r: Val) -> ValR<Val> {
    let total = match (&l, &r) {
        (Val::Arr(a), Val::Arr(b)) => Some(a.len() + b.len()),
        _ => str_len(&l).zip(str_len(&r)).map(|(a, b)| a + b),
    };
    if let Some(n) = total {
        guard::check_len(n).map_err(limit)?;
    }
    l + r
}

/// `l * r`: jq 1.8 string repetition (`n < 0` is null, else `floor(n)` copies), length-capped.
pub fn mul(l: Val, r: Val) -> ValR<Val> {
    let rep = match (&l, &r) {
        (s @ (Val::TStr(_) | Val::BStr(_)), Val::Num(n)) | (Val::Num(n), s @ (Val::TStr(_) | Val::BStr(_))) => {
            Some((s.clone(), f64_of(n)))
        }
        _ => None,
    };
    let Some((s, n)) = rep else { return l * r };
    if n.is_nan() || n < 0.0 {
        return Ok(Val::Null);
    }
    let (Val::TStr(b) | Val::BStr(b)) = &s else { return Ok(Val::Null) };
    let count = n.floor().min(usize::MAX as f64) as usize;
    guard::check_len(b.len().saturating_mul(count)).map_err(limit)?;
    Ok(Val::utf8_str(b.repeat(count)))
}

/// `l / r`: division by zero is an error, as in jq.
pub fn div(l: Val, r: Val) -> ValR<Val> {
    if let (Val::Num(_), Val::Num(d)) = (&l, &r)
        && is_zero(d)
    {
        return Err(err(format_args!(
            "{} and {} cannot be divided because the divisor is zero",
            described(&l),
            described(&r)
        )));
    }
    l / r
}

/// `l % r`: jq truncates both sides to integers; a zero divisor is an error.
pub fn rem(l: Val, r: Val) -> ValR<Val> {
    let (Val::Num(a), Val::Num(b)) = (&l, &r) else { return l % r };
    let to_int = |n: &Num| match n {
        Num::Int(i) => *i as i64,
        n => {
            let f = f64_of(n);
            if f.is_nan() { 0 } else { f.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64 }
        }
    };
    let (x, y) = (to_int(a), to_int(b));
    if y == 0 {
        return Err(err(format_args!(
            "{} and {} cannot be divided (remainder) because the divisor is zero",
            described(&l),
            described(&r)
        )));
    }
    Ok(Val::from(x.checked_rem(y).unwrap_or(0) as isize))
}

/// `range($from; $upto; $by)`, spending one step per output.
pub fn range<'a>(from: Val, to: Val, by: Val) -> Xs<'a> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let cmp = by.partial_cmp(&Val::from(0isize)).unwrap_or(Equal);
    let mut cur = Some(Ok::<Val, Error<Val>>(from));
    Box::new(std::iter::from_fn(move || {
        let x = match cur.take()? {
            Ok(x) => x,
            Err(e) => return Some(Err(Exn::from(e))),
        };
        let more = match cmp {
            Greater => x < to,
            Less => x > to,
            Equal => x != to,
        };
        if !more {
            return None;
        }
        if let Err(t) = guard::tick() {
            return Some(Err(Exn::from(limit(t))));
        }
        cur = Some(x.clone() + by.clone());
        Some(Ok(x))
    }))
}

/// The guard filter inserted into recursive definitions: identity, or a limit error.
pub fn stack_guard(v: Val) -> ValR<Val> {
    guard::check().map(|()| v).map_err(limit)
}

/// `tojson` with jq's output for non-finite numbers (NaN is `null`, ±infinity the largest
/// double) and a length cap.
pub fn to_json(v: &Val) -> Result<String, Error<Val>> {
    let mut out = String::new();
    write_json(v, &mut out).map_err(limit)?;
    Ok(out)
}

fn write_json(v: &Val, out: &mut String) -> Result<(), Trip> {
    match v {
        Val::Arr(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out)?;
            }
            out.push(']');
        }
        Val::Obj(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(k, out)?;
                out.push(':');
                write_json(x, out)?;
            }
            out.push('}');
        }
        Val::Num(Num::Float(f)) if f.is_nan() => out.push_str("null"),
        Val::Num(Num::Float(f)) if f.is_infinite() => {
            out.push_str(if *f > 0.0 { "1.7976931348623157e+308" } else { "-1.7976931348623157e+308" })
        }
        leaf => out.push_str(&leaf.to_string()),
    }
    guard::check_len(out.len())
}

/// `tostring`: strings unchanged, everything else `tojson`.
pub fn to_string(v: Val) -> ValR<Val> {
    match v {
        Val::TStr(_) => Ok(v),
        Val::BStr(b) => Ok(Val::TStr(b)),
        v => to_json(&v).map(Val::utf8_str),
    }
}

fn index_of(n: &Num) -> Option<isize> {
    match n {
        Num::Int(i) => Some(*i),
        n => {
            let f = f64_of(n);
            (f.is_finite()).then(|| f.trunc().clamp(isize::MIN as f64, isize::MAX as f64) as isize)
        }
    }
}

/// `setpath($path; $value)` with jq semantics: `null` becomes an object or array as needed,
/// arrays are padded with `null`, slices (`{"start", "end"}`) assign arrays.
pub fn setpath(v: Val, path: &Val, x: Val) -> ValR<Val> {
    let Val::Arr(path) = path else { return Err(err("Path must be specified as an array")) };
    set(v, path, x)
}

/// `getpath($path)` as the prelude defines it, over a path that `path(f)` produced: each
/// element is `.[$p]`, or `.[$p.start:$p.end]` for a slice (jaq's own indexing, so the same
/// values and errors).
fn get(v: Val, path: &[Val]) -> ValR<Val> {
    use jaq_core::ValT as _;
    path.iter().try_fold(v, |v, p| match p {
        Val::Obj(slice) => {
            let bound = |name: &str| slice.get(&Val::utf8_str(name.to_owned())).cloned().unwrap_or(Val::Null);
            let (start, end) = (bound("start"), bound("end"));
            v.range(Some(&start)..Some(&end))
        }
        p => v.index(p),
    })
}

/// The loop of jq 1.8's `_modify(paths; update)` (`paths |= update`): for each path that
/// `paths` yields over the input, the first output of `update` over the value found there
/// (in the result so far) is set there; a path where `update` yields nothing is remembered
/// for deletion. Returns `[result, paths to delete]` (the prelude's `__portolan_modify`
/// deletes them with `delpaths`, as jq does, after the loop). Like the definition, it spends no
/// step per path; it checks the deadline every [`guard::DEADLINE_EVERY`] paths.
///
/// jq defines this with `reduce`, `label`, `getpath` and `setpath`; the same steps here cost
/// a fraction (`with_entries(.value |= tostring)` is in many mappings).
pub fn modify<'a>(
    input: Val,
    paths: impl Iterator<Item = Result<Vec<Val>, Exn<'a, Val>>>,
    update: impl Fn(Val) -> Option<ValX<'a, Val>>,
) -> ValX<'a, Val> {
    let mut x = input;
    let mut delete = Vec::new();
    for (n, path) in paths.enumerate() {
        let path = path?;
        if (n as u64 + 1).is_multiple_of(guard::DEADLINE_EVERY) {
            guard::deadline().map_err(|t| Exn::from(limit(t)))?;
        }
        match update(get(x.clone(), &path)?) {
            Some(v) => x = set(x, &path, v?)?,
            None => delete.push(path.into_iter().collect::<Val>()),
        }
    }
    Ok([x, delete.into_iter().collect()].into_iter().collect())
}

/// `to_entries` (`[keys_unsorted[] as $k | {key: $k, value: .[$k]}]`) of an object or an
/// array; `None` for anything else (the prelude's definition then gives jq's error).
pub fn to_entries(v: &Val) -> Option<Val> {
    let entry = |k: Val, v: Val| {
        let mut m = Map::with_capacity_and_hasher(2, Default::default());
        m.insert(Val::utf8_str(b"key".to_vec()), k);
        m.insert(Val::utf8_str(b"value".to_vec()), v);
        Val::obj(m)
    };
    match v {
        Val::Obj(o) => Some(o.iter().map(|(k, v)| entry(k.clone(), v.clone())).collect()),
        Val::Arr(a) => Some(a.iter().enumerate().map(|(i, v)| entry(Val::from(i as isize), v.clone())).collect()),
        _ => None,
    }
}

/// `from_entries` as the prelude defines it (jq 1.7's: the key is `.key`, else the first of
/// `.k`, `.name`, `.Name`, `.K` that is neither `null` nor `false`, else `.Key`, turned into a
/// string with `tojson` unless it is one; the value is `.value`, `.v` or `.Value`, the first
/// present), for an array of objects; `None` for anything else (the definition then runs and
/// gives jq's result or error).
pub fn from_entries(v: &Val) -> Option<Val> {
    let Val::Arr(entries) = v else { return None };
    let field = |o: &Map<Val, Val>, name: &str| o.get(&Val::utf8_str(name.as_bytes().to_vec())).cloned();
    let mut out = Map::with_capacity_and_hasher(entries.len(), Default::default());
    for e in entries.iter() {
        let Val::Obj(o) = e else { return None };
        let key = match field(o, "key").unwrap_or(Val::Null) {
            Val::Null => ["k", "name", "Name", "K"]
                .iter()
                .filter_map(|n| field(o, n))
                .find(|k| !matches!(k, Val::Null | Val::Bool(false)))
                .or_else(|| field(o, "Key"))
                .unwrap_or(Val::Null),
            k => k,
        };
        let key = match key {
            k @ Val::TStr(_) => k,
            Val::BStr(_) => return None,
            k => Val::utf8_str(to_json(&k).ok()?.into_bytes()),
        };
        let value = field(o, "value").or_else(|| field(o, "v")).or_else(|| field(o, "Value")).unwrap_or(Val::Null);
        out.insert(key, value);
    }
    Some(Val::obj(out))
}

fn set(v: Val, path: &[Val], x: Val) -> ValR<Val> {
    let Some((k, rest)) = path.split_first() else { return Ok(x) };
    match (v, k) {
        (v @ (Val::Null | Val::Obj(_)), Val::TStr(_) | Val::BStr(_)) => {
            let mut o = match v {
                Val::Obj(o) => o,
                _ => Rc::new(Map::default()),
            };
            let m = Rc::make_mut(&mut o);
            let key = match k {
                Val::BStr(b) => Val::TStr(b.clone()),
                k => k.clone(),
            };
            let child = m.get_mut(&key).map(std::mem::take).unwrap_or(Val::Null);
            let new = set(child, rest, x)?;
            m.insert(key, new);
            Ok(Val::Obj(o))
        }
        (v @ (Val::Null | Val::Arr(_)), Val::Num(n)) => {
            let mut a = match v {
                Val::Arr(a) => a,
                _ => Rc::new(Vec::new()),
            };
            let i = index_of(n).ok_or_else(|| err("Cannot index array with a non-finite number"))?;
            let len = a.len() as isize;
            let i = if i < 0 { i + len } else { i };
            if i < 0 {
                return Err(err("Out of bounds negative array index"));
            }
            let i = i as usize;
            guard::check_len(i.saturating_add(1)).map_err(limit)?;
            let vec = Rc::make_mut(&mut a);
            if i >= vec.len() {
                vec.resize(i + 1, Val::Null);
            }
            let child = std::mem::take(&mut vec[i]);
            vec[i] = set(child, rest, x)?;
            Ok(Val::Arr(a))
        }
        (v @ (Val::Null | Val::Arr(_)), Val::Obj(slice)) => {
            let mut a = match v {
                Val::Arr(a) => a,
                _ => Rc::new(Vec::new()),
            };
            let len = a.len();
            let bound = |name: &str, default: usize| -> Result<usize, Error<Val>> {
                match slice.get(&Val::utf8_str(name.to_owned())) {
                    None | Some(Val::Null) => Ok(default),
                    Some(Val::Num(n)) => {
                        let f = f64_of(n);
                        let i = if name == "end" { f.ceil() } else { f.floor() };
                        let i = if i < 0.0 { i + len as f64 } else { i };
                        Ok(i.clamp(0.0, len as f64) as usize)
                    }
                    Some(_) => Err(err("Array/string slice indices must be integers")),
                }
            };
            let start = bound("start", 0)?;
            let end = bound("end", len)?.max(start);
            let current: Val = a[start..end].iter().cloned().collect();
            let new = set(current, rest, x)?;
            let Val::Arr(new) = new else { return Err(err("A slice of an array can only be assigned another array")) };
            guard::check_len(len - (end - start) + new.len()).map_err(limit)?;
            Rc::make_mut(&mut a).splice(start..end, new.iter().cloned());
            Ok(Val::Arr(a))
        }
        (v, k) => Err(err(format_args!("Cannot index {} with {}", type_name(&v), described(k)))),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Decode base-2^`bits` text (`=` padding optional) to bytes.
fn decode_radix(s: &[u8], alphabet: &[u8], bits: u32) -> Option<Vec<u8>> {
    let body = match s.iter().position(|&c| c == b'=') {
        Some(p) if s[p..].iter().all(|&c| c == b'=') => &s[..p],
        Some(_) => return None,
        None => s,
    };
    let mut out = Vec::with_capacity(body.len() * bits as usize / 8);
    let (mut acc, mut n) = (0u64, 0u32);
    for &c in body {
        let d = alphabet.iter().position(|&a| a == c)? as u64;
        acc = (acc << bits) | d;
        n += bits;
        if n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
            acc &= (1 << n) - 1;
        }
    }
    Some(out)
}

fn decoded(v: &Val, alphabet: &[u8], bits: u32, what: &str) -> ValR<Val> {
    let (Val::TStr(b) | Val::BStr(b)) = v else {
        return Err(err(format_args!("{} cannot be {what}-decoded", described(v))));
    };
    match decode_radix(b, alphabet, bits) {
        Some(bytes) => Ok(Val::utf8_str(String::from_utf8_lossy(&bytes).into_owned())),
        None => Err(err(format_args!("{} is not valid {what} data", described(v)))),
    }
}

/// `@base64d`: padding optional (jq accepts `"aGVsbG8"`).
pub fn base64d(v: &Val) -> ValR<Val> {
    decoded(v, B64, 6, "base64")
}

/// `@base32d`.
pub fn base32d(v: &Val) -> ValR<Val> {
    decoded(v, B32, 5, "base32")
}

/// `tojson` as a jaq value.
pub fn tojson_val(v: &Val) -> ValR<Val> {
    to_json(v).map(Val::utf8_str)
}
