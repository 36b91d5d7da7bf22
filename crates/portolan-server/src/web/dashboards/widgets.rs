//! One widget of a dashboard, read and turned into its view: the data widgets (number, pie,
//! entities table, scorecard overview) run one bounded store query each; markdown is rendered
//! by `format::markdown`. A widget whose configuration is wrong is a [`Bad`]: the field and
//! what is wrong with it, shown in the widget's place.

use minijinja::Value as Mj;
use portolan_core::search::{Query, parse_query};
use portolan_core::{Blueprint, FieldError};
use portolan_store::{Aggregate, Measure, Measured, SearchRequest, StoreError};
use serde::Serialize;
use serde_json::Value;

use super::charts::{self, Bar, Slice};
use super::more;
use crate::state::AppState;
use crate::web::actions::runs::RunRow;
use crate::web::format;
use crate::web::session::WebUser;
use crate::web::urlencode;

/// Most rows an entities table shows (`pageSize` can ask for fewer).
pub(super) const MAX_ROWS: u32 = 50;
/// Rows of an entities table without `pageSize`.
const DEFAULT_ROWS: u32 = 10;
/// Slices of a pie before "Other" (Port's limit).
const PIE_SLICES: u32 = 14;
/// Columns of an entities table without a configuration: the title and this many properties.
const DEFAULT_COLUMNS: usize = 4;

/// What a widget shows, by kind.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Body {
    Number {
        value: String,
        caption: String,
    },
    Pie {
        slices: Vec<Slice>,
        total: u64,
    },
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<Mj>>,
        more: bool,
        href: String,
        empty: String,
    },
    Markdown {
        html: Mj,
    },
    Line {
        lines: Vec<charts::Line>,
        y_top: String,
        y_bottom: String,
        x_left: String,
        x_right: String,
    },
    Levels {
        bars: Vec<Bar>,
        total: u64,
    },
    Actions {
        actions: Vec<more::ActionLink>,
    },
    Runs {
        runs: Vec<RunRow>,
    },
    Iframe {
        url: String,
    },
    /// A protected frame whose provider the person has not signed in to yet.
    FrameSignIn {
        href: String,
        provider: String,
    },
    Error {
        field: String,
        message: String,
    },
}

/// A misconfigured widget: which field, what is wrong.
#[derive(Debug)]
pub(super) struct Bad {
    pub field: String,
    pub message: String,
}

pub(super) fn bad(field: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad { field: field.into(), message: message.into() }
}

/// A store error of a widget's query, at `field` (the query's own paths appended).
pub(super) fn store_bad(field: &str, e: StoreError) -> Bad {
    match e {
        StoreError::Invalid(f) => bad(join(field, &f.path), f.message),
        e @ StoreError::OverBudget { .. } => bad(field, e.to_string()),
        e => {
            tracing::warn!(error = %e, "a dashboard widget's query failed");
            bad(field, "could not be read just now (the server log says why); reload the page to try again")
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a.to_string(),
        (true, false) => b.to_string(),
        _ if b.starts_with('[') => format!("{a}{b}"),
        _ => format!("{a}.{b}"),
    }
}

/// What every widget builder reads.
pub(super) struct Cx<'a> {
    pub state: &'a AppState,
    pub user: &'a WebUser,
    pub blueprints: &'a std::collections::HashMap<String, Blueprint>,
    pub now: chrono::DateTime<chrono::Utc>,
    /// What the user may read (`access::read_restriction`): every widget's entities pass it.
    pub visible: Option<Query>,
    /// The request's headers (protected frames' tokens are cookies).
    pub headers: &'a axum::http::HeaderMap,
    /// The page's identifier.
    pub page: &'a str,
}

