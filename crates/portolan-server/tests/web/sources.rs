//! The data-sources pages: the integrations list, an integration's page (resyncs, config
//! versions, event log filtered by level and time, paged), the mapping editor (validation at the
//! field, CSRF, admins only, saved and audited as the API's PATCH …/config) and the mapping
//! playground — and that hostile log lines and configs render inert.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::{Browser, Page, WebApp};

const ID: &str = "gh-int";

fn config() -> Value {
    json!({"deleteDependentEntities": true, "createMissingRelatedEntities": true,
           "resources": [{"kind": "repo", "selector": {"query": ".archived | not"},
                          "port": {"entity": {"mappings": {"identifier": ".name", "title": ".full_name",
                                   "blueprint": "\"thing\"", "properties": {"size": ".size"}}}}}]})
}

/// The `thing` blueprint, the integration, a resync, some log lines and kind examples — all
/// through the API, as Ocean sends them.
async fn setup(app: &WebApp) {
    app.api(
        "POST",
        "/v1/blueprints",
        json!({"identifier": "thing", "title": "Thing",
        "schema": {"properties": {"size": {"type": "number"}}}}),
    )
    .await;
    app.api(
        "POST",
        "/v1/integration",
        json!({"installationId": ID, "installationAppType": "github",
        "version": "1.2.3", "changelogDestination": {}, "config": config()}),
    )
    .await;
    let rs = |status: &str| {
        json!({"status": status, "lastResyncStart": "2024-11-10T00:00:00+00:00",
                                   "lastResyncEnd": null, "nextResync": null, "intervalInMinuets": null})
    };
    app.api("PATCH", &format!("/v1/integration/{ID}/resync-state"), rs("running")).await;
    app.api("POST", &format!("/v1/integration/{ID}/logs"), json!({"logs": [
        {"message": "fetching repositories", "level": "INFO", "timestamp": "2024-11-10T08:00:00.000000Z"},
        {"message": "rate limited by GitHub", "level": "WARNING", "timestamp": "2024-11-10T08:10:00.000000Z"},
        {"message": "<script>alert('log')</script> failed", "level": "ERROR", "timestamp": "2024-11-10T08:20:00.000000Z",
         "extra": {"repo": "<img src=x onerror=alert(1)>"}},
        {"message": "second failure", "level": "error", "timestamp": "2024-11-10T09:30:00.000000Z"},
        {"message": "done", "level": "INFO", "timestamp": "2024-11-10T09:40:00.000000Z"}
    ]}))
    .await;
    app.api("PATCH", &format!("/v1/integration/{ID}/resync-state"), rs("completed")).await;
    app.api(
        "POST",
        &format!("/v1/integration/{ID}/kinds/repo/examples"),
        json!({"examples": [
        {"name": "cart", "full_name": "acme/cart", "size": 10, "archived": false},
        {"name": "old", "full_name": "acme/old", "size": 1, "archived": true}]}),
    )
    .await;
}

/// The `data-level` of each row of the event log, in order.
fn log_levels(p: &Page) -> Vec<String> {
    let t = &p.text[p.text.find("id=\"log\"").expect("the log table")..];
    t.split("data-level=\"").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect()
}

fn log_ids(p: &Page) -> Vec<String> {
    let t = &p.text[p.text.find("id=\"log\"").expect("the log table")..];
    t.split("data-id=\"").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect()
}

fn next_link(p: &Page) -> Option<String> {
    let i = p.text.find("rel=\"next\"")?;
    let href = p.text[..i].rsplit("href=\"").next()?.split('"').next()?;
    Some(href.replace("&amp;", "&").replace("&#x2f;", "/"))
}

async fn member(app: &WebApp) -> Browser {
    app.user("usr_member", "member@example.com", "member").await
}

