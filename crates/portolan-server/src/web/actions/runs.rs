//! Run pages: one run (`/ui/runs/{id}`: status, links, inputs, summary, logs, response and
//! the trace of the calls made; while it is in progress htmx reloads its body every 2 s from
//! `/ui/runs/{id}/live`, and the body of an ended run stops asking), "My runs" (`/ui/runs`,
//! the signed-in user's, newest first, paged by the store's cursor), and the runs of one entity
//! (on the entity page).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use minijinja::Value as Mj;
use portolan_store::{OrgId, Run, RunFilter, RunLog};
use serde::Serialize;
use serde_json::Value;

use super::super::form::query_form;
use super::super::respond::{chrome, now_secs, page, page_with};
use super::super::session::WebUser;
use super::super::{Chrome, WebResult, format, urlencode};
use crate::ops;
use crate::state::AppState;

/// Runs per page of "My runs".
const RUNS_PAGE: u32 = 50;
/// Runs shown on an entity page.
pub(in crate::web) const ENTITY_RUNS: u32 = 20;
/// Most log lines a run page shows.
const MAX_LOGS: u32 = 2000;

/// A run in a list.
#[derive(Serialize)]
pub(in crate::web) struct RunRow {
    id: String,
    url: String,
    status: String,
    status_class: &'static str,
    status_label: Option<String>,
    action: String,
    action_title: String,
    entity: Option<String>,
    entity_url: Option<String>,
    created_by: String,
    /// Safe HTML (a `<time>`).
    created: Mj,
}

fn status_class(s: &str) -> &'static str {
    match s {
        "SUCCESS" => "status-completed",
        "FAILURE" | "DECLINED" => "status-failed",
        _ => "status-running",
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn entity_url(bp: &str, id: &str) -> String {
    format!("/ui/entities/{}/{}", urlencode(bp), urlencode(id))
}

pub(in crate::web) fn run_rows(runs: &[Run], now: i64) -> Vec<RunRow> {
    runs.iter()
        .map(|r| RunRow {
            id: r.id.clone(),
            url: format!("/ui/runs/{}", urlencode(&r.id)),
            status: r.status.clone(),
            status_class: status_class(&r.status),
            status_label: r.data.get("statusLabel").and_then(Value::as_str).map(str::to_string),
            action: r.action.clone(),
            action_title: r.data.get("action").and_then(|a| str_at(a, "title")).unwrap_or(&r.action).to_string(),
            entity_url: match (&r.blueprint, &r.entity) {
                (Some(b), Some(e)) => Some(entity_url(b, e)),
                _ => None,
            },
            entity: r.entity.clone(),
            created_by: r.created_by.clone(),
            created: Mj::from_safe_string(format::date_time(&r.created_at, now)),
        })
        .collect()
}

/// The runs of one entity, newest first.
pub(in crate::web) async fn entity_runs(state: &AppState, org: &OrgId, bp: &str, id: &str) -> WebResult<Vec<RunRow>> {
    let filter = RunFilter {
        blueprint: Some(bp.to_string()),
        entity: Some(id.to_string()),
        limit: ENTITY_RUNS,
        ..RunFilter::default()
    };
    let runs = state.store.list_runs(org, &filter).await?;
    Ok(run_rows(&runs, now_secs(state)))
}

#[derive(Serialize)]
struct RunsPage {
    chrome: Chrome,
    title: &'static str,
    runs: Vec<RunRow>,
    older: Option<String>,
    newest: Option<String>,
}

/// `/ui/runs[?before=]`: the signed-in user's runs, newest first.
pub async fn my_runs(State(state): State<AppState>, user: WebUser, RawQuery(q): RawQuery) -> WebResult {
    let q = query_form(&q);
    let before = q.get("before").and_then(|b| b.parse::<i64>().ok());
    let mut runs = ops::action::runs_of_user(&state, &user.org, &user.user.email, before, RUNS_PAGE + 1).await?;
    let more = runs.len() > RUNS_PAGE as usize;
    runs.truncate(RUNS_PAGE as usize);
    let older = if more { runs.last().map(|r| format!("/ui/runs?before={}", r.rid)) } else { None };
    let ctx = RunsPage {
        chrome: chrome(&state, &user),
        title: "My runs",
        runs: run_rows(&runs, now_secs(&state)),
        older,
        newest: before.map(|_| "/ui/runs".to_string()),
    };
    page(&state, "runs.html", ctx)
}

/// One call of the run's trace.
#[derive(Serialize)]
struct Call {
    method: String,
    url: String,
    status: Option<String>,
    duration: Option<String>,
    error: Option<String>,
    note: Option<String>,
    request_headers: Vec<(String, String)>,
    request_body: Option<String>,
    response_headers: Vec<(String, String)>,
    response_body: Option<String>,
    /// The whole entry, when it has none of the fields above.
    raw: Option<String>,
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(serde_json::to_string_pretty(other).unwrap_or_default()),
    }
}