impl<'a> Cx<'a> {
    fn blueprint(&self, w: &Value, required: bool) -> Result<Option<&'a Blueprint>, Bad> {
        match w.get("blueprint") {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(bad("blueprint", "is required: the blueprint whose entities to show")),
            Some(Value::String(b)) => {
                self.blueprints.get(b).map(Some).ok_or_else(|| bad("blueprint", format!("no blueprint \"{b}\" exists")))
            }
            Some(_) => Err(bad("blueprint", "must be a blueprint identifier (a string)")),
        }
    }

    /// The widget's `dataset` (Port's name) or `query`, parsed.
    fn query(&self, w: &Value) -> Result<Option<(Query, &'static str)>, Bad> {
        for field in ["dataset", "query"] {
            if let Some(v) = w.get(field).filter(|v| !v.is_null()) {
                let q = parse_query(v).map_err(|e: FieldError| bad(join(field, &e.path), e.message))?;
                return Ok(Some((q, field)));
            }
        }
        Ok(None)
    }

    pub(super) fn request<'q>(
        &'q self,
        bp: Option<&'q Blueprint>,
        q: Option<&'q Query>,
        limit: u32,
    ) -> SearchRequest<'q> {
        SearchRequest {
            blueprint: bp.map(|b| b.identifier.as_str()),
            query: q,
            blueprints: self.blueprints,
            after: None,
            limit,
            now: self.now,
            visible: self.visible.as_ref(),
        }
    }

    /// Entity `id` of `bp` if it exists and the user may read it.
    pub(super) async fn readable(&self, bp: &str, id: &str, field: &str) -> Result<Option<portolan_core::Entity>, Bad> {
        let e = self.state.store.get_entity(&self.user.org, bp, id).await.map_err(|e| store_bad(field, e))?;
        match e {
            Some(e) => {
                let actor = crate::web::respond::caller(self.user);
                let ok = crate::access::may_read(self.state, &actor, &e).await.map_err(|e| bad(field, e.message))?;
                Ok(ok.then_some(e))
            }
            None => Ok(None),
        }
    }

    /// Refuse a widget that counts every entity of `bp` when the user may read only some.
    pub(super) async fn reads_all_of(&self, bp: &str, field: &str) -> Result<(), Bad> {
        if self.visible.is_none() {
            return Ok(());
        }
        let perms =
            crate::access::permissions(self.state, &self.user.org, bp).await.map_err(|e| bad(field, e.message))?;
        match perms.read_scope(&self.user.principal, bp) {
            portolan_core::permissions::ReadScope::All => Ok(()),
            _ => Err(bad(
                field,
                format!(
                    "this widget counts every entity of blueprint \"{bp}\", and your permissions let you read only some"
                ),
            )),
        }
    }
}

pub(super) fn str_field<'v>(w: &'v Value, field: &str) -> Result<Option<&'v str>, Bad> {
    match w.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

/// A property name as Port's widgets write it: `lang`, or `property#lang`.
fn property_name(p: &str) -> &str {
    p.strip_prefix("property#").unwrap_or(p)
}

fn check_property(bp: Option<&Blueprint>, field: &str, name: &str) -> Result<(), Bad> {
    if name == "$blueprint" && bp.is_none() {
        return Ok(());
    }
    match bp {
        Some(b) if b.schema.properties.contains_key(name) => Ok(()),
        Some(b) => Err(bad(field, format!("blueprint \"{}\" has no stored property \"{name}\"", b.identifier))),
        None => Err(bad("blueprint", format!("is required to read the property \"{name}\""))),
    }
}

/// What a number or pie widget reads, checked: the page reads those of one blueprint in one
/// scan ([`portolan_store::Widgets::measure`]), then [`Ask::body`] shows each one's figure.
pub(super) struct Ask<'a> {
    pub blueprint: Option<&'a Blueprint>,
    pub query: Option<Query>,
    /// Where the query came from (`dataset` or `query`), for its errors.
    qfield: &'static str,
    pub measure: Measure<'a>,
    widget: &'a Value,
    /// The number's caption; `None` for a pie.
    caption: Option<String>,
}

/// `entities-number-chart` / `number-chart`: a count, or an aggregate of a number property.
pub(super) fn number<'a>(cx: &Cx<'a>, w: &'a Value) -> Result<Ask<'a>, Bad> {
    let bp = cx.blueprint(w, false)?;
    let query = cx.query(w)?;
    let (query, qfield) = match query {
        Some((q, f)) => (Some(q), f),
        None => (None, "dataset"),
    };
    if bp.is_none() && query.is_none() {
        return Err(bad("blueprint", "is required (or a dataset): which entities to count"));
    }
    let chart = str_field(w, "chartType")?.unwrap_or("countEntities");
    let func = str_field(w, "func")?.unwrap_or(if chart == "aggregateByProperty" { "sum" } else { "count" });
    let (measure, caption) = match (chart, func) {
        ("countEntities", "count") => (Measure::Count, "entities".to_string()),
        ("aggregateByProperty", f) => {
            let func = match f {
                "sum" => Aggregate::Sum,
                "average" => Aggregate::Average,
                "min" => Aggregate::Min,
                "max" => Aggregate::Max,
                other => return Err(bad("func", format!("\"{other}\" is not one of sum, average, min, max"))),
            };
            let property = property_name(str_field(w, "property")?.ok_or_else(|| bad("property", "is required"))?);
            check_property(bp, "property", property)?;
            (Measure::Aggregate { property, func }, format!("{f} of {property}"))
        }
        ("countEntities", f) => {
            return Err(bad("func", format!("\"{f}\" is not rendered for countEntities; use count")));
        }
        (c, _) => {
            return Err(bad("chartType", format!("\"{c}\" is not rendered; use countEntities or aggregateByProperty")));
        }
    };
    Ok(Ask { blueprint: bp, query, qfield, measure, widget: w, caption: Some(caption) })
}

