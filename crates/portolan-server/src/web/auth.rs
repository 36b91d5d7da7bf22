//! Sign-in and sign-out, invitations (the link an admin makes, the page that sets the
//! invitee's password) and the users page.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use portolan_store::{Invitation, User};
use serde::Serialize;

use super::form::{body_form, query_form, signed_form};
use super::respond::{chrome, now_secs, page, page_with, require_admin, see_other};
use super::session::{self, WebUser};
use super::{Chrome, WebError, WebResult, urlencode};
use crate::auth::hash_secret;
use crate::error::ApiError;
use crate::state::AppState;

/// Where to go after sign-in: `next` resolved as a browser resolves it (WHATWG URL parsing:
/// tabs and newlines removed, backslashes read as slashes, `//host` a host), kept only when it
/// is a path that stays on this origin; anything else goes to the catalog. The result is
/// re-serialized (percent-encoded), so it is always a valid `Location` header.
pub(super) fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/ui/catalog";
    const BASE: &str = "http://portolan.invalid/";
    let (Some(n), Ok(base)) = (next, url::Url::parse(BASE)) else { return HOME.to_string() };
    if !n.starts_with('/') {
        return HOME.to_string();
    }
    match base.join(n) {
        Ok(u) if u.origin() == base.origin() && u.username().is_empty() && u.password().is_none() => {
            u.as_str().strip_prefix(BASE.trim_end_matches('/')).unwrap_or(HOME).to_string()
        }
        _ => HOME.to_string(),
    }
}

fn origin(headers: &HeaderMap, secure: bool) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("{}://{host}", if secure { "https" } else { "http" })
}

/// The sign-in page.
#[derive(Serialize)]
struct SignIn<'a> {
    csrf: &'a str,
    next: String,
    expired: bool,
    error: Option<&'a str>,
    email: &'a str,
}

/// The page that accepts an invitation.
#[derive(Serialize)]
struct Invite<'a> {
    csrf: &'a str,
    email: &'a str,
    role: &'a str,
    error: Option<String>,
}

