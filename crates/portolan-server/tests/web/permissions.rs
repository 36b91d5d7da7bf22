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
