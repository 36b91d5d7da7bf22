//! The organization page (admins): its name, its quotas beside what it uses (set by the
//! operator with `portolan org quota`, so only shown), and its single sign-on settings
//! ([`crate::sso`]), changed through the same checks as `PUT /v1/organization/sso`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use super::form::signed_form;
use super::respond::{FieldMessage, api_errors, caller, chrome, page_with, require_admin, see_other};
use super::session::WebUser;
use super::{Chrome, WebResult};
use crate::state::AppState;

#[derive(Serialize)]
struct Line {
    what: &'static str,
    used: u64,
    limit: Option<u64>,
    /// Whether the quota is reached (no more can be created).
    full: bool,
}

#[derive(Serialize)]
struct OrgPage {
    chrome: Chrome,
    title: &'static str,
    name: String,
    id: String,
    lines: Vec<Line>,
    /// The SSO settings as the API answers them (no secret).
    sso: Value,
    /// Why the last change was refused: the message and each field's.
    sso_error: Option<String>,
    errors: Vec<FieldMessage>,
}

/// `GET /ui/organization`.
pub async fn organization(State(state): State<AppState>, user: WebUser, headers: HeaderMap) -> WebResult {
    require_admin(&user, "see the organization's quotas and single sign-on")?;
    org_page(&state, &user, &headers, StatusCode::OK, None).await
}

async fn org_page(
    state: &AppState,
    user: &WebUser,
    headers: &HeaderMap,
    status: StatusCode,
    refused: Option<(String, Vec<FieldMessage>)>,
) -> WebResult {
    let org = state
        .store
        .get_org(&user.org)
        .await?
        .ok_or_else(|| super::WebError::NotFound("No such organization.".into()))?;
    let q = state.store.quotas(&user.org).await?;
    let usage = state.store.usage(&user.org).await?;
    let line = |what, used: u64, limit: Option<u64>| Line { what, used, limit, full: limit.is_some_and(|l| used >= l) };
    let lines = vec![line("Users", usage.users, q.max_users), line("Entities", usage.entities, q.max_entities)];
    let sso = crate::sso::load(state, &user.org).await?;
    let sso = crate::sso::render(&sso, &crate::sso::base_url(state, headers), &org.name, state.clock.now());
    let (sso_error, errors) = refused.map_or((None, Vec::new()), |(m, e)| (Some(m), e));
    let ctx = OrgPage {
        chrome: chrome(state, user),
        title: "Organization",
        name: org.name,
        id: org.id.0,
        lines,
        sso,
        sso_error,
        errors,
    };
    page_with(state, status, "organization.html", ctx)
}

/// `POST /ui/organization/sso`: the form's fields as `PUT /v1/organization/sso`'s body (a
/// blank client secret keeps the stored one; `remove` removes the provider).
pub async fn sso_save(State(state): State<AppState>, user: WebUser, req: Request) -> WebResult {
    let (headers, form) = signed_form(&user, req).await?;
    require_admin(&user, "change single sign-on")?;
    let body = if form.get("remove").is_some() {
        json!({"oidc": null, "localPasswords": true})
    } else {
        let field = |k: &str| form.get(k).unwrap_or_default().trim().to_string();
        let mut oidc = json!({
            "enabled": form.get("enabled").is_some(),
            "issuer": field("issuer"),
            "clientId": field("clientId"),
            "scopes": field("scopes").split_whitespace().collect::<Vec<_>>(),
        });
        for (k, v) in [("clientSecret", field("clientSecret")), ("displayName", field("displayName"))] {
            if !v.is_empty() {
                oidc[k] = json!(v);
            }
        }
        let groups = field("groupsClaim");
        oidc["groupsClaim"] = if groups.is_empty() { Value::Null } else { json!(groups) };
        json!({"oidc": oidc, "localPasswords": form.get("localPasswords").is_some()})
    };
    save(&state, &user, &headers, &body).await
}

/// `POST /ui/organization/sso/saml`: the SAML form's fields as `PUT /v1/organization/sso`'s
/// `saml` (blank metadata fields keep the metadata read before; `remove` removes the provider).
pub async fn saml_save(State(state): State<AppState>, user: WebUser, req: Request) -> WebResult {
    let (headers, form) = signed_form(&user, req).await?;
    require_admin(&user, "change single sign-on")?;
    let body = if form.get("remove").is_some() {
        json!({"saml": null, "localPasswords": true})
    } else {
        let field = |k: &str| form.get(k).unwrap_or_default().trim().to_string();
        let mut saml = json!({"enabled": form.get("enabled").is_some()});
        for k in ["idpMetadataXml", "idpMetadataUrl", "emailAttribute", "groupsAttribute", "displayName"] {
            let v = field(k);
            saml[k] = if v.is_empty() { Value::Null } else { json!(v) };
        }
        json!({"saml": saml, "localPasswords": form.get("localPasswords").is_some()})
    };
    save(&state, &user, &headers, &body).await
}

async fn save(state: &AppState, user: &WebUser, headers: &HeaderMap, body: &Value) -> WebResult {
    match crate::sso::save(state, &caller(user), body).await {
        Ok(_) => Ok(see_other("/ui/organization#sso")),
        Err(e) => {
            let status = e.status;
            org_page(state, user, headers, status, Some(api_errors(&e))).await
        }
    }
}
