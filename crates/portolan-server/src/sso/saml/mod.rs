//! Single sign-on through SAML 2.0, Portolan as the service provider (issue 13 item 4).
//!
//! An admin gives the identity provider's metadata (its XML, or a URL Portolan reads it from
//! when the settings are saved); Portolan keeps the IdP's entity ID, its HTTP-Redirect sign-in
//! URL and its signing certificates ([`parse_metadata`]). The organization's service provider
//! is described at `/ui/sso/saml/metadata?org=NAME` (its entity ID is that URL); the assertion
//! consumer is `/ui/sso/saml/acs` for every organization.
//!
//! The flow (SP-initiated only; an IdP-initiated answer is refused in words):
//! 1. [`start`]: an `AuthnRequest` through the HTTP-Redirect binding; its ID, a `RelayState`
//!    token and where to go next live in the encrypted flow cookie (as OIDC's do).
//! 2. The IdP posts the response to the ACS. That POST comes from the IdP's site, so the
//!    browser withholds the `SameSite=Lax` flow cookie; the ACS answers with a page that posts
//!    the same form again from this site (`web::sso::saml_acs`), which carries the cookie.
//! 3. [`finish`]: `RelayState` matches the cookie, the response is checked (`response.rs`:
//!    signature with the metadata's certificates, issuer, destination, audience, recipient,
//!    `InResponseTo`, validity windows), and the person is read from the assertion
//!    ([`identity_of`]) and provisioned like an OIDC sign-in, with provider `SAML`.

pub mod dsig;
pub mod response;

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64STD;
use portolan_core::FieldErrors;
use portolan_store::OrgId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{FLOW_TTL_SECS, Failure, Identity, MAX_GROUPS, load, no_key};
use crate::state::AppState;

/// Who SAML-managed teams and sign-ins are provided by.
pub const PROVIDER: &str = "SAML";
/// The assertion consumer service, registered at the IdP as `{public URL}/ui/sso/saml/acs`.
pub const ACS_PATH: &str = "/ui/sso/saml/acs";
/// The service provider's metadata (and entity ID): `{public URL}/ui/sso/saml/metadata?org=NAME`.
pub const METADATA_PATH: &str = "/ui/sso/saml/metadata";
const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// Largest metadata document accepted (a federation's aggregate is refused: give one IdP's).
const MAX_METADATA: usize = 512 * 1024;
/// Attributes read for the e-mail when none is configured, in order; then the NameID. Port's
/// own SAML connections send `email`, `given_name` and `family_name`, which come first.
const EMAIL_ATTRIBUTES: &[&str] = &[
    "email",
    "mail",
    "emailAddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];
const GIVEN_NAME: &[&str] = &[
    "given_name",
    "givenName",
    "firstName",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "urn:oid:2.5.4.42",
];
const SURNAME: &[&str] = &[
    "family_name",
    "sn",
    "surname",
    "lastName",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    "urn:oid:2.5.4.4",
];

/// One SAML identity provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Saml {
    pub enabled: bool,
    pub idp_entity_id: String,
    /// Where the browser is sent with the AuthnRequest (HTTP-Redirect binding).
    pub idp_sso_url: String,
    /// The IdP's signing certificates, base64 DER (several while it rotates).
    pub idp_certificates: Vec<String>,
    /// Where the metadata was read from, when it came from a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_metadata_url: Option<String>,
    /// The attribute that holds the e-mail; `None`: the usual names, then the NameID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_attribute: Option<String>,
    /// The attribute that lists the person's groups (mapped to teams); `None`: teams are not
    /// managed by SSO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_attribute: Option<String>,
    pub display_name: String,
}

/// The parts of an IdP's metadata Portolan uses.
#[derive(Debug, Clone, PartialEq)]
pub struct IdpMetadata {
    pub entity_id: String,
    pub sso_url: String,
    pub certs: Vec<Vec<u8>>,
}

