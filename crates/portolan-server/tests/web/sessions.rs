//! Accounts and sessions: sign-in, cookies, expiry by the clock, CSRF, rate limits, invitations.

use std::time::Duration;

use reqwest::StatusCode;

use crate::app::{ADMIN, Browser, PASSWORD, WebApp};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test]
async fn pages_need_a_session_and_sign_in_sets_a_safe_cookie() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut anon = Browser::default();
    let r = app.get(&mut anon, "/ui/catalog").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/ui/signin?next=%2Fui%2Fcatalog");

    let (_, wrong) = app.sign_in_as(ADMIN, "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("Wrong e-mail or password."), "{}", wrong.text);
    let (_, unknown) = app.sign_in_as("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    let (mut b, ok) = app.sign_in_as(ADMIN, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/ui/catalog");
    let cookie = ok.set_cookies().into_iter().find(|c| c.starts_with("portolan_session=")).expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http must not mark it Secure: {cookie}");
    let page = app.get(&mut b, "/ui/catalog").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(ADMIN), "the page names the user");
    let csp = page.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut tls = Browser { headers: vec![("x-forwarded-proto".into(), "https".into())], ..Browser::default() };
    let form = app.get(&mut tls, "/ui/signin").await;
    let csrf = form.csrf_field();
    let r = app.post(&mut tls, "/ui/signin", &[("_csrf", &csrf), ("email", ADMIN), ("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.set_cookies().iter().any(|c| c.starts_with("portolan_session=") && c.contains("; Secure")));

    // Sign out ends the session on the server: the old cookie no longer works.
    let old = b.clone();
    let csrf = app.csrf(&mut b).await;
    let out = app.post(&mut b, "/ui/signout", &[("_csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let mut replay = old;
    assert_eq!(app.get(&mut replay, "/ui/catalog").await.status, StatusCode::SEE_OTHER);
}

/// A user disabled through the API (`PATCH /v1/users/{email}`) loses their session at once and
/// cannot sign in again until enabled; the page says why, and only after the right password.
#[tokio::test]
async fn a_disabled_user_is_signed_out_and_cannot_sign_in() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut b = app.admin().await;
    // A second admin, so the first may be disabled.
    app.user("usr_other", "other@example.com", "admin").await;
    app.api("PATCH", &format!("/v1/users/{ADMIN}"), serde_json::json!({"status": "Disabled"})).await;
    assert_eq!(app.get(&mut b, "/ui/catalog").await.status, StatusCode::SEE_OTHER, "the session ended");
    let (_, refused) = app.sign_in_as(ADMIN, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text.contains("This account is disabled."), "{}", refused.text);
    let (_, wrong) = app.sign_in_as(ADMIN, "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "a wrong password learns nothing more");
    app.api("PATCH", &format!("/v1/users/{ADMIN}"), serde_json::json!({"status": "Active"})).await;
    let (_, ok) = app.sign_in_as(ADMIN, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_session_ends_after_three_idle_days() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut b = app.admin().await;
    app.advance(DAY * 3 - Duration::from_secs(60));
    assert_eq!(app.get(&mut b, "/ui/catalog").await.status, StatusCode::OK, "just under 3 idle days");
    // That request was activity: another 3 days less a minute is fine again.
    app.advance(DAY * 3 - Duration::from_secs(60));
    assert_eq!(app.get(&mut b, "/ui/catalog").await.status, StatusCode::OK);
    app.advance(DAY * 3);
    let r = app.get(&mut b, "/ui/catalog").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().contains("expired=1"), "{}", r.location());
    // And the session is gone for good, not only for this request.
    assert_eq!(app.get(&mut b, "/ui/audit").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_session_ends_seven_days_after_sign_in_however_active() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut b = app.admin().await;
    for day in 1..7 {
        app.advance(DAY);
        assert_eq!(app.get(&mut b, "/ui/catalog").await.status, StatusCode::OK, "day {day}");
    }
    app.advance(DAY);
    let r = app.get(&mut b, "/ui/catalog").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "7 days after sign-in");
    assert!(r.location().contains("expired=1"));
}

#[tokio::test]
async fn session_limits_are_configurable() {
    let config = portolan_server::ApiConfig {
        session_idle: Duration::from_secs(3600),
        session_absolute: Duration::from_secs(7200),
        ..Default::default()
    };
    let Some(app) = WebApp::spawn_with(config).await else { return };
    let mut b = app.admin().await;
    app.advance(Duration::from_secs(3599));
    assert_eq!(app.get(&mut b, "/ui/catalog").await.status, StatusCode::OK);
    app.advance(Duration::from_secs(3601));
    assert_eq!(app.get(&mut b, "/ui/catalog").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn state_changing_requests_without_the_sessions_csrf_token_are_refused() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut b = app.admin().await;
    let json = r#"{"identifier": "svc", "title": "Service"}"#;
    let none = app.post(&mut b, "/ui/builder", &[("json", json)]).await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    let wrong = app.post(&mut b, "/ui/builder", &[("_csrf", "forged"), ("json", json)]).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // Another session's token is not this session's.
    let mut other = app.admin().await;
    let foreign = app.csrf(&mut other).await;
    let r = app.post(&mut b, "/ui/builder", &[("_csrf", &foreign), ("json", json)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(app.store.get_blueprint(&portolan_store::OrgId(crate::app::ORG.into()), "svc").await.unwrap().is_none());
    let csrf = app.csrf(&mut b).await;
    let ok = app.post(&mut b, "/ui/builder", &[("_csrf", &csrf), ("json", json)]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    // Sign-out is state-changing too.
    assert_eq!(app.post(&mut b, "/ui/signout", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&mut b, "/ui/catalog").await.status, StatusCode::OK, "still signed in");
    // The sign-in form itself needs its double-submit token.
    let mut anon = Browser::default();
    let r = app.post(&mut anon, "/ui/signin", &[("email", ADMIN), ("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited() {
    let config = portolan_server::ApiConfig { signin_per_minute: 3, ..Default::default() };
    let Some(app) = WebApp::spawn_with(config).await else { return };
    for _ in 0..3 {
        let (_, r) = app.sign_in_as(ADMIN, "wrong password!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let (_, r) = app.sign_in_as(ADMIN, PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
}

#[tokio::test]
async fn an_invitation_link_sets_a_password_once_and_members_are_not_admins() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut admin = app.admin().await;
    let csrf = app.csrf(&mut admin).await;
    let r =
        app.post(&mut admin, "/ui/users", &[("_csrf", &csrf), ("email", "Dev@Example.com"), ("role", "member")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let text = r.unescaped();
    let start = text.find("/ui/invite/").expect("the page shows the link");
    let path: String = text[start..].chars().take_while(|c| *c != '<' && *c != '"').collect();

    let mut dev = Browser::default();
    let form = app.get(&mut dev, &path).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text.contains("dev@example.com"));
    let csrf = form.csrf_field();
    let short = app.post(&mut dev, &path, &[("_csrf", &csrf), ("password", "short"), ("confirm", "short")]).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.text.contains("at least 12 characters"));
    let pw = "a long enough password";
    let done = app.post(&mut dev, &path, &[("_csrf", &csrf), ("password", pw), ("confirm", pw)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let home = app.get(&mut dev, "/ui/catalog").await;
    assert!(home.text.contains("dev@example.com"));
    assert!(!home.text.contains("href=\"/ui/users\""), "members see no user admin");
    assert_eq!(app.get(&mut dev, "/ui/users").await.status, StatusCode::FORBIDDEN);
    let csrf = app.csrf(&mut dev).await;
    let r =
        app.post(&mut dev, "/ui/builder", &[("_csrf", &csrf), ("json", r#"{"identifier": "x", "title": "X"}"#)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "members do not change blueprints");

    // The link works once.
    let mut again = Browser::default();
    assert_eq!(app.get(&mut again, &path).await.status, StatusCode::NOT_FOUND);
    // And the new password signs in.
    let (_, r) = app.sign_in_as("dev@example.com", pw).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_invitation_link_expires() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut admin = app.admin().await;
    let csrf = app.csrf(&mut admin).await;
    let r = app.post(&mut admin, "/ui/users", &[("_csrf", &csrf), ("email", "late@example.com")]).await;
    let text = r.unescaped();
    let start = text.find("/ui/invite/").unwrap();
    let path: String = text[start..].chars().take_while(|c| *c != '<' && *c != '"').collect();
    app.advance(DAY * 8);
    let mut late = Browser::default();
    assert_eq!(app.get(&mut late, &path).await.status, StatusCode::NOT_FOUND);
}
