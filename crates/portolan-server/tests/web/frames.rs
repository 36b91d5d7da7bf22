//! Protected iframe widgets: the person signs in at the frame's OAuth 2 provider (a stand-in
//! in this process that checks PKCE the way RFC 7636 says and records what it received), the
//! access token reaches the frame as `auth_token`, only for that person and until it expires,
//! and every way the sign-in fails is a page in words. The real provider (npm's
//! `oidc-provider`) drives the same flow in Chromium (tests/browser/e2e/frames.spec.mjs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::{Browser, Page, WebApp};
use crate::dashboards::{dashboard, widget};

#[derive(Default)]
struct Seen {
    /// Answer the authorization request with this `error`.
    error: Option<String>,
    /// Refuse every code at the token endpoint.
    refuse: bool,
    /// `expires_in` of the tokens it gives.
    expires_in: i64,
    /// Pending codes: code → (challenge, redirect_uri).
    codes: HashMap<String, (String, String)>,
    /// The authorization requests' and token requests' parameters, and the token requests'
    /// Authorization headers.
    authorize: Vec<HashMap<String, String>>,
    token: Vec<HashMap<String, String>>,
    token_auth: Vec<Option<String>>,
}

#[derive(Clone)]
struct Idp {
    base: String,
    seen: Arc<Mutex<Seen>>,
}

async fn authorize(State(idp): State<Idp>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = idp.seen.lock().unwrap();
    s.authorize.push(q.clone());
    let redirect = q["redirect_uri"].clone();
    let state = url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>();
    if let Some(e) = &s.error {
        return Redirect::to(&format!("{redirect}?error={e}&error_description=User+said+no&state={state}"))
            .into_response();
    }
    let code = format!("code-{}", s.authorize.len());
    s.codes.insert(code.clone(), (q["code_challenge"].clone(), redirect.clone()));
    Redirect::to(&format!("{redirect}?code={code}&state={state}")).into_response()
}

async fn token(State(idp): State<Idp>, headers: HeaderMap, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut s = idp.seen.lock().unwrap();
    s.token.push(f.clone());
    s.token_auth.push(headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string));
    let refuse = |d: &str| {
        (AxStatus::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": d}))).into_response()
    };
    if s.refuse {
        return refuse("grant request is invalid");
    }
    let Some((challenge, redirect)) = s.codes.remove(&f["code"]) else { return refuse("unknown code") };
    // RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) == code_challenge.
    if B64.encode(Sha256::digest(f["code_verifier"].as_bytes())) != challenge || f["redirect_uri"] != redirect {
        return refuse("PKCE verification failed");
    }
    let n = s.token.len();
    axum::Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": s.expires_in}))
        .into_response()
}