/// Read an IdP's metadata: the one `EntityDescriptor` with an `IDPSSODescriptor`, its
/// HTTP-Redirect `SingleSignOnService` and its signing certificates. An error says what is
/// missing.
pub fn parse_metadata(xml: &str) -> Result<IdpMetadata, String> {
    if xml.len() > MAX_METADATA {
        return Err(format!("is larger than {} KiB: give one identity provider's metadata", MAX_METADATA / 1024));
    }
    let doc = dsig::parse(xml.trim_start_matches('\u{feff}').trim())?;
    let is = |n: &roxmltree::Node, name: &str| {
        n.is_element() && n.tag_name().namespace() == Some(MD) && n.tag_name().name() == name
    };
    let idps: Vec<_> = doc
        .descendants()
        .filter(|n| is(n, "EntityDescriptor") && n.children().any(|c| is(&c, "IDPSSODescriptor")))
        .collect();
    let entity = match idps.as_slice() {
        [e] => *e,
        [] => return Err("describes no identity provider (no EntityDescriptor with an IDPSSODescriptor)".into()),
        _ => return Err(format!("describes {} identity providers: give the metadata of one", idps.len())),
    };
    let entity_id =
        entity.attribute("entityID").filter(|s| !s.is_empty()).ok_or("its EntityDescriptor has no entityID")?;
    let idp = entity.children().find(|c| is(c, "IDPSSODescriptor")).ok_or("has no IDPSSODescriptor")?;
    let services: Vec<_> = idp.children().filter(|c| is(c, "SingleSignOnService")).collect();
    let Some(sso_url) =
        services.iter().find(|s| s.attribute("Binding") == Some(REDIRECT)).and_then(|s| s.attribute("Location"))
    else {
        let bindings: Vec<&str> = services.iter().filter_map(|s| s.attribute("Binding")).collect();
        return Err(format!(
            "offers no SingleSignOnService with the HTTP-Redirect binding (it offers {bindings:?}): enable HTTP-Redirect at the identity provider"
        ));
    };
    match url::Url::parse(sso_url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => {}
        _ => return Err(format!("its SingleSignOnService location {sso_url:?} is not an http(s) URL")),
    }
    let mut certs = Vec::new();
    for kd in idp.children().filter(|c| is(c, "KeyDescriptor") && c.attribute("use").is_none_or(|u| u == "signing")) {
        for c in kd.descendants().filter(|c| {
            c.is_element() && c.tag_name().namespace() == Some(dsig::DSIG) && c.tag_name().name() == "X509Certificate"
        }) {
            let text: String =
                c.children().filter_map(|t| t.text()).flat_map(str::chars).filter(|c| !c.is_whitespace()).collect();
            let der = B64STD.decode(&text).map_err(|_| "holds an X509Certificate that is not base64".to_string())?;
            x509_parser::parse_x509_certificate(&der)
                .map_err(|e| format!("holds an X509Certificate that is not a certificate ({e})"))?;
            if !certs.contains(&der) {
                certs.push(der);
            }
        }
    }
    if certs.is_empty() {
        return Err("holds no signing certificate (KeyDescriptor with an X509Certificate)".into());
    }
    Ok(IdpMetadata { entity_id: entity_id.to_string(), sso_url: sso_url.to_string(), certs })
}

/// A certificate as the settings answer shows it: subject, expiry (and the days left at `now`)
/// and SHA-256 fingerprint. Portolan does not refuse an expired IdP certificate (the metadata
/// is what is trusted, as most service providers do), but the organization page warns.
fn cert_info(b64: &str, now: i64) -> Value {
    let der = B64STD.decode(b64).unwrap_or_default();
    let fp = crate::auth::hex(&<sha2::Sha256 as sha2::Digest>::digest(&der));
    match x509_parser::parse_x509_certificate(&der) {
        Ok((_, c)) => {
            let end = c.validity().not_after;
            json!({"subject": c.subject().to_string(), "notAfter": end.to_rfc2822().unwrap_or_default(),
                   "daysLeft": (end.timestamp() - now).div_euclid(86_400), "sha256": fp})
        }
        Err(_) => json!({"sha256": fp}),
    }
}

