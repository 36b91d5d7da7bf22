//! Single sign-on through OpenID Connect (port-api.md §8.7; issue 13 item 4).
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
const MAX_GROUPS: usize = 200;
/// The ID token algorithms accepted: the provider's public keys only (never `none` or a
/// shared-secret HMAC).
const ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// The organization's SSO settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sso {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
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
        Sso { oidc: None, local_passwords: true }
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
    fn new(status: u16, message: impl Into<String>) -> Self {
        Failure { message: message.into(), provider_error: None, provider_description: None, hint: None, status }
    }
    fn hint(mut self, hint: impl Into<String>) -> Self {
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
pub fn render(sso: &Sso, base_url: &str, org_name: &str) -> Value {
    let oidc = sso.oidc.as_ref().map(|o| {
        json!({"enabled": o.enabled, "issuer": o.issuer, "clientId": o.client_id,
               "clientSecretSet": o.client_secret_encrypted.is_some(), "scopes": o.scopes,
               "groupsClaim": o.groups_claim, "displayName": o.display_name,
               "redirectUri": format!("{base_url}{CALLBACK_PATH}")})
    });
    json!({"oidc": oidc, "localPasswords": sso.local_passwords,
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
        return Err(FieldError::new("", "the body must be a JSON object {oidc, localPasswords}").into());
    };
    let mut errs = FieldErrors::default();
    for k in obj.keys().filter(|k| !matches!(k.as_str(), "oidc" | "localPasswords")) {
        errs.push(k.clone(), "is not a setting of single sign-on (oidc, localPasswords)");
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
    if !local_passwords && !oidc.as_ref().is_some_and(|o| o.enabled) {
        errs.push(
            "localPasswords",
            "can be false only with an enabled OIDC provider (oidc.enabled): otherwise nobody could sign in",
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
    let sso = Sso { oidc, local_passwords };
    let mut settings: Map<String, Value> =
        state.store.org_settings(&actor.org).await?.as_object().cloned().unwrap_or_default();
    settings.insert(SETTINGS_KEY.into(), serde_json::to_value(&sso).unwrap_or(Value::Null));
    state.store.set_org_settings(&actor.org, &Value::Object(settings), &audit_ctx(actor)).await?;
    Ok(sso)
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

fn answer_json(ex: crate::outbound::Exchange, what: &str, url: &str) -> Result<Value, Failure> {
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Flow {
    org: String,
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    exp: i64,
}

fn flow_aad() -> &'static str {
    "sso-flow"
}

fn no_key() -> Failure {
    Failure::new(500, "This server has no secrets key, which single sign-on needs.")
        .hint("Set PORTOLAN_SECRETS_KEY (or PORTOLAN_SECRETS_KEY_FILE) on every node.")
}

/// PKCE's S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// Begin a sign-in for the organization named `org_name`: the provider's authorization URL to
/// send the browser to, the provider's display name, and the flow cookie's value.
pub async fn start(
    state: &AppState,
    org_name: &str,
    next: &str,
    base_url: &str,
) -> Result<(String, String, String), Failure> {
    let org_name = org_name.trim();
    if org_name.is_empty() {
        return Err(Failure::new(400, "Type the name of your organization to sign in with single sign-on."));
    }
    let Some(org) = state.store.org_by_name(org_name).await? else {
        return Err(Failure::new(404, format!("There is no organization named {org_name:?} on this server."))
            .hint("Check the spelling; an admin sees the name on the organization page."));
    };
    let sso = load(state, &org.id).await?;
    let Some(oidc) = sso.oidc.filter(|o| o.enabled) else {
        return Err(Failure::new(
            400,
            format!("The organization {org_name:?} does not sign in through single sign-on."),
        )
        .hint("An admin sets up the identity provider on the organization page (or PUT /v1/organization/sso)."));
    };
    let key = state.config.secrets_key.as_ref().ok_or_else(no_key)?;
    let meta = discover(state, &oidc.issuer, false).await?;
    let flow = Flow {
        org: org.id.0.clone(),
        state: crate::auth::new_token(),
        nonce: crate::auth::new_token(),
        verifier: crate::auth::new_token(),
        next: next.to_string(),
        exp: state.clock.now() + FLOW_TTL_SECS,
    };
    let mut url = url::Url::parse(&meta.authorization_endpoint).map_err(|_| {
        Failure::new(
            502,
            format!("The provider's authorization endpoint {:?} is not a URL.", meta.authorization_endpoint),
        )
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &oidc.client_id)
        .append_pair("redirect_uri", &format!("{base_url}{CALLBACK_PATH}"))
        .append_pair("scope", &oidc.scopes.join(" "))
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &pkce_challenge(&flow.verifier))
        .append_pair("code_challenge_method", "S256");
    let cookie = key.encrypt(&serde_json::to_string(&flow).unwrap_or_default(), flow_aad());
    Ok((url.to_string(), oidc.display_name, cookie))
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `None`: no groups claim configured, or the token did not carry it (teams unchanged).
    pub groups: Option<Vec<String>>,
}

/// What a provider's `error` code usually means, for the admin.
fn provider_error_hint(code: &str) -> &'static str {
    match code {
        "access_denied" => {
            "The provider refused the sign-in: usually the person is not assigned to the application at the provider, or declined consent."
        }
        "invalid_client" | "unauthorized_client" => {
            "The provider does not accept this client: check the client id and secret on the organization page against the application at the provider."
        }
        "invalid_scope" => {
            "A scope in the organization's SSO settings is unknown to the provider: remove it or allow it."
        }
        "invalid_grant" => {
            "The code was refused: it expired or was used already, or the redirect URI registered at the provider differs from the one on the organization page."
        }
        "invalid_request" | "redirect_uri_mismatch" => {
            "Register exactly the redirect URI shown on the organization page at the provider."
        }
        "login_required" | "consent_required" | "interaction_required" => {
            "Sign in again and complete the provider's page."
        }
        "temporarily_unavailable" | "server_error" => {
            "The provider had a problem: try again, then ask its administrator."
        }
        _ => "Look the error up in the provider's documentation or its logs.",
    }
}

/// Finish a sign-in from the provider's redirect: the organization, who signed in, and where to
/// go next.
pub async fn finish(
    state: &AppState,
    cookie: Option<&str>,
    query: &std::collections::HashMap<String, String>,
    base_url: &str,
) -> Result<(OrgId, Identity, String), Failure> {
    let key = state.config.secrets_key.as_ref().ok_or_else(no_key)?;
    let flow: Option<Flow> =
        cookie.and_then(|c| key.decrypt(c, flow_aad()).ok()).and_then(|t| serde_json::from_str(&t).ok());
    let stale = || {
        Failure::new(400, "This sign-in was not started in this browser, or it took longer than 10 minutes.").hint(
            "Start again from the sign-in page. If it keeps happening, the browser may block cookies for this site.",
        )
    };
    let Some(flow) = flow else { return Err(stale()) };
    if flow.exp < state.clock.now() {
        return Err(stale());
    }
    if query.get("state") != Some(&flow.state) {
        return Err(Failure::new(
            400,
            "The provider's answer does not belong to the sign-in this browser started (the state differs).",
        )
        .hint("Start again from the sign-in page."));
    }
    if let Some(code) = query.get("error") {
        let mut f = Failure::new(400, "The identity provider did not sign you in.").hint(provider_error_hint(code));
        f.provider_error = Some(code.clone());
        f.provider_description = query.get("error_description").cloned();
        return Err(f);
    }
    let org = OrgId(flow.org.clone());
    let sso = load(state, &org).await?;
    let Some(oidc) = sso.oidc.filter(|o| o.enabled) else {
        return Err(Failure::new(400, "Single sign-on was turned off for this organization during the sign-in."));
    };
    let Some(code) = query.get("code") else {
        return Err(Failure::new(400, "The provider's answer has neither a code nor an error."));
    };
    let meta = discover(state, &oidc.issuer, false).await?;
    let secret = match &oidc.client_secret_encrypted {
        Some(enc) => Some(key.decrypt(enc, &secret_aad(&org)).map_err(|e| {
            Failure::new(500, format!("The stored client secret cannot be read: {e}."))
                .hint("An admin enters the client secret again on the organization page.")
        })?),
        None => None,
    };
    let redirect_uri = format!("{base_url}{CALLBACK_PATH}");
    let mut pairs: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect_uri),
        ("code_verifier", &flow.verifier),
    ];
    let mut headers = vec![
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    let methods = meta.token_endpoint_auth_methods_supported.clone().unwrap_or_default();
    match &secret {
        // client_secret_basic is the default (RFC 8414 §2); _post when the provider offers only it.
        Some(s) if methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic") => {
            let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(&oidc.client_id), enc(s)));
            headers.push(("authorization".into(), format!("Basic {basic}")));
        }
        Some(s) => pairs.extend([("client_id", oidc.client_id.as_str()), ("client_secret", s.as_str())]),
        None => pairs.push(("client_id", &oidc.client_id)),
    }
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let ex = state
        .outbound
        .send(OutboundRequest {
            method: "POST".into(),
            url: meta.token_endpoint.clone(),
            headers,
            body: Some(body.into_bytes()),
        })
        .await;
    let tokens = answer_json(ex, "token endpoint", &meta.token_endpoint).map_err(|mut f| {
        if let Some(code) = &f.provider_error {
            f.hint = Some(provider_error_hint(code).to_string());
        }
        f
    })?;
    let Some(id_token) = tokens.get("id_token").and_then(Value::as_str) else {
        return Err(Failure::new(502, "The provider's token answer has no ID token.")
            .hint("Keep the scope \"openid\" in the organization's SSO settings."));
    };
    let jwks = cached_json(state, &meta.jwks_uri, "key set (JWKS)", false).await?;
    let now = state.clock.now();
    let claims = match verify_id_token(id_token, &jwks, &oidc.issuer, &oidc.client_id, &flow.nonce, now) {
        // A key the cached set lacks: the provider may have rotated its keys since.
        Err(f) if f.message.contains("which the provider's key set does not hold") => {
            let jwks = cached_json(state, &meta.jwks_uri, "key set (JWKS)", true).await?;
            verify_id_token(id_token, &jwks, &oidc.issuer, &oidc.client_id, &flow.nonce, now)?
        }
        other => other?,
    };
    let identity = identity_of(&claims, oidc.groups_claim.as_deref())?;
    Ok((org, identity, flow.next))
}

/// The claims of a token without checking anything (for error messages only).
fn unverified_claims(token: &str) -> Map<String, Value> {
    token
        .split('.')
        .nth(1)
        .and_then(|p| B64.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// Verify an ID token against the provider's key set (`jwks`): signature, issuer, audience
/// (and `azp` when there are several audiences), `exp` / `iat` / `nbf` against `now` with
/// [`LEEWAY_SECS`], and the nonce. Its claims when it holds.
pub fn verify_id_token(
    token: &str,
    jwks: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<Map<String, Value>, Failure> {
    let bad = |m: String| Failure::new(502, m);
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| bad(format!("The provider's ID token is not a well-formed signed JWT ({e}).")))?;
    let alg = format!("{:?}", header.alg);
    if !ALGORITHMS.contains(&alg.as_str()) {
        return Err(bad(format!(
            "The ID token is signed with {alg}, a shared-secret algorithm; Portolan accepts only tokens signed with the provider's published keys ({}).",
            ALGORITHMS.join(", ")
        ))
        .hint("Set the client's ID token signature algorithm to RS256 (or ES256) at the provider."));
    }
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone())
        .map_err(|e| bad(format!("The provider's key set (JWKS) cannot be read: {e}.")))?;
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None => (set.keys.len() == 1).then(|| &set.keys[0]),
    };
    let Some(jwk) = jwk else {
        return Err(bad(format!(
            "The ID token names the key {:?}, which the provider's key set does not hold.",
            header.kid.as_deref().unwrap_or("(none)")
        ))
        .hint("The provider may have rotated its keys; if this lasts, its key set URL is not the one it signs with."));
    };
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)
        .map_err(|e| bad(format!("The provider's key {:?} cannot be used: {e}.", header.kid)))?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[client_id]);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["iss", "aud", "exp"]);
    // Times are checked below against this server's clock, with words for each case.
    v.validate_exp = false;
    v.validate_nbf = false;
    let seen = unverified_claims(token);
    let claims = match jsonwebtoken::decode::<Map<String, Value>>(token.as_bytes(), &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            return Err(match e.kind() {
                K::InvalidSignature => bad(
                    "The ID token's signature does not verify with the provider's published keys: it was altered on the way, or signed by someone else."
                        .into(),
                ),
                K::InvalidAudience => bad(format!(
                    "The ID token is meant for another application (aud {}), not this organization's client {client_id:?}.",
                    seen.get("aud").map(Value::to_string).unwrap_or_else(|| "missing".into())
                ))
                .hint("Set the client id on the organization page to the provider's client id of this application."),
                K::InvalidIssuer => bad(format!(
                    "The ID token was issued by {}, not by the configured issuer {issuer:?}.",
                    seen.get("iss").map(Value::to_string).unwrap_or_else(|| "nobody (no iss)".into())
                ))
                .hint("Set the issuer on the organization page to the provider's issuer exactly."),
                K::MissingRequiredClaim(c) => bad(format!("The ID token has no {c:?} claim.")),
                _ => bad(format!("The ID token was refused: {e}.")),
            });
        }
    };
    let time = |k: &str| claims.get(k).and_then(Value::as_i64);
    let skew =
        "If the provider issued it just now, this server's clock and the provider's differ: synchronise both (NTP).";
    let Some(exp) = time("exp") else { return Err(bad("The ID token's exp is not a number of seconds.".into())) };
    if now > exp + LEEWAY_SECS {
        return Err(bad(format!(
            "The ID token expired {} s ago by this server's clock (allowed clock difference: {LEEWAY_SECS} s).",
            now - exp
        ))
        .hint(skew));
    }
    for (k, what) in [("iat", "was issued"), ("nbf", "becomes valid")] {
        if let Some(t) = time(k)
            && t > now + LEEWAY_SECS
        {
            return Err(bad(format!(
                "The ID token {what} {} s in the future by this server's clock (allowed clock difference: {LEEWAY_SECS} s).",
                t - now
            ))
            .hint(skew));
        }
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(bad(
            "The ID token's nonce does not match this sign-in: it was issued for another sign-in (replayed).".into(),
        )
        .hint("Start again from the sign-in page."));
    }
    if claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1)
        && claims.get("azp").and_then(Value::as_str).is_some_and(|azp| azp != client_id)
    {
        return Err(bad(format!("The ID token was issued to another client (azp), not {client_id:?}.")));
    }
    Ok(claims)
}

