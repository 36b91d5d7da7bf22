//! Dashboards (port-api.md §9): pages of type `dashboard` and `home` rendered on the server,
//! one widget at a time (`widgets.rs`, `more.rs`), charts as SVG drawn by the template from
//! geometry computed in `charts.rs`. `/ui/dashboards` lists the dashboards (grouped by their
//! folder), `/ui/dashboards/{id}` shows one, `/ui/home` the organization's `home` page or, when
//! it has none, the catalog's entity counts per blueprint. A misconfigured widget shows what is
//! wrong in its own place; the page renders whatever its widgets hold.

mod charts;
pub(super) mod frames;
mod more;
mod widgets;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use portolan_store::{SearchRequest, StoredPage};
use serde::Serialize;
use serde_json::Value;

use super::respond::{chrome, page};
use super::session::WebUser;
use super::{CSP, Chrome, WebError, WebResult, urlencode};
use crate::state::AppState;
use widgets::{Ask, Bad, Body, Cx, bad};

/// Widgets one dashboard renders (containers flattened); the rest are named in a note.
const MAX_WIDGETS: usize = 40;
/// Blueprints the default home page counts.
const HOME_BLUEPRINTS: u32 = 100;

#[derive(Serialize)]
struct WidgetView {
    id: String,
    title: String,
    description: Option<String>,
    /// Columns of the 12-column grid.
    span: u8,
    body: Body,
}

#[derive(Serialize)]
struct NavItem {
    title: String,
    href: String,
    current: bool,
}

#[derive(Serialize)]
struct NavGroup {
    title: Option<String>,
    items: Vec<NavItem>,
}

#[derive(Serialize)]
struct BlueprintCount {
    title: String,
    href: String,
    count: u64,
}

#[derive(Serialize)]
struct DashboardPage {
    chrome: Chrome,
    title: String,
    description: Option<String>,
    /// Listing the dashboards (no dashboard chosen).
    listing: bool,
    nav: Vec<NavGroup>,
    widgets: Vec<WidgetView>,
    note: Option<String>,
    /// The default home page: entities per blueprint.
    counts: Option<Vec<BlueprintCount>>,
    /// The page's permission page (a stored page shown to an admin).
    permissions_href: Option<String>,
}

fn is_dashboard(p: &StoredPage) -> bool {
    matches!(p.data.get("type").and_then(Value::as_str), Some("dashboard" | "home"))
}

fn page_title(p: &StoredPage) -> String {
    p.data.get("title").and_then(Value::as_str).unwrap_or(&p.identifier).to_string()
}

/// The dashboards of the organization by folder (pages without a folder first).
async fn nav(state: &AppState, u: &WebUser, current: Option<&str>) -> WebResult<Vec<NavGroup>> {
    let actor = crate::web::respond::caller(u);
    let pages = crate::ops::page::readable(state, &actor, state.store.list_pages(&u.org).await?).await?;
    let mut groups: Vec<NavGroup> = Vec::new();
    let mut keys: Vec<Option<String>> = Vec::new();
    for p in pages.iter().filter(|p| is_dashboard(p)) {
        let parent = p.data.get("parent").and_then(Value::as_str).map(str::to_string);
        let item = NavItem {
            title: page_title(p),
            href: format!("/ui/dashboards/{}", urlencode(&p.identifier)),
            current: current == Some(p.identifier.as_str()),
        };
        match keys.iter().position(|k| *k == parent) {
            Some(i) => groups[i].items.push(item),
            None => {
                let title =
                    parent.as_ref().map(|f| pages.iter().find(|p| &p.identifier == f).map_or(f.clone(), page_title));
                keys.push(parent);
                groups.push(NavGroup { title, items: vec![item] });
            }
        }
    }
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|i| keys[*i].is_some());
    let mut slots: Vec<Option<NavGroup>> = groups.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// The widgets of a page in display order with their grid span: containers
