//! Single sign-on through SAML 2.0 against a real identity provider library: `tests/saml_idp/idp.py`
//! (PyPI's pysaml2, signing with xmlsec1) runs beside the server, reads Portolan's service
//! provider metadata, parses its AuthnRequests and answers them — well, or in the ways a test
//! asks for (tampered, refused, unsigned, signed with another key). Needs
//! `PORTOLAN_SAML_PYTHON` (a Python with pysaml2; `.ci/saml-venv` builds one and `.ci/run` sets
//! it); without it the tests say SKIPPED, and under CI they fail.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use portolan_server::state::Clock as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::{Browser, Page, WebApp};
use crate::sso::put_sso;

struct Idp {
    base: String,
    child: Child,
    http: reqwest::Client,
    sp_file: std::path::PathBuf,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sp_file);
    }
}

impl Idp {
    async fn control(&self, b: Value) {
        let defaults = json!({"sign": "assertion", "tamper": false, "wrap": false, "status": null,
                              "foreign_key": false, "sha1": false, "edit": [], "unsolicited": false});
        let mut body = defaults.as_object().unwrap().clone();
        body.extend(b.as_object().unwrap().clone());
        let res = self.http.post(format!("{}/control", self.base)).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}

fn python() -> Option<String> {
    match std::env::var("PORTOLAN_SAML_PYTHON").ok().filter(|p| !p.is_empty()) {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("PORTOLAN_SAML_PYTHON is not set: under CI the SAML tests run against pysaml2 (.ci/saml-venv)")
        }
        None => {
            eprintln!("SAML test SKIPPED: set PORTOLAN_SAML_PYTHON to a Python with pysaml2 (.ci/saml-venv)");
            None
        }
    }
}