/// This organization's service provider entity ID (also its metadata URL).
pub fn sp_entity_id(base_url: &str, org_name: &str) -> String {
    format!("{base_url}{METADATA_PATH}?org={}", crate::web::urlencode(org_name))
}

/// The settings as answered (with what to register at the IdP) at `now`.
pub fn render(s: &Saml, base_url: &str, org_name: &str, now: i64) -> Value {
    json!({"enabled": s.enabled, "idpEntityId": s.idp_entity_id, "idpSsoUrl": s.idp_sso_url,
           "idpCertificates": s.idp_certificates.iter().map(|c| cert_info(c, now)).collect::<Vec<_>>(),
           "idpMetadataUrl": s.idp_metadata_url, "emailAttribute": s.email_attribute,
           "groupsAttribute": s.groups_attribute, "displayName": s.display_name,
           "spEntityId": sp_entity_id(base_url, org_name), "acsUrl": format!("{base_url}{ACS_PATH}")})
}

/// The metadata XML to read, from the body's `idpMetadataXml` or by GET of `idpMetadataUrl`.
async fn metadata_source(
    state: &AppState,
    o: &Map<String, Value>,
) -> Result<Option<(String, Option<String>)>, (String, String)> {
    if let Some(x) = o.get("idpMetadataXml").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
        return Ok(Some((x.to_string(), None)));
    }
    let Some(u) = o.get("idpMetadataUrl").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let at = |m: String| ("saml.idpMetadataUrl".to_string(), m);
    if !trusted_source(u) {
        return Err(at(format!(
            "{u:?} is not an https URL: the metadata names the keys sign-ins are trusted with, so it is read over TLS (http only from this machine)"
        )));
    }
    fetch_metadata(state, u).await.map(|xml| Some((xml, Some(u.to_string())))).map_err(at)
}

/// GET the metadata document at `url` through the guarded client; why not, in words.
async fn fetch_metadata(state: &AppState, url: &str) -> Result<String, String> {
    let ex = state
        .outbound
        .send(crate::outbound::OutboundRequest {
            method: "GET".into(),
            url: url.to_string(),
            headers: vec![("accept".into(), "application/samlmetadata+xml, application/xml, text/xml".into())],
            body: None,
        })
        .await;
    if let Some(e) = ex.error {
        return Err(format!(
            "could not be read: {e} (check the URL, and that this server reaches it: proxy, CA bundle, firewall)"
        ));
    }
    match ex.response {
        Some(r) if (200..300).contains(&r.status) => Ok(r.body),
        Some(r) => Err(format!("answered HTTP {}", r.status)),
        None => Err("gave no answer".into()),
    }
}

