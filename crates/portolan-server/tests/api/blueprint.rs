//! `/v1/blueprints` routes: CRUD, PATCH merge semantics, renames, deletes and validation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid, detail};

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn create_list_get() {
    let Some(app) = TestApp::spawn().await else { return };
    // A new organization has only the system blueprints.
    let r = app.get("/v1/blueprints").await;
    assert_eq!(r.status, StatusCode::OK);
    let ids: Vec<&Value> = r.body["blueprints"].as_array().unwrap().iter().map(|b| &b["identifier"]).collect();
    assert_eq!(ids, [&json!("_team"), &json!("_user")], "{}", r.body);
    let r = app
        .post(
            "/v1/blueprints",
            json!({"identifier": "service", "title": "Service", "icon": "Microservice",
                "schema": {"properties": {"lang": {"type": "string", "title": "Language", "x-custom": 7}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let bp = &r.body["blueprint"];
    assert_eq!(bp["identifier"], json!("service"));
    assert_eq!(bp["icon"], json!("Microservice"));
    assert_eq!(bp["schema"]["properties"]["lang"], json!({"type": "string", "title": "Language", "x-custom": 7}));
    assert_eq!(bp["relations"], json!({}));
    assert_eq!(bp["createdBy"], json!(app.client_id));
    assert!(bp["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(r.body.get("warnings").is_none(), "{}", r.body);
    app.blueprint(json!({"identifier": "domain", "title": "Domain"})).await;
    assert_eq!(app.blueprint_ids().await, vec!["domain", "service"]);
    let r = app.get("/v1/blueprints/service").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["blueprint"]["title"], json!("Service"));
    assert_eq!(r.body["blueprint"]["schema"]["properties"]["lang"]["x-custom"], json!(7));
    assert_error(&app.get("/v1/blueprints/nope").await, 404, "not_found");
}

#[tokio::test]
async fn duplicate_create_is_409_and_keeps_the_first() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "svc", "title": "First"})).await;
    let r = app.post("/v1/blueprints", json!({"identifier": "svc", "title": "Second"})).await;
    assert_error(&r, 409, "conflict");
    assert_eq!(app.get("/v1/blueprints/svc").await.body["blueprint"]["title"], json!("First"));
}

#[tokio::test]
async fn put_replaces_the_whole_blueprint() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "svc", "title": "Svc", "description": "old",
        "schema": {"properties": {"a": {"type": "string"}, "b": {"type": "number"}}}}))
        .await;
    let r = app
        .put("/v1/blueprints/svc", json!({"title": "Svc 2", "schema": {"properties": {"b": {"type": "number"}}}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let bp = &app.get("/v1/blueprints/svc").await.body["blueprint"];
    assert_eq!(bp["title"], json!("Svc 2"));
    assert_eq!(keys(&bp["schema"]["properties"]), vec!["b"]);
    assert!(bp.get("description").is_none(), "{bp}");
    let r = app.put("/v1/blueprints/nope", json!({"title": "X"})).await;
    assert_error(&r, 404, "not_found");
    let r = app.put("/v1/blueprints/svc", json!({"identifier": "other", "title": "X"})).await;
    assert_invalid(&r, "identifier");
}

#[tokio::test]
async fn patch_merges_keyed_maps_key_by_key() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "domain", "title": "Domain"})).await;
    app.blueprint(json!({"identifier": "svc", "title": "Svc", "description": "kept",
        "schema": {"properties": {"a": {"type": "string"}, "b": {"type": "number"}}, "required": ["a"]},
        "relations": {"domain": {"target": "domain"}},
        "calculationProperties": {"c1": {"type": "string", "calculation": ".identifier"}}}))
        .await;
    let r = app
        .patch(
            "/v1/blueprints/svc",
            json!({"title": "Svc 2",
            "schema": {"properties": {"a": null, "d": {"type": "boolean"}}, "required": []},
            "calculationProperties": {"c2": {"type": "number", "calculation": "1"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let bp = &r.body["blueprint"];
    assert_eq!(bp["title"], json!("Svc 2"));
    assert_eq!(bp["description"], json!("kept"));
    assert_eq!(keys(&bp["schema"]["properties"]), vec!["b", "d"]);
    assert_eq!(bp["schema"]["required"], json!([]));
    assert_eq!(keys(&bp["relations"]), vec!["domain"]);
    assert_eq!(keys(&bp["calculationProperties"]), vec!["c1", "c2"]);
    // Replaced, not merged: a property definition sent again is taken as sent.
    let r = app
        .patch("/v1/blueprints/svc", json!({"schema": {"properties": {"b": {"type": "number", "minimum": 1}}}}))
        .await;
    assert_eq!(r.body["blueprint"]["schema"]["properties"]["b"], json!({"type": "number", "minimum": 1}));
    assert_error(&app.patch("/v1/blueprints/nope", json!({"title": "x"})).await, 404, "not_found");
    // A PATCH cannot retype a property either.
    let r = app.patch("/v1/blueprints/svc", json!({"schema": {"properties": {"b": {"type": "string"}}}})).await;
    assert_invalid(&r, "schema.properties.b.type");
}

#[tokio::test]
async fn delete_is_refused_while_entities_or_relations_depend_on_it() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    // Another blueprint's relation targets `domain`.
    let r = app.delete("/v1/blueprints/domain").await;
    assert_error(&r, 409, "conflict");
    assert!(r.body["message"].as_str().unwrap().contains("service"), "{}", r.body);
    // `package` has no entities and is only a target of service's relation: still refused.
    assert_error(&app.delete("/v1/blueprints/package").await, 409, "conflict");
    app.entity("service", json!({"identifier": "cart", "properties": {"language": "go"}})).await;
    let r = app.delete("/v1/blueprints/service").await;
    assert_error(&r, 409, "conflict");
    assert!(r.body["message"].as_str().unwrap().contains("entities"), "{}", r.body);
    assert_eq!(app.delete("/v1/blueprints/service/entities/cart").await.status, StatusCode::OK);
    let r = app.delete("/v1/blueprints/service").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"ok": true}));
    assert_error(&app.get("/v1/blueprints/service").await, 404, "not_found");
    assert_error(&app.delete("/v1/blueprints/service").await, 404, "not_found");
    // With service gone, package is free.
    assert_eq!(app.delete("/v1/blueprints/package").await.status, StatusCode::OK);
    assert_eq!(app.blueprint_ids().await, vec!["domain"]);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(
        json!({"identifier": "domain", "title": "Domain", "schema": {"properties": {"owner": {"type": "string"}}}}),
    )
    .await;
    let prop = |p: Value| json!({"identifier": "x", "title": "X", "schema": {"properties": {"p": p}}});
    let with = |extra: Value| {
        let mut b = json!({"identifier": "x", "title": "X", "schema": {"properties": {"s": {"type": "string"}}}});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"identifier": "..", "title": "X"}), "identifier"),
        (json!({"identifier": "a".repeat(101), "title": "X"}), "identifier"),
        (json!({"identifier": "my service", "title": "X"}), "identifier"),
        (json!({"identifier": "x"}), "title"),
        (json!({"identifier": "x", "title": 5}), "title"),
        (prop(json!({"type": "strin"})), "schema.properties.p.type"),
        (prop(json!({"title": "no type"})), "schema.properties.p.type"),
        (prop(json!({"type": "number", "format": "url"})), "schema.properties.p.format"),
        (prop(json!({"type": "string", "format": "colour"})), "schema.properties.p.format"),
        (prop(json!({"type": "string", "enum": ["a", 1]})), "schema.properties.p.enum[1]"),
        (prop(json!({"type": "number", "enum": [1, "2"]})), "schema.properties.p.enum[1]"),
        (
            prop(json!({"type": "string", "enum": ["a"], "enumColors": {"a": "mauve"}})),
            "schema.properties.p.enumColors.a",
        ),
        (prop(json!({"type": "number", "minimum": "0"})), "schema.properties.p.minimum"),
        (prop(json!({"type": "string", "pattern": "([a-z"})), "schema.properties.p.pattern"),
        (prop(json!({"type": "string", "default": 3})), "schema.properties.p.default"),
        (prop(json!({"type": "array", "items": {"type": "strin"}})), "schema.properties.p.items.type"),
        (
            json!({"identifier": "x", "title": "X", "schema": {"properties": {"a b": {"type": "string"}}}}),
            "schema.properties.a b",
        ),
        (with(json!({"schema": {"properties": {}, "required": ["nope"]}})), "schema.required[0]"),
        (with(json!({"relations": {"r": {"target": "nope"}}})), "relations.r.target"),
        (with(json!({"relations": {"r": {"target": "domain", "many": true, "required": true}}})), "relations.r"),
        (with(json!({"mirrorProperties": {"m": {"path": "s.owner"}}})), "mirrorProperties.m.path"),
        (
            with(json!({"relations": {"d": {"target": "domain"}}, "mirrorProperties": {"m": {"path": "d.nope"}}})),
            "mirrorProperties.m.path",
        ),
        (with(json!({"mirrorProperties": {"m": {"path": "owner"}}})), "mirrorProperties.m.path"),
        (
            with(json!({"calculationProperties": {"c": {"type": "string", "calculation": ".properties | ["}}})),
            "calculationProperties.c.calculation",
        ),
        (
            with(json!({"calculationProperties": {"c": {"type": "text", "calculation": "1"}}})),
            "calculationProperties.c.type",
        ),
        (with(json!({"relations": {"s": {"target": "domain"}}})), "relations.s"),
        (
            with(json!({"calculationProperties": {"s": {"type": "string", "calculation": "1"}}})),
            "calculationProperties.s",
        ),
        (with(json!({"ownership": {"type": "Inherited"}})), "ownership.path"),
    ];
    let mut wrong = Vec::new();
    for (body, path) in cases {
        let r = app.post("/v1/blueprints", body.clone()).await;
        let named = r.body["details"].as_array().is_some_and(|d| d.iter().any(|d| d["path"] == json!(path)));
        if r.status.as_u16() != 422 || r.body["error"] != json!("invalid_request") || !named {
            wrong.push(format!("{body}\n  expected 422 at {path:?}, got {} {}", r.status, r.body));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(app.blueprint_ids().await, vec!["domain"], "a rejected blueprint was written");
}

#[tokio::test]
async fn several_problems_are_reported_together() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app
        .post(
            "/v1/blueprints",
            json!({"identifier": "x", "title": "X", "schema": {"properties": {
                "a": {"type": "number", "minimum": "low"}, "b": {"type": "string", "pattern": "("}}, "required": ["c"]}}),
        )
        .await;
    assert_invalid(&r, "schema.properties.a.minimum");
    assert_invalid(&r, "schema.properties.b.pattern");
    assert_invalid(&r, "schema.required[0]");
    assert_eq!(r.body["details"].as_array().unwrap().len(), 3, "{}", r.body);
}

