//! Table-driven parser tests: every operator parses, and every way to get it wrong is rejected
//! with a message at the right path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use serde_json::{Number, Value, json};

use super::*;
use crate::FieldError;

fn group(rules: Vec<Value>) -> Value {
    json!({"combinator": "and", "rules": rules})
}

fn rule(property: &str, operator: &str, value: Value) -> Value {
    json!({"property": property, "operator": operator, "value": value})
}

/// Parse `{and: [r]}` and return the rule.
fn parse_rule(r: Value) -> Result<Rule, FieldError> {
    match parse_query(&group(vec![r]))? {
        Query::Group { mut rules, .. } => match rules.pop() {
            Some(Query::Rule(rule)) => Ok(rule),
            other => panic!("not a rule: {other:?}"),
        },
        other => panic!("not a group: {other:?}"),
    }
}

fn prop(name: &str) -> PropertyRef {
    PropertyRef::Property(name.to_string())
}

fn s(v: &str) -> Literal {
    Literal::String(v.to_string())
}

fn n(v: i64) -> Literal {
    Literal::Number(Number::from(v))
}

fn ts(y: i32, mo: u32, d: u32, h: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
}

#[test]
fn search_parses_every_property_operator() {
    let range = json!({"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00+01:00"});
    let parsed_range = DateRange::Range { from: ts(2024, 1, 1, 0), to: ts(2024, 1, 31, 23) };
    let cases: Vec<(Value, PropertyOp)> = vec![
        (rule("p", "=", json!("x")), PropertyOp::Eq(s("x"))),
        (rule("p", "=", json!(3)), PropertyOp::Eq(n(3))),
        (rule("p", "=", json!(true)), PropertyOp::Eq(Literal::Bool(true))),
        (rule("p", "=", Value::Null), PropertyOp::Eq(Literal::Null)),
        (
            rule("p", "=", json!(["a", 1, false])),
            PropertyOp::Eq(Literal::Array(vec![s("a"), n(1), Literal::Bool(false)])),
        ),
        (rule("p", "!=", json!("x")), PropertyOp::Ne(s("x"))),
        (rule("p", "!=", Value::Null), PropertyOp::Ne(Literal::Null)),
        (rule("p", ">", json!(7)), PropertyOp::Cmp(CmpOp::Gt, Bound::Number(Number::from(7)))),
        (rule("p", ">=", json!(7)), PropertyOp::Cmp(CmpOp::Ge, Bound::Number(Number::from(7)))),
        (
            rule("p", "<", json!("2024-01-01T10:00:00Z")),
            PropertyOp::Cmp(CmpOp::Lt, Bound::DateTime(ts(2024, 1, 1, 10))),
        ),
        (
            rule("p", "<=", json!("2024-01-01T12:00:00+02:00")),
            PropertyOp::Cmp(CmpOp::Le, Bound::DateTime(ts(2024, 1, 1, 10))),
        ),
        (rule("p", "between", range.clone()), PropertyOp::Between(parsed_range.clone())),
        (rule("p", "notBetween", range), PropertyOp::NotBetween(parsed_range)),
        (
            rule("p", "between", json!({"preset": "lastWeek"})),
            PropertyOp::Between(DateRange::Preset(DatePreset::LastWeek)),
        ),
        (
            rule("p", "notBetween", json!({"preset": "today"})),
            PropertyOp::NotBetween(DateRange::Preset(DatePreset::Today)),
        ),
        (rule("p", "contains", json!("ab")), PropertyOp::Contains("ab".into())),
        (rule("p", "doesNotContains", json!("ab")), PropertyOp::DoesNotContain("ab".into())),
        (rule("p", "beginsWith", json!("ab")), PropertyOp::BeginsWith("ab".into())),
        (rule("p", "doesNotBeginsWith", json!("ab")), PropertyOp::DoesNotBeginWith("ab".into())),
        (rule("p", "endsWith", json!("ab")), PropertyOp::EndsWith("ab".into())),
        (rule("p", "doesNotEndsWith", json!("ab")), PropertyOp::DoesNotEndWith("ab".into())),
        (rule("p", "containsAny", json!(["a", "b"])), PropertyOp::ContainsAny(vec![s("a"), s("b")])),
        (rule("p", "in", json!(["a", 2])), PropertyOp::In(vec![s("a"), n(2)])),
        (rule("p", "in", json!([])), PropertyOp::In(vec![])),
        (rule("p", "notIn", json!(["a"])), PropertyOp::NotIn(vec![s("a")])),
        (json!({"property": "p", "operator": "isEmpty"}), PropertyOp::IsEmpty),
        (json!({"property": "p", "operator": "isNotEmpty"}), PropertyOp::IsNotEmpty),
        (json!({"property": "p", "operator": "isExpired"}), PropertyOp::IsExpired),
        (json!({"property": "p", "operator": "isNotExpired"}), PropertyOp::IsNotExpired),
    ];
    for (json, op) in cases {
        let got = parse_rule(json.clone()).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(got, Rule::Property { property: prop("p"), op: op.clone() }, "{json}");
        assert_eq!(op.operator().as_str(), json["operator"].as_str().unwrap(), "{json}");
    }
}

