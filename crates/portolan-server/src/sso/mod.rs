//! Single sign-on through OpenID Connect or SAML 2.0 (port-api.md §8.7; issue 13 item 4). This
//! module is OIDC and what both share; SAML is [`saml`].
//!
//! An admin configures the organization's identity provider (`PUT /v1/organization/sso` or the
//! organization page): issuer, client id and secret, scopes, the claim that lists the user's
//! groups, and whether passwords still sign in. The settings live in the organization's settings
//! under [`SETTINGS_KEY`], the client secret encrypted with the server's secrets key; no answer
//! ever contains it.
//!
//! The flow (authorization code with PKCE, S256):
//! 1. `/ui/sso/start?org=NAME` reads the provider's discovery document
//!    (`{issuer}/.well-known/openid-configuration`), keeps `state`, `nonce` and the PKCE verifier
//!    in an encrypted cookie that lives [`FLOW_TTL_SECS`] (so any node can finish the flow) and
//!    sends the browser to the provider.
//! 2. `/ui/sso/callback` checks `state` against the cookie, exchanges the code at the token
//!    endpoint (verifier, client authentication), and verifies the ID token
//!    ([`verify_id_token`]): its signature with the provider's published keys (asymmetric
//!    algorithms only), issuer, audience, expiry and issue time against this server's clock
//!    (± [`LEEWAY_SECS`]) and the nonce.
//! 3. [`provision`]: an existing user of the organization signs in; an unknown e-mail becomes a
//!    Member just in time (within the users quota, audited); with a groups claim configured, the
//!    groups are the user's SSO teams (created with provider `OIDC` when missing; teams an admin
//!    manages in Portolan stay as they are).
//!
//! Every way this can fail is a [`Failure`]: what went wrong in words, the provider's own
//! `error` / `error_description` when it sent them, and what an admin should change — the
//! sign-in page shows all three, never a raw provider error.
//!
//! All outbound calls go through the guarded client ([`crate::outbound`]).

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portolan_core::{FieldError, FieldErrors};
use portolan_store::{OrgId, PersonEdit, SaveMode, StoreError, TeamWrite, User};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::Actor;
use crate::ops::audit::audit_ctx;
use crate::outbound::OutboundRequest;
use crate::state::AppState;

/// The organization settings key that holds the SSO settings.
pub const SETTINGS_KEY: &str = "sso";
/// How far this server's clock and the provider's may differ (ID token `exp`, `iat`, `nbf`).
pub const LEEWAY_SECS: i64 = 120;
/// How long a started sign-in may take at the provider.
pub const FLOW_TTL_SECS: i64 = 600;
/// The cookie that carries a started sign-in (encrypted).
pub const FLOW_COOKIE: &str = "portolan_sso";
/// Who SSO-managed teams are provided by.
pub const TEAM_PROVIDER: &str = "OIDC";
/// The callback path, registered at the provider as `{public URL}/ui/sso/callback`.
pub const CALLBACK_PATH: &str = "/ui/sso/callback";
/// Most groups one sign-in maps to teams (more are ignored, said in the log).
pub(crate) const MAX_GROUPS: usize = 200;
/// The ID token algorithms accepted: the provider's public keys only (never `none` or a
/// shared-secret HMAC).
const ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// The organization's SSO settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sso {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml: Option<saml::Saml>,
    /// Whether e-mail and password still sign in (on by default; off only with an enabled
    /// provider, so someone can always sign in).
    #[serde(default = "yes")]
    pub local_passwords: bool,
}

fn yes() -> bool {
    true
}

impl Default for Sso {
    fn default() -> Self {
        Sso { oidc: None, saml: None, local_passwords: true }
    }
}

/// One OpenID Connect provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Oidc {
    pub enabled: bool,
    /// Exactly as the provider's discovery document states it.
    pub issuer: String,
    pub client_id: String,
    /// The client secret encrypted with the server's secrets key (`v1:…`); `None`: a public
    /// client (PKCE only). Never answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_encrypted: Option<String>,
    pub scopes: Vec<String>,
    /// The ID token claim that lists the user's groups (mapped to teams); `None`: teams are
    /// not managed by SSO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// What the sign-in button says ("Sign in with …").
    pub display_name: String,
}

/// What a failed sign-in tells the person (and, through them, the admin).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// What went wrong, in words.
    pub message: String,
    /// The provider's `error` and `error_description`, when it sent them.
    pub provider_error: Option<String>,
    pub provider_description: Option<String>,
    /// What an admin should change.
    pub hint: Option<String>,
    /// 400 when the browser or the person can fix it, 502 when the provider answered wrongly.
    #[serde(skip)]
    pub status: u16,
}

