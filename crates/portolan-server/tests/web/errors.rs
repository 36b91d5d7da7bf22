//! Errors of the API and the store keep their status and message on web pages: a conflict is a
//! 409 page, a refused value a 422 (before, the web layer mapped by number, turned conflicts of
//! the store into 400s or logged 500s, and answered a refused invitation with a 200).

use reqwest::StatusCode;

use crate::app::{Browser, Page, WebApp};

/// The invitation link on the users page after an invitation was made.
fn invite_path(page: &Page) -> String {
    let text = page.unescaped();
    let start = text.find("/ui/invite/").expect("the page shows the link");
    text[start..].chars().take_while(|c| *c != '<' && *c != '"').collect()
}

#[tokio::test]
async fn conflicts_are_409_pages_that_say_what_conflicts() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut admin = app.admin().await;
    let csrf = app.csrf(&mut admin).await;

    // A blueprint created twice through the builder's form.
    let json = r#"{"identifier": "svc", "title": "Service", "schema": {"properties": {}}}"#;
    let created = app.post(&mut admin, "/ui/builder", &[("_csrf", &csrf), ("json", json)]).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let again = app.post(&mut admin, "/ui/builder", &[("_csrf", &csrf), ("json", json)]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert!(again.unescaped().contains("already exists"), "{}", again.text);

    // Two invitations of one e-mail: the second link, used after the first, is a conflict.
    let first = app.post(&mut admin, "/ui/users", &[("_csrf", &csrf), ("email", "dev@example.com")]).await;
    let second = app.post(&mut admin, "/ui/users", &[("_csrf", &csrf), ("email", "dev@example.com")]).await;
    assert_eq!(second.status, StatusCode::OK, "no account yet: {}", second.text);
    let (first, second) = (invite_path(&first), invite_path(&second));
    assert_ne!(first, second);
    let pw = "a long enough password";
    let mut dev = Browser::default();
    let csrf_dev = app.get(&mut dev, &first).await.csrf_field();
    let done = app.post(&mut dev, &first, &[("_csrf", &csrf_dev), ("password", pw), ("confirm", pw)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let mut other = Browser::default();
    let csrf_other = app.get(&mut other, &second).await.csrf_field();
    let taken = app.post(&mut other, &second, &[("_csrf", &csrf_other), ("password", pw), ("confirm", pw)]).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
    assert!(taken.text.contains("That e-mail already has an account."), "{}", taken.text);

    // Inviting an e-mail that has an account: the users page with the reason, as a 409.
    let exists = app.post(&mut admin, "/ui/users", &[("_csrf", &csrf), ("email", "dev@example.com")]).await;
    assert_eq!(exists.status, StatusCode::CONFLICT, "{}", exists.text);
    assert!(exists.text.contains("dev@example.com already has an account."), "{}", exists.text);
    assert!(!exists.text.contains("/ui/invite/"), "no link is made");
    // Not an e-mail address: 422.
    let bad = app.post(&mut admin, "/ui/users", &[("_csrf", &csrf), ("email", "nobody")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(bad.text.contains("is not an e-mail address."), "{}", bad.text);
}

#[tokio::test]
async fn a_refused_restore_keeps_the_api_status_and_message() {
    let Some(app) = WebApp::spawn().await else { return };
    app.api(
        "POST",
        "/v1/integration",
        serde_json::json!({"installationId": "gh", "installationAppType": "github",
                                                          "config": {"resources": []}}),
    )
    .await;
    let mut admin = app.admin().await;
    let csrf = app.csrf(&mut admin).await;
    let r = app.post(&mut admin, "/ui/data-sources/gh/versions/99/restore", &[("_csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(r.text.contains("has no config version"), "{}", r.text);
}
