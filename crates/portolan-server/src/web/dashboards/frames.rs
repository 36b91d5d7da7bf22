//! Protected iframe widgets (`urlType: "protected"`, port-api.md §9.3): the framed page wants
//! an OAuth 2 access token of the person looking at it. Portolan gets one through the
//! authorization code flow with PKCE (S256) as a public client (a client id, no secret) and
//! hands it to the frame as `?auth_token=…`, Port's convention.
//!
//! 1. Until the person holds a token for the widget's provider, the widget shows a sign-in
//!    link to `/ui/frames/signin?page=…&widget=…`.
//! 2. That route reads the widget from the stored page (the provider's URLs never come from
//!    the request), keeps `state` and the PKCE verifier in an encrypted cookie
//!    ([`FLOW_COOKIE`], [`FLOW_TTL_SECS`], so any node finishes the flow) and sends the
//!    browser to `authorizationUrl`.
//! 3. `/ui/frames/callback` checks `state`, exchanges the code at `tokenUrl` through the
//!    guarded client and keeps the access token in an encrypted cookie per provider
//!    (`portolan_frame_<key>`, bound to the person and the organization, for the token's
//!    `expires_in`, at most [`MAX_TOKEN_SECS`]), then goes back to the dashboard.
//!
//! The redirect URI to register at the provider is `{public URL}/ui/frames/callback`. A
//! failure is the sign-in failure page: what went wrong, what the provider said, what to
//! change in the widget or at the provider.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::widgets::{Bad, Body, Cx, bad, str_field};
use crate::outbound::OutboundRequest;
use crate::sso::{Failure, answer_json, no_key, pkce_challenge};
use crate::state::AppState;
use crate::web::WebResult;
use crate::web::form::query_form;
use crate::web::respond::{caller, page_with, see_other};
use crate::web::session::{self, WebUser};
use crate::web::sso::{Redirecting, failure_page_as, with_cookie};
use crate::web::urlencode;

/// The cookie that carries a started frame sign-in (encrypted).
pub const FLOW_COOKIE: &str = "portolan_frame_flow";
/// How long a started frame sign-in may take at the provider.
pub const FLOW_TTL_SECS: i64 = 600;
/// The callback path, registered at the provider as `{public URL}/ui/frames/callback`.
pub const CALLBACK_PATH: &str = "/ui/frames/callback";
/// Longest a kept access token is used, whatever its `expires_in`.
pub const MAX_TOKEN_SECS: i64 = 86_400;
/// How long a token is kept when the provider does not say (`expires_in` is optional).
const DEFAULT_TOKEN_SECS: i64 = 3_600;
/// A token this close to its end is not handed to a frame (the frame would fail mid-load).
const TOKEN_MARGIN_SECS: i64 = 30;
/// Browsers keep cookies up to 4,096 bytes.
const MAX_COOKIE: usize = 4_000;
/// The prefix of the kept tokens' cookies (`sign out` removes them all).
pub const TOKEN_COOKIE_PREFIX: &str = "portolan_frame_t_";
const FLOW_AAD: &str = "frame-flow";
const SETTINGS: &str =
    "the frame's sign-in settings (authorizationUrl, tokenUrl, clientId, scopes) are in the dashboard's widget";