impl Failure {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Failure { message: message.into(), provider_error: None, provider_description: None, hint: None, status }
    }
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "sso: store");
        Failure::new(500, "The server could not complete the sign-in (a database error, logged on the server).")
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::new(e.status.as_u16(), e.message)
    }
}

/// The URL this server is reached at: the configured public URL, else the request's host
/// (https when served over TLS or behind a proxy that says so).
pub fn base_url(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if crate::web::session::is_secure(state, headers) { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// The organization's SSO settings (defaults when none are stored).
pub async fn load(state: &AppState, org: &OrgId) -> Result<Sso, StoreError> {
    let settings = state.store.org_settings(org).await?;
    Ok(settings.get(SETTINGS_KEY).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default())
}

/// The settings as answered: no secret, with the redirect URI to register at the provider and
/// the link that starts a sign-in.
pub fn render(sso: &Sso, base_url: &str, org_name: &str, now: i64) -> Value {
    let oidc = sso.oidc.as_ref().map(|o| {
        json!({"enabled": o.enabled, "issuer": o.issuer, "clientId": o.client_id,
               "clientSecretSet": o.client_secret_encrypted.is_some(), "scopes": o.scopes,
               "groupsClaim": o.groups_claim, "displayName": o.display_name,
               "redirectUri": format!("{base_url}{CALLBACK_PATH}")})
    });
    let saml = sso.saml.as_ref().map(|s| saml::render(s, base_url, org_name, now));
    json!({"oidc": oidc, "saml": saml, "localPasswords": sso.local_passwords,
           "samlAcsUrl": format!("{base_url}{}", saml::ACS_PATH),
           "samlSpEntityId": saml::sp_entity_id(base_url, org_name),
           "redirectUri": format!("{base_url}{CALLBACK_PATH}"),
           "signInUrl": format!("{base_url}/ui/sso/start?org={}", crate::web::urlencode(org_name))})
}

fn secret_aad(org: &OrgId) -> String {
    format!("sso-oidc-client-secret:{}", org.0)
}

/// `PUT /v1/organization/sso` (and the organization page's form): check the body, every error
/// at its path; with an enabled provider, read its discovery document so a wrong issuer is
/// refused now rather than at the first sign-in. Audited with the organization's settings.
pub async fn save(state: &AppState, actor: &Actor, body: &Value) -> ApiResult<Sso> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object {oidc, saml, localPasswords}").into());
    };
    let mut errs = FieldErrors::default();
    for k in obj.keys().filter(|k| !matches!(k.as_str(), "oidc" | "saml" | "localPasswords")) {
        errs.push(k.clone(), "is not a setting of single sign-on (oidc, saml, localPasswords)");
    }
    let old = load(state, &actor.org).await?;
    let local_passwords = match obj.get("localPasswords") {
        None => old.local_passwords,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errs.push("localPasswords", "must be true or false");
            true
        }
    };
    let mut secret_plain = None;
    let oidc = match obj.get("oidc") {
        None => old.oidc.clone(),
        Some(Value::Null) => None,
        Some(Value::Object(o)) => {
            let (oidc, secret) = check_oidc(&mut errs, o, old.oidc.as_ref());
            secret_plain = secret;
            Some(oidc)
        }
        Some(_) => {
            errs.push("oidc", "must be an object {issuer, clientId, clientSecret, …} or null");
            None
        }
    };
    let saml = match obj.get("saml") {
        None => old.saml.clone(),
        Some(Value::Null) => None,
        Some(Value::Object(o)) => saml::check(state, &mut errs, o, old.saml.as_ref()).await,
        Some(_) => {
            errs.push(
                "saml",
                "must be an object {idpMetadataXml or idpMetadataUrl, emailAttribute, groupsAttribute, …} or null",
            );
            None
        }
    };
    let oidc_on = oidc.as_ref().is_some_and(|o| o.enabled);
    let saml_on = saml.as_ref().is_some_and(|s| s.enabled);
    if oidc_on && saml_on {
        errs.push(
            "saml.enabled",
            "an organization signs in through one identity provider: disable OIDC (oidc.enabled false) or SAML",
        );
    }
    if !local_passwords && !oidc_on && !saml_on {
        errs.push(
            "localPasswords",
            "can be false only with an enabled identity provider (oidc.enabled or saml.enabled): otherwise nobody could sign in",
        );
    }
    errs.into_result()?;
    let mut oidc = oidc;
    if let (Some(o), Some(secret)) = (oidc.as_mut(), secret_plain) {
        let key = state.config.secrets_key.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::SecretsKeyMissing,
                "the OIDC client secret is stored encrypted, which needs a master key: set PORTOLAN_SECRETS_KEY (or PORTOLAN_SECRETS_KEY_FILE) on every node",
            )
        })?;
        o.client_secret_encrypted = Some(key.encrypt(&secret, &secret_aad(&actor.org)));
    }
    if let Some(o) = oidc.as_ref().filter(|o| o.enabled)
        && let Err(f) = discover(state, &o.issuer, true).await
    {
        let msg = match f.hint {
            Some(h) => format!("{} {h}", f.message),
            None => f.message,
        };
        return Err(FieldError::new("oidc.issuer", msg).into());
    }
    let sso = Sso { oidc, saml, local_passwords };
    store(state, actor, &sso).await?;
    Ok(sso)
}

