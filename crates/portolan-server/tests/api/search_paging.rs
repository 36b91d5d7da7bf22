//! Paginated search (`limit`, `next` / `from`), projections in the body, and malformed queries.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid, ids};
use crate::search::rule;

const SEARCH: &str = "/v1/blueprints/package/entities/search";

async fn packages(n: usize) -> Option<TestApp> {
    let app = TestApp::spawn().await?;
    app.blueprint(json!({"identifier": "package", "title": "Package",
        "schema": {"properties": {"version": {"type": "string"}, "n": {"type": "number"}}},
        "calculationProperties": {"label": {"type": "string", "calculation": ".identifier + \"@\" + .properties.version"}}}))
    .await;
    let entities: Vec<Value> = (0..n)
        .map(|i| json!({"identifier": format!("p{i:02}"), "title": format!("P {i}"), "properties": {"version": "1.0", "n": i}}))
        .collect();
    for chunk in entities.chunks(20) {
        let r = app.post("/v1/blueprints/package/entities/bulk", json!({"entities": chunk})).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    }
    Some(app)
}

/// Walk every page; returns the identifiers of each page.
async fn walk(app: &TestApp, body: Value) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut body = body;
    loop {
        let r = app.post(SEARCH, body.clone()).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        let page: Vec<String> = r.body["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["identifier"].as_str().unwrap().to_string())
            .collect();
        pages.push(page);
        match r.body.get("next") {
            Some(Value::String(n)) => body["from"] = json!(n),
            None => break,
            Some(other) => panic!("next must be a string or absent, got {other}"),
        }
        assert!(pages.len() < 100, "pagination does not end");
    }
    pages
}

#[tokio::test]
async fn next_cursor_walks_every_page_exactly_once() {
    let Some(app) = packages(45).await else { return };
    let pages = walk(&app, json!({"limit": 7})).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![7, 7, 7, 7, 7, 7, 3]);
    let all: Vec<String> = pages.concat();
    assert_eq!(all.len(), 45);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 45, "an entity appeared twice");
    // An exact multiple of the limit: the last full page has no `next`.
    let q = json!({"combinator": "and", "rules": [rule("n", "<", json!(21))]});
    let pages = walk(&app, json!({"limit": 7, "query": q})).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![7, 7, 7]);
    // Default limit 200, the largest 1000.
    assert_eq!(walk(&app, json!({})).await.len(), 1);
    assert_eq!(walk(&app, json!({"limit": 1000})).await[0].len(), 45);
    let one =
        walk(&app, json!({"limit": 1, "query": {"combinator": "and", "rules": [rule("n", ">=", json!(43))]}})).await;
    assert_eq!(one, vec![vec!["p43".to_string()], vec!["p44".to_string()]]);
}

#[tokio::test]
async fn bad_limits_and_cursors_are_422() {
    let Some(app) = packages(3).await else { return };
    for limit in [json!(0), json!(1001), json!(-1), json!(2.5), json!("10")] {
        let r = app.post(SEARCH, json!({"limit": limit})).await;
        assert_invalid(&r, "limit");
    }
    for from in [json!("garbage!"), json!("cDp4"), json!(12)] {
        let r = app.post(SEARCH, json!({"from": from})).await;
        assert_invalid(&r, "from");
    }
}

#[tokio::test]
async fn include_and_exclude_in_the_body() {
    let Some(app) = packages(2).await else { return };
    let r = app.post(SEARCH, json!({"include": ["$identifier", "version", "label"]})).await;
    assert_eq!(
        r.body["entities"],
        json!([{"identifier": "p00", "properties": {"version": "1.0", "label": "p00@1.0"}},
               {"identifier": "p01", "properties": {"version": "1.0", "label": "p01@1.0"}}])
    );
    let r = app
        .post(
            SEARCH,
            json!({"limit": 1, "exclude": ["$title", "properties", "relations", "$createdAt",
        "$updatedAt", "$createdBy", "$updatedBy", "$icon", "$team"]}),
        )
        .await;
    assert_eq!(r.body["entities"], json!([{"identifier": "p00", "blueprint": "package"}]));
    assert!(r.body["next"].is_string());
    assert_invalid(&app.post(SEARCH, json!({"include": "$identifier"})).await, "include");
    assert_invalid(&app.post(SEARCH, json!({"exclude": [1]})).await, "exclude[0]");
}

