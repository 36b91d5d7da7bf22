//! One custom webhook's page (read-only: webhooks change through the API): configuration (the
//! secret never, only whether one is set), mappings and the event log.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use portolan_store::StoredWebhook;
use serde::Serialize;
use serde_json::Value;

use super::log::{LogRow, LogView, log_page};
use super::{LEVELS, hooks, str_at};
use crate::state::AppState;
use crate::web::form::query_form;
use crate::web::respond::{chrome, now_secs, page};
use crate::web::session::WebUser;
use crate::web::{Chrome, WebError, WebResult, urlencode};

#[derive(Serialize)]
struct WebhookPage<'a> {
    chrome: Chrome,
    title: String,
    w: Summary<'a>,
    security: Security<'a>,
    mappings: Vec<Mapping>,
    /// The webhook object as the API shows it, without the secret, as pretty JSON.
    config: String,
    base: String,
    log: Vec<LogRow>,
    older: Option<String>,
    newest: Option<String>,
    levels: &'static [&'static str],
    view: &'a LogView,
    log_ref: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    identifier: &'a str,
    title: Option<&'a str>,
    description: Option<&'a str>,
    enabled: bool,
    integration_type: Option<&'a str>,
    url: Option<&'a Value>,
    created_at: &'a str,
    created_by: &'a str,
    updated_at: &'a str,
    updated_by: &'a str,
}

/// How deliveries are authenticated: whether a secret is set (never the secret) and the
/// signature settings.
#[derive(Serialize)]
struct Security<'a> {
    secret_set: bool,
    header: Option<&'a Value>,
    algorithm: Option<&'a Value>,
    prefix: Option<&'a Value>,
    request_id: Option<&'a Value>,
}

/// One mapping of the webhook, its expressions as text.
#[derive(Serialize)]
struct Mapping {
    n: usize,
    blueprint: Option<String>,
    operation: Option<String>,
    filter: Option<String>,
    items: Option<String>,
    /// The entity mapping as pretty JSON.
    entity: Option<String>,
}

pub(super) fn webhook_base(id: &str) -> String {
    format!("/ui/data-sources/webhooks/{}", urlencode(id))
}

pub(super) fn webhook_enabled(w: &StoredWebhook) -> bool {
    w.data.get("enabled").and_then(Value::as_bool).unwrap_or(true)
}

/// A jq expression or an operation object as one line of text.
fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub async fn webhook(
    State(state): State<AppState>,
    user: WebUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let w = state
        .store
        .get_webhook(&user.org, &id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no webhook \"{id}\".")))?;
    let now = now_secs(&state);
    let view = LogView::parse(&query_form(&q), "wl_");
    let lines = state.store.list_webhook_logs(&user.org, &id, &view.filter()).await?;
    let (log, older) = log_page(&view, &webhook_base(&id), lines, now);
    // Port's webhook object as the API renders it, without the secret (not even masked).
    let mut object = hooks::render(&w, &crate::handlers::base_url(&headers));
    if let Some(sec) = object.get_mut("security").and_then(Value::as_object_mut) {
        sec.remove("secret");
    }
    let security = object.get("security").cloned().unwrap_or(Value::Null);
    let mappings: Vec<Mapping> = w
        .data
        .get("mappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(n, m)| Mapping {
            n,
            blueprint: text_of(m.get("blueprint")),
            operation: text_of(m.get("operation")),
            filter: text_of(m.get("filter")),
            items: text_of(m.get("itemsToParse")),
            entity: m.get("entity").map(|e| serde_json::to_string_pretty(e).unwrap_or_default()),
        })
        .collect();
    let ctx = WebhookPage {
        chrome: chrome(&state, &user),
        title: format!("Webhook {id}"),
        w: Summary {
            identifier: &w.identifier,
            title: str_at(&w.data, "/title"),
            description: str_at(&w.data, "/description"),
            enabled: webhook_enabled(&w),
            integration_type: str_at(&w.data, "/integrationType"),
            url: object.get("url"),
            created_at: &w.created_at,
            created_by: &w.created_by,
            updated_at: &w.updated_at,
            updated_by: &w.updated_by,
        },
        security: Security {
            secret_set: w.secret.is_some(),
            header: security.get("signatureHeaderName"),
            algorithm: security.get("signatureAlgorithm"),
            prefix: security.get("signaturePrefix"),
            request_id: security.get("requestIdentifierPath"),
        },
        mappings,
        config: serde_json::to_string_pretty(&object).unwrap_or_default(),
        base: webhook_base(&id),
        log,
        older,
        newest: view.before.is_some().then(|| view.link(&webhook_base(&id), None)),
        levels: LEVELS,
        view: &view,
        log_ref: "Delivery",
    };
    page(&state, "source_webhook.html", ctx)
}
