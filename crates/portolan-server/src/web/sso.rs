//! Single sign-on in the browser ([`crate::sso`]): `/ui/sso/start` sends the browser to the
//! organization's identity provider, `/ui/sso/callback` signs the person in. A failure is a page
//! that says what went wrong, what the provider said, and what an admin should change.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use super::WebResult;
use super::auth::{safe_next, with_session_cookie};
use super::form::query_form;
use super::respond::{page_with, see_other};
use super::session;
use crate::sso::{self, FLOW_COOKIE, FLOW_TTL_SECS, Failure};
use crate::state::AppState;

#[derive(Serialize)]
struct FailurePage<'a> {
    title: &'static str,
    failure: &'a Failure,
    /// Where the page's last link goes, and what it says.
    back_href: &'a str,
    back_text: &'a str,
    /// Where an admin changes the settings.
    settings: &'a str,
}

fn failure_page(state: &AppState, f: &Failure) -> WebResult {
    let settings = "the single sign-on settings are on its organization page";
    failure_page_as(state, "Single sign-on did not sign you in", ("/ui/signin", "Back to sign-in"), settings, f)
}

/// A failed sign-in (of a person, or of a dashboard's frame, `web::dashboards::frames`) as a
/// page in words: `title`, the failure, where an admin changes the `settings`, and a link
/// `back`.
pub(super) fn failure_page_as(
    state: &AppState,
    title: &'static str,
    back: (&str, &str),
    settings: &str,
    f: &Failure,
) -> WebResult {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_REQUEST);
    tracing::info!(status = f.status, message = %f.message, provider_error = ?f.provider_error, what = title, "sso: sign-in failed");
    let ctx = FailurePage { title, failure: f, back_href: back.0, back_text: back.1, settings };
    page_with(state, status, "sso_error.html", ctx)
}

fn with_flow_cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: i64, res: Response) -> Response {
    with_cookie(state, headers, FLOW_COOKIE, value, max_age, res)
}

/// `res` setting the cookie `name` (HttpOnly, SameSite=Lax; `max_age` 0 removes it).
pub(super) fn with_cookie(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: i64,
    mut res: Response,
) -> Response {
    let cookie = session::set_cookie(name, value, max_age, session::is_secure(state, headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// `GET /ui/sso/start?org=NAME&next=/ui/…`. Sent here by another site (`Sec-Fetch-Site`
/// `cross-site` or `same-site`), it first asks, and begins no sign-in: otherwise any page
/// could sign its visitor in to an organization of its choosing, whose identity provider it
/// runs (login CSRF), and have what they do next saved there. The sign-in page's form, a typed
/// URL or a bookmark go straight on.
pub async fn start(State(state): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> WebResult {
    let q = query_form(&q);
    let next = safe_next(q.get("next"));
    let from_elsewhere = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site") || v.eq_ignore_ascii_case("same-site"));
    if from_elsewhere {
        let org = q.get("org").unwrap_or_default().trim().to_string();
        return page_with(&state, StatusCode::OK, "sso_confirm.html", Confirm { org, next });
    }
    let base = sso::base_url(&state, &headers);
    match sso::start(&state, q.get("org").unwrap_or_default(), &next, &base).await {
        // A page that moves on by itself rather than a redirect: the sign-in form submits here,
        // and the pages' CSP (`form-action 'self'`) stops a form's redirect to another origin.
        Ok((location, provider, flow)) => {
            let res = page_with(&state, StatusCode::OK, "sso_redirect.html", Redirecting { location, provider })?;
            Ok(with_flow_cookie(&state, &headers, &flow, FLOW_TTL_SECS, res))
        }
        Err(f) => failure_page(&state, &f),
    }
}

#[derive(Serialize)]
struct Confirm {
    org: String,
    next: String,
}

#[derive(Serialize)]
pub(super) struct Redirecting {
    pub location: String,
    pub provider: String,
}

/// `GET /ui/sso/callback?code=…&state=…` (or `?error=…&error_description=…`).
pub async fn callback(State(state): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> WebResult {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect();
    let base = sso::base_url(&state, &headers);
    let cookie = session::cookie_value(&headers, FLOW_COOKIE);
    let finished = sso::finish(&state, cookie, &query, &base).await;
    sign_in(&state, &headers, finished).await
}

/// The end of a sign-in (OIDC's callback, SAML's ACS): the person provisioned and signed in
/// and sent on, or the failure page; the flow cookie is spent either way.
async fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    finished: Result<(portolan_store::OrgId, sso::Identity, String), Failure>,
) -> WebResult {
    let signed_in = async {
        let (org, identity, next) = finished?;
        let user = sso::provision(state, &org, &identity).await?;
        Ok::<_, Failure>((user, next))
    }
    .await;
    let res = match signed_in {
        Ok((user, next)) => {
            let id = session::start(state, &user).await?;
            with_session_cookie(state, headers, &id, see_other(&safe_next(Some(&next))))
        }
        Err(f) => failure_page(state, &f)?,
    };
    Ok(with_flow_cookie(state, headers, "", 0, res))
}

#[derive(Serialize)]
struct Repost {
    action: &'static str,
    fields: Vec<(String, String)>,
}

/// The field a re-posted SAML answer carries, so that it is re-posted once only.
const REPOSTED: &str = "portolan_reposted";

/// `POST /ui/sso/saml/acs` (`SAMLResponse`, `RelayState`): the identity provider's answer.
/// Posted from the provider's site, it arrives without the `SameSite=Lax` flow cookie; the
/// answer is then a page that posts the same fields again from this site, which sends it.
pub async fn saml_acs(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> WebResult {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let cookie = session::cookie_value(&headers, FLOW_COOKIE);
    if cookie.is_none() && !form.contains_key(REPOSTED) && form.contains_key("SAMLResponse") {
        let mut fields: Vec<(String, String)> = ["SAMLResponse", "RelayState"]
            .iter()
            .filter_map(|k| form.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        fields.push((REPOSTED.into(), "1".into()));
        return page_with(&state, StatusCode::OK, "sso_repost.html", Repost { action: sso::saml::ACS_PATH, fields });
    }
    let base = sso::base_url(&state, &headers);
    let finished = sso::saml::finish(&state, cookie, &form, &base).await;
    sign_in(&state, &headers, finished).await
}

/// `GET /ui/sso/saml/metadata?org=NAME`: the organization's service provider metadata (its
/// entity ID is this URL), to give the identity provider.
pub async fn saml_metadata(State(state): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> WebResult {
    let q = query_form(&q);
    let name = q.get("org").unwrap_or_default();
    let Some(org) = state.store.org_by_name(name).await? else {
        return Err(super::WebError::NotFound(format!("There is no organization named {name:?} on this server.")));
    };
    let xml = sso::saml::sp_metadata(&sso::base_url(&state, &headers), &org.name);
    let mut res = Response::new(axum::body::Body::from(xml));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"));
    Ok(res)
}