/// Write `sso` into the organization's settings, audited as `actor`'s change.
async fn store(state: &AppState, actor: &Actor, sso: &Sso) -> Result<(), StoreError> {
    let mut settings: Map<String, Value> =
        state.store.org_settings(&actor.org).await?.as_object().cloned().unwrap_or_default();
    settings.insert(SETTINGS_KEY.into(), serde_json::to_value(sso).unwrap_or(Value::Null));
    state.store.set_org_settings(&actor.org, &Value::Object(settings), &audit_ctx(actor)).await
}

/// Check an `oidc` object; the plain client secret when one is given.
fn check_oidc(errs: &mut FieldErrors, o: &Map<String, Value>, old: Option<&Oidc>) -> (Oidc, Option<String>) {
    const KEYS: &[&str] =
        &["enabled", "issuer", "clientId", "clientSecret", "scopes", "groupsClaim", "displayName", "clientSecretSet"];
    for k in o.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        errs.push(format!("oidc.{k}"), format!("is not an OIDC setting (one of {})", KEYS[..7].join(", ")));
    }
    let text = |errs: &mut FieldErrors, key: &str, max: usize| -> Option<String> {
        match o.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => Some(s.trim().to_string()),
            Some(_) => {
                errs.push(format!("oidc.{key}"), format!("must be a non-empty string of at most {max} characters"));
                None
            }
        }
    };
    let enabled = match o.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errs.push("oidc.enabled", "must be true or false");
            true
        }
    };
    let issuer = text(errs, "issuer", 500).unwrap_or_else(|| {
        if !o.contains_key("issuer") {
            errs.push(
                "oidc.issuer",
                "is required: the provider's issuer URL, e.g. https://login.example.com/realms/acme",
            );
        }
        String::new()
    });
    if !issuer.is_empty() {
        match url::Url::parse(&issuer) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.query().is_none() && u.fragment().is_none() => {}
            _ => errs.push("oidc.issuer", format!("{issuer:?} is not an http(s) URL without query or fragment")),
        }
    }
    let client_id = text(errs, "clientId", 500).unwrap_or_else(|| {
        if !o.contains_key("clientId") {
            errs.push("oidc.clientId", "is required: the client (application) id registered at the provider");
        }
        String::new()
    });
    let secret = text(errs, "clientSecret", 2000);
    // A new secret replaces the old one; without one the old one stays, unless the client id
    // changed (a secret belongs to its client).
    let keep_old = secret.is_none() && old.is_some_and(|old| old.client_id == client_id);
    let scopes = match o.get("scopes") {
        None => vec!["openid".to_string(), "email".to_string(), "profile".to_string()],
        Some(Value::Array(a)) if a.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty() && !s.contains(' '))) => {
            let s: Vec<String> = a.iter().filter_map(Value::as_str).map(str::to_string).collect();
            if !s.iter().any(|x| x == "openid") {
                errs.push("oidc.scopes", "must include \"openid\" (without it the provider sends no ID token)");
            }
            s
        }
        Some(_) => {
            errs.push("oidc.scopes", "must be an array of scope names without spaces, e.g. [\"openid\", \"email\"]");
            Vec::new()
        }
    };
    let groups_claim = text(errs, "groupsClaim", 200);
    let display_name = text(errs, "displayName", 100).unwrap_or_else(|| "single sign-on".to_string());
    let oidc = Oidc {
        enabled,
        issuer,
        client_id,
        client_secret_encrypted: if keep_old { old.and_then(|o| o.client_secret_encrypted.clone()) } else { None },
        scopes,
        groups_claim,
        display_name,
    };
    (oidc, secret)
}