#[test]
fn search_parses_meta_properties() {
    for meta in MetaProperty::ALL {
        let got = parse_rule(rule(meta.as_str(), "=", json!("x"))).unwrap();
        assert_eq!(got, Rule::Property { property: PropertyRef::Meta(meta), op: PropertyOp::Eq(s("x")) });
    }
    let got = parse_rule(rule("my-prop@x", "=", json!("x"))).unwrap();
    assert_eq!(got, Rule::Property { property: prop("my-prop@x"), op: PropertyOp::Eq(s("x")) });
}

#[test]
fn search_parses_every_date_preset() {
    for preset in DatePreset::ALL {
        let got = parse_rule(rule("$createdAt", "between", json!({"preset": preset.as_str()}))).unwrap();
        let op = PropertyOp::Between(DateRange::Preset(preset));
        assert_eq!(got, Rule::Property { property: PropertyRef::Meta(MetaProperty::CreatedAt), op });
    }
}

#[test]
fn search_parses_relation_rules() {
    let cases: Vec<(Value, Rule)> = vec![
        (
            json!({"operator": "relatedTo", "blueprint": "svc", "value": "a"}),
            Rule::RelatedTo(RelatedTo {
                blueprint: "svc".into(),
                values: vec!["a".into()],
                direction: None,
                required: None,
            }),
        ),
        (
            json!({"operator": "relatedTo", "blueprint": "svc", "value": ["a", "b"], "direction": "upstream", "required": true}),
            Rule::RelatedTo(RelatedTo {
                blueprint: "svc".into(),
                values: vec!["a".into(), "b".into()],
                direction: Some(Direction::Upstream),
                required: Some(true),
            }),
        ),
        (
            json!({"operator": "relatedTo", "blueprint": "svc", "value": [], "direction": "downstream", "required": false}),
            Rule::RelatedTo(RelatedTo {
                blueprint: "svc".into(),
                values: vec![],
                direction: Some(Direction::Downstream),
                required: Some(false),
            }),
        ),
        (
            json!({"property": {"path": ["a", {"relation": "b", "maxHops": 3}]}, "operator": "matchAny", "value": "x"}),
            Rule::MatchAny(MatchAny {
                path: vec![
                    PathStep { relation: "a".into(), max_hops: None },
                    PathStep { relation: "b".into(), max_hops: Some(3) },
                ],
                from_blueprint: None,
                values: vec!["x".into()],
            }),
        ),
        (
            json!({"property": {"path": [{"relation": "p", "maxHops": 15}], "fromBlueprint": "team"}, "operator": "matchAny",
                   "value": ["x", "y"]}),
            Rule::MatchAny(MatchAny {
                path: vec![PathStep { relation: "p".into(), max_hops: Some(15) }],
                from_blueprint: Some("team".into()),
                values: vec!["x".into(), "y".into()],
            }),
        ),
        (
            json!({"relation": "domain", "operator": "=", "value": "d1"}),
            Rule::Relation { relation: "domain".into(), op: PropertyOp::Eq(s("d1")) },
        ),
        (
            json!({"relation": "domain", "operator": "isEmpty"}),
            Rule::Relation { relation: "domain".into(), op: PropertyOp::IsEmpty },
        ),
        (
            json!({"relation": "libs", "operator": "in", "value": ["a"]}),
            Rule::Relation { relation: "libs".into(), op: PropertyOp::In(vec![s("a")]) },
        ),
        (
            json!({"scorecard": "ownership", "operator": "!=", "value": "Gold"}),
            Rule::Scorecard(ScorecardRule {
                scorecard: "ownership".into(),
                rule: None,
                negated: true,
                values: vec!["Gold".into()],
            }),
        ),
        (
            json!({"scorecard": "ownership", "operator": "in", "value": ["Silver", "Gold"]}),
            Rule::Scorecard(ScorecardRule {
                scorecard: "ownership".into(),
                rule: None,
                negated: false,
                values: vec!["Silver".into(), "Gold".into()],
            }),
        ),
        (
            json!({"scorecard": "ownership", "scorecardRule": "hasTeam", "operator": "=", "value": false}),
            Rule::Scorecard(ScorecardRule {
                scorecard: "ownership".into(),
                rule: Some("hasTeam".into()),
                negated: false,
                values: vec!["FAILURE".into()],
            }),
        ),
        (
            json!({"propertySchema": {"type": "string", "format": "url"}, "operator": "=", "value": "https://x"}),
            Rule::PropertySchema {
                schema: PropertySchemaFilter { ty: PropType::String, format: Some("url".into()), items: None },
                op: PropertyOp::Eq(s("https://x")),
            },
        ),
        (
            json!({"propertySchema": {"type": "array", "items": {"type": "string", "format": "user"}},
                   "operator": "containsAny", "value": ["a@b.c"]}),
            Rule::PropertySchema {
                schema: PropertySchemaFilter {
                    ty: PropType::Array,
                    format: None,
                    items: Some(ItemsFilter { ty: PropType::String, format: Some("user".into()) }),
                },
                op: PropertyOp::ContainsAny(vec![s("a@b.c")]),
            },
        ),
        (
            json!({"propertySchema": {"type": "number"}, "operator": "isEmpty"}),
            Rule::PropertySchema {
                schema: PropertySchemaFilter { ty: PropType::Number, format: None, items: None },
                op: PropertyOp::IsEmpty,
            },
        ),
    ];
    for (json, want) in cases {
        let got = parse_rule(json.clone()).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(got, want, "{json}");
    }
}

