//! Hand-written conversions between `serde_json::Value` and jaq's `Val`.
//!
//! jaq values are a superset of JSON: object keys can be any value, numbers can be NaN or
//! infinite, and strings can be byte strings. Everything outside JSON is rejected with
//! [`JqError::NotJson`] instead of being silently changed.

use crate::JqError;
use crate::needs::Need;
use jaq_json::{Map, Num, Rc, Val};
use serde_json::Value;

/// Nesting limit for both directions (serde_json's own parser stops at 128).
pub const MAX_DEPTH: usize = 512;

/// Convert JSON input to a jaq value.
pub fn to_val(v: &Value) -> Result<Val, JqError> {
    to_val_at(v, 0)
}

fn to_val_at(v: &Value, depth: usize) -> Result<Val, JqError> {
    if depth > MAX_DEPTH {
        return Err(JqError::Limit(format!("input nested deeper than {MAX_DEPTH} levels")));
    }
    Ok(match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => Val::Num(if let Some(i) = n.as_i64() {
            Num::from_integral(i)
        } else if let Some(u) = n.as_u64() {
            Num::from_integral(u)
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        Value::String(s) => Val::utf8_str(s.clone().into_bytes()),
        Value::Array(a) => {
            let items = a.iter().map(|x| to_val_at(x, depth + 1)).collect::<Result<Vec<_>, _>>()?;
            Val::Arr(Rc::new(items))
        }
        Value::Object(o) => {
            let mut m = Map::with_capacity_and_hasher(o.len(), Default::default());
            for (k, x) in o {
                m.insert(Val::utf8_str(k.clone().into_bytes()), to_val_at(x, depth + 1)?);
            }
            Val::obj(m)
        }
    })
}

/// A jaq value read straight from JSON text (a worker process's request), with no
/// `serde_json::Value` built on the way: the same value [`to_val`] makes of the parsed text.
/// Nesting is bounded by serde_json's parser (128 levels, below [`MAX_DEPTH`]).
pub(crate) struct WireVal(pub Val);

impl<'de> serde::Deserialize<'de> for WireVal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor).map(WireVal)
    }
}

struct ValVisitor;

