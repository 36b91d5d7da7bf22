//! Pages (port-api.md §9): Port's page object round-trips through the API; widgets get ids and
//! keep them; folders hold pages; every refusal names its field.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid};

fn dashboard() -> Value {
    json!({
        "identifier": "ops", "type": "dashboard", "title": "Operations", "icon": "Dashboard",
        "pageFilters": [],
        "widgets": [{"id": "root", "type": "dashboard-widget",
            "layout": [{"height": 400, "columns": [{"id": "pie", "size": 6}, {"id": "notes", "size": 6}]}],
            "widgets": [
                {"id": "pie", "type": "entities-pie-chart", "title": "By language", "blueprint": "service",
                 "property": "language", "dataset": {"combinator": "and", "rules": []}},
                {"id": "notes", "type": "markdown", "markdown": "# Hello"},
                {"type": "entities-number-chart", "chartType": "countEntities", "calculationBy": "entities",
                 "func": "count", "blueprint": "service", "dataset": {"combinator": "and", "rules": []}}
            ]}]
    })
}

#[tokio::test]
async fn pages_round_trip_in_ports_shape_and_widgets_change_one_at_a_time() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "service", "title": "Service"})).await;
    let r = app.post("/v1/pages", dashboard()).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_eq!(r.body["identifier"], json!("ops"));
    let page = app.get("/v1/pages/ops").await.body["page"].clone();
    assert_eq!((page["title"].clone(), page["createdBy"].clone()), (json!("Operations"), json!(app.client_id)));
    let inner = page["widgets"][0]["widgets"].as_array().unwrap();
    assert_eq!(inner[0], dashboard()["widgets"][0]["widgets"][0], "widgets are kept as given");
    let generated = inner[2]["id"].as_str().unwrap().to_string();
    assert!(!generated.is_empty(), "a widget without an id gets one");

    // A GET result sent back replaces the page unchanged; ids stay.
    let r = app.put("/v1/pages/ops", page.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["page"]["widgets"][0]["widgets"][2]["id"], json!(generated));

    let r = app.patch("/v1/pages/ops/widgets/pie", json!({"property": "tier", "title": "By tier"})).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let pie = &r.body["page"]["widgets"][0]["widgets"][0];
    assert_eq!(
        (pie["property"].clone(), pie["title"].clone(), pie["blueprint"].clone()),
        (json!("tier"), json!("By tier"), json!("service"))
    );
    assert_invalid(&app.patch("/v1/pages/ops/widgets/pie", json!({"id": "other"})).await, "id");
    assert_error(&app.patch("/v1/pages/ops/widgets/ghost", json!({})).await, 404, "not_found");
    let r = app.delete("/v1/pages/ops/widgets/notes").await;
    let ids: Vec<_> =
        r.body["page"]["widgets"][0]["widgets"].as_array().unwrap().iter().map(|w| w["id"].clone()).collect();
    assert_eq!(ids, [json!("pie"), json!(generated)]);

    let list = app.get("/v1/pages").await;
    assert_eq!(list.body["pages"].as_array().unwrap().len(), 1);
    assert_eq!(app.delete("/v1/pages/ops").await.status.as_u16(), 200);
    assert_error(&app.get("/v1/pages/ops").await, 404, "not_found");
    let audits = app.audit("resources=page").await;
    let seen: Vec<_> = audits.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(seen, ["DELETE", "UPDATE", "UPDATE", "UPDATE", "CREATE"]);
}

#[tokio::test]
async fn invalid_pages_are_refused_at_their_fields_and_folders_hold_pages() {
    let Some(app) = TestApp::spawn().await else { return };
    app.blueprint(json!({"identifier": "service", "title": "Service"})).await;
    assert_invalid(&app.post("/v1/pages", json!({"identifier": "x", "type": "poster"})).await, "type");
    assert_invalid(&app.post("/v1/pages", json!({"identifier": "x", "type": "blueprint-entities"})).await, "blueprint");
    assert_invalid(
        &app.post("/v1/pages", json!({"identifier": "x", "type": "blueprint-entities", "blueprint": "ghost"})).await,
        "blueprint",
    );
    assert_invalid(&app.post("/v1/pages", json!({"type": "dashboard"})).await, "identifier");
    assert_invalid(&app.post("/v1/pages", json!({"identifier": "a b", "type": "dashboard"})).await, "identifier");
    let dup = json!({"identifier": "x", "type": "dashboard", "widgets": [{"id": "w", "type": "markdown"}, {"id": "w", "type": "markdown"}]});
    assert_invalid(&app.post("/v1/pages", dup).await, "widgets[1].id");
    assert_invalid(
        &app.post("/v1/pages", json!({"identifier": "x", "type": "dashboard", "widgets": [{"id": "w"}]})).await,
        "widgets[0].type",
    );
    assert_invalid(
        &app.post("/v1/pages", json!({"identifier": "x", "type": "dashboard", "parent": "nowhere"})).await,
        "parent",
    );
    assert_eq!(app.get("/v1/pages").await.body["pages"], json!([]), "nothing was stored");

    assert_eq!(
        app.post("/v1/pages", json!({"identifier": "team", "type": "folder", "title": "Team"})).await.status.as_u16(),
        201
    );
    let r = app
        .post(
            "/v1/pages",
            json!({"identifier": "svc", "type": "blueprint-entities", "blueprint": "service", "parent": "team"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_invalid(
        &app.post("/v1/pages", json!({"identifier": "y", "type": "dashboard", "parent": "svc"})).await,
        "parent",
    );
    let r = app.delete("/v1/pages/team").await;
    assert_error(&r, 409, "conflict");
    assert!(r.body["message"].as_str().unwrap().contains("svc"), "{}", r.body);
    assert_error(&app.post("/v1/pages", json!({"identifier": "team", "type": "folder"})).await, 409, "conflict");
    // Another organization sees none of it.
    let other = app.other_org_token("org-b").await;
    assert_eq!(app.req_as(&other, "GET", "/v1/pages", None).await.body["pages"], json!([]));
    assert_error(&app.req_as(&other, "GET", "/v1/pages/svc", None).await, 404, "not_found");
}
