//! The data-sources pages: integrations (Ocean installations) with their configuration, resync
//! state and history, config versions and event log (filtered by level and time, a page at a
//! time); the mapping editor (JSON or YAML, validated — shape, jq, blueprints — before it is
//! saved through the same handler as `PATCH /v1/integration/{id}/config`); and the mapping
//! playground (an example item through a mapping, every field's jq result or error).
//!
//! Custom webhooks (`/v1/webhooks`) are listed on the same page; a webhook's page
//! (`/ui/data-sources/webhooks/{id}`) shows its configuration (the secret never: only whether one
//! is set), its mappings and its event log (the same filter and paging as an integration's).
//! Webhooks are read-only here: they change through the API.

pub(super) mod integration;
mod log;
pub(super) mod mapping;
pub(super) mod playground;
pub(super) mod webhook;

use axum::extract::State;
use axum::http::HeaderMap;
use minijinja::Value as Mj;
use portolan_store::{LogFilter, StoredIntegration};
use serde::Serialize;
use serde_json::Value;

use self::webhook::{webhook_base, webhook_enabled};
use super::format::date_time;
use super::respond::{chrome, now_secs, page};
use super::session::WebUser;
use super::{Chrome, WebError, WebResult, urlencode};
use crate::handlers::webhook as hooks;
use crate::ops;
use crate::state::AppState;

/// What [`require_admin`](super::respond::require_admin) says members may not do here.
const ADMINS_ONLY: &str = "change integrations";

/// Log lines per page of the event log: default and most.
pub(super) const LOG_PAGE: u32 = 50;
pub(super) const MAX_LOG_PAGE: u32 = 200;
/// Port's log levels (the filter's checkboxes).
pub(super) const LEVELS: &[&str] = &["DEBUG", "INFO", "WARNING", "ERROR", "FATAL"];
/// Config versions listed on the integration page (newest first).
pub(super) const VERSIONS_SHOWN: u32 = 20;
/// Resyncs listed in the history.
pub(super) const RESYNCS_SHOWN: u32 = 10;
/// Examples offered by the playground, and items of `itemsToParse` it maps.
pub(super) const EXAMPLES_SHOWN: usize = 20;
pub(super) const ITEMS_MAPPED: usize = 20;

pub(super) async fn load(state: &AppState, user: &WebUser, id: &str) -> WebResult<StoredIntegration> {
    state
        .store
        .get_integration(&user.org, id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no integration \"{id}\".")))
}

pub(super) fn base(id: &str) -> String {
    format!("/ui/data-sources/{}", urlencode(id))
}

pub(super) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The data-sources page.
#[derive(Serialize)]
struct Sources {
    chrome: Chrome,
    title: &'static str,
    integrations: Vec<IntegrationRow>,
    webhooks: Vec<WebhookRow>,
}

#[derive(Serialize)]
struct IntegrationRow {
    identifier: String,
    link: String,
    kind: Option<String>,
    version: Option<String>,
    /// The latest resync's status and when it started or ended (safe HTML).
    status: Option<String>,
    when: Option<Mj>,
    entities: u64,
    /// The last finished resync's counts.
    written: Option<Value>,
    rejected: Option<Value>,
    deleted: Option<Value>,
    refused: Option<Value>,
    config_version: i64,
}

#[derive(Serialize)]
struct WebhookRow {
    identifier: String,
    link: String,
    title: Option<String>,
    enabled: bool,
    mappings: usize,
    url: String,
    /// The last delivery (safe HTML).
    last: Option<Mj>,
}

pub async fn data_sources(State(state): State<AppState>, user: WebUser, headers: HeaderMap) -> WebResult {
    let now = now_secs(&state);
    let mut integrations: Vec<IntegrationRow> = Vec::new();
    let mut all = state.store.list_integrations(&user.org).await?;
    all.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    for i in &all {
        let latest = state.store.latest_resync(&user.org, &i.identifier).await?;
        let finished = LogFilter { events: vec!["resync_finished".into()], limit: 1, ..LogFilter::default() };
        let last = state.store.list_integration_logs(&user.org, &i.identifier, &finished).await?.pop();
        let entities = ops::deletion_guard::count_entities(&state, &user.org, &i.identifier, None, None).await?;
        let status = latest
            .as_ref()
            .map(|r| r.status.clone())
            .or_else(|| str_at(&i.data, "/resyncState/status").map(str::to_string));
        let when = latest
            .as_ref()
            .map(|r| r.ended_at.clone().unwrap_or_else(|| r.started_at.clone()))
            .or_else(|| str_at(&i.data, "/resyncState/updatedAt").map(str::to_string));
        let counts = last.map(|l| l.extra).unwrap_or(Value::Null);
        integrations.push(IntegrationRow {
            identifier: i.identifier.clone(),
            link: base(&i.identifier),
            kind: str_at(&i.data, "/installationAppType").map(str::to_string),
            version: i.data.get("version").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)),
            status,
            when: when.map(|w| Mj::from_safe_string(date_time(&w, now))),
            entities,
            written: counts.get("written").cloned(),
            rejected: counts.get("rejected").cloned(),
            deleted: counts.get("deleted").cloned(),
            refused: counts.get("deletionsRefused").cloned(),
            config_version: i.config_version,
        });
    }
    // Custom webhooks (/v1/webhooks): one store read for the list, one (LIMIT 1) per webhook
    // for its last delivery.
    let ingest_base = crate::handlers::base_url(&headers);
    let mut webhooks: Vec<WebhookRow> = Vec::new();
    for w in state.store.list_webhooks(&user.org).await? {
        let received = LogFilter { events: vec!["delivery_received".into()], limit: 1, ..LogFilter::default() };
        let last = state.store.list_webhook_logs(&user.org, &w.identifier, &received).await?.pop();
        webhooks.push(WebhookRow {
            identifier: w.identifier.clone(),
            link: webhook_base(&w.identifier),
            title: str_at(&w.data, "/title").map(str::to_string),
            enabled: webhook_enabled(&w),
            mappings: w.data.get("mappings").and_then(Value::as_array).map_or(0, Vec::len),
            url: format!("{ingest_base}{}{}", hooks::INGEST_PATH, w.webhook_key),
            last: last.map(|l| Mj::from_safe_string(date_time(&l.at, now))),
        });
    }
    page(
        &state,
        "sources.html",
        Sources { chrome: chrome(&state, &user), title: "Data sources", integrations, webhooks },
    )
}

/// `config.resources` of an integration object.
pub(super) fn resources(data: &Value) -> Vec<Value> {
    data.pointer("/config/resources").and_then(Value::as_array).cloned().unwrap_or_default()
}
