//! Users and teams (port-api.md §8.2): teams CRUD with members, renames and deletions that
//! follow into entities, entity writes that name only existing teams (every write path),
//! users with roles, status and teams, invitations, audit and tenancy.

use portolan_store::Session;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid, detail};

fn emails(team: &Value) -> Vec<&str> {
    team["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn teams_are_created_changed_renamed_and_deleted_with_entities_following() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    app.web_user("usr_a", "ann@example.com", "admin").await;
    app.web_user("usr_b", "bob@example.com", "member").await;

    let r =
        app.post("/v1/teams", json!({"name": "Platform", "description": "infra", "users": ["Ann@Example.com"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body["team"]["id"].as_str().unwrap().starts_with("team_"));
    assert_eq!(r.body["team"]["provider"], "Port");
    assert_eq!(
        r.body["team"]["users"][0],
        json!({"email": "ann@example.com", "firstName": null, "lastName": null, "status": "Active"})
    );
    assert_error(&app.post("/v1/teams", json!({"name": "Platform"})).await, 409, "conflict");
    assert_invalid(&app.post("/v1/teams", json!({"name": "a/b"})).await, "name");
    assert_invalid(&app.post("/v1/teams", json!({"description": "x"})).await, "name");
    let r = app.post("/v1/teams", json!({"name": "web", "users": ["ann@example.com", "nobody@example.com"]})).await;
    assert_invalid(&r, "users[1]");
    assert!(detail(&r, "users[1]").contains("invite them first"), "{}", r.body);
    assert_invalid(&app.post("/v1/teams", json!({"name": "web", "colour": "red"})).await, "colour");
    assert_eq!(app.post("/v1/teams", json!({"name": "web"})).await.status, StatusCode::CREATED);

    // Entities name existing teams only, on every write route.
    let svc = |id: &str, team: Value| json!({"identifier": id, "team": team, "properties": {"language": "go"}});
    let r = app.post("/v1/blueprints/service/entities", svc("s1", json!("ghost"))).await;
    assert_invalid(&r, "team");
    assert!(detail(&r, "team").contains("\"ghost\" is not a team of this organization"), "{}", r.body);
    app.entity("service", svc("s1", json!(["Platform", "web"]))).await;
    app.entity("service", svc("s2", json!("web"))).await;
    let r = app
        .post(
            "/v1/blueprints/service/entities/bulk",
            json!({"entities": [svc("s3", json!("web")), svc("s4", json!(["web", "nope"]))]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 207, "{}", r.body);
    assert_eq!(r.body["entities"][0]["created"], true, "{}", r.body);
    assert_eq!(r.body["errors"][0]["index"], 1, "{}", r.body);
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("\"nope\" is not a team"), "{}", r.body);
    // `$team` search.
    let r = app
        .post(
            "/v1/blueprints/service/entities/search",
            json!({"query": {"combinator": "and",
            "rules": [{"property": "$team", "operator": "containsAny", "value": ["Platform"]}]}}),
        )
        .await;
    assert_eq!(crate::helpers::ids(&r.body), ["s1"], "{}", r.body);

    // PATCH: members replaced, description changed, the rest kept.
    let r = app.patch("/v1/teams/Platform", json!({"users": ["bob@example.com", "ann@example.com"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(emails(&r.body["team"]), ["ann@example.com", "bob@example.com"]);
    assert_eq!(r.body["team"]["description"], "infra");
    // Rename: entities and users follow.
    let r = app.patch("/v1/teams/Platform", json!({"name": "platform-eng"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_error(&app.get("/v1/teams/Platform").await, 404, "not_found");
    let s1 = app.get("/v1/blueprints/service/entities/s1").await;
    assert_eq!(s1.body["entity"]["team"], json!(["platform-eng", "web"]), "{}", s1.body);
    let bob = app.get("/v1/users/bob@example.com").await;
    assert_eq!(bob.body["user"]["teams"], json!(["platform-eng"]), "{}", bob.body);
    assert_error(&app.patch("/v1/teams/platform-eng", json!({"name": "web"})).await, 409, "conflict");
    // PUT clears what it leaves out.
    let r = app.put("/v1/teams/platform-eng", json!({"name": "platform-eng"})).await;
    assert_eq!(
        (r.body["team"]["description"].clone(), r.body["team"]["users"].clone()),
        (Value::Null, json!([])),
        "{}",
        r.body
    );
    // DELETE: entities lose it.
    assert_eq!(app.delete("/v1/teams/web").await.status, StatusCode::OK);
    assert_eq!(app.get("/v1/blueprints/service/entities/s1").await.body["entity"]["team"], json!(["platform-eng"]));
    assert_eq!(app.get("/v1/blueprints/service/entities/s2").await.body["entity"]["team"], json!([]));
    assert_error(&app.delete("/v1/teams/web").await, 404, "not_found");
    let list = app.get("/v1/teams").await;
    let names: Vec<&str> = list.body["teams"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["platform-eng"]);

    let audits = app.audit("resources=team").await;
    let actions: Vec<&str> = audits.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["DELETE", "UPDATE", "UPDATE", "UPDATE", "CREATE", "CREATE"], "{audits:?}");
    // Another organization sees none of it, and cannot use the team.
    let other = app.other_org_token("org-b").await;
    assert_eq!(app.req_as(&other, "GET", "/v1/teams", None).await.body["teams"], json!([]));
    let r = app.req_as(&other, "GET", "/v1/teams/platform-eng", None).await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test]
async fn users_are_listed_changed_disabled_and_invited() {
    let Some(app) = TestApp::spawn().await else { return };
    let org = app.web_user("usr_a", "ann@example.com", "admin").await;
    app.web_user("usr_b", "bob@example.com", "member").await;
    app.store
        .create_session(&Session {
            id_hash: "sb".into(),
            org,
            user_id: "usr_b".into(),
            csrf: "c".into(),
            created_at: 1,
            last_seen: 1,
        })
        .await
        .unwrap();
    assert_eq!(app.post("/v1/teams", json!({"name": "core"})).await.status, StatusCode::CREATED);

    let r = app.get("/v1/users").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let users = r.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["email"], "ann@example.com");
    assert_eq!(users[0]["roles"], json!([{"name": "Admin"}]));
    assert_eq!(users[1]["roles"], json!([{"name": "Member"}]));
    assert_error(&app.get("/v1/users/nobody@example.com").await, 404, "not_found");

    let r = app
        .patch(
            "/v1/users/Bob@example.com",
            json!({"roles": ["Admin"], "teams": ["core"], "firstName": "Bob", "status": "Disabled"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user"]["roles"], json!([{"name": "Admin"}]));
    assert_eq!(
        (r.body["user"]["teams"].clone(), r.body["user"]["status"].clone()),
        (json!(["core"]), json!("Disabled"))
    );
    assert!(app.store.session("sb").await.unwrap().is_none(), "disabling ends the user's sessions");
    assert_eq!(emails(&app.get("/v1/teams/core").await.body["team"]), ["bob@example.com"]);

    // Refusals name the field; nothing changes.
    assert_invalid(&app.patch("/v1/users/bob@example.com", json!({"teams": ["ghost"]})).await, "teams[0]");
    assert_invalid(&app.patch("/v1/users/bob@example.com", json!({"roles": ["Owner"]})).await, "roles[0]");
    assert_invalid(&app.patch("/v1/users/bob@example.com", json!({"roles": ["Admin", "Member"]})).await, "roles");
    let r = app.patch("/v1/users/bob@example.com", json!({"roles": ["ghost-moderator"]})).await;
    assert_invalid(&r, "roles");
    assert_invalid(&app.patch("/v1/users/bob@example.com", json!({"status": "Gone"})).await, "status");
    assert_invalid(&app.patch("/v1/users/bob@example.com", json!({"email": "x@example.com"})).await, "email");
    assert_error(&app.patch("/v1/users/nobody@example.com", json!({"firstName": "x"})).await, 404, "not_found");
    // The last active admin keeps the role (bob is an admin now, but disabled).
    let r = app.patch("/v1/users/ann@example.com", json!({"roles": ["Member"]})).await;
    assert_error(&r, 422, "last_admin");
    let r = app.patch("/v1/users/bob@example.com", json!({"status": "Active"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.patch("/v1/users/ann@example.com", json!({"roles": ["Member"]})).await;
    assert_eq!(r.status, StatusCode::OK, "now another admin is active: {}", r.body);

    // Invitations: a link answered once, teams joined at once.
    let r = app
        .post(
            "/v1/users/invite",
            json!({"invitee": {"email": "New@Example.com", "roles": ["Member"], "teams": ["core"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body["invitation"]["path"].as_str().unwrap().starts_with("/ui/invite/"), "{}", r.body);
    assert_eq!(r.body["invitation"]["email"], "new@example.com");
    let team = app.get("/v1/teams/core").await;
    assert_eq!(emails(&team.body["team"]), ["bob@example.com", "new@example.com"]);
    assert_eq!(team.body["team"]["users"][1]["status"], "Invited");
    assert_invalid(
        &app.post("/v1/users/invite", json!({"invitee": {"email": "x@example.com", "teams": ["ghost"]}})).await,
        "invitee.teams[0]",
    );
    assert_invalid(&app.post("/v1/users/invite", json!({"invitee": {"email": "not-an-email"}})).await, "invitee.email");
    assert_error(
        &app.post("/v1/users/invite", json!({"invitee": {"email": "ann@example.com"}})).await,
        409,
        "conflict",
    );

    let audits = app.audit("resources=user").await;
    assert_eq!(audits.len(), 3, "{audits:?}");
    // Another organization sees no user.
    let other = app.other_org_token("org-b").await;
    assert_eq!(app.req_as(&other, "GET", "/v1/users", None).await.body["users"], json!([]));
    assert_error(&app.req_as(&other, "GET", "/v1/users/ann@example.com", None).await, 404, "not_found");
}

/// Quotas (set by the operator; here through the store as `portolan org quota` does): every
/// entity write route refuses creations past the entity quota with a message naming it, keeps
/// updates, and shows quotas and usage on `GET /v1/organization`; invitations stop at the user
/// quota.
#[tokio::test]
async fn quotas_refuse_creations_past_them_and_are_visible() {
    let Some(app) = TestApp::spawn().await else { return };
    app.model().await;
    let org = app.web_user("usr_a", "ann@example.com", "admin").await;
    let quotas = portolan_store::Quotas { max_users: Some(1), max_entities: Some(2) };
    app.store.set_quotas(&org, &quotas).await.unwrap();
    app.entity("package", json!({"identifier": "p1"})).await;
    let r = app
        .post("/v1/blueprints/package/entities/bulk", json!({"entities": [{"identifier": "p2"}, {"identifier": "p3"}]}))
        .await;
    assert_eq!(r.status.as_u16(), 207, "{}", r.body);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2, "2 more would make 3 > 2: {}", r.body);
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("quota of 2 entities"), "{}", r.body);
    app.entity("package", json!({"identifier": "p2"})).await;
    let r = app.post("/v1/blueprints/package/entities", json!({"identifier": "p3"})).await;
    assert_error(&r, 422, "invalid_request");
    assert!(r.body["message"].as_str().unwrap().contains("portolan org quota"), "says who can raise it: {}", r.body);
    let r = app.post("/v1/blueprints/package/entities?upsert=true", json!({"identifier": "p1", "title": "One"})).await;
    assert_eq!(r.status, StatusCode::OK, "updates stay possible: {}", r.body);

    let o = app.get("/v1/organization").await;
    assert_eq!(o.body["organization"]["quotas"], json!({"maxUsers": 1, "maxEntities": 2}), "{}", o.body);
    assert_eq!(o.body["organization"]["usage"], json!({"users": 1, "entities": 2}), "{}", o.body);
    let r = app.post("/v1/users/invite", json!({"invitee": {"email": "new@example.com"}})).await;
    assert_error(&r, 422, "invalid_request");
    assert!(r.body["message"].as_str().unwrap().contains("quota of 1 users"), "{}", r.body);
    // The organization cannot lift its own quota.
    let r = app.patch("/v1/organization", json!({"quotas": {"maxEntities": null}})).await;
    assert_invalid(&r, "quotas");
}
