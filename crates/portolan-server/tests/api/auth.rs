use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_error};

#[tokio::test]
async fn token_issued_for_valid_credentials() {
    let Some(app) = TestApp::spawn().await else { return };
    let r =
        app.post("/v1/auth/access_token", json!({"clientId": app.client_id, "clientSecret": app.client_secret})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["ok"], json!(true));
    assert_eq!(r.body["expiresIn"], json!(10800));
    assert_eq!(r.body["tokenType"], json!("Bearer"));
}

#[tokio::test]
async fn wrong_secret_is_401() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app.post("/v1/auth/access_token", json!({"clientId": app.client_id, "clientSecret": "nope"})).await;
    assert_error(&r, 401, "unauthorized");
}

#[tokio::test]
async fn missing_and_forged_tokens_are_401() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app.req_as("", "GET", "/v1/blueprints", None).await;
    assert_error(&r, 401, "unauthorized");
    let forged = format!("{}x", app.token);
    let r = app.req_as(&forged, "GET", "/v1/blueprints", None).await;
    assert_error(&r, 401, "unauthorized");
}
