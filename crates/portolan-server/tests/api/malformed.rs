//! Malformed requests: each is a clear 4xx in Port's envelope, never a 5xx, and writes nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Res, TestApp, assert_error, assert_invalid, wide_text};

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

/// A 4xx with `{ok: false, error, message}`.
#[track_caller]
fn assert_4xx(r: &Res, what: &str) {
    assert!(r.status.is_client_error(), "{what}: {} {}", r.status, r.body);
    assert_eq!(r.body["ok"], json!(false), "{what}: {}", r.body);
    assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {}", r.body);
}

/// Blueprints, entity counts and successful audit records: none may change.
async fn snapshot(app: &TestApp) -> (Vec<String>, u64, u64, usize) {
    let n = app.audit("status=SUCCESS&limit=10000").await.len();
    (app.blueprint_ids().await, app.count("service").await, app.count("domain").await, n)
}

/// Routes that take a body, with a path that exists.
const WRITES: &[(&str, &str)] = &[
    ("POST", "/v1/blueprints"),
    ("PUT", "/v1/blueprints/service"),
    ("PATCH", "/v1/blueprints/service"),
    ("PATCH", "/v1/blueprints/service/properties/cpu/rename"),
    ("POST", "/v1/blueprints/service/entities"),
    ("POST", "/v1/blueprints/service/entities?upsert=true&merge=true"),
    ("PUT", "/v1/blueprints/service/entities/cart"),
    ("PATCH", "/v1/blueprints/service/entities/cart"),
    ("POST", "/v1/blueprints/service/entities/bulk"),
    ("POST", "/v1/blueprints/service/bulk/entities/delete"),
    ("POST", "/v1/blueprints/service/entities/search"),
    ("POST", "/v1/entities/search"),
];

async fn seeded() -> Option<TestApp> {
    let app = TestApp::spawn().await?;
    app.model().await;
    app.entity("service", json!({"identifier": "cart", "properties": {"language": "go"}})).await;
    Some(app)
}