/// How a protected frame's page is signed in to.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FrameAuth {
    pub authorization_url: url::Url,
    pub token_url: url::Url,
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl FrameAuth {
    /// The widget's sign-in settings; `None` for a public frame.
    pub(super) fn of(w: &Value) -> Result<Option<FrameAuth>, Bad> {
        match str_field(w, "urlType")? {
            None | Some("public") => return Ok(None),
            Some("protected") => {}
            Some(other) => return Err(bad("urlType", format!("{other:?} is not one of public, protected"))),
        }
        let http_url = |field: &str| -> Result<url::Url, Bad> {
            let raw = str_field(w, field)?.ok_or_else(|| bad(field, "is required for a protected frame"))?;
            let u = url::Url::parse(raw).map_err(|e| bad(field, format!("is not a URL ({e})")))?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(bad(field, "must be an http or https URL with a host"));
            }
            Ok(u)
        };
        let authorization_url = http_url("authorizationUrl")?;
        let token_url = http_url("tokenUrl")?;
        let client_id = str_field(w, "clientId")?
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad("clientId", "is required for a protected frame"))?
            .to_string();
        let scopes = match w.get("scopes") {
            None | Some(Value::Null) => vec!["openid".to_string()],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, s)| match s.as_str().map(str::trim) {
                    Some(s) if !s.is_empty() && !s.contains(' ') => Ok(s.to_string()),
                    _ => Err(bad(format!("scopes[{i}]"), "must be a scope name (a string without spaces)")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("scopes", "must be an array of scope names")),
        };
        if str_field(w, "id")?.is_none_or(str::is_empty) {
            return Err(bad("id", "is required for a protected frame (its sign-in finds the widget by it)"));
        }
        Ok(Some(FrameAuth { authorization_url, token_url, client_id, scopes }))
    }

    /// The provider's key: a token kept for one widget serves every widget with the same
    /// settings.
    fn key(&self) -> String {
        let mut h = Sha256::new();
        for part in [self.authorization_url.as_str(), self.token_url.as_str(), &self.client_id, &self.scopes.join(" ")]
        {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.finalize()[..9].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cookie(&self) -> String {
        format!("{TOKEN_COOKIE_PREFIX}{}", self.key())
    }

    fn provider(&self) -> String {
        self.authorization_url.host_str().unwrap_or_default().to_string()
    }
}

/// An access token as kept in its cookie.
#[derive(Serialize, Deserialize)]
struct Kept {
    org: String,
    user: String,
    token: String,
    exp: i64,
}

/// A started sign-in, as kept in [`FLOW_COOKIE`].
#[derive(Serialize, Deserialize)]
struct Flow {
    org: String,
    user: String,
    page: String,
    widget: String,
    key: String,
    state: String,
    verifier: String,
    exp: i64,
}

/// What a protected frame shows: the frame with the person's token, or the way to get one.
pub(super) fn protected(cx: &Cx<'_>, w: &Value, mut url: url::Url, auth: &FrameAuth) -> Result<Body, Bad> {
    let Some(key) = cx.state.config.secrets_key.as_ref() else {
        return Err(bad(
            "urlType",
            "a protected frame needs this server's secrets key (PORTOLAN_SECRETS_KEY) to keep its tokens",
        ));
    };
    let name = auth.cookie();
    let kept: Option<Kept> = session::cookie_value(cx.headers, &name)
        .and_then(|c| key.decrypt(c, &name).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let now = cx.now.timestamp();
    match kept {
        Some(k) if k.org == cx.user.org.0 && k.user == cx.user.user.id && k.exp > now + TOKEN_MARGIN_SECS => {
            url.query_pairs_mut().append_pair("auth_token", &k.token);
            Ok(Body::Iframe { url: url.to_string() })
        }
        _ => {
            let widget = str_field(w, "id")?.unwrap_or_default();
            let href = format!("/ui/frames/signin?page={}&widget={}", urlencode(cx.page), urlencode(widget));
            Ok(Body::FrameSignIn { href, provider: auth.provider() })
        }
    }
}

/// The protected iframe widget `widget` of the dashboard `page`, as the person may read it.
async fn find(state: &AppState, user: &WebUser, page: &str, widget: &str) -> Result<(bool, FrameAuth), Failure> {
    let gone = || {
        Failure::new(404, format!("The dashboard {page:?} has no frame widget {widget:?} (any more)."))
            .hint("Open the dashboard again: the widget may have been changed or removed.")
    };
    let p = match crate::ops::page::load(state, &caller(user), page).await {
        Ok(p) => p,
        Err(e) if e.code == crate::error::ErrorCode::NotFound => return Err(gone()),
        Err(e) => return Err(e.into()),
    };
    let mut flat = Vec::new();
    super::flatten(
        p.data.get("widgets").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default(),
        12,
        &mut flat,
    );
    let w = flat
        .into_iter()
        .map(|(w, _)| w)
        .find(|w| {
            w.get("id").and_then(Value::as_str) == Some(widget)
                && w.get("type").and_then(Value::as_str) == Some("iframe-widget")
        })
        .ok_or_else(gone)?;
    let auth = FrameAuth::of(w)
        .map_err(|b| Failure::new(400, format!("The frame widget's {} {}.", b.field, b.message)).hint(SETTINGS))?
        .ok_or_else(|| Failure::new(400, "This frame is public: it needs no sign-in."))?;
    Ok((p.data.get("type").and_then(Value::as_str) == Some("home"), auth))
}

fn dashboard_href(page: &str, home: bool) -> String {
    if home { "/ui/home".to_string() } else { format!("/ui/dashboards/{}", urlencode(page)) }
}

fn failure(state: &AppState, back: &str, f: &Failure) -> WebResult {
    failure_page_as(state, "The frame could not sign you in", (back, "Back to the dashboard"), SETTINGS, f)
}

/// `GET /ui/frames/signin?page=…&widget=…`: to the widget's provider.
pub async fn signin(
    State(state): State<AppState>,
    user: WebUser,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> WebResult {
    let q = query_form(&q);
    let (page, widget) = (q.get("page").unwrap_or_default(), q.get("widget").unwrap_or_default());
    let started = async {
        let key = state.config.secrets_key.as_ref().ok_or_else(|| no_key("signed-in frames"))?;
        let (_, auth) = find(&state, &user, page, widget).await?;
        let flow = Flow {
            org: user.org.0.clone(),
            user: user.user.id.clone(),
            page: page.to_string(),
            widget: widget.to_string(),
            key: auth.key(),
            state: crate::auth::new_token(),
            verifier: crate::auth::new_token(),
            exp: state.clock.now() + FLOW_TTL_SECS,
        };
        let mut url = auth.authorization_url.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &auth.client_id)
            .append_pair("redirect_uri", &format!("{}{CALLBACK_PATH}", crate::sso::base_url(&state, &headers)))
            .append_pair("scope", &auth.scopes.join(" "))
            .append_pair("state", &flow.state)
            .append_pair("code_challenge", &pkce_challenge(&flow.verifier))
            .append_pair("code_challenge_method", "S256");
        let cookie = key.encrypt(&serde_json::to_string(&flow).unwrap_or_default(), FLOW_AAD);
        Ok::<_, Failure>((url.to_string(), auth.provider(), cookie))
    }
    .await;
    match started {
        // A page that moves on by itself, as the person's own sign-in does.
        Ok((location, provider, flow)) => {
            let res =
                page_with(&state, axum::http::StatusCode::OK, "sso_redirect.html", Redirecting { location, provider })?;
            Ok(with_cookie(&state, &headers, FLOW_COOKIE, &flow, FLOW_TTL_SECS, res))
        }
        Err(f) => failure(&state, &dashboard_href(page, false), &f),
    }
}

/// What a provider's `error` code usually means for a frame's sign-in.
fn provider_error_hint(code: &str) -> &'static str {
    match code {
        "access_denied" => {
            "The provider refused: the person may not be assigned to the application, or declined consent."
        }
        "invalid_client" | "unauthorized_client" => {
            "The provider does not know the widget's clientId as a public client with PKCE: register one (no secret) at the provider."
        }
        "invalid_scope" => "A scope in the widget's scopes is unknown to the provider: remove it or allow it.",
        "invalid_grant" => {
            "The code was refused: it expired or was used already, or the redirect URI registered at the provider differs."
        }
        "invalid_request" | "redirect_uri_mismatch" => {
            "Register this server's /ui/frames/callback (under its public URL) as a redirect URI of the client at the provider."
        }
        _ => "Look the error up in the provider's documentation or its logs.",
    }
}

/// `GET /ui/frames/callback?code=…&state=…` (or `?error=…`): keep the token, back to the
/// dashboard.
pub async fn callback(
    State(state): State<AppState>,
    user: WebUser,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> WebResult {
    let q = query_form(&q);
    let key = state.config.secrets_key.as_ref();
    let flow: Option<Flow> = key
        .zip(session::cookie_value(&headers, FLOW_COOKIE))
        .and_then(|(k, c)| k.decrypt(c, FLOW_AAD).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let back = flow.as_ref().map_or_else(|| "/ui/dashboards".to_string(), |f| dashboard_href(&f.page, false));
    let kept = async {
        let key = key.ok_or_else(|| no_key("signed-in frames"))?;
        let stale = || {
            Failure::new(400, "This frame sign-in was not started in this browser by you, or it took longer than 10 minutes.")
                .hint("Open the dashboard and press the frame's sign-in link again.")
        };
        let flow = flow.as_ref().filter(|f| f.org == user.org.0 && f.user == user.user.id).ok_or_else(stale)?;
        if flow.exp < state.clock.now() {
            return Err(stale());
        }
        if q.get("state") != Some(flow.state.as_str()) {
            return Err(Failure::new(400, "The provider's answer does not belong to the sign-in this browser started (the state differs).")
                .hint("Press the frame's sign-in link again."));
        }
        if let Some(code) = q.get("error") {
            let mut f = Failure::new(400, "The provider did not sign the frame in.").hint(provider_error_hint(code));
            f.provider_error = Some(code.to_string());
            f.provider_description = q.get("error_description").map(str::to_string);
            return Err(f);
        }
        let code = q.get("code").ok_or_else(|| Failure::new(400, "The provider's answer has neither a code nor an error."))?;
        let (home, auth) = find(&state, &user, &flow.page, &flow.widget).await?;
        if auth.key() != flow.key {
            return Err(Failure::new(400, "The frame's sign-in settings changed during the sign-in.")
                .hint("Press the frame's sign-in link again."));
        }
        let redirect_uri = format!("{}{CALLBACK_PATH}", crate::sso::base_url(&state, &headers));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &redirect_uri),
                ("client_id", &auth.client_id),
                ("code_verifier", &flow.verifier),
            ])
            .finish();
        let ex = state
            .outbound
            .send(OutboundRequest {
                method: "POST".into(),
                url: auth.token_url.to_string(),
                headers: vec![
                    ("content-type".into(), "application/x-www-form-urlencoded".into()),
                    ("accept".into(), "application/json".into()),
                ],
                body: Some(body.into_bytes()),
            })
            .await;
        let unreachable = ex.error.is_some();
        let tokens = answer_json(ex, "token endpoint", auth.token_url.as_str()).map_err(|mut f| {
            f.hint = Some(match &f.provider_error {
                Some(code) => provider_error_hint(code).to_string(),
                None if unreachable => {
                    "Check the widget's tokenUrl, and that this server reaches it (proxy, CA bundle, firewall).".into()
                }
                None => "Check the widget's tokenUrl: it must be the provider's OAuth 2 token endpoint.".into(),
            });
            f
        })?;
        let Some(token) = tokens.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            return Err(Failure::new(502, "The provider's token answer has no access_token.")
                .hint("Check the widget's tokenUrl: it must be the provider's OAuth 2 token endpoint."));
        };
        let life = tokens.get("expires_in").and_then(Value::as_i64).unwrap_or(DEFAULT_TOKEN_SECS).clamp(0, MAX_TOKEN_SECS);
        let name = auth.cookie();
        let kept = Kept { org: user.org.0.clone(), user: user.user.id.clone(), token: token.to_string(), exp: state.clock.now() + life };
        let value = key.encrypt(&serde_json::to_string(&kept).unwrap_or_default(), &name);
        if value.len() > MAX_COOKIE {
            return Err(Failure::new(502, format!(
                "The provider's access token is too large for this browser to keep ({} bytes; a cookie holds about 4,000).",
                token.len()
            ))
            .hint("Ask the provider for a shorter token (fewer scopes or claims, or a reference token)."));
        }
        Ok::<_, Failure>((name, value, life, dashboard_href(&flow.page, home)))
    }
    .await;
    // The flow cookie is spent either way.
    let res = match kept {
        Ok((name, value, life, to)) => with_cookie(&state, &headers, &name, &value, life, see_other(&to)),
        Err(f) => failure(&state, &back, &f)?,
    };
    Ok(with_cookie(&state, &headers, FLOW_COOKIE, "", 0, res))
}