fn headers_of(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), text_of(v).unwrap_or_default())).collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|h| match h {
                Value::Array(kv) if kv.len() == 2 => Some((text_of(&kv[0])?, text_of(&kv[1]).unwrap_or_default())),
                Value::Object(o) => Some((
                    o.get("name").and_then(text_of).unwrap_or_default(),
                    o.get("value").and_then(text_of).unwrap_or_default(),
                )),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// A trace entry (the invocation job's record of a call: request, response, duration, error)
/// read leniently, so an entry of another shape is still shown (as JSON).
fn call_of(t: &Value) -> Call {
    let req = t.get("request").unwrap_or(t);
    let res = t.get("response").unwrap_or(&Value::Null);
    let method = req.get("method").and_then(text_of).unwrap_or_default();
    let url = req.get("url").and_then(text_of).unwrap_or_default();
    let known = !method.is_empty() || !url.is_empty();
    let duration = ["durationMs", "duration_ms", "elapsedMs"]
        .iter()
        .find_map(|k| t.get(*k))
        .and_then(Value::as_f64)
        .map(|ms| format!("{ms} ms"));
    Call {
        method,
        url,
        status: res.get("status").and_then(text_of),
        duration,
        error: t.get("error").and_then(text_of),
        note: t.get("note").and_then(text_of),
        request_headers: headers_of(req.get("headers").unwrap_or(&Value::Null)),
        request_body: req.get("body").and_then(text_of).filter(|b| !b.is_empty()),
        response_headers: headers_of(res.get("headers").unwrap_or(&Value::Null)),
        response_body: res.get("body").and_then(text_of).filter(|b| !b.is_empty()),
        raw: (!known).then(|| serde_json::to_string_pretty(t).unwrap_or_default()),
    }
}

#[derive(Serialize)]
struct InputRow {
    id: String,
    value: String,
    encrypted: bool,
}

#[derive(Serialize)]
struct LogRow {
    /// Safe HTML (a `<time>`).
    at: Mj,
    message: String,
    termination: Option<String>,
    label: Option<String>,
}

/// The part of the run page that changes while the run is in progress.
#[derive(Serialize)]
struct RunBody {
    id: String,
    live_url: String,
    /// Still in progress: the body asks again in 2 s.
    polling: bool,
    status: String,
    status_class: &'static str,
    status_label: Option<String>,
    /// Safe HTML: the links (checked URLs only).
    links: Vec<Mj>,
    /// Safe HTML: the summary as markdown (raw HTML shown as text).
    summary: Option<Mj>,
    /// Safe HTML (a `<time>`).
    ended: Option<Mj>,
    /// Safe HTML (a `<time>`): when the run ends FAILURE unless it ends before.
    times_out: Option<Mj>,
    logs: Vec<LogRow>,
    response: Option<String>,
    payload: Option<String>,
    trace: Vec<Call>,
    affected: Vec<(String, String, String)>,
}

#[derive(Serialize)]
struct RunPage {
    chrome: Chrome,
    title: String,
    action: String,
    action_title: String,
    action_url: String,
    entity: Option<(String, String)>,
    blueprint: Option<String>,
    source: String,
    created_by: String,
    /// Safe HTML (a `<time>`).
    created: Mj,
    inputs: Vec<InputRow>,
    body: RunBody,
}

async fn run_body(state: &AppState, org: &OrgId, run: &Run, logs: Vec<RunLog>) -> WebResult<RunBody> {
    let now = now_secs(state);
    let links = match run.data.get("link") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => vec![],
    };
    let affected =
        state.store.run_entities(org, &run.id).await?.into_iter().map(|(b, e)| (entity_url(&b, &e), b, e)).collect();
    Ok(RunBody {
        id: run.id.clone(),
        live_url: format!("/ui/runs/{}/live", urlencode(&run.id)),
        polling: matches!(run.status.as_str(), "IN_PROGRESS" | "WAITING_FOR_APPROVAL"),
        status: run.status.clone(),
        status_class: status_class(&run.status),
        status_label: run.data.get("statusLabel").and_then(Value::as_str).map(str::to_string),
        links: links.into_iter().map(|l| Mj::from_safe_string(format::link(l, None))).collect(),
        summary: run.data.get("summary").and_then(Value::as_str).map(|s| Mj::from_safe_string(format::markdown(s))),
        ended: run.ended_at.as_deref().map(|t| Mj::from_safe_string(format::date_time(t, now))),
        times_out: run.timeout_at.as_deref().map(|t| Mj::from_safe_string(format::timer(t, now))),
        logs: logs
            .into_iter()
            .map(|l| LogRow {
                at: Mj::from_safe_string(format::date_time(&l.at, now)),
                message: l.message,
                termination: l.termination_status,
                label: l.status_label,
            })
            .collect(),
        response: run.data.get("response").and_then(text_of),
        payload: run.data.get("payload").and_then(text_of),
        trace: run.trace.iter().map(call_of).collect(),
        affected,
    })
}

