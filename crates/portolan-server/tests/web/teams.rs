//! Team pages: the list, a team's page with members and owned entities, admins creating,
//! changing and deleting teams through forms (errors at their field), members reading only,
//! and team names escaped.

use reqwest::StatusCode;
use serde_json::json;

use crate::app::{ADMIN, WebApp};

#[tokio::test]
async fn admins_manage_teams_and_a_team_page_shows_members_and_owned_entities() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut admin = app.admin().await;
    let mut member = app.user("usr_member", "member@example.com", "member").await;
    app.api("POST", "/v1/blueprints", json!({"identifier": "svc", "title": "Service"})).await;

    let list = app.get(&mut admin, "/ui/teams").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text.contains("No teams yet"), "{}", list.text);
    let csrf = list.csrf_field();
    // A refused name is shown at its field, with what was typed.
    let bad = app.post(&mut admin, "/ui/teams", &[("_csrf", &csrf), ("name", "a/b"), ("description", "")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("data-path=\"name\""), "{}", bad.text);
    assert!(bad.text.contains("value=\"a&#x2f;b\""), "what was typed stays: {}", bad.text);
    let hostile = "<img src=x onerror=alert(1)> crew";
    let r = app.post(&mut admin, "/ui/teams", &[("_csrf", &csrf), ("name", hostile), ("description", "on call")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let href = r.location();
    assert!(href.starts_with("/ui/teams/%3Cimg"), "{href}");

    app.api("POST", "/v1/blueprints/svc/entities", json!({"identifier": "cart", "team": hostile})).await;
    let page = app.get(&mut admin, &href).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("<img src=x"), "escaped");
    assert!(page.text.contains("&lt;img"), "{}", page.text);
    assert!(page.text.contains("Owned entities (1)"), "{}", page.text);
    assert!(page.unescaped().contains("href=\"/ui/entities/svc/cart\""), "{}", page.text);

    // Members: one unknown e-mail refuses the change, at its line; then a valid list.
    let csrf = page.csrf_field();
    let form =
        [("_csrf", csrf.as_str()), ("description", "on call"), ("members", "member@example.com\nghost@example.com")];
    let refused = app.post(&mut admin, &href, &form).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text.contains("data-path=\"users[1]\""), "{}", refused.text);
    assert!(refused.text.contains("ghost@example.com"), "what was typed stays");
    let form =
        [("_csrf", csrf.as_str()), ("description", "on call"), ("members", &format!("member@example.com\n{ADMIN}"))];
    assert_eq!(app.post(&mut admin, &href, &form).await.status, StatusCode::SEE_OTHER);
    let page = app.get(&mut member, &href).await;
    assert!(page.text.contains("member@example.com") && page.text.contains(ADMIN), "{}", page.text);
    assert!(!page.text.contains("id=\"team-edit\""), "members see no forms");
    let users = app.get(&mut admin, "/ui/users").await;
    assert!(users.text.contains("&lt;img"), "the users page lists each user's teams: {}", users.text);

    // Members cannot change or delete a team.
    let csrf = app.csrf(&mut member).await;
    assert_eq!(
        app.post(&mut member, &format!("{href}/delete"), &[("_csrf", &csrf)]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post(&mut member, "/ui/teams", &[("_csrf", &csrf), ("name", "mine")]).await.status,
        StatusCode::FORBIDDEN
    );
    let csrf = app.csrf(&mut admin).await;
    let r = app.post(&mut admin, &format!("{href}/delete"), &[("_csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let cart = app.api("GET", "/v1/blueprints/svc/entities/cart", json!(null)).await;
    assert_eq!(cart["entity"]["team"], json!([]), "the deleted team left the entity");
    assert_eq!(app.get(&mut admin, &href).await.status, StatusCode::NOT_FOUND);
}

/// The organization page shows quotas beside usage (admins only).
#[tokio::test]
async fn the_organization_page_shows_quotas_and_usage() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut admin = app.admin().await;
    let org = portolan_store::OrgId(crate::app::ORG.into());
    let q = portolan_store::Quotas { max_users: Some(1), max_entities: None };
    app.store.set_quotas(&org, &q).await.unwrap();
    let page = app.get(&mut admin, "/ui/organization").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.unescaped();
    assert!(text.contains("<td>Users</td><td>1</td><td>1 (reached: no more can be created)</td>"), "{text}");
    assert!(text.contains("<td>Entities</td><td>0</td><td>unlimited</td>"), "{text}");
    let mut member = app.user("usr_m", "m@example.com", "member").await;
    assert_eq!(app.get(&mut member, "/ui/organization").await.status, StatusCode::FORBIDDEN);
}

/// The users page tells service accounts from people, and the catalog lists people and teams
/// as the `_user` and `_team` entities they are.
#[tokio::test]
async fn service_accounts_show_on_the_users_page_and_people_in_the_catalog() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut admin = app.admin().await;
    let bot = "ci-bot@serviceaccounts.getport.io";
    let made = app
        .api(
            "POST",
            "/v1/blueprints/_user/entities",
            json!({"identifier": bot, "properties": {"port_type": "Service Account"}}),
        )
        .await;
    assert!(made["additionalData"]["credentials"]["clientSecret"].is_string(), "{made}");
    let users = app.get(&mut admin, "/ui/users").await;
    assert_eq!(users.status, StatusCode::OK);
    let text = users.unescaped();
    assert!(text.contains(&format!("<td>{bot}</td><td>member</td><td>Active</td><td>Service Account</td>")), "{text}");
    assert!(text.contains(&format!("<td>{ADMIN}</td><td>admin</td><td>Active</td><td>Standard</td>")), "{text}");
    let catalog = app.get(&mut admin, "/ui/catalog/_user").await;
    assert_eq!(catalog.status, StatusCode::OK);
    assert!(catalog.unescaped().contains(bot), "{}", catalog.text);
}
