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

use std::collections::HashSet;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use minijinja::Value as Mj;
use minijinja::context;
use portolan_jq::JqScope;
use portolan_store::{LogFilter, StoredIntegration, StoredWebhook};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::format::date_time;
use super::pages::{Form, WebResult, api_errors, body_form, caller, chrome, now_secs, page, query_form, see_other, sv};
use super::session::{self, WebUser};
use super::{WebError, html, urlencode};
use crate::extract::JsonBody;
use crate::handlers::integration as api;
use crate::handlers::webhook as hooks;
use crate::state::AppState;

/// Log lines per page of the event log: default and most.
const LOG_PAGE: u32 = 50;
const MAX_LOG_PAGE: u32 = 200;
/// Port's log levels (the filter's checkboxes).
const LEVELS: &[&str] = &["DEBUG", "INFO", "WARNING", "ERROR", "FATAL"];
/// Config versions listed on the integration page (newest first).
const VERSIONS_SHOWN: u32 = 20;
/// Resyncs listed in the history.
const RESYNCS_SHOWN: u32 = 10;
/// Examples offered by the playground, and items of `itemsToParse` it maps.
const EXAMPLES_SHOWN: usize = 20;
const ITEMS_MAPPED: usize = 20;

async fn load(state: &AppState, user: &WebUser, id: &str) -> WebResult<StoredIntegration> {
    state
        .store
        .get_integration(&user.org, id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no integration \"{id}\".")))
}

fn base(id: &str) -> String {
    format!("/ui/data-sources/{}", urlencode(id))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Mappings only admins change (as blueprints).
fn require_admin(user: &WebUser) -> WebResult<()> {
    if user.is_admin() { Ok(()) } else { Err(WebError::Forbidden("Only admins change integrations.".into())) }
}

// ---- the list -----------------------------------------------------------------------------------

pub async fn data_sources(State(state): State<AppState>, user: WebUser, headers: HeaderMap) -> WebResult {
    let now = now_secs(&state);
    let mut rows: Vec<Mj> = Vec::new();
    let mut all = state.store.list_integrations(&user.org).await?;
    all.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    for i in &all {
        let latest = state.store.latest_resync(&user.org, &i.identifier).await?;
        let finished = LogFilter { events: vec!["resync_finished".into()], limit: 1, ..LogFilter::default() };
        let last = state.store.list_integration_logs(&user.org, &i.identifier, &finished).await?.pop();
        let entities = api::events::count_entities(&state, &user.org, &i.identifier, None, None).await?;
        let status = latest
            .as_ref()
            .map(|r| r.status.clone())
            .or_else(|| str_at(&i.data, "/resyncState/status").map(str::to_string));
        let when = latest
            .as_ref()
            .map(|r| r.ended_at.clone().unwrap_or_else(|| r.started_at.clone()))
            .or_else(|| str_at(&i.data, "/resyncState/updatedAt").map(str::to_string));
        let counts = last.map(|l| l.extra).unwrap_or(Value::Null);
        rows.push(context! {
            identifier => i.identifier.clone(),
            link => base(&i.identifier),
            kind => str_at(&i.data, "/installationAppType"),
            version => i.data.get("version").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)),
            status, when => when.map(|w| Mj::from_safe_string(date_time(&w, now))),
            entities,
            written => counts.get("written").cloned().map(sv),
            rejected => counts.get("rejected").cloned().map(sv),
            deleted => counts.get("deleted").cloned().map(sv),
            refused => counts.get("deletionsRefused").cloned().map(sv),
            config_version => i.config_version,
        });
    }
    // Custom webhooks (/v1/webhooks): one store read for the list, one (LIMIT 1) per webhook
    // for its last delivery.
    let ingest_base = crate::handlers::base_url(&headers);
    let mut webhooks: Vec<Mj> = Vec::new();
    for w in state.store.list_webhooks(&user.org).await? {
        let received = LogFilter { events: vec!["delivery_received".into()], limit: 1, ..LogFilter::default() };
        let last = state.store.list_webhook_logs(&user.org, &w.identifier, &received).await?.pop();
        webhooks.push(context! {
            identifier => w.identifier.clone(),
            link => webhook_base(&w.identifier),
            title => str_at(&w.data, "/title"),
            enabled => webhook_enabled(&w),
            mappings => w.data.get("mappings").and_then(Value::as_array).map_or(0, Vec::len),
            url => format!("{ingest_base}{}{}", hooks::INGEST_PATH, w.webhook_key),
            last => last.map(|l| Mj::from_safe_string(date_time(&l.at, now))),
        });
    }
    page(
        &state,
        "sources.html",
        context! { chrome => chrome(&state, &user), title => "Data sources", integrations => rows, webhooks },
    )
}