/// Whether metadata may be read from `url`: https, or http from this machine (loopback).
fn trusted_source(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(p) if p.scheme() == "https" => true,
        Ok(p) if p.scheme() == "http" => match p.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// Check a `saml` settings object (reading the metadata); errors at their paths.
pub async fn check(
    state: &AppState,
    errs: &mut FieldErrors,
    o: &Map<String, Value>,
    old: Option<&Saml>,
) -> Option<Saml> {
    const KEYS: &[&str] =
        &["enabled", "idpMetadataXml", "idpMetadataUrl", "emailAttribute", "groupsAttribute", "displayName"];
    // What the answer shows besides, sent back unchanged by a client that saves what it read.
    const SHOWN: &[&str] = &["idpEntityId", "idpSsoUrl", "idpCertificates", "spEntityId", "acsUrl"];
    for k in o.keys().filter(|k| !KEYS.contains(&k.as_str()) && !SHOWN.contains(&k.as_str())) {
        errs.push(format!("saml.{k}"), format!("is not a SAML setting (one of {})", KEYS.join(", ")));
    }
    let text = |errs: &mut FieldErrors, key: &str, max: usize| -> Option<String> {
        match o.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) if s.chars().count() <= max => Some(s.trim().to_string()),
            Some(_) => {
                errs.push(format!("saml.{key}"), format!("must be a string of at most {max} characters"));
                None
            }
        }
    };
    let enabled = match o.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errs.push("saml.enabled", "must be true or false");
            true
        }
    };
    let email_attribute = text(errs, "emailAttribute", 300);
    let groups_attribute = text(errs, "groupsAttribute", 300);
    let display_name = text(errs, "displayName", 100).unwrap_or_else(|| "single sign-on".to_string());
    let meta = match metadata_source(state, o).await {
        Err((path, m)) => {
            errs.push(path, m);
            return None;
        }
        Ok(Some((xml, url))) => match parse_metadata(&xml) {
            Ok(m) => (m.entity_id, m.sso_url, m.certs.iter().map(|c| B64STD.encode(c)).collect(), url),
            Err(e) => {
                let path = if url.is_some() { "saml.idpMetadataUrl" } else { "saml.idpMetadataXml" };
                errs.push(path, format!("the identity provider's metadata {e}"));
                return None;
            }
        },
        Ok(None) => match old {
            Some(s) => {
                (s.idp_entity_id.clone(), s.idp_sso_url.clone(), s.idp_certificates.clone(), s.idp_metadata_url.clone())
            }
            None => {
                errs.push(
                    "saml.idpMetadataXml",
                    "is required: the identity provider's metadata XML (or its URL in idpMetadataUrl)",
                );
                return None;
            }
        },
    };
    Some(Saml {
        enabled,
        idp_entity_id: meta.0,
        idp_sso_url: meta.1,
        idp_certificates: meta.2,
        idp_metadata_url: meta.3,
        email_attribute,
        groups_attribute,
        display_name,
    })
}

/// A started SAML sign-in, kept in the encrypted flow cookie.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Flow {
    org: String,
    request_id: String,
    relay: String,
    next: String,
    exp: i64,
}

fn flow_aad() -> &'static str {
    "sso-saml-flow"
}

fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;")
}

/// The AuthnRequest's XML.
fn authn_request(id: &str, issue_instant: &str, destination: &str, acs: &str, sp_entity_id: &str) -> String {
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{issue_instant}" Destination="{}" AssertionConsumerServiceURL="{}" ProtocolBinding="{POST}"><saml:Issuer>{}</saml:Issuer><samlp:NameIDPolicy AllowCreate="true"/></samlp:AuthnRequest>"#,
        xml_attr(destination),
        xml_attr(acs),
        xml_attr(sp_entity_id).replace('>', "&gt;")
    )
}

