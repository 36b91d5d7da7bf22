//! The search language over HTTP: every operator of docs/reference/port-api.md §3 with the exact set of
//! identifiers it must return, through both search routes.

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, ids};

pub const UA: &str = "port-ocean/local-json/0.1.0/li/exporter";

/// Times taken while seeding, for `$createdAt` / `$updatedAt` rules.
pub struct Seeded {
    pub app: TestApp,
    /// Just before `legacy` (the last entity) was created.
    pub before_legacy: String,
    /// Just before `cart` was last updated.
    pub before_update: String,
}

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn tick() -> String {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let t = iso(Utc::now());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    t
}

/// domain (self-relation `parent`) ← service → package; deploy → service (required).
///
/// | service  | language | cpu | public | tags       | deployedAt   | domain | packages      | team               |
/// |----------|----------|-----|--------|------------|--------------|--------|---------------|--------------------|
/// | cart     | go       | 2   | true   | web, api   | 2024-01-10   | pay    | lodash, axios | payments           |
/// | checkout | rust     | 8   | false  | api        | 2024-02-15   | pay    | axios         | payments, web-team |
/// | search   | python   | 32  |        | []         | now − 3 days | core   | react         |                    |
/// | legacy   | go       |     |        |            |              |        |               | (written by Ocean) |
///
/// The timer `ttl` has expired on cart and runs out in three days on checkout.
pub async fn seeded() -> Option<Seeded> {
    let app = TestApp::spawn().await?;
    app.blueprint(json!({"identifier": "domain", "title": "Domain",
        "schema": {"properties": {"owner": {"type": "string"}, "tier": {"type": "number"}}},
        "relations": {"parent": {"target": "domain"}}}))
        .await;
    app.blueprint(
        json!({"identifier": "package", "title": "Package", "schema": {"properties": {"version": {"type": "string"}}}}),
    )
    .await;
    app.blueprint(json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {
            "language": {"type": "string"}, "cpu": {"type": "number"}, "public": {"type": "boolean"},
            "url": {"type": "string", "format": "url"}, "tags": {"type": "array", "items": {"type": "string"}},
            "deployedAt": {"type": "string", "format": "date-time"}, "ttl": {"type": "string", "format": "timer"}}},
        "relations": {"domain": {"target": "domain"}, "packages": {"target": "package", "many": true}},
        "mirrorProperties": {"domainOwner": {"path": "domain.owner"}}}))
        .await;
    app.blueprint(json!({"identifier": "deploy", "title": "Deploy",
        "relations": {"service": {"target": "service", "required": true}}}))
        .await;
    app.teams(&["payments", "web-team"]).await;
    app.entity(
        "domain",
        json!({"identifier": "pay", "title": "Payments", "properties": {"owner": "alice", "tier": 1}}),
    )
    .await;
    app.entity(
        "domain",
        json!({"identifier": "core", "title": "Core",
        "properties": {"owner": "bob", "tier": 2}, "relations": {"parent": "pay"}}),
    )
    .await;
    for (id, v) in [("lodash", "4.17"), ("axios", "1.6"), ("react", "18.0")] {
        app.entity("package", json!({"identifier": id, "properties": {"version": v}})).await;
    }
    let recent = iso(Utc::now() - Duration::days(3));
    app.entity(
        "service",
        json!({"identifier": "cart", "title": "Cart Service", "team": ["payments"],
        "properties": {"language": "go", "cpu": 2, "public": true, "url": "https://cart.io", "tags": ["web", "api"],
            "deployedAt": "2024-01-10T00:00:00Z", "ttl": "2024-06-01T00:00:00Z"},
        "relations": {"domain": "pay", "packages": ["lodash", "axios"]}}),
    )
    .await;
    app.entity(
        "service",
        json!({"identifier": "checkout", "title": "Checkout", "team": ["payments", "web-team"],
        "properties": {"language": "rust", "cpu": 8, "public": false, "url": "https://pay.io/checkout", "tags": ["api"],
            "deployedAt": "2024-02-15T12:00:00+00:00", "ttl": iso(Utc::now() + Duration::days(3))},
        "relations": {"domain": "pay", "packages": ["axios"]}}),
    )
    .await;
    app.entity(
        "service",
        json!({"identifier": "search", "title": "Search API",
        "properties": {"language": "python", "cpu": 32, "tags": [], "deployedAt": recent},
        "relations": {"domain": "core", "packages": ["react"]}}),
    )
    .await;
    let before_legacy = tick().await;
    let body = json!({"identifier": "legacy", "properties": {"language": "go"}}).to_string().into_bytes();
    let r = app
        .raw(
            "POST",
            "/v1/blueprints/service/entities",
            &[("content-type", "application/json"), ("user-agent", UA)],
            Some(body),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    app.entity("deploy", json!({"identifier": "d1", "relations": {"service": "cart"}})).await;
    app.entity("deploy", json!({"identifier": "d2", "relations": {"service": "search"}})).await;
    let before_update = tick().await;
    let r = app.patch("/v1/blueprints/service/entities/cart", json!({"icon": "Cart"})).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    Some(Seeded { app, before_legacy, before_update })
}