// ---- one integration: configuration, resyncs, versions, event log --------------------------------

/// The event log's filter, from the query string.
#[derive(Debug, Default, Serialize)]
struct LogView {
    levels: Vec<String>,
    /// As typed (`YYYY-MM-DDTHH:MM`, UTC) and as compared.
    from: Option<String>,
    to: Option<String>,
    #[serde(skip)]
    from_at: Option<String>,
    #[serde(skip)]
    to_at: Option<String>,
    /// The page starts below this line id (`il_<n>`, or `wl_<n>` for a webhook), newest first.
    before: Option<String>,
    /// The log's line-id prefix (`il_`, `wl_`).
    #[serde(skip)]
    prefix: &'static str,
    limit: u32,
    /// Problems with the filter, shown above the table.
    error: Option<String>,
}

/// A time of the filter as the store compares it (`at` is ISO 8601 text): a minute given as
/// `YYYY-MM-DDTHH:MM` covers that whole minute; a full RFC 3339 time is converted to UTC.
fn filter_time(s: &str, end: bool) -> Option<String> {
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    }
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    Some(if end { t.format("%Y-%m-%dT%H:%M:59.999999Z") } else { t.format("%Y-%m-%dT%H:%M:00") }.to_string())
}

impl LogView {
    fn parse(f: &Form, prefix: &'static str) -> LogView {
        let mut v = LogView {
            prefix,
            levels: f
                .all("level")
                .into_iter()
                .map(|l| l.to_ascii_uppercase())
                .filter(|l| LEVELS.contains(&l.as_str()))
                .collect(),
            limit: f
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| (1..=MAX_LOG_PAGE).contains(l))
                .unwrap_or(LOG_PAGE),
            before: f
                .get("before")
                .filter(|b| b.strip_prefix(prefix).is_some_and(|n| n.parse::<i64>().is_ok()))
                .map(str::to_string),
            ..LogView::default()
        };
        for (key, end) in [("from", false), ("to", true)] {
            let Some(s) = f.get(key) else { continue };
            match filter_time(s, end) {
                Some(t) if end => (v.to, v.to_at) = (Some(s.to_string()), Some(t)),
                Some(t) => (v.from, v.from_at) = (Some(s.to_string()), Some(t)),
                None => v.error = Some(format!("\"{key}\" must be a time like 2024-11-10T08:30 (UTC); \"{s}\" is not")),
            }
        }
        v
    }

    fn filter(&self) -> LogFilter {
        LogFilter {
            levels: self.levels.clone(),
            cursor: self.before.as_deref().and_then(|b| b.strip_prefix(self.prefix)?.parse().ok()).map(|n| (n, true)),
            from: self.from_at.clone(),
            to: self.to_at.clone(),
            limit: self.limit + 1,
            ..LogFilter::default()
        }
    }

    /// The link to this view of the page at `base`, starting below `before` (`None`: the newest
    /// lines).
    fn link(&self, base: &str, before: Option<&str>) -> String {
        let mut p: Vec<(&str, String)> = self.levels.iter().map(|l| ("level", l.clone())).collect();
        if let Some(f) = &self.from {
            p.push(("from", f.clone()));
        }
        if let Some(t) = &self.to {
            p.push(("to", t.clone()));
        }
        if self.limit != LOG_PAGE {
            p.push(("limit", self.limit.to_string()));
        }
        if let Some(b) = before {
            p.push(("before", b.to_string()));
        }
        let qs: Vec<String> = p.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
        format!("{base}?{}#event-log", qs.join("&"))
    }
}