/// The app (its clock set to the real one, which the IdP's assertions are stamped with), the
/// IdP started with the app's SP metadata, and SAML configured from the IdP's metadata URL.
async fn spawn() -> Option<(WebApp, Idp)> {
    let python = python()?;
    let config = portolan_server::ApiConfig {
        secrets_key: Some(portolan_server::secrets::SecretsKey::generate()),
        ..Default::default()
    };
    let app = WebApp::spawn_with(config).await?;
    let real = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    app.advance(Duration::from_secs((real - app.clock.now()) as u64));
    let sp = app.http.get(format!("{}/ui/sso/saml/metadata?org=web", app.base)).send().await.unwrap();
    assert_eq!(sp.status(), StatusCode::OK);
    assert_eq!(sp.headers()["content-type"], "application/samlmetadata+xml");
    let sp_file = std::env::temp_dir().join(format!("portolan-sp-{}.xml", portolan_server::auth::new_token()));
    std::fs::write(&sp_file, sp.text().await.unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/saml_idp/idp.py");
    let mut child = Command::new(python)
        .args([script, "--sp-metadata"])
        .arg(&sp_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the pysaml2 IdP");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base =
        line.strip_prefix("ready ").unwrap_or_else(|| panic!("the IdP did not start: {line:?}")).trim().to_string();
    let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let idp = Idp { base, child, http, sp_file };
    let (status, v) = put_sso(
        &app,
        json!({"saml": {"idpMetadataUrl": format!("{}/metadata", idp.base), "groupsAttribute": "groups",
                        "displayName": "Test IdP"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    Some((app, idp))
}

/// The value of the hidden field `name` in an HTML form.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let i = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[i..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#x2f;", "/")
        .replace("&#x2b;", "+")
        .replace("&#x3d;", "=")
        .replace("&amp;", "&")
}

/// Start at Portolan, sign in at the IdP's form as `email` in `groups`, and post its answer to
/// the ACS as the IdP's page does (from the IdP's site: no cookie), then again from this site
/// as Portolan's page does: the final page.
async fn sign_in(app: &WebApp, idp: &Idp, b: &mut Browser, email: &str, groups: &str) -> Page {
    let again = answer(app, idp, b, email, groups).await;
    let form: Vec<(&str, &str)> = again.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.post(b, "/ui/sso/saml/acs", &form).await
}

/// [`sign_in`] up to its last post: the fields Portolan's page posts again from this site.
async fn answer(app: &WebApp, idp: &Idp, b: &mut Browser, email: &str, groups: &str) -> Vec<(String, String)> {
    let start = app.get(b, "/ui/sso/start?org=web&next=%2Fui%2Fteams").await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let marker = "id=\"sso-continue\" href=\"";
    let i = start.text.find(marker).unwrap_or_else(|| panic!("no continue link in {}", start.text)) + marker.len();
    let to_idp = start.text[i..].split('"').next().unwrap().replace("&amp;", "&").replace("&#x2f;", "/");
    assert!(to_idp.starts_with(&format!("{}/sso/redirect?SAMLRequest=", idp.base)), "{to_idp}");
    let form = idp.http.get(&to_idp).send().await.unwrap().text().await.unwrap();
    let key = field(&form, "key");
    let answer = idp
        .http
        .post(format!("{}/login", idp.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("key", key.as_str()), ("email", email), ("groups", groups)])
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (saml_response, relay) = (field(&answer, "SAMLResponse"), field(&answer, "RelayState"));
    assert!(answer.contains(&format!("action=\"{}/ui/sso/saml/acs\"", app.base)), "posts to the ACS: {answer}");
    // The cross-site POST carries no SameSite=Lax cookie: Portolan posts it again itself.
    let mut cookieless = Browser::default();
    let first = app
        .post(&mut cookieless, "/ui/sso/saml/acs", &[("SAMLResponse", &saml_response), ("RelayState", &relay)])
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(
        first.text.contains("data-autosubmit") && first.text.contains("name=\"portolan_reposted\""),
        "{}",
        first.text
    );
    let again: Vec<(String, String)> = ["SAMLResponse", "RelayState", "portolan_reposted"]
        .iter()
        .map(|k| (k.to_string(), field(&first.text, k)))
        .collect();
    assert_eq!(again[0].1, saml_response, "the answer is posted again unchanged");
    again
}

#[tokio::test]
async fn saml_sign_in_creates_the_user_just_in_time_with_teams_from_the_groups_attribute() {
    let Some((app, idp)) = spawn().await else { return };
    let sso = app.api("GET", "/v1/organization/sso", json!(null)).await;
    let s = &sso["sso"]["saml"];
    assert_eq!(s["idpEntityId"], format!("{}/metadata", idp.base), "{sso}");
    assert_eq!(s["acsUrl"], format!("{}/ui/sso/saml/acs", app.base));
    assert_eq!(s["spEntityId"], format!("{}/ui/sso/saml/metadata?org=web", app.base));
    assert_eq!(s["idpCertificates"][0]["subject"], "CN=idp", "{sso}");

    // A team an admin manages in Portolan: a group of the same name does not join it.
    app.api("POST", "/v1/teams", json!({"name": "guild"})).await;
    let mut b = Browser::default();
    let page = sign_in(&app, &idp, &mut b, "Sam@Example.com", "platform,sre,guild").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    assert_eq!(page.location(), "/ui/teams", "back where the sign-in started");
    assert!(b.cookies.iter().any(|(k, _)| k == "portolan_session"), "signed in");
    assert!(!b.cookies.iter().any(|(k, _)| k == "portolan_sso"), "the flow cookie is spent");

    // What the IdP received: Portolan's AuthnRequest, naming its SP and ACS.
    let received: Value = idp.http.get(format!("{}/received", idp.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(received[0]["issuer"], format!("{}/ui/sso/saml/metadata?org=web", app.base), "{received}");
    assert_eq!(received[0]["acs"], format!("{}/ui/sso/saml/acs", app.base));

    let user = app.api("GET", "/v1/users/sam@example.com", json!(null)).await;
    let u = &user["user"];
    assert_eq!(u["roles"], json!([{"name": "Member"}]), "{user}");
    assert_eq!((u["firstName"].as_str(), u["lastName"].as_str()), (Some("Sam"), Some("Ell")));
    assert_eq!(u["providers"], json!(["SAML"]), "{user}");
    let mut teams: Vec<&str> =
        u["teams"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str().or(t.as_str())).collect();
    teams.sort_unstable();
    assert_eq!(teams, ["platform", "sre"], "{user}");
    let platform = app.api("GET", "/v1/teams/platform", json!(null)).await;
    assert_eq!(platform["team"]["provider"], "SAML", "{platform}");

    // The next sign-in with fewer groups takes the person out of the SSO team.
    let mut b2 = Browser::default();
    let page = sign_in(&app, &idp, &mut b2, "sam@example.com", "platform").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    let user = app.api("GET", "/v1/users/sam@example.com", json!(null)).await;
    assert_eq!(user["user"]["teams"].as_array().unwrap().len(), 1, "{user}");
}

/// A refused sign-in: the failure page's text.
async fn refused(app: &WebApp, idp: &Idp, behaviour: Value) -> Page {
    idp.control(behaviour).await;
    let mut b = Browser::default();
    let page = sign_in(app, idp, &mut b, "sam@example.com", "").await;
    assert!(!b.cookies.iter().any(|(k, _)| k == "portolan_session"), "not signed in: {}", page.text);
    page
}

#[tokio::test]
async fn tampered_unsigned_foreign_wrapped_and_unsolicited_answers_are_refused_in_words() {
    let Some((app, idp)) = spawn().await else { return };
    let cases = [
        (json!({"tamper": true}), "changed after it was signed"),
        (json!({"sign": "none"}), "Neither the identity provider&#x27;s response nor its assertion is signed"),
        (json!({"foreign_key": true}), "does not verify with any certificate"),
        (json!({"wrap": true}), "Neither the identity provider&#x27;s response nor its assertion is signed"),
        (json!({"sha1": true}), "SHA-1"),
        (json!({"unsolicited": true}), "does not say which sign-in it answers"),
    ];
    for (behaviour, words) in cases {
        let page = refused(&app, &idp, behaviour.clone()).await;
        // An unsolicited assertion is the browser's problem (start again), not the IdP's.
        let status = if behaviour["unsolicited"] == true { StatusCode::BAD_REQUEST } else { StatusCode::BAD_GATEWAY };
        assert_eq!(page.status, status, "{behaviour}: {}", page.text);
        assert!(page.text.contains(words), "{behaviour}: {}", page.text);
    }
    assert!(app.store.user_by_email("admin@example.com").await.unwrap().unwrap().role == "admin");
    assert!(app.store.user_by_email("sam@example.com").await.unwrap().is_none(), "no account made");
}

#[tokio::test]
async fn an_idp_refusal_a_wrong_audience_and_a_far_clock_are_explained() {
    let Some((app, idp)) = spawn().await else { return };
    let page = refused(&app, &idp, json!({"status": "AuthnFailed"})).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.text);
    for words in [
        "did not sign you in",
        "status:AuthnFailed",
        "The user could not be authenticated (test IdP).",
        "could not authenticate the person",
    ] {
        assert!(page.unescaped().contains(words), "{words}: {}", page.text);
    }
    // The IdP's audience is another service provider's (edited before it signs).
    let sp = format!("{}/ui/sso/saml/metadata?org=web", app.base).replace('&', "&amp;");
    let page = refused(
        &app,
        &idp,
        json!({"edit": [[format!("<ns1:Audience>{sp}"), "<ns1:Audience>https://other.example/sp"]]}),
    )
    .await;
    assert!(page.unescaped().contains("meant for the audience"), "{}", page.text);
    assert!(page.unescaped().contains("SP entity ID"), "{}", page.text);
    // A signed response without a Destination (removed before it is signed).
    let acs = format!(" Destination=\"{}/ui/sso/saml/acs\"", app.base);
    let page = refused(&app, &idp, json!({"sign": "response", "edit": [[acs, ""]]})).await;
    assert!(page.unescaped().contains("without a Destination"), "{}", page.text);
    // This server's clock is ten minutes ahead of the IdP's.
    app.advance(Duration::from_secs(600));
    let page = refused(&app, &idp, json!({})).await;
    assert!(page.unescaped().contains("expired") && page.unescaped().contains("NTP"), "{}", page.text);
}

#[tokio::test]
async fn an_answer_without_the_browsers_sign_in_or_replayed_is_refused() {
    let Some((app, idp)) = spawn().await else { return };
    let mut b = Browser::default();
    let page = sign_in(&app, &idp, &mut b, "sam@example.com", "").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    // An answer posted with no sign-in started in this browser (IdP-initiated, or replayed
    // elsewhere): after the re-post, still no flow cookie.
    let mut other = Browser::default();
    let page = app
        .post(
            &mut other,
            "/ui/sso/saml/acs",
            &[("SAMLResponse", "PHg+"), ("RelayState", "x"), ("portolan_reposted", "1")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.text);
    assert!(page.unescaped().contains("not started in this browser"), "{}", page.text);
    // An answer and its flow cookie copied (from a proxy log, a shared machine) and posted
    // again after the sign-in they belong to: refused, no session.
    let mut b = Browser::default();
    let fields = answer(&app, &idp, &mut b, "sam@example.com", "").await;
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut thief = Browser { cookies: b.cookies.clone(), headers: Vec::new() };
    let page = app.post(&mut b, "/ui/sso/saml/acs", &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "the first post signs in: {}", page.text);
    let page = app.post(&mut thief, "/ui/sso/saml/acs", &form).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.text);
    assert!(page.unescaped().contains("already signed someone in"), "{}", page.text);
    assert!(!thief.cookies.iter().any(|(k, _)| k == "portolan_session"), "not signed in: {:?}", thief.cookies);
}

#[tokio::test]
async fn saml_settings_are_checked_at_their_paths() {
    let Some((app, idp)) = spawn().await else { return };
    let (status, v) = put_sso(&app, json!({"saml": {"idpMetadataXml": "<nope"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["message"].as_str().unwrap().contains("saml.idpMetadataXml"), "{v}");
    let (status, v) = put_sso(&app, json!({"saml": {"idpMetadataUrl": "http://idp.example.com/metadata"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["message"].as_str().unwrap().contains("is not an https URL"), "{v}");
    let (status, v) = put_sso(&app, json!({"saml": {"idpMetadataUrl": format!("{}/nowhere", idp.base)}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["message"].as_str().unwrap().contains("HTTP 404"), "{v}");
    let (status, v) =
        put_sso(&app, json!({"oidc": {"issuer": "https://login.example.com", "clientId": "x", "enabled": true}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Saving again without metadata keeps what was read; passwords can go with SAML on.
    let (status, v) = put_sso(&app, json!({"saml": {"emailAttribute": "mail"}, "localPasswords": false})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["sso"]["saml"]["idpEntityId"], format!("{}/metadata", idp.base));
    assert_eq!(v["sso"]["localPasswords"], false);
    let audit = app.api("GET", "/v1/audit-log?limit=20", json!(null)).await;
    assert!(audit.to_string().contains("idpEntityId"), "the change is audited: {audit}");
    // The IdP's certificate (pysaml2's, valid a year) with its days left, and the organization
    // page's warning once it nears its end and once it is past.
    let days = v["sso"]["saml"]["idpCertificates"][0]["daysLeft"].as_i64().unwrap();
    assert!((363..=365).contains(&days), "{v}");
    assert_eq!(put_sso(&app, json!({"localPasswords": true})).await.0, StatusCode::OK);
    let mut admin = app.admin().await;
    let page = app.get(&mut admin, "/ui/organization").await;
    assert!(!page.text.contains("cert-expir"), "no warning a year ahead");
    app.advance(Duration::from_secs(350 * 86_400));
    let mut admin = app.admin().await;
    let page = app.get(&mut admin, "/ui/organization").await;
    assert!(page.text.contains("class=\"cert-expiring\">(expires in 1"), "{}", page.text);
    app.advance(Duration::from_secs(30 * 86_400));
    let mut admin = app.admin().await;
    let page = app.get(&mut admin, "/ui/organization").await;
    assert!(page.text.contains("class=\"cert-expired\""), "{}", page.text);
}

#[tokio::test]
async fn a_rotated_idp_key_is_read_again_from_the_metadata_url_once() {
    let Some((app, idp)) = spawn().await else { return };
    let before = app.api("GET", "/v1/organization/sso", json!(null)).await;
    assert_eq!(before["sso"]["saml"]["idpCertificates"][0]["subject"], "CN=idp");
    // The IdP now signs with its new key and publishes only that key's certificate.
    idp.control(json!({"rotated": true})).await;
    let mut b = Browser::default();
    let page = sign_in(&app, &idp, &mut b, "rot@example.com", "").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "signed in after reading the metadata again: {}", page.text);
    let after = app.api("GET", "/v1/organization/sso", json!(null)).await;
    let certs = after["sso"]["saml"]["idpCertificates"].as_array().unwrap();
    assert_eq!((certs.len(), certs[0]["subject"].as_str()), (1, Some("CN=foreign")), "{after}");
    let audit = app.api("GET", "/v1/audit-log?limit=5", json!(null)).await;
    let refresh =
        audit["audits"].as_array().unwrap().iter().find(|r| r["trigger"]["origin"] == "SSO (SAML metadata refresh)");
    let refresh = refresh.unwrap_or_else(|| panic!("the new certificates are audited: {audit}"));
    assert_eq!(refresh["resourceType"], "organization");
    assert_ne!(
        refresh["diff"]["before"]["sso"]["saml"]["idpCertificates"],
        refresh["diff"]["after"]["sso"]["saml"]["idpCertificates"]
    );
    // Rotated back within minutes: the metadata is not read again for that (a burst of bad
    // answers is not a burst of requests to the IdP), so the answer is refused, in words.
    let page = refused(&app, &idp, json!({"rotated": false})).await;
    assert!(page.unescaped().contains("does not verify with any certificate"), "{}", page.text);
}