#[tokio::test]
async fn property_type_is_immutable_on_put() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "svc", "title": "Svc", "schema": {"properties": {"cpu": {"type": "number"}}}}))
        .await;
    let r = app
        .put("/v1/blueprints/svc", json!({"title": "Svc", "schema": {"properties": {"cpu": {"type": "string"}}}}))
        .await;
    assert_invalid(&r, "schema.properties.cpu.type");
    assert!(detail(&r, "schema.properties.cpu.type").contains("immutable"), "{}", r.body);
    assert_eq!(
        app.get("/v1/blueprints/svc").await.body["blueprint"]["schema"]["properties"]["cpu"]["type"],
        json!("number")
    );
}

#[tokio::test]
async fn aggregation_property_is_stored_without_a_warning_and_checked() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "issue", "title": "Issue"})).await;
    let agg = json!({"title": "Open issues", "target": "issue",
        "calculationSpec": {"calculationBy": "entities", "func": "count"}});
    let r = app
        .post("/v1/blueprints", json!({"identifier": "svc", "title": "Svc", "aggregationProperties": {"open": agg}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body.get("warnings").is_none(), "aggregations are computed now: {}", r.body);
    assert_eq!(app.get("/v1/blueprints/svc").await.body["blueprint"]["aggregationProperties"]["open"], agg);
    let bad =
        json!({"title": "Bad", "target": "issue", "calculationSpec": {"calculationBy": "property", "func": "sum"}});
    let r = app.put("/v1/blueprints/svc", json!({"title": "Svc", "aggregationProperties": {"open": bad}})).await;
    assert_invalid(&r, "aggregationProperties.open.calculationSpec.property");
    let bad = json!({"title": "Bad", "target": "issue",
        "calculationSpec": {"calculationBy": "entities", "func": "average", "averageOf": "year"}});
    let r = app.put("/v1/blueprints/svc", json!({"title": "Svc", "aggregationProperties": {"open": bad}})).await;
    assert_invalid(&r, "aggregationProperties.open.calculationSpec.averageOf");
}

#[tokio::test]
async fn values_of_removed_properties_and_relations_disappear() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.entity("domain", json!({"identifier": "pay"})).await;
    app.entity(
        "service",
        json!({"identifier": "cart", "properties": {"language": "go", "cpu": 2}, "relations": {"domain": "pay"}}),
    )
    .await;
    let r = app
        .patch(
            "/v1/blueprints/service",
            json!({"schema": {"properties": {"cpu": null}}, "relations": {"domain": null}, "mirrorProperties": {"domainOwner": null}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = &app.get("/v1/blueprints/service/entities/cart").await.body["entity"];
    assert!(e["properties"].get("cpu").is_none(), "{e}");
    assert_eq!(e["relations"], json!({}));
    // Re-adding a property of the same name (another type) starts empty, and so does a relation.
    let r = app
        .patch(
            "/v1/blueprints/service",
            json!({"schema": {"properties": {"cpu": {"type": "string"}}},
                   "relations": {"domain": {"target": "domain", "required": false}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = &app.get("/v1/blueprints/service/entities/cart").await.body["entity"];
    assert!(e["properties"].get("cpu").is_none(), "{e}");
    assert_eq!(e["relations"], json!({}));
    let q = json!({"combinator": "and", "rules": [{"property": "cpu", "operator": "isNotEmpty"}]});
    assert_eq!(
        app.post("/v1/blueprints/service/entities/search", json!({"query": q})).await.body["entities"],
        json!([])
    );
    let q = json!({"combinator": "and", "rules": [{"operator": "relatedTo", "blueprint": "domain", "value": "pay"}]});
    assert_eq!(app.post("/v1/entities/search", q).await.body["entities"], json!([]));
    // A merge onto the stored entity is not blocked by old values.
    let r = app.patch("/v1/blueprints/service/entities/cart", json!({"properties": {"public": true}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entity"]["properties"]["public"], json!(true));
    assert_eq!(r.body["entity"]["properties"]["language"], json!("go"));
    assert!(r.body["entity"]["properties"].get("cpu").is_none(), "{}", r.body);
}

#[tokio::test]
async fn removing_a_required_relation_stops_it_blocking_deletes() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "env", "title": "Env"})).await;
    app.blueprint(json!({"identifier": "deploy", "title": "Deploy",
        "relations": {"env": {"target": "env", "required": true}}}))
        .await;
    app.entity("env", json!({"identifier": "prod"})).await;
    app.entity("deploy", json!({"identifier": "d1", "relations": {"env": "prod"}})).await;
    let r = app.patch("/v1/blueprints/deploy", json!({"relations": {"env": null}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.delete("/v1/blueprints/env/entities/prod").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.count("deploy").await, 1);
}

#[tokio::test]
async fn relation_target_many_and_item_types_are_immutable() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    let svc = app.get("/v1/blueprints/service").await.body["blueprint"].clone();
    let mut b = svc.clone();
    b["relations"]["domain"]["target"] = json!("package");
    b["relations"]["packages"]["many"] = json!(false);
    b["schema"]["properties"]["tags"]["items"]["type"] = json!("number");
    let r = app.put("/v1/blueprints/service", b).await;
    for path in ["relations.domain.target", "relations.packages.many", "schema.properties.tags.items.type"] {
        assert_invalid(&r, path);
    }
    assert_eq!(app.get("/v1/blueprints/service").await.body["blueprint"]["relations"], svc["relations"]);
}

#[tokio::test]
async fn a_change_that_breaks_another_blueprints_mirror_is_refused() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    // service.domainOwner mirrors domain.owner.
    let r = app.patch("/v1/blueprints/domain", json!({"schema": {"properties": {"owner": null}}})).await;
    assert_invalid(&r, "");
    assert!(r.body["message"].as_str().unwrap().contains("domainOwner"), "{}", r.body);
    let r = app
        .put(
            "/v1/blueprints/domain",
            json!({"title": "Domain", "schema": {"properties": {"tier": {"type": "number"}}}}),
        )
        .await;
    assert_invalid(&r, "");
    assert!(app.get("/v1/blueprints/domain").await.body["blueprint"]["schema"]["properties"].get("owner").is_some());
    // Removing the mirror first makes the change possible.
    let r = app.patch("/v1/blueprints/service", json!({"mirrorProperties": {"domainOwner": null}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.patch("/v1/blueprints/domain", json!({"schema": {"properties": {"owner": null}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_calculation_that_never_finishes_is_refused_at_save_time() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app
        .post(
            "/v1/blueprints",
            json!({"identifier": "svc", "title": "Service",
                "calculationProperties": {"loop": {"type": "number", "calculation": "def f: f; f"}}}),
        )
        .await;
    assert_invalid(&r, "calculationProperties.loop.calculation");
    assert!(detail(&r, "calculationProperties.loop.calculation").contains("did not finish"), "{}", r.body);
    assert_error(&app.get("/v1/blueprints/svc").await, 404, "not_found");
}

#[tokio::test]
async fn a_calculation_that_is_slow_on_some_entities_costs_one_budget_per_page() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "svc", "title": "Service",
        "schema": {"properties": {"spin": {"type": "boolean"}}},
        "calculationProperties": {"c": {"type": "string",
            "calculation": "if .properties.spin then (def f: f; f) else .identifier end"}}}))
        .await;
    for i in 0..5 {
        app.entity("svc", json!({"identifier": format!("s{i}"), "properties": {"spin": true}})).await;
    }
    app.entity("svc", json!({"identifier": "plain", "properties": {"spin": false}})).await;
    let started = std::time::Instant::now();
    let r = app.post("/v1/blueprints/svc/entities/search", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let elapsed = started.elapsed();
    // One 2 s budget for the page, not five.
    assert!(elapsed < std::time::Duration::from_secs(6), "took {elapsed:?}");
    for e in r.body["entities"].as_array().unwrap() {
        assert_eq!(e["properties"]["c"], Value::Null, "{e}");
    }
}
