//! The deserializer behind [`QueryParams`](crate::extract::QueryParams): a query string's keys,
//! each with its values (`a=1&a=2` and `a[]=1` give several), read into any `Deserialize`
//! type. A value is text until the target field asks for something else: a number field parses
//! it (`limit=100`), a boolean field takes `true`/`false`, an `Option` is `Some`, a list takes
//! every value of the key, and a field of any type (`serde_json::Value`) gets a string, or an
//! array of strings when the key came more than once.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};

/// Deserialize `T` from `(key, values)` pairs.
pub fn from_pairs<T: de::DeserializeOwned>(pairs: Vec<(String, Vec<String>)>) -> Result<T, de::value::Error> {
    T::deserialize(MapDeserializer::new(pairs.into_iter().map(|(k, v)| (k, Values(v)))))
}

/// One key's values.
struct Values(Vec<String>);

/// One value.
struct Text(String);

impl<'de> IntoDeserializer<'de, de::value::Error> for Values {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> IntoDeserializer<'de, de::value::Error> for Text {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl Values {
    /// The single value a scalar field takes (the last one, when the key came several times).
    fn one(self) -> Text {
        Text(self.0.into_iter().last().unwrap_or_default())
    }
}

macro_rules! scalar_via_text {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.one().$method(visitor)
        })*
    };
}

impl<'de> Deserializer<'de> for Values {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.0.len() == 1 { self.one().deserialize_any(visitor) } else { self.deserialize_seq(visitor) }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(SeqDeserializer::new(self.0.into_iter().map(Text)))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    scalar_via_text! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_u8
        deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_identifier
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.one().deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit unit_struct newtype_struct tuple tuple_struct map struct ignored_any
    }
}

macro_rules! parse_text {
    ($($method:ident => $visit:ident: $ty:ty, $what:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            match self.0.trim().parse::<$ty>() {
                Ok(v) => visitor.$visit(v),
                Err(_) => Err(de::Error::custom(format!("{:?} is not {}", self.0, $what))),
            }
        })*
    };
}

impl<'de> Deserializer<'de> for Text {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_string(self.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0.trim() {
            "true" | "" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            _ => Err(de::Error::custom(format!("{:?} is not true or false", self.0))),
        }
    }

    parse_text! {
        deserialize_i8 => visit_i8: i8, "a whole number";
        deserialize_i16 => visit_i16: i16, "a whole number";
        deserialize_i32 => visit_i32: i32, "a whole number";
        deserialize_i64 => visit_i64: i64, "a whole number";
        deserialize_u8 => visit_u8: u8, "a whole number of 0 or more";
        deserialize_u16 => visit_u16: u16, "a whole number of 0 or more";
        deserialize_u32 => visit_u32: u32, "a whole number of 0 or more";
        deserialize_u64 => visit_u64: u64, "a whole number of 0 or more";
        deserialize_f32 => visit_f32: f32, "a number";
        deserialize_f64 => visit_f64: f64, "a number";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(SeqDeserializer::new(std::iter::once(self)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct newtype_struct tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::from_pairs;

    #[derive(Debug, serde::Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Params {
        limit: Option<u32>,
        before: Option<i64>,
        active: Option<bool>,
        name: Option<String>,
        tags: Vec<String>,
        any: Option<Value>,
        ratio: f64,
    }

    fn pairs(p: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        p.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
    }

    #[test]
    fn numbers_booleans_lists_and_any_values_are_read_from_text() {
        let p: Params = from_pairs(pairs(&[
            ("limit", &["100"]),
            ("before", &["-5"]),
            ("active", &["false"]),
            ("name", &["42"]),
            ("tags", &["a", "b"]),
            ("any", &["x", "y"]),
            ("ratio", &["0.5"]),
        ]))
        .unwrap();
        assert_eq!(
            p,
            Params {
                limit: Some(100),
                before: Some(-5),
                active: Some(false),
                name: Some("42".into()),
                tags: vec!["a".into(), "b".into()],
                any: Some(json!(["x", "y"])),
                ratio: 0.5,
            }
        );
        let p: Params = from_pairs(pairs(&[("tags", &["one"]), ("any", &["1"]), ("active", &["true"])])).unwrap();
        assert_eq!((p.tags, p.any, p.active), (vec!["one".to_string()], Some(json!("1")), Some(true)));
    }

    #[test]
    fn a_bad_number_or_boolean_says_what_was_given() {
        let e = from_pairs::<Params>(pairs(&[("limit", &["ten"])])).unwrap_err().to_string();
        assert!(e.contains("\"ten\" is not a whole number of 0 or more"), "{e}");
        let e = from_pairs::<Params>(pairs(&[("limit", &["-1"])])).unwrap_err().to_string();
        assert!(e.contains("\"-1\" is not a whole number"), "{e}");
        let e = from_pairs::<Params>(pairs(&[("active", &["yes"])])).unwrap_err().to_string();
        assert!(e.contains("\"yes\" is not true or false"), "{e}");
    }
}
