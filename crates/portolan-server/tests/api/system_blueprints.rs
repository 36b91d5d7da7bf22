//! The system blueprints `_user` and `_team` (port-api.md §8.2): their entities mirror the
//! organization's people and teams both ways, service accounts are made as `_user` entities
//! with one-time credentials and disabled at once, and the blueprints can be extended but not
//! changed or deleted.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_error, assert_invalid, detail, fetch_token, person};

const BOT: &str = "ci-bot@serviceaccounts.getport.io";

#[tokio::test]
async fn service_accounts_are_made_as_user_entities_and_disabled_at_once() {
    let Some(app) = TestApp::spawn().await else { return };
    app.teams(&["platform"]).await;
    let body = json!({"identifier": BOT, "team": ["platform"],
        "properties": {"port_type": "Service Account", "port_role": "Member", "status": "Active"}});
    let r = app.post("/v1/blueprints/_user/entities", body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["entity"]["properties"]["port_type"], "Service Account", "{}", r.body);
    assert_eq!(r.body["entity"]["team"], json!(["platform"]), "{}", r.body);
    let creds = &r.body["additionalData"]["credentials"];
    let (id, secret) = (creds["clientId"].as_str().unwrap(), creds["clientSecret"].as_str().unwrap());
    let user = app.get(&format!("/v1/users/{BOT}")).await;
    assert_eq!(
        (&user.body["user"]["type"], &user.body["user"]["teams"]),
        (&json!("Service Account"), &json!(["platform"]))
    );
    assert_eq!(app.get("/v1/teams/platform").await.body["team"]["users"][0]["email"], BOT);

    // The credentials act as the account (a Member): reads yes, admin routes no.
    let token = fetch_token(&app.http, &app.base, id, secret).await;
    assert_eq!(app.req_as(&token, "GET", "/v1/blueprints", None).await.status, StatusCode::OK);
    assert_error(&app.req_as(&token, "GET", "/v1/apps", None).await, 403, "forbidden");
    // The secret was shown once: the entity read back does not carry it.
    let again = app.get(&format!("/v1/blueprints/_user/entities/{BOT}")).await;
    assert!(again.body.get("additionalData").is_none() && !again.body.to_string().contains(secret));

    // status Disabled through the entity revokes the token at once.
    let r =
        app.patch(&format!("/v1/blueprints/_user/entities/{BOT}"), json!({"properties": {"status": "Disabled"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entity"]["properties"]["status"], "Disabled");
    assert_error(&app.req_as(&token, "GET", "/v1/blueprints", None).await, 401, "unauthorized");
    assert_eq!(app.get(&format!("/v1/users/{BOT}")).await.body["user"]["status"], "Disabled");

    // Refusals say which field and why.
    let standard = json!({"identifier": "dev@example.com", "properties": {"port_type": "Standard"}});
    let r = app.post("/v1/blueprints/_user/entities", standard).await;
    assert_invalid(&r, "properties.port_type");
    assert!(detail(&r, "properties.port_type").contains("POST /v1/users/invite"), "{}", r.body);
    let r = app
        .post(
            "/v1/blueprints/_user/entities",
            json!({"identifier": "bot@example.com",
        "properties": {"port_type": "Service Account"}}),
        )
        .await;
    assert_invalid(&r, "identifier");
    assert_error(&app.post("/v1/blueprints/_user/entities", body.clone()).await, 409, "conflict");
    let r = app
        .patch(&format!("/v1/blueprints/_user/entities/{BOT}"), json!({"properties": {"port_type": "Standard"}}))
        .await;
    assert_invalid(&r, "properties.port_type");
    let r = app
        .post(
            "/v1/blueprints/_user/entities/bulk",
            json!({"entities": [
        {"identifier": "two@serviceaccounts.getport.io", "properties": {"port_type": "Service Account"}}]}),
        )
        .await;
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("one at a time"), "{}", r.body);
    assert!(app.get("/v1/users/two@serviceaccounts.getport.io").await.status == StatusCode::NOT_FOUND);

    // A member cannot make accounts; deleting the entity removes the account.
    let member = person(&app, "usr_m", "m@example.com", json!(["Member"]), json!([])).await;
    let r = app
        .req_as(
            &member,
            "POST",
            "/v1/blueprints/_user/entities",
            Some(json!({"identifier": "x@serviceaccounts.getport.io", "properties": {"port_type": "Service Account"}})),
        )
        .await;
    assert_error(&r, 403, "forbidden");
    assert_eq!(app.delete(&format!("/v1/blueprints/_user/entities/{BOT}")).await.status, StatusCode::OK);
    assert_error(&app.get(&format!("/v1/users/{BOT}")).await, 404, "not_found");
    assert!(app.get(&format!("/v1/blueprints/_user/entities/{BOT}")).await.status == StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn user_and_team_entities_follow_people_and_teams_both_ways() {
    let Some(app) = TestApp::spawn().await else { return };
    app.web_user("usr_a", "ann@example.com", "admin").await;
    let r =
        app.post("/v1/teams", json!({"name": "platform", "description": "infra", "users": ["ann@example.com"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ann = app.get("/v1/blueprints/_user/entities/ann@example.com").await;
    assert_eq!(ann.body["entity"]["team"], json!(["platform"]), "{}", ann.body);
    assert_eq!(ann.body["entity"]["properties"]["port_role"], "Admin");
    let t = app.get("/v1/blueprints/_team/entities/platform").await;
    assert_eq!(
        (&t.body["entity"]["properties"]["size"], &t.body["entity"]["properties"]["description"]),
        (&json!(1), &json!("infra"))
    );

    // Extended with a property of the organization's own, kept when the person changes.
    let r = app.patch("/v1/blueprints/_user", json!({"schema": {"properties": {"slack": {"type": "string"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.patch("/v1/blueprints/_user/entities/ann@example.com", json!({"properties": {"slack": "@ann"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.patch("/v1/users/ann@example.com", json!({"firstName": "Ann", "lastName": "Lee"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ann = app.get("/v1/blueprints/_user/entities/ann@example.com").await;
    assert_eq!(
        (&ann.body["entity"]["title"], &ann.body["entity"]["properties"]["slack"]),
        (&json!("Ann Lee"), &json!("@ann"))
    );

    // Teams made, changed and removed through their entities.
    let r = app
        .post("/v1/blueprints/_team/entities", json!({"identifier": "sre", "properties": {"description": "on call"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(app.get("/v1/teams/sre").await.body["team"]["description"], "on call");
    let r = app.patch("/v1/blueprints/_team/entities/sre", json!({"properties": {"description": "pager"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.get("/v1/teams/sre").await.body["team"]["description"], "pager");
    // The person's teams through `$team`.
    let r = app.patch("/v1/blueprints/_user/entities/ann@example.com", json!({"team": ["platform", "sre"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.get("/v1/users/ann@example.com").await.body["user"]["teams"], json!(["platform", "sre"]));
    assert_eq!(app.get("/v1/blueprints/_team/entities/sre").await.body["entity"]["properties"]["size"], 1);
    // A replacing write keeps the person's fields it does not name (no teams lost, no type change).
    let r = app.put("/v1/blueprints/_user/entities/ann@example.com", json!({"properties": {"slack": "@ann2"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["entity"]["team"], &r.body["entity"]["properties"]["port_type"]),
        (&json!(["platform", "sre"]), &json!("Standard"))
    );
    assert_eq!(app.get("/v1/users/ann@example.com").await.body["user"]["teams"], json!(["platform", "sre"]));
    // Errors are named as the entity names them.
    let r = app.patch("/v1/blueprints/_user/entities/ann@example.com", json!({"team": ["platform", "ghost"]})).await;
    assert_invalid(&r, "team[1]");
    // The last admin stays one, through the entity too.
    let r = app
        .patch("/v1/blueprints/_user/entities/ann@example.com", json!({"properties": {"port_role": "Member"}}))
        .await;
    assert_error(&r, 422, "last_admin");
    assert_eq!(app.delete("/v1/blueprints/_team/entities/sre").await.status, StatusCode::OK);
    assert_error(&app.get("/v1/teams/sre").await, 404, "not_found");
    assert_eq!(app.get("/v1/users/ann@example.com").await.body["user"]["teams"], json!(["platform"]));

    // A team named with a space (Port's rule allows it; entity identifiers do not): its entity
    // is still written and deleted through the entity API.
    assert_eq!(app.post("/v1/teams", json!({"name": "Team A"})).await.status, StatusCode::CREATED);
    let r = app.patch("/v1/blueprints/_team/entities/Team%20A", json!({"properties": {"description": "a"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.get("/v1/teams/Team%20A").await.body["team"]["description"], "a");
    let r = app.post("/v1/blueprints/_team/bulk/entities/delete", json!({"entities": ["Team A", "ghost"]})).await;
    assert_error(&r, 404, "not_found");
    assert_eq!(app.get("/v1/teams/Team%20A").await.status, StatusCode::OK, "all or nothing");
    // Searchable like any entity.
    let r = app
        .post(
            "/v1/blueprints/_user/entities/search",
            json!({"query": {"combinator": "and", "rules": [
        {"property": "port_role", "operator": "=", "value": "Admin"}]}}),
        )
        .await;
    assert_eq!(crate::helpers::ids(&r.body), ["ann@example.com"], "{}", r.body);
}

#[tokio::test]
async fn system_blueprints_can_be_extended_not_changed_or_deleted() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app.get("/v1/blueprints").await;
    let ids: Vec<&serde_json::Value> =
        r.body["blueprints"].as_array().unwrap().iter().map(|b| &b["identifier"]).collect();
    assert_eq!(ids, [&json!("_team"), &json!("_user")], "every organization has them: {}", r.body);
    let r = app.get("/v1/blueprints/system/_user/structure").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["blueprint"]["schema"]["properties"]["port_type"]["enum"],
        json!(["Standard", "Service Account"])
    );
    assert_error(&app.get("/v1/blueprints/system/service/structure").await, 404, "not_found");

    assert_error(&app.delete("/v1/blueprints/_user").await, 403, "forbidden");
    assert_error(&app.delete("/v1/blueprints/_team/all-entities").await, 403, "forbidden");
    let r = app.patch("/v1/blueprints/_user", json!({"schema": {"properties": {"port_role": null}}})).await;
    assert_invalid(&r, "schema.properties.port_role");
    let r = app
        .patch(
            "/v1/blueprints/_user",
            json!({"schema": {"properties": {"status": {"type": "string",
        "enum": ["Active"]}}}}),
        )
        .await;
    assert_invalid(&r, "schema.properties.status");
    let r = app
        .patch(
            "/v1/blueprints/_user",
            json!({"schema": {"properties": {"slack": {"type": "string"}},
        "required": ["slack"]}}),
        )
        .await;
    assert_invalid(&r, "schema.required");
    let r = app.patch("/v1/blueprints/_user/properties/status/rename", json!({"newPropertyName": "state"})).await;
    assert_invalid(&r, "schema.properties.status");
    // A relation of the organization's own is fine.
    app.blueprint(json!({"identifier": "service", "title": "Service"})).await;
    let r =
        app.patch("/v1/blueprints/_user", json!({"relations": {"owns": {"target": "service", "many": true}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.blueprint_ids().await, ["service"], "the helper lists the organization's own");
}
