//! Bulk entity routes: `POST …/entities/bulk` (200 / 207) and `POST …/bulk/entities/delete`.

use portolan_server::ApiConfig;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_error, assert_invalid, ids};

const BULK: &str = "/v1/blueprints/service/entities/bulk";

#[tokio::test]
async fn bulk_create_all_ok_is_200() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    let body = json!({"entities": [
        {"identifier": "a", "properties": {"language": "go"}},
        {"identifier": "b", "properties": {"language": "rust"}}]});
    let r = app.post(BULK, body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"ok": true, "errors": [], "entities": [
            {"identifier": "a", "index": 0, "created": true, "additionalData": {}},
            {"identifier": "b", "index": 1, "created": true, "additionalData": {}}]})
    );
    let r = app.post(&format!("{BULK}?upsert=true"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entities"][1], json!({"identifier": "b", "index": 1, "created": false, "additionalData": {}}));
    assert_eq!(app.count("service").await, 2);
}

#[tokio::test]
async fn bulk_create_partial_failure_is_207_with_per_entity_errors() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.entity("service", json!({"identifier": "old", "properties": {"language": "go"}})).await;
    let r = app
        .post(
            BULK,
            json!({"entities": [
                {"identifier": "a", "properties": {"language": "go"}},
                {"identifier": "b", "properties": {"language": "cobol"}},
                {"identifier": "c", "properties": {"language": "go"}, "relations": {"domain": "nope"}},
                5,
                {"identifier": "old", "properties": {"language": "go"}},
                {"identifier": "d", "properties": {"language": "python"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!(r.body["ok"], json!(true));
    let ok: Vec<(&str, u64)> = r.body["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["identifier"].as_str().unwrap(), e["index"].as_u64().unwrap()))
        .collect();
    assert_eq!(ok, vec![("a", 0), ("d", 5)]);
    let errors = r.body["errors"].as_array().unwrap();
    let summary: Vec<(&str, u64, u64, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["identifier"].as_str().unwrap(),
                e["index"].as_u64().unwrap(),
                e["statusCode"].as_u64().unwrap(),
                e["error"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("b", 1, 422, "invalid_request"),
            ("c", 2, 404, "not_found"),
            ("unknown", 3, 422, "invalid_request"),
            ("old", 4, 409, "conflict")
        ]
    );
    assert!(errors[0]["message"].as_str().unwrap().contains("properties.language"), "{}", r.body);
    assert!(errors[1]["message"].as_str().unwrap().contains("nope"), "{}", r.body);
    assert_eq!(ids(&app.get("/v1/blueprints/service/entities").await.body), vec!["a", "d", "old"]);
    let failures = app.audit("status=FAILURE&resources=entity").await;
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert!(failures.iter().all(|f| f["message"].as_str().is_some_and(|m| !m.is_empty())));
}

#[tokio::test]
async fn bulk_create_over_the_limit_is_413_and_empty_is_422() {
    let Some(app) = TestApp::spawn_with(ApiConfig { max_bulk_entities: 3, ..Default::default() }).await else { return };
    app.model().await;
    let many: Vec<_> =
        (0..4).map(|i| json!({"identifier": format!("s{i}"), "properties": {"language": "go"}})).collect();
    // Over the limit: 413, as Port answers (the latest Ocean then upserts one at a time).
    let r = app.post(BULK, json!({"entities": many})).await;
    assert_error(&r, 413, "payload_too_large");
    assert!(r.body["message"].as_str().unwrap().contains('3'), "{}", r.body);
    assert_invalid(&app.post(BULK, json!({"entities": []})).await, "entities");
    assert_invalid(&app.post(BULK, json!({"entities": {"identifier": "x"}})).await, "entities");
    assert_invalid(&app.post(BULK, json!({})).await, "entities");
    assert_error(&app.post("/v1/blueprints/nope/entities/bulk", json!({"entities": [{}]})).await, 404, "not_found");
    assert_eq!(app.count("service").await, 0);
}

#[tokio::test]
async fn bulk_validation_only_writes_nothing() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    let r = app
        .post(
            &format!("{BULK}?validation_only=true"),
            json!({"entities": [{"identifier": "a", "properties": {"language": "go"}},
                                {"identifier": "b", "properties": {}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!(r.body["entities"], json!([{"identifier": "a", "index": 0, "created": true, "additionalData": {}}]));
    assert_eq!(r.body["errors"][0]["index"], json!(1));
    assert_eq!(app.count("service").await, 0);
    assert!(app.audit("resources=entity").await.is_empty());
}

#[tokio::test]
async fn bulk_delete() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    for id in ["p1", "p2", "p3"] {
        app.entity("package", json!({"identifier": id})).await;
    }
    let path = "/v1/blueprints/package/bulk/entities/delete";
    let r = app.post(path, json!({"entities": ["p1", "p3"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"ok": true, "deletedEntities": ["p1", "p3"]}));
    assert_eq!(ids(&app.get("/v1/blueprints/package/entities").await.body), vec!["p2"]);
    // An unknown identifier fails the whole request.
    assert_error(&app.post(path, json!({"entities": ["p2", "nope"]})).await, 404, "not_found");
    assert_eq!(app.count("package").await, 1);
    let too_many: Vec<String> = (0..101).map(|i| format!("x{i}")).collect();
    assert_invalid(&app.post(path, json!({"entities": too_many})).await, "entities");
    assert_invalid(&app.post(path, json!({"entities": []})).await, "entities");
    assert_invalid(&app.post(path, json!({"entities": [1]})).await, "entities");
}

#[tokio::test]
async fn bulk_delete_is_all_or_nothing_when_a_required_dependent_blocks() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "env", "title": "Env"})).await;
    app.blueprint(json!({"identifier": "deploy", "title": "Deploy",
        "relations": {"env": {"target": "env", "required": true}}}))
        .await;
    for id in ["dev", "prod", "qa"] {
        app.entity("env", json!({"identifier": id})).await;
    }
    app.entity("deploy", json!({"identifier": "d1", "relations": {"env": "prod"}})).await;
    let path = "/v1/blueprints/env/bulk/entities/delete";
    let r = app.post(path, json!({"entities": ["dev", "prod"]})).await;
    assert_error(&r, 409, "conflict");
    assert_eq!(app.count("env").await, 3);
    let r = app.post(&format!("{path}?delete_dependents=true"), json!({"entities": ["dev", "prod"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["deletedEntities"], json!(["dev", "prod"]));
    assert_eq!((app.count("env").await, app.count("deploy").await), (1, 0));
}