pub async fn data_source(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let i = load(&state, &user, &id).await?;
    let now = now_secs(&state);
    let view = LogView::parse(&query_form(&q), "il_");
    // The event log: one page (and one line more, to know whether there are older ones).
    let lines = state.store.list_integration_logs(&user.org, &id, &view.filter()).await?;
    let (log, older) = log_page(&view, &base(&id), lines, now);
    // Resyncs: the latest (live counters) and the history from the log's resync_finished lines.
    let latest = state.store.latest_resync(&user.org, &id).await?;
    let history_filter =
        LogFilter { events: vec!["resync_finished".into()], limit: RESYNCS_SHOWN, ..LogFilter::default() };
    let history: Vec<Mj> = state
        .store
        .list_integration_logs(&user.org, &id, &history_filter)
        .await?
        .iter()
        .map(|l| {
            let x = &l.extra;
            context! {
                resync => l.resync_id.clone(), status => x.get("status").cloned().map(sv),
                started => str_at(x, "/startedAt").map(|s| Mj::from_safe_string(date_time(s, now))),
                ended => Mj::from_safe_string(date_time(str_at(x, "/endedAt").unwrap_or(&l.at), now)),
                written => x.get("written").cloned().map(sv), rejected => x.get("rejected").cloned().map(sv),
                deleted => x.get("deleted").cloned().map(sv), refused => x.get("deletionsRefused").cloned().map(sv),
                entities => x.get("entities").cloned().map(sv),
            }
        })
        .collect();
    let versions: Vec<Mj> = state
        .store
        .recent_config_versions(&user.org, &id, VERSIONS_SHOWN)
        .await?
        .into_iter()
        .map(|v| {
            context! {
                version => v.version, current => v.version == i.config_version,
                at => Mj::from_safe_string(date_time(&v.created_at, now)), by => v.created_by,
                restore => format!("{}/versions/{}/restore", base(&id), v.version),
            }
        })
        .collect();
    let kinds: Vec<Mj> = resources(&i.data)
        .iter()
        .enumerate()
        .map(|(n, r)| {
            context! { kind => r.get("kind").and_then(Value::as_str).unwrap_or("?"),
            playground => format!("{}/playground?resource={n}", base(&id)) }
        })
        .collect();
    let config = serde_json::to_string_pretty(i.data.get("config").unwrap_or(&Value::Null)).unwrap_or_default();
    let resync_state = i.data.get("resyncState").map(|r| serde_json::to_string_pretty(r).unwrap_or_default());
    let ctx = context! {
        chrome => chrome(&state, &user), title => format!("Data source {id}"),
        i => sv(json!({"identifier": i.identifier, "kind": str_at(&i.data, "/installationAppType"),
                       "version": i.data.get("version"), "configVersion": i.config_version,
                       "createdAt": i.created_at, "createdBy": i.created_by,
                       "updatedAt": i.updated_at, "updatedBy": i.updated_by})),
        base => base(&id),
        latest => latest.map(|r| context! {
            id => r.id, status => r.status, started => Mj::from_safe_string(date_time(&r.started_at, now)),
            ended => r.ended_at.map(|e| Mj::from_safe_string(date_time(&e, now))),
            at_start => r.entities_at_start, deleted => r.deleted, refused => r.refused,
            tripped => r.tripped, confirmed => r.confirmed,
        }),
        resync_state, history, versions, kinds, config,
        log, older, newest => view.before.is_some().then(|| view.link(&base(&id), None)),
        levels => sv(LEVELS), view => sv(&view), log_ref => "Resync",
        saved => query_form(&q).get("saved").is_some(),
    };
    page(&state, "source.html", ctx)
}

/// One page of an event log (read with `view.filter()`: a line more than the page) as template
/// rows, and the link to the older lines if there are any.
fn log_page(
    view: &LogView,
    base: &str,
    mut lines: Vec<portolan_store::IntegrationLog>,
    now: i64,
) -> (Vec<Mj>, Option<String>) {
    let older = (lines.len() > view.limit as usize).then(|| {
        lines.truncate(view.limit as usize);
        view.link(base, lines.last().map(|l| l.id.as_str()))
    });
    let log = lines
        .iter()
        .map(|l| {
            context! {
                id => l.id.clone(), at => Mj::from_safe_string(date_time(&l.at, now)), level => l.level.clone(),
                source => l.source.clone(), event => l.event.clone(), resync => l.resync_id.clone(),
                message => l.message.clone(),
                extra => (l.extra.as_object().is_some_and(|o| !o.is_empty())).then(|| l.extra.to_string()),
            }
        })
        .collect();
    (log, older)
}