/// Each malformed query is a 422 naming where the problem is.
#[tokio::test]
async fn malformed_queries_are_422_with_a_path() {
    let Some(app) = packages(1).await else { return };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"query": {"rules": []}}), "query"),
        (json!({"query": {"combinator": "xor", "rules": []}}), "query.combinator"),
        (json!({"query": {"combinator": "and"}}), "query"),
        (json!({"query": {"combinator": "and", "rules": {}}}), "query.rules"),
        (
            json!({"query": {"combinator": "and", "rules": [rule("version", "like", json!("1"))]}}),
            "query.rules[0].operator",
        ),
        (json!({"query": {"combinator": "and", "rules": [{"property": "version", "value": "1"}]}}), "query.rules[0]"),
        (json!({"query": {"combinator": "and", "rules": [rule("n", ">", json!("abc"))]}}), "query.rules[0].value"),
        (json!({"query": {"combinator": "and", "rules": [rule("n", "in", json!("abc"))]}}), "query.rules[0].value"),
        (
            json!({"query": {"combinator": "and", "rules": [rule("n", "between", json!({"from": "x", "to": "y"}))]}}),
            "query.rules[0].value.from",
        ),
        (
            json!({"query": {"combinator": "and", "rules": [rule("n", "between", json!({"preset": "someday"}))]}}),
            "query.rules[0].value.preset",
        ),
        (
            json!({"query": {"combinator": "and", "rules": [{"combinator": "or", "rules": [rule("n", "=", json!({"a": 1}))]}]}}),
            "query.rules[0].rules[0].value",
        ),
        (json!({"query": {"combinator": "and", "rules": [rule("label", "=", json!("x"))]}}), "query.rules[0].property"),
        (json!({"query": {"combinator": "and", "rules": [{"operator": "relatedTo", "value": "x"}]}}), "query.rules[0]"),
        (json!({"query": "and"}), "query"),
    ];
    let mut wrong = Vec::new();
    for (body, path) in cases {
        let r = app.post(SEARCH, body.clone()).await;
        let named = r.body["details"].as_array().is_some_and(|d| d.iter().any(|d| d["path"] == json!(path)));
        if r.status.as_u16() != 422 || r.body["ok"] != json!(false) || !named {
            wrong.push(format!("{body}\n  want 422 at {path:?}, got {} {}", r.status, r.body));
        }
    }
    assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));
    // The global search reports paths relative to its body, which is the query.
    let r = app.post("/v1/entities/search", json!({"combinator": "and", "rules": [rule("n", "like", json!(1))]})).await;
    assert_invalid(&r, "rules[0].operator");
    assert_invalid(&app.post("/v1/entities/search", json!({"rules": []})).await, "");
    assert_invalid(&app.post("/v1/entities/search", json!([1])).await, "");
    assert_error(&app.post("/v1/blueprints/nope/entities/search", json!({})).await, 404, "not_found");
    assert_invalid(&app.post(SEARCH, json!([])).await, "");
}

/// A rule on a property the blueprint does not have would match nothing (or, negated,
/// everything) without saying why: it is refused at its path.
#[tokio::test]
async fn unknown_properties_are_refused() {
    let Some(app) = packages(2).await else { return };
    for op in ["=", "!="] {
        let q = json!({"combinator": "and", "rules": [rule("nope", op, json!(1))]});
        let r = app.post(SEARCH, json!({"query": q})).await;
        assert_invalid(&r, "query.rules[0].property");
        assert!(r.body["message"].as_str().unwrap().contains("has no property 'nope'"), "{}", r.body);
    }
}

/// A blueprint-scoped search only consults that blueprint's definitions: another blueprint's
/// calculation property of the same name is no obstacle.
#[tokio::test]
async fn blueprint_search_ignores_other_blueprints_definitions() {
    let Some(app) = packages(2).await else { return };
    app.blueprint(json!({"identifier": "lib", "title": "Lib",
        "calculationProperties": {"version": {"type": "string", "calculation": "\"x\""}}}))
        .await;
    let q = json!({"combinator": "and", "rules": [rule("version", "=", json!("1.0")), rule("n", "=", json!(1))]});
    let r = app.post(SEARCH, json!({"query": q})).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(ids(&r.body), vec!["p01"]);
}