#[test]
fn search_parses_nested_groups() {
    let q = json!({"combinator": "or", "rules": [
        {"combinator": "and", "rules": [rule("a", "=", json!(1))]},
        {"combinator": "or", "rules": []},
        rule("$blueprint", "=", json!("svc"))]});
    let want = Query::Group {
        combinator: Combinator::Or,
        rules: vec![
            Query::Group {
                combinator: Combinator::And,
                rules: vec![Query::Rule(Rule::Property { property: prop("a"), op: PropertyOp::Eq(n(1)) })],
            },
            Query::Group { combinator: Combinator::Or, rules: vec![] },
            Query::Rule(Rule::Property {
                property: PropertyRef::Meta(MetaProperty::Blueprint),
                op: PropertyOp::Eq(s("svc")),
            }),
        ],
    };
    assert_eq!(parse_query(&q).unwrap(), want);
}

/// `(query, error path, message fragment)`.
fn error_cases() -> Vec<(Value, &'static str, &'static str)> {
    let ops = "must be one of =, !=, >, >=, <, <=, between, notBetween, contains, containsAny";
    vec![
        // The query itself and groups.
        (json!([]), "", "must be object"),
        (json!({"rules": []}), "", "must have required property 'combinator'"),
        (json!({"combinator": "and"}), "", "must have required property 'rules'"),
        (json!({"combinator": "xor", "rules": []}), "combinator", "must be one of and, or"),
        (json!({"combinator": "AND", "rules": []}), "combinator", "must be one of and, or"),
        (json!({"combinator": "and", "rules": {}}), "rules", "must be array"),
        (json!({"combinator": "and", "rules": [], "limit": 3}), "", "must NOT have additional properties ('limit')"),
        (group(vec![json!("x")]), "rules[0]", "must be object"),
        (group(vec![json!({"rules": []})]), "rules[0]", "must have required property 'combinator'"),
        (group(vec![rule("a", "=", json!(1)), json!({"combinator": "or"})]), "rules[1]", "required property 'rules'"),
        // Rule shape.
        (group(vec![json!({"property": "a", "value": 1})]), "rules[0]", "must have required property 'operator'"),
        (group(vec![json!({"operator": "=", "value": 1})]), "rules[0]", "must have required property 'property'"),
        (group(vec![rule("a", "like", json!(1))]), "rules[0].operator", ops),
        (group(vec![rule("a", "==", json!(1))]), "rules[0].operator", ops),
        (group(vec![json!({"property": "a", "operator": 1, "value": 1})]), "rules[0].operator", "must be string"),
        (
            group(vec![json!({"property": "a", "operator": "=", "value": 1, "x": 1})]),
            "rules[0]",
            "additional properties ('x')",
        ),
        (group(vec![json!({"property": "a", "operator": "="})]), "rules[0]", "must have required property 'value'"),
        (
            group(vec![json!({"property": "a", "operator": "isEmpty", "value": null})]),
            "rules[0]",
            "additional properties ('value')",
        ),
        (group(vec![rule("", "=", json!(1))]), "rules[0].property", "must NOT have fewer than 1 characters"),
        (group(vec![rule("$nope", "=", json!(1))]), "rules[0].property", "unknown meta-property '$nope'"),
        (group(vec![rule("$Identifier", "=", json!(1))]), "rules[0].property", "unknown meta-property"),
        (group(vec![json!({"property": 3, "operator": "=", "value": 1})]), "rules[0].property", "must be string"),
        (
            group(vec![json!({"property": {"path": ["a"]}, "operator": "=", "value": 1})]),
            "rules[0].property",
            "matchAny",
        ),
        (
            group(vec![
                json!({"property": {"context": "user", "property": "$identifier"}, "operator": "=", "value": 1}),
            ]),
            "rules[0].property",
            "contextual references",
        ),
        (
            group(vec![json!({"scorecard": "s", "operator": ">", "value": "Gold"})]),
            "rules[0].operator",
            "must be one of =, !=, in, notIn (a scorecard rule)",
        ),
        (
            group(vec![json!({"scorecard": "s", "scorecardRule": "r", "operator": "in", "value": ["SUCCESS"]})]),
            "rules[0].operator",
            "must be one of =, != (a scorecardRule rule)",
        ),
        (
            group(vec![json!({"scorecard": "s", "scorecardRule": "r", "operator": "=", "value": "Gold"})]),
            "rules[0].value",
            "must be \"SUCCESS\", \"FAILURE\", true or false",
        ),
        (group(vec![json!({"scorecard": "s", "operator": "="})]), "rules[0]", "must have required property 'value'"),
        (
            group(vec![json!({"scorecard": "", "operator": "=", "value": "Gold"})]),
            "rules[0].scorecard",
            "must NOT have fewer than 1 characters",
        ),
        (
            group(vec![json!({"scorecard": "s", "operator": "in", "value": []})]),
            "rules[0].value",
            "must hold 1 to 1000 level titles",
        ),
        (
            group(vec![json!({"scorecard": "s", "operator": "=", "value": "Gold", "property": "x"})]),
            "rules[0]",
            "must NOT have additional properties ('property')",
        ),
        // Values, operator by operator.
        (
            group(vec![rule("a", "=", json!({"a": 1}))]),
            "rules[0].value",
            "must be null, string, number, boolean or array",
        ),
        (
            group(vec![rule("a", "=", json!({"context": "user", "property": "$identifier"}))]),
            "rules[0].value",
            "contextual",
        ),
        (group(vec![rule("a", "=", json!([null]))]), "rules[0].value[0]", "must be string, number or boolean"),
        (group(vec![rule("a", "!=", json!([[1]]))]), "rules[0].value[0]", "must be string, number or boolean"),
        (group(vec![rule("a", ">", json!("yesterday"))]), "rules[0].value", "number or an ISO-8601 date-time"),
        (group(vec![rule("a", ">=", Value::Null)]), "rules[0].value", "number or an ISO-8601 date-time"),
        (group(vec![rule("a", "<", json!("2024-01-01"))]), "rules[0].value", "number or an ISO-8601 date-time"),
        (group(vec![rule("a", "<=", json!([1]))]), "rules[0].value", "number or an ISO-8601 date-time"),
        (
            group(vec![rule("a", "between", json!("2024-01-01T00:00:00Z"))]),
            "rules[0].value",
            "must be {from, to} or {preset}",
        ),
        (group(vec![rule("a", "between", json!({}))]), "rules[0].value", "must be {from, to} or {preset}"),
        (
            group(vec![rule("a", "between", json!({"from": "2024-01-01T00:00:00Z"}))]),
            "rules[0].value",
            "must have required property 'to'",
        ),
        (
            group(vec![rule("a", "notBetween", json!({"to": "2024-01-01T00:00:00Z"}))]),
            "rules[0].value",
            "must have required property 'from'",
        ),
        (
            group(vec![rule("a", "between", json!({"from": "2024-01-01", "to": "2024-01-02T00:00:00Z"}))]),
            "rules[0].value.from",
            "ISO-8601 date-time",
        ),
        (
            group(vec![rule("a", "between", json!({"from": "2024-01-01T00:00:00Z", "to": 5}))]),
            "rules[0].value.to",
            "must be string",
        ),
        (
            group(vec![rule("a", "between", json!({"preset": "lastCentury"}))]),
            "rules[0].value.preset",
            "must be one of today, tomorrow, yesterday, lastDay",
        ),
        (group(vec![rule("a", "notBetween", json!({"preset": 7}))]), "rules[0].value.preset", "must be string"),
        (
            group(vec![rule("a", "between", json!({"preset": "today", "from": "x"}))]),
            "rules[0].value",
            "additional properties ('from')",
        ),
        (
            group(vec![rule(
                "a",
                "between",
                json!({"from": "2024-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z", "tz": 1}),
            )]),
            "rules[0].value",
            "additional properties ('tz')",
        ),
        (group(vec![rule("a", "contains", json!(1))]), "rules[0].value", "must be string"),
        (group(vec![rule("a", "doesNotContains", json!(["a"]))]), "rules[0].value", "must be string"),
        (group(vec![rule("a", "beginsWith", Value::Null)]), "rules[0].value", "must be string"),
        (group(vec![rule("a", "doesNotBeginsWith", json!(true))]), "rules[0].value", "must be string"),
        (group(vec![rule("a", "endsWith", json!({}))]), "rules[0].value", "must be string"),
        (group(vec![rule("a", "doesNotEndsWith", json!(2))]), "rules[0].value", "must be string"),
        (group(vec![rule("a", "in", json!("x"))]), "rules[0].value", "must be array"),
        (group(vec![rule("a", "notIn", json!(1))]), "rules[0].value", "must be array"),
        (group(vec![rule("a", "containsAny", json!("x"))]), "rules[0].value", "must be array"),
        (group(vec![rule("a", "in", json!(["a", {}]))]), "rules[0].value[1]", "must be string, number or boolean"),
        (
            group(vec![rule("a", "in", json!(vec![1; MAX_VALUES + 1]))]),
            "rules[0].value",
            "must NOT have more than 1000 items",
        ),
        (
            group(vec![json!({"property": "a", "operator": "isExpired", "value": 1})]),
            "rules[0]",
            "additional properties ('value')",
        ),
        // relatedTo.
        (
            group(vec![json!({"operator": "relatedTo", "value": "a"})]),
            "rules[0]",
            "must have required property 'blueprint'",
        ),
        (
            group(vec![json!({"operator": "relatedTo", "blueprint": "b"})]),
            "rules[0]",
            "must have required property 'value'",
        ),
        (
            group(vec![json!({"operator": "relatedTo", "blueprint": "", "value": "a"})]),
            "rules[0].blueprint",
            "fewer than 1",
        ),
        (
            group(vec![json!({"operator": "relatedTo", "blueprint": "b", "value": 1})]),
            "rules[0].value",
            "string or array of strings",
        ),
        (
            group(vec![json!({"operator": "relatedTo", "blueprint": "b", "value": ["a", 1]})]),
            "rules[0].value[1]",
            "must be string",
        ),
        (
            group(vec![json!({"operator": "relatedTo", "blueprint": "b", "value": "a", "direction": "sideways"})]),
            "rules[0].direction",
            "must be one of upstream, downstream",
        ),
        (
            group(vec![json!({"operator": "relatedTo", "blueprint": "b", "value": "a", "required": "yes"})]),
            "rules[0].required",
            "must be boolean",
        ),
        (
            group(vec![json!({"operator": "relatedTo", "blueprint": "b", "value": "a", "property": "x"})]),
            "rules[0]",
            "additional properties ('property')",
        ),
        // matchAny.
        (
            group(vec![json!({"operator": "matchAny", "value": "a"})]),
            "rules[0]",
            "must have required property 'property'",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": "rel", "value": "a"})]),
            "rules[0].property",
            "must be object",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": {}, "value": "a"})]),
            "rules[0].property",
            "must have required property 'path'",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": {"path": []}, "value": "a"})]),
            "rules[0].property.path",
            "fewer than 1 items",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": {"path": "a"}, "value": "a"})]),
            "rules[0].property.path",
            "must be array",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": {"path": [1]}, "value": "a"})]),
            "rules[0].property.path[0]",
            "must be string or object {relation, maxHops}",
        ),
        (
            group(vec![
                json!({"operator": "matchAny", "property": {"path": [{"relation": "r", "maxHops": 0}]}, "value": "a"}),
            ]),
            "rules[0].property.path[0].maxHops",
            "between 1 and 15",
        ),
        (
            group(vec![
                json!({"operator": "matchAny", "property": {"path": [{"relation": "r", "maxHops": 16}]}, "value": "a"}),
            ]),
            "rules[0].property.path[0].maxHops",
            "between 1 and 15",
        ),
        (
            group(vec![
                json!({"operator": "matchAny", "property": {"path": [{"relation": "r", "maxHops": 2.5}]}, "value": "a"}),
            ]),
            "rules[0].property.path[0].maxHops",
            "between 1 and 15",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": {"path": [{"relation": "r"}]}, "value": "a"})]),
            "rules[0].property.path[0]",
            "must have required property 'maxHops'",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": {"path": [{"maxHops": 2}]}, "value": "a"})]),
            "rules[0].property.path[0]",
            "must have required property 'relation'",
        ),
        (
            group(vec![json!({"operator": "matchAny",
            "property": {"path": [{"relation": "r", "maxHops": 2}, {"relation": "r", "maxHops": 2}]}, "value": "a"})]),
            "rules[0].property.path[1]",
            "only once",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": {"path": ["r"], "fromBlueprint": 3}, "value": "a"})]),
            "rules[0].property.fromBlueprint",
            "must be string",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": {"path": ["r"], "extra": 1}, "value": "a"})]),
            "rules[0].property",
            "additional properties ('extra')",
        ),
        (
            group(vec![json!({"operator": "matchAny", "property": {"path": ["r"]}, "value": {"a": 1}})]),
            "rules[0].value",
            "string or array of strings",
        ),
        // Blueprint-scoped relation rule.
        (
            group(vec![json!({"relation": "r", "operator": "contains", "value": "a"})]),
            "rules[0].operator",
            "must be one of =, !=, in, notIn, containsAny, isEmpty, isNotEmpty",
        ),
        (group(vec![json!({"relation": "", "operator": "=", "value": "a"})]), "rules[0].relation", "fewer than 1"),
        (
            group(vec![json!({"relation": "r", "operator": "=", "value": "a", "property": "p"})]),
            "rules[0]",
            "additional properties ('property')",
        ),
        // propertySchema.
        (
            group(vec![json!({"propertySchema": {}, "operator": "=", "value": "a"})]),
            "rules[0].propertySchema",
            "must have required property 'type'",
        ),
        (
            group(vec![json!({"propertySchema": {"type": "text"}, "operator": "=", "value": "a"})]),
            "rules[0].propertySchema.type",
            "must be one of string, number, boolean, object, array",
        ),
        (
            group(vec![json!({"propertySchema": "string", "operator": "=", "value": "a"})]),
            "rules[0].propertySchema",
            "must be object",
        ),
        (
            group(vec![json!({"propertySchema": {"type": "array", "items": {}}, "operator": "=", "value": "a"})]),
            "rules[0].propertySchema.items",
            "must have required property 'type'",
        ),
        (
            group(vec![json!({"propertySchema": {"type": "string", "x": 1}, "operator": "=", "value": "a"})]),
            "rules[0].propertySchema",
            "additional properties ('x')",
        ),
        (
            group(vec![json!({"propertySchema": {"type": "string"}, "operator": "in", "value": "a"})]),
            "rules[0].value",
            "must be array",
        ),
        // Nested paths.
        (
            json!({"combinator": "or", "rules": [rule("a", "=", json!(1)), {"combinator": "and", "rules": [
            rule("a", "=", json!(1)), rule("a", "=", json!(1)), rule("a", "bad", json!(1))]}]}),
            "rules[1].rules[2].operator",
            "must be one of",
        ),
    ]
}