// ---- one webhook: configuration, mappings, event log (read-only) ----------------------------------

fn webhook_base(id: &str) -> String {
    format!("/ui/data-sources/webhooks/{}", urlencode(id))
}

fn webhook_enabled(w: &StoredWebhook) -> bool {
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
    let mappings: Vec<Mj> = w
        .data
        .get("mappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(n, m)| {
            context! {
                n, blueprint => text_of(m.get("blueprint")), operation => text_of(m.get("operation")),
                filter => text_of(m.get("filter")), items => text_of(m.get("itemsToParse")),
                entity => m.get("entity").map(|e| serde_json::to_string_pretty(e).unwrap_or_default()),
            }
        })
        .collect();
    let ctx = context! {
        chrome => chrome(&state, &user), title => format!("Webhook {id}"),
        w => sv(json!({"identifier": w.identifier, "title": str_at(&w.data, "/title"),
                       "description": str_at(&w.data, "/description"), "enabled": webhook_enabled(&w),
                       "integrationType": str_at(&w.data, "/integrationType"), "url": object.get("url"),
                       "createdAt": w.created_at, "createdBy": w.created_by,
                       "updatedAt": w.updated_at, "updatedBy": w.updated_by})),
        security => sv(json!({
            "secret_set": w.secret.is_some(),
            "header": security.get("signatureHeaderName"), "algorithm": security.get("signatureAlgorithm"),
            "prefix": security.get("signaturePrefix"), "request_id": security.get("requestIdentifierPath"),
        })),
        mappings, config => serde_json::to_string_pretty(&object).unwrap_or_default(),
        base => webhook_base(&id),
        log, older, newest => view.before.is_some().then(|| view.link(&webhook_base(&id), None)),
        levels => sv(LEVELS), view => sv(&view), log_ref => "Delivery",
    };
    page(&state, "source_webhook.html", ctx)
}

/// `config.resources` of an integration object.
fn resources(data: &Value) -> Vec<Value> {
    data.pointer("/config/resources").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// Restore an earlier config version (as a new version), through the API's handler.
pub async fn restore_version(
    State(state): State<AppState>,
    user: WebUser,
    Path((id, version)): Path<(String, String)>,
    req: Request,
) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(&user, &headers, form.get(session::CSRF_FIELD))?;
    require_admin(&user)?;
    let _restored = api::restore_config(State(state), caller(&user), headers, Path((id.clone(), version))).await?;
    Ok(see_other(&format!("{}?saved=1", base(&id))))
}

// ---- the mapping editor ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum TextFormat {
    Json,
    Yaml,
}