impl Ask<'_> {
    /// The widget showing what the store read for it.
    pub(super) fn body(&self, read: Result<Measured, StoreError>) -> Result<Body, Bad> {
        let w = self.widget;
        let read = read.map_err(|e| store_bad(self.qfield, e))?;
        let Some(caption) = &self.caption else {
            let Measured::Breakdown(b) = read else { return Err(bad("", "the store answered another figure")) };
            let mut parts: Vec<(String, u64)> =
                b.groups.iter().map(|(v, n)| (v.clone().unwrap_or_else(|| "(no value)".into()), *n)).collect();
            let other = b.other();
            if other > 0 {
                parts.push(("Other".into(), other));
            }
            return Ok(Body::Pie { slices: charts::pie(&parts, other > 0), total: b.total });
        };
        let value = match read {
            Measured::Count(n) => n.to_string(),
            Measured::Aggregate(v) => v.map_or_else(|| "–".to_string(), |v| decimals(w, v)),
            Measured::Breakdown(_) => return Err(bad("", "the store answered another figure")),
        };
        let unit = match str_field(w, "unit")?.unwrap_or("none") {
            "none" => "",
            "custom" => str_field(w, "unitCustom")?.unwrap_or(""),
            u => u,
        };
        let value = match (unit, str_field(w, "unitAlignment")?.unwrap_or("left")) {
            ("", _) => value,
            (u, "right") => format!("{value} {u}"),
            (u, _) => format!("{u} {value}"),
        };
        Ok(Body::Number { value, caption: caption.clone() })
    }
}