/// The users page.
#[derive(Serialize)]
struct Users {
    chrome: Chrome,
    title: &'static str,
    users: Vec<UserRow>,
    /// The invitation link just made.
    link: Option<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct UserRow {
    email: String,
    role: String,
    status: String,
    /// `Standard`, or `Service Account` (API only).
    kind: String,
    teams: Vec<TeamLink>,
    created: String,
}

#[derive(Serialize)]
struct TeamLink {
    name: String,
    href: String,
}

/// The session cookie of a new session, on `res`.
pub(super) fn with_session_cookie(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    mut res: axum::response::Response,
) -> axum::response::Response {
    let max_age = i64::try_from(state.config.session_absolute.as_secs()).unwrap_or(i64::MAX);
    let cookie = session::set_cookie(session::SESSION_COOKIE, id, max_age, session::is_secure(state, headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn with_pre_csrf(state: &AppState, headers: &HeaderMap, render: impl FnOnce(&str) -> WebResult) -> WebResult {
    let token = session::pre_csrf_cookie(headers).map(str::to_string).unwrap_or_else(session::new_token);
    let mut res = render(&token)?;
    let cookie = session::set_cookie(session::PRE_CSRF_COOKIE, &token, 3600, session::is_secure(state, headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

pub async fn signin_form(State(state): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> WebResult {
    let q = query_form(&q);
    if let Ok(Ok(_)) = session::current(&state, &headers).await {
        return Ok(see_other(&safe_next(q.get("next"))));
    }
    let next = safe_next(q.get("next"));
    let expired = q.get("expired").is_some();
    with_pre_csrf(&state, &headers, |csrf| {
        page(&state, "signin.html", SignIn { csrf, next, expired, error: None, email: "" })
    })
}

pub async fn signin(State(state): State<AppState>, req: Request) -> WebResult {
    let (headers, addr, form) = body_form(req).await?;
    if !session::tokens_match(session::pre_csrf_cookie(&headers).unwrap_or(""), form.get(session::CSRF_FIELD)) {
        return Err(WebError::Csrf);
    }
    let email = session::normalize_email(form.get("email").unwrap_or(""));
    let password = form.get("password").unwrap_or("");
    let ip = addr.map(|a| a.ip().to_string()).unwrap_or_default();
    let by_ip = state.signin_limiter.check(&format!("ip:{ip}"));
    let by_email = state.signin_limiter.check(&format!("email:{email}"));
    if !by_ip.allowed || !by_email.allowed {
        return Err(WebError::TooMany(None));
    }
    // Failed passwords per account and per address (beyond the per-minute rate): answers slow
    // down, then the key is locked until its window ends; a success clears the account.
    let keys = [format!("web-email:{email}"), format!("web-addr:{ip}")];
    for key in &keys {
        if let Err(retry_after) = state.auth_failures.check(key) {
            return Err(WebError::TooMany(Some(retry_after)));
        }
    }
    let user = state.store.user_by_email(&email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| session::dummy_hash(&state));
    let ok = tokio::task::spawn_blocking({
        let password = password.to_string();
        move || session::verify_password(&hash, &password)
    })
    .await
    .unwrap_or(false);
    let next = safe_next(form.get("next"));
    let Some(user) = user.filter(|_| ok) else {
        let delay = keys.iter().map(|k| state.auth_failures.failed(k)).max().unwrap_or_default();
        tokio::time::sleep(delay).await;
        let csrf = form.get(session::CSRF_FIELD).unwrap_or_default().to_string();
        let error = Some("Wrong e-mail or password.");
        let ctx = SignIn { csrf: &csrf, next, expired: false, error, email: &email };
        return page_with(&state, StatusCode::UNAUTHORIZED, "signin.html", ctx);
    };
    state.auth_failures.succeeded(&keys[0]);
    // A disabled account (PATCH /v1/users/{email} status Disabled) does not sign in; the right
    // password is told apart, so the person knows whom to ask.
    if state.store.get_person(&user.org, &user.email).await?.is_some_and(|p| p.status == "Disabled") {
        let csrf = form.get(session::CSRF_FIELD).unwrap_or_default().to_string();
        let error = Some("This account is disabled. Ask an admin of your organization to enable it.");
        let ctx = SignIn { csrf: &csrf, next, expired: false, error, email: &email };
        return page_with(&state, StatusCode::FORBIDDEN, "signin.html", ctx);
    }
    // An organization that signs in through SSO only (`localPasswords: false`): the right
    // password is told apart, so the person knows to use the SSO button.
    if !crate::sso::load(&state, &user.org).await?.local_passwords {
        let csrf = form.get(session::CSRF_FIELD).unwrap_or_default().to_string();
        let error = Some(
            "Your organization signs in through single sign-on only: use \"Continue with single sign-on\" below with its name.",
        );
        let ctx = SignIn { csrf: &csrf, next, expired: false, error, email: &email };
        return page_with(&state, StatusCode::FORBIDDEN, "signin.html", ctx);
    }
    let id = session::start(&state, &user).await?;
    Ok(with_session_cookie(&state, &headers, &id, see_other(&next)))
}

pub async fn signout(State(state): State<AppState>, user: WebUser, req: Request) -> WebResult {
    let (headers, _) = signed_form(&user, req).await?;
    state.store.delete_session(&user.id_hash).await?;
    let mut res = see_other("/ui/signin");
    // The session, and the access tokens dashboards' frames were given.
    let secure = session::is_secure(&state, &headers);
    let frames = super::dashboards::frames::kept_cookies(&headers);
    for name in std::iter::once(session::SESSION_COOKIE).chain(frames.iter().map(String::as_str)) {
        if let Ok(v) = HeaderValue::from_str(&session::set_cookie(name, "", 0, secure)) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

async fn usable_invitation(state: &AppState, token: &str) -> WebResult<Invitation> {
    match state.store.invitation(&hash_secret(token)).await? {
        Some(i) if i.used_at.is_none() && i.expires_at > now_secs(state) => Ok(i),
        _ => Err(WebError::NotFound("This invitation link is not valid: it was used already or it expired.".into())),
    }
}

pub async fn invite_form(State(state): State<AppState>, headers: HeaderMap, Path(token): Path<String>) -> WebResult {
    let inv = usable_invitation(&state, &token).await?;
    with_pre_csrf(&state, &headers, |csrf| {
        page(&state, "invite.html", Invite { csrf, email: &inv.email, role: &inv.role, error: None })
    })
}

pub async fn invite_accept(State(state): State<AppState>, Path(token): Path<String>, req: Request) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    if !session::tokens_match(session::pre_csrf_cookie(&headers).unwrap_or(""), form.get(session::CSRF_FIELD)) {
        return Err(WebError::Csrf);
    }
    let inv = usable_invitation(&state, &token).await?;
    let password = form.get("password").unwrap_or("");
    let problem = match session::check_password(password) {
        Err(e) => Some(format!("The password {e}.")),
        Ok(()) if form.get("confirm") != Some(password) => Some("The two passwords differ.".to_string()),
        Ok(()) => None,
    };
    if let Some(error) = problem {
        let csrf = form.get(session::CSRF_FIELD).unwrap_or_default().to_string();
        let ctx = Invite { csrf: &csrf, email: &inv.email, role: &inv.role, error: Some(error) };
        return page_with(&state, StatusCode::UNPROCESSABLE_ENTITY, "invite.html", ctx);
    }
    let hash = tokio::task::spawn_blocking({
        let state = state.clone();
        let password = password.to_string();
        move || session::hash_password(&state, &password)
    })
    .await
    .map_err(|e| WebError::internal("hash", e))??;
    let user = User {
        id: session::new_user_id(),
        org: inv.org.clone(),
        email: inv.email.clone(),
        password_hash: hash,
        role: inv.role.clone(),
        created_at: crate::ops::audit::now_iso(),
    };
    let user =
        state.store.accept_invitation(&hash_secret(&token), &user, now_secs(&state)).await.map_err(|e| match e {
            portolan_store::StoreError::Conflict(_) => {
                WebError::Api(ApiError::conflict("That e-mail already has an account."))
            }
            e => e.into(),
        })?;
    let id = session::start(&state, &user).await?;
    Ok(with_session_cookie(&state, &headers, &id, see_other("/ui/catalog")))
}

/// Create an invitation (also used by `portolan init`): returns the link's token.
pub async fn create_invitation(
    state: &AppState,
    org: &portolan_store::OrgId,
    email: &str,
    role: &str,
    by: &str,
) -> WebResult<String> {
    Ok(crate::ops::people::create_invitation(state, org, email, role, by).await?.1)
}

/// The users page; after an invitation, with its link, or with why none was made (`status`).
async fn users_page(
    state: &AppState,
    u: &WebUser,
    status: StatusCode,
    link: Option<String>,
    error: Option<String>,
) -> WebResult {
    let users = state
        .store
        .list_people(&u.org)
        .await?
        .into_iter()
        .map(|x| UserRow {
            email: x.email,
            role: x.role,
            status: x.status,
            kind: x.kind,
            teams: x
                .teams
                .into_iter()
                .map(|name| TeamLink { href: format!("/ui/teams/{}", urlencode(&name)), name })
                .collect(),
            created: x.created_at,
        })
        .collect();
    page_with(state, status, "users.html", Users { chrome: chrome(state, u), title: "Users", users, link, error })
}

pub async fn users(State(state): State<AppState>, user: WebUser) -> WebResult {
    require_admin(&user, "manage users")?;
    users_page(&state, &user, StatusCode::OK, None, None).await
}

pub async fn invite_create(State(state): State<AppState>, user: WebUser, req: Request) -> WebResult {
    let (headers, form) = signed_form(&user, req).await?;
    require_admin(&user, "invite users")?;
    let email = session::normalize_email(form.get("email").unwrap_or(""));
    let role = match form.get("role") {
        Some("admin") => "admin",
        _ => "member",
    };
    if !session::valid_email(&email) {
        let error = format!("\"{email}\" is not an e-mail address.");
        return users_page(&state, &user, StatusCode::UNPROCESSABLE_ENTITY, None, Some(error)).await;
    }
    if state.store.user_by_email(&email).await?.is_some() {
        let error = format!("{email} already has an account.");
        return users_page(&state, &user, StatusCode::CONFLICT, None, Some(error)).await;
    }
    let token = create_invitation(&state, &user.org, &email, role, &user.user.email).await?;
    let link = format!("{}/ui/invite/{token}", origin(&headers, session::is_secure(&state, &headers)));
    users_page(&state, &user, StatusCode::OK, Some(link), None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/ui/audit")), "/ui/audit");
        assert_eq!(safe_next(Some("//evil.example")), "/ui/catalog");
        assert_eq!(safe_next(Some("https://evil.example")), "/ui/catalog");
        assert_eq!(safe_next(Some("/\\evil.example")), "/ui/catalog");
        // Browsers drop tabs and newlines and read backslashes as slashes (finding 5).
        for evil in [
            "/\t/evil.example",
            "/\r/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/\\/evil.example",
            "/\t\\evil.example",
            "\\\\evil.example",
            "/\t/user:pw@evil.example/x",
            "javascript:alert(1)",
            "http:/\\evil.example",
            " //evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(evil)), "/ui/catalog", "{evil:?}");
        }
        // Local paths survive, percent-encoded where needed (always a valid header value).
        assert_eq!(safe_next(Some("/ui/catalog/svc?fp=a&fo=b#x")), "/ui/catalog/svc?fp=a&fo=b#x");
        assert_eq!(safe_next(Some("/ui/a b")), "/ui/a%20b");
        assert_eq!(safe_next(Some("/%09/evil.example")), "/%09/evil.example");
        assert!(HeaderValue::try_from(safe_next(Some("/ui/\u{7f}x"))).is_ok());
    }
}
