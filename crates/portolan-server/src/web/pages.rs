//! The page handlers of the web UI.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Value as Mj;
use minijinja::context;
use portolan_core::export::{Format, cell_text, csv};
use portolan_core::search::parse_query;
use portolan_core::{Blueprint, Entity};
use portolan_store::{AuditFilter, Invitation, SearchRequest, User};
use serde_json::{Map, Value, json};

use super::format;
use super::session::{self, WebUser};
use super::{Chrome, WebError, html};
use crate::auth::{Caller, hash_secret};
use crate::catalog::{ReadOptions, render};
use crate::extract::{JsonBody, QueryParams};
use crate::handlers::entity::EntityParams;
use crate::handlers::search::{decode_cursor, encode_cursor};
use crate::state::AppState;

pub(super) type WebResult<T = Response> = Result<T, WebError>;

/// Largest page of the catalog table.
const MAX_PAGE: u32 = 200;
const DEFAULT_PAGE: u32 = 50;
/// Most filter rules a catalog view applies.
const MAX_RULES: usize = 10;

// ---- small helpers ----------------------------------------------------------------------------

fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded` pairs (query strings and form bodies).
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (pct_decode(k), pct_decode(v)),
            None => (pct_decode(kv), String::new()),
        })
        .collect()
}

pub(super) struct Form(pub(super) Vec<(String, String)>);

impl Form {
    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
    pub(super) fn all(&self, k: &str) -> Vec<String> {
        self.0.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty()).collect()
    }
}

pub(super) fn query_form(q: &Option<String>) -> Form {
    Form(q.as_deref().map(parse_form).unwrap_or_default())
}

pub(super) async fn body_form(req: Request) -> WebResult<(HeaderMap, Option<SocketAddr>, Form)> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, crate::BODY_LIMIT)
        .await
        .map_err(|_| WebError::BadRequest("the form is too large".into()))?;
    let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    Ok((parts.headers, addr, Form(parse_form(&String::from_utf8_lossy(&bytes)))))
}

/// A serializable value for a template context.
pub(super) fn sv<T: serde::Serialize>(x: T) -> Mj {
    Mj::from(minijinja::value::Serde(x))
}

pub(super) fn chrome(state: &AppState, u: &WebUser) -> Mj {
    sv(Chrome {
        email: u.user.email.clone(),
        admin: u.is_admin(),
        csrf: u.csrf.clone(),
        htmx_integrity: state.templates.htmx_integrity.clone(),
    })
}

pub(super) fn page(state: &AppState, name: &str, ctx: Mj) -> WebResult {
    Ok(html(StatusCode::OK, state.templates.render(name, ctx)?))
}

/// A 303 to `to`. A target that cannot be a `Location` header (control characters) is a 400
/// page, never a panic (axum's `Redirect::to` panics on it).
pub(super) fn see_other(to: &str) -> Response {
    match HeaderValue::try_from(to) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => super::message_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The address to go to next contains characters that cannot be part of a link.",
        ),
    }
}

/// The API's caller for writes made through the UI: audited as the user, origin `UI`.
pub(super) fn caller(u: &WebUser) -> Caller {
    Caller { client_id: u.user.email.clone(), org: u.org.clone(), user_agent: Some("UI".into()) }
}

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

pub(super) fn now_secs(state: &AppState) -> i64 {
    state.clock.now()
}

// ---- sign-in, sign-out, invitations -------------------------------------------------------------

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
        page(&state, "signin.html", context! { csrf, next, expired, error => Mj::UNDEFINED, email => "" })
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
        let body = state.templates.render(
            "signin.html",
            context! { csrf, next, expired => false, error => "Wrong e-mail or password.", email },
        )?;
        return Ok(html(StatusCode::UNAUTHORIZED, body));
    };
    state.auth_failures.succeeded(&keys[0]);
    let id = session::start(&state, &user).await?;
    let mut res = see_other(&next);
    let max_age = i64::try_from(state.config.session_absolute.as_secs()).unwrap_or(i64::MAX);
    let cookie = session::set_cookie(session::SESSION_COOKIE, &id, max_age, session::is_secure(&state, &headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

pub async fn signout(State(state): State<AppState>, user: WebUser, req: Request) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(&user, &headers, form.get(session::CSRF_FIELD))?;
    state.store.delete_session(&user.id_hash).await?;
    let mut res = see_other("/ui/signin");
    let cookie = session::set_cookie(session::SESSION_COOKIE, "", 0, session::is_secure(&state, &headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
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
        page(&state, "invite.html", context! { csrf, email => inv.email, role => inv.role, error => Mj::UNDEFINED })
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
        let body =
            state.templates.render("invite.html", context! { csrf, email => inv.email, role => inv.role, error })?;
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, body));
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
        created_at: crate::handlers::now_iso(),
    };
    let user =
        state.store.accept_invitation(&hash_secret(&token), &user, now_secs(&state)).await.map_err(|e| match e {
            portolan_store::StoreError::Conflict(_) => {
                WebError::BadRequest("That e-mail already has an account.".into())
            }
            e => e.into(),
        })?;
    let id = session::start(&state, &user).await?;
    let mut res = see_other("/ui/catalog");
    let max_age = i64::try_from(state.config.session_absolute.as_secs()).unwrap_or(i64::MAX);
    let cookie = session::set_cookie(session::SESSION_COOKIE, &id, max_age, session::is_secure(&state, &headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Create an invitation (also used by `portolan init`): returns the link's token.
pub async fn create_invitation(
    state: &AppState,
    org: &portolan_store::OrgId,
    email: &str,
    role: &str,
    by: &str,
) -> WebResult<String> {
    let token = session::new_token();
    let now = now_secs(state);
    let ttl = i64::try_from(state.config.invitation_ttl.as_secs()).unwrap_or(i64::MAX);
    state
        .store
        .create_invitation(&Invitation {
            token_hash: hash_secret(&token),
            org: org.clone(),
            email: email.to_string(),
            role: role.to_string(),
            created_by: by.to_string(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
            used_at: None,
        })
        .await?;
    Ok(token)
}

async fn users_page(state: &AppState, u: &WebUser, link: Option<String>, error: Option<String>) -> WebResult {
    let users: Vec<Value> = state
        .store
        .list_users(&u.org)
        .await?
        .into_iter()
        .map(|x| json!({"email": x.email, "role": x.role, "created": x.created_at}))
        .collect();
    page(
        state,
        "users.html",
        context! { chrome => chrome(state, u), users => sv(users), link, error, title => "Users" },
    )
}

pub async fn users(State(state): State<AppState>, user: WebUser) -> WebResult {
    if !user.is_admin() {
        return Err(WebError::Forbidden("Only admins manage users.".into()));
    }
    users_page(&state, &user, None, None).await
}

pub async fn invite_create(State(state): State<AppState>, user: WebUser, req: Request) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(&user, &headers, form.get(session::CSRF_FIELD))?;
    if !user.is_admin() {
        return Err(WebError::Forbidden("Only admins invite users.".into()));
    }
    let email = session::normalize_email(form.get("email").unwrap_or(""));
    let role = match form.get("role") {
        Some("admin") => "admin",
        _ => "member",
    };
    if !session::valid_email(&email) {
        return users_page(&state, &user, None, Some(format!("\"{email}\" is not an e-mail address."))).await;
    }
    if state.store.user_by_email(&email).await?.is_some() {
        return users_page(&state, &user, None, Some(format!("{email} already has an account."))).await;
    }
    let token = create_invitation(&state, &user.org, &email, role, &user.user.email).await?;
    let link = format!("{}/ui/invite/{token}", origin(&headers, session::is_secure(&state, &headers)));
    users_page(&state, &user, Some(link), None).await
}

// ---- catalog ------------------------------------------------------------------------------------

pub async fn catalog_index(State(state): State<AppState>, user: WebUser) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let mut list: Vec<Value> = bps
        .values()
        .map(|b| json!({"identifier": b.identifier, "title": b.title, "description": b.description}))
        .collect();
    list.sort_by(|a, b| a["title"].as_str().cmp(&b["title"].as_str()));
    page(
        &state,
        "catalog_index.html",
        context! { chrome => chrome(&state, &user), blueprints => sv(list), title => "Catalog" },
    )
}

/// What the catalog table shows: filter, search, sort, columns, group-by and page, all in the
/// query string (so a view is a link).
#[derive(Debug, Clone)]
struct View {
    q: Option<String>,
    /// Rules (property, operator, value), AND-ed: repeated `fp`/`fo`/`fv` in the query string,
    /// matched by position.
    filters: Vec<(String, String, String)>,
    sort: Option<String>,
    desc: bool,
    cols: Vec<String>,
    group: Option<String>,
    after: Option<String>,
    /// Rows skipped, for views sorted by the store (they page by offset).
    offset: u64,
    limit: u32,
    /// The page has a saved initial filter: links to an unfiltered view say so (`nf=1`), or
    /// opening them would apply it.
    has_initial: bool,
}

const OPERATORS: &[&str] = &[
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "contains",
    "doesNotContains",
    "beginsWith",
    "endsWith",
    "in",
    "isEmpty",
    "isNotEmpty",
];

fn all_columns(bp: &Blueprint) -> Vec<String> {
    let mut c = vec!["$identifier".to_string(), "$title".to_string()];
    c.extend(bp.schema.properties.keys().cloned());
    c.extend(bp.relations.keys().cloned());
    c.extend(bp.mirror_properties.keys().cloned());
    c.extend(bp.calculation_properties.keys().cloned());
    c.push("$team".into());
    c.push("$updatedAt".into());
    c
}

impl View {
    fn parse(f: &Form, bp: &Blueprint) -> View {
        let known = all_columns(bp);
        let cols: Vec<String> = match f.get("cols") {
            Some(c) => c.split(',').filter(|c| known.iter().any(|k| k == c)).map(str::to_string).collect(),
            None => known.iter().take(8).cloned().collect(),
        };
        let raw = |k: &str| f.0.iter().filter(|(key, _)| key == k).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        let (fps, fos, fvs) = (raw("fp"), raw("fo"), raw("fv"));
        let filters = fps
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let o = *fos.get(i)?;
                (!p.is_empty() && OPERATORS.contains(&o))
                    .then(|| (p.to_string(), o.to_string(), fvs.get(i).copied().unwrap_or("").to_string()))
            })
            .take(MAX_RULES)
            .collect();
        View {
            q: f.get("q").map(str::to_string),
            filters,
            sort: f.get("sort").filter(|s| known.iter().any(|k| k == s)).map(str::to_string),
            desc: f.get("dir") == Some("desc"),
            cols: if cols.is_empty() { vec!["$identifier".into()] } else { cols },
            group: f.get("group").filter(|s| known.iter().any(|k| k == s)).map(str::to_string),
            after: f.get("after").map(str::to_string),
            offset: f.get("o").and_then(|o| o.parse().ok()).unwrap_or(0),
            limit: f
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| (1..=MAX_PAGE).contains(l))
                .unwrap_or(DEFAULT_PAGE),
            has_initial: false,
        }
    }

    /// The query string of this view with some parameters changed (`None` removes one).
    fn link(&self, bp: &str, changes: &[(&str, Option<String>)]) -> String {
        let mut p: Vec<(&str, String)> = Vec::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                p.push((k, v));
            }
        };
        put("q", self.q.clone());
        for (fp, fo, fv) in &self.filters {
            put("fp", Some(fp.clone()));
            put("fo", Some(fo.clone()));
            put("fv", Some(fv.clone()));
        }
        put("sort", self.sort.clone());
        put("dir", self.desc.then(|| "desc".to_string()));
        put("cols", Some(self.cols.join(",")));
        put("group", self.group.clone());
        put("after", self.after.clone());
        put("o", (self.offset > 0).then(|| self.offset.to_string()));
        put("limit", (self.limit != DEFAULT_PAGE).then(|| self.limit.to_string()));
        for (k, v) in changes {
            p.retain(|(key, _)| key != k);
            if let Some(v) = v {
                p.push((k, v.clone()));
            }
        }
        if self.has_initial && !p.iter().any(|(k, _)| *k == "q" || *k == "fp") {
            p.push(("nf", "1".into()));
        }
        let qs: Vec<String> = p.iter().map(|(k, v)| format!("{k}={}", super::urlencode(v))).collect();
        format!("/ui/catalog/{}?{}", super::urlencode(bp), qs.join("&"))
    }

    /// The search query of this view.
    fn query(&self, bp: &Blueprint) -> Result<Option<Value>, String> {
        let mut rules = Vec::new();
        if let Some(q) = &self.q {
            rules.push(json!({"combinator": "or", "rules": [
                {"property": "$identifier", "operator": "contains", "value": q},
                {"property": "$title", "operator": "contains", "value": q}]}));
        }
        for (p, op, v) in &self.filters {
            let known = p.starts_with('$') || bp.schema.properties.contains_key(p) || bp.relations.contains_key(p);
            if !known {
                return Err(format!("\"{p}\" is not a property or relation of {}; pick one from the list", bp.title));
            }
            let ty = bp.schema.properties.get(p).map(|x| x.ty);
            let typed = |s: &str| -> Value {
                match ty {
                    Some(portolan_core::PropType::Number) => s
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map_or(json!(s), Value::Number),
                    Some(portolan_core::PropType::Boolean) => match s.trim() {
                        "true" => json!(true),
                        "false" => json!(false),
                        other => json!(other),
                    },
                    _ => json!(s),
                }
            };
            let rule = match op.as_str() {
                "isEmpty" | "isNotEmpty" => json!({"property": p, "operator": op}),
                "in" => json!({"property": p, "operator": "in",
                               "value": v.split(',').map(|x| typed(x.trim())).collect::<Vec<_>>()}),
                _ if bp.relations.contains_key(p) => json!({"relation": p, "operator": op, "value": v}),
                _ => json!({"property": p, "operator": op, "value": typed(v)}),
            };
            rules.push(rule);
        }
        if rules.is_empty() {
            return Ok(None);
        }
        Ok(Some(json!({"combinator": "and", "rules": rules})))
    }
}

fn column_value(e: &Value, col: &str) -> Value {
    match col.strip_prefix('$') {
        Some(meta) => e.get(meta).cloned().unwrap_or(Value::Null),
        None => e["properties"].get(col).or_else(|| e["relations"].get(col)).cloned().unwrap_or(Value::Null),
    }
}

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (a, b) => cell_text(a).to_lowercase().cmp(&cell_text(b).to_lowercase()),
    }
}

/// One page of the view: entities rendered as the API returns them (mirror and calculation
/// values included), and the cursor of the next page. One store page read, never more.
async fn view_page(
    state: &AppState,
    user: &WebUser,
    bp: &Blueprint,
    view: &View,
) -> WebResult<Result<(Vec<Value>, Option<Next>), String>> {
    let query = match view.query(bp) {
        Ok(Some(q)) => match parse_query(&q) {
            Ok(q) => Some(q),
            Err(e) => return Ok(Err(e.to_string())),
        },
        Ok(None) => None,
        Err(e) => return Ok(Err(e)),
    };
    let after = match &view.after {
        Some(c) => match decode_cursor(c) {
            Ok(p) => Some(p),
            Err(_) => return Ok(Err("the page cursor is not valid; start from the first page".into())),
        },
        None => None,
    };
    let blueprints = state.blueprints(&user.org).await?;
    let req =
        SearchRequest { after, ..SearchRequest::new(&blueprints, Some(&bp.identifier), query.as_ref(), view.limit) };
    if let Some(s) = view.sort.as_deref().filter(|s| store_sorts(bp, s)) {
        // Sorted by the store over the whole result, a page at a time (by offset).
        let page = match state.store.search_sorted(&user.org, &req, s, view.desc, view.offset).await {
            Ok(p) => p,
            Err(portolan_store::StoreError::Invalid(f)) => return Ok(Err(f.to_string())),
            Err(e) => return Err(e.into()),
        };
        let rows = render(state, &user.org, &page.entities, &ReadOptions::default()).await?;
        return Ok(Ok((rows, page.more.then(|| Next::Offset(view.offset + u64::from(view.limit))))));
    }
    let page = match state.store.search(&user.org, &req).await {
        Ok(p) => p,
        Err(portolan_store::StoreError::Invalid(f)) => return Ok(Err(f.to_string())),
        Err(e) => return Err(e.into()),
    };
    let mut rows = render(state, &user.org, &page.entities, &ReadOptions::default()).await?;
    if let Some(s) = &view.sort {
        // Computed columns (mirror, calculation) and relations are not stored sortably: these
        // sort the rows of this page.
        rows.sort_by(|a, b| {
            let o = cmp_values(&column_value(a, s), &column_value(b, s));
            if view.desc { o.reverse() } else { o }
        });
    }
    Ok(Ok((rows, page.next.map(|n| Next::Cursor(encode_cursor(n))))))
}

/// Where the next page starts.
enum Next {
    Cursor(String),
    Offset(u64),
}

/// Does the store sort by this column (a meta column or a stored property)?
fn store_sorts(bp: &Blueprint, col: &str) -> bool {
    matches!(col, "$identifier" | "$title" | "$createdAt" | "$updatedAt") || bp.schema.properties.contains_key(col)
}

fn cell(bp: &Blueprint, e: &Value, col: &str, now: i64) -> String {
    let v = column_value(e, col);
    let id = e["identifier"].as_str().unwrap_or_default();
    match col {
        "$identifier" => format::entity_link(&bp.identifier, id),
        "$updatedAt" | "$createdAt" => v.as_str().map(|s| format::date_time(s, now)).unwrap_or_default(),
        c if bp.relations.contains_key(c) => {
            let target = &bp.relations[c].target;
            let ids: Vec<String> = match &v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                _ => vec![],
            };
            ids.iter().map(|i| format::entity_link(target, i)).collect::<Vec<_>>().join(", ")
        }
        c => format::cell_html(&v, bp.schema.properties.get(c), now),
    }
}

pub async fn catalog(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let form = query_form(&q);
    let mut view = View::parse(&form, bp);
    // The saved initial filter applies when the query string names no filter at all (`nf=1`,
    // or an empty `q`/`fp` from the filter form, is an explicit "no filter").
    let saved = state.store.initial_filter(&user.org, &bp_id).await?.map(|f| initial_rules(&f.filter));
    let explicit = form.0.iter().any(|(k, _)| matches!(k.as_str(), "q" | "fp" | "fo" | "fv" | "nf"));
    if let Some((sq, rules)) = &saved
        && !explicit
    {
        (view.q, view.filters) = (sq.clone(), rules.clone());
    }
    view.has_initial = saved.is_some();
    let initial = saved.as_ref().filter(|(sq, rules)| *sq == view.q && *rules == view.filters).map(|(sq, rules)| {
        context! {
            text => describe_filter(bp, sq.as_deref(), rules),
            clear => view.link(&bp.identifier, &[("q", None), ("fp", None), ("fo", None), ("fv", None), ("after", None), ("o", None)]),
        }
    });
    let can_save = user.is_admin() && (view.q.is_some() || !view.filters.is_empty());
    let now = now_secs(&state);
    let (rows, next, error) = match view_page(&state, &user, bp, &view).await? {
        Ok((rows, next)) => (rows, next, None),
        Err(e) => (vec![], None, Some(e)),
    };
    let columns: Vec<Value> = view
        .cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut moved = view.cols.clone();
            let left = (i > 0).then(|| {
                moved.swap(i, i - 1);
                view.link(&bp.identifier, &[("cols", Some(moved.join(","))), ("after", None)])
            });
            let mut moved = view.cols.clone();
            let right = (i + 1 < moved.len()).then(|| {
                moved.swap(i, i + 1);
                view.link(&bp.identifier, &[("cols", Some(moved.join(","))), ("after", None)])
            });
            let hidden: Vec<String> = view.cols.iter().filter(|x| *x != c).cloned().collect();
            let sorted_here = view.sort.as_deref() == Some(c.as_str());
            json!({
                "id": c,
                "title": format::column_title(bp, c),
                "sort": view.link(&bp.identifier, &[("sort", Some(c.clone())),
                    ("dir", (sorted_here && !view.desc).then(|| "desc".to_string())), ("after", None), ("o", None)]),
                "page_sort": !store_sorts(bp, c),
                "sorted": if sorted_here { if view.desc { "desc" } else { "asc" } } else { "" },
                "left": left,
                "right": right,
                "hide": (view.cols.len() > 1).then(|| view.link(&bp.identifier, &[("cols", Some(hidden.join(",")))])),
            })
        })
        .collect();
    let hidden_columns: Vec<Value> = all_columns(bp)
        .into_iter()
        .filter(|c| !view.cols.contains(c))
        .map(|c| {
            let mut with = view.cols.clone();
            with.push(c.clone());
            json!({"id": c, "title": format::column_title(bp, &c),
                   "show": view.link(&bp.identifier, &[("cols", Some(with.join(",")))])})
        })
        .collect();
    let render_row = |e: &Value| -> Mj {
        let cells: Vec<Mj> = view.cols.iter().map(|c| Mj::from_safe_string(cell(bp, e, c, now))).collect();
        Mj::from(cells)
    };
    // Group-by works on the rows of this page.
    let groups: Vec<Value> = match &view.group {
        Some(g) => {
            let mut order: Vec<String> = Vec::new();
            let mut by: HashMap<String, Vec<Value>> = HashMap::new();
            for e in &rows {
                let key = cell_text(&column_value(e, g));
                if !by.contains_key(&key) {
                    order.push(key.clone());
                }
                by.entry(key).or_default().push(e.clone());
            }
            order
                .into_iter()
                .map(|k| {
                    let members = by.remove(&k).unwrap_or_default();
                    json!({"key": if k.is_empty() { "(empty)".to_string() } else { k }, "count": members.len(), "rows": members})
                })
                .collect()
        }
        None => vec![json!({"key": Value::Null, "count": rows.len(), "rows": rows})],
    };
    let groups: Vec<Mj> = groups
        .iter()
        .map(|g| {
            let rows: Vec<Mj> = g["rows"].as_array().map(|r| r.iter().map(&render_row).collect()).unwrap_or_default();
            context! { key => sv(&g["key"]), count => g["count"].as_u64().unwrap_or(0), rows }
        })
        .collect();
    let filterable: Vec<Value> = all_columns(bp)
        .into_iter()
        .filter(|c| !c.starts_with('$') || c == "$identifier" || c == "$title")
        .filter(|c| !bp.mirror_properties.contains_key(c) && !bp.calculation_properties.contains_key(c))
        .map(|c| json!({"id": c, "title": format::column_title(bp, &c)}))
        .collect();
    let export_qs = |fmt: &str| {
        let l = view.link(&bp.identifier, &[]);
        let qs = l.split_once('?').map(|x| x.1).unwrap_or("");
        format!("/ui/catalog/{}/export?format={fmt}&{qs}", super::urlencode(&bp.identifier))
    };
    let ctx = context! {
        chrome => chrome(&state, &user),
        title => bp.title.clone(),
        bp => sv(json!({"identifier": bp.identifier, "title": bp.title})),
        columns => sv(columns), hidden_columns => sv(hidden_columns), groups, error, filterable => sv(filterable),
        operators => sv(OPERATORS),
        view => sv(json!({"q": view.q, "group": view.group, "cols": view.cols.join(","),
                       "filters": view.filters.iter().map(|(p, o, v)| json!({"fp": p, "fo": o, "fv": v})).collect::<Vec<_>>(),
                       "sort": view.sort, "dir": if view.desc { "desc" } else { "asc" }, "limit": view.limit})),
        next => next.as_ref().map(|n| match n {
            Next::Cursor(c) => view.link(&bp.identifier, &[("after", Some(c.clone()))]),
            Next::Offset(o) => view.link(&bp.identifier, &[("o", Some(o.to_string()))]),
        }),
        first => (view.after.is_some() || view.offset > 0).then(|| view.link(&bp.identifier, &[("after", None), ("o", None)])),
        page_sorted => view.sort.as_deref().is_some_and(|s| !store_sorts(bp, s)),
        ungroup => view.link(&bp.identifier, &[("group", None)]),
        csv_url => export_qs("csv"),
        json_url => export_qs("json"),
        row_count => rows.len(),
        initial, has_initial => saved.is_some(), can_save,
        initial_action => format!("/ui/catalog/{}/initial-filter", super::urlencode(&bp.identifier)),
    };
    page(&state, "catalog.html", ctx)
}

// ---- the saved initial filter of a catalog page -------------------------------------------------

/// The (search text, rules) of a stored initial filter (`{"q", "rules": [[p, o, v], …]}`); rules
/// with an unknown operator are dropped, as in the query string.
fn initial_rules(filter: &Value) -> (Option<String>, Vec<(String, String, String)>) {
    let q = filter.get("q").and_then(Value::as_str).filter(|q| !q.is_empty()).map(str::to_string);
    let rules = filter
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let s = |i: usize| r.get(i).and_then(Value::as_str).map(str::to_string);
            let (p, o, v) = (s(0)?, s(1)?, s(2).unwrap_or_default());
            (!p.is_empty() && OPERATORS.contains(&o.as_str())).then_some((p, o, v))
        })
        .take(MAX_RULES)
        .collect();
    (q, rules)
}

/// The filter in words: `search "x" and Language = rust and …`.
fn describe_filter(bp: &Blueprint, q: Option<&str>, rules: &[(String, String, String)]) -> String {
    let mut parts: Vec<String> = q.map(|q| format!("search \"{q}\"")).into_iter().collect();
    for (p, o, v) in rules {
        let title = format::column_title(bp, p);
        parts.push(if matches!(o.as_str(), "isEmpty" | "isNotEmpty") {
            format!("{title} {o}")
        } else {
            format!("{title} {o} {v}")
        });
    }
    parts.join(" and ")
}

/// `POST /ui/catalog/{bp}/initial-filter` (admins; CSRF): save the filter of the posted view
/// (`q`, `fp`/`fo`/`fv`) as the page's initial filter, or remove it (`remove`, or an empty
/// filter); then back to that view.
pub async fn initial_filter_save(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(&user, &headers, form.get(session::CSRF_FIELD))?;
    if !user.is_admin() {
        return Err(WebError::Forbidden("Only admins change a page's initial filter.".into()));
    }
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let mut view = View::parse(&form, bp);
    let remove = form.get("remove").is_some() || (view.q.is_none() && view.filters.is_empty());
    if remove {
        state.store.set_initial_filter(&user.org, &bp.identifier, None).await?;
    } else {
        view.query(bp).map_err(WebError::BadRequest)?;
        let rules: Vec<Value> = view.filters.iter().map(|(p, o, v)| json!([p, o, v])).collect();
        let saved = portolan_store::InitialFilter {
            filter: json!({"q": view.q, "rules": rules}),
            updated_at: crate::handlers::now_iso(),
            updated_by: user.user.email.clone(),
        };
        state.store.set_initial_filter(&user.org, &bp.identifier, Some(&saved)).await?;
    }
    view.has_initial = !remove;
    Ok(see_other(&view.link(&bp.identifier, &[("after", None), ("o", None)])))
}

fn download(body: String, content_type: &str, filename: &str) -> Response {
    let mut res = Response::new(Body::from(body));
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    let safe: String =
        filename.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// The current view (this page of rows, these columns) as CSV or JSON.
pub async fn catalog_export(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let form = query_form(&q);
    let view = View::parse(&form, bp);
    let (rows, _) = view_page(&state, &user, bp, &view).await?.map_err(WebError::BadRequest)?;
    match form.get("format") {
        Some("json") => {
            let out: Vec<Value> = rows
                .iter()
                .map(|e| {
                    let mut m = Map::new();
                    for c in &view.cols {
                        m.insert(c.trim_start_matches('$').to_string(), column_value(e, c));
                    }
                    Value::Object(m)
                })
                .collect();
            let body = serde_json::to_string_pretty(&out).unwrap_or_default();
            Ok(download(body, "application/json", &format!("{}.json", bp.identifier)))
        }
        _ => {
            let header: Vec<String> = view.cols.iter().map(|c| format::column_title(bp, c)).collect();
            let table: Vec<Vec<String>> =
                rows.iter().map(|e| view.cols.iter().map(|c| cell_text(&column_value(e, c))).collect()).collect();
            Ok(download(csv(&header, &table), "text/csv; charset=utf-8", &format!("{}.csv", bp.identifier)))
        }
    }
}

// ---- entity page ------------------------------------------------------------------------------

/// The fields a diff changed: (field, before, after), for `properties.*`, `relations.*` and the
/// top-level fields.
fn diff_fields(diff: &Value) -> Vec<(String, String, String)> {
    let before = &diff["before"];
    let after = &diff["after"];
    let mut out = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for side in [before, after] {
        if let Some(o) = side.as_object() {
            for (k, v) in o {
                if matches!(k.as_str(), "properties" | "relations") {
                    if let Some(inner) = v.as_object() {
                        for ik in inner.keys() {
                            let key = format!("{k}.{ik}");
                            if !keys.contains(&key) {
                                keys.push(key);
                            }
                        }
                    }
                } else if !matches!(k.as_str(), "updatedAt" | "updatedBy" | "createdAt" | "createdBy")
                    && !keys.contains(k)
                {
                    keys.push(k.clone());
                }
            }
        }
    }
    for k in keys {
        let get = |side: &Value| -> Value {
            match k.split_once('.') {
                Some((top, inner)) if matches!(top, "properties" | "relations") => side[top][inner].clone(),
                _ => side[&k].clone(),
            }
        };
        let (b, a) = (get(before), get(after));
        if b != a {
            out.push((k, cell_text(&b), cell_text(&a)));
        }
    }
    out
}

fn audit_rows(records: &[portolan_store::AuditRecord], now: i64) -> Vec<Mj> {
    records
        .iter()
        .map(|r| {
            let changes: Vec<Value> = r
                .diff
                .as_ref()
                .map(diff_fields)
                .unwrap_or_default()
                .into_iter()
                .map(|(f, b, a)| json!({"field": f, "before": b, "after": a}))
                .collect();
            context! {
                at => Mj::from_safe_string(format::date_time(&r.at, now)),
                resource => r.resource_type.clone(), action => r.action.clone(), status => r.status.clone(),
                identifier => r.identifier.clone(), blueprint => r.blueprint.clone(), entity => r.entity.clone(),
                user => r.user_id.clone(), origin => r.origin.clone(), message => r.message.clone(),
                changes => sv(changes),
            }
        })
        .collect()
}

pub async fn entity(
    State(state): State<AppState>,
    user: WebUser,
    Path((bp_id, id)): Path<(String, String)>,
) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let stored = state
        .store
        .get_entity(&user.org, &bp_id, &id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no entity \"{id}\" of \"{bp_id}\".")))?;
    let rendered = render(&state, &user.org, std::slice::from_ref(&stored), &ReadOptions::default())
        .await?
        .pop()
        .unwrap_or(Value::Null);
    let now = now_secs(&state);
    let mut props: Vec<Mj> = Vec::new();
    for (pid, p) in &bp.schema.properties {
        let v = rendered["properties"].get(pid).cloned().unwrap_or(Value::Null);
        props.push(context! {
            id => pid, title => p.title.clone().unwrap_or_else(|| pid.clone()),
            value => Mj::from_safe_string(format::value_html(&v, Some(p), now)),
            format => p.format.clone().unwrap_or_else(|| p.ty.as_str().to_string()), computed => Mj::UNDEFINED,
        });
    }
    for (mid, m) in &bp.mirror_properties {
        let v = rendered["properties"].get(mid).cloned().unwrap_or(Value::Null);
        props.push(context! {
            id => mid, title => m.title.clone().unwrap_or_else(|| mid.clone()),
            value => Mj::from_safe_string(format::value_html(&v, None, now)),
            format => "mirror", computed => format!("mirror of {}", m.path),
        });
    }
    for (cid, c) in &bp.calculation_properties {
        let v = rendered["properties"].get(cid).cloned().unwrap_or(Value::Null);
        let as_prop: Option<portolan_core::Property> =
            serde_json::from_value(json!({"type": c.ty.as_str(), "format": c.format})).ok();
        props.push(context! {
            id => cid, title => c.title.clone().unwrap_or_else(|| cid.clone()),
            value => Mj::from_safe_string(format::value_html(&v, as_prop.as_ref(), now)),
            format => "calculation", computed => "calculation",
        });
    }
    // Upstream: what this entity's relations point at.
    let mut upstream: Vec<Value> = Vec::new();
    for (rid, rel) in &bp.relations {
        let ids: Vec<String> = match stored.relations.get(rid) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => vec![],
        };
        let found = state.store.get_entities(&user.org, &rel.target, &ids).await?;
        for i in ids {
            let title = found.iter().find(|e| e.identifier == i).and_then(|e| e.title.clone());
            upstream
                .push(json!({"relation": rel.title.clone().unwrap_or_else(|| rid.clone()), "blueprint": rel.target,
                                 "identifier": i, "title": title}));
        }
    }
    // Downstream: entities whose relations point at this one (a bounded page per relation).
    let mut downstream: Vec<Value> = Vec::new();
    let all = state.blueprints(&user.org).await?;
    let mut sources: Vec<(&String, &String, &portolan_core::Relation)> = Vec::new();
    for (b_id, b) in all.iter() {
        for (rid, rel) in &b.relations {
            if rel.target == bp_id {
                sources.push((b_id, rid, rel));
            }
        }
    }
    sources.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (b_id, rid, rel) in sources {
        let q = parse_query(&json!({"combinator": "and", "rules": [{"relation": rid, "operator": "=", "value": id}]}));
        let Ok(q) = q else { continue };
        let req = SearchRequest::new(&all, Some(b_id), Some(&q), 50);
        let page = state.store.search(&user.org, &req).await?;
        for e in page.entities {
            downstream.push(json!({"relation": rel.title.clone().unwrap_or_else(|| rid.clone()), "blueprint": b_id,
                                   "identifier": e.identifier, "title": e.title}));
        }
    }
    let history = state
        .store
        .list_audit(
            &user.org,
            &AuditFilter {
                entity: Some(id.clone()),
                blueprint: Some(bp_id.clone()),
                limit: 50,
                ..AuditFilter::default()
            },
        )
        .await?;
    let ctx = context! {
        chrome => chrome(&state, &user),
        title => stored.title.clone().unwrap_or_else(|| stored.identifier.clone()),
        bp => sv(json!({"identifier": bp.identifier, "title": bp.title})),
        entity => sv(json!({"identifier": stored.identifier, "title": stored.title, "team": stored.team,
                         "createdAt": stored.created_at, "updatedAt": stored.updated_at,
                         "createdBy": stored.created_by, "updatedBy": stored.updated_by})),
        updated => Mj::from_safe_string(format::date_time(&stored.updated_at, now)),
        props, upstream => sv(upstream), downstream => sv(downstream),
        history => audit_rows(&history, now),
    };
    page(&state, "entity.html", ctx)
}

// ---- JSON editors (entities and blueprints) -----------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn editor(
    state: &AppState,
    user: &WebUser,
    status: StatusCode,
    heading: &str,
    action: &str,
    text: &str,
    errors: Vec<Value>,
    message: Option<String>,
    back: &str,
) -> WebResult {
    let body = state.templates.render(
        "editor.html",
        context! { chrome => chrome(state, user), title => heading, heading, action, text, errors => sv(errors), message, back },
    )?;
    Ok(html(status, body))
}

fn entity_doc(e: &Entity) -> String {
    let mut v = portolan_core::export::entity_document(e);
    if let Some(o) = v.as_object_mut() {
        o.shift_remove("blueprint");
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

pub async fn entity_new(State(state): State<AppState>, user: WebUser, Path(bp_id): Path<String>) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let props: Map<String, Value> = bp.schema.properties.keys().map(|k| (k.clone(), Value::Null)).collect();
    let skeleton = json!({"identifier": "", "title": "", "properties": props, "relations": {}});
    let text = serde_json::to_string_pretty(&skeleton).unwrap_or_default();
    let action = format!("/ui/entities/{}", super::urlencode(&bp_id));
    editor(
        &state,
        &user,
        StatusCode::OK,
        &format!("New {}", bp.title),
        &action,
        &text,
        vec![],
        None,
        &format!("/ui/catalog/{}", super::urlencode(&bp_id)),
    )
}

pub async fn entity_edit(
    State(state): State<AppState>,
    user: WebUser,
    Path((bp_id, id)): Path<(String, String)>,
) -> WebResult {
    let e = state
        .store
        .get_entity(&user.org, &bp_id, &id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no entity \"{id}\" of \"{bp_id}\".")))?;
    let action = format!("/ui/entities/{}/{}", super::urlencode(&bp_id), super::urlencode(&id));
    editor(&state, &user, StatusCode::OK, &format!("Edit {id}"), &action, &entity_doc(&e), vec![], None, &action)
}

/// Parse the editor's JSON, or the message saying where it is broken.
fn editor_json(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(text).map_err(|e| format!("The text is not valid JSON: {e}"))
}

/// The API's error as editor messages: the summary and one entry per field.
pub(super) fn api_errors(e: &crate::error::ApiError) -> (String, Vec<Value>) {
    let details = e
        .details
        .as_ref()
        .and_then(|d| d.as_array())
        .map(|d| d.iter().map(|x| json!({"path": x["path"], "message": x["message"]})).collect())
        .unwrap_or_default();
    (e.message.clone(), details)
}

async fn save_entity(state: AppState, user: WebUser, bp_id: String, id: Option<String>, req: Request) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(&user, &headers, form.get(session::CSRF_FIELD))?;
    let text = form.get("json").unwrap_or("").to_string();
    let action = match &id {
        Some(i) => format!("/ui/entities/{}/{}", super::urlencode(&bp_id), super::urlencode(i)),
        None => format!("/ui/entities/{}", super::urlencode(&bp_id)),
    };
    let heading = match &id {
        Some(i) => format!("Edit {i}"),
        None => format!("New {bp_id}"),
    };
    let body = match editor_json(&text) {
        Ok(b) => b,
        Err(m) => {
            return editor(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                &heading,
                &action,
                &text,
                vec![],
                Some(m),
                &action,
            );
        }
    };
    let c = caller(&user);
    let result = match &id {
        Some(i) => {
            crate::handlers::entity::put(
                State(state.clone()),
                c,
                Path((bp_id.clone(), i.clone())),
                QueryParams(EntityParams::default()),
                JsonBody(body),
            )
            .await
        }
        None => {
            crate::handlers::entity::create(
                State(state.clone()),
                c,
                Path(bp_id.clone()),
                QueryParams(EntityParams::default()),
                JsonBody(body),
            )
            .await
        }
    };
    match result {
        Ok((_, axum::Json(v))) => {
            let new_id = v["entity"]["identifier"].as_str().unwrap_or_default();
            Ok(see_other(&format!("/ui/entities/{}/{}", super::urlencode(&bp_id), super::urlencode(new_id))))
        }
        Err(e) if e.status.is_client_error() => {
            let (m, details) = api_errors(&e);
            editor(&state, &user, e.status, &heading, &action, &text, details, Some(m), &action)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn entity_save_new(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    save_entity(state, user, bp_id, None, req).await
}

pub async fn entity_save(
    State(state): State<AppState>,
    user: WebUser,
    Path((bp_id, id)): Path<(String, String)>,
    req: Request,
) -> WebResult {
    save_entity(state, user, bp_id, Some(id), req).await
}

// ---- builder ------------------------------------------------------------------------------------

pub async fn builder(State(state): State<AppState>, user: WebUser) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let mut list: Vec<Value> = bps
        .values()
        .map(|b| {
            json!({"identifier": b.identifier, "title": b.title,
                   "properties": b.schema.properties.len(), "relations": b.relations.len(),
                   "computed": b.mirror_properties.len() + b.calculation_properties.len()})
        })
        .collect();
    list.sort_by(|a, b| a["identifier"].as_str().cmp(&b["identifier"].as_str()));
    page(
        &state,
        "builder.html",
        context! { chrome => chrome(&state, &user), title => "Builder", blueprints => sv(list) },
    )
}

pub async fn graph_svg(State(state): State<AppState>, user: WebUser) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let mut res = format::graph_svg(&bps).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    Ok(res)
}

const BLUEPRINT_SKELETON: &str = r#"{
  "identifier": "",
  "title": "",
  "icon": "Blueprint",
  "schema": {
    "properties": {},
    "required": []
  },
  "relations": {},
  "mirrorProperties": {},
  "calculationProperties": {}
}"#;

pub async fn blueprint_new(State(state): State<AppState>, user: WebUser) -> WebResult {
    editor(
        &state,
        &user,
        StatusCode::OK,
        "New blueprint",
        "/ui/builder",
        BLUEPRINT_SKELETON,
        vec![],
        None,
        "/ui/builder",
    )
}

pub async fn blueprint_edit(State(state): State<AppState>, user: WebUser, Path(bp_id): Path<String>) -> WebResult {
    let b = state
        .store
        .get_blueprint(&user.org, &bp_id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let text = serde_json::to_string_pretty(&b.blueprint).unwrap_or_default();
    let action = format!("/ui/builder/{}", super::urlencode(&bp_id));
    let mut targets: Vec<String> = state.blueprints(&user.org).await?.keys().cloned().collect();
    targets.sort();
    let heading = format!("Edit blueprint {bp_id}");
    let body = state.templates.render(
        "editor.html",
        context! {
            chrome => chrome(&state, &user), title => heading.clone(), heading, action, text,
            errors => sv(Vec::<Value>::new()), back => "/ui/builder",
            forms => sv(json!({"bp": bp_id, "targets": targets, "formats": PROPERTY_FORMATS})),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

/// Blueprints are the data model: only admins change them (as in Port).
fn require_admin(user: &WebUser) -> WebResult<()> {
    if user.is_admin() { Ok(()) } else { Err(WebError::Forbidden("Only admins change blueprints.".into())) }
}

/// Formats offered by the builder's property form (Port's string formats).
const PROPERTY_FORMATS: &[&str] =
    &["url", "email", "markdown", "yaml", "date-time", "timer", "user", "team", "ipv4", "ipv6"];

/// The builder's forms: add a property or a relation to a blueprint, through the API's
/// validation (a refused change shows the blueprint JSON with the API's messages at the field).
async fn change_blueprint(
    state: AppState,
    user: WebUser,
    bp_id: String,
    req: Request,
    change: fn(&mut Value, &Form) -> Result<(), String>,
) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(&user, &headers, form.get(session::CSRF_FIELD))?;
    require_admin(&user)?;
    let stored = state
        .store
        .get_blueprint(&user.org, &bp_id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let mut doc = serde_json::to_value(&stored.blueprint).map_err(|e| WebError::internal("blueprint json", e))?;
    let heading = format!("Edit blueprint {bp_id}");
    let action = format!("/ui/builder/{}", super::urlencode(&bp_id));
    if let Err(m) = change(&mut doc, &form) {
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        return editor(
            &state,
            &user,
            StatusCode::UNPROCESSABLE_ENTITY,
            &heading,
            &action,
            &text,
            vec![],
            Some(m),
            "/ui/builder",
        );
    }
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let result =
        crate::handlers::blueprint::put(State(state.clone()), caller(&user), Path(bp_id.clone()), JsonBody(doc)).await;
    match result {
        Ok(_) => Ok(see_other(&action)),
        Err(e) if e.status.is_client_error() => {
            let (m, details) = api_errors(&e);
            editor(&state, &user, e.status, &heading, &action, &text, details, Some(m), "/ui/builder")
        }
        Err(e) => Err(e.into()),
    }
}

fn add_property(doc: &mut Value, form: &Form) -> Result<(), String> {
    let id = form.get("identifier").ok_or("The property needs an identifier.")?.trim().to_string();
    let mut prop = Map::new();
    prop.insert("type".into(), json!(form.get("type").unwrap_or("string")));
    if let Some(t) = form.get("title") {
        prop.insert("title".into(), json!(t));
    }
    if let Some(f) = form.get("format") {
        prop.insert("format".into(), json!(f));
    }
    if form.get("type") == Some("array") {
        prop.insert("items".into(), json!({"type": "string"}));
    }
    if let Some(e) = form.get("enum") {
        prop.insert("enum".into(), json!(e.split(',').map(str::trim).filter(|x| !x.is_empty()).collect::<Vec<_>>()));
    }
    let schema = doc.get_mut("schema").and_then(Value::as_object_mut).ok_or("The blueprint has no schema.")?;
    let props = schema.entry("properties").or_insert_with(|| json!({}));
    if props.get(&id).is_some() {
        return Err(format!("The blueprint already has a property \"{id}\"."));
    }
    props[&id] = Value::Object(prop);
    if form.get("required").is_some() {
        let req = schema.entry("required").or_insert_with(|| json!([]));
        if let Some(a) = req.as_array_mut() {
            a.push(json!(id));
        }
    }
    Ok(())
}

fn add_relation(doc: &mut Value, form: &Form) -> Result<(), String> {
    let id = form.get("identifier").ok_or("The relation needs an identifier.")?.trim().to_string();
    let target = form.get("target").ok_or("The relation needs a target blueprint.")?;
    let mut rel =
        json!({"target": target, "many": form.get("many").is_some(), "required": form.get("required").is_some()});
    if let Some(t) = form.get("title") {
        rel["title"] = json!(t);
    }
    let obj = doc.as_object_mut().ok_or("The blueprint is not an object.")?;
    let rels = obj.entry("relations").or_insert_with(|| json!({}));
    if rels.get(&id).is_some() {
        return Err(format!("The blueprint already has a relation \"{id}\"."));
    }
    rels[&id] = rel;
    Ok(())
}

pub async fn blueprint_add_property(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    change_blueprint(state, user, bp_id, req, add_property).await
}

pub async fn blueprint_add_relation(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    change_blueprint(state, user, bp_id, req, add_relation).await
}

async fn save_blueprint(state: AppState, user: WebUser, bp_id: Option<String>, req: Request) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(&user, &headers, form.get(session::CSRF_FIELD))?;
    require_admin(&user)?;
    let text = form.get("json").unwrap_or("").to_string();
    let (heading, action) = match &bp_id {
        Some(b) => (format!("Edit blueprint {b}"), format!("/ui/builder/{}", super::urlencode(b))),
        None => ("New blueprint".to_string(), "/ui/builder".to_string()),
    };
    let body = match editor_json(&text) {
        Ok(b) => b,
        Err(m) => {
            return editor(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                &heading,
                &action,
                &text,
                vec![],
                Some(m),
                "/ui/builder",
            );
        }
    };
    let c = caller(&user);
    let result = match &bp_id {
        Some(b) => crate::handlers::blueprint::put(State(state.clone()), c, Path(b.clone()), JsonBody(body)).await,
        None => crate::handlers::blueprint::create(State(state.clone()), c, JsonBody(body)).await,
    };
    match result {
        Ok(_) => Ok(see_other("/ui/builder")),
        Err(e) if e.status.is_client_error() => {
            let (m, details) = api_errors(&e);
            editor(&state, &user, e.status, &heading, &action, &text, details, Some(m), "/ui/builder")
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn blueprint_save_new(State(state): State<AppState>, user: WebUser, req: Request) -> WebResult {
    save_blueprint(state, user, None, req).await
}

pub async fn blueprint_save(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    req: Request,
) -> WebResult {
    save_blueprint(state, user, Some(bp_id), req).await
}

// ---- audit log ----------------------------------------------------------------------------------

pub async fn audit(State(state): State<AppState>, user: WebUser, RawQuery(q): RawQuery) -> WebResult {
    let f = query_form(&q);
    let pick = |k: &str, allowed: &[&str]| f.get(k).filter(|v| allowed.contains(v)).map(str::to_string);
    let time = |k: &str| {
        f.get(k).and_then(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .or_else(|| chrono::DateTime::parse_from_rfc3339(&format!("{s}:00Z")).ok())
                .map(|d| d.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        })
    };
    let filter = AuditFilter {
        identifier: f.get("identifier").map(str::to_string),
        entity: f.get("entity").map(str::to_string),
        blueprint: f.get("blueprint").map(str::to_string),
        resources: f.all("resources"),
        origin: f.all("origin"),
        action: pick("action", &["CREATE", "UPDATE", "DELETE"]),
        status: pick("status", &["SUCCESS", "FAILURE"]),
        from: time("from"),
        to: time("to"),
        // One page, newest first, below the `before` record (`aud_<n>`); a record more than the
        // page tells whether there are older ones.
        before: f.get("before").and_then(|b| b.strip_prefix("aud_")?.parse().ok()),
        limit: f.get("limit").and_then(|l| l.parse().ok()).filter(|l| (1..=500).contains(l)).unwrap_or(100),
    };
    let page_size = filter.limit as usize;
    let mut records =
        state.store.list_audit(&user.org, &AuditFilter { limit: filter.limit + 1, ..filter.clone() }).await?;
    let link = |before: Option<&str>| {
        let mut qs: Vec<String> =
            f.0.iter()
                .filter(|(k, v)| k != "before" && !v.is_empty())
                .map(|(k, v)| format!("{k}={}", super::urlencode(v)))
                .collect();
        qs.extend(before.map(|b| format!("before={}", super::urlencode(b))));
        format!("/ui/audit?{}", qs.join("&"))
    };
    let older = (records.len() > page_size).then(|| {
        records.truncate(page_size);
        link(records.last().map(|r| r.id.as_str()))
    });
    let now = now_secs(&state);
    let ctx = context! {
        chrome => chrome(&state, &user), title => "Audit log",
        records => audit_rows(&records, now),
        older, newest => filter.before.is_some().then(|| link(None)),
        f => sv(json!({"identifier": f.get("identifier"), "entity": f.get("entity"), "blueprint": f.get("blueprint"),
                    "resources": f.all("resources"), "origin": f.get("origin"), "action": f.get("action"),
                    "status": f.get("status"), "from": f.get("from"), "to": f.get("to"), "limit": filter.limit})),
        resource_types => sv(["blueprint", "entity", "run", "webhook", "scorecard", "action", "integration"]),
    };
    page(&state, "audit.html", ctx)
}

// ---- export -------------------------------------------------------------------------------------

pub async fn export_dialog(State(state): State<AppState>, user: WebUser) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let mut ids: Vec<Value> = bps.values().map(|b| json!({"identifier": b.identifier, "title": b.title})).collect();
    ids.sort_by(|a, b| a["identifier"].as_str().cmp(&b["identifier"].as_str()));
    page(&state, "export.html", context! { chrome => chrome(&state, &user), title => "Export", blueprints => sv(ids) })
}

/// Blueprints (chosen, or all) and their entities in JSON, YAML or HCL. Entities are read a
/// page of 1000 at a time, at most `max_unpaginated` in all (the CLI has no such cap).
pub async fn export_download(State(state): State<AppState>, user: WebUser, RawQuery(q): RawQuery) -> WebResult {
    let f = query_form(&q);
    let format = Format::parse(f.get("format").unwrap_or("json"))
        .ok_or_else(|| WebError::BadRequest("format must be json, yaml or hcl".into()))?;
    let all = state.blueprints(&user.org).await?;
    let chosen = f.all("blueprint");
    let mut ids: Vec<&String> = all.keys().filter(|k| chosen.is_empty() || chosen.contains(k)).collect();
    ids.sort();
    if let Some(missing) = chosen.iter().find(|c| !all.contains_key(*c)) {
        return Err(WebError::NotFound(format!("There is no blueprint \"{missing}\".")));
    }
    let blueprints: Vec<Blueprint> = ids.iter().map(|i| all[*i].clone()).collect();
    let mut entities: Vec<Entity> = Vec::new();
    if f.get("entities") != Some("no") {
        let cap = state.config.max_unpaginated as usize;
        for id in &ids {
            let mut after = None;
            loop {
                let req = SearchRequest { after, ..SearchRequest::new(&all, Some(id.as_str()), None, 1000) };
                let page = state.store.search(&user.org, &req).await?;
                entities.extend(page.entities);
                if entities.len() > cap {
                    return Err(WebError::BadRequest(format!(
                        "More than {cap} entities: export them with `portolan export`, which has no limit."
                    )));
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
    }
    let body = portolan_core::export::export(format, &blueprints, &entities);
    Ok(download(body, format.content_type(), &format!("portolan-export.{}", format.extension())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_percent_and_plus() {
        let f = parse_form("a=1+2&b=%3Cx%3E&c&d=%E2%9C%93&e=%zz");
        assert_eq!(
            f,
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "<x>".into()),
                ("c".into(), String::new()),
                ("d".into(), "✓".into()),
                ("e".into(), "%zz".into())
            ]
        );
    }

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

    /// Finding 3's class: HTML reaches a response only through `Templates` (auto-escape on for
    /// every template) or `format.rs` (whose fragments escape every value).
    #[test]
    fn no_html_is_rendered_outside_the_escaping_environment() {
        let sources = [
            ("mod.rs", include_str!("mod.rs")),
            ("pages.rs", include_str!("pages.rs")),
            ("sources.rs", include_str!("sources.rs")),
            ("session.rs", include_str!("session.rs")),
            ("format.rs", include_str!("format.rs")),
        ];
        let banned = [
            ["minijinja::", "render!"].concat(),
            ["render", "_str("].concat(),
            ["render_named", "_str("].concat(),
            ["Environment::", "new()"].concat(),
            ["Redirect::", "to(&"].concat(),
        ];
        for (name, src) in sources {
            let src = src.split("#[cfg(test)]").next().unwrap_or(src);
            for b in &banned {
                let n = src.matches(b.as_str()).count();
                let allowed =
                    usize::from(name == "mod.rs" && (b.starts_with("Environment") || b.starts_with("Redirect")));
                assert!(n <= allowed, "web/{name} uses `{b}` {n} times: render HTML through Templates");
            }
        }
        // Every template escapes, whatever its name.
        let t = super::super::Templates::new();
        let out = t.render("message.html", context! { title => "<i>", message => "<b hx-get=\"/x\">" }).unwrap();
        assert!(out.contains("&lt;b hx-get=") && !out.contains("<b hx-get"), "{out}");
    }

    #[test]
    fn a_redirect_target_with_newlines_is_a_400_not_a_panic() {
        assert_eq!(see_other("/ui/x\r\nSet-Cookie: a=b").status(), StatusCode::BAD_REQUEST);
        assert_eq!(see_other("/ui/x").status(), StatusCode::SEE_OTHER);
    }
}
