//! Findings 6, 9 and 10 of the 2026-12 security review: credentials can be listed, created,
//! rotated and deleted (`/v1/apps`), rotating or deleting revokes tokens at once on every node,
//! a token whose organization or credential is gone is a 401 (on b217287 a token stayed valid
//! for 3 h after its credential was deleted, and one for a vanished organization was a 500),
//! web users can be removed, and guessing secrets slows down and then meets 429.

use std::time::Duration;

use portolan_server::auth::TokenSigner;
use portolan_server::{ApiConfig, AppState};
use portolan_store::{OrgId, Session};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, fetch_token};

#[tokio::test]
async fn apps_rotate_and_delete_revoke_tokens_at_once() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app.post("/v1/apps", json!({"name": "ci"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (id, secret) =
        (r.body["app"]["id"].as_str().unwrap().to_string(), r.body["app"]["secret"].as_str().unwrap().to_string());
    let listed = app.get("/v1/apps").await;
    assert_eq!(listed.body["apps"].as_array().unwrap().len(), 2, "{}", listed.body);
    assert!(listed.body["apps"][1].get("secret").is_none(), "secrets are shown once: {}", listed.body);
    assert_eq!(app.put(&format!("/v1/apps/{id}"), json!({"name": "ci-2"})).await.body["app"]["name"], "ci-2");
    assert_eq!(app.post("/v1/apps", json!({"name": ""})).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    let token = fetch_token(&app.http, &app.base, &id, &secret).await;
    assert_eq!(app.req_as(&token, "GET", "/v1/blueprints", None).await.status, StatusCode::OK);

    // Rotation: the old token and the old secret stop working, the new secret works.
    let rotated = app.post(&format!("/v1/apps/{id}/rotate-secret"), json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = rotated.body["app"]["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    let old = app.req_as(&token, "GET", "/v1/blueprints", None).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert!(old.body["message"].as_str().unwrap().contains("rotated"), "{}", old.body);
    let r = app.post("/v1/auth/access_token", json!({"clientId": id, "clientSecret": secret})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let token = fetch_token(&app.http, &app.base, &id, &new_secret).await;
    assert_eq!(
        app.req_as(&token, "POST", "/v1/blueprints", Some(json!({"identifier": "a", "title": "A"}))).await.status,
        StatusCode::CREATED
    );

    // Deletion: the token is refused at once, also for writes.
    assert_eq!(app.delete(&format!("/v1/apps/{id}")).await.status, StatusCode::OK);
    let r = app.req_as(&token, "POST", "/v1/blueprints", Some(json!({"identifier": "b", "title": "B"}))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("revoked"), "{}", r.body);
    assert_eq!(app.delete(&format!("/v1/apps/{id}")).await.status, StatusCode::NOT_FOUND);
    // The last credential stays.
    let last = app.delete(&format!("/v1/apps/{}", app.client_id)).await;
    assert_eq!(last.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", last.body);
    // Another organization cannot see or touch this one's credentials.
    let other = app.other_org_token("org-b").await;
    assert_eq!(
        app.req_as(&other, "DELETE", &format!("/v1/apps/{}", app.client_id), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.req_as(&other, "GET", "/v1/apps", None).await.body["apps"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_revocation_through_one_node_holds_on_another() {
    let Some(app) = TestApp::spawn().await else { return };
    // A second node on the same database.
    let state = AppState::new(app.store.clone(), ApiConfig::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node2 = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = portolan_server::serve(listener, state, std::future::pending()).await;
    });
    let created = app.post("/v1/apps", json!({"name": "deploy"})).await.body;
    let (id, secret) = (created["app"]["id"].as_str().unwrap(), created["app"]["secret"].as_str().unwrap());
    let token = fetch_token(&app.http, &app.base, id, secret).await;
    let on2 = |t: String| {
        let (http, url) = (app.http.clone(), format!("{node2}/v1/blueprints"));
        async move { http.get(url).bearer_auth(t).send().await.unwrap().status() }
    };
    assert_eq!(on2(token.clone()).await, StatusCode::OK, "node 2 accepts node 1's token");
    assert_eq!(app.delete(&format!("/v1/apps/{id}")).await.status, StatusCode::OK);
    assert_eq!(on2(token).await, StatusCode::UNAUTHORIZED, "node 2 refuses it at once");
}

#[tokio::test]
async fn a_token_for_a_missing_organization_or_credential_is_a_401() {
    let Some(app) = TestApp::spawn().await else { return };
    // Someone holding the signing key minted these: valid signatures, nothing behind them.
    let signer = TokenSigner::load(app.store.as_ref(), None).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    for token in [
        signer.issue("no-such-client", &OrgId("org_gone".into()), "h", now),
        signer.issue(&app.client_id, &OrgId("org_gone".into()), "h", now),
    ] {
        let r = app.req_as(&token, "POST", "/v1/blueprints", Some(json!({"identifier": "x", "title": "X"}))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.body["ok"], false);
    }
}

#[tokio::test]
async fn users_can_be_removed_and_their_sessions_end() {
    let Some(app) = TestApp::spawn().await else { return };
    let org = app.web_user("usr_admin", "admin@example.com", "admin").await;
    app.web_user("usr_dev", "dev@example.com", "member").await;
    let session = Session {
        id_hash: "s1".into(),
        org: org.clone(),
        user_id: "usr_dev".into(),
        csrf: "c".into(),
        created_at: 1,
        last_seen: 1,
    };
    app.store.create_session(&session).await.unwrap();
    let r = app.delete("/v1/users/Dev@Example.com").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(app.store.session("s1").await.unwrap().is_none(), "their sessions ended");
    assert_eq!(app.delete("/v1/users/dev@example.com").await.status, StatusCode::NOT_FOUND);
    let last = app.delete("/v1/users/admin@example.com").await;
    assert_eq!(last.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", last.body);
    assert!(last.body["message"].as_str().unwrap().contains("last admin"));
}

#[tokio::test]
async fn guessing_secrets_slows_down_then_meets_429() {
    let config = ApiConfig { auth_failure_limits: (2, 4, Duration::from_secs(60)), ..ApiConfig::default() };
    let Some(app) = TestApp::spawn_with(config).await else { return };
    let wrong = json!({"clientId": app.client_id, "clientSecret": "wrong-secret"});
    let started = std::time::Instant::now();
    for _ in 0..4 {
        assert_eq!(app.post("/v1/auth/access_token", wrong.clone()).await.status, StatusCode::UNAUTHORIZED);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "failures 3 and 4 were held back: {:?}",
        started.elapsed()
    );
    let r = app.post("/v1/auth/access_token", wrong.clone()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.body["ok"], false);
    let retry: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // The right secret is refused too while the client id is locked.
    let right = json!({"clientId": app.client_id, "clientSecret": app.client_secret});
    assert_eq!(app.post("/v1/auth/access_token", right).await.status, StatusCode::TOO_MANY_REQUESTS);
}