async fn spawn() -> Option<(WebApp, Idp)> {
    let config = portolan_server::ApiConfig {
        secrets_key: Some(portolan_server::secrets::SecretsKey::generate()),
        ..Default::default()
    };
    let app = WebApp::spawn_with(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = Idp {
        base: format!("http://{}", listener.local_addr().unwrap()),
        seen: Arc::new(Mutex::new(Seen { expires_in: 300, ..Seen::default() })),
    };
    let router =
        axum::Router::new().route("/authorize", get(authorize)).route("/token", post(token)).with_state(idp.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let frame = |id: &str| {
        json!({"id": id, "type": "iframe-widget", "title": "Grafana", "url": "https://grafana.example/d/1?x=1",
            "urlType": "protected", "authorizationUrl": format!("{}/authorize", idp.base),
            "tokenUrl": format!("{}/token", idp.base), "clientId": "grafana", "scopes": ["openid", "profile"]})
    };
    let widgets = json!([frame("graf"), frame("graf2"),
        {"id": "open", "type": "iframe-widget", "url": "https://status.example/"}]);
    app.api("POST", "/v1/pages", dashboard("ops", widgets)).await;
    Some((app, idp))
}

/// The href of the widget's sign-in link, or `None` when it shows its frame.
fn sign_in_link(html: &str, id: &str) -> Option<String> {
    let w = widget(html, id);
    let marker = "class=\"button frame-sign-in-link\" href=\"";
    let i = w.find(marker)? + marker.len();
    Some(w[i..].split('"').next().unwrap().to_string())
}

/// The `src` of the widget's frame.
fn frame_src(html: &str, id: &str) -> Option<String> {
    let w = widget(html, id);
    let i = w.find("<iframe src=\"")? + "<iframe src=\"".len();
    Some(w[i..].split('"').next().unwrap().to_string())
}

/// Where a redirecting page sends the browser.
fn continue_url(p: &Page) -> String {
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    let marker = "id=\"sso-continue\" href=\"";
    let i = p.text.find(marker).unwrap_or_else(|| panic!("no continue link in {}", p.text)) + marker.len();
    p.text[i..].split('"').next().unwrap().replace("&amp;", "&").replace("&#x2f;", "/")
}

/// From the widget's sign-in link through the provider back to the callback: its answer.
async fn sign_in(app: &WebApp, b: &mut Browser, link: &str) -> Page {
    let start = app.get(b, link).await;
    let at_idp = app.http.get(continue_url(&start)).send().await.unwrap();
    assert_eq!(at_idp.status(), StatusCode::SEE_OTHER, "the provider redirects back");
    let back = at_idp.headers()["location"].to_str().unwrap().to_string();
    let path = back.strip_prefix(&app.base).unwrap_or_else(|| panic!("callback {back} is not on {}", app.base));
    assert!(path.starts_with("/ui/frames/callback?"), "{path}");
    app.get(b, path).await
}

#[tokio::test]
async fn a_protected_frame_gets_the_persons_token_through_pkce_until_it_expires() {
    let Some((app, idp)) = spawn().await else { return };
    let mut admin = app.admin().await;
    let page = app.get(&mut admin, "/ui/dashboards/ops").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.unescaped();
    let link = sign_in_link(&html, "graf").expect("a sign-in link before any token");
    assert_eq!(link, "/ui/frames/signin?page=ops&widget=graf");
    assert!(frame_src(&html, "graf").is_none(), "no frame without a token");
    assert_eq!(frame_src(&html, "open").as_deref(), Some("https://status.example/"), "public frames as before");
    assert!(widget(&html, "graf").contains("Sign in to 127.0.0.1</a>"), "the provider's host is named");

    let back = sign_in(&app, &mut admin, &link).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.text);
    assert_eq!(back.location(), "/ui/dashboards/ops");
    assert!(!admin.cookies.iter().any(|(k, _)| k == "portolan_frame_flow"), "the flow cookie is spent");
    {
        let s = idp.seen.lock().unwrap();
        let a = &s.authorize[0];
        assert_eq!(a["response_type"], "code");
        assert_eq!(a["client_id"], "grafana");
        assert_eq!(a["scope"], "openid profile");
        assert_eq!(a["code_challenge_method"], "S256");
        assert_eq!(a["redirect_uri"], format!("{}/ui/frames/callback", app.base));
        let t = &s.token[0];
        assert_eq!((t["grant_type"].as_str(), t["client_id"].as_str()), ("authorization_code", "grafana"));
        assert!(!t.contains_key("client_secret") && s.token_auth[0].is_none(), "a public client: no secret");
    }
    let kept: Vec<_> = admin.cookies.iter().filter(|(k, _)| k.starts_with("portolan_frame_t_")).cloned().collect();
    assert_eq!(kept.len(), 1, "{:?}", admin.cookies);
    assert!(!kept[0].1.contains("tok-"), "the token is kept encrypted");

    // Both widgets with the provider show their frame with the token; the CSP lets it in.
    let page = app.get(&mut admin, "/ui/dashboards/ops").await;
    let html = page.unescaped();
    for id in ["graf", "graf2"] {
        assert_eq!(frame_src(&html, id).as_deref(), Some("https://grafana.example/d/1?x=1&auth_token=tok-1"), "{id}");
        assert!(sign_in_link(&html, id).is_none());
    }
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-src https://grafana.example https://status.example;"), "{csp}");

    // Another person in the same browser (or with the cookie copied) does not get it.
    let mut member = app.user("usr_m", "member@example.com", "member").await;
    member.cookies.push(kept[0].clone());
    let theirs = app.get(&mut member, "/ui/dashboards/ops").await.unescaped();
    assert!(frame_src(&theirs, "graf").is_none() && sign_in_link(&theirs, "graf").is_some(), "{theirs}");

    // Changed settings are another provider: sign in again.
    let changed = app.api("PATCH", "/v1/pages/ops/widgets/graf2", json!({"clientId": "grafana-2"})).await;
    assert_eq!(changed["ok"], json!(true), "{changed}");
    let html = app.get(&mut admin, "/ui/dashboards/ops").await.unescaped();
    assert!(frame_src(&html, "graf").is_some() && sign_in_link(&html, "graf2").is_some(), "{html}");

    // The token expires (300 s): close to its end, the widget asks to sign in again.
    app.advance(Duration::from_secs(280));
    let html = app.get(&mut admin, "/ui/dashboards/ops").await.unescaped();
    assert!(sign_in_link(&html, "graf").is_some(), "a token about to expire is not handed on");

    // Signing out removes the kept tokens.
    let csrf = app.csrf(&mut admin).await;
    let out = app.post(&mut admin, "/ui/signout", &[("_csrf", &csrf)]).await;
    let cleared = out.set_cookies();
    assert!(
        cleared.iter().any(|c| c.starts_with(&format!("{}=;", kept[0].0)) && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
}

#[tokio::test]
async fn every_failed_frame_sign_in_is_a_page_in_words() {
    let Some((app, idp)) = spawn().await else { return };
    let mut admin = app.admin().await;
    let link = "/ui/frames/signin?page=ops&widget=graf";
    let explained = |p: &Page, status: StatusCode, parts: &[&str]| {
        assert_eq!(p.status, status, "{}", p.text);
        let text = p.unescaped().replace("&quot;", "\"").replace("&#x27;", "'");
        assert!(text.contains("<h1>The frame could not sign you in</h1>"), "{text}");
        assert!(text.contains("id=\"sso-back\" href=\"/ui/dashboards"), "{text}");
        for part in parts {
            assert!(text.contains(part), "{part:?} in {text}");
        }
        assert!(!text.contains("tok-"), "no token in a failure page");
    };

    // The person says no at the provider: its error, explained.
    idp.seen.lock().unwrap().error = Some("access_denied".into());
    let p = sign_in(&app, &mut admin, link).await;
    explained(&p, StatusCode::BAD_REQUEST, &["access_denied", "User said no", "declined consent"]);
    idp.seen.lock().unwrap().error = None;

    // The token endpoint refuses the code.
    idp.seen.lock().unwrap().refuse = true;
    let p = sign_in(&app, &mut admin, link).await;
    explained(&p, StatusCode::BAD_GATEWAY, &["invalid_grant", "answered HTTP 400", "redirect URI"]);
    idp.seen.lock().unwrap().refuse = false;

    // An answer for another sign-in (the state differs), and one without a started sign-in.
    let start = app.get(&mut admin, link).await;
    let at_idp = app.http.get(continue_url(&start)).send().await.unwrap();
    let back = at_idp.headers()["location"].to_str().unwrap().to_string();
    let path = back.strip_prefix(&app.base).unwrap();
    let forged = path.replace("state=", "state=x");
    explained(&app.get(&mut admin, &forged).await, StatusCode::BAD_REQUEST, &["the state differs"]);
    explained(&app.get(&mut admin, path).await, StatusCode::BAD_REQUEST, &["was not started in this browser"]);

    // A widget that is not there, or not protected.
    let p = app.get(&mut admin, "/ui/frames/signin?page=ops&widget=nope").await;
    explained(&p, StatusCode::NOT_FOUND, &["has no frame widget \"nope\""]);
    let p = app.get(&mut admin, "/ui/frames/signin?page=ops&widget=open").await;
    explained(&p, StatusCode::BAD_REQUEST, &["This frame is public"]);

    // The provider is unreachable.
    let widgets = json!([{"id": "down", "type": "iframe-widget", "url": "https://grafana.example/",
        "urlType": "protected", "authorizationUrl": format!("{}/authorize", idp.base),
        "tokenUrl": "http://127.0.0.1:9/token", "clientId": "grafana"}]);
    app.api("POST", "/v1/pages", dashboard("down", widgets)).await;
    let p = sign_in(&app, &mut admin, "/ui/frames/signin?page=down&widget=down").await;
    explained(&p, StatusCode::BAD_GATEWAY, &["could not be read", "reaches it"]);

    // Nothing was kept by any of them.
    assert!(!admin.cookies.iter().any(|(k, _)| k.starts_with("portolan_frame_t_")), "{:?}", admin.cookies);
}

/// Without a secrets key (the flow and token cookies are encrypted with it) a frame's sign-in
/// is a page that says so and what to set, not a bare error.
#[tokio::test]
async fn a_server_without_a_secrets_key_says_so() {
    let Some(app) = WebApp::spawn_with(portolan_server::ApiConfig { secrets_key: None, ..Default::default() }).await
    else {
        return;
    };
    let w = json!({"id": "graf", "type": "iframe-widget", "url": "https://grafana.example/d/1",
        "urlType": "protected", "authorizationUrl": "https://idp.example/authorize",
        "tokenUrl": "https://idp.example/token", "clientId": "grafana"});
    app.api("POST", "/v1/pages", dashboard("ops", json!([w]))).await;
    let mut admin = app.admin().await;
    let p = app.get(&mut admin, "/ui/frames/signin?page=ops&widget=graf").await;
    assert_eq!(p.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", p.text);
    let text = p.unescaped();
    assert!(text.contains("no secrets key; signed-in frames cannot work without one"), "{text}");
    assert!(text.contains("PORTOLAN_SECRETS_KEY"), "{text}");
}
