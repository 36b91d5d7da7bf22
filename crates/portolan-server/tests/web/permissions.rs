//! Permissions in the web UI: a member whose read permission is scoped to their team sees only
//! their team's entities in the catalog, on entity pages, in related-entity lists and exports;
//! a write the blueprint's permissions refuse shows the reason; the audit log shows them one
//! readable entity's records at a time;
//! the self-service list offers only the actions they may run.

use reqwest::StatusCode;
use serde_json::json;

use crate::app::WebApp;

#[tokio::test]
async fn a_team_scoped_member_sees_and_changes_only_what_permissions_allow() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut member = app.user("usr_m", "m@example.com", "member").await;
    app.api("POST", "/v1/teams", json!({"name": "ops", "users": ["m@example.com"]})).await;
    app.api("POST", "/v1/teams", json!({"name": "dev"})).await;
    app.api(
        "POST",
        "/v1/blueprints",
        json!({"identifier": "svc", "title": "Service",
        "schema": {"properties": {"note": {"type": "string"}}}}),
    )
    .await;
    app.api("POST", "/v1/blueprints/svc/entities", json!({"identifier": "ours", "team": ["ops"]})).await;
    app.api("POST", "/v1/blueprints/svc/entities", json!({"identifier": "theirs-secret", "team": ["dev"]})).await;
    app.api(
        "PATCH",
        "/v1/blueprints/svc/permissions",
        json!({"entities": {"read": {"roles": ["Admin"], "ownedByTeam": true}}}),
    )
    .await;

    let catalog = app.get(&mut member, "/ui/catalog/svc").await;
    assert_eq!(catalog.status, StatusCode::OK);
    assert!(catalog.unescaped().contains("/ui/entities/svc/ours"), "{}", catalog.text);
    assert!(!catalog.text.contains("theirs-secret"), "{}", catalog.text);
    assert_eq!(app.get(&mut member, "/ui/entities/svc/ours").await.status, StatusCode::OK);
    let hidden = app.get(&mut member, "/ui/entities/svc/theirs-secret").await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "like a missing entity");
    let export = app.get(&mut member, "/ui/export/download?blueprint=svc&format=json").await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(export.text.contains("\"ours\"") && !export.text.contains("theirs-secret"), "{}", export.text);
    let view_export = app.get(&mut member, "/ui/catalog/svc/export?format=csv").await;
    assert!(!view_export.text.contains("theirs-secret"), "{}", view_export.text);
    for page in ["/ui/entity-form/svc/theirs-secret", "/ui/entities/svc/theirs-secret/edit"] {
        assert_eq!(app.get(&mut member, page).await.status, StatusCode::NOT_FOUND, "{page}");
    }
    // Writes: refused with the permission's reason, on the form.
    let form = app.get(&mut member, "/ui/entity-form/svc/ours").await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = form.csrf_field();
    let r = app
        .post(&mut member, "/ui/entity-form/svc/ours", &[("_csrf", &csrf), ("p.$title", "Ours"), ("p.note", "\"x\"")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.unescaped().contains("entities.update") || r.unescaped().contains("may not change"), "{}", r.text);
    // Dashboards count and list only what the reader may read.
    let dash = json!({"identifier": "d", "type": "dashboard", "title": "D", "widgets": [
        {"id": "n", "type": "entities-number-chart", "blueprint": "svc", "chartType": "countEntities", "func": "count"},
        {"id": "t", "type": "table-entities-explorer", "blueprint": "svc",
         "dataset": {"combinator": "and", "rules": []}}]});
    app.api("POST", "/v1/pages", dash).await;
    let page = app.get(&mut member, "/ui/dashboards/d").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("<p class=\"big-number\">1</p>"), "{}", page.text);
    assert!(!page.text.contains("theirs-secret"), "{}", page.text);
    // The audit log, as in the API: a member reads one entity's log at a time, one they may
    // read; the whole log (and another team's entity) stays closed.
    let whole = app.get(&mut member, "/ui/audit").await;
    assert_eq!(whole.status, StatusCode::FORBIDDEN);
    assert!(whole.unescaped().contains("give entity and blueprint"), "{}", whole.text);
    let page = app.get(&mut member, "/ui/entities/svc/ours").await;
    assert!(page.unescaped().contains("/ui/audit?blueprint=svc&entity=ours"), "the entity page links its records");
    let ours = app.get(&mut member, "/ui/audit?blueprint=svc&entity=ours").await;
    assert_eq!(ours.status, StatusCode::OK, "{}", ours.text);
    assert!(ours.text.contains("ours") && !ours.text.contains("theirs-secret"), "{}", ours.text);
    let theirs = app.get(&mut member, "/ui/audit?blueprint=svc&entity=theirs-secret").await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let mut admin = app.admin().await;
    let audit = app.get(&mut admin, "/ui/audit").await;
    assert!(audit.text.contains("theirs-secret"), "admins read it all");
    let catalog = app.get(&mut admin, "/ui/catalog/svc").await;
    assert!(catalog.text.contains("theirs-secret"));
    // A page the member may not read is neither listed nor shown.
    app.api("PATCH", "/v1/pages/d/permissions", json!({"read": {"roles": ["Admin"]}})).await;
    assert_eq!(app.get(&mut member, "/ui/dashboards/d").await.status, StatusCode::NOT_FOUND);
    let list = app.get(&mut member, "/ui/dashboards").await;
    assert!(!list.unescaped().contains("/ui/dashboards/d\""), "{}", list.text);
    let page = app.get(&mut admin, "/ui/dashboards/d").await;
    assert!(page.text.contains("<p class=\"big-number\">2</p>"), "{}", page.text);
}

