//! The blueprint rename routes: entity values and mirror paths follow the renamed key.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid};

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn property_rename_carries_entity_values_along() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.entity("service", json!({"identifier": "cart", "properties": {"language": "go", "cpu": 2}})).await;
    app.entity("service", json!({"identifier": "web", "properties": {"language": "rust"}})).await;
    let r = app.patch("/v1/blueprints/service/properties/language/rename", json!({"newPropertyName": "lang"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let bp = &r.body["blueprint"];
    assert!(bp["schema"]["properties"].get("language").is_none());
    assert_eq!(bp["schema"]["properties"]["lang"]["enum"], json!(["go", "rust", "python"]));
    assert_eq!(bp["schema"]["required"], json!(["lang"]));
    let e = &app.get("/v1/blueprints/service/entities/cart").await.body["entity"];
    assert_eq!(e["properties"]["lang"], json!("go"));
    assert_eq!(e["properties"]["cpu"], json!(2));
    assert!(e["properties"].get("language").is_none(), "{e}");
    // The renamed property is writable and required under its new name.
    let r = app.post("/v1/blueprints/service/entities", json!({"identifier": "x", "properties": {"lang": "go"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app.post("/v1/blueprints/service/entities", json!({"identifier": "y", "properties": {}})).await;
    assert_invalid(&r, "properties.lang");
    // Unknown key → 404; a name that is taken → refused, nothing changes.
    let r = app.patch("/v1/blueprints/service/properties/nope/rename", json!({"newPropertyName": "z"})).await;
    assert_error(&r, 404, "not_found");
    let r = app.patch("/v1/blueprints/service/properties/lang/rename", json!({"newPropertyName": "cpu"})).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    let r = app.patch("/v1/blueprints/service/properties/lang/rename", json!({"newPropertyName": "domain"})).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    let r = app.patch("/v1/blueprints/service/properties/lang/rename", json!({"newPropertyName": "a b"})).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    let r = app.patch("/v1/blueprints/service/properties/lang/rename", json!({"wrong": "x"})).await;
    assert_invalid(&r, "newPropertyName");
    let e = &app.get("/v1/blueprints/service/entities/cart").await.body["entity"];
    assert_eq!((&e["properties"]["lang"], &e["properties"]["cpu"]), (&json!("go"), &json!(2)));
}

#[tokio::test]
async fn relation_and_mirror_renames() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.entity("domain", json!({"identifier": "pay", "title": "Payments", "properties": {"owner": "alice"}})).await;
    app.entity(
        "service",
        json!({"identifier": "cart", "properties": {"language": "go"}, "relations": {"domain": "pay"}}),
    )
    .await;
    let r = app.patch("/v1/blueprints/service/relations/domain/rename", json!({"newRelationIdentifier": "dom"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(keys(&r.body["blueprint"]["relations"]), vec!["dom", "packages"]);
    // The mirror property that went through the relation follows the rename.
    assert_eq!(r.body["blueprint"]["mirrorProperties"]["domainOwner"]["path"], json!("dom.owner"));
    let e = &app.get("/v1/blueprints/service/entities/cart").await.body["entity"];
    assert_eq!(e["relations"], json!({"dom": "pay"}));
    assert_eq!(e["properties"]["domainOwner"], json!("alice"));
    let r = app.patch("/v1/blueprints/service/mirror/domainOwner/rename", json!({"newMirrorName": "owner"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(keys(&r.body["blueprint"]["mirrorProperties"]), vec!["owner"]);
    let e = &app.get("/v1/blueprints/service/entities/cart").await.body["entity"];
    assert_eq!(e["properties"]["owner"], json!("alice"));
    assert!(e["properties"].get("domainOwner").is_none());
    // Edges were renamed too: deleting the domain nulls the renamed relation.
    assert_eq!(app.delete("/v1/blueprints/domain/entities/pay").await.status, StatusCode::OK);
    let e = &app.get("/v1/blueprints/service/entities/cart").await.body["entity"];
    assert_eq!(e["relations"], json!({"dom": null}));
    let r = app.patch("/v1/blueprints/service/relations/nope/rename", json!({"newRelationIdentifier": "x"})).await;
    assert_error(&r, 404, "not_found");
    let r =
        app.patch("/v1/blueprints/service/relations/dom/rename", json!({"newRelationIdentifier": "packages"})).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
}

/// Each bad blueprint gives a 422 whose details name the offending field.
#[tokio::test]
async fn renaming_a_mirrored_property_rewrites_other_blueprints_mirror_paths() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.entity("domain", json!({"identifier": "pay", "properties": {"owner": "alice"}})).await;
    app.entity(
        "service",
        json!({"identifier": "cart", "properties": {"language": "go"}, "relations": {"domain": "pay"}}),
    )
    .await;
    let r = app.patch("/v1/blueprints/domain/properties/owner/rename", json!({"newPropertyName": "lead"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let svc = &app.get("/v1/blueprints/service").await.body["blueprint"];
    assert_eq!(svc["mirrorProperties"]["domainOwner"]["path"], json!("domain.lead"));
    let e = &app.get("/v1/blueprints/service/entities/cart").await.body["entity"];
    assert_eq!(e["properties"]["domainOwner"], json!("alice"));
}
