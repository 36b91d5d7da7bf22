//! Local accounts of the web UI: argon2 passwords, server-side sessions in the store, cookies,
//! CSRF tokens bound to the session.
//!
//! The cookie holds a random 32-byte session id; the store keeps only its SHA-256, so a read
//! of the database does not yield usable sessions. A session ends after `session_idle` without
//! a request or `session_absolute` after sign-in, whichever comes first, judged by
//! [`AppState::clock`].

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use portolan_core::permissions::Principal;
use portolan_store::{OrgId, Session, User};
use subtle::ConstantTimeEq;

use crate::auth::{hash_secret, random_bytes};
use crate::state::AppState;
use crate::web::WebError;

pub const SESSION_COOKIE: &str = "portolan_session";
/// Double-submit cookie protecting the sign-in and invitation forms (no session yet).
pub const PRE_CSRF_COOKIE: &str = "portolan_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const CSRF_FIELD: &str = "_csrf";

/// A random token for URLs and cookies (base64url of 32 bytes).
pub use crate::auth::new_token;

/// An argon2id hash (PHC string) of `password` at the configured cost.
pub fn hash_password(state: &AppState, password: &str) -> Result<String, WebError> {
    hash_password_with(state.config.password_cost, password).map_err(|e| WebError::internal("argon2", e))
}

/// [`hash_password`] at an explicit cost (memory KiB, iterations): the CLI's bootstrap admin.
pub fn hash_password_with(cost: (u32, u32), password: &str) -> Result<String, String> {
    let (m, t) = cost;
    let params = argon2::Params::new(m, t, 1, None).map_err(|e| e.to_string())?;
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon.hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Does `password` match the stored hash (parameters read from the hash)?
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to verify against when the e-mail is unknown, so timing does not tell which e-mails
/// have accounts.
pub fn dummy_hash(state: &AppState) -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(state, "not a password of anyone").unwrap_or_default()).clone()
}

/// Passwords of local accounts: at least 12 characters.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < 12 {
        return Err("must be at least 12 characters".into());
    }
    if password.len() > 1024 {
        return Err("must be at most 1024 bytes".into());
    }
    Ok(())
}

pub fn normalize_email(s: &str) -> String {
    s.trim().to_lowercase()
}

pub use crate::ops::people::valid_email;

pub fn new_user_id() -> String {
    format!("usr_{}", crate::auth::hex(&random_bytes::<8>()))
}

/// Start a session for `user`: returns the cookie value (the session id).
pub async fn start(state: &AppState, user: &User) -> Result<String, WebError> {
    let id = new_token();
    let now = state.clock.now();
    let session = Session {
        id_hash: hash_secret(&id),
        org: user.org.clone(),
        user_id: user.id.clone(),
        csrf: new_token(),
        created_at: now,
        last_seen: now,
    };
    state.store.create_session(&session).await?;
    Ok(id)
}

/// The request's cookies, `(name, value)`, in order.
pub(super) fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
}

pub(super) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookies(headers).find(|(k, _)| *k == name).map(|(_, v)| v)
}

pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, SESSION_COOKIE)
}

pub fn pre_csrf_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, PRE_CSRF_COOKIE)
}

/// Served over TLS: configured so, or a proxy says the client used https.
pub fn is_secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over TLS.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}", if secure { "; Secure" } else { "" })
}

/// The signed-in user of a web request.
#[derive(Debug, Clone)]
pub struct WebUser {
    pub user: User,
    pub org: OrgId,
    pub csrf: String,
    pub id_hash: String,
    /// What the user may do ([`crate::access`]): role, moderated blueprints, teams.
    pub principal: Principal,
}

impl WebUser {
    pub fn is_admin(&self) -> bool {
        self.user.role == "admin"
    }
}

/// Why a request has no signed-in user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    Missing,
    Expired,
}

/// The session named by the request's cookie, if it is alive (expired ones are deleted).
/// Records the activity.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Result<WebUser, NoSession>, WebError> {
    let Some(id) = session_cookie(headers) else { return Ok(Err(NoSession::Missing)) };
    let id_hash = hash_secret(id);
    let Some(s) = state.store.session(&id_hash).await? else { return Ok(Err(NoSession::Missing)) };
    let now = state.clock.now();
    let idle = i64::try_from(state.config.session_idle.as_secs()).unwrap_or(i64::MAX);
    let absolute = i64::try_from(state.config.session_absolute.as_secs()).unwrap_or(i64::MAX);
    if now - s.last_seen >= idle || now - s.created_at >= absolute {
        state.store.delete_session(&id_hash).await?;
        return Ok(Err(NoSession::Expired));
    }
    let Some(user) = state.store.get_user(&s.org, &s.user_id).await? else {
        state.store.delete_session(&id_hash).await?;
        return Ok(Err(NoSession::Missing));
    };
    let principal = match state.store.get_person(&s.org, &user.email).await? {
        Some(p) if p.status != "Disabled" => crate::access::principal_of(p),
        _ => {
            state.store.delete_session(&id_hash).await?;
            return Ok(Err(NoSession::Missing));
        }
    };
    // One write per minute of activity at most.
    if now - s.last_seen >= 60 {
        state.store.touch_session(&id_hash, now).await?;
    }
    Ok(Ok(WebUser { org: s.org, user, csrf: s.csrf, id_hash, principal }))
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        match current(state, &parts.headers).await? {
            Ok(u) => Ok(u),
            Err(why) => {
                let next = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
                Err(WebError::SignIn { next, expired: why == NoSession::Expired })
            }
        }
    }
}

/// Constant-time comparison of a submitted CSRF token with the expected one.
pub fn tokens_match(expected: &str, got: Option<&str>) -> bool {
    match got {
        Some(g) if !expected.is_empty() => bool::from(expected.as_bytes().ct_eq(g.as_bytes())),
        _ => false,
    }
}

/// The CSRF token a request carries: the `X-CSRF-Token` header (htmx) or the form field.
pub fn submitted_csrf<'a>(headers: &'a HeaderMap, form_field: Option<&'a str>) -> Option<&'a str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).or(form_field)
}

/// Refuse a state-changing request whose CSRF token is not the session's.
pub fn require_csrf(user: &WebUser, headers: &HeaderMap, form_field: Option<&str>) -> Result<(), WebError> {
    if tokens_match(&user.csrf, submitted_csrf(headers, form_field)) { Ok(()) } else { Err(WebError::Csrf) }
}