/// The fieldset of grant `key` on a permission page.
fn grant_html(html: &str, key: &str) -> String {
    let start = html.find(&format!("data-key=\"{key}\"")).unwrap_or_else(|| panic!("no grant {key} in {html}"));
    let end = html[start..].find("</fieldset>").map_or(html.len(), |e| start + e);
    html[start..end].to_string()
}

#[tokio::test]
async fn permission_pages_show_the_grants_in_force_and_save_them_through_the_apis_rules() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut admin = app.admin().await;
    let mut member = app.user("usr_m", "m@example.com", "member").await;
    app.api("POST", "/v1/teams", json!({"name": "ops", "users": ["m@example.com"]})).await;
    app.api(
        "POST",
        "/v1/blueprints",
        json!({"identifier": "svc", "title": "Service", "schema": {"properties": {"note": {"type": "string"}}},
               "relations": {"peer": {"target": "svc", "many": false}}}),
    )
    .await;

    // A blueprint's page shows Port's defaults when nothing was set.
    let page = app.get(&mut admin, "/ui/builder/svc/permissions").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let read = grant_html(&page.text, "entities.read");
    assert!(read.contains("value=\"Member\" checked"), "members read by default: {read}");
    assert!(read.contains("<option value=\"ops\">ops</option>"), "teams to pick from: {read}");
    let update = grant_html(&page.text, "entities.update");
    assert!(
        !update.contains("value=\"Member\" checked") && update.contains("value=\"svc-moderator\" checked"),
        "{update}"
    );
    assert!(page.text.contains("data-key=\"entities.updateProperties.note\""), "{}", page.text);
    assert!(page.text.contains("data-key=\"entities.updateRelations.peer\""), "{}", page.text);

    // Saved: the API reads back what the form said.
    let csrf = page.csrf_field();
    let form = [
        ("_csrf", csrf.as_str()),
        ("entities.read.roles", "Admin"),
        ("entities.read.ownedByTeam", "on"),
        ("entities.register.roles", "Admin"),
        ("entities.update.roles", "Admin"),
        ("entities.unregister.roles", "Admin"),
        ("entities.updateProperties.note.teams", "ops"),
        ("entities.updateProperties.note.users", "Lead@Example.com\n"),
    ];
    let saved = app.post(&mut admin, "/ui/builder/svc/permissions", &form).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    assert_eq!(saved.location(), "/ui/builder/svc/permissions?saved=1");
    let got = app.api("GET", "/v1/blueprints/svc/permissions", json!(null)).await;
    let e = &got["permissions"]["entities"];
    assert_eq!(e["read"], json!({"roles": ["Admin"], "users": [], "teams": [], "ownedByTeam": true}));
    assert_eq!(e["update"]["roles"], json!(["Admin"]));
    assert_eq!(e["updateProperties"]["note"]["teams"], json!(["ops"]));
    assert_eq!(e["updateProperties"]["note"]["users"], json!(["lead@example.com"]));
    assert_eq!(e["updateRelations"], json!({}), "a granular grant left empty is not stored: {e}");
    let again = app.get(&mut admin, "/ui/builder/svc/permissions?saved=1").await;
    assert!(again.text.contains("id=\"saved\""), "{}", again.text);
    let note = grant_html(&again.text, "entities.updateProperties.note");
    assert!(
        note.contains("<option value=\"ops\" selected>ops</option>") && note.contains("lead@example.com"),
        "{note}"
    );
    // The saved permission is the one in force: the member reads only his team's entities.
    app.api("POST", "/v1/blueprints/svc/entities", json!({"identifier": "ours", "team": ["ops"]})).await;
    app.api("POST", "/v1/blueprints/svc/entities", json!({"identifier": "other"})).await;
    let catalog = app.get(&mut member, "/ui/catalog/svc").await;
    assert!(
        catalog.unescaped().contains("/ui/entities/svc/ours") && !catalog.text.contains("/other"),
        "{}",
        catalog.text
    );

    // Refused by the API's checks: the message sits in its grant, and what was typed stays.
    let bad = [
        ("_csrf", csrf.as_str()),
        ("entities.read.roles", "Admin"),
        ("entities.read.teams", "ghost"),
        ("entities.read.users", "kept@example.com"),
    ];
    let refused = app.post(&mut admin, "/ui/builder/svc/permissions", &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    let read = grant_html(&refused.unescaped(), "entities.read");
    assert!(read.contains("data-path=\"entities.read.teams[0]\"") && read.contains("there is no team"), "{read}");
    assert!(read.contains("kept@example.com") && read.contains("<option value=\"ghost\" selected>"), "{read}");
    let unchanged = app.api("GET", "/v1/blueprints/svc/permissions", json!(null)).await;
    assert_eq!(unchanged["permissions"]["entities"]["read"]["teams"], json!([]), "nothing saved");

    // A member sees the grants but may not change them.
    let seen = app.get(&mut member, "/ui/builder/svc/permissions").await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(seen.text.contains("id=\"read-only\"") && !seen.text.contains("Save permissions"), "{}", seen.text);
    let csrf_m = seen.csrf_field();
    let denied = app
        .post(&mut member, "/ui/builder/svc/permissions", &[("_csrf", &csrf_m), ("entities.read.roles", "Member")])
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text);
    assert_eq!(app.get(&mut admin, "/ui/builder/nope/permissions").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn action_and_page_permission_pages_save_policies_and_grants() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut admin = app.admin().await;
    let mut member = app.user("usr_m", "m@example.com", "member").await;
    app.api("POST", "/v1/teams", json!({"name": "ops"})).await;
    app.api("POST", "/v1/blueprints", json!({"identifier": "svc", "title": "Service", "schema": {"properties": {}}}))
        .await;
    app.api(
        "POST",
        "/v1/actions",
        json!({"identifier": "deploy", "title": "Deploy",
        "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "svc", "userInputs": {"properties": {}}},
        "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com/hook"}}),
    )
    .await;

    let form = app.get(&mut admin, "/ui/self-service/deploy").await;
    assert!(form.unescaped().contains("/ui/self-service/deploy/permissions"), "linked for admins: {}", form.text);
    let page = app.get(&mut admin, "/ui/self-service/deploy/permissions").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let execute = grant_html(&page.text, "execute");
    assert!(execute.contains("value=\"Member\" checked") && execute.contains("name=\"execute.policy\""), "{execute}");
    assert!(execute.contains("value=\"svc-moderator\""), "the action's blueprint's moderators: {execute}");
    let approve = grant_html(&page.text, "approve");
    assert!(!approve.contains("ownedByTeam"), "approve has no ownedByTeam: {approve}");
    let csrf = page.csrf_field();

    // A policy that is not JSON: refused before the API, kept as typed.
    let bad = [("_csrf", csrf.as_str()), ("execute.roles", "Member"), ("approve.policy", "{not json")];
    let refused = app.post(&mut admin, "/ui/self-service/deploy/permissions", &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    let approve = grant_html(&refused.text, "approve");
    assert!(approve.contains("data-path=\"approve.policy\"") && approve.contains("is not JSON"), "{approve}");
    assert!(approve.contains("{not json</textarea>"), "{approve}");
    // A policy the API refuses: its message, at its path.
    let wrong = [("_csrf", csrf.as_str()), ("execute.policy", r#"{"queries": {}}"#)];
    let refused = app.post(&mut admin, "/ui/self-service/deploy/permissions", &wrong).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    assert!(grant_html(&refused.text, "execute").contains("data-path=\"execute.policy"), "{}", refused.text);

    let policy = r#"{"queries": {"mine": {"combinator": "and", "rules": [{"property": "$blueprint", "operator": "=", "value": "svc"}]}},
                    "conditions": [".results.mine.entities | length > 0"]}"#;
    let good = [
        ("_csrf", csrf.as_str()),
        ("execute.roles", "Member"),
        ("execute.teams", "ops"),
        ("execute.ownedByTeam", "on"),
        ("approve.roles", "Admin"),
        ("approve.policy", policy),
    ];
    let saved = app.post(&mut admin, "/ui/self-service/deploy/permissions", &good).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let got = app.api("GET", "/v1/actions/deploy/permissions", json!(null)).await;
    let p = &got["permissions"];
    assert_eq!(p["execute"]["teams"], json!(["ops"]));
    assert_eq!(p["execute"]["ownedByTeam"], json!(true));
    assert_eq!(p["execute"].get("policy"), None, "an empty policy box is no policy: {p}");
    assert_eq!(p["approve"]["policy"]["conditions"], json!([".results.mine.entities | length > 0"]));
    let m = app.get(&mut member, "/ui/self-service/deploy/permissions").await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(!m.text.contains("Save permissions"), "{}", m.text);
    let csrf_m = m.csrf_field();
    let denied = app.post(&mut member, "/ui/self-service/deploy/permissions", &[("_csrf", &csrf_m)]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    // Pages: admins only.
    app.api(
        "POST",
        "/v1/pages",
        json!({"identifier": "ops-board", "type": "dashboard", "title": "Ops", "widgets": []}),
    )
    .await;
    let dash = app.get(&mut admin, "/ui/dashboards/ops-board").await;
    assert!(dash.unescaped().contains("/ui/dashboards/ops-board/permissions"), "{}", dash.text);
    let page = app.get(&mut admin, "/ui/dashboards/ops-board/permissions").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(!page.text.contains("ownedByTeam") && !page.text.contains(".policy"), "{}", page.text);
    let csrf = page.csrf_field();
    let form =
        [("_csrf", csrf.as_str()), ("read.roles", "Admin"), ("read.users", "m@example.com"), ("update.roles", "Admin")];
    let saved = app.post(&mut admin, "/ui/dashboards/ops-board/permissions", &form).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let got = app.api("GET", "/v1/pages/ops-board/permissions", json!(null)).await;
    assert_eq!(got["permissions"]["read"], json!({"roles": ["Admin"], "users": ["m@example.com"], "teams": []}));
    assert_eq!(app.get(&mut member, "/ui/dashboards/ops-board/permissions").await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&mut member, "/ui/dashboards/ops-board").await.status, StatusCode::OK, "named in read.users");
}