/// (`dashboard-widget`, whose `layout` gives the order and sizes, and `grouper` tabs) are
/// flattened.
fn flatten<'a>(widgets: &'a [Value], span: u8, out: &mut Vec<(&'a Value, u8)>) {
    for w in widgets {
        let inner = w.get("widgets").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        match w.get("type").and_then(Value::as_str) {
            Some("dashboard-widget") => {
                let mut placed: Vec<(&'a Value, u8)> = Vec::new();
                let columns = w
                    .get("layout")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|row| row.get("columns")?.as_array())
                    .flatten();
                for c in columns {
                    let size = c.get("size").and_then(Value::as_u64).map_or(6, |s| s.clamp(1, 12) as u8);
                    if let Some(found) = inner.iter().find(|x| x.get("id").is_some_and(|id| Some(id) == c.get("id")))
                        && !placed.iter().any(|(p, _)| std::ptr::eq(*p, found))
                    {
                        placed.push((found, size));
                    }
                }
                let rest: Vec<&Value> =
                    inner.iter().filter(|x| !placed.iter().any(|(p, _)| std::ptr::eq(*p, *x))).collect();
                for (x, size) in placed {
                    flatten(std::slice::from_ref(x), size, out);
                }
                for x in rest {
                    flatten(std::slice::from_ref(x), 6, out);
                }
            }
            Some("grouper") => {
                for g in w.get("groups").and_then(Value::as_array).into_iter().flatten() {
                    let ws = g.get("widgets").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                    flatten(ws, span, out);
                }
            }
            _ => out.push((w, span)),
        }
    }
}

/// What a widget needs before it can be shown.
enum Prepared<'a> {
    /// A figure the store reads with the page's other figures over the same blueprint.
    Ask(Ask<'a>),
    /// Done already (a pie by scorecard level, or a configuration error).
    Done(Result<Body, Bad>),
    /// Read by [`build`].
    Build,
}

async fn prepare<'a>(cx: &Cx<'a>, w: &'a Value) -> Prepared<'a> {
    match w.get("type").and_then(Value::as_str) {
        Some("entities-number-chart" | "number-chart") => match widgets::number(cx, w) {
            Ok(ask) => Prepared::Ask(ask),
            Err(b) => Prepared::Done(Err(b)),
        },
        Some("entities-pie-chart") => match widgets::pie(cx, w).await {
            Ok(ask) => Prepared::Ask(ask),
            Err(done) => Prepared::Done(done),
        },
        _ => Prepared::Build,
    }
}