/// Begin a SAML sign-in: the IdP's URL with the request, and the flow cookie's value.
pub fn start(
    state: &AppState,
    org: &OrgId,
    org_name: &str,
    saml: &Saml,
    next: &str,
    base_url: &str,
) -> Result<(String, String), Failure> {
    let key = state.config.secrets_key.as_ref().ok_or_else(|| no_key("single sign-on"))?;
    let flow = Flow {
        org: org.0.clone(),
        request_id: format!("_{}", crate::auth::hex(&crate::auth::random_bytes::<16>())),
        relay: crate::auth::new_token(),
        next: next.to_string(),
        exp: state.clock.now() + FLOW_TTL_SECS,
    };
    let instant = chrono::DateTime::from_timestamp(state.clock.now(), 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let xml = authn_request(
        &flow.request_id,
        &instant,
        &saml.idp_sso_url,
        &format!("{base_url}{ACS_PATH}"),
        &sp_entity_id(base_url, org_name),
    );
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let deflated = z
        .write_all(xml.as_bytes())
        .and_then(|()| z.finish())
        .map_err(|e| Failure::new(500, format!("The sign-in request could not be compressed: {e}.")))?;
    let mut url = url::Url::parse(&saml.idp_sso_url).map_err(|_| {
        Failure::new(500, format!("The identity provider's sign-in URL {:?} is not a URL.", saml.idp_sso_url))
    })?;
    url.query_pairs_mut().append_pair("SAMLRequest", &B64STD.encode(deflated)).append_pair("RelayState", &flow.relay);
    let cookie = key.encrypt(&serde_json::to_string(&flow).unwrap_or_default(), flow_aad());
    Ok((url.to_string(), cookie))
}

/// Finish a SAML sign-in from the ACS form (`SAMLResponse`, `RelayState`) and the flow cookie:
/// the organization, who signed in, and where to go next.
pub async fn finish(
    state: &AppState,
    cookie: Option<&str>,
    form: &std::collections::HashMap<String, String>,
    base_url: &str,
) -> Result<(OrgId, Identity, String), Failure> {
    let key = state.config.secrets_key.as_ref().ok_or_else(|| no_key("single sign-on"))?;
    let flow: Option<Flow> =
        cookie.and_then(|c| key.decrypt(c, flow_aad()).ok()).and_then(|t| serde_json::from_str(&t).ok());
    let Some(flow) = flow.filter(|f| f.exp >= state.clock.now()) else {
        return Err(Failure::new(400, "This sign-in was not started in this browser, or it took longer than 10 minutes.").hint(
            "Start again from Portolan's sign-in page (sign-in started at the identity provider is not accepted). If it keeps happening, the browser may block cookies for this site.",
        ));
    };
    if form.get("RelayState") != Some(&flow.relay) {
        return Err(Failure::new(400, "The identity provider's answer does not belong to the sign-in this browser started (the RelayState differs).")
            .hint("Start again from the sign-in page; the identity provider must send RelayState back unchanged."));
    }
    let Some(saml_response) = form.get("SAMLResponse") else {
        return Err(Failure::new(400, "The identity provider's answer has no SAMLResponse."));
    };
    let org = OrgId(flow.org.clone());
    let sso = load(state, &org).await?;
    let Some(saml) = sso.saml.filter(|s| s.enabled) else {
        return Err(Failure::new(400, "SAML sign-in was turned off for this organization during the sign-in."));
    };
    let org_name = state.store.get_org(&org).await?.map(|o| o.name).unwrap_or_default();
    let certs: Vec<Vec<u8>> = saml.idp_certificates.iter().filter_map(|c| B64STD.decode(c).ok()).collect();
    let acs = format!("{base_url}{ACS_PATH}");
    let sp = sp_entity_id(base_url, &org_name);
    let expect = response::Expect {
        idp_entity_id: &saml.idp_entity_id,
        sp_entity_id: &sp,
        acs_url: &acs,
        request_id: &flow.request_id,
        certs: &certs,
        now: state.clock.now(),
    };
    let asserted = match response::check(saml_response, &expect) {
        // Signed with a key the stored metadata lacks: the IdP may have rotated it.
        Err(f) if f.message.contains(dsig::NO_CERTIFICATE_VERIFIES) => match rotated_certs(state, &org, &saml).await {
            Some(certs) => response::check(saml_response, &response::Expect { certs: &certs, ..expect })?,
            None => return Err(f),
        },
        other => other?,
    };
    let identity = identity_of(&asserted, &saml)?;
    // One answer signs in once: the flow's request ID (the answer's InResponseTo) is spent, on
    // every node, until the flow would have expired anyway. A copied answer and flow cookie
    // posted again are refused.
    if !state.store.spend_sso_answer(&org, &flow.request_id, flow.exp, state.clock.now()).await? {
        return Err(Failure::new(400, "This identity provider's answer has already signed someone in: an answer signs in once (it was replayed, or posted twice).")
            .hint("Start again from the sign-in page."));
    }
    Ok((org, identity, flow.next))
}

/// The IdP's signing certificates read again from its metadata URL, when they changed (its key
/// was rotated): stored in the organization's settings (audited) and returned. `None` without a
/// metadata URL, when the metadata cannot be read or names another IdP, when the certificates
/// are the ones stored, or when this node read the URL for this reason in the last minutes
/// (a burst of bad answers is not a burst of requests to the IdP).
async fn rotated_certs(state: &AppState, org: &OrgId, saml: &Saml) -> Option<Vec<Vec<u8>>> {
    let url = saml.idp_metadata_url.as_deref().filter(|u| trusted_source(u))?;
    let key = format!("saml-rotation:{}:{url}", org.0);
    if state.sso_docs.get(&key).is_some() {
        return None;
    }
    state.sso_docs.put(&key, &Value::Bool(true));
    let body = match fetch_metadata(state, url).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(org = %org.0, url, error = %e, "sso: SAML metadata not read again");
            return None;
        }
    };
    let meta = match parse_metadata(&body) {
        Ok(m) if m.entity_id == saml.idp_entity_id => m,
        Ok(m) => {
            tracing::warn!(org = %org.0, url, entity = %m.entity_id, "sso: SAML metadata now names another IdP; not taken");
            return None;
        }
        Err(e) => {
            tracing::warn!(org = %org.0, url, error = %e, "sso: SAML metadata unreadable");
            return None;
        }
    };
    let certs: Vec<String> = meta.certs.iter().map(|c| B64STD.encode(c)).collect();
    if certs == saml.idp_certificates {
        return None;
    }
    let actor = crate::ops::Actor {
        client_id: "sso-metadata".into(),
        org: org.clone(),
        user_agent: Some("SSO (SAML metadata refresh)".into()),
        principal: portolan_core::permissions::Principal::Machine,
        depth: 0,
        blueprints_version: None,
    };
    let mut sso = load(state, org).await.ok()?;
    let s = sso.saml.as_mut()?;
    s.idp_certificates = certs;
    if let Err(e) = super::store(state, &actor, &sso).await {
        tracing::error!(error = %e, "sso: storing the IdP's rotated certificates");
        return None;
    }
    tracing::info!(org = %org.0, url, "sso: the SAML IdP's signing certificates changed; read again from its metadata");
    Some(meta.certs)
}