pub fn rule(property: &str, operator: &str, value: Value) -> Value {
    json!({"property": property, "operator": operator, "value": value})
}

/// Run each blueprint-scoped query on `service`, collecting every mismatch.
async fn check_service(app: &TestApp, cases: Vec<(Value, Vec<&str>)>) {
    let mut wrong = Vec::new();
    for (r, want) in cases {
        let q = if r.get("combinator").is_some() { r.clone() } else { json!({"combinator": "and", "rules": [r]}) };
        let res = app.post("/v1/blueprints/service/entities/search", json!({"query": q})).await;
        let got = if res.status.is_success() { ids(&res.body) } else { vec![format!("{} {}", res.status, res.body)] };
        if got != want {
            wrong.push(format!("{q}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));
}

/// Run each query on `POST /v1/entities/search`, collecting every mismatch.
async fn check_global(app: &TestApp, cases: Vec<(Value, Vec<&str>)>) {
    let mut wrong = Vec::new();
    for (q, want) in cases {
        let res = app.post("/v1/entities/search", q.clone()).await;
        let got = if res.status.is_success() { ids(&res.body) } else { vec![format!("{} {}", res.status, res.body)] };
        if got != want {
            wrong.push(format!("{q}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));
}

#[tokio::test]
async fn comparison_operators() {
    let Some(s) = seeded().await else { return };
    check_service(
        &s.app,
        vec![
            (rule("language", "=", json!("go")), vec!["cart", "legacy"]),
            (rule("public", "=", json!(false)), vec!["checkout"]),
            (rule("cpu", "=", json!(8)), vec!["checkout"]),
            (rule("language", "!=", json!("go")), vec!["checkout", "search"]),
            (rule("cpu", "!=", json!(2)), vec!["checkout", "legacy", "search"]),
            (rule("cpu", ">", json!(2)), vec!["checkout", "search"]),
            (rule("cpu", ">=", json!(8)), vec!["checkout", "search"]),
            (rule("cpu", "<", json!(8)), vec!["cart"]),
            (rule("cpu", "<=", json!(8)), vec!["cart", "checkout"]),
            (rule("deployedAt", ">", json!("2024-02-01T00:00:00Z")), vec!["checkout", "search"]),
            (rule("deployedAt", "<=", json!("2024-02-15T12:00:00.000Z")), vec!["cart", "checkout"]),
            (rule("deployedAt", "=", json!("2024-02-15T14:00:00+02:00")), vec!["checkout"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn date_range_operators() {
    let Some(s) = seeded().await else { return };
    let range = json!({"from": "2024-01-01T00:00:00Z", "to": "2024-02-28T00:00:00Z"});
    check_service(
        &s.app,
        vec![
            (rule("deployedAt", "between", range.clone()), vec!["cart", "checkout"]),
            (rule("deployedAt", "notBetween", range), vec!["legacy", "search"]),
            (rule("deployedAt", "between", json!({"preset": "lastWeek"})), vec!["search"]),
            (rule("deployedAt", "notBetween", json!({"preset": "lastWeek"})), vec!["cart", "checkout", "legacy"]),
            (rule("deployedAt", "between", json!({"preset": "lastDay"})), vec![]),
            (rule("$createdAt", "between", json!({"preset": "lastDay"})), vec!["cart", "checkout", "legacy", "search"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn string_and_list_operators() {
    let Some(s) = seeded().await else { return };
    check_service(
        &s.app,
        vec![
            (rule("$title", "contains", json!("serv")), vec!["cart"]),
            (rule("url", "contains", json!("pay.io")), vec!["checkout"]),
            (rule("$title", "doesNotContains", json!("serv")), vec!["checkout", "legacy", "search"]),
            (rule("tags", "containsAny", json!(["web", "x"])), vec!["cart"]),
            (rule("tags", "containsAny", json!(["api"])), vec!["cart", "checkout"]),
            (rule("url", "beginsWith", json!("https://cart")), vec!["cart"]),
            (rule("$identifier", "beginsWith", json!("c")), vec!["cart", "checkout"]),
            (rule("$identifier", "doesNotBeginsWith", json!("c")), vec!["legacy", "search"]),
            (rule("$identifier", "endsWith", json!("out")), vec!["checkout"]),
            (rule("$title", "endsWith", json!("API")), vec!["search"]),
            (rule("$identifier", "doesNotEndsWith", json!("out")), vec!["cart", "legacy", "search"]),
            (rule("language", "in", json!(["rust", "python"])), vec!["checkout", "search"]),
            (rule("language", "notIn", json!(["rust", "python"])), vec!["cart", "legacy"]),
            (rule("$identifier", "in", json!(["cart", "nope"])), vec!["cart"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn empty_operators() {
    let Some(s) = seeded().await else { return };
    let empty = |p: &str, op: &str| json!({"property": p, "operator": op});
    check_service(
        &s.app,
        vec![
            (empty("cpu", "isEmpty"), vec!["legacy"]),
            (empty("tags", "isEmpty"), vec!["legacy", "search"]),
            (empty("deployedAt", "isNotEmpty"), vec!["cart", "checkout", "search"]),
            (empty("$title", "isEmpty"), vec!["legacy"]),
            (empty("$team", "isNotEmpty"), vec!["cart", "checkout"]),
            (empty("ttl", "isExpired"), vec!["cart"]),
            (empty("ttl", "isNotExpired"), vec!["checkout", "legacy", "search"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn meta_properties() {
    let Some(s) = seeded().await else { return };
    check_service(
        &s.app,
        vec![
            (rule("$identifier", "=", json!("cart")), vec!["cart"]),
            (rule("$title", "=", json!("Checkout")), vec!["checkout"]),
            (rule("$blueprint", "=", json!("service")), vec!["cart", "checkout", "legacy", "search"]),
            (rule("$team", "in", json!(["web-team"])), vec!["checkout"]),
            (rule("$team", "containsAny", json!(["payments"])), vec!["cart", "checkout"]),
            (rule("$team", "=", json!("payments")), vec!["cart", "checkout"]),
            (rule("$createdAt", ">", json!(s.before_legacy)), vec!["legacy"]),
            (rule("$createdAt", "<", json!(s.before_legacy)), vec!["cart", "checkout", "search"]),
            (rule("$updatedAt", ">=", json!(s.before_update)), vec!["cart"]),
            (rule("$datasource", "=", json!(UA)), vec!["legacy"]),
            (rule("$datasource", "contains", json!("port-ocean/local-json/")), vec!["legacy"]),
            (rule("$datasource", "endsWith", json!("/li/exporter")), vec!["legacy"]),
            (rule("$icon", "=", json!("Cart")), vec!["cart"]),
            (rule("$createdBy", "=", json!(s.app.client_id)), vec!["cart", "checkout", "legacy", "search"]),
            (rule("$updatedBy", "!=", json!(s.app.client_id)), vec![]),
        ],
    )
    .await;
}

#[tokio::test]
async fn groups_mirrors_relations_and_property_schemas() {
    let Some(s) = seeded().await else { return };
    check_service(
        &s.app,
        vec![
            (
                json!({"combinator": "and", "rules": [rule("language", "=", json!("go")),
                    {"combinator": "or", "rules": [rule("cpu", ">", json!(1)), {"property": "cpu", "operator": "isEmpty"}]}]}),
                vec!["cart", "legacy"],
            ),
            (
                json!({"combinator": "or", "rules": [
                    {"combinator": "and", "rules": [rule("language", "=", json!("rust")), rule("cpu", ">", json!(4))]},
                    rule("$identifier", "=", json!("search"))]}),
                vec!["checkout", "search"],
            ),
            (json!({"combinator": "or", "rules": []}), vec![]),
            (json!({"combinator": "and", "rules": []}), vec!["cart", "checkout", "legacy", "search"]),
            (rule("domainOwner", "=", json!("alice")), vec!["cart", "checkout"]),
            (rule("domainOwner", "in", json!(["bob"])), vec!["search"]),
            (json!({"property": "domainOwner", "operator": "isEmpty"}), vec!["legacy"]),
            (json!({"relation": "domain", "operator": "=", "value": "core"}), vec!["search"]),
            (json!({"relation": "packages", "operator": "in", "value": ["lodash", "react"]}), vec!["cart", "search"]),
            (
                json!({"propertySchema": {"type": "string", "format": "url"}, "operator": "=", "value": "https://cart.io"}),
                vec!["cart"],
            ),
            (json!({"propertySchema": {"type": "number"}, "operator": "=", "value": 32}), vec!["search"]),
            (
                json!({"propertySchema": {"type": "string"}, "operator": "contains", "value": "pyth"}),
                vec!["search"],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn related_to_and_match_any() {
    let Some(s) = seeded().await else { return };
    let rel = |bp: &str, v: Value, extra: Value| {
        let mut r = json!({"operator": "relatedTo", "blueprint": bp, "value": v});
        for (k, x) in extra.as_object().unwrap() {
            r[k] = x.clone();
        }
        json!({"combinator": "and", "rules": [r]})
    };
    check_global(
        &s.app,
        vec![
            (
                rel("domain", json!("pay"), json!({"direction": "downstream"})),
                vec!["cart", "checkout", "core", "d1", "d2", "search"],
            ),
            (rel("domain", json!("pay"), json!({"direction": "upstream"})), vec![]),
            (rel("service", json!("cart"), json!({"direction": "upstream"})), vec!["axios", "lodash", "pay"]),
            (rel("service", json!("cart"), json!({"direction": "downstream"})), vec!["d1"]),
            (rel("service", json!("cart"), json!({})), vec!["axios", "d1", "lodash", "pay"]),
            (rel("service", json!("cart"), json!({"required": true})), vec!["d1"]),
            (rel("service", json!("cart"), json!({"required": false})), vec!["axios", "lodash", "pay"]),
            (
                rel("package", json!(["react", "lodash"]), json!({"direction": "downstream"})),
                vec!["cart", "d1", "d2", "search"],
            ),
        ],
    )
    .await;
    let m = |path: Value, v: Value| json!({"property": {"path": path}, "operator": "matchAny", "value": v});
    check_service(
        &s.app,
        vec![
            (m(json!(["domain"]), json!("pay")), vec!["cart", "checkout"]),
            (m(json!(["domain", "parent"]), json!("pay")), vec!["search"]),
            (m(json!(["domain", {"relation": "parent", "maxHops": 2}]), json!(["pay"])), vec!["search"]),
            (m(json!(["packages"]), json!(["axios"])), vec!["cart", "checkout"]),
        ],
    )
    .await;
    let from = json!({"combinator": "and", "rules": [rule("$blueprint", "=", json!("domain")),
        {"property": {"path": ["domain"], "fromBlueprint": "service"}, "operator": "matchAny", "value": ["search"]}]});
    check_global(&s.app, vec![(from, vec!["core"])]).await;
}

#[tokio::test]
async fn global_search_reports_matching_blueprints() {
    let Some(s) = seeded().await else { return };
    let q = json!({"combinator": "and", "rules": [rule("$blueprint", "in", json!(["package", "domain"])),
        rule("$identifier", "!=", json!("react"))]});
    let r = s.app.post("/v1/entities/search", q).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(ids(&r.body), vec!["axios", "core", "lodash", "pay"]);
    assert_eq!(r.body["matchingBlueprints"], json!(["package", "domain"]));
    assert_eq!(r.body["failedBlueprints"], json!([]));
    let q = json!({"combinator": "or", "rules": [rule("$identifier", "=", json!("d1")), rule("$identifier", "=", json!("pay"))]});
    let r = s.app.post("/v1/entities/search?include=identifier&include=blueprint", q).await;
    assert_eq!(
        r.body["entities"],
        json!([{"identifier": "pay", "blueprint": "domain"}, {"identifier": "d1", "blueprint": "deploy"}])
    );
    let mut mb: Vec<&str> =
        r.body["matchingBlueprints"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    mb.sort();
    assert_eq!(mb, vec!["deploy", "domain"]);
    // Ocean's datasource query.
    let q = json!({"combinator": "and", "rules": [
        rule("$datasource", "contains", json!("port-ocean/local-json/")),
        rule("$datasource", "contains", json!("/li/exporter"))]});
    let r = s
        .app
        .post("/v1/entities/search?exclude_calculated_properties=true&include=blueprint&include=identifier", q)
        .await;
    assert_eq!(r.body["entities"], json!([{"identifier": "legacy", "blueprint": "service"}]));
}

/// A property or relation rule on a name that nothing in scope defines would match nothing,
/// silently (a relation written as `{"property": …}` was the case found): it is refused at
/// its path, and the message points at the rule kind that would work.
#[tokio::test]
async fn rules_on_unknown_properties_and_relations_are_refused_with_a_hint() {
    let Some(s) = seeded().await else { return };
    let refused = |r: &crate::helpers::Res, path: &str, want: &str| {
        crate::helpers::assert_invalid(r, path);
        let msg = crate::helpers::detail(r, path);
        assert!(msg.contains(want), "{msg}");
    };
    let search = |q: Value| {
        let app = &s.app;
        async move { app.post("/v1/blueprints/service/entities/search", json!({"query": q})).await }
    };
    let r = search(json!({"combinator": "and", "rules": [rule("domain", "=", json!("pay"))]})).await;
    refused(&r, "query.rules[0].property", "use {\"relation\": \"domain\"");
    let r = search(json!({"combinator": "and", "rules": [rule("langauge", "=", json!("go"))]})).await;
    refused(&r, "query.rules[0].property", "blueprint 'service' has no property 'langauge'");
    let r =
        search(json!({"combinator": "and", "rules": [{"relation": "language", "operator": "=", "value": "go"}]})).await;
    refused(&r, "query.rules[0].relation", "use {\"property\": \"language\"");
    let r = search(json!({"combinator": "or", "rules": [rule("language", "=", json!("go")),
        {"combinator": "and", "rules": [{"relation": "domains", "operator": "isEmpty"}]}]}))
    .await;
    refused(&r, "query.rules[1].rules[0].relation", "no relation 'domains'");
    // Over every blueprint: refused when no blueprint defines it, accepted when one does.
    let r = s
        .app
        .post("/v1/entities/search", json!({"combinator": "and", "rules": [rule("nowhere", "=", json!(1))]}))
        .await;
    refused(&r, "rules[0].property", "no blueprint has a property 'nowhere'");
    let r = s
        .app
        .post(
            "/v1/entities/search",
            json!({"combinator": "and", "rules": [{"property": "version", "operator": "isNotEmpty"}]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
}
