//! `--dashboard`: the web UI's dashboard page at scale. After the load, a dashboard with six
//! widgets over the services (a count with a filter, a sum of `cpu`, pie charts by `language`
//! and by `tier`, a table of a filtered page, markdown) is created through `/v1/pages`; then
//! signed-in sequential `GET /ui/dashboards/bench` requests are timed to the last byte, beside
//! the catalog's first page (`GET /ui/catalog/service`) as the baseline of the same run.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::api::Api;
use crate::latency::{Stats, stats};
use crate::model::Dataset;
use crate::web::{FIRST_PAGE, Web};

pub const DASHBOARD_PAGE: &str = "/ui/dashboards/bench";
/// Target of issue 15: p50 of the full HTML of a six-widget dashboard at 100,000 entities.
pub const TARGET_P50_MS: f64 = 150.0;

/// Create the dashboard.
pub async fn create(api: &Api) -> anyhow::Result<()> {
    let go = json!({"combinator": "and", "rules": [{"property": "language", "operator": "=", "value": "go"}]});
    let widgets = json!([
        {"id": "count", "type": "entities-number-chart", "title": "Go services", "blueprint": "service",
         "chartType": "countEntities", "func": "count", "dataset": go},
        {"id": "cpu", "type": "entities-number-chart", "title": "CPU", "blueprint": "service",
         "chartType": "aggregateByProperty", "func": "sum", "property": "cpu"},
        {"id": "lang", "type": "entities-pie-chart", "title": "By language", "blueprint": "service", "property": "language"},
        {"id": "tier", "type": "entities-pie-chart", "title": "By tier", "blueprint": "service", "property": "tier"},
        {"id": "table", "type": "table-entities-explorer", "title": "Go services", "blueprint": "service", "dataset": go},
        {"id": "md", "type": "markdown", "title": "Read me", "markdown": "# Services\n\nThe **benchmark** dashboard."}
    ]);
    let page = json!({"identifier": "bench", "type": "dashboard", "title": "Bench",
        "widgets": [{"id": "grid", "type": "dashboard-widget", "widgets": widgets}]});
    let r = api.post("/v1/pages", &page).await.context("POST /v1/pages")?;
    if !r.status.is_success() {
        bail!("POST /v1/pages answered {}: {}", r.status, r.body);
    }
    Ok(())
}

/// Time the dashboard and the catalog page, `samples` times each (interleaved), checking that
/// every widget rendered.
pub async fn run(web: &Web, data: &Dataset, samples: usize) -> anyhow::Result<Vec<Stats>> {
    let (_, html) = web.page(DASHBOARD_PAGE).await?;
    if html.contains("widget-error") || html.matches("<article class=\"widget").count() != 6 {
        bail!("the dashboard does not show six working widgets:\n{}", html.chars().take(4000).collect::<String>());
    }
    let services = data.services.to_string();
    if !html.contains(&format!("{services} entities")) {
        bail!("the pie charts do not count {services} services");
    }
    let (mut dash, mut catalog): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        dash.push(web.page(DASHBOARD_PAGE).await?.0);
        catalog.push(web.page(FIRST_PAGE).await?.0);
    }
    Ok(vec![
        stats(
            &format!("GET {DASHBOARD_PAGE}"),
            dash,
            "six widgets: count (filter), sum, 2 pies, table page, markdown; full HTML".into(),
        ),
        stats(&format!("GET {FIRST_PAGE}"), catalog, "baseline: the catalog's first page, 50 rows; full HTML".into()),
    ])
}

pub fn markdown(st: &[Stats], entities: usize) -> String {
    let mut out = format!(
        "\n### Dashboard page ({entities} entities)\n\n| Page | Samples | p50 | p99 | mean | Note |\n|---|---|---|---|---|---|\n"
    );
    for s in st {
        out.push_str(&format!(
            "| `{}` | {} | {:.2} ms | {:.2} ms | {:.2} ms | {} |\n",
            s.name, s.samples, s.p50_ms, s.p99_ms, s.mean_ms, s.note
        ));
    }
    if let Some(d) = st.first() {
        let ok = if d.p50_ms <= TARGET_P50_MS { "met" } else { "NOT met" };
        out.push_str(&format!("\nTarget: dashboard p50 ≤ {TARGET_P50_MS} ms: {ok}.\n"));
    }
    out
}