/// Who signed in, from a verified assertion.
pub fn identity_of(a: &response::Asserted, saml: &Saml) -> Result<Identity, Failure> {
    let first = |names: &[&str]| {
        names.iter().find_map(|n| a.values(n).and_then(|v| v.first()).filter(|v| !v.is_empty()).cloned())
    };
    let email = match &saml.email_attribute {
        Some(attr) => a.values(attr).and_then(|v| v.first()).cloned().ok_or_else(|| {
            Failure::new(502, format!("The assertion has no {attr:?} attribute, which the organization reads the e-mail from."))
                .hint(format!("Release the attribute {attr:?} to this application at the identity provider, or change the e-mail attribute on the organization page."))
        })?,
        None => first(EMAIL_ATTRIBUTES).unwrap_or_else(|| a.name_id.clone()),
    };
    let email = crate::web::session::normalize_email(&email);
    if !crate::ops::people::valid_email(&email) {
        return Err(Failure::new(502, format!("The identity provider did not say this person's e-mail: {email:?} (from {}) is not an e-mail address.",
            saml.email_attribute.as_deref().map(|a| format!("the attribute {a:?}")).unwrap_or_else(|| "the NameID".into())))
            .hint("Send the e-mail as the NameID (format emailAddress) or as an attribute, and name that attribute on the organization page."));
    }
    let name = |names: &[&str]| first(names).map(|s| s.chars().take(100).collect::<String>());
    let groups = saml
        .groups_attribute
        .as_deref()
        .and_then(|g| a.values(g))
        .map(|v| v.iter().take(MAX_GROUPS).cloned().collect());
    Ok(Identity { email, first_name: name(GIVEN_NAME), last_name: name(SURNAME), groups, provider: PROVIDER })
}

/// The service provider's metadata for the organization named `org_name`.
pub fn sp_metadata(base_url: &str, org_name: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="{MD}" entityID="{}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{POST}" Location="{}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        xml_attr(&sp_entity_id(base_url, org_name)),
        xml_attr(&format!("{base_url}{ACS_PATH}"))
    )
}

#[cfg(test)]
mod tests;