/// The figures `asks` need, one [`portolan_store::Widgets::measure`] per blueprint (all the
/// number and pie widgets over a blueprint cost one scan of its entities); by widget index.
async fn measure_all(
    cx: &Cx<'_>,
    asks: Vec<(usize, &Ask<'_>)>,
) -> Vec<(usize, Result<portolan_store::Measured, portolan_store::StoreError>)> {
    /// The widgets over one blueprint (or none): their indexes and what they ask.
    type Group<'g, 'a> = (Option<&'g str>, Vec<(usize, &'g Ask<'a>)>);
    let mut groups: Vec<Group<'_, '_>> = Vec::new();
    for (i, ask) in asks {
        let key = ask.blueprint.map(|b| b.identifier.as_str());
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push((i, ask)),
            None => groups.push((key, vec![(i, ask)])),
        }
    }
    let reads = groups.iter().map(|(_, members)| async move {
        let bp = members[0].1.blueprint;
        let items: Vec<_> = members.iter().map(|(_, a)| (a.query.as_ref(), a.measure)).collect();
        let req = cx.request(bp, None, 1);
        match cx.state.store.measure(&cx.user.org, &req, &items).await {
            Ok(read) => members.iter().map(|(i, _)| *i).zip(read).collect::<Vec<_>>(),
            Err(e) => {
                // The scan failed (budget, database): each widget says so.
                let msg = e.to_string();
                members.iter().map(|(i, _)| (*i, Err(same_error(&e, &msg)))).collect()
            }
        }
    });
    join_all(reads.collect()).await.into_iter().flatten().collect()
}

/// `e` again, for each widget of a failed scan (store errors are not `Clone`).
fn same_error(e: &portolan_store::StoreError, msg: &str) -> portolan_store::StoreError {
    use portolan_store::StoreError;
    match e {
        StoreError::OverBudget { budget } => StoreError::OverBudget { budget: *budget },
        StoreError::Invalid(f) => StoreError::Invalid(f.clone()),
        StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
        _ => StoreError::Db(msg.to_string().into()),
    }
}

/// One widget's body, and the origin of its frame (iframes).
async fn build(cx: &Cx<'_>, w: &Value) -> Result<(Body, Option<String>), Bad> {
    let kind = match w.get("type") {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err(bad("type", "is required: the widget's kind (entities-pie-chart, markdown, …)")),
    };
    let body = match kind {
        "table-entities-explorer" => widgets::table(cx, w).await?,
        "markdown" => widgets::markdown(cx, w).await?,
        "line-chart" => more::line(cx, w).await?,
        "scorecard-overview" => more::scorecard_overview(cx, w).await?,
        "action-card-widget" => more::action_card(cx, w).await?,
        "runs-table" => more::runs(cx, w, true).await?,
        "action-runs-table-widget" => more::runs(cx, w, false).await?,
        "iframe-widget" => {
            let (body, origin) = more::iframe(cx, w)?;
            return Ok((body, Some(origin)));
        }
        other => return Err(bad("type", format!("\"{other}\" widgets are not rendered by Portolan"))),
    };
    Ok((body, None))
}

/// The page's widgets rendered, and the frame origins they need.
async fn render_widgets(
    state: &AppState,
    u: &WebUser,
    headers: &HeaderMap,
    p: &StoredPage,
) -> WebResult<(Vec<WidgetView>, Vec<String>, Option<String>)> {
    let data = &p.data;
    let blueprints = state.blueprints(&u.org).await?;
    let now = chrono::DateTime::from_timestamp(state.clock.now(), 0).unwrap_or_default();
    let visible = crate::access::read_restriction(state, &crate::web::respond::caller(u)).await?;
    let cx = Cx { state, user: u, blueprints: &blueprints, now, visible, headers, page: &p.identifier };
    let mut flat = Vec::new();
    flatten(data.get("widgets").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default(), 12, &mut flat);
    let note = (flat.len() > MAX_WIDGETS)
        .then(|| format!("This dashboard has {} widgets; the first {MAX_WIDGETS} are shown.", flat.len()));
    flat.truncate(MAX_WIDGETS);
    // Number and pie widgets are read together, one scan per blueprint; the other widgets'
    // queries run at the same time (each on its own read connection, within the organization's
    // share of them), so a page takes about as long as its slowest read.
    let prepared = join_all(flat.iter().map(|(w, _)| prepare(&cx, w)).collect()).await;
    let asks =
        prepared.iter().enumerate().filter_map(|(i, p)| if let Prepared::Ask(a) = p { Some((i, a)) } else { None });
    let cx = &cx;
    let builds = prepared.iter().zip(&flat).map(|(p, (w, _))| async move {
        match p {
            Prepared::Build => Some(build(cx, w).await),
            _ => None,
        }
    });
    let (mut measured, built) = tokio::join!(measure_all(cx, asks.collect()), join_all(builds.collect()));
    let (mut views, mut origins) = (Vec::new(), Vec::new());
    for (i, (((w, span), built), prepared)) in flat.into_iter().zip(built).zip(prepared).enumerate() {
        let result = match prepared {
            Prepared::Build => built.unwrap_or_else(|| Err(bad("type", "was not read"))),
            Prepared::Done(body) => body.map(|b| (b, None)),
            Prepared::Ask(ask) => {
                let read = measured.iter().position(|(j, _)| *j == i).map(|k| measured.swap_remove(k).1);
                let read =
                    read.unwrap_or_else(|| Err(portolan_store::StoreError::Db("the figure was not read".into())));
                ask.body(read).map(|b| (b, None))
            }
        };
        let text = |k: &str| w.get(k).and_then(Value::as_str).map(str::to_string);
        let body = match result {
            Ok((body, origin)) => {
                origins.extend(origin.filter(|o| !origins.contains(o)));
                body
            }
            Err(b) => Body::Error { field: b.field, message: b.message },
        };
        views.push(WidgetView {
            id: text("id").unwrap_or_default(),
            title: text("title").unwrap_or_default(),
            description: text("description"),
            span,
            body,
        });
    }
    Ok((views, origins, note))
}

/// Poll every future to completion concurrently on the current task; outputs in order.
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(out.iter_mut().filter_map(Option::take).collect()) }
    })
    .await
}