/// The kept frame tokens of a request's cookies (their names), for signing out.
pub fn kept_cookies(headers: &HeaderMap) -> Vec<String> {
    session::cookies(headers)
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(TOKEN_COOKIE_PREFIX))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w(extra: Value) -> Value {
        let mut w = json!({"id": "f", "type": "iframe-widget", "url": "https://grafana.example/d/1",
            "urlType": "protected", "authorizationUrl": "https://idp.example/authorize",
            "tokenUrl": "https://idp.example/token", "clientId": "grafana"});
        w.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        w
    }

    #[test]
    fn settings_are_read_and_each_wrong_one_is_named() {
        let auth = FrameAuth::of(&w(json!({}))).unwrap().unwrap();
        assert_eq!(auth.scopes, ["openid"], "Port's default scope");
        assert_eq!(auth.provider(), "idp.example");
        assert!(FrameAuth::of(&w(json!({"urlType": "public"}))).unwrap().is_none());
        assert!(FrameAuth::of(&json!({"url": "https://x.example"})).unwrap().is_none());
        let cases = [
            (json!({"urlType": "private"}), "urlType"),
            (json!({"authorizationUrl": null}), "authorizationUrl"),
            (json!({"tokenUrl": "javascript:alert(1)"}), "tokenUrl"),
            (json!({"tokenUrl": "not a url"}), "tokenUrl"),
            (json!({"clientId": " "}), "clientId"),
            (json!({"scopes": "openid"}), "scopes"),
            (json!({"scopes": ["openid", "a b"]}), "scopes[1]"),
            (json!({"id": ""}), "id"),
        ];
        for (extra, field) in cases {
            let e = FrameAuth::of(&w(extra.clone())).unwrap_err();
            assert_eq!(e.field, field, "{extra}: {}", e.message);
        }
    }

    #[test]
    fn the_key_follows_every_setting() {
        let base = FrameAuth::of(&w(json!({}))).unwrap().unwrap().key();
        assert_eq!(base.len(), 18);
        assert_eq!(FrameAuth::of(&w(json!({"id": "other", "title": "x"}))).unwrap().unwrap().key(), base);
        for extra in [
            json!({"clientId": "grafana2"}),
            json!({"scopes": ["openid", "email"]}),
            json!({"tokenUrl": "https://idp.example/token2"}),
            json!({"authorizationUrl": "https://idp.example/auth"}),
        ] {
            assert_ne!(FrameAuth::of(&w(extra.clone())).unwrap().unwrap().key(), base, "{extra}");
        }
    }
}