#[tokio::test]
async fn invalid_json_wrong_content_type_and_huge_bodies() {
    let Some(app) = seeded().await else { return };
    let before = snapshot(&app).await;
    let big = json!({"identifier": "big", "title": "x".repeat(1024 * 1024 + 10)}).to_string().into_bytes();
    for (method, path) in WRITES {
        let r = app.raw(method, path, JSON, Some(b"{\"identifier\": \"x\",".to_vec())).await;
        assert_error(&r, 400, "bad_request");
        let r = app.raw(method, path, JSON, Some(b"{\"a\": 1} trailing".to_vec())).await;
        assert_error(&r, 400, "bad_request");
        let r = app.raw(method, path, JSON, Some(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'])).await;
        assert_4xx(&r, "invalid UTF-8");
        let r = app.raw(method, path, JSON, Some(b"{\"n\": 1e999}".to_vec())).await;
        assert_4xx(&r, "number out of range");
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes();
        assert_4xx(&app.raw(method, path, JSON, Some(deep)).await, "deep nesting");
        let r = app.raw(method, path, &[("content-type", "text/plain")], Some(b"{}".to_vec())).await;
        assert_error(&r, 415, "unsupported_media_type");
        let r = app.raw(method, path, &[], Some(b"{}".to_vec())).await;
        assert_error(&r, 415, "unsupported_media_type");
        let r = app.raw(method, path, JSON, None).await;
        assert_4xx(&r, "empty body");
        let r = app.raw(method, path, JSON, Some(big.clone())).await;
        assert_error(&r, 413, "payload_too_large");
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn json_that_is_not_an_object() {
    let Some(app) = seeded().await else { return };
    let before = snapshot(&app).await;
    for (method, path) in WRITES {
        for body in [json!([1, 2]), json!("x"), json!(null), json!(5), json!(true)] {
            let r = app.req(method, path, Some(body.clone())).await;
            assert_error(&r, 422, "invalid_request");
        }
    }
    let r = app.post("/v1/auth/access_token", json!(["id", "secret"])).await;
    assert_error(&r, 422, "invalid_request");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn wrong_types_for_top_level_fields() {
    let Some(app) = seeded().await else { return };
    let before = snapshot(&app).await;
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("POST", "/v1/blueprints", json!({"identifier": 5, "title": "X"}), "identifier"),
        ("POST", "/v1/blueprints", json!({"identifier": "x", "title": "X", "schema": []}), "schema"),
        (
            "POST",
            "/v1/blueprints",
            json!({"identifier": "x", "title": "X", "schema": {"properties": []}}),
            "schema.properties",
        ),
        ("POST", "/v1/blueprints", json!({"identifier": "x", "title": "X", "relations": ["a"]}), "relations"),
        (
            "POST",
            "/v1/blueprints",
            json!({"identifier": "x", "title": "X", "relations": {"r": {"target": 1}}}),
            "relations.r.target",
        ),
        (
            "POST",
            "/v1/blueprints",
            json!({"identifier": "x", "title": "X", "includeInGlobalSearch": "yes"}),
            "includeInGlobalSearch",
        ),
        ("PATCH", "/v1/blueprints/service", json!({"title": ["a"]}), "title"),
        (
            "PATCH",
            "/v1/blueprints/service",
            json!({"relations": {"domain": {"target": "domain", "many": "no"}}}),
            "relations.domain.many",
        ),
        ("PATCH", "/v1/blueprints/service/properties/cpu/rename", json!({"newPropertyName": 5}), "newPropertyName"),
        ("POST", "/v1/blueprints/service/entities", json!({"identifier": "x", "properties": "go"}), "properties"),
        ("POST", "/v1/blueprints/service/entities", json!({"identifier": "x", "relations": 5}), "relations"),
        ("POST", "/v1/blueprints/service/entities", json!({"identifier": ["x"]}), "identifier"),
        ("PATCH", "/v1/blueprints/service/entities/cart", json!({"team": {"a": 1}}), "team"),
        ("POST", "/v1/blueprints/service/entities/bulk", json!({"entities": "x"}), "entities"),
        ("POST", "/v1/blueprints/service/bulk/entities/delete", json!({"entities": "cart"}), "entities"),
        ("POST", "/v1/blueprints/service/entities/search", json!({"limit": "10"}), "limit"),
        ("POST", "/v1/blueprints/service/entities/search", json!({"query": []}), "query"),
        ("POST", "/v1/blueprints/service/entities/search", json!({"include": {"a": 1}}), "include"),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, field) in cases {
        let r = app.req(method, path, Some(body.clone())).await;
        let named = r.body["details"].as_array().is_some_and(|d| d.iter().any(|d| d["path"] == json!(field)));
        if r.status.as_u16() != 422 || r.body["error"] != json!("invalid_request") || !named {
            wrong.push(format!("{method} {path} {body}\n  want 422 at {field:?}, got {} {}", r.status, r.body));
        }
    }
    assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn unknown_blueprints_and_entities_are_404() {
    let Some(app) = seeded().await else { return };
    let before = snapshot(&app).await;
    let long = "b".repeat(1001);
    for bp in ["nope", long.as_str(), "%C3%B1"] {
        let e = format!("/v1/blueprints/{bp}/entities");
        for (method, path, body) in [
            ("GET", format!("/v1/blueprints/{bp}"), None),
            ("DELETE", format!("/v1/blueprints/{bp}"), None),
            ("GET", e.clone(), None),
            ("POST", e.clone(), Some(json!({"identifier": "x"}))),
            ("GET", format!("{e}/x"), None),
            ("PATCH", format!("{e}/x"), Some(json!({}))),
            ("POST", format!("{e}/bulk"), Some(json!({"entities": [{"identifier": "x"}]}))),
            ("POST", format!("{e}/search"), Some(json!({}))),
            ("GET", format!("/v1/blueprints/{bp}/entities-count"), None),
        ] {
            let r = app.req(method, &path, body).await;
            assert_error(&r, 404, "not_found");
        }
    }
    let r = app.get(&format!("/v1/blueprints/service/entities/{}", "e".repeat(1001))).await;
    assert_error(&r, 404, "not_found");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn odd_identifiers_and_unicode() {
    let Some(app) = seeded().await else { return };
    for id in ["..", ".", "", "a/../..", "x y", "tab\t", "nul\u{0}"] {
        let r = app.post("/v1/blueprints", json!({"identifier": id, "title": "X"})).await;
        let want = if id == "a/../.." { 201 } else { 422 };
        assert_eq!(r.status.as_u16(), want, "{id:?}: {}", r.body);
        assert_eq!(r.body["ok"], json!(want == 201), "{id:?}: {}", r.body);
    }
    // 1000 letters of 3 bytes each: within the character limit, over PostgreSQL's index entry
    // (a 500 there before), so a 422 naming the bytes on both backends.
    let wide = wide_text(1000);
    for id in ["..", "a".repeat(1001).as_str(), "nul\u{0}", "new\nline", wide.as_str()] {
        let r = app
            .post("/v1/blueprints/service/entities", json!({"identifier": id, "properties": {"language": "go"}}))
            .await;
        assert_invalid(&r, "identifier");
    }
    assert!(
        app.post("/v1/blueprints/service/entities", json!({"identifier": wide})).await.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("1600 bytes"))
    );
    assert_eq!(app.count("service").await, 1);
    // The refusal is audited, its entity cut to what the audit log's index can key (on
    // PostgreSQL the record was lost before).
    let refused = app.audit("status=FAILURE&resources=entity").await;
    assert!(
        refused.iter().any(|a| a["context"]["entity"].as_str().is_some_and(|e| !e.is_empty() && wide.starts_with(e))),
        "{refused:?}"
    );
    let r = app
        .post(
            "/v1/blueprints/service/entities",
            json!({"identifier": "é".repeat(800), "properties": {"language": "go"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "800 letters of 2 bytes: {}", r.body);
    assert_eq!(app.count("service").await, 2);
    // Letters of any script are identifiers; values may hold any text.
    app.blueprint(json!({"identifier": "сервис", "title": "Сервис 🚀",
        "schema": {"properties": {"name": {"type": "string", "maxLength": 3}}}}))
        .await;
    let r = app
        .post(
            "/v1/blueprints",
            json!({"identifier": "x", "title": "X", "schema": {"properties": {"ñ": {"type": "string"}}}}),
        )
        .await;
    assert_invalid(&r, "schema.properties.ñ");
    // A NUL character in a value: SQLite stores any text; PostgreSQL text cannot hold U+0000, so
    // there the write is a 422 naming the field (never a 500) and the rest of the test goes on
    // with a title PostgreSQL can store.
    let nul_title = json!({"identifier": "服务-1", "title": "🚀\u{0}", "properties": {"name": "日本語"}});
    let title = match crate::BACKEND {
        Backend::Sqlite => "🚀\u{0}",
        Backend::Postgres => {
            let r = app.post("/v1/blueprints/сервис/entities", nul_title.clone()).await;
            assert_invalid(&r, "title");
            "🚀"
        }
    };
    let mut body = nul_title;
    body["title"] = json!(title);
    let r = app.post("/v1/blueprints/сервис/entities", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app.get("/v1/blueprints/%D1%81%D0%B5%D1%80%D0%B2%D0%B8%D1%81/entities/%E6%9C%8D%E5%8A%A1-1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entity"]["title"], json!(title));
    // A search list with a NUL character: refused on PostgreSQL with a 422 naming the query,
    // whether it is bound as one value or as a list (one array); searched on SQLite.
    for list in [json!(["b\u{0}"]), json!(["a", "b\u{0}"])] {
        let q = json!({"combinator": "and", "rules": [{"property": "$identifier", "operator": "in", "value": list}]});
        let r = app.post("/v1/entities/search", q).await;
        match crate::BACKEND {
            Backend::Sqlite => assert_eq!(r.status, StatusCode::OK, "{}", r.body),
            Backend::Postgres => assert_invalid(&r, "query"),
        }
    }
    // Lookups by an identifier with a NUL character find nothing, on either backend.
    let r = app.get("/v1/blueprints/%D1%81%D0%B5%D1%80%D0%B2%D0%B8%D1%81/entities/x%00y").await;
    assert_error(&r, 404, "not_found");
    let r = app.get("/v1/blueprints/x%00y").await;
    assert_error(&r, 404, "not_found");
    assert!(app.audit("entity=x%00y").await.is_empty());
    let r = app
        .post("/v1/blueprints/сервис/entities", json!({"identifier": "two", "properties": {"name": "日本語!"}}))
        .await;
    assert_invalid(&r, "properties.name");
    // Slashes and other allowed punctuation survive the round trip through the path.
    let r = app
        .post("/v1/blueprints/service/entities", json!({"identifier": "a/b:c+d@e=f", "properties": {"language": "go"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app.get("/v1/blueprints/service/entities/a%2Fb%3Ac%2Bd%40e%3Df").await;
    assert_eq!(r.body["entity"]["identifier"], json!("a/b:c+d@e=f"), "{}", r.body);
}

#[tokio::test]
async fn huge_arrays_and_lists_are_refused_cleanly() {
    let Some(app) = seeded().await else { return };
    let before = snapshot(&app).await;
    let ids: Vec<String> = (0..50_000).map(|i| format!("i{i}")).collect();
    let r = app.post("/v1/blueprints/service/bulk/entities/delete", json!({"entities": ids})).await;
    assert_invalid(&r, "entities");
    let q = json!({"combinator": "and", "rules": [{"property": "$identifier", "operator": "in", "value": ids}]});
    let r = app.post("/v1/entities/search", q).await;
    assert_invalid(&r, "rules[0].value");
    let rules: Vec<Value> = (0..5000).map(|i| json!({"property": "cpu", "operator": "=", "value": i})).collect();
    let r = app
        .post("/v1/blueprints/service/entities/search", json!({"query": {"combinator": "or", "rules": rules}}))
        .await;
    assert_4xx(&r, "5000 rules");
    let mut nested = json!({"property": "cpu", "operator": "=", "value": 1});
    for _ in 0..100 {
        nested = json!({"combinator": "and", "rules": [nested]});
    }
    assert_4xx(&app.post("/v1/entities/search", nested).await, "100 nested groups");
    let many: Vec<Value> =
        (0..1001).map(|i| json!({"identifier": format!("s{i}"), "properties": {"language": "go"}})).collect();
    // Over the bulk cap: 413 (Ocean falls back to single upserts on it), in Port's envelope.
    let r = app.post("/v1/blueprints/service/entities/bulk", json!({"entities": many})).await;
    assert_eq!(r.status.as_u16(), 413, "body: {}", r.body);
    assert_eq!(r.body["error"], "payload_too_large");
    let too_many_values: Vec<String> = (0..2000).map(|i| format!("v{i}")).collect();
    let r = app
        .post(
            "/v1/blueprints",
            json!({"identifier": "x", "title": "X",
            "schema": {"properties": {"e": {"type": "string", "enum": too_many_values}}}}),
        )
        .await;
    assert_eq!(r.status.as_u16() / 100, 2, "a large enum is fine: {}", r.body);
    let r = app.delete("/v1/blueprints/x").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(snapshot(&app).await.0, before.0);
    assert_eq!(snapshot(&app).await.1, before.1);
}

#[tokio::test]
async fn bad_query_string_flags_are_422_and_nothing_is_written() {
    let Some(app) = seeded().await else { return };
    let before = snapshot(&app).await;
    for (q, param) in [
        ("upsert=maybe", "upsert"),
        ("upsert=true&merge=2", "merge"),
        ("validation_only=yes&upsert=true", "validation_only"),
        ("create_missing_related_entities=x", "create_missing_related_entities"),
        ("exclude_calculated_properties=maybe", "exclude_calculated_properties"),
        ("attach_title_to_relation=nah", "attach_title_to_relation"),
    ] {
        let body = json!({"identifier": "n", "properties": {"language": "go"}});
        assert_invalid(&app.post(&format!("/v1/blueprints/service/entities?{q}"), body.clone()).await, param);
        if !q.starts_with("upsert") {
            assert_invalid(&app.put(&format!("/v1/blueprints/service/entities/cart?{q}"), body.clone()).await, param);
        }
        // Bulk writes answer without entities, so they take no read options.
        if !param.contains("calculated") && !param.contains("attach") {
            let bulk = json!({"entities": [body]});
            assert_invalid(&app.post(&format!("/v1/blueprints/service/entities/bulk?{q}"), bulk).await, param);
        }
    }
    let r = app.delete("/v1/blueprints/service/entities/cart?delete_dependents=perhaps").await;
    assert_invalid(&r, "delete_dependents");
    let r = app.delete("/v1/blueprints/service/all-entities?delete_blueprint=perhaps").await;
    assert_invalid(&r, "delete_blueprint");
    assert_eq!(snapshot(&app).await, before);
    let r = app.get("/v1/blueprints/service/entities/cart?include=%ZZ").await;
    assert_eq!(r.status, StatusCode::OK, "a stray % is taken literally: {}", r.body);
}