impl TextFormat {
    fn parse(s: Option<&str>) -> TextFormat {
        if s == Some("yaml") { TextFormat::Yaml } else { TextFormat::Json }
    }
    fn name(self) -> &'static str {
        match self {
            TextFormat::Json => "json",
            TextFormat::Yaml => "yaml",
        }
    }
    fn write(self, v: &Value) -> String {
        match self {
            TextFormat::Json => serde_json::to_string_pretty(v).unwrap_or_default(),
            TextFormat::Yaml => portolan_core::export::value_to_yaml(v),
        }
    }
    fn read(self, text: &str) -> Result<Value, String> {
        match self {
            TextFormat::Json => serde_json::from_str(text).map_err(|e| format!("The text is not valid JSON: {e}")),
            TextFormat::Yaml => {
                portolan_core::export::yaml_to_value(text).map_err(|e| format!("The text is not valid YAML: {e}"))
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn mapping_page(
    state: &AppState,
    user: &WebUser,
    status: StatusCode,
    id: &str,
    fmt: TextFormat,
    text: &str,
    message: Option<String>,
    errors: Vec<Value>,
) -> WebResult {
    let body = state.templates.render(
        "source_mapping.html",
        context! {
            chrome => chrome(state, user), title => format!("Mapping of {id}"), id, base => base(id),
            format => fmt.name(), text, message, errors => sv(errors),
        },
    )?;
    Ok(html(status, body))
}

pub async fn mapping(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let i = load(&state, &user, &id).await?;
    let fmt = TextFormat::parse(query_form(&q).get("format"));
    let text = fmt.write(i.data.get("config").unwrap_or(&json!({})));
    mapping_page(&state, &user, StatusCode::OK, &id, fmt, &text, None, vec![])
}

/// Save the mapping: it must parse, have Ocean's shape, every jq expression must compile and
/// every constant blueprint must exist; then it is saved by the API's `PATCH …/config` handler
/// (same store call, config version, event-log line and audit record).
pub async fn mapping_save(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    req: Request,
) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(&user, &headers, form.get(session::CSRF_FIELD))?;
    require_admin(&user)?;
    load(&state, &user, &id).await?;
    let fmt = TextFormat::parse(form.get("format"));
    let text = form.get("config").unwrap_or("").to_string();
    let refuse = |message: String, errors: Vec<Value>| {
        mapping_page(&state, &user, StatusCode::UNPROCESSABLE_ENTITY, &id, fmt, &text, Some(message), errors)
    };
    let config = match fmt.read(&text) {
        Ok(c @ Value::Object(_)) => c,
        Ok(_) => return refuse("The mapping must be an object: {resources: [...]}.".into(), vec![]),
        Err(m) => return refuse(m, vec![]),
    };
    let mut errors: Vec<Value> = Vec::new();
    let body = json!({"config": config});
    if let Err(e) = api::check_body(body.as_object().unwrap_or(&Map::new())) {
        errors.extend(api_errors(&e).1);
    }
    let blueprints: HashSet<String> = state.blueprints(&user.org).await?.keys().cloned().collect();
    let (jq, budget) = (state.jq.clone(), state.jq.budget_for(&user.org.0));
    let cfg = config.clone();
    let jq_errors = tokio::task::spawn_blocking(move || check_jq(&jq.scope(budget), &cfg, &blueprints))
        .await
        .map_err(|e| WebError::internal("jq check", e))?;
    errors.extend(jq_errors.into_iter().map(|(path, message)| json!({"path": path, "message": message})));
    if !errors.is_empty() {
        let n = errors.len();
        return refuse(format!("The mapping was not saved: {n} problem{}.", if n == 1 { "" } else { "s" }), errors);
    }
    match api::patch_config(State(state.clone()), caller(&user), headers, Path(id.clone()), JsonBody(body)).await {
        Ok(_) => Ok(see_other(&format!("{}?saved=1", base(&id)))),
        Err(e) if e.status.is_client_error() => {
            let (m, details) = api_errors(&e);
            refuse(m, details)
        }
        Err(e) => Err(e.into()),
    }
}

/// Every jq expression of a mapping (`selector.query`, `port.itemsToParse`, every string of
/// `port.entity.mappings`) compiles; a `blueprint` that is a constant names an existing one.
/// Returns (path, message) per problem; shapes are checked by the API's own validation.
fn check_jq(jq: &JqScope<'_>, config: &Value, blueprints: &HashSet<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (n, r) in resources(&json!({"config": config})).iter().enumerate() {
        let at = format!("config.resources[{n}]");
        match r.pointer("/selector/query") {
            None => {}
            Some(Value::String(q)) => compile(jq, &format!("{at}.selector.query"), q, &mut out),
            Some(_) => out.push((format!("{at}.selector.query"), "must be a jq expression (a string)".into())),
        }
        match r.pointer("/port/itemsToParse") {
            None | Some(Value::Null) => {}
            Some(Value::String(q)) => compile(jq, &format!("{at}.port.itemsToParse"), q, &mut out),
            Some(_) => out.push((format!("{at}.port.itemsToParse"), "must be a jq expression (a string)".into())),
        }
        let mut mappings = Vec::new();
        match r.pointer("/port/entity/mappings") {
            Some(m @ Value::Object(_)) => mappings.push((format!("{at}.port.entity.mappings"), m)),
            Some(Value::Array(ms)) => {
                mappings.extend(ms.iter().enumerate().map(|(j, m)| (format!("{at}.port.entity.mappings[{j}]"), m)))
            }
            _ => {}
        }
        for (path, m) in mappings {
            compile_leaves(jq, &path, m, &mut out);
            if let Some(Value::String(b)) = m.get("blueprint")
                && let Ok(Value::String(name)) = jq.first(b, &Value::Null)
                && !blueprints.contains(&name)
            {
                out.push((format!("{path}.blueprint"), format!("there is no blueprint {name:?}")));
            }
        }
    }
    out
}

fn compile(jq: &JqScope<'_>, path: &str, expr: &str, out: &mut Vec<(String, String)>) {
    if let Err(e) = jq.compile(expr) {
        out.push((path.to_string(), e.to_string()));
    }
}

fn compile_leaves(jq: &JqScope<'_>, path: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => compile(jq, path, s, out),
        Value::Object(m) => m.iter().for_each(|(k, x)| compile_leaves(jq, &format!("{path}.{k}"), x, out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(j, x)| compile_leaves(jq, &format!("{path}[{j}]"), x, out)),
        _ => {}
    }
}

// ---- the mapping playground ----------------------------------------------------------------------

/// One evaluated expression.
#[derive(Debug, Serialize)]
struct FieldResult {
    path: String,
    expr: String,
    /// The result as pretty JSON, or the exact jq error.
    value: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct EntityResult {
    /// `item[n]` when `itemsToParse` split the input.
    label: Option<String>,
    fields: Vec<FieldResult>,
}

#[derive(Debug, Default, Serialize)]
struct Outcome {
    error: Option<String>,
    selector: Option<FieldResult>,
    selected: bool,
    items: Option<FieldResult>,
    entities: Vec<EntityResult>,
}

fn eval(jq: &JqScope<'_>, path: &str, expr: &str, input: &Value) -> (FieldResult, Option<Value>) {
    match jq.first(expr, input) {
        Ok(v) => (
            FieldResult {
                path: path.into(),
                expr: expr.into(),
                value: Some(serde_json::to_string_pretty(&v).unwrap_or_default()),
                error: None,
            },
            Some(v),
        ),
        Err(e) => (FieldResult { path: path.into(), expr: expr.into(), value: None, error: Some(e.to_string()) }, None),
    }
}

fn eval_leaves(jq: &JqScope<'_>, path: &str, v: &Value, input: &Value, out: &mut Vec<FieldResult>) {
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match v {
        Value::String(s) => out.push(eval(jq, path, s, input).0),
        Value::Object(m) => m.iter().for_each(|(k, x)| eval_leaves(jq, &join(k), x, input, out)),
        Value::Array(a) => {
            a.iter().enumerate().for_each(|(j, x)| eval_leaves(jq, &format!("{path}[{j}]"), x, input, out))
        }
        other => out.push(FieldResult {
            path: path.into(),
            expr: other.to_string(),
            value: None,
            error: Some("not a jq expression: mapping values are strings".into()),
        }),
    }
}

/// Run a mapping over an item as Ocean would: the selector, then (with `itemsToParse`) each
/// item of that array as `.item` of the input, then every expression of the entity mapping.
fn run_playground(
    jq: &JqScope<'_>,
    item: &Value,
    selector: &str,
    items_to_parse: Option<&str>,
    mapping: &Value,
    blueprints: &HashSet<String>,
) -> Outcome {
    let mut out = Outcome::default();
    let (sel, v) = eval(jq, "selector.query", selector, item);
    out.selected = v == Some(Value::Bool(true));
    out.selector = Some(sel);
    let mut inputs: Vec<(Option<String>, Value)> = Vec::new();
    match items_to_parse {
        Some(expr) => {
            let (r, v) = eval(jq, "port.itemsToParse", expr, item);
            out.items = Some(r);
            match v {
                Some(Value::Array(a)) => {
                    for (n, x) in a.into_iter().take(ITEMS_MAPPED).enumerate() {
                        let mut input = item.as_object().cloned().unwrap_or_default();
                        input.insert("item".into(), x);
                        inputs.push((Some(format!("item[{n}]")), Value::Object(input)));
                    }
                }
                Some(other) => {
                    if let Some(r) = out.items.as_mut() {
                        r.error = Some(format!("itemsToParse must give an array, not {}", kind_of(&other)));
                    }
                }
                None => {}
            }
        }
        None => inputs.push((None, item.clone())),
    }
    for (label, input) in inputs {
        let mut fields = Vec::new();
        eval_leaves(jq, "", mapping, &input, &mut fields);
        for f in fields.iter_mut().filter(|f| f.path == "blueprint") {
            if let Some(Ok(Value::String(b))) = f.value.as_deref().map(serde_json::from_str::<Value>)
                && !blueprints.contains(&b)
            {
                f.error = Some(format!("there is no blueprint {b:?}"));
            }
        }
        out.entities.push(EntityResult { label, fields });
    }
    out
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The playground's inputs (form fields).
#[derive(Debug, Serialize)]
struct PlaygroundInput {
    item: String,
    selector: String,
    items_to_parse: String,
    mapping: String,
}

#[allow(clippy::too_many_arguments)]
async fn playground_page(
    state: &AppState,
    user: &WebUser,
    i: &StoredIntegration,
    status: StatusCode,
    input: &PlaygroundInput,
    resource: usize,
    example: usize,
    outcome: Option<Outcome>,
) -> WebResult {
    let res = resources(&i.data);
    let kind = res.get(resource).and_then(|r| r.get("kind")).and_then(Value::as_str).map(str::to_string);
    let examples: Vec<Value> = match &kind {
        Some(k) => state
            .store
            .kind_examples(&user.org, &i.identifier, k)
            .await?
            .and_then(|e| e.as_array().cloned())
            .unwrap_or_default(),
        None => vec![],
    };
    let example_list: Vec<Value> = examples
        .iter()
        .take(EXAMPLES_SHOWN)
        .enumerate()
        .map(|(n, e)| {
            let preview: String = e.to_string().chars().take(80).collect();
            json!({"n": n, "preview": preview})
        })
        .collect();
    let resource_list: Vec<Value> = res
        .iter()
        .enumerate()
        .map(|(n, r)| json!({"n": n, "kind": r.get("kind").and_then(Value::as_str).unwrap_or("?")}))
        .collect();
    let body = state.templates.render(
        "source_playground.html",
        context! {
            chrome => chrome(state, user), title => format!("Mapping playground · {}", i.identifier),
            id => i.identifier.clone(), base => base(&i.identifier), input => sv(input),
            resources => sv(resource_list), resource, kind, examples => sv(example_list), example,
            r => outcome.map(sv),
        },
    )?;
    Ok(html(status, body))
}

/// `?resource=<n>&example=<n>`: the playground filled with resource n's mapping and the kind's
/// stored example n (or `{}`).
pub async fn playground(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let i = load(&state, &user, &id).await?;
    let f = query_form(&q);
    let resource: usize = f.get("resource").and_then(|n| n.parse().ok()).unwrap_or(0);
    let example: usize = f.get("example").and_then(|n| n.parse().ok()).unwrap_or(0);
    let res = resources(&i.data);
    let r = res.get(resource).cloned().unwrap_or(Value::Null);
    let kind = r.get("kind").and_then(Value::as_str);
    let item = match kind {
        Some(k) => state
            .store
            .kind_examples(&user.org, &id, k)
            .await?
            .and_then(|e| e.get(example).cloned())
            .unwrap_or_else(|| json!({})),
        None => json!({}),
    };
    let input = PlaygroundInput {
        item: serde_json::to_string_pretty(&item).unwrap_or_default(),
        selector: str_at(&r, "/selector/query").unwrap_or("true").to_string(),
        items_to_parse: str_at(&r, "/port/itemsToParse").unwrap_or("").to_string(),
        mapping: serde_json::to_string_pretty(
            r.pointer("/port/entity/mappings")
                .unwrap_or(&json!({"identifier": ".id", "blueprint": "\"blueprint-identifier\""})),
        )
        .unwrap_or_default(),
    };
    playground_page(&state, &user, &i, StatusCode::OK, &input, resource, example, None).await
}

/// Evaluate the playground's mapping: the result fragment for htmx (`HX-Request`), else the
/// whole page with the result. Changes nothing.
pub async fn playground_run(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    req: Request,
) -> WebResult {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(&user, &headers, form.get(session::CSRF_FIELD))?;
    let i = load(&state, &user, &id).await?;
    let field = |k: &str| form.get(k).unwrap_or("").to_string();
    let input = PlaygroundInput {
        item: field("item"),
        selector: form.get("selector").unwrap_or("true").to_string(),
        items_to_parse: field("items_to_parse"),
        mapping: field("mapping"),
    };
    let item = serde_json::from_str::<Value>(&input.item);
    let mapping = serde_json::from_str::<Value>(&input.mapping);
    let outcome = match (item, mapping) {
        (Err(e), _) => Outcome { error: Some(format!("The item is not valid JSON: {e}")), ..Outcome::default() },
        (_, Err(e)) => Outcome { error: Some(format!("The mapping is not valid JSON: {e}")), ..Outcome::default() },
        (_, Ok(m)) if !m.is_object() => Outcome {
            error: Some("The mapping must be an object: {identifier, title, blueprint, properties, relations}".into()),
            ..Outcome::default()
        },
        (Ok(item), Ok(mapping)) => {
            let (jq, budget) = (state.jq.clone(), state.jq.budget_for(&user.org.0));
            let blueprints: HashSet<String> = state.blueprints(&user.org).await?.keys().cloned().collect();
            let selector = input.selector.clone();
            let itp = Some(input.items_to_parse.trim().to_string()).filter(|s| !s.is_empty());
            tokio::task::spawn_blocking(move || {
                run_playground(&jq.scope(budget), &item, &selector, itp.as_deref(), &mapping, &blueprints)
            })
            .await
            .map_err(|e| WebError::internal("playground", e))?
        }
    };
    if is_htmx(&headers) {
        let body = state.templates.render("source_playground_result.html", context! { r => sv(&outcome) })?;
        return Ok(html(StatusCode::OK, body));
    }
    let f = |k: &str| form.get(k).and_then(|n| n.parse().ok()).unwrap_or(0);
    playground_page(&state, &user, &i, StatusCode::OK, &input, f("resource"), f("example"), Some(outcome)).await
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_times_cover_the_minute() {
        assert_eq!(filter_time("2024-11-10T08:30", false).unwrap(), "2024-11-10T08:30:00");
        assert_eq!(filter_time("2024-11-10T08:30", true).unwrap(), "2024-11-10T08:30:59.999999Z");
        assert_eq!(filter_time("2024-11-10T09:30:00+01:00", false).unwrap(), "2024-11-10T08:30:00.000000Z");
        assert!(filter_time("yesterday", false).is_none());
    }

    #[test]
    fn the_playground_evaluates_every_field_and_reports_errors() {
        let engine = portolan_jq::JqEngine::new();
        let jq = engine.scope(engine.budget_for("test"));
        let bps: HashSet<String> = ["thing".to_string()].into();
        let mapping = json!({"identifier": ".id", "blueprint": "\"thing\"",
                             "properties": {"size": ".size * 2", "bad": ".size | nosuchfn"}});
        let out = run_playground(&jq, &json!({"id": "a", "size": 3}), ".size > 1", None, &mapping, &bps);
        assert!(out.selected);
        let f = &out.entities[0].fields;
        let get = |p: &str| f.iter().find(|x| x.path == p).unwrap();
        assert_eq!(get("identifier").value.as_deref(), Some("\"a\""));
        assert_eq!(get("properties.size").value.as_deref(), Some("6"));
        assert!(get("properties.bad").error.as_deref().unwrap().contains("jq compile error"));
        let none = run_playground(&jq, &json!({"id": "a"}), "true", None, &json!({"blueprint": "\"nope\""}), &bps);
        assert!(none.entities[0].fields[0].error.as_deref().unwrap().contains("no blueprint \"nope\""));
        let items = run_playground(
            &jq,
            &json!({"xs": [1, 2]}),
            "true",
            Some(".xs"),
            &json!({"identifier": ".item | tostring"}),
            &bps,
        );
        assert_eq!(items.entities.len(), 2);
        assert_eq!(items.entities[1].fields[0].value.as_deref(), Some("\"2\""));
    }

    #[test]
    fn saving_checks_jq_and_blueprints_with_paths() {
        let engine = portolan_jq::JqEngine::new();
        let jq = engine.scope(engine.budget_for("test"));
        let bps: HashSet<String> = ["thing".to_string()].into();
        let config = json!({"resources": [{"kind": "item", "selector": {"query": ".a |"},
            "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"other\"",
                                             "properties": {"x": ".x | nosuchfn"}}}}}]});
        let errs = check_jq(&jq, &config, &bps);
        let paths: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "config.resources[0].selector.query",
                "config.resources[0].port.entity.mappings.properties.x",
                "config.resources[0].port.entity.mappings.blueprint"
            ]
        );
    }
}
