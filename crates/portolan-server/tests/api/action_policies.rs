//! Action permission policies (issue 13, port-api.md §8.4): an `execute` policy decides a run
//! from search queries over the catalog (their `{{ }}` values rendered over the run) and jq
//! conditions; an `approve` policy names the approvers of a run needing approval. A refusal
//! explains which condition gave what.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid, person};

async fn model(app: &TestApp) {
    app.blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {}}})).await;
    app.blueprint(json!({"identifier": "approver", "title": "Approver",
        "schema": {"properties": {"email": {"type": "string"}, "area": {"type": "string"}}}}))
        .await;
    app.entity("service", json!({"identifier": "cart"})).await;
    for (id, email, area) in [("a1", "ann@example.com", "payments"), ("a2", "bob@example.com", "search")] {
        app.entity("approver", json!({"identifier": id, "properties": {"email": email, "area": area}})).await;
    }
}

async fn action(app: &TestApp, approval: Value) {
    let a = json!({"identifier": "create_service", "title": "Create service",
        "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
            "userInputs": {"properties": {"name": {"type": "string"}, "area": {"type": "string"}}}},
        "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
            "mapping": {"identifier": "{{ .inputs.name }}"}},
        "requiredApproval": approval});
    let r = app.post("/v1/actions", a).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
}

async fn run(app: &TestApp, token: &str, name: &str, area: &str) -> crate::helpers::Res {
    let body = json!({"properties": {"name": name, "area": area}});
    app.req_as(token, "POST", "/v1/actions/create_service/runs", Some(body)).await
}

#[tokio::test]
async fn an_execute_policy_decides_the_run_from_the_catalog() {
    let Some(app) = TestApp::spawn().await else { return };
    model(&app).await;
    action(&app, json!(false)).await;
    let policy = json!({"queries": {"existing": {"combinator": "and", "rules": [
            {"property": "$blueprint", "operator": "=", "value": "service"},
            {"property": "$identifier", "operator": "=", "value": "{{ .inputs.name }}"}]}},
        "conditions": [".results.existing.entities | length == 0"]});
    let r = app
        .patch("/v1/actions/create_service/permissions", json!({"execute": {"roles": ["Member"], "policy": policy}}))
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["permissions"]["execute"]["policy"]["conditions"][0], ".results.existing.entities | length == 0");
    let dev = person(&app, "usr_dev", "dev@example.com", json!(["Member"]), json!([])).await;

    let r = run(&app, &dev, "cart", "payments").await;
    assert_error(&r, 403, "forbidden");
    let msg = r.body["message"].as_str().unwrap();
    assert!(msg.contains("execute policy gave no true condition") && msg.contains("gave false"), "{msg}");
    assert_eq!(run(&app, &dev, "checkout", "payments").await.status.as_u16(), 202, "a new name is allowed");
    // The organization credential (an administrator) is not bound by it.
    assert_eq!(
        app.post("/v1/actions/create_service/runs", json!({"properties": {"name": "cart"}})).await.status.as_u16(),
        202
    );

    // A condition that fails counts as not holding, and says why.
    let broken = json!({"execute": {"roles": ["Member"], "policy": {"queries": {"q": {"combinator": "and", "rules": []}},
        "conditions": [".results.q.entities | error(\"boom\")"]}}});
    assert_eq!(app.patch("/v1/actions/create_service/permissions", broken).await.status.as_u16(), 200);
    let r = run(&app, &dev, "other", "payments").await;
    assert_error(&r, 403, "forbidden");
    assert!(r.body["message"].as_str().unwrap().contains("failed: "), "{}", r.body);
}

#[tokio::test]
async fn an_approve_policy_names_the_approvers_of_each_run() {
    let Some(app) = TestApp::spawn().await else { return };
    model(&app).await;
    action(&app, json!({"type": "ANY"})).await;
    let policy = json!({"queries": {"approvers": {"combinator": "and", "rules": [
            {"property": "$blueprint", "operator": "=", "value": "approver"},
            {"property": "area", "operator": "=", "value": "{{ .inputs.area }}"}]}},
        "conditions": ["[.results.approvers.entities[].properties.email]"]});
    let r =
        app.patch("/v1/actions/create_service/permissions", json!({"approve": {"roles": [], "policy": policy}})).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let dev = person(&app, "usr_dev", "dev@example.com", json!(["Member"]), json!([])).await;
    let ann = person(&app, "usr_ann", "ann@example.com", json!(["Member"]), json!([])).await;
    let bob = person(&app, "usr_bob", "bob@example.com", json!(["Member"]), json!([])).await;

    let r = run(&app, &dev, "ledger", "payments").await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    let id = r.body["run"]["id"].as_str().unwrap().to_string();
    let r = app.get(&format!("/v1/actions/runs/{id}/approvers?include_pending_approvers=true")).await;
    assert_eq!(r.body["approvers"], json!([{"userId": "ann@example.com", "state": "PENDING", "description": null}]));
    // bob is not named for payments: refused, saying who is.
    let r =
        app.req_as(&bob, "PATCH", &format!("/v1/actions/runs/{id}/approval"), Some(json!({"status": "APPROVE"}))).await;
    assert_error(&r, 403, "forbidden");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("approve policy of action \"create_service\" named ann@example.com")
    );
    let r = app.req_as(&ann, "GET", "/v1/actions/runs?active=true", None).await;
    assert_eq!(r.status.as_u16(), 200);
    let r =
        app.req_as(&ann, "PATCH", &format!("/v1/actions/runs/{id}/approval"), Some(json!({"status": "APPROVE"}))).await;
    assert_eq!((r.status.as_u16(), r.body["run"]["status"].as_str()), (201, Some("IN_PROGRESS")), "{}", r.body);
    app.wait_run(&id, |r| r["status"] == "SUCCESS").await;
}

#[tokio::test]
async fn policies_are_checked_field_by_field_and_only_on_actions() {
    let Some(app) = TestApp::spawn().await else { return };
    model(&app).await;
    action(&app, json!(false)).await;
    let path = "/v1/actions/create_service/permissions";
    assert_invalid(
        &app.patch(path, json!({"approve": {"policy": {"conditions": ["true"]}}})).await,
        "approve.policy.queries",
    );
    assert_invalid(
        &app.patch(path, json!({"execute": {"policy": {"queries": {"q": {"rules": []}}, "conditions": [1]}}})).await,
        "execute.policy.conditions[0]",
    );
    assert_invalid(
        &app.patch(
            path,
            json!({"execute": {"policy": {"queries": {"bad name": {"rules": []}}, "conditions": ["true"]}}}),
        )
        .await,
        "execute.policy.queries.bad name",
    );
    assert_invalid(
        &app.patch(path, json!({"execute": {"policy": {"queries": {}, "conditions": ["true"], "x": 1}}})).await,
        "execute.policy.x",
    );
    let r = app
        .patch(
            "/v1/blueprints/service/permissions",
            json!({"entities": {"read": {"policy": {"queries": {}, "conditions": []}}}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("action permissions only"), "{}", r.body);
    // null removes a policy.
    let with = json!({"execute": {"policy": {"queries": {"q": {"rules": []}}, "conditions": ["true"]}}});
    assert_eq!(app.patch(path, with).await.status.as_u16(), 200);
    let r = app.patch(path, json!({"execute": {"roles": ["Member"], "policy": null}})).await;
    assert!(r.body["permissions"]["execute"].get("policy").is_none(), "{}", r.body);
}
