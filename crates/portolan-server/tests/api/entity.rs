//! `/v1/blueprints/{bp}/entities…`: write modes, reads and projections, relations, deletes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid, ids};

const SVC: &str = "/v1/blueprints/service/entities";

async fn get_cart(app: &TestApp) -> Value {
    let r = app.get(&format!("{SVC}/cart")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["entity"].clone()
}

/// The model with domain `pay` (title Payments, owner alice), packages `p1`, `p2` and service
/// `cart` related to all three.
async fn seeded() -> Option<TestApp> {
    let app = TestApp::spawn().await?;
    app.model().await;
    app.teams(&["payments"]).await;
    app.entity("domain", json!({"identifier": "pay", "title": "Payments", "properties": {"owner": "alice"}})).await;
    app.entity("package", json!({"identifier": "p1", "title": "P one"})).await;
    app.entity("package", json!({"identifier": "p2"})).await;
    app.entity(
        "service",
        json!({"identifier": "cart", "title": "Cart", "team": ["payments"],
            "properties": {"language": "go", "cpu": 2}, "relations": {"domain": "pay", "packages": ["p1", "p2"]}}),
    )
    .await;
    Some(app)
}

#[tokio::test]
async fn create_is_201_with_computed_values_and_a_duplicate_is_409() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    let r = app.post(SVC, json!({"identifier": "cart", "title": "Cart", "properties": {"language": "go"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let e = &r.body["entity"];
    assert_eq!(e["identifier"], json!("cart"));
    assert_eq!(e["blueprint"], json!("service"));
    assert_eq!(e["team"], json!([]));
    assert_eq!(e["properties"], json!({"language": "go", "domainOwner": null, "link": "https://svc/cart"}));
    assert_eq!(e["relations"], json!({}));
    assert_eq!(e["createdBy"], json!(app.client_id));
    assert_eq!(e["createdAt"], e["updatedAt"]);
    let r = app.post(SVC, json!({"identifier": "cart", "title": "Other", "properties": {"language": "rust"}})).await;
    assert_error(&r, 409, "conflict");
    assert_eq!(get_cart(&app).await["title"], json!("Cart"));
    // No identifier: one is generated.
    let r = app.post(SVC, json!({"properties": {"language": "go"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body["entity"]["identifier"].as_str().unwrap().starts_with("e_"), "{}", r.body);
    assert_eq!(app.count("service").await, 2);
}

#[tokio::test]
async fn upsert_replaces_and_upsert_merge_keeps() {
    let Some(app) = seeded().await else { return };
    let before = get_cart(&app).await;
    let r = app
        .post(&format!("{SVC}?upsert=true"), json!({"identifier": "cart", "properties": {"language": "rust"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = &r.body["entity"];
    assert_eq!(e["title"], json!(null));
    assert_eq!(e["team"], json!([]));
    assert_eq!(e["properties"]["language"], json!("rust"));
    assert!(e["properties"].get("cpu").is_none(), "{e}");
    assert_eq!(e["relations"], json!({}));
    assert_eq!(e["createdAt"], before["createdAt"]);
    let r = app
        .post(
            &format!("{SVC}?upsert=true&merge=true"),
            json!({"identifier": "cart", "title": "Cart 2", "properties": {"cpu": 4}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entity"]["properties"]["language"], json!("rust"));
    assert_eq!(r.body["entity"]["properties"]["cpu"], json!(4));
    assert_eq!(r.body["entity"]["title"], json!("Cart 2"));
    let r = app
        .post(&format!("{SVC}?upsert=true&merge=true"), json!({"identifier": "cart", "relations": {"domain": "pay"}}))
        .await;
    assert_eq!(r.body["entity"]["relations"], json!({"domain": "pay"}));
    assert_eq!(r.body["entity"]["properties"]["domainOwner"], json!("alice"));
    assert_eq!(r.body["entity"]["title"], json!("Cart 2"));
    // Upserting a new entity creates it: 201.
    let r =
        app.post(&format!("{SVC}?upsert=true"), json!({"identifier": "web", "properties": {"language": "go"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn put_replaces_patch_merges_and_both_need_the_entity() {
    let Some(app) = seeded().await else { return };
    let r = app.patch(&format!("{SVC}/cart"), json!({"properties": {"public": true}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = &r.body["entity"];
    assert_eq!((&e["properties"]["language"], &e["properties"]["public"]), (&json!("go"), &json!(true)));
    assert_eq!(e["relations"]["domain"], json!("pay"));
    assert_eq!(e["title"], json!("Cart"));
    let r = app.put(&format!("{SVC}/cart"), json!({"properties": {"language": "python"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = get_cart(&app).await;
    assert_eq!(e["properties"], json!({"language": "python", "domainOwner": null, "link": "https://svc/cart"}));
    assert_eq!((&e["title"], &e["relations"]), (&json!(null), &json!({})));
    assert_error(&app.patch(&format!("{SVC}/nope"), json!({"title": "x"})).await, 404, "not_found");
    assert_error(&app.put(&format!("{SVC}/nope"), json!({"properties": {"language": "go"}})).await, 404, "not_found");
    assert_eq!(app.count("service").await, 1);
    // A body identifier never renames the entity of the path.
    let r = app.patch(&format!("{SVC}/cart"), json!({"identifier": "other", "title": "T"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entity"]["identifier"], json!("cart"));
}

#[tokio::test]
async fn get_list_delete() {
    let Some(app) = seeded().await else { return };
    assert_eq!(get_cart(&app).await["team"], json!(["payments"]));
    assert_error(&app.get(&format!("{SVC}/nope")).await, 404, "not_found");
    assert_error(&app.get("/v1/blueprints/nope/entities/cart").await, 404, "not_found");
    let r = app.get("/v1/blueprints/package/entities").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(ids(&r.body), vec!["p1", "p2"]);
    assert_error(&app.get("/v1/blueprints/nope/entities").await, 404, "not_found");
    let r = app.delete(&format!("{SVC}/cart")).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"ok": true})));
    assert_error(&app.delete(&format!("{SVC}/cart")).await, 404, "not_found");
    assert_eq!(app.count("service").await, 0);
    assert_error(&app.get("/v1/blueprints/nope/entities-count").await, 404, "not_found");
}

#[tokio::test]
async fn validation_only_writes_nothing() {
    let Some(app) = seeded().await else { return };
    let audits = app.audit("limit=1000").await.len();
    let r = app
        .post(&format!("{SVC}?validation_only=true"), json!({"identifier": "web", "properties": {"language": "go"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entity"]["identifier"], json!("web"));
    assert_eq!(r.body["entity"]["properties"]["link"], json!("https://svc/web"));
    let r = app
        .post(&format!("{SVC}?validation_only=true"), json!({"identifier": "web", "properties": {"language": "c"}}))
        .await;
    assert_invalid(&r, "properties.language");
    let r = app
        .post(&format!("{SVC}?validation_only=true"), json!({"identifier": "cart", "properties": {"language": "go"}}))
        .await;
    assert_error(&r, 409, "conflict");
    let r = app
        .post(
            &format!("{SVC}?validation_only=true"),
            json!({"identifier": "web", "properties": {"language": "go"}, "relations": {"domain": "nope"}}),
        )
        .await;
    assert_error(&r, 404, "not_found");
    assert_eq!(app.count("service").await, 1);
    assert_eq!(app.count("domain").await, 1);
    assert_error(&app.get(&format!("{SVC}/web")).await, 404, "not_found");
    assert_eq!(app.audit("limit=1000").await.len(), audits, "a validation-only call is not a write");
}

#[tokio::test]
async fn missing_relation_targets_are_404_unless_stubs_are_asked_for() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    let body = json!({"identifier": "cart", "properties": {"language": "go"},
        "relations": {"domain": "new-dom", "packages": ["np1", "np2"]}});
    let r = app.post(SVC, body.clone()).await;
    assert_error(&r, 404, "not_found");
    assert!(r.body["message"].as_str().unwrap().contains("new-dom"), "{}", r.body);
    assert_eq!((app.count("service").await, app.count("domain").await), (0, 0));
    let r = app.post(&format!("{SVC}?create_missing_related_entities=true"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!((app.count("domain").await, app.count("package").await), (1, 2));
    let stub = app.get("/v1/blueprints/domain/entities/new-dom").await;
    assert_eq!(stub.body["entity"]["properties"], json!({}));
    assert_eq!(stub.body["entity"]["title"], json!(null));
    // A self-relation to the entity being created needs no stub.
    app.blueprint(json!({"identifier": "node", "title": "Node", "relations": {"parent": {"target": "node"}}})).await;
    let r =
        app.post("/v1/blueprints/node/entities", json!({"identifier": "root", "relations": {"parent": "root"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn deleting_a_target_nulls_single_relations_and_shrinks_many() {
    let Some(app) = seeded().await else { return };
    assert_eq!(app.delete("/v1/blueprints/domain/entities/pay").await.status, StatusCode::OK);
    assert_eq!(app.delete("/v1/blueprints/package/entities/p1").await.status, StatusCode::OK);
    let e = get_cart(&app).await;
    assert_eq!(e["relations"], json!({"domain": null, "packages": ["p2"]}));
    assert_eq!(e["properties"]["domainOwner"], json!(null));
    let updates = app.audit("entity=cart&action=UPDATE").await;
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert_eq!(updates[0]["diff"]["after"]["relations"]["packages"], json!(["p2"]));
}

#[tokio::test]
async fn required_relation_blocks_delete_unless_dependents_go_too() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "env", "title": "Env"})).await;
    app.blueprint(json!({"identifier": "deploy", "title": "Deploy",
        "relations": {"env": {"target": "env", "required": true}}}))
        .await;
    app.entity("env", json!({"identifier": "prod"})).await;
    app.entity("env", json!({"identifier": "dev"})).await;
    app.entity("deploy", json!({"identifier": "d1", "relations": {"env": "prod"}})).await;
    app.entity("deploy", json!({"identifier": "d2", "relations": {"env": "prod"}})).await;
    app.entity("deploy", json!({"identifier": "d3", "relations": {"env": "dev"}})).await;
    let r = app.delete("/v1/blueprints/env/entities/prod").await;
    assert_error(&r, 409, "conflict");
    assert!(r.body["message"].as_str().unwrap().contains("d1"), "{}", r.body);
    assert_eq!((app.count("env").await, app.count("deploy").await), (2, 3));
    let r = app.delete("/v1/blueprints/env/entities/prod?delete_dependents=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(ids(&app.get("/v1/blueprints/deploy/entities").await.body), vec!["d3"]);
    assert_eq!(app.count("env").await, 1);
}

#[tokio::test]
async fn user_agent_is_recorded_as_datasource_and_audit_origin() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    let ua = "port-ocean/github/0.1.0/gh-int/exporter";
    let body = json!({"identifier": "cart", "properties": {"language": "go"}}).to_string().into_bytes();
    let r = app.raw("POST", SVC, &[("content-type", "application/json"), ("user-agent", ua)], Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let audits = app.audit("entity=cart").await;
    assert_eq!(audits[0]["trigger"]["origin"], json!(ua));
    app.entity("service", json!({"identifier": "web", "properties": {"language": "go"}})).await;
    assert_eq!(app.audit("entity=web").await[0]["trigger"]["origin"], json!("API"));
    let q = json!({"combinator": "and", "rules": [{"property": "$datasource", "operator": "=", "value": ua}]});
    let r = app.post("/v1/blueprints/service/entities/search", json!({"query": q})).await;
    assert_eq!(ids(&r.body), vec!["cart"], "{}", r.body);
}

#[tokio::test]
async fn projections_and_relation_titles() {
    let Some(app) = seeded().await else { return };
    let r = app.get(&format!("{SVC}/cart?include=identifier&include=properties.language")).await;
    assert_eq!(r.body["entity"], json!({"identifier": "cart", "properties": {"language": "go"}}));
    let r = app.get(&format!("{SVC}/cart?include[]=$title&include[]=cpu")).await;
    assert_eq!(r.body["entity"], json!({"title": "Cart", "properties": {"cpu": 2}}));
    let r =
        app.get(&format!("{SVC}/cart?exclude=properties&exclude=relations&exclude=createdAt&exclude=updatedAt")).await;
    let keys: Vec<&String> = r.body["entity"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["identifier", "title", "icon", "blueprint", "team", "createdBy", "updatedBy"]);
    let r = app.get(&format!("{SVC}/cart?exclude_calculated_properties=true")).await;
    assert_eq!(r.body["entity"]["properties"], json!({"language": "go", "cpu": 2}));
    let r = app.get(&format!("{SVC}/cart?attach_title_to_relation=true")).await;
    assert_eq!(
        r.body["entity"]["relations"],
        json!({"domain": {"identifier": "pay", "title": "Payments"},
               "packages": [{"identifier": "p1", "title": "P one"}, {"identifier": "p2", "title": null}]})
    );
    let r = app.get("/v1/blueprints/service/entities?include=identifier").await;
    assert_eq!(r.body["entities"], json!([{"identifier": "cart"}]));
    let r = app.get(&format!("{SVC}/cart?exclude_calculated_properties=maybe")).await;
    assert_eq!(r.status.as_u16() / 100, 4, "{}", r.body);
    assert_eq!(r.body["ok"], json!(false));
}

#[tokio::test]
async fn delete_all_entities_and_the_blueprint() {
    let Some(app) = seeded().await else { return };
    for i in 0..3 {
        app.entity("package", json!({"identifier": format!("extra{i}")})).await;
    }
    let r = app.delete("/v1/blueprints/package/all-entities").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.count("package").await, 0);
    assert_eq!(get_cart(&app).await["relations"]["packages"], json!([]));
    let r = app.delete("/v1/blueprints/service/all-entities?delete_blueprint=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_error(&app.get("/v1/blueprints/service").await, 404, "not_found");
    let r = app.delete("/v1/blueprints/package/all-entities?delete_blueprint=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.blueprint_ids().await, vec!["domain"]);
    assert_error(&app.delete("/v1/blueprints/nope/all-entities").await, 404, "not_found");
}

#[tokio::test]
async fn delete_all_respects_required_relations_of_other_blueprints() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(
        json!({"identifier": "env", "title": "Env", "relations": {"parent": {"target": "env", "required": false}}}),
    )
    .await;
    app.blueprint(json!({"identifier": "deploy", "title": "Deploy",
        "relations": {"env": {"target": "env", "required": true}}}))
        .await;
    app.entity("env", json!({"identifier": "prod"})).await;
    app.entity("env", json!({"identifier": "dev", "relations": {"parent": "prod"}})).await;
    app.entity("deploy", json!({"identifier": "d1", "relations": {"env": "dev"}})).await;
    let r = app.delete("/v1/blueprints/env/all-entities").await;
    assert_error(&r, 409, "conflict");
    assert_eq!((app.count("env").await, app.count("deploy").await), (2, 1));
    let r = app.delete("/v1/blueprints/env/all-entities?delete_blueprint=true").await;
    assert_error(&r, 409, "conflict");
    assert_eq!(app.blueprint_ids().await, vec!["deploy", "env"]);
    let r = app.delete("/v1/blueprints/env/all-entities?delete_dependents=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((app.count("env").await, app.count("deploy").await), (0, 0));
}

#[tokio::test]
async fn unpaginated_reads_refuse_more_than_the_limit() {
    let Some(app) = TestApp::spawn_with(portolan_server::ApiConfig { max_unpaginated: 2, ..Default::default() }).await
    else {
        return;
    };
    app.model().await;
    for id in ["a", "b", "c"] {
        app.entity("package", json!({"identifier": id})).await;
    }
    assert_error(&app.get("/v1/blueprints/package/entities").await, 422, "too_many_results");
    let all = json!({"combinator": "and", "rules": []});
    assert_error(&app.post("/v1/entities/search", all).await, 422, "too_many_results");
    let two =
        json!({"combinator": "and", "rules": [{"property": "$identifier", "operator": "in", "value": ["a", "b"]}]});
    assert_eq!(ids(&app.post("/v1/entities/search", two).await.body), vec!["a", "b"]);
    let r = app.post("/v1/blueprints/package/entities/search", json!({"limit": 3})).await;
    assert_eq!(ids(&r.body), vec!["a", "b", "c"]);
}
