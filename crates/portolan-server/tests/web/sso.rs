//! Single sign-on through OpenID Connect against a stand-in identity provider in this process:
//! discovery, PKCE, client authentication and ID tokens signed with its own ES256 key, each
//! part of which a test can break (a tampered or foreign token, the wrong audience, a clock
//! far off, a provider error). The real provider (npm's `oidc-provider`) drives the same flow
//! in Chromium (tests/browser/e2e/sso.spec.mjs).

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
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use portolan_server::state::Clock as _;

use crate::app::{ADMIN, Browser, PASSWORD, Page, WebApp};

const CLIENT_ID: &str = "portolan-web";
const CLIENT_SECRET: &str = "s3cret-of-the-client";

/// What the stand-in provider does next; tests change it between sign-ins.
#[derive(Default)]
struct Behaviour {
    /// Its clock (the app's, unless a test skews it).
    now: i64,
    /// Claims merged over the defaults (`null` removes one).
    claims: Map<String, Value>,
    /// Change the payload after signing.
    tamper: bool,
    /// Sign with a key the key set does not hold (under the published key id).
    foreign_key: bool,
    /// Answer the authorization request with this `error` (and a description).
    error: Option<(String, String)>,
    /// Pending codes: code → (challenge, nonce, redirect_uri).
    codes: HashMap<String, (String, String, String)>,
    /// Token requests seen (their Authorization header).
    token_auth: Vec<String>,
    /// The provider rotated its keys: it signs with a second key, `k2`, and publishes both.
    rotated: bool,
    /// Requests for the discovery document and for the key set.
    discovery_hits: usize,
    jwks_hits: usize,
}

#[derive(Clone)]
struct Idp {
    base: String,
    key: Arc<rcgen::KeyPair>,
    other: Arc<rcgen::KeyPair>,
    b: Arc<Mutex<Behaviour>>,
}

impl Idp {
    async fn spawn(now: i64) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let idp = Idp {
            base,
            key: Arc::new(rcgen::KeyPair::generate().unwrap()),
            other: Arc::new(rcgen::KeyPair::generate().unwrap()),
            b: Arc::new(Mutex::new(Behaviour { now, ..Behaviour::default() })),
        };
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(idp.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        idp
    }

    fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.b.lock().unwrap());
    }
}

async fn discovery(State(idp): State<Idp>) -> axum::Json<Value> {
    idp.b.lock().unwrap().discovery_hits += 1;
    let b = &idp.base;
    axum::Json(json!({
        "issuer": b, "authorization_endpoint": format!("{b}/authorize"), "token_endpoint": format!("{b}/token"),
        "jwks_uri": format!("{b}/jwks"), "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"], "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "id_token_signing_alg_values_supported": ["ES256"]
    }))
}

async fn authorize(State(idp): State<Idp>, Query(q): Query<HashMap<String, String>>) -> Response {
    let redirect = q["redirect_uri"].clone();
    let state = url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>();
    let mut b = idp.b.lock().unwrap();
    if let Some((e, d)) = &b.error {
        let d = url::form_urlencoded::byte_serialize(d.as_bytes()).collect::<String>();
        return Redirect::to(&format!("{redirect}?error={e}&error_description={d}&state={state}")).into_response();
    }
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert!(q["scope"].split(' ').any(|s| s == "openid"), "{q:?}");
    let code = format!("code-{}", b.codes.len());
    b.codes.insert(code.clone(), (q["code_challenge"].clone(), q["nonce"].clone(), redirect.clone()));
    Redirect::to(&format!("{redirect}?code={code}&state={state}")).into_response()
}

