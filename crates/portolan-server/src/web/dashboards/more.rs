//! The widgets that read something other than entity aggregates: line charts over stored
//! history (the audit log's entity versions, a scorecard's level history), the scorecard
//! overview, action cards, run tables and iframes.

use chrono::DateTime;
use portolan_core::Blueprint;
use portolan_store::{AuditFilter, RunFilter};
use serde::Serialize;
use serde_json::Value;

use super::charts;
use super::widgets::{Bad, Body, Cx, bad, store_bad, str_field};
use crate::web::actions::runs::run_rows;
use crate::web::urlencode;

/// Entity versions a property history reads (newest; the audit log keeps each write).
const HISTORY_POINTS: u32 = 200;
/// Lines of a line chart.
const MAX_LINES: usize = 5;
/// Actions of one action card.
const MAX_ACTIONS: usize = 20;
/// Runs of a runs table.
const RUNS_SHOWN: u32 = 10;

/// Port's default scorecard levels, when a scorecard names none.
const DEFAULT_LEVELS: &[&str] = &["Basic", "Bronze", "Silver", "Gold"];

/// An audit or history time as Unix milliseconds.
fn millis(at: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(at).ok().map(|t| t.timestamp_millis())
}

fn day(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M").to_string())
}

/// The level titles of scorecard `sc` of `bp`, lowest first.
async fn level_titles(cx: &Cx<'_>, bp: &Blueprint, sc: &str, field: &str) -> Result<Vec<String>, Bad> {
    let stored =
        cx.state.store.get_scorecard(&cx.user.org, &bp.identifier, sc).await.map_err(|e| store_bad(field, e))?;
    let stored =
        stored.ok_or_else(|| bad(field, format!("blueprint \"{}\" has no scorecard \"{sc}\"", bp.identifier)))?;
    let titles: Vec<String> = stored
        .data
        .get("levels")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(|l| l.get("title")?.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    Ok(if titles.is_empty() { DEFAULT_LEVELS.iter().map(|s| s.to_string()).collect() } else { titles })
}

/// Entities of `bp` per level of scorecard `sc`, in the scorecard's level order (levels no
/// entity has included, with 0).
pub(super) async fn levels(cx: &Cx<'_>, bp: &Blueprint, sc: &str, field: &str) -> Result<Vec<(String, u64)>, Bad> {
    let titles = level_titles(cx, bp, sc, field).await?;
    cx.reads_all_of(&bp.identifier, field).await?;
    let counts =
        cx.state.store.level_counts(&cx.user.org, &bp.identifier, sc).await.map_err(|e| store_bad(field, e))?;
    let mut out: Vec<(String, u64)> =
        titles.iter().map(|t| (t.clone(), counts.iter().find(|c| &c.0 == t).map_or(0, |c| c.1))).collect();
    // Results stored under a level the scorecard no longer has.
    out.extend(counts.into_iter().filter(|c| !titles.contains(&c.0)));
    Ok(out)
}

/// `scorecard-overview` (Portolan's): the entities of a blueprint per level of one scorecard.
pub(super) async fn scorecard_overview(cx: &Cx<'_>, w: &Value) -> Result<Body, Bad> {
    let bp = blueprint(cx, w)?;
    let sc = str_field(w, "scorecard")?.ok_or_else(|| bad("scorecard", "is required: the scorecard's identifier"))?;
    let counts = levels(cx, bp, sc, "scorecard").await?;
    let total = counts.iter().map(|c| c.1).sum();
    Ok(Body::Levels { bars: charts::bars(&counts), total })
}

fn blueprint<'a>(cx: &'a Cx<'_>, w: &Value) -> Result<&'a Blueprint, Bad> {
    let b = str_field(w, "blueprint")?.ok_or_else(|| bad("blueprint", "is required"))?;
    cx.blueprints.get(b).ok_or_else(|| bad("blueprint", format!("no blueprint \"{b}\" exists")))
}

/// `line-chart` with `chartType` `propertiesValueHistory`: one entity's number properties
/// over its stored versions (the audit log), or its level in a scorecard (`scorecard#id`) over
/// the level history.
pub(super) async fn line(cx: &Cx<'_>, w: &Value) -> Result<Body, Bad> {
    match str_field(w, "chartType")?.unwrap_or("propertiesValueHistory") {
        "propertiesValueHistory" => {}
        other => {
            return Err(bad("chartType", format!("\"{other}\" is not rendered; use propertiesValueHistory")));
        }
    }
    let bp = blueprint(cx, w)?;
    let entity =
        str_field(w, "entity")?.ok_or_else(|| bad("entity", "is required: the entity whose history to draw"))?;
    if cx.readable(&bp.identifier, entity, "entity").await?.is_none() {
        return Err(bad("entity", format!("no entity \"{entity}\" of blueprint \"{}\"", bp.identifier)));
    }
    let props: Vec<&str> = match w.get("properties") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_LINES => a
            .iter()
            .map(|p| p.as_str().ok_or_else(|| bad("properties", "must hold strings")))
            .collect::<Result<_, _>>()?,
        _ => return Err(bad("properties", format!("must list 1 to {MAX_LINES} properties"))),
    };
    if let Some(sc) = props.iter().find_map(|p| p.strip_prefix("scorecard#")) {
        if props.len() > 1 {
            return Err(bad("properties", "a scorecard's level is drawn on its own line chart"));
        }
        let titles = level_titles(cx, bp, sc, "properties[0]").await?;
        let store = &cx.state.store;
        let changes = store
            .level_history(&cx.user.org, &bp.identifier, entity, sc, HISTORY_POINTS)
            .await
            .map_err(|e| store_bad("entity", e))?;
        let pts = changes
            .iter()
            .filter_map(|c| {
                let i = titles.iter().position(|t| t == &c.level)?;
                Some((millis(&c.at)?, i as f64, format!("{}: {}", day(millis(&c.at)?), c.level)))
            })
            .collect::<Vec<_>>();
        let top = titles.len().saturating_sub(1) as f64;
        return Ok(plot(vec![(sc.to_string(), pts)], 0.0, top, titles.last(), titles.first()));
    }
    for (i, p) in props.iter().enumerate() {
        if !bp.schema.properties.contains_key(*p) {
            return Err(bad(
                format!("properties[{i}]"),
                format!("blueprint \"{}\" has no property \"{p}\"", bp.identifier),
            ));
        }
    }
    let filter = AuditFilter {
        blueprint: Some(bp.identifier.clone()),
        entity: Some(entity.to_string()),
        resources: vec!["entity".into()],
        limit: HISTORY_POINTS,
        ..AuditFilter::default()
    };
    let mut records = cx.state.store.list_audit(&cx.user.org, &filter).await.map_err(|e| store_bad("entity", e))?;
    records.reverse();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let series = props
        .iter()
        .map(|p| {
            let pts: Vec<(i64, f64, String)> = records
                .iter()
                .filter_map(|r| {
                    let v = r.diff.as_ref()?.pointer("/after/properties")?.get(*p)?.as_f64()?;
                    let t = millis(&r.at)?;
                    Some((t, v, format!("{}: {p} = {v}", day(t))))
                })
                .collect();
            for (_, v, _) in &pts {
                lo = lo.min(*v);
                hi = hi.max(*v);
            }
            (p.to_string(), pts)
        })
        .collect::<Vec<_>>();
    if !lo.is_finite() {
        (lo, hi) = (0.0, 0.0);
    }
    Ok(plot(series, lo, hi, Some(&num(hi)), Some(&num(lo))))
}

fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn plot(series: Vec<charts::Series>, lo: f64, hi: f64, top: Option<&String>, bottom: Option<&String>) -> Body {
    let times: Vec<i64> = series.iter().flat_map(|s| s.1.iter().map(|p| p.0)).collect();
    let (x_left, x_right) = match (times.iter().min(), times.iter().max()) {
        (Some(a), Some(b)) => (day(*a), day(*b)),
        _ => (String::new(), String::new()),
    };
    Body::Line {
        lines: charts::lines(series, lo, hi),
        y_top: top.cloned().unwrap_or_default(),
        y_bottom: bottom.cloned().unwrap_or_default(),
        x_left,
        x_right,
    }
}

/// An action of an action card.
#[derive(Serialize)]
pub(super) struct ActionLink {
    title: String,
    description: Option<String>,
    href: String,
}

/// `action-card-widget`: buttons to the run forms of `actions[].action`.
pub(super) async fn action_card(cx: &Cx<'_>, w: &Value) -> Result<Body, Bad> {
    let items = match w.get("actions") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_ACTIONS => a,
        _ => return Err(bad("actions", format!("must list 1 to {MAX_ACTIONS} actions as {{\"action\": id}}"))),
    };
    let mut actions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("actions[{i}].action");
        let id = item.get("action").and_then(Value::as_str).ok_or_else(|| bad(&field, "is required (a string)"))?;
        let a = cx.state.store.get_action(&cx.user.org, id).await.map_err(|e| store_bad(&field, e))?;
        let a = a.ok_or_else(|| bad(&field, format!("no action \"{id}\" exists")))?;
        let title = a.data.get("title").and_then(Value::as_str).unwrap_or(&a.identifier).to_string();
        let description = a.data.get("description").and_then(Value::as_str).map(str::to_string);
        actions.push(ActionLink { title, description, href: format!("/ui/self-service/{}", urlencode(id)) });
    }
    Ok(Body::Actions { actions })
}

/// `runs-table`: the signed-in user's latest runs; `action-runs-table-widget`: the latest runs
/// of `action`.
pub(super) async fn runs(cx: &Cx<'_>, w: &Value, mine: bool) -> Result<Body, Bad> {
    let action = match (mine, str_field(w, "action")?) {
        (false, None) => return Err(bad("action", "is required: the action whose runs to list")),
        (_, a) => a.map(str::to_string),
    };
    let filter = RunFilter {
        action,
        // A member sees their own runs only (as in the run list).
        created_by: (mine || !cx.user.principal.is_admin()).then(|| cx.user.user.email.clone()),
        limit: RUNS_SHOWN,
        ..RunFilter::default()
    };
    let runs = cx.state.store.list_runs(&cx.user.org, &filter).await.map_err(|e| store_bad("action", e))?;
    Ok(Body::Runs { runs: run_rows(&runs, cx.now.timestamp()) })
}

/// `iframe-widget`: an http(s) page in a sandboxed frame; a protected one (`urlType:
/// "protected"`) with the person's access token of its provider, or the way to sign in
/// (`frames.rs`). Returns the body and the frame's origin (for the page's `frame-src`).
pub(super) fn iframe(cx: &Cx<'_>, w: &Value) -> Result<(Body, String), Bad> {
    let auth = super::frames::FrameAuth::of(w)?;
    let raw = str_field(w, "url")?.ok_or_else(|| bad("url", "is required"))?;
    let url = url::Url::parse(raw).map_err(|e| bad("url", format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("url", format!("must be http or https, not {}", url.scheme())));
    }
    let origin = url.origin().ascii_serialization();
    if origin == "null" || !origin.chars().all(|c| c.is_ascii_alphanumeric() || ".-:/[]".contains(c)) {
        return Err(bad("url", "has no host a frame can load"));
    }
    match auth {
        Some(auth) => Ok((super::frames::protected(cx, w, url, &auth)?, origin)),
        None => Ok((Body::Iframe { url: url.to_string() }, origin)),
    }
}