/// Who signed in, from verified claims.
pub fn identity_of(claims: &Map<String, Value>, groups_claim: Option<&str>) -> Result<Identity, Failure> {
    let Some(email) = claims.get("email").and_then(Value::as_str).map(crate::web::session::normalize_email) else {
        return Err(Failure::new(502, "The provider sent no e-mail address for this person (no email claim).")
            .hint("Keep the scope \"email\" in the organization's SSO settings, and give the person an e-mail at the provider."));
    };
    if !crate::ops::people::valid_email(&email) {
        return Err(Failure::new(502, format!("The provider's email claim {email:?} is not an e-mail address.")));
    }
    if claims.get("email_verified").is_some_and(|v| v == &Value::Bool(false) || v == "false") {
        return Err(Failure::new(403, format!("The provider says the e-mail {email} is not verified."))
            .hint("Verify the e-mail at the provider (Portolan trusts verified addresses only)."));
    }
    let name = |k: &str| claims.get(k).and_then(Value::as_str).map(|s| s.chars().take(100).collect::<String>());
    let groups = groups_claim.and_then(|c| claims.get(c)).map(|v| match v {
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).take(MAX_GROUPS).collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    });
    Ok(Identity { email, first_name: name("given_name"), last_name: name("family_name"), groups })
}