/// The page's CSP: the UI's, with `frame-src` naming the iframes' origins.
fn with_frames(mut res: Response, origins: &[String]) -> Response {
    if origins.is_empty() {
        return res;
    }
    let csp = CSP.replacen("default-src 'none';", &format!("default-src 'none'; frame-src {};", origins.join(" ")), 1);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

async fn show(state: &AppState, u: &WebUser, headers: &HeaderMap, p: &StoredPage) -> WebResult {
    let (widgets, origins, note) = render_widgets(state, u, headers, p).await?;
    let ctx = DashboardPage {
        chrome: chrome(state, u),
        title: page_title(p),
        description: p.data.get("description").and_then(Value::as_str).map(str::to_string),
        listing: false,
        nav: nav(state, u, Some(&p.identifier)).await?,
        widgets,
        note,
        counts: None,
        permissions_href: u
            .is_admin()
            .then(|| format!("/ui/dashboards/{}/permissions", crate::web::urlencode(&p.identifier))),
    };
    Ok(with_frames(page(state, "dashboard.html", ctx)?, &origins))
}

/// `GET /ui/dashboards`: the organization's dashboards.
pub async fn dashboards(State(state): State<AppState>, user: WebUser) -> WebResult {
    let ctx = DashboardPage {
        chrome: chrome(&state, &user),
        title: "Dashboards".into(),
        description: None,
        listing: true,
        nav: nav(&state, &user, None).await?,
        widgets: Vec::new(),
        note: None,
        counts: None,
        permissions_href: None,
    };
    page(&state, "dashboard.html", ctx)
}

/// `GET /ui/dashboards/{id}`: one dashboard (a page of another organization is not found).
pub async fn dashboard(
    State(state): State<AppState>,
    user: WebUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> WebResult {
    let p = match crate::ops::page::load(&state, &crate::web::respond::caller(&user), &id).await {
        Ok(p) => Some(p),
        Err(e) if e.code == crate::error::ErrorCode::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    match p {
        Some(p) if p.data.get("type").and_then(Value::as_str) != Some("folder") => {
            show(&state, &user, &headers, &p).await
        }
        _ => Err(WebError::NotFound(format!("There is no dashboard \"{id}\"."))),
    }
}

/// `GET /ui/home`: the organization's `home` page, else the catalog's counts per blueprint.
pub async fn home(State(state): State<AppState>, user: WebUser, headers: HeaderMap) -> WebResult {
    let actor = crate::web::respond::caller(&user);
    let pages = crate::ops::page::readable(&state, &actor, state.store.list_pages(&user.org).await?).await?;
    if let Some(p) = pages.iter().find(|p| p.data.get("type").and_then(Value::as_str) == Some("home")) {
        return show(&state, &user, &headers, p).await;
    }
    let blueprints = state.blueprints(&user.org).await?;
    let visible = crate::access::read_restriction(&state, &crate::web::respond::caller(&user)).await?;
    let req = SearchRequest { visible: visible.as_ref(), ..SearchRequest::new(&blueprints, None, None, 1) };
    let by_bp = state.store.count_by(&user.org, &req, "$blueprint", HOME_BLUEPRINTS).await?;
    let mut counts: Vec<BlueprintCount> = blueprints
        .values()
        .map(|b| BlueprintCount {
            title: b.title.clone(),
            href: format!("/ui/catalog/{}", urlencode(&b.identifier)),
            count: by_bp.groups.iter().find(|g| g.0.as_deref() == Some(b.identifier.as_str())).map_or(0, |g| g.1),
        })
        .collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.title.cmp(&b.title)));
    let ctx = DashboardPage {
        chrome: chrome(&state, &user),
        title: "Home".into(),
        description: None,
        listing: false,
        nav: nav(&state, &user, None).await?,
        widgets: Vec::new(),
        note: None,
        counts: Some(counts),
        permissions_href: None,
    };
    page(&state, "dashboard.html", ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_flatten_in_layout_order_with_their_sizes() {
        let widgets = json!([
            {"id": "top", "type": "markdown"},
            {"id": "grid", "type": "dashboard-widget",
             "layout": [{"height": 400, "columns": [{"id": "b", "size": 4}, {"id": "a", "size": 20}]}],
             "widgets": [{"id": "a", "type": "markdown"}, {"id": "b", "type": "markdown"}, {"id": "c", "type": "markdown"}]},
            {"id": "tabs", "type": "grouper", "groups": [{"title": "One", "widgets": [{"id": "t1", "type": "markdown"}]}]}
        ]);
        let mut out = Vec::new();
        flatten(widgets.as_array().unwrap(), 12, &mut out);
        let got: Vec<(&str, u8)> = out.iter().map(|(w, s)| (w["id"].as_str().unwrap(), *s)).collect();
        assert_eq!(got, [("top", 12), ("b", 4), ("a", 12), ("c", 6), ("t1", 12)]);
    }
}
