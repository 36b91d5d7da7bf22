//! One integration's page: configuration, resyncs (the latest with live counters, and the
//! history), config versions (restorable) and the event log.

use axum::extract::{Path, RawQuery, Request, State};
use minijinja::Value as Mj;
use portolan_store::LogFilter;
use serde::Serialize;
use serde_json::Value;

use super::log::{LogRow, LogView, log_page};
use super::{ADMINS_ONLY, LEVELS, RESYNCS_SHOWN, VERSIONS_SHOWN, base, load, resources, str_at};
use crate::ops;
use crate::state::AppState;
use crate::web::form::{query_form, signed_form};
use crate::web::format::date_time;
use crate::web::respond::{caller, chrome, now_secs, page, require_admin, see_other};
use crate::web::session::WebUser;
use crate::web::{Chrome, WebResult};

#[derive(Serialize)]
struct IntegrationPage<'a> {
    chrome: Chrome,
    title: String,
    i: Summary<'a>,
    base: String,
    latest: Option<Latest>,
    /// The state the integration reported, as pretty JSON.
    resync_state: Option<String>,
    history: Vec<Resync>,
    versions: Vec<Version>,
    kinds: Vec<Kind>,
    /// The current config (the mapping), as pretty JSON.
    config: String,
    log: Vec<LogRow>,
    older: Option<String>,
    newest: Option<String>,
    levels: &'static [&'static str],
    view: &'a LogView,
    log_ref: &'static str,
    /// Just saved (the mapping editor or a restore came back here).
    saved: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    identifier: &'a str,
    kind: Option<&'a str>,
    version: Option<&'a Value>,
    config_version: i64,
    created_at: &'a str,
    created_by: &'a str,
    updated_at: &'a str,
    updated_by: &'a str,
}

/// The latest resync, with its live counters; times as safe HTML.
#[derive(Serialize)]
struct Latest {
    id: String,
    status: String,
    started: Mj,
    ended: Option<Mj>,
    at_start: u64,
    deleted: u64,
    refused: u64,
    tripped: bool,
    confirmed: bool,
}

/// A finished resync, from its `resync_finished` log line.
#[derive(Serialize)]
struct Resync {
    resync: Option<String>,
    status: Option<Value>,
    started: Option<Mj>,
    ended: Mj,
    written: Option<Value>,
    rejected: Option<Value>,
    deleted: Option<Value>,
    refused: Option<Value>,
    entities: Option<Value>,
}

#[derive(Serialize)]
struct Version {
    version: i64,
    current: bool,
    at: Mj,
    by: String,
    restore: String,
}

/// A kind of the mapping, with the playground link of its resource.
#[derive(Serialize)]
struct Kind {
    kind: String,
    playground: String,
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
    let history: Vec<Resync> = state
        .store
        .list_integration_logs(&user.org, &id, &history_filter)
        .await?
        .iter()
        .map(|l| {
            let x = &l.extra;
            Resync {
                resync: l.resync_id.clone(),
                status: x.get("status").cloned(),
                started: str_at(x, "/startedAt").map(|s| Mj::from_safe_string(date_time(s, now))),
                ended: Mj::from_safe_string(date_time(str_at(x, "/endedAt").unwrap_or(&l.at), now)),
                written: x.get("written").cloned(),
                rejected: x.get("rejected").cloned(),
                deleted: x.get("deleted").cloned(),
                refused: x.get("deletionsRefused").cloned(),
                entities: x.get("entities").cloned(),
            }
        })
        .collect();
    let versions: Vec<Version> = state
        .store
        .recent_config_versions(&user.org, &id, VERSIONS_SHOWN)
        .await?
        .into_iter()
        .map(|v| Version {
            version: v.version,
            current: v.version == i.config_version,
            at: Mj::from_safe_string(date_time(&v.created_at, now)),
            by: v.created_by,
            restore: format!("{}/versions/{}/restore", base(&id), v.version),
        })
        .collect();
    let kinds: Vec<Kind> = resources(&i.data)
        .iter()
        .enumerate()
        .map(|(n, r)| Kind {
            kind: r.get("kind").and_then(Value::as_str).unwrap_or("?").to_string(),
            playground: format!("{}/playground?resource={n}", base(&id)),
        })
        .collect();
    let config = serde_json::to_string_pretty(i.data.get("config").unwrap_or(&Value::Null)).unwrap_or_default();
    let resync_state = i.data.get("resyncState").map(|r| serde_json::to_string_pretty(r).unwrap_or_default());
    let ctx = IntegrationPage {
        chrome: chrome(&state, &user),
        title: format!("Data source {id}"),
        i: Summary {
            identifier: &i.identifier,
            kind: str_at(&i.data, "/installationAppType"),
            version: i.data.get("version"),
            config_version: i.config_version,
            created_at: &i.created_at,
            created_by: &i.created_by,
            updated_at: &i.updated_at,
            updated_by: &i.updated_by,
        },
        base: base(&id),
        latest: latest.map(|r| Latest {
            id: r.id,
            status: r.status,
            started: Mj::from_safe_string(date_time(&r.started_at, now)),
            ended: r.ended_at.map(|e| Mj::from_safe_string(date_time(&e, now))),
            at_start: r.entities_at_start,
            deleted: r.deleted,
            refused: r.refused,
            tripped: r.tripped,
            confirmed: r.confirmed,
        }),
        resync_state,
        history,
        versions,
        kinds,
        config,
        log,
        older,
        newest: view.before.is_some().then(|| view.link(&base(&id), None)),
        levels: LEVELS,
        view: &view,
        log_ref: "Resync",
        saved: query_form(&q).get("saved").is_some(),
    };
    page(&state, "source.html", ctx)
}

/// One page of an event log (read with `view.filter()`: a line more than the page) as template
/// Restore an earlier config version (as a new version), through the service layer.
pub async fn restore_version(
    State(state): State<AppState>,
    user: WebUser,
    Path((id, version)): Path<(String, String)>,
    req: Request,
) -> WebResult {
    signed_form(&user, req).await?;
    require_admin(&user, ADMINS_ONLY)?;
    // The write, through the service layer the API uses.
    ops::integration::restore_config(&state, &caller(&user), &id, &version).await?;
    Ok(see_other(&format!("{}?saved=1", base(&id))))
}