impl<'de> serde::de::Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Val, E> {
        Ok(Val::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Val, E> {
        Ok(Val::Num(Num::from_integral(i)))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Val, E> {
        Ok(Val::Num(Num::from_integral(u)))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Val, E> {
        Ok(Val::Num(Num::Float(f)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Val, E> {
        Ok(Val::utf8_str(s.as_bytes().to_vec()))
    }
    fn visit_string<E>(self, s: String) -> Result<Val, E> {
        Ok(Val::utf8_str(s.into_bytes()))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(WireVal(x)) = seq.next_element()? {
            items.push(x);
        }
        Ok(Val::Arr(Rc::new(items)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut m = Map::with_capacity_and_hasher(map.size_hint().unwrap_or(0), Default::default());
        while let Some((k, WireVal(x))) = map.next_entry::<String, WireVal>()? {
            m.insert(Val::utf8_str(k.into_bytes()), x);
        }
        Ok(Val::obj(m))
    }
}

/// A jaq value read from JSON text keeping only what a filter can observe of it
/// ([`Need`](crate::needs::Need)): an object's other keys are skipped as text, never built.
/// Anything that is not an object where keys are asked for is read whole.
pub(crate) fn read_needed(text: &str, need: &Need) -> Result<Val, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = serde::de::DeserializeSeed::deserialize(Needed(need), &mut de)?;
    de.end()?;
    Ok(v)
}

/// [`to_val`] keeping only what `need` says (see [`read_needed`]).
pub(crate) fn to_val_needed(v: &Value, need: &Need) -> Result<Val, JqError> {
    needed_at(v, need, 0)
}

fn needed_at(v: &Value, need: &Need, depth: usize) -> Result<Val, JqError> {
    match (need, v) {
        (Need::Keys(keys), Value::Object(o)) => {
            if depth > MAX_DEPTH {
                return Err(JqError::Limit(format!("input nested deeper than {MAX_DEPTH} levels")));
            }
            let mut m = Map::with_capacity_and_hasher(keys.len().min(o.len()), Default::default());
            for (k, x) in o {
                match keys.get(k) {
                    Some(n) => {
                        m.insert(Val::utf8_str(k.clone().into_bytes()), needed_at(x, n, depth + 1)?);
                    }
                    // Not read, but refused as reading it whole would refuse it.
                    None => check_depth(x, depth + 1)?,
                }
            }
            Ok(Val::obj(m))
        }
        _ => to_val_at(v, depth),
    }
}

/// [`to_val`]'s nesting check, without building anything.
fn check_depth(v: &Value, depth: usize) -> Result<(), JqError> {
    if depth > MAX_DEPTH {
        return Err(JqError::Limit(format!("input nested deeper than {MAX_DEPTH} levels")));
    }
    match v {
        Value::Array(a) => a.iter().try_for_each(|x| check_depth(x, depth + 1)),
        Value::Object(o) => o.values().try_for_each(|x| check_depth(x, depth + 1)),
        _ => Ok(()),
    }
}

struct Needed<'n>(&'n Need);

impl<'de> serde::de::DeserializeSeed<'de> for Needed<'_> {
    type Value = Val;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        match self.0 {
            Need::Whole => d.deserialize_any(ValVisitor),
            Need::Keys(keys) => d.deserialize_any(KeysVisitor(keys)),
        }
    }
}

/// An object's needed keys; any other value whole, as [`ValVisitor`] reads it.
struct KeysVisitor<'n>(&'n std::collections::BTreeMap<String, Need>);

impl<'de> serde::de::Visitor<'de> for KeysVisitor<'_> {
    type Value = Val;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Val, E> {
        ValVisitor.visit_unit()
    }
    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Val, E> {
        ValVisitor.visit_bool(b)
    }
    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Val, E> {
        ValVisitor.visit_i64(i)
    }
    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Val, E> {
        ValVisitor.visit_u64(u)
    }
    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Val, E> {
        ValVisitor.visit_f64(f)
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Val, E> {
        ValVisitor.visit_str(s)
    }
    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Val, E> {
        ValVisitor.visit_string(s)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Val, A::Error> {
        ValVisitor.visit_seq(seq)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut m = Map::with_capacity_and_hasher(self.0.len(), Default::default());
        while let Some(Key(k)) = map.next_key()? {
            match self.0.get(&*k) {
                Some(n) => {
                    let x = map.next_value_seed(Needed(n))?;
                    m.insert(Val::utf8_str(k.into_owned().into_bytes()), x);
                }
                None => {
                    map.next_value::<Skipped>()?;
                }
            }
        }
        Ok(Val::obj(m))
    }
}

/// A value read and dropped, checked as [`ValVisitor`] would check it (numbers in range, string
/// escapes, nesting within serde_json's limit) — unlike `IgnoredAny`, which only skips its text —
/// so an item is refused exactly when reading it whole would refuse it.
struct Skipped;

impl<'de> serde::Deserialize<'de> for Skipped {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> serde::de::Visitor<'de> for SkipVisitor {
    type Value = Skipped;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skipped, A::Error> {
        while seq.next_element::<Skipped>()?.is_some() {}
        Ok(Skipped)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Skipped, A::Error> {
        while map.next_entry::<Skipped, Skipped>()?.is_some() {}
        Ok(Skipped)
    }
}

/// An object key, borrowed from the text where it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Convert a jaq result to JSON, rejecting what JSON cannot represent.
pub fn from_val(v: &Val) -> Result<Value, JqError> {
    from_val_at(v, 0)
}

fn from_val_at(v: &Val, depth: usize) -> Result<Value, JqError> {
    if depth > MAX_DEPTH {
        return Err(JqError::NotJson(format!("result nested deeper than {MAX_DEPTH} levels")));
    }
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => Value::Number(num(n)?),
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(a) => Value::Array(a.iter().map(|x| from_val_at(x, depth + 1)).collect::<Result<_, _>>()?),
        Val::Obj(o) => {
            let mut m = serde_json::Map::with_capacity(o.len());
            for (k, x) in o.iter() {
                let key = match k {
                    Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                    other => {
                        return Err(JqError::NotJson(format!(
                            "object key {} is not a string",
                            crate::truncate(other.to_string())
                        )));
                    }
                };
                m.insert(key, from_val_at(x, depth + 1)?);
            }
            Value::Object(m)
        }
    })
}

/// The JSON text of a jaq result, written straight into `out`: the text of
/// `from_val(v)?.to_string()` with no `serde_json::Value` built on the way (a worker process's
/// answer). On `Err`, `out` may hold a partial text; the caller cuts it.
pub(crate) fn write_json(v: &Val, out: &mut Vec<u8>) -> Result<(), JqError> {
    write_json_at(v, out, 0)
}

fn write_json_at(v: &Val, out: &mut Vec<u8>, depth: usize) -> Result<(), JqError> {
    if depth > MAX_DEPTH {
        return Err(JqError::NotJson(format!("result nested deeper than {MAX_DEPTH} levels")));
    }
    let text = |out: &mut Vec<u8>, t: &[u8]| {
        serde_json::to_writer(out, &String::from_utf8_lossy(t)).map_err(|e| JqError::NotJson(e.to_string()))
    };
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Val::Num(n) => serde_json::to_writer(&mut *out, &num(n)?).map_err(|e| JqError::NotJson(e.to_string()))?,
        Val::TStr(b) | Val::BStr(b) => text(out, b)?,
        Val::Arr(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_at(x, out, depth + 1)?;
            }
            out.push(b']');
        }
        Val::Obj(o) => {
            out.push(b'{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    Val::TStr(b) | Val::BStr(b) => text(out, b)?,
                    other => {
                        return Err(JqError::NotJson(format!(
                            "object key {} is not a string",
                            crate::truncate(other.to_string())
                        )));
                    }
                }
                out.push(b':');
                write_json_at(x, out, depth + 1)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn num(n: &Num) -> Result<serde_json::Number, JqError> {
    let float = |f: f64| {
        serde_json::Number::from_f64(f).ok_or_else(|| JqError::NotJson(format!("number {f} is not valid JSON")))
    };
    match n {
        Num::Int(i) => Ok(serde_json::Number::from(*i as i64)),
        Num::Float(f) => float(*f),
        // Big integers and decimal literals (`1.0`, `1e17`) are kept as text by jaq.
        Num::BigInt(b) => text_num(&b.to_string()),
        Num::Dec(s) => text_num(s),
    }
}

fn text_num(s: &str) -> Result<serde_json::Number, JqError> {
    if let Ok(i) = s.parse::<i64>() {
        return Ok(i.into());
    }
    if let Ok(u) = s.parse::<u64>() {
        return Ok(u.into());
    }
    s.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .ok_or_else(|| JqError::NotJson(format!("number {} is not valid JSON", crate::truncate(s.to_owned()))))
}
