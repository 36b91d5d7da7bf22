//! Entity validation: every rule of a property definition, relations and identifiers gives a
//! 422 that names the field and the rule, and nothing is written.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_invalid, detail};

const V: &str = "/v1/blueprints/v/entities";

async fn app() -> Option<TestApp> {
    let app = TestApp::spawn().await?;
    app.blueprint(json!({"identifier": "owner", "title": "Owner"})).await;
    app.blueprint(json!({"identifier": "v", "title": "V", "schema": {"properties": {
        "s": {"type": "string"}, "n": {"type": "number"}, "b": {"type": "boolean"},
        "o": {"type": "object"}, "a": {"type": "array"},
        "e": {"type": "string", "enum": ["x", "y"]},
        "ne": {"type": "number", "enum": [1, 2]},
        "len": {"type": "string", "minLength": 2, "maxLength": 4},
        "pat": {"type": "string", "pattern": "^[a-z]+-svc$"},
        "range": {"type": "number", "minimum": 1, "maximum": 10},
        "ex": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "list": {"type": "array", "minItems": 1, "maxItems": 2, "uniqueItems": true, "items": {"type": "string"}},
        "nums": {"type": "array", "items": {"type": "number"}},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["t1", "t2"]}},
        "emails": {"type": "array", "items": {"type": "string", "format": "email"}},
        "dt": {"type": "string", "format": "date-time"}, "url": {"type": "string", "format": "url"},
        "email": {"type": "string", "format": "email"}, "ip4": {"type": "string", "format": "ipv4"},
        "ip6": {"type": "string", "format": "ipv6"}, "user": {"type": "string", "format": "user"},
        "link": {"type": "object", "format": "labeled-url"},
        "req": {"type": "string"}}, "required": ["req"]},
        "relations": {"owner": {"target": "owner", "required": true}, "friends": {"target": "owner", "many": true}},
        "mirrorProperties": {"ownerTitle": {"path": "owner.$title"}},
        "calculationProperties": {"calc": {"type": "string", "calculation": ".identifier"}}}))
        .await;
    app.entity("owner", json!({"identifier": "o1", "title": "Owner one"})).await;
    Some(app)
}

fn valid() -> Value {
    json!({"identifier": "ok", "properties": {"req": "r"}, "relations": {"owner": "o1"}})
}

/// `valid()` with `patch` merged into `properties` / `relations` / the top level.
fn with(section: &str, patch: Value) -> Value {
    let mut e = valid();
    for (k, v) in patch.as_object().unwrap() {
        if section.is_empty() {
            e[k] = v.clone();
        } else {
            e[section][k] = v.clone();
        }
    }
    e
}

/// An object nesting `levels` objects (`{"x": {"x": … 1}}`).
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |v, _| json!({"x": v}))
}

fn without(section: &str, key: &str) -> Value {
    let mut e = valid();
    e[section].as_object_mut().unwrap().remove(key);
    e
}

#[tokio::test]
async fn every_rule_is_422_naming_the_property_and_the_rule() {
    let Some(app) = app().await else { return };
    let p = |v: Value| with("properties", v);
    let cases: Vec<(Value, &str, &str)> = vec![
        (p(json!({"s": 1})), "properties.s", "type string"),
        (p(json!({"n": "1"})), "properties.n", "type number"),
        (p(json!({"b": "true"})), "properties.b", "type boolean"),
        (p(json!({"o": [1]})), "properties.o", "type object"),
        (p(json!({"a": {"x": 1}})), "properties.a", "type array"),
        (p(json!({"e": "z"})), "properties.e", "enum"),
        (p(json!({"ne": 3})), "properties.ne", "enum"),
        (p(json!({"len": "a"})), "properties.len", "minLength"),
        (p(json!({"len": "abcde"})), "properties.len", "maxLength"),
        (p(json!({"pat": "Web-svc"})), "properties.pat", "pattern"),
        (p(json!({"range": 0})), "properties.range", "minimum"),
        (p(json!({"range": 10.5})), "properties.range", "maximum"),
        (p(json!({"ex": 0})), "properties.ex", "exclusiveMinimum"),
        (p(json!({"ex": 1})), "properties.ex", "exclusiveMaximum"),
        (p(json!({"list": []})), "properties.list", "minItems"),
        (p(json!({"list": ["a", "b", "c"]})), "properties.list", "maxItems"),
        (p(json!({"list": ["a", "a"]})), "properties.list[1]", "uniqueItems"),
        (p(json!({"list": [1]})), "properties.list[0]", "type string"),
        (p(json!({"nums": [1, "2"]})), "properties.nums[1]", "type number"),
        (p(json!({"tags": ["t1", "t3"]})), "properties.tags[1]", "enum"),
        (p(json!({"emails": ["a@b.co", "nope"]})), "properties.emails[1]", "email"),
        (p(json!({"dt": "yesterday"})), "properties.dt", "date-time"),
        (p(json!({"dt": "2024-13-01T00:00:00Z"})), "properties.dt", "date-time"),
        (p(json!({"url": "not a url"})), "properties.url", "url"),
        (p(json!({"email": "a@b"})), "properties.email", "email"),
        (p(json!({"email": "no-at.example.com"})), "properties.email", "email"),
        (p(json!({"ip4": "256.1.1.1"})), "properties.ip4", "ipv4"),
        (p(json!({"ip6": "::g"})), "properties.ip6", "ipv6"),
        (p(json!({"user": "bob"})), "properties.user", "user"),
        (p(json!({"link": {"displayText": "x"}})), "properties.link.url", "labeled URL"),
        (without("properties", "req"), "properties.req", "required"),
        (p(json!({"req": null})), "properties.req", "required"),
        (without("relations", "owner"), "relations.owner", "required"),
        (with("relations", json!({"owner": null})), "relations.owner", "required"),
        (p(json!({"zzz": 1})), "properties.zzz", "not a property"),
        (p(json!({"o": nested(65)})), "properties.o", "at most 64"),
        (p(json!({"a": [nested(64)]})), "properties.a", "nests 65 levels"),
        (with("relations", json!({"zzz": "o1"})), "relations.zzz", "not a relation"),
        (with("relations", json!({"owner": ["o1"]})), "relations.owner", "single"),
        (with("relations", json!({"friends": "o1"})), "relations.friends", "many"),
        (with("relations", json!({"friends": ["o1", 2]})), "relations.friends[1]", "string"),
        (with("relations", json!({"owner": ".."})), "relations.owner", "\"..\""),
        (p(json!({"calc": "x"})), "properties.calc", "computed"),
        (p(json!({"ownerTitle": "x"})), "properties.ownerTitle", "computed"),
        (with("", json!({"identifier": ".."})), "identifier", "\"..\""),
        (with("", json!({"identifier": "a".repeat(1001)})), "identifier", "1000"),
        (with("", json!({"identifier": "a b"})), "identifier", "' '"),
        (with("", json!({"identifier": 7})), "identifier", "string"),
        (with("", json!({"title": 7})), "title", "string"),
        (with("", json!({"title": "t".repeat(1001)})), "title", "1000"),
        (with("", json!({"icon": false})), "icon", "string"),
        (with("", json!({"team": 5})), "team", "team"),
        (with("", json!({"team": ["a", 5]})), "team[1]", "team"),
        (with("", json!({"blueprint": "owner"})), "blueprint", "owner"),
        (with("", json!({"properties": []})), "properties", "map"),
    ];
    let mut wrong = Vec::new();
    for (body, path, rule) in cases {
        let r = app.post(V, body.clone()).await;
        let msg = r.body["details"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["path"] == json!(path)))
            .and_then(|d| d["message"].as_str());
        let ok = r.status == StatusCode::UNPROCESSABLE_ENTITY
            && r.body["error"] == json!("invalid_request")
            && msg.is_some_and(|m| m.contains(rule));
        if !ok {
            let b = body.to_string();
            wrong.push(format!(
                "{}\n  want 422 at {path:?} naming {rule:?}, got {} {}",
                &b[..b.len().min(200)],
                r.status,
                r.body
            ));
        }
    }
    assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(app.count("v").await, 0, "a rejected entity was written");
}

