//! Saved initial filter of a catalog page (admins save it with CSRF; opening the page without
//! filter parameters applies it, with a note and a `clear` link that shows everything) and the
//! audit log page's paging (a cursor on the audit id: different rows per page, never all).

use reqwest::StatusCode;
use serde_json::json;

use crate::app::{Browser, ORG, PASSWORD, WebApp};

async fn model(app: &WebApp) {
    app.api(
        "POST",
        "/v1/blueprints",
        json!({"identifier": "svc", "title": "Svc",
        "schema": {"properties": {"language": {"type": "string", "title": "Language"}, "cpu": {"type": "number"}}}}),
    )
    .await;
    for (id, lang, cpu) in [("cart", "go", 4), ("auth", "rust", 1), ("search", "go", 8), ("mail", "rust", 2)] {
        app.api(
            "POST",
            "/v1/blueprints/svc/entities",
            json!({"identifier": id, "title": id, "properties": {"language": lang, "cpu": cpu}}),
        )
        .await;
    }
}

fn rows(html: &str) -> Vec<String> {
    let body = &html[html.find("id=\"catalog-table\"").expect("the table")..];
    let mut out: Vec<String> =
        body.split("<a href=\"/ui/entities/svc/").skip(1).map(|p| p.split('"').next().unwrap().to_string()).collect();
    out.sort();
    out
}

fn href_after(text: &str, marker: &str) -> String {
    let t = &text[text.find(marker).unwrap_or_else(|| panic!("{marker} in {text}"))..];
    let h = t.split("href=\"").nth(1).unwrap().split('"').next().unwrap();
    h.replace("&amp;", "&").replace("&#x2f;", "/")
}