/// A number as the widget's `decimalPlaces` (".0" … ".00000") asks, two places otherwise.
fn decimals(w: &Value, v: f64) -> String {
    let places = w.get("decimalPlaces").and_then(Value::as_str).map_or(2, |d| d.trim_start_matches('.').len().min(5));
    let s = format!("{v:.places$}");
    if places > 0 && w.get("decimalPlaces").is_none() {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `entities-pie-chart`: entities by a property's value (or a scorecard's level with
/// `scorecard#id`, whose body is read here: `Err(Ok(body))`), the 14 largest slices then
/// "Other".
pub(super) async fn pie<'a>(cx: &Cx<'a>, w: &'a Value) -> Result<Ask<'a>, Result<Body, Bad>> {
    let bp = cx.blueprint(w, false).map_err(Err)?;
    let prop = str_field(w, "property")
        .map_err(Err)?
        .ok_or_else(|| Err(bad("property", "is required: the property to break down by")))?;
    if let Some(sc) = prop.strip_prefix("scorecard#") {
        let bp = bp.ok_or_else(|| Err(bad("blueprint", "is required for a scorecard breakdown")))?;
        let counts = more::levels(cx, bp, sc, "property").await.map_err(Err)?;
        let total = counts.iter().map(|c| c.1).sum();
        return Err(Ok(Body::Pie { slices: charts::pie(&counts, false), total }));
    }
    let prop = property_name(prop);
    check_property(bp, "property", prop).map_err(Err)?;
    let (query, qfield) = match cx.query(w).map_err(Err)? {
        Some((q, f)) => (Some(q), f),
        None => (None, "dataset"),
    };
    let measure = Measure::CountBy { field: prop, top: PIE_SLICES };
    Ok(Ask { blueprint: bp, query, qfield, measure, widget: w, caption: None })
}

/// `table-entities-explorer`: a page of a blueprint's entities, the columns the widget's
/// `blueprintConfig` shows (or the title and the first properties).
pub(super) async fn table(cx: &Cx<'_>, w: &Value) -> Result<Body, Bad> {
    let query = cx.query(w)?;
    let from_dataset = query.as_ref().and_then(|(q, _)| q.referenced_blueprints().into_iter().next());
    let bp = match (cx.blueprint(w, false)?, from_dataset) {
        (Some(b), _) => b,
        (None, Some(b)) => {
            cx.blueprints.get(&b).ok_or_else(|| bad("dataset", format!("names no existing blueprint (\"{b}\")")))?
        }
        (None, None) => return Err(bad("blueprint", "is required (or a $blueprint rule in dataset)")),
    };
    let rows = match w.get("pageSize").and_then(Value::as_u64) {
        Some(n) => u32::try_from(n).unwrap_or(MAX_ROWS).clamp(1, MAX_ROWS),
        None => DEFAULT_ROWS,
    };
    let settings = w.pointer(&format!(
        "/blueprintConfig/{}/propertiesSettings",
        bp.identifier.replace('~', "~0").replace('/', "~1")
    ));
    let named: Vec<String> = settings
        .and_then(|s| s.get("order").or_else(|| s.get("shown")))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let mut columns: Vec<String> = if named.is_empty() {
        std::iter::once("$title".to_string())
            .chain(bp.schema.properties.keys().take(DEFAULT_COLUMNS).cloned())
            .collect()
    } else {
        named.into_iter().take(12).collect()
    };
    if let Some(hidden) = settings.and_then(|s| s.get("hidden")).and_then(Value::as_array) {
        columns.retain(|c| !hidden.iter().any(|h| h.as_str() == Some(c)));
    }
    let (q, qfield) = match &query {
        Some((q, f)) => (Some(q), *f),
        None => (None, "dataset"),
    };
    let req = cx.request(Some(bp), q, rows);
    let page = cx.state.store.search(&cx.user.org, &req).await.map_err(|e| store_bad(qfield, e))?;
    let now = cx.now.timestamp();
    let cells = page
        .entities
        .iter()
        .map(|e| {
            columns
                .iter()
                .map(|c| {
                    let html = match c.as_str() {
                        "$title" | "$identifier" => format::entity_link(&e.blueprint, &e.identifier),
                        "$team" => format::esc(&e.team.join(", ")),
                        "$createdAt" => format::date_time(&e.created_at, now),
                        "$updatedAt" => format::date_time(&e.updated_at, now),
                        p => {
                            let v = e.properties.get(p).or_else(|| e.relations.get(p)).unwrap_or(&Value::Null);
                            format::cell_html(v, bp.schema.properties.get(p), now)
                        }
                    };
                    Mj::from_safe_string(html)
                })
                .collect()
        })
        .collect();
    let titles = columns.iter().map(|c| format::column_title(bp, c)).collect();
    let empty = str_field(w, "emptyStateText")?.unwrap_or("No entities.").to_string();
    let href = format!("/ui/catalog/{}", urlencode(&bp.identifier));
    Ok(Body::Table { columns: titles, rows: cells, more: page.next.is_some(), href, empty })
}

/// `markdown`: the widget's own text (`source` custom) or an entity's property (`source`
/// property), through the safe renderer.
pub(super) async fn markdown(cx: &Cx<'_>, w: &Value) -> Result<Body, Bad> {
    let src = match str_field(w, "source")?.unwrap_or("custom") {
        "custom" => str_field(w, "markdown")?.unwrap_or("").to_string(),
        "property" => {
            let bp = str_field(w, "blueprintIdentifier")?.ok_or_else(|| bad("blueprintIdentifier", "is required"))?;
            let id = str_field(w, "entityIdentifier")?.ok_or_else(|| bad("entityIdentifier", "is required"))?;
            let prop = str_field(w, "propertyIdentifier")?.ok_or_else(|| bad("propertyIdentifier", "is required"))?;
            let e = cx.readable(bp, id, "entityIdentifier").await?;
            let e = e.ok_or_else(|| bad("entityIdentifier", format!("no entity \"{id}\" of blueprint \"{bp}\"")))?;
            match e.properties.get(prop) {
                Some(Value::String(s)) => s.clone(),
                _ => return Err(bad("propertyIdentifier", format!("entity \"{id}\" has no text in \"{prop}\""))),
            }
        }
        other => return Err(bad("source", format!("\"{other}\" is not custom or property"))),
    };
    const MAX_MARKDOWN: usize = 64 * 1024;
    if src.len() > MAX_MARKDOWN {
        return Err(bad("markdown", "is longer than 64 KiB"));
    }
    Ok(Body::Markdown { html: Mj::from_safe_string(format::markdown(&src)) })
}