#[tokio::test]
async fn valid_edge_values_are_accepted() {
    let Some(app) = app().await else { return };
    let e = with(
        "properties",
        json!({"ex": 0.5, "range": 10, "len": "abcd", "pat": "web-svc", "dt": "2024-01-31T12:00:00.000+02:00",
            "url": "https://x.io/a?b=c", "email": "a.b@c.co", "ip4": "10.0.0.1", "ip6": "::1", "user": "u@x.io",
            "list": ["a", "b"], "nums": [], "a": [1, "x", null], "link": {"url": "https://x", "displayText": "X"},
            "s": "", "e": null, "o": nested(64)}),
    );
    let r = app.post(V, e).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = format!("ñandú-服务=@_.+:/\\-{}", "a".repeat(980));
    let r = app.post(V, with("", json!({"identifier": id}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["entity"]["identifier"], json!(id));
    assert_eq!(app.count("v").await, 2);
}

#[tokio::test]
async fn all_problems_are_reported_at_once() {
    let Some(app) = app().await else { return };
    let r = app.post(V, json!({"identifier": "x", "properties": {"s": 1, "range": 99}})).await;
    for path in ["properties.s", "properties.range", "properties.req", "relations.owner"] {
        assert_invalid(&r, path);
    }
    assert!(detail(&r, "properties.range").contains("maximum"));
}

#[tokio::test]
async fn a_rejected_update_changes_nothing() {
    let Some(app) = app().await else { return };
    app.entity("v", with("properties", json!({"s": "before", "range": 5}))).await;
    let audits = app.audit("status=SUCCESS").await.len();
    for (method, path, body) in [
        ("PATCH", format!("{V}/ok"), json!({"properties": {"s": "after", "range": 99}})),
        ("PUT", format!("{V}/ok"), json!({"properties": {"s": "after"}, "relations": {"owner": "o1"}})),
        ("POST", format!("{V}?upsert=true"), json!({"identifier": "ok", "properties": {"s": 5, "req": "r"}})),
        ("POST", format!("{V}?upsert=true&merge=true"), json!({"identifier": "ok", "relations": {"owner": null}})),
        (
            "POST",
            format!("{V}?upsert=true&merge=true"),
            json!({"identifier": "ok", "relations": {"friends": ["ghost"]}}),
        ),
    ] {
        let r = app.req(method, &path, Some(body)).await;
        assert_eq!(r.status.as_u16() / 100, 4, "{method} {path}: {}", r.body);
    }
    let e = &app.get(&format!("{V}/ok")).await.body["entity"];
    assert_eq!((&e["properties"]["s"], &e["properties"]["range"]), (&json!("before"), &json!(5)));
    assert_eq!(e["relations"], json!({"owner": "o1"}));
    assert_eq!(app.audit("status=SUCCESS").await.len(), audits, "a rejected write left a success record");
    assert_eq!(app.audit("status=FAILURE&entity=ok").await.len(), 5);
    assert_eq!(app.count("v").await, 1);
}
