use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_error};

#[tokio::test]
async fn every_response_has_a_trace_id_and_errors_are_json() {
    let app = TestApp::spawn().await;
    let r = app.get("/no/such/route").await;
    assert_error(&r, 404, "not_found");
    assert!(r.headers.contains_key("x-trace-id"));
    let r = app.req("PUT", "/v1/blueprints", None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert!(r.headers.contains_key("x-trace-id"));
}

#[tokio::test]
async fn create_then_read_entity_with_computed_values() {
    let app = TestApp::spawn().await;
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
