//! Property tests for the parsers that take user input: search queries, entity and blueprint
//! bodies, identifiers. Whatever JSON arrives, they answer Ok or a located error — never panic.

#![allow(clippy::unwrap_used)]

use portolan_core::blueprint_check::parse_blueprint;
use portolan_core::ident::{check_blueprint_id, check_entity_id};
use portolan_core::search::parse_query;
use portolan_core::{EntityInput, FieldError};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Arbitrary JSON, biased towards the words the parsers look for.
fn json_value() -> impl Strategy<Value = Value> {
    let word = prop_oneof![
        Just("combinator".to_string()),
        Just("rules".to_string()),
        Just("property".to_string()),
        Just("operator".to_string()),
        Just("value".to_string()),
        Just("and".to_string()),
        Just("or".to_string()),
        Just("=".to_string()),
        Just("between".to_string()),
        Just("relatedTo".to_string()),
        Just("matchAny".to_string()),
        Just("$identifier".to_string()),
        Just("preset".to_string()),
        Just("path".to_string()),
        Just("maxHops".to_string()),
        "[a-zA-Z$.]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        word.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn located(e: &FieldError) -> bool {
    !e.message.is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn search_parser_never_panics(v in json_value()) {
        if let Err(e) = parse_query(&v) {
            prop_assert!(located(&e), "{e:?}");
        }
    }

    #[test]
    fn search_parser_on_query_shaped_input(rules in prop::collection::vec(json_value(), 0..5), c in "[a-z]{0,4}") {
        let q = json!({"combinator": c, "rules": rules});
        if let Err(e) = parse_query(&q) {
            prop_assert!(located(&e), "{e:?}");
        }
    }

    #[test]
    fn entity_and_blueprint_parsers_never_panic(v in json_value()) {
        let _ = EntityInput::parse(&v);
        let _ = parse_blueprint(&v);
    }

    #[test]
    fn identifier_checks_match_the_rules(s in "\\PC{0,40}") {
        let ok = check_entity_id("identifier", &s).is_ok();
        let expected = !s.is_empty() && s != "." && s != ".." &&
            s.chars().all(|c| c.is_alphabetic() || c.is_ascii_digit() || "@_.+:\\/=-".contains(c));
        prop_assert_eq!(ok, expected, "{:?}", s);
        if check_blueprint_id("identifier", &s).is_ok() {
            prop_assert!(ok && !s.contains('='));
        }
    }
}