#[tokio::test]
async fn an_admin_saves_the_initial_filter_and_an_explicit_empty_filter_shows_everything() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let plain = app.get(&mut b, "/ui/catalog/svc").await;
    assert_eq!(rows(&plain.text), ["auth", "cart", "mail", "search"]);
    assert!(!plain.text.contains("id=\"initial-filter\""), "no initial filter yet");
    let view = app.get(&mut b, "/ui/catalog/svc?fp=language&fo=%3D&fv=rust").await;
    assert!(view.text.contains("id=\"initial-filter-form\""), "admins may save the filter");
    let csrf = view.csrf_field();
    let form = [("fp", "language"), ("fo", "="), ("fv", "rust"), ("cols", "$identifier,$title,language")];

    // CSRF is required.
    let mut no_csrf = form.to_vec();
    no_csrf.push(("_csrf", "wrong"));
    assert_eq!(app.post(&mut b, "/ui/catalog/svc/initial-filter", &no_csrf).await.status, StatusCode::FORBIDDEN);
    assert!(app.store.initial_filter(&portolan_store::OrgId(ORG.into()), "svc").await.unwrap().is_none());

    let mut ok = form.to_vec();
    ok.push(("_csrf", &csrf));
    let saved = app.post(&mut b, "/ui/catalog/svc/initial-filter", &ok).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    assert!(saved.location().starts_with("/ui/catalog/svc?"), "{}", saved.location());

    // Opening the page plainly applies it, with a note and a clear link.
    let opened = app.get(&mut b, "/ui/catalog/svc").await;
    assert_eq!(rows(&opened.text), ["auth", "mail"], "the initial filter applies");
    let note = &opened.text[opened.text.find("id=\"initial-filter\"").expect("the note")..];
    assert!(note.starts_with("id=\"initial-filter\">Initial filter: Language = rust — <a"), "{note}");
    let clear = href_after(&opened.text, "id=\"initial-filter\"");
    assert!(clear.contains("nf=1"), "{clear}");
    let cleared = app.get(&mut b, &clear).await;
    assert_eq!(rows(&cleared.text), ["auth", "cart", "mail", "search"], "an explicit empty filter shows all");
    assert!(!cleared.text.contains("id=\"initial-filter\""));
    // Links of the unfiltered view stay unfiltered (they carry nf=1).
    let sort = href_after(&cleared.text, "data-column=\"$identifier\"");
    assert!(sort.contains("nf=1"), "{sort}");
    assert_eq!(rows(&app.get(&mut b, &sort).await.text).len(), 4);
    // An explicit filter wins over the saved one; the filter form's empty submit shows all.
    assert_eq!(rows(&app.get(&mut b, "/ui/catalog/svc?fp=cpu&fo=%3E&fv=3").await.text), ["cart", "search"]);
    assert_eq!(rows(&app.get(&mut b, "/ui/catalog/svc?q=&fp=&fo=%3D&fv=").await.text).len(), 4);

    // Members see it applied but cannot change it.
    let hash = portolan_server::web::session::hash_password_with((8, 1), PASSWORD).unwrap();
    app.store
        .create_user(&portolan_store::User {
            id: "usr_member".into(),
            org: portolan_store::OrgId(ORG.into()),
            email: "member@example.com".into(),
            password_hash: hash,
            role: "member".into(),
            created_at: "2024-01-01T00:00:00.000Z".into(),
        })
        .await
        .unwrap();
    let (mut m, _) = app.sign_in_as("member@example.com", PASSWORD).await;
    let seen = app.get(&mut m, "/ui/catalog/svc").await;
    assert_eq!(rows(&seen.text), ["auth", "mail"]);
    assert!(!seen.text.contains("id=\"initial-filter-form\""));
    let mcsrf = seen.csrf_field();
    let denied = app.post(&mut m, "/ui/catalog/svc/initial-filter", &[("_csrf", &mcsrf), ("remove", "1")]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    // The admin removes it: the page shows everything again.
    let removed = app.post(&mut b, "/ui/catalog/svc/initial-filter", &[("_csrf", &csrf), ("remove", "1")]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(rows(&app.get(&mut b, "/ui/catalog/svc").await.text).len(), 4);
    let mut anon = Browser::default();
    assert_eq!(app.post(&mut anon, "/ui/catalog/svc/initial-filter", &ok).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_initial_filter_with_hostile_values_renders_inert() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await;
    let mut b = app.admin().await;
    let csrf = app.csrf(&mut b).await;
    let evil = "<script>alert(1)</script>";
    let res = app
        .post(
            &mut b,
            "/ui/catalog/svc/initial-filter",
            &[
                ("_csrf", &csrf),
                ("q", evil),
                ("fp", "language"),
                ("fo", "="),
                ("fv", "\"><img src=x onerror=alert(2)>"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let p = app.get(&mut b, "/ui/catalog/svc").await;
    assert!(p.text.contains("id=\"initial-filter\""), "{}", p.text);
    assert!(!p.text.contains("<script>alert(1)") && !p.text.contains("<img src=x"), "escaped");
}

/// The identifiers of the audit page's rows, in order.
fn audit_ids(text: &str) -> Vec<String> {
    let t = &text[text.find("id=\"audit\"").expect("the audit table")..];
    t.split("<tr><td>").skip(1).map(|r| r.split("</td><td>").nth(4).unwrap().to_string()).collect()
}

/// The href of the audit page's "Older" link.
fn older_link(text: &str) -> Option<String> {
    let i = text.find("id=\"audit-older\"")?;
    let href = text[..i].rsplit("href=\"").next()?.split('"').next()?;
    Some(href.replace("&amp;", "&").replace("&#x2f;", "/"))
}

#[tokio::test]
async fn the_audit_page_pages_with_an_older_link() {
    let Some(app) = WebApp::spawn().await else { return };
    model(&app).await; // 1 blueprint + 4 entities: 5 records
    let mut b = app.admin().await;
    let first = app.get(&mut b, "/ui/audit?limit=2").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(audit_ids(&first.text), ["mail", "search"], "newest first");
    assert!(!first.text.contains("id=\"audit-newest\""));
    let second = app.get(&mut b, &older_link(&first.text).expect("older records")).await;
    assert_eq!(audit_ids(&second.text), ["auth", "cart"], "a different page");
    assert!(second.text.contains("id=\"audit-newest\""));
    let third = app.get(&mut b, &older_link(&second.text).expect("older records")).await;
    // And the admin's `_user` entity, made with the account.
    assert_eq!(audit_ids(&third.text), ["svc", "admin@example.com"]);
    assert!(older_link(&third.text).is_none(), "the last page");
    // Filters stay on the older pages.
    let entities = app.get(&mut b, "/ui/audit?limit=1&resources=entity").await;
    let next = older_link(&entities.text).expect("older entity records");
    assert!(next.contains("resources=entity") && next.contains("before=aud_"), "{next}");
    let page2 = app.get(&mut b, &next).await;
    assert_eq!(audit_ids(&page2.text), ["search"]);
}
