use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_error};

#[tokio::test]
async fn every_response_has_a_trace_id_and_errors_are_json() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app.get("/no/such/route").await;
    assert_error(&r, 404, "not_found");
    assert!(r.headers.contains_key("x-trace-id"));
    let r = app.req("PUT", "/v1/blueprints", None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert!(r.headers.contains_key("x-trace-id"));
}

#[tokio::test]
async fn create_then_read_entity_with_computed_values() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.entity("domain", json!({"identifier": "pay", "properties": {"owner": "alice"}})).await;
    let e = app
        .entity(
            "service",
            json!({"identifier": "cart", "title": "Cart",
            "properties": {"language": "go"}, "relations": {"domain": "pay"}}),
        )
        .await;
    assert_eq!(e["properties"]["domainOwner"], json!("alice"));
    assert_eq!(e["properties"]["link"], json!("https://svc/cart"));
    let r = app.get("/v1/blueprints/service/entities/cart").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["entity"]["title"], json!("Cart"));
}

#[tokio::test]
async fn openapi_lists_every_route_and_docs_are_served_offline() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], json!("3.1.0"));
    let paths = r.body["paths"].as_object().unwrap();
    for (method, path, _, _, _) in portolan_server::router::ROUTES {
        assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} missing from /openapi.json");
    }
    assert!(paths["/v1/blueprints"]["get"]["security"].is_array());
    assert!(paths["/v1/auth/access_token"]["post"].get("security").is_none());
    let docs = app.http.get(format!("{}/docs/", app.base)).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    assert!(!html.contains("https://"), "Swagger UI must not load assets from the internet");
    let init = app.http.get(format!("{}/docs/swagger-initializer.js", app.base)).send().await.unwrap();
    assert!(init.text().await.unwrap().contains("/openapi.json"));
}

#[tokio::test]
async fn health_and_readiness() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app.req_as("", "GET", "/healthz", None).await;
    assert_eq!((r.status, r.body.clone()), (StatusCode::OK, json!({"ok": true})));
    let r = app.req_as("", "GET", "/readyz", None).await;
    assert_eq!((r.status, &r.body["ok"]), (StatusCode::OK, &json!(true)), "{}", r.body);
    // The jq workers' counters (threads in this in-process server: no worker processes).
    assert_eq!(r.body["jq"]["busy"], json!(0), "{}", r.body);
}