/// The parts of the provider's discovery document the flow uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// How long a provider's discovery document and key set are reused.
const DOC_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Most documents kept (the cache is emptied when full).
const DOC_CACHE_MAX: usize = 1000;

/// The providers' discovery documents and key sets by URL, each reused for [`DOC_TTL`]: a
/// sign-in costs the provider one token request, and a burst of sign-in starts (or someone
/// requesting `/ui/sso/start` in a loop) does not become a burst of requests to the provider.
/// Saving the settings always reads the provider afresh; an ID token naming a key the cached
/// set lacks refetches the set once (the provider rotated its keys).
#[derive(Default)]
pub struct DocCache(std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Value)>>);

impl DocCache {
    fn get(&self, url: &str) -> Option<Value> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(url).filter(|(at, _)| at.elapsed() < DOC_TTL).map(|(_, v)| v.clone())
    }
    fn put(&self, url: &str, v: &Value) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= DOC_CACHE_MAX {
            map.clear();
        }
        map.insert(url.to_string(), (std::time::Instant::now(), v.clone()));
    }
}

/// [`get_json`] through the cache unless `fresh`.
async fn cached_json(state: &AppState, url: &str, what: &str, fresh: bool) -> Result<Value, Failure> {
    if !fresh && let Some(v) = state.sso_docs.get(url) {
        return Ok(v);
    }
    let v = get_json(state, url, what).await?;
    state.sso_docs.put(url, &v);
    Ok(v)
}

/// GET a JSON document from the provider.
async fn get_json(state: &AppState, url: &str, what: &str) -> Result<Value, Failure> {
    let ex = state
        .outbound
        .send(OutboundRequest {
            method: "GET".into(),
            url: url.to_string(),
            headers: vec![("accept".into(), "application/json".into())],
            body: None,
        })
        .await;
    answer_json(ex, what, url)
}

pub(crate) fn answer_json(ex: crate::outbound::Exchange, what: &str, url: &str) -> Result<Value, Failure> {
    if let Some(e) = ex.error {
        return Err(Failure::new(502, format!("The identity provider's {what} at {url} could not be read: {e}."))
            .hint("Check the issuer URL, and that this server reaches the provider (proxy, CA bundle, firewall)."));
    }
    let Some(r) = ex.response else { return Err(Failure::new(502, format!("No answer from {url}."))) };
    let body: Option<Value> = serde_json::from_str(&r.body).ok();
    if !(200..300).contains(&r.status) {
        let mut f = Failure::new(502, format!("The identity provider's {what} at {url} answered HTTP {}.", r.status));
        if let Some(b) = &body {
            f.provider_error = b.get("error").and_then(Value::as_str).map(str::to_string);
            f.provider_description = b.get("error_description").and_then(Value::as_str).map(str::to_string);
        }
        return Err(f);
    }
    body.ok_or_else(|| Failure::new(502, format!("The identity provider's {what} at {url} is not JSON.")))
}

/// The discovery document of `issuer` (from the cache unless `fresh`), checked: its `issuer`
/// must be the configured one exactly (OpenID Connect Discovery §4.3).
pub async fn discover(state: &AppState, issuer: &str, fresh: bool) -> Result<Metadata, Failure> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let doc = cached_json(state, &url, "discovery document", fresh).await?;
    let meta: Metadata = serde_json::from_value(doc).map_err(|e| {
        Failure::new(502, format!("The discovery document at {url} is not an OpenID Connect provider's: {e}."))
            .hint("The issuer URL must be the provider's issuer, the URL its discovery document lives under.")
    })?;
    if meta.issuer != issuer {
        return Err(Failure::new(502, format!(
            "The discovery document at {url} names the issuer {:?}, but the organization is configured with {issuer:?}.",
            meta.issuer
        ))
        .hint(format!("Set the issuer to exactly {:?} (ID tokens are checked against it).", meta.issuer)));
    }
    if let Some(m) = &meta.code_challenge_methods_supported
        && !m.iter().any(|m| m == "S256")
    {
        return Err(Failure::new(502, "The provider does not support PKCE with S256, which Portolan requires.")
            .hint("Enable PKCE (S256) for the client at the provider."));
    }
    Ok(meta)
}

/// A started sign-in, kept in the encrypted flow cookie.
mod flow;
mod identity;
pub mod saml;

pub use flow::{finish, no_key, pkce_challenge, start};
pub use identity::{Identity, identity_of, provision, verify_id_token};