async fn token(State(idp): State<Idp>, headers: HeaderMap, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut b = idp.b.lock().unwrap();
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    b.token_auth.push(auth.clone());
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    if auth != expected {
        let body = json!({"error": "invalid_client", "error_description": "client authentication failed"});
        return (AxStatus::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let Some((challenge, nonce, redirect)) = b.codes.remove(&f["code"]) else {
        let body = json!({"error": "invalid_grant", "error_description": "grant request is invalid"});
        return (AxStatus::BAD_REQUEST, axum::Json(body)).into_response();
    };
    assert_eq!(f["redirect_uri"], redirect);
    if B64.encode(Sha256::digest(f["code_verifier"].as_bytes())) != challenge {
        let body = json!({"error": "invalid_grant", "error_description": "PKCE verification failed"});
        return (AxStatus::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let mut claims = json!({"iss": idp.base, "aud": CLIENT_ID, "sub": "u-1", "email": "dev@example.com",
        "email_verified": true, "given_name": "Dev", "family_name": "Eloper", "nonce": nonce,
        "iat": b.now, "exp": b.now + 300})
    .as_object()
    .cloned()
    .unwrap();
    for (k, v) in &b.claims {
        if v.is_null() {
            claims.remove(k);
        } else {
            claims.insert(k.clone(), v.clone());
        }
    }
    let key = if b.foreign_key || b.rotated { &idp.other } else { &idp.key };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(if b.rotated { "k2" } else { "k1" }.into());
    let enc = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
    let mut jwt = jsonwebtoken::encode(&header, &claims, &enc).unwrap();
    if b.tamper {
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut changed = claims.clone();
        changed.insert("email".into(), json!("admin@example.com"));
        let payload = B64.encode(serde_json::to_vec(&changed).unwrap());
        jwt = format!("{}.{payload}.{}", parts[0], parts[2]);
    }
    axum::Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": jwt})).into_response()
}

async fn jwks(State(idp): State<Idp>) -> axum::Json<Value> {
    let rotated = {
        let mut b = idp.b.lock().unwrap();
        b.jwks_hits += 1;
        b.rotated
    };
    let jwk = |kid: &str, key: &rcgen::KeyPair| {
        let raw = key.public_key_raw();
        assert_eq!(raw.len(), 65, "an uncompressed P-256 point");
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": B64.encode(&raw[1..33]), "y": B64.encode(&raw[33..])})
    };
    let mut keys = vec![jwk("k1", &idp.key)];
    if rotated {
        keys.push(jwk("k2", &idp.other));
    }
    axum::Json(json!({ "keys": keys }))
}

async fn spawn() -> Option<(WebApp, Idp)> {
    let config = portolan_server::ApiConfig {
        secrets_key: Some(portolan_server::secrets::SecretsKey::generate()),
        ..Default::default()
    };
    let app = WebApp::spawn_with(config).await?;
    let idp = Idp::spawn(app.clock.now()).await;
    let sso = put_sso(
        &app,
        json!({"oidc": {"issuer": idp.base, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
        "scopes": ["openid", "email", "profile", "groups"], "groupsClaim": "groups", "displayName": "Stand-in IdP"}}),
    )
    .await;
    assert_eq!(sso.0, StatusCode::OK, "{}", sso.1);
    Some((app, idp))
}

pub(crate) async fn put_sso(app: &WebApp, body: Value) -> (StatusCode, Value) {
    let res = app
        .http
        .put(format!("{}/v1/organization/sso", app.base))
        .bearer_auth(&app.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

/// Where the start page sends the browser (a page that moves on by itself: the sign-in form's
/// CSP would stop a redirect).
fn provider_url(start: &Page) -> String {
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let marker = "id=\"sso-continue\" href=\"";
    let i = start.text.find(marker).unwrap_or_else(|| panic!("no continue link in {}", start.text)) + marker.len();
    start.text[i..].split('"').next().unwrap().replace("&amp;", "&").replace("&#x2f;", "/")
}

/// Start at the sign-in page's SSO form, let the provider answer, and come back: the callback
/// page.
async fn sign_in(app: &WebApp, b: &mut Browser) -> Page {
    let start = app.get(b, "/ui/sso/start?org=web&next=%2Fui%2Fteams").await;
    let at_idp = app.http.get(provider_url(&start)).send().await.unwrap();
    assert_eq!(at_idp.status(), StatusCode::SEE_OTHER, "the provider redirects back");
    let back = at_idp.headers()["location"].to_str().unwrap().to_string();
    let path = back.strip_prefix(&app.base).unwrap_or_else(|| panic!("callback {back} is not on {}", app.base));
    assert!(path.starts_with("/ui/sso/callback?"), "{path}");
    app.get(b, path).await
}

#[tokio::test]
async fn oidc_sign_in_creates_the_user_just_in_time_with_teams_from_groups() {
    let Some((app, idp)) = spawn().await else { return };
    idp.set(|b| {
        b.claims.insert("groups".into(), json!(["platform", "/sre", "bad/name"]));
    });
    // A team an admin manages in Portolan: membership there is not the provider's business.
    app.api("POST", "/v1/teams", json!({"name": "guild"})).await;
    let mut b = Browser::default();
    let page = sign_in(&app, &mut b).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    assert_eq!(page.location(), "/ui/teams", "back where the sign-in started");
    assert!(b.cookies.iter().any(|(k, _)| k == "portolan_session"), "signed in");
    assert!(!b.cookies.iter().any(|(k, _)| k == "portolan_sso"), "the flow cookie is spent");
    let teams = app.get(&mut b, "/ui/teams").await;
    assert_eq!(teams.status, StatusCode::OK);
    assert!(teams.text.contains("dev@example.com"), "the page names the new user");
    assert!(idp.b.lock().unwrap().token_auth.iter().all(|a| a.starts_with("Basic ")), "client_secret_basic");

    let user = app.api("GET", "/v1/users/dev@example.com", json!(null)).await;
    let u = &user["user"];
    assert_eq!(u["roles"], json!([{"name": "Member"}]), "{user}");
    assert_eq!((u["firstName"].as_str(), u["lastName"].as_str()), (Some("Dev"), Some("Eloper")));
    assert_eq!(u["providers"], json!(["OIDC"]), "made by single sign-on, no password: {user}");
    let mut teams: Vec<&str> =
        u["teams"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str().or(t.as_str())).collect();
    teams.sort_unstable();
    assert_eq!(teams, ["platform", "sre"], "groups become teams; a group that is no team name is skipped: {user}");
    let platform = app.api("GET", "/v1/teams/platform", json!(null)).await;
    assert_eq!(platform["team"]["provider"], "OIDC", "{platform}");
    // Teams the provider provides are read-only (Port's rule): their members follow its groups.
    let res = app
        .http
        .patch(format!("{}/v1/teams/platform", app.base))
        .bearer_auth(&app.token)
        .json(&json!({"users": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("provided by single sign-on (OIDC)"));

    // Next sign-in: the groups changed. SSO teams follow; a Portolan team the admin added stays.
    app.api("PATCH", "/v1/users/dev@example.com", json!({"teams": ["platform", "sre", "guild"]})).await;
    idp.set(|b| {
        b.claims.insert("groups".into(), json!(["sre", "db"]));
    });
    let mut b2 = Browser::default();
    assert_eq!(sign_in(&app, &mut b2).await.status, StatusCode::SEE_OTHER);
    let user = app.api("GET", "/v1/users/dev@example.com", json!(null)).await;
    let mut teams: Vec<&str> =
        user["user"]["teams"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str().or(t.as_str())).collect();
    teams.sort_unstable();
    assert_eq!(teams, ["db", "guild", "sre"], "{user}");
    let people = app.store.list_users(&portolan_store::OrgId(crate::app::ORG.into())).await.unwrap();
    assert_eq!(people.iter().filter(|u| u.email == "dev@example.com").count(), 1, "one account");
    // The provider's documents are reused: the settings' save read discovery, the first sign-in
    // read the key set, and neither was read again.
    let hits = |b: &Behaviour| (b.discovery_hits, b.jwks_hits);
    assert_eq!(hits(&idp.b.lock().unwrap()), (1, 1));
    // The provider rotates its keys: a token naming the new key refetches the set once.
    idp.set(|b| b.rotated = true);
    assert_eq!(sign_in(&app, &mut Browser::default()).await.status, StatusCode::SEE_OTHER);
    assert_eq!(idp.b.lock().unwrap().jwks_hits, 2);

    // The creation is in the audit log, as done through SSO.
    let audit = app.api("GET", "/v1/audit-log?resources=user&limit=50", json!(null)).await;
    let created = audit["audits"].as_array().unwrap().iter().find(|a| a["action"] == "CREATE").cloned();
    assert!(created.is_some_and(|a| a["identifier"] == "dev@example.com"), "{audit}");
}

#[tokio::test]
async fn users_say_how_they_sign_in() {
    let Some((app, _idp)) = spawn().await else { return };
    // dev@example.com has a password, then signs in through the provider too.
    app.user("usr_dev", "dev@example.com", "member").await;
    let before = app.api("GET", "/v1/users/dev@example.com", json!(null)).await;
    assert_eq!(before["user"]["providers"], json!(["port"]), "{before}");
    for _ in 0..2 {
        assert_eq!(sign_in(&app, &mut Browser::default()).await.status, StatusCode::SEE_OTHER);
    }
    let after = app.api("GET", "/v1/users/dev@example.com", json!(null)).await;
    assert_eq!(after["user"]["providers"], json!(["port", "OIDC"]), "added once: {after}");
    let all = app.api("GET", "/v1/users", json!(null)).await;
    let dev = all["users"].as_array().unwrap().iter().find(|u| u["email"] == "dev@example.com").cloned();
    assert_eq!(dev.unwrap()["providers"], json!(["port", "OIDC"]), "{all}");
}

#[tokio::test]
async fn a_tampered_foreign_misaddressed_or_stale_token_is_refused_in_words() {
    let Some((app, idp)) = spawn().await else { return };
    type Change = Box<dyn Fn(&mut Behaviour)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        ("tampered", Box::new(|b| b.tamper = true), "signature does not verify"),
        ("signed by another key", Box::new(|b| b.foreign_key = true), "signature does not verify"),
        (
            "for another client",
            Box::new(|b| {
                b.claims.insert("aud".into(), json!("someone-else"));
            }),
            "meant for another application",
        ),
        (
            "from another issuer",
            Box::new(|b| {
                b.claims.insert("iss".into(), json!("https://evil.example"));
            }),
            "not by the configured issuer",
        ),
        ("issued an hour ahead (clock skew)", Box::new(|b| b.now += 3600), "in the future"),
        ("expired (clock skew)", Box::new(|b| b.now -= 3600), "expired 3300 s ago"),
        (
            "a replayed nonce",
            Box::new(|b| {
                b.claims.insert("nonce".into(), json!("another"));
            }),
            "nonce does not match",
        ),
        (
            "without an e-mail",
            Box::new(|b| {
                b.claims.insert("email".into(), Value::Null);
            }),
            "no email claim",
        ),
        (
            "an unverified e-mail",
            Box::new(|b| {
                b.claims.insert("email_verified".into(), json!(false));
            }),
            "not verified",
        ),
    ];
    let now = app.clock.now();
    for (what, change, says) in cases {
        idp.set(|b| {
            *b = Behaviour { now, ..Behaviour::default() };
            change(b);
        });
        let mut b = Browser::default();
        let page = sign_in(&app, &mut b).await;
        assert!(page.status.is_client_error() || page.status.is_server_error(), "{what}: {}", page.status);
        assert!(page.unescaped().contains(says), "{what}: the page says {says:?}: {}", page.text);
        assert!(page.text.contains("What to change") || !page.text.contains("sso-hint"), "{what}");
        assert!(!b.cookies.iter().any(|(k, _)| k == "portolan_session"), "{what}: not signed in");
    }
    assert!(app.store.user_by_email("dev@example.com").await.unwrap().is_none(), "no account was made");
    // A tampered token that claimed to be the admin signed nobody in as the admin.
    assert!(app.store.user_by_email(ADMIN).await.unwrap().is_some());
}

#[tokio::test]
async fn provider_errors_state_and_stale_flows_are_pages_that_explain() {
    let Some((app, idp)) = spawn().await else { return };
    idp.set(|b| b.error = Some(("access_denied".into(), "User is not assigned to the client application.".into())));
    let mut b = Browser::default();
    let page = sign_in(&app, &mut b).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let text = page.unescaped();
    assert!(
        text.contains("access_denied") && text.contains("User is not assigned to the client application."),
        "{text}"
    );
    assert!(text.contains("not assigned to the application at the provider"), "the hint for admins: {text}");

    // A callback this browser did not start, or whose state differs.
    idp.set(|b| b.error = None);
    let mut stranger = Browser::default();
    let page = app.get(&mut stranger, "/ui/sso/callback?code=x&state=y").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.unescaped().contains("not started in this browser"), "{}", page.text);
    let start = app.get(&mut b, "/ui/sso/start?org=web").await;
    assert!(start.text.contains("http-equiv=\"refresh\""), "{}", start.text);
    let page = app.get(&mut b, "/ui/sso/callback?code=x&state=forged").await;
    assert!(page.unescaped().contains("the state differs"), "{}", page.text);

    // Sent to sign in by another site (login CSRF: signed in to an organization it chose): a
    // page asks first and no sign-in begins; from this site's page it goes on.
    let cross = |site: &str| vec![("sec-fetch-site".to_string(), site.to_string())];
    let mut lured = Browser { cookies: Vec::new(), headers: cross("cross-site") };
    let page = app.get(&mut lured, "/ui/sso/start?org=web&next=%2Fui%2Fteams").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.unescaped().contains("You came here from another site"), "{}", page.text);
    assert!(!page.text.contains("http-equiv=\"refresh\""), "{}", page.text);
    assert!(page.text.contains("name=\"org\" value=\"web\""), "{}", page.text);
    assert!(!lured.cookies.iter().any(|(k, _)| k == "portolan_sso"), "no sign-in begun: {:?}", lured.cookies);
    lured.headers = cross("same-site");
    let page = app.get(&mut lured, "/ui/sso/start?org=web").await;
    assert!(page.unescaped().contains("You came here from another site"), "{}", page.text);
    lured.headers = cross("same-origin");
    let page = app.get(&mut lured, "/ui/sso/start?org=web&next=%2Fui%2Fteams").await;
    assert!(page.text.contains("http-equiv=\"refresh\""), "{}", page.text);
    assert!(lured.cookies.iter().any(|(k, _)| k == "portolan_sso"), "{:?}", lured.cookies);

    // A flow older than ten minutes.
    let start = app.get(&mut b, "/ui/sso/start?org=web").await;
    let at_idp = app.http.get(provider_url(&start)).send().await.unwrap();
    let back = at_idp.headers()["location"].to_str().unwrap().to_string();
    app.advance(Duration::from_secs(11 * 60));
    let page = app.get(&mut b, back.strip_prefix(&app.base).unwrap()).await;
    assert!(page.unescaped().contains("longer than 10 minutes"), "{}", page.text);

    // Unknown organizations, and one without SSO, say so.
    let page = app.get(&mut b, "/ui/sso/start?org=nope").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.unescaped().contains("no organization named &quot;nope&quot;"), "{}", page.text);
    assert_eq!(put_sso(&app, json!({"oidc": null})).await.0, StatusCode::OK);
    let page = app.get(&mut b, "/ui/sso/start?org=web").await;
    assert!(page.unescaped().contains("does not sign in through single sign-on"), "{}", page.text);

    // A wrong client secret: the provider's invalid_client, with what to check.
    let now = app.clock.now();
    idp.set(|b| b.now = now);
    let (s, body) =
        put_sso(&app, json!({"oidc": {"issuer": idp.base, "clientId": CLIENT_ID, "clientSecret": "wrong"}})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let page = sign_in(&app, &mut Browser::default()).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    let text = page.unescaped();
    assert!(text.contains("invalid_client") && text.contains("check the client id and secret"), "{text}");
}

#[tokio::test]
async fn sso_settings_are_checked_never_show_the_secret_and_can_turn_passwords_off() {
    let Some((app, idp)) = spawn().await else { return };
    let got = app.api("GET", "/v1/organization/sso", json!(null)).await;
    let oidc = &got["sso"]["oidc"];
    assert_eq!(oidc["clientSecretSet"], true);
    assert_eq!(oidc["redirectUri"], format!("{}/ui/sso/callback", app.base));
    assert!(!got.to_string().contains(CLIENT_SECRET), "{got}");
    let org = app.api("GET", "/v1/organization", json!(null)).await;
    assert!(org["organization"]["settings"].get("sso").is_none(), "the settings answer leaves SSO out: {org}");
    assert!(!org.to_string().contains("v1:"), "no ciphertext either: {org}");

    // Every error at its path; the issuer is checked against the provider.
    let (s, body) = put_sso(&app, json!({"oidc": {"clientSecret": 3, "scopes": ["email"], "x": 1}, "y": true})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let text = body.to_string();
    for path in ["oidc.issuer", "oidc.clientId", "oidc.clientSecret", "oidc.scopes", "oidc.x", "\"y\""] {
        assert!(text.contains(path), "{path} in {text}");
    }
    let (s, body) = put_sso(&app, json!({"oidc": {"issuer": format!("{}/", idp.base), "clientId": "c"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("names the issuer"), "{body}");
    let (s, body) = put_sso(&app, json!({"oidc": {"issuer": "http://127.0.0.1:9/", "clientId": "c"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("could not be read"), "{body}");
    let (s, body) = put_sso(&app, json!({"settings": {"sso": {}}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let res = app
        .http
        .patch(format!("{}/v1/organization", app.base))
        .bearer_auth(&app.token)
        .json(&json!({"settings": {"sso": {"localPasswords": false}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "SSO cannot be changed around its checks");

    // Passwords off: a right password is told to use SSO; SSO still signs in.
    let (s, body) = put_sso(&app, json!({"localPasswords": false})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, page) = app.sign_in_as(ADMIN, PASSWORD).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.unescaped().contains("single sign-on only"), "{}", page.text);
    assert_eq!(sign_in(&app, &mut Browser::default()).await.status, StatusCode::SEE_OTHER);
    // Turning the provider off while passwords are off would lock everyone out.
    let (s, body) = put_sso(&app, json!({"oidc": null})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("localPasswords"), "{body}");
    let (s, _) = put_sso(&app, json!({"localPasswords": true})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.sign_in_as(ADMIN, PASSWORD).await.1.status, StatusCode::SEE_OTHER);

    // The changes are audited, never with the secret.
    let audit = app.api("GET", "/v1/audit-log?limit=100", json!(null)).await;
    assert!(!audit.to_string().contains(CLIENT_SECRET), "the audit log never holds the secret");
    assert!(audit.to_string().contains("localPasswords"), "SSO changes are audited: {audit}");
}

#[tokio::test]
async fn a_disabled_user_and_a_user_of_another_organization_do_not_sign_in() {
    let Some((app, idp)) = spawn().await else { return };
    let mut b = Browser::default();
    assert_eq!(sign_in(&app, &mut b).await.status, StatusCode::SEE_OTHER);
    app.api("PATCH", "/v1/users/dev@example.com", json!({"status": "Disabled"})).await;
    let page = sign_in(&app, &mut Browser::default()).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.unescaped().contains("This account is disabled."), "{}", page.text);

    let other = portolan_store::OrgId("org_other".into());
    app.store.create_org(&other, "other", "2024-01-01T00:00:00.000Z").await.unwrap();
    idp.set(|b| {
        b.claims.insert("email".into(), json!("elsewhere@example.com"));
    });
    let u = portolan_store::User {
        id: "usr_else".into(),
        org: other,
        email: "elsewhere@example.com".into(),
        password_hash: "x".into(),
        role: "member".into(),
        created_at: "2024-01-01T00:00:00.000Z".into(),
    };
    app.store.create_user(&u).await.unwrap();
    let page = sign_in(&app, &mut Browser::default()).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.unescaped().contains("belongs to a user of another organization"), "{}", page.text);

    // A full organization: no account is made just in time, and the page names the quota.
    let org = portolan_store::OrgId(crate::app::ORG.into());
    let quotas = portolan_store::Quotas { max_users: Some(2), max_entities: None };
    app.store.set_quotas(&org, &quotas).await.unwrap();
    idp.set(|b| {
        b.claims.insert("email".into(), json!("newcomer@example.com"));
    });
    let page = sign_in(&app, &mut Browser::default()).await;
    assert_eq!(page.status.as_u16() / 100, 4, "{}", page.text);
    let text = page.unescaped();
    assert!(text.contains("quota of 2 users") && text.contains("portolan org quota"), "{text}");
    assert!(app.store.user_by_email("newcomer@example.com").await.unwrap().is_none());
}

#[tokio::test]
async fn an_admin_sets_up_sso_on_the_organization_page() {
    let Some((app, idp)) = spawn().await else { return };
    let mut admin = app.admin().await;
    let mut member = app.user("usr_m", "m@example.com", "member").await;
    let page = app.get(&mut admin, "/ui/organization").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.unescaped();
    assert!(text.contains("Stand-in IdP") && text.contains(&format!("{}/ui/sso/callback", app.base)), "{text}");
    assert!(!text.contains(CLIENT_SECRET), "the secret is never shown");
    // A refused change names its fields; nothing is saved.
    let csrf = page.csrf_field();
    let form = [("_csrf", csrf.as_str()), ("enabled", "on"), ("issuer", ""), ("clientId", ""), ("scopes", "email")];
    let r = app.post(&mut admin, "/ui/organization/sso", &form).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    for path in ["oidc.issuer", "oidc.clientId", "oidc.scopes"] {
        assert!(r.text.contains(&format!("data-path=\"{path}\"")), "{path}: {}", r.text);
    }
    // A good change keeps the stored secret when the field is blank; sign-in still works.
    let issuer = idp.base.clone();
    let form = [
        ("_csrf", csrf.as_str()),
        ("enabled", "on"),
        ("issuer", issuer.as_str()),
        ("clientId", CLIENT_ID),
        ("clientSecret", ""),
        ("scopes", "openid email"),
        ("groupsClaim", ""),
        ("displayName", "Acme login"),
    ];
    let r = app.post(&mut admin, "/ui/organization/sso", &form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let got = app.api("GET", "/v1/organization/sso", json!(null)).await;
    assert_eq!(got["sso"]["oidc"]["displayName"], "Acme login");
    assert_eq!(got["sso"]["oidc"]["clientSecretSet"], true, "{got}");
    assert_eq!(got["sso"]["localPasswords"], false, "an unticked box turns passwords off");
    assert_eq!(sign_in(&app, &mut Browser::default()).await.status, StatusCode::SEE_OTHER);
    // Members do not see or change it.
    assert_eq!(app.get(&mut member, "/ui/organization").await.status, StatusCode::FORBIDDEN);
}