const QUOTA_HINT: &str =
    "An admin frees a seat (removes a user) or asks the operator to raise the users quota (portolan org quota).";

/// A group name as a team name: a leading `/` (Keycloak's group paths) dropped; `None` when it
/// breaks Port's team name rule.
fn team_name(group: &str) -> Option<String> {
    let name = group.trim().trim_start_matches('/').to_string();
    crate::ops::people::check_team_name(&name).ok().map(|()| name)
}

/// The signed-in person's account: found, or created just in time as a Member; names and SSO
/// teams brought up to date. Audited as done by the person through SSO.
pub async fn provision(state: &AppState, org: &OrgId, id: &Identity) -> Result<User, Failure> {
    let actor = Actor {
        client_id: id.email.clone(),
        org: org.clone(),
        user_agent: Some("SSO (OIDC)".into()),
        principal: portolan_core::permissions::Principal::Machine,
    };
    let user = match state.store.user_by_email(&id.email).await? {
        Some(u) if u.org != *org => {
            return Err(Failure::new(403, format!(
                "The e-mail {} belongs to a user of another organization on this server.",
                id.email
            ))
            .hint("A person belongs to one organization; an operator moves the account, or the person uses another e-mail."));
        }
        Some(u) => u,
        None => {
            let (_, token) = crate::ops::people::create_invitation(state, org, &id.email, "member", "sso")
                .await
                .map_err(|e| Failure::from(e).hint(QUOTA_HINT))?;
            let user = User {
                id: crate::web::session::new_user_id(),
                org: org.clone(),
                email: id.email.clone(),
                // Not a PHC string: no password ever verifies against it.
                password_hash: "!sso".into(),
                role: "member".into(),
                created_at: crate::ops::audit::now_iso(),
            };
            let user = state
                .store
                .accept_invitation(&crate::auth::hash_secret(&token), &user, state.clock.now())
                .await
                .map_err(|e| match e {
                    StoreError::Invalid(m) => {
                        Failure::new(403, format!("No account was created: {}.", m.message)).hint(QUOTA_HINT)
                    }
                    StoreError::Conflict(_) => Failure::new(
                        409,
                        "The account was created by another sign-in at the same moment: sign in again.",
                    ),
                    e => e.into(),
                })?;
            let diff =
                json!({"before": null, "after": {"email": user.email, "role": "member", "provider": TEAM_PROVIDER}});
            crate::ops::audit::record_change(state, &actor, "user", "CREATE", &user.email, Some(diff)).await;
            user
        }
    };
    let Some(person) = state.store.get_person(org, &user.email).await? else { return Ok(user) };
    if person.status == "Disabled" {
        return Err(Failure::new(403, "This account is disabled.")
            .hint("An admin of your organization enables it on the users page."));
    }
    let mut edit = PersonEdit::default();
    if id.first_name.is_some() && id.first_name != person.first_name {
        edit.first_name = Some(id.first_name.clone());
    }
    if id.last_name.is_some() && id.last_name != person.last_name {
        edit.last_name = Some(id.last_name.clone());
    }
    if let Some(groups) = &id.groups {
        let wanted: BTreeSet<String> = groups.iter().filter_map(|g| team_name(g)).collect();
        let teams = state.store.list_teams(org).await?;
        for name in wanted.iter().filter(|n| !teams.iter().any(|t| &t.name == *n)) {
            let w = TeamWrite {
                name: name.clone(),
                id: format!("team_{}", crate::auth::hex(&crate::auth::random_bytes::<8>())),
                description: Some("Provided by single sign-on (OIDC groups).".into()),
                provider: TEAM_PROVIDER.into(),
                members: None,
            };
            match state.store.save_team(org, None, &w, SaveMode::Create, &audit_ctx(&actor)).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Teams an admin manages in Portolan stay; SSO teams follow the groups.
        let managed: BTreeSet<&str> =
            teams.iter().filter(|t| t.provider == TEAM_PROVIDER).map(|t| t.name.as_str()).collect();
        let mut next: BTreeSet<String> =
            person.teams.iter().filter(|t| !managed.contains(t.as_str())).cloned().collect();
        next.extend(wanted);
        if next.iter().ne(person.teams.iter().collect::<BTreeSet<_>>()) {
            edit.teams = Some(next.into_iter().collect());
        }
    }
    if edit != PersonEdit::default() {
        state.store.update_person(org, &user.email, &edit, &audit_ctx(&actor)).await?;
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_rfc7636_s256() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn group_names_become_team_names_or_are_skipped() {
        assert_eq!(team_name("/platform").as_deref(), Some("platform"));
        assert_eq!(team_name(" SRE ").as_deref(), Some("SRE"));
        assert_eq!(team_name("a/b"), None);
        assert_eq!(team_name(""), None);
    }

    #[test]
    fn identity_needs_a_verified_email_and_reads_groups() {
        let c = |v: Value| v.as_object().cloned().unwrap();
        let id = identity_of(
            &c(json!({"email": "Ann@Example.com", "given_name": "Ann", "groups": ["a", 3, "b"]})),
            Some("groups"),
        )
        .unwrap();
        assert_eq!(id.email, "ann@example.com");
        assert_eq!(id.groups, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(identity_of(&c(json!({"email": "a@b.co"})), Some("groups")).unwrap().groups, None);
        assert_eq!(identity_of(&c(json!({"email": "a@b.co", "groups": "x"})), None).unwrap().groups, None);
        assert!(identity_of(&c(json!({"sub": "1"})), None).unwrap_err().message.contains("no email claim"));
        let f = identity_of(&c(json!({"email": "a@b.co", "email_verified": false})), None).unwrap_err();
        assert!(f.message.contains("not verified"), "{f:?}");
    }
}
