//! Dashboards: every widget kind rendered with numbers from seeded entities, misconfigured
//! widgets explained in place, user content escaped, another organization's dashboard not
//! found, the home page (the organization's `home` page, else catalog counts).

use std::time::Duration;

use portolan_server::ApiConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::WebApp;

async fn app() -> Option<WebApp> {
    WebApp::spawn_with(ApiConfig { job_poll: Duration::from_millis(50), ..ApiConfig::default() }).await
}

/// service(lang, cpu) × 7 with a scorecard, an action, an entity whose cpu changed 3 times.
async fn seed(app: &WebApp) {
    app.api(
        "POST",
        "/v1/blueprints",
        json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {"lang": {"type": "string", "title": "Language"}, "cpu": {"type": "number", "title": "CPU"}}}}),
    )
    .await;
    let langs =
        [("a", "rust", 1), ("b", "rust", 2), ("c", "rust", 3), ("d", "go", 4), ("e", "go", 5), ("f", "python", 6)];
    for (id, lang, cpu) in langs {
        app.api(
            "POST",
            "/v1/blueprints/service/entities",
            json!({"identifier": id, "title": format!("Svc {id}"), "properties": {"lang": lang, "cpu": cpu}}),
        )
        .await;
    }
    app.api("POST", "/v1/blueprints/service/entities", json!({"identifier": "g", "properties": {}})).await;
    for cpu in [10, 30, 20] {
        app.advance(Duration::from_secs(86_400));
        app.api("PATCH", "/v1/blueprints/service/entities/a", json!({"properties": {"cpu": cpu}})).await;
    }
    app.api(
        "POST",
        "/v1/blueprints/service/scorecards",
        json!({"identifier": "fast", "title": "Fast", "rules": [
            {"identifier": "hasCpu", "title": "has cpu", "level": "Bronze",
             "query": {"combinator": "and", "conditions": [{"property": "cpu", "operator": "isNotEmpty"}]}},
            {"identifier": "bigCpu", "title": "big cpu", "level": "Silver",
             "query": {"combinator": "and", "conditions": [{"property": "cpu", "operator": ">", "value": 4}]}},
            {"identifier": "rust", "title": "rust", "level": "Gold",
             "query": {"combinator": "and", "conditions": [{"property": "lang", "operator": "=", "value": "rust"}]}}]}),
    )
    .await;
    app.api(
        "POST",
        "/v1/actions",
        json!({"identifier": "scaffold", "title": "Scaffold a service", "description": "Creates a repo",
        "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
            "userInputs": {"properties": {"name": {"type": "string", "title": "Name"}}, "required": ["name"]}},
        "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
            "mapping": {"identifier": "{{ .inputs.name }}"}}}),
    )
    .await;
    // Scorecard results are computed by jobs: wait for entity a's level.
    for _ in 0..400 {
        let e = app.api("GET", "/v1/blueprints/service/entities/a", json!(null)).await;
        if e["entity"]["scorecards"]["fast"]["level"].is_string() {
            let g = app.api("GET", "/v1/blueprints/service/entities/g", json!(null)).await;
            if g["entity"]["scorecards"]["fast"]["level"].is_string() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the scorecard was not computed");
}

pub(crate) fn dashboard(id: &str, widgets: Value) -> Value {
    json!({"identifier": id, "type": "dashboard", "title": format!("Dash {id}"),
        "widgets": [{"id": "grid", "type": "dashboard-widget", "widgets": widgets}]})
}

/// The HTML of the widget `id` (its `<article>`).
pub(crate) fn widget(html: &str, id: &str) -> String {
    let start = html.find(&format!("data-widget=\"{id}\"")).unwrap_or_else(|| panic!("no widget {id} in\n{html}"));
    let end = html[start..].find("</article>").map_or(html.len(), |e| start + e);
    html[start..end].replace("&quot;", "\"").replace("&#x27;", "'")
}

#[tokio::test]
async fn every_widget_kind_renders_with_numbers_from_the_catalog() {
    let Some(app) = app().await else { return };
    seed(&app).await;
    let mut admin = app.admin().await;
    // A run of the admin's, through the run form.
    let csrf = app.csrf(&mut admin).await;
    let run = app.post(&mut admin, "/ui/self-service/scaffold", &[("_csrf", &csrf), ("p.name", "billing")]).await;
    assert_eq!(run.status, StatusCode::SEE_OTHER, "{}", run.text);
    // The run creates the service "billing" (no language, no cpu) in a job; wait for it and
    // its scorecard result, so the numbers below do not depend on timing.
    let org = portolan_store::OrgId(crate::app::ORG.into());
    let billing = [("service".to_string(), "billing".to_string())];
    for i in 0..400 {
        if !app.store.scorecard_results(&org, &billing).await.unwrap().is_empty() {
            break;
        }
        assert!(i < 399, "the run's entity was not created and scored");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let rust = json!({"combinator": "and", "rules": [{"property": "lang", "operator": "=", "value": "rust"}]});
    let widgets = json!([
        {"id": "count", "type": "entities-number-chart", "title": "Rust services", "blueprint": "service",
         "chartType": "countEntities", "func": "count", "dataset": rust},
        {"id": "sum", "type": "entities-number-chart", "title": "CPU", "blueprint": "service",
         "chartType": "aggregateByProperty", "func": "sum", "property": "cpu", "unit": "custom", "unitCustom": "cores",
         "unitAlignment": "right"},
        {"id": "avg", "type": "entities-number-chart", "blueprint": "service", "chartType": "aggregateByProperty",
         "func": "average", "property": "property#cpu", "dataset": rust},
        {"id": "pie", "type": "entities-pie-chart", "title": "By language", "blueprint": "service", "property": "lang"},
        {"id": "levelpie", "type": "entities-pie-chart", "blueprint": "service", "property": "scorecard#fast"},
        {"id": "table", "type": "table-entities-explorer", "title": "Go", "blueprint": "service",
         "dataset": {"combinator": "and", "rules": [{"property": "lang", "operator": "=", "value": "go"}]},
         "blueprintConfig": {"service": {"propertiesSettings": {"order": ["$title", "cpu"]}}}},
        {"id": "md", "type": "markdown", "title": "Read me", "markdown": "# Hello\n\n**bold** [docs](https://docs.example)"},
        {"id": "line", "type": "line-chart", "title": "a's CPU", "chartType": "propertiesValueHistory",
         "blueprint": "service", "entity": "a", "properties": ["cpu"]},
        {"id": "levelline", "type": "line-chart", "blueprint": "service", "entity": "a", "properties": ["scorecard#fast"]},
        {"id": "levels", "type": "scorecard-overview", "title": "Fast", "blueprint": "service", "scorecard": "fast"},
        {"id": "act", "type": "action-card-widget", "actions": [{"action": "scaffold"}]},
        {"id": "runs", "type": "runs-table", "title": "My runs"},
        {"id": "frame", "type": "iframe-widget", "title": "Grafana", "url": "https://grafana.example/d/1?x=1"}
    ]);
    app.api("POST", "/v1/pages", dashboard("ops", widgets)).await;

    let page = app.get(&mut admin, "/ui/dashboards/ops").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let html = page.unescaped();
    assert!(!html.contains("widget-error"), "no widget is misconfigured: {html}");
    let count = widget(&html, "count");
    assert!(count.contains("<p class=\"big-number\">3</p>"), "{count}");
    // cpu: a = 20 (its last write), b..f = 2+3+4+5+6.
    assert!(widget(&html, "sum").contains("<p class=\"big-number\">40 cores</p>"), "{}", widget(&html, "sum"));
    assert!(widget(&html, "avg").contains("<p class=\"big-number\">8.33</p>"), "(20+2+3)/3: {}", widget(&html, "avg"));
    let pie = widget(&html, "pie");
    for (label, n) in [("rust", 3), ("go", 2), ("python", 1), ("(no value)", 2)] {
        assert!(pie.contains(&format!("<title>{label}: {n} (")), "{label}: {pie}");
    }
    assert!(pie.contains("8 entities") && pie.matches("<path").count() == 4, "{pie}");
    // Levels: rust a,b,c have cpu; Gold needs Silver (cpu > 4): a (20) is Gold; b, c Bronze;
    // d (4) Bronze; e, f Silver; g and billing Basic.
    let levelpie = widget(&html, "levelpie");
    assert!(levelpie.contains("<title>Bronze: 3 (") && levelpie.contains("<title>Gold: 1 ("), "{levelpie}");
    let levels = widget(&html, "levels");
    for (l, n) in [("Basic", 2), ("Bronze", 3), ("Silver", 2), ("Gold", 1)] {
        assert!(levels.contains(&format!("<title>{l}: {n}</title>")), "{l}: {levels}");
    }
    assert!(levels.contains("8 entities scored"), "{levels}");
    let table = widget(&html, "table");
    assert!(table.contains("href=\"/ui/entities/service/d\"") && table.contains("href=\"/ui/entities/service/e\""));
    assert!(!table.contains("/ui/entities/service/a\""), "only go services: {table}");
    assert!(table.contains("<th>CPU</th>") && table.contains("href=\"/ui/catalog/service\""), "{table}");
    let md = widget(&html, "md");
    assert!(md.contains("<h1>Hello</h1>") && md.contains("<strong>bold</strong>"), "{md}");
    let line = widget(&html, "line");
    assert!(line.contains("<polyline") && line.contains("(4 points)"), "created + 3 updates: {line}");
    assert!(line.contains(">30<") && line.contains(">1<"), "the value range labels the axis: {line}");
    let levelline = widget(&html, "levelline");
    assert!(levelline.contains("<polyline") && levelline.contains(">Gold<"), "{levelline}");
    assert!(widget(&html, "act").contains("href=\"/ui/self-service/scaffold\">Scaffold a service</a>"));
    let runs = widget(&html, "runs");
    assert!(runs.contains("Scaffold a service") && runs.contains("/ui/runs/r_"), "{runs}");
    let frame = widget(&html, "frame");
    assert!(frame.contains("<iframe src=\"https://grafana.example/d/1?x=1\" sandbox=\"allow-scripts"), "{frame}");
    let csp = page.headers.get("content-security-policy").unwrap().to_str().unwrap().to_string();
    assert!(csp.contains("frame-src https://grafana.example;"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    // The dashboards list and the nav link to it; a page without frames keeps the plain policy.
    let list = app.get(&mut admin, "/ui/dashboards").await;
    assert!(list.unescaped().contains("href=\"/ui/dashboards/ops\">Dash ops</a>"), "{}", list.text);
    assert!(!list.headers.get("content-security-policy").unwrap().to_str().unwrap().contains("frame-src"));
}

#[tokio::test]
async fn misconfigured_widgets_explain_themselves_and_the_page_still_renders() {
    let Some(app) = app().await else { return };
    seed(&app).await;
    let mut admin = app.admin().await;
    let widgets = json!([
        {"id": "nobp", "type": "entities-pie-chart", "blueprint": "nope", "property": "lang"},
        {"id": "noprop", "type": "entities-pie-chart", "blueprint": "service", "property": "colour"},
        {"id": "badq", "type": "entities-number-chart", "blueprint": "service",
         "dataset": {"combinator": "and", "rules": [{"property": "lang", "operator": "resembles", "value": 1}]}},
        {"id": "median", "type": "entities-number-chart", "blueprint": "service", "chartType": "aggregateByProperty",
         "func": "median", "property": "cpu"},
        {"id": "js", "type": "iframe-widget", "url": "javascript:alert(1)"},
        {"id": "oauth", "type": "iframe-widget", "url": "https://x.example", "urlType": "protected"},
        {"id": "noaction", "type": "action-card-widget", "actions": [{"action": "ghost"}]},
        {"id": "nosc", "type": "scorecard-overview", "blueprint": "service", "scorecard": "ghost"},
        {"id": "graph", "type": "graph-entities-explorer"},
        {"id": "ok", "type": "entities-number-chart", "blueprint": "service"}
    ]);
    app.api("POST", "/v1/pages", dashboard("broken", widgets)).await;
    let page = app.get(&mut admin, "/ui/dashboards/broken").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.unescaped();
    let expect = [
        ("nobp", "<code>blueprint</code> no blueprint \"nope\" exists"),
        ("noprop", "<code>property</code> blueprint \"service\" has no stored property \"colour\""),
        ("badq", "<code>dataset.rules[0].operator</code>"),
        ("median", "<code>func</code> \"median\" is not one of sum, average, min, max"),
        ("js", "<code>url</code> must be http or https, not javascript"),
        ("oauth", "<code>authorizationUrl</code> is required for a protected frame"),
        ("noaction", "<code>actions[0].action</code> no action \"ghost\" exists"),
        ("nosc", "<code>scorecard</code> blueprint \"service\" has no scorecard \"ghost\""),
        ("graph", "<code>type</code> \"graph-entities-explorer\" widgets are not rendered"),
    ];
    for (id, msg) in expect {
        let w = widget(&html, id);
        assert!(w.contains("class=\"error widget-error\"") && w.contains(msg), "{id}: {w}");
    }
    let ok = widget(&html, "ok");
    assert!(ok.contains("<p class=\"big-number\">7</p>") && !ok.contains("widget-error"), "{ok}");
    assert!(!page.headers.get("content-security-policy").unwrap().to_str().unwrap().contains("frame-src"));
}

#[tokio::test]
async fn user_content_is_escaped_and_other_organizations_dashboards_are_not_found() {
    let Some(app) = app().await else { return };
    seed(&app).await;
    let mut admin = app.admin().await;
    let evil = "<img src=x onerror=alert(1)>";
    app.api(
        "POST",
        "/v1/blueprints/service/entities",
        json!({"identifier": "h", "title": evil, "properties": {"lang": evil}}),
    )
    .await;
    let widgets = json!([
        {"id": "md", "type": "markdown", "title": evil, "description": evil,
         "markdown": format!("{evil}\n\n<script>alert(1)</script> [x](javascript:alert(1))")},
        {"id": "pie", "type": "entities-pie-chart", "title": "t", "blueprint": "service", "property": "lang"},
        {"id": "bad", "type": "entities-pie-chart", "blueprint": evil, "property": "lang"}
    ]);
    let mut page = dashboard("evil", widgets);
    page["title"] = json!(evil);
    app.api("POST", "/v1/pages", page).await;
    let res = app.get(&mut admin, "/ui/dashboards/evil").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(!res.text.contains("<img src=x") && !res.text.contains("<script>alert"), "{}", res.text);
    assert!(!res.text.contains("href=\"javascript:"), "{}", res.text);
    assert!(
        res.text.matches("&lt;img src=x").count() >= 5,
        "title, heading, description, markdown, pie, error: {}",
        res.text
    );

    // Another organization's page of the same name: not found there.
    let org_b = portolan_store::OrgId("org_other".into());
    app.store.create_org(&org_b, "other", "2024-01-01T00:00:00.000Z").await.unwrap();
    let ctx = portolan_store::AuditCtx {
        user_id: "t".into(),
        origin: "API".into(),
        at: "2024-01-01T00:00:00.000Z".into(),
        depth: 0,
    };
    let data = json!({"type": "dashboard", "title": "Secret", "widgets": []});
    app.store.save_page(&org_b, "secret", &data, portolan_store::SaveMode::Create, &ctx).await.unwrap();
    assert_eq!(app.get(&mut admin, "/ui/dashboards/secret").await.status, StatusCode::NOT_FOUND);
    let list = app.get(&mut admin, "/ui/dashboards").await;
    assert!(!list.text.contains("Secret"), "{}", list.text);
    assert_eq!(app.get(&mut admin, "/ui/dashboards/nothing").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn home_shows_catalog_counts_until_the_organization_has_a_home_page() {
    let Some(app) = app().await else { return };
    seed(&app).await;
    let mut member = app.user("usr_m", "m@example.com", "member").await;
    let r = app.get(&mut member, "/ui").await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/ui/home".to_string()));
    let home = app.get(&mut member, "/ui/home").await;
    assert_eq!(home.status, StatusCode::OK);
    let html = home.unescaped();
    assert!(html.contains("<a href=\"/ui/catalog/service\">Service</a></td><td class=\"num\">7</td>"), "{html}");
    app.api(
        "POST",
        "/v1/pages",
        json!({"identifier": "start", "type": "home", "title": "Welcome",
        "widgets": [{"id": "n", "type": "entities-number-chart", "title": "Services", "blueprint": "service"}]}),
    )
    .await;
    let home = app.get(&mut member, "/ui/home").await.unescaped();
    assert!(home.contains("<h1>Welcome</h1>") && !home.contains("home-counts"), "{home}");
    assert!(widget(&home, "n").contains("<p class=\"big-number\">7</p>"), "{home}");
}
