//! Findings 3 and 5 of the 2026-12 security review: names echoed by error pages are escaped
//! (on b217287 `message_page` rendered without auto-escape, so `/ui/entities/<script src=…>`
//! loaded the site's htmx into an admin's browser), and `next` never leaves this origin (on
//! b217287 `next=/%09/evil.example` redirected off-site and `next` with CR/LF was a 500).

use reqwest::StatusCode;

use crate::app::WebApp;
use portolan_server::web::urlencode;

/// Markup that, unescaped, loads htmx and makes it act on the page.
const PAYLOAD: &str =
    "<script src=\"/ui/assets/htmx.min.js\"></script><b hx-get=\"/ui/users\" hx-trigger=\"load\">x</b>";

fn assert_inert(path: &str, text: &str) {
    assert!(!text.contains("<script src=\"/ui/assets/htmx.min.js\"></script><b"), "{path}: raw payload in\n{text}");
    assert!(!text.contains("<b hx-get"), "{path}: raw payload in\n{text}");
    assert!(text.contains("&lt;script"), "{path}: the name is shown, escaped:\n{text}");
}

#[tokio::test]
async fn not_found_pages_escape_the_requested_name() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut b = app.admin().await;
    let p = urlencode(PAYLOAD);
    for path in [
        format!("/ui/entities/{p}/x"),
        format!("/ui/entities/{p}/new"),
        format!("/ui/catalog/{p}"),
        format!("/ui/catalog/{p}/export"),
        format!("/ui/builder/{p}"),
        format!("/ui/data-sources/{p}"),
        format!("/ui/data-sources/webhooks/{p}"),
        format!("/ui/data-sources/{p}/mapping"),
        format!("/ui/export/download?blueprint={p}"),
        format!("/ui/export/download?blueprint={p}&format=json"),
    ] {
        let page = app.get(&mut b, &path).await;
        assert!(page.status.is_client_error(), "{path}: {}", page.status);
        assert_inert(&path, &page.text);
    }
}

#[tokio::test]
async fn next_stays_on_this_origin() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut b = app.admin().await;
    for next in ["/\t/evil.example", "/\r\n/evil.example", "/\\evil.example", "//evil.example", "https://evil.example"]
    {
        // Already signed in: the sign-in page forwards to `next`.
        let page = app.get(&mut b, &format!("/ui/signin?next={}", urlencode(next))).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{next:?}: {}", page.text);
        assert_eq!(page.location(), "/ui/catalog", "{next:?}");
    }
    // Signing in with a hostile `next` lands on the catalog too.
    let mut fresh = crate::app::Browser::default();
    let form = app.get(&mut fresh, "/ui/signin").await;
    let csrf = form.csrf_field();
    let res = app
        .post(
            &mut fresh,
            "/ui/signin",
            &[
                ("_csrf", &csrf),
                ("email", crate::app::ADMIN),
                ("password", crate::app::PASSWORD),
                ("next", "/\t/evil.example"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    assert_eq!(res.location(), "/ui/catalog");
}

/// Finding 10 (web part): wrong passwords for one account slow down and then lock it with a 429
/// page saying when to retry, even below the per-minute rate; the right password is refused
/// while locked.
#[tokio::test]
async fn wrong_passwords_slow_down_then_lock_the_account() {
    let config = portolan_server::ApiConfig {
        auth_failure_limits: (2, 4, std::time::Duration::from_secs(60)),
        signin_per_minute: 1000,
        ..portolan_server::ApiConfig::default()
    };
    let Some(app) = WebApp::spawn_with(config).await else { return };
    let started = std::time::Instant::now();
    for _ in 0..4 {
        let (_, res) = app.sign_in_as(crate::app::ADMIN, "wrong password!").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(300), "{:?}", started.elapsed());
    let (_, res) = app.sign_in_as(crate::app::ADMIN, crate::app::PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.text);
    assert!(res.text.contains("Try again in 1 minute"), "{}", res.text);
    assert!(res.headers.get("retry-after").is_some());
}

/// Finding 10 (web part), per address: wrong passwords spread over many e-mails from one
/// address lock that address (a 429 page with Retry-After), so the right password of another
/// account from there is refused until the window ends; after it, signing in works again.
#[tokio::test]
async fn wrong_passwords_from_one_address_lock_the_address() {
    let config = portolan_server::ApiConfig {
        auth_failure_limits: (2, 4, std::time::Duration::from_secs(2)),
        signin_per_minute: 1000,
        ..portolan_server::ApiConfig::default()
    };
    let Some(app) = WebApp::spawn_with(config).await else { return };
    for n in 0..4 {
        let (_, res) = app.sign_in_as(&format!("nobody{n}@example.com"), "wrong password!").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text);
    }
    let (_, res) = app.sign_in_as(crate::app::ADMIN, crate::app::PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.text);
    assert!(res.headers.get("retry-after").is_some());
    assert!(res.text.contains("from this address"), "{}", res.text);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, res) = app.sign_in_as(crate::app::ADMIN, crate::app::PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
}

/// Finding 3: pages that echo what was asked for (search, filters, the sign-in e-mail) escape it.
#[tokio::test]
async fn search_filter_and_sign_in_echoes_are_escaped() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut b = app.admin().await;
    app.api(
        "POST",
        "/v1/blueprints",
        serde_json::json!({"identifier": "svc", "title": "Svc", "schema": {"properties": {}}}),
    )
    .await;
    let p = urlencode(PAYLOAD);
    for path in [
        format!("/ui/catalog/svc?q={p}"),
        format!("/ui/catalog/svc?fp={p}&fo=%3D&fv={p}"),
        format!("/ui/audit?identifier={p}"),
    ] {
        let page = app.get(&mut b, &path).await;
        assert_inert(&path, &page.text);
    }
    let (_, res) = app.sign_in_as(PAYLOAD, "wrong password!").await;
    assert_inert("/ui/signin", &res.text);
}