/// `/ui/runs/{id}`: one run.
pub async fn run_page(State(state): State<AppState>, user: WebUser, Path(id): Path<String>) -> WebResult {
    let run = ops::action::load_visible_run(&state, &crate::web::respond::caller(&user), &id).await?;
    let logs = state.store.list_run_logs(&user.org, &id, None, MAX_LOGS).await?;
    let encrypted: Vec<&str> = run
        .data
        .get("encryptedProperties")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let inputs = run
        .data
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let enc = encrypted.contains(&k.as_str());
            InputRow {
                id: k.clone(),
                value: if enc { String::new() } else { text_of(v).unwrap_or_else(|| "null".into()) },
                encrypted: enc,
            }
        })
        .collect();
    let action_title = run.data.get("action").and_then(|a| str_at(a, "title")).unwrap_or(&run.action).to_string();
    let now = now_secs(&state);
    let ctx = RunPage {
        chrome: chrome(&state, &user),
        title: format!("Run {}", run.id),
        action_url: format!("/ui/self-service/{}", urlencode(&run.action)),
        action: run.action.clone(),
        action_title,
        entity: match (&run.blueprint, &run.entity) {
            (Some(b), Some(e)) => Some((entity_url(b, e), e.clone())),
            _ => None,
        },
        blueprint: run.blueprint.clone(),
        source: run.data.get("source").and_then(text_of).unwrap_or_default(),
        created_by: run.created_by.clone(),
        created: Mj::from_safe_string(format::date_time(&run.created_at, now)),
        inputs,
        body: run_body(&state, &user.org, &run, logs).await?,
    };
    page(&state, "run.html", ctx)
}

#[derive(Serialize)]
struct LiveFragment {
    body: RunBody,
}

/// `/ui/runs/{id}/live`: the changing part of the run page (htmx polls it while in progress).
pub async fn run_live(State(state): State<AppState>, user: WebUser, Path(id): Path<String>) -> WebResult {
    let run = ops::action::load_visible_run(&state, &crate::web::respond::caller(&user), &id).await?;
    let logs = state.store.list_run_logs(&user.org, &id, None, MAX_LOGS).await?;
    let body = run_body(&state, &user.org, &run, logs).await?;
    page_with(&state, StatusCode::OK, "run_body.html", LiveFragment { body })
}