#[tokio::test]
async fn the_list_shows_integrations_with_their_resync_and_a_place_for_webhooks() {
    let Some(app) = WebApp::spawn().await else { return };
    let mut b = app.admin().await;
    let empty = app.get(&mut b, "/ui/data-sources").await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert!(empty.text.contains("id=\"no-integrations\""));
    setup(&app).await;
    let p = app.get(&mut b, "/ui/data-sources").await;
    assert_eq!(p.status, StatusCode::OK);
    let row = &p.text[p.text.find(&format!("data-integration=\"{ID}\"")).expect("the integration's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(&format!("href=\"&#x2f;ui&#x2f;data-sources&#x2f;{ID}\"")), "{row}");
    assert!(row.contains("<td>github</td>") && row.contains("<td>1.2.3</td>"), "{row}");
    assert!(row.contains(">completed<"), "the last resync's state: {row}");
    assert!(row.contains("0 written, 0 rejected, 0 deleted"), "the last resync's counts: {row}");
    assert!(p.text.contains("id=\"webhooks\""), "the webhooks section is there");
    assert!(p.text.contains("href=\"/ui/data-sources\""), "the navigation links the page");
    let mut anon = Browser::default();
    assert_eq!(app.get(&mut anon, "/ui/data-sources").await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.get(&mut b, "/ui/data-sources/nope").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_event_log_filters_by_level_and_time_and_pages() {
    let Some(app) = WebApp::spawn().await else { return };
    setup(&app).await;
    let mut b = app.admin().await;
    let path = format!("/ui/data-sources/{ID}");
    let all = app.get(&mut b, &path).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let levels = log_levels(&all);
    // 5 shipped lines, the server's resync_started / resync_finished lines, newest first.
    assert_eq!(levels.len(), 7, "{levels:?}");
    assert!(all.text.contains("id=\"resync-history\""), "the resync history");
    assert!(all.text.contains("id=\"config-versions\"") && all.text.contains("v1 (current)"));
    assert!(all.text.contains("fetching repositories"));

    let errors = app.get(&mut b, &format!("{path}?level=ERROR")).await;
    assert_eq!(log_levels(&errors), ["ERROR", "ERROR"], "only errors (levels are upper-cased on ingest)");
    assert!(errors.text.contains("second failure") && !errors.text.contains("fetching repositories"));
    assert!(errors.text.contains("value=\"ERROR\" checked"), "the filter is shown as set");
    let two = app.get(&mut b, &format!("{path}?level=ERROR&level=WARNING")).await;
    assert_eq!(log_levels(&two), ["ERROR", "ERROR", "WARNING"]);

    let window = app.get(&mut b, &format!("{path}?from=2024-11-10T08%3A05&to=2024-11-10T09%3A30")).await;
    let text = window.text.clone();
    assert!(text.contains("rate limited") && text.contains("second failure"), "{text}");
    assert!(!text.contains("fetching repositories") && !text.contains(">done<"), "outside the window");
    let bad = app.get(&mut b, &format!("{path}?from=yesterday")).await;
    assert!(bad.text.contains("must be a time like"), "a bad time is explained");
    let none = app.get(&mut b, &format!("{path}?level=FATAL")).await;
    assert!(none.text.contains("id=\"log-empty\""));

    // Pages of 2, following "Older": every line once, newest first.
    let mut seen = Vec::new();
    let mut next = Some(format!("{path}?limit=2"));
    let mut pages = 0;
    while let Some(p) = next {
        let page = app.get(&mut b, &p).await;
        let ids = log_ids(&page);
        assert!(ids.len() <= 2);
        seen.extend(ids);
        next = next_link(&page);
        pages += 1;
        assert!(pages < 10);
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, log_ids(&all), "the pages together are the whole log, in order");
}

#[tokio::test]
async fn hostile_log_lines_and_configs_render_inert() {
    let Some(app) = WebApp::spawn().await else { return };
    setup(&app).await;
    let mut hostile = config();
    hostile["resources"][0]["kind"] = json!("</textarea><script>alert('kind')</script>");
    hostile["resources"][0]["port"]["entity"]["mappings"]["title"] = json!("\"<img src=x onerror=alert(2)>\"");
    app.api("PATCH", &format!("/v1/integration/{ID}/config"), json!({"config": hostile})).await;
    app.api("POST", &format!("/v1/integration/{ID}/kinds/{}/examples", "x"), json!({"examples": []})).await;
    let mut b = app.admin().await;
    for path in [
        format!("/ui/data-sources/{ID}"),
        format!("/ui/data-sources/{ID}/mapping"),
        format!("/ui/data-sources/{ID}/mapping?format=yaml"),
        format!("/ui/data-sources/{ID}/playground"),
        "/ui/data-sources".to_string(),
    ] {
        let p = app.get(&mut b, &path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.text);
        let t = &p.text;
        assert!(!t.contains("<script>alert"), "{path}: {t}");
        assert!(!t.contains("<img src"), "{path}");
        assert!(!t.contains("</textarea><script"), "{path}");
        assert!(p.headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    }
    let log = app.get(&mut b, &format!("/ui/data-sources/{ID}?level=ERROR")).await;
    assert!(log.text.contains("&lt;script&gt;alert("), "the message is shown as text");
}

#[tokio::test]
async fn the_mapping_editor_validates_at_the_field_and_saves_as_the_api_does() {
    let Some(app) = WebApp::spawn().await else { return };
    setup(&app).await;
    let mut b = app.admin().await;
    let path = format!("/ui/data-sources/{ID}/mapping");
    let form = app.get(&mut b, &path).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text.contains("id=\"mapping-form\"") && form.text.contains(".archived | not"));
    let yaml = app.get(&mut b, &format!("{path}?format=yaml")).await;
    assert!(yaml.text.contains("kind: repo"), "{}", yaml.text);
    let csrf = form.csrf_field();
    let version = || async {
        app.api("GET", &format!("/v1/integration/{ID}"), json!(null)).await["integration"]["configVersion"].clone()
    };
    assert_eq!(version().await, 1);

    let post = |b: &mut Browser, fields: Vec<(&'static str, String)>| {
        let fields = fields.clone();
        let path = path.clone();
        let app = &app;
        let mut b = b.clone();
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post(&mut b, &path, &f).await
        }
    };
    // CSRF: no token, or a wrong one, is refused and changes nothing.
    let good = serde_json::to_string(&config()).unwrap();
    let none = post(&mut b, vec![("format", "json".into()), ("config", good.clone())]).await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    let wrong =
        post(&mut b, vec![("_csrf", "forged".into()), ("format", "json".into()), ("config", good.clone())]).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // Members may look, not change.
    let mut m = member(&app).await;
    let mform = app.get(&mut m, &path).await;
    assert!(mform.text.contains("readonly") && !mform.text.contains("<button type=\"submit\">Save"));
    let mcsrf = mform.csrf_field();
    let refused = app.post(&mut m, &path, &[("_csrf", &mcsrf), ("format", "json"), ("config", &good)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(version().await, 1, "nothing was saved");

    let broken =
        post(&mut b, vec![("_csrf", csrf.clone()), ("format", "json".into()), ("config", "{nope".into())]).await;
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(broken.text.contains("not valid JSON") && broken.text.contains("{nope"), "the text is kept");

    let mut bad = config();
    bad["resources"][0]["selector"]["query"] = json!(".archived |");
    bad["resources"][0]["port"]["entity"]["mappings"]["blueprint"] = json!("\"nosuch\"");
    bad["resources"][0]["port"]["entity"]["mappings"]["properties"]["size"] = json!(".size | nosuchfn");
    bad["resources"].as_array_mut().unwrap().push(json!({"port": {"entity": {"mappings": {"identifier": ".id"}}}}));
    let refused = post(
        &mut b,
        vec![("_csrf", csrf.clone()), ("format", "json".into()), ("config", serde_json::to_string(&bad).unwrap())],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    for p in [
        "config.resources[0].selector.query",
        "config.resources[0].port.entity.mappings.blueprint",
        "config.resources[0].port.entity.mappings.properties.size",
        "config.resources[1].kind",
        "config.resources[1].port.entity.mappings.blueprint",
    ] {
        assert!(refused.text.contains(&format!("data-path=\"{p}\"")), "{p}: {}", refused.text);
    }
    assert!(refused.text.contains("there is no blueprint"));
    assert!(refused.text.contains("jq compile error"));
    assert_eq!(version().await, 1);

    // A valid mapping, as YAML: saved through the API's handler (version, event log, audit).
    let mut changed = config();
    changed["resources"][0]["port"]["entity"]["mappings"]["properties"]["size"] = json!(".size * 2");
    let text = portolan_core::export::value_to_yaml(&changed);
    let saved = post(&mut b, vec![("_csrf", csrf.clone()), ("format", "yaml".into()), ("config", text)]).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    assert_eq!(saved.location(), format!("/ui/data-sources/{ID}?saved=1"));
    assert_eq!(version().await, 2);
    let stored = app.api("GET", &format!("/v1/integration/{ID}"), json!(null)).await;
    assert_eq!(stored["integration"]["config"], changed);
    let logs = app.api("GET", &format!("/v1/integration/{ID}/logs?event=config_changed"), json!(null)).await;
    assert_eq!(logs["logs"].as_array().unwrap().len(), 1, "the event log says the config changed");
    let audit = app.get(&mut b, "/ui/audit?resources=integration&action=UPDATE").await;
    assert!(audit.text.contains("admin@example.com (UI)"), "audited as the user: {}", audit.text);

    // Restore v1 (a new version 3 with v1's config).
    let page = app.get(&mut b, &format!("/ui/data-sources/{ID}")).await;
    assert!(page.text.contains("versions&#x2f;1&#x2f;restore"));
    let restore_path = format!("/ui/data-sources/{ID}/versions/1/restore");
    assert_eq!(app.post(&mut b, &restore_path, &[]).await.status, StatusCode::FORBIDDEN, "CSRF");
    let restored = app.post(&mut b, &restore_path, &[("_csrf", &csrf)]).await;
    assert_eq!(restored.status, StatusCode::SEE_OTHER, "{}", restored.text);
    assert_eq!(version().await, 3);
    let stored = app.api("GET", &format!("/v1/integration/{ID}"), json!(null)).await;
    assert_eq!(stored["integration"]["config"], config());
}

#[tokio::test]
async fn the_playground_shows_every_fields_result_or_error() {
    let Some(app) = WebApp::spawn().await else { return };
    setup(&app).await;
    let mut b = app.admin().await;
    let path = format!("/ui/data-sources/{ID}/playground");
    let first = app.get(&mut b, &path).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(first.text.contains("acme&#x2f;cart"), "the first stored example is loaded: {}", first.text);
    assert!(first.text.contains("hx-post=") && first.text.contains("id=\"playground-result\""));
    let second = app.get(&mut b, &format!("{path}?resource=0&example=1")).await;
    assert!(second.text.contains("acme&#x2f;old"));
    let csrf = first.csrf_field();

    let item = r#"{"name": "cart", "full_name": "acme/cart", "size": 10, "archived": false}"#;
    let mapping = r#"{"identifier": ".name", "blueprint": "\"thing\"",
        "properties": {"size": ".size * 2", "broken": ".size | nosuchfn", "fails": ".name | tonumber"}}"#;
    let mut hx = b.clone();
    hx.headers.push(("hx-request".into(), "true".into()));
    let form = [("_csrf", csrf.as_str()), ("item", item), ("selector", ".archived | not"), ("mapping", mapping)];
    let frag = app.post(&mut hx, &path, &form).await;
    assert_eq!(frag.status, StatusCode::OK, "{}", frag.text);
    assert!(!frag.text.contains("<html"), "htmx gets the fragment only");
    let row = |p: &str| {
        let t =
            &frag.text[frag.text.find(&format!("data-path=\"{p}\"")).unwrap_or_else(|| panic!("{p}: {}", frag.text))..];
        t[..t.find("</tr>").unwrap()].to_string()
    };
    assert!(row("identifier").contains("&quot;cart&quot;"), "{}", row("identifier"));
    assert!(row("properties.size").contains(">20<"), "{}", row("properties.size"));
    assert!(row("properties.broken").contains("jq compile error"), "{}", row("properties.broken"));
    assert!(row("properties.fails").contains("jq runtime error"), "{}", row("properties.fails"));
    assert!(frag.text.contains("the item is mapped"));
    let skipped = app
        .post(&mut hx, &path, &[("_csrf", &csrf), ("item", item), ("selector", ".archived"), ("mapping", mapping)])
        .await;
    assert!(skipped.text.contains("the item is skipped"));
    let bad_item =
        app.post(&mut hx, &path, &[("_csrf", &csrf), ("item", "{x"), ("selector", "true"), ("mapping", mapping)]).await;
    assert!(bad_item.text.contains("The item is not valid JSON"));
    // Without htmx: the whole page with the result; without the token: refused.
    let full = app.post(&mut b, &path, &form).await;
    assert!(full.text.contains("<html") && full.text.contains("data-path=\"properties.size\""));
    let forged = app.post(&mut hx, &path, &form[1..]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(app.api("GET", &format!("/v1/integration/{ID}"), json!(null)).await["integration"]["configVersion"], 1);
}