#[test]
fn search_rejects_malformed_queries() {
    let mut failures = Vec::new();
    for (q, path, msg) in error_cases() {
        match parse_query(&q) {
            Ok(parsed) => failures.push(format!("{q}: parsed as {parsed:?}")),
            Err(e) if e.path != path || !e.message.contains(msg) => {
                failures.push(format!("{q}\n  want \"{path}\" …{msg}…\n  got  \"{}\" {}", e.path, e.message))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn search_error_display_names_the_path() {
    let e = parse_query(&group(vec![rule("a", "=", json!(1)), rule("a", "=", json!(1)), rule("a", "~", json!(1))]))
        .unwrap_err()
        .under("query");
    assert_eq!(e.path, "query.rules[2].operator");
    assert!(e.to_string().starts_with("\"query.rules[2].operator\" must be one of =, !=, >, >="), "{e}");
    let e = parse_query(&group(vec![json!({"rules": []})])).unwrap_err().under("query");
    assert_eq!(e.to_string(), "\"query.rules[0]\" must have required property 'combinator'");
    let e = parse_query(&json!({"rules": []})).unwrap_err().under("query");
    assert_eq!(e.to_string(), "\"query\" must have required property 'combinator'");
}

#[test]
fn search_bounds_depth_and_size() {
    // 20 levels parse, 21 do not.
    let nest = |levels: usize| {
        let mut q = group(vec![]);
        for _ in 1..levels {
            q = group(vec![q]);
        }
        q
    };
    assert!(parse_query(&nest(MAX_DEPTH)).is_ok());
    let e = parse_query(&nest(MAX_DEPTH + 1)).unwrap_err();
    assert!(e.message.contains("nested too deeply"), "{e}");
    assert!(e.path.starts_with("rules[0].rules[0]"), "{e}");
    // 1000 rules parse, 1001 do not.
    let rules = |count: usize| group((0..count).map(|_| rule("a", "=", json!(1))).collect());
    assert!(parse_query(&rules(MAX_RULES)).is_ok());
    let e = parse_query(&rules(MAX_RULES + 1)).unwrap_err();
    assert_eq!(e.path, "rules[1000]", "{e}");
    assert!(e.message.contains("at most 1000 rules and groups"), "{e}");
    // Groups count too.
    let groups = group((0..MAX_RULES / 2 + 1).map(|_| group(vec![rule("a", "=", json!(1))])).collect());
    assert!(parse_query(&groups).is_err());
    // A path longer than 15 steps.
    let long = json!({"operator": "matchAny", "property": {"path": vec!["r"; 16]}, "value": "a"});
    let e = parse_rule(long).unwrap_err();
    assert_eq!(e.path, "rules[0].property.path");
}

/// Every string of a query is bounded (SQLite refuses `LIKE` patterns over 50,000 bytes): the
/// error names the field and the limit, wherever the string sits.
#[test]
fn search_bounds_string_lengths() {
    let long = "x".repeat(MAX_STRING_CHARS + 1);
    let at_limit = "é".repeat(MAX_STRING_CHARS); // two bytes each: counted in characters
    assert!(parse_rule(rule("a", "contains", json!(at_limit))).is_ok());
    let cases = [
        (rule("a", "contains", json!(long)), "rules[0].value"),
        (rule("a", "=", json!(long)), "rules[0].value"),
        (rule("a", "in", json!(["ok", long])), "rules[0].value[1]"),
        (rule(&long, "=", json!(1)), "rules[0].property"),
        (json!({"operator": "relatedTo", "blueprint": "b", "value": long}), "rules[0].value"),
        (json!({"operator": "matchAny", "property": {"path": ["r"]}, "value": ["a", long]}), "rules[0].value[1]"),
        (json!({"relation": "r", "operator": "=", "value": long}), "rules[0].value"),
    ];
    for (r, path) in cases {
        let e = parse_rule(r).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(&format!("must NOT have more than {MAX_STRING_CHARS} characters")), "{e}");
    }
}

#[test]
fn search_resolves_presets() {
    let now = Utc.with_ymd_and_hms(2024, 3, 1, 15, 30, 0).unwrap();
    let day = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
    let end = |y, m, d| day(y, m, d) + chrono::Duration::days(1) - chrono::Duration::milliseconds(1);
    let cases = [
        (DatePreset::Today, day(2024, 3, 1), end(2024, 3, 1)),
        (DatePreset::Tomorrow, day(2024, 3, 2), end(2024, 3, 2)),
        (DatePreset::Yesterday, day(2024, 2, 29), end(2024, 2, 29)),
        (DatePreset::LastDay, now - chrono::Duration::days(1), now),
        (DatePreset::LastWeek, now - chrono::Duration::days(7), now),
        (DatePreset::Last2Weeks, now - chrono::Duration::days(14), now),
        (DatePreset::LastMonth, now - chrono::Duration::days(30), now),
        (DatePreset::Last3Months, now - chrono::Duration::days(90), now),
        (DatePreset::Last6Months, now - chrono::Duration::days(180), now),
        (DatePreset::Last12Months, now - chrono::Duration::days(365), now),
        (DatePreset::Last2Years, Utc.with_ymd_and_hms(2022, 3, 1, 15, 30, 0).unwrap(), now),
        (DatePreset::Last3Years, Utc.with_ymd_and_hms(2021, 3, 1, 15, 30, 0).unwrap(), now),
        (DatePreset::NextDay, now, now + chrono::Duration::days(1)),
        (DatePreset::NextWeek, now, now + chrono::Duration::days(7)),
        (DatePreset::Next2Weeks, now, now + chrono::Duration::days(14)),
        (DatePreset::NextMonth, now, now + chrono::Duration::days(30)),
        (DatePreset::Next3Months, now, now + chrono::Duration::days(90)),
        (DatePreset::Next6Months, now, now + chrono::Duration::days(180)),
        (DatePreset::Next12Months, now, now + chrono::Duration::days(365)),
    ];
    assert_eq!(cases.len(), DatePreset::ALL.len());
    for (preset, from, to) in cases {
        assert_eq!(DateRange::Preset(preset).resolve(now), (from, to), "{}", preset.as_str());
    }
    let fixed = DateRange::Range { from: day(2020, 1, 1), to: day(2021, 1, 1) };
    assert_eq!(fixed.resolve(now), (day(2020, 1, 1), day(2021, 1, 1)));
    // Leap day minus two years clamps to the 28th.
    let leap = Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap();
    assert_eq!(DatePreset::Last2Years.resolve(leap).0, Utc.with_ymd_and_hms(2022, 2, 28, 0, 0, 0).unwrap());
}

#[test]
fn search_timestamps_round_trip() {
    let t = parse_timestamp("2024-01-31T12:00:00.5+02:00").unwrap();
    assert_eq!(format_timestamp(t), "2024-01-31T10:00:00.500Z");
    assert_eq!(format_timestamp(ts(2024, 1, 1, 0)), "2024-01-01T00:00:00.000Z");
    assert!(parse_timestamp("2024-01-31").is_none());
    assert!(parse_timestamp("not a date").is_none());
}

#[test]
fn search_positive_forms() {
    let lit = s("x");
    let cases = [
        (PropertyOp::Eq(lit.clone()), false, Positive::Eq(&lit)),
        (PropertyOp::Ne(lit.clone()), true, Positive::Eq(&lit)),
        (PropertyOp::DoesNotContain("x".into()), true, Positive::Contains("x")),
        (PropertyOp::DoesNotBeginWith("x".into()), true, Positive::BeginsWith("x")),
        (PropertyOp::DoesNotEndWith("x".into()), true, Positive::EndsWith("x")),
        (PropertyOp::IsEmpty, true, Positive::NonEmpty),
        (PropertyOp::IsNotEmpty, false, Positive::NonEmpty),
        (PropertyOp::IsNotExpired, true, Positive::Expired),
    ];
    for (op, negated, pos) in &cases {
        assert_eq!(op.positive(), (*negated, *pos), "{:?}", op);
    }
    let not_in = PropertyOp::NotIn(vec![lit.clone()]);
    assert!(matches!(not_in.positive(), (true, Positive::In([l])) if *l == lit));
}

#[test]
fn search_blueprint_helpers() {
    let q = parse_query(&group(vec![
        rule("$blueprint", "in", json!(["a", "b", "c"])),
        rule("$blueprint", "=", json!("b")),
        group(vec![rule("$blueprint", "=", json!("z"))]),
        rule("$blueprint", "!=", json!("y")),
    ]))
    .unwrap();
    assert_eq!(q.referenced_blueprints(), vec!["a", "b", "c", "z"]);
    assert_eq!(q.blueprint_scope(), Some(vec!["b".to_string()]));
    let or = parse_query(&json!({"combinator": "or", "rules": [rule("$blueprint", "=", json!("a"))]})).unwrap();
    assert_eq!(or.blueprint_scope(), None);
    assert_eq!(or.referenced_blueprints(), vec!["a"]);
    let none = parse_query(&group(vec![rule("x", "=", json!(1))])).unwrap();
    assert_eq!(none.blueprint_scope(), None);
    assert!(none.referenced_blueprints().is_empty());
}

#[test]
fn search_operator_names_round_trip() {
    for op in Operator::ALL {
        assert_eq!(Operator::from_name(op.as_str()), Some(op));
    }
    for p in DatePreset::ALL {
        assert_eq!(DatePreset::from_name(p.as_str()), Some(p));
    }
    for m in MetaProperty::ALL {
        assert_eq!(MetaProperty::from_name(m.as_str()), Some(m));
    }
    assert_eq!(Operator::from_name("equals"), None);
}
