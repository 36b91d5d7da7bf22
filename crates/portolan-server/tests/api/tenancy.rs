//! Organizations are isolated: another organization's token sees, changes and finds nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, ids};

async fn two_orgs() -> Option<(TestApp, String)> {
    let app = TestApp::spawn().await?;
    app.model().await;
    app.entity("domain", json!({"identifier": "pay", "properties": {"owner": "alice"}})).await;
    app.entity(
        "service",
        json!({"identifier": "cart", "title": "Cart", "properties": {"language": "go"},
        "relations": {"domain": "pay"}}),
    )
    .await;
    let b = app.other_org_token("org-b").await;
    Some((app, b))
}

#[tokio::test]
async fn another_org_gets_404_on_every_blueprint_and_entity_route() {
    let Some((app, b)) = two_orgs().await else { return };
    let r = app.req_as(&b, "GET", "/v1/blueprints", None).await;
    let ids: Vec<&Value> = r.body["blueprints"].as_array().unwrap().iter().map(|b| &b["identifier"]).collect();
    assert_eq!(ids, [&json!("_team"), &json!("_user")], "only its own system blueprints: {}", r.body);
    let e = "/v1/blueprints/service/entities";
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/v1/blueprints/service".into(), None),
        ("PUT", "/v1/blueprints/service".into(), Some(json!({"title": "Mine"}))),
        ("PATCH", "/v1/blueprints/service".into(), Some(json!({"title": "Mine"}))),
        ("DELETE", "/v1/blueprints/package".into(), None),
        ("PATCH", "/v1/blueprints/service/properties/language/rename".into(), Some(json!({"newPropertyName": "l"}))),
        ("PATCH", "/v1/blueprints/service/mirror/domainOwner/rename".into(), Some(json!({"newMirrorName": "o"}))),
        ("PATCH", "/v1/blueprints/service/relations/domain/rename".into(), Some(json!({"newRelationIdentifier": "d"}))),
        ("GET", e.into(), None),
        ("POST", e.into(), Some(json!({"identifier": "x", "properties": {"language": "go"}}))),
        ("POST", format!("{e}?upsert=true&merge=true"), Some(json!({"identifier": "cart", "title": "Mine"}))),
        ("GET", format!("{e}/cart"), None),
        ("PUT", format!("{e}/cart"), Some(json!({"properties": {"language": "go"}}))),
        ("PATCH", format!("{e}/cart"), Some(json!({"title": "Mine"}))),
        ("DELETE", format!("{e}/cart"), None),
        ("POST", format!("{e}/bulk"), Some(json!({"entities": [{"identifier": "cart", "title": "Mine"}]}))),
        ("POST", "/v1/blueprints/service/bulk/entities/delete".into(), Some(json!({"entities": ["cart"]}))),
        ("DELETE", "/v1/blueprints/service/all-entities?delete_blueprint=true".into(), None),
        ("GET", "/v1/blueprints/service/entities-count".into(), None),
        ("POST", format!("{e}/search"), Some(json!({}))),
    ];
    for (method, path, body) in calls {
        let r = app.req_as(&b, method, &path, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}: {}", r.body);
        assert_error(&r, 404, "not_found");
    }
    // Nothing of A changed.
    let cart = app.get(&format!("{e}/cart")).await.body["entity"].clone();
    assert_eq!((&cart["title"], &cart["relations"]["domain"]), (&json!("Cart"), &json!("pay")));
    assert_eq!(app.get("/v1/blueprints/service").await.body["blueprint"]["title"], json!("Service"));
    assert_eq!(app.blueprint_ids().await, vec!["domain", "package", "service"]);
    assert_eq!(app.count("service").await, 1);
}

#[tokio::test]
async fn another_org_never_finds_entities_or_audit_records() {
    let Some((app, b)) = two_orgs().await else { return };
    for q in [
        json!({"combinator": "and", "rules": []}),
        json!({"combinator": "and", "rules": [{"property": "$blueprint", "operator": "=", "value": "service"}]}),
        json!({"combinator": "and", "rules": [{"property": "$identifier", "operator": "in", "value": ["cart", "pay"]}]}),
    ] {
        let r = app.req_as(&b, "POST", "/v1/entities/search", Some(q.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
        assert_eq!(r.body["entities"], json!([]), "{q}");
        assert_eq!(r.body["matchingBlueprints"], json!([]), "{q}");
    }
    // To B, A's blueprints do not exist.
    let q = json!({"combinator": "and", "rules": [{"operator": "relatedTo", "blueprint": "domain", "value": "pay"}]});
    let r = app.req_as(&b, "POST", "/v1/entities/search", Some(q)).await;
    assert_error(&r, 422, "invalid_request");
    assert!(r.body["message"].as_str().unwrap().contains("does not exist"), "{}", r.body);
    for query in ["", "identifier=cart", "blueprint=service", "resources=entity", "status=SUCCESS&limit=1000"] {
        let r = app.req_as(&b, "GET", &format!("/v1/audit-log?{query}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["audits"], json!([]), "audit-log?{query}");
    }
    assert_eq!(app.audit("limit=1000").await.len(), 5);
}

#[tokio::test]
async fn the_same_identifiers_live_independently_in_each_org() {
    let Some((app, b)) = two_orgs().await else { return };
    let bp = json!({"identifier": "service", "title": "B's service",
        "schema": {"properties": {"language": {"type": "number"}}}});
    let r = app.req_as(&b, "POST", "/v1/blueprints", Some(bp)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .req_as(
            &b,
            "POST",
            "/v1/blueprints/service/entities",
            Some(json!({"identifier": "cart", "properties": {"language": 3}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Each org validates against its own blueprint.
    let r =
        app.post("/v1/blueprints/service/entities", json!({"identifier": "web", "properties": {"language": 3}})).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    let r = app.get("/v1/blueprints/service/entities/cart").await;
    assert_eq!(r.body["entity"]["properties"]["language"], json!("go"));
    let r = app.req_as(&b, "GET", "/v1/blueprints/service/entities/cart", None).await;
    assert_eq!(r.body["entity"]["properties"], json!({"language": 3}));
    let q = json!({"combinator": "and", "rules": [{"property": "$identifier", "operator": "=", "value": "cart"}]});
    let r = app.req_as(&b, "POST", "/v1/entities/search", Some(q.clone())).await;
    assert_eq!(r.body["entities"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["entities"][0]["properties"]["language"], json!(3));
    let r = app.post("/v1/entities/search", q).await;
    assert_eq!(ids(&r.body), vec!["cart"]);
    assert_eq!(r.body["entities"][0]["properties"]["language"], json!("go"));
    // B wipes its blueprint; A's is untouched.
    let r = app.req_as(&b, "DELETE", "/v1/blueprints/service/all-entities?delete_blueprint=true", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.count("service").await, 1);
    assert_eq!(app.get("/v1/blueprints/service").await.body["blueprint"]["title"], json!("Service"));
    let audit_a = app.audit("limit=1000").await;
    assert!(audit_a.iter().all(|a| a["trigger"]["by"]["orgId"] == json!("org_org-a")), "{audit_a:?}");
}
