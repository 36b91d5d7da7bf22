//! Webhooks on the data-sources pages: the list (enabled, mappings, ingest URL, last delivery)
//! and a webhook's page (configuration without the secret, mappings, event log filtered by
//! level and paged) — with hostile titles and mappings rendered inert.

use std::time::Duration;

use portolan_server::ApiConfig;
use portolan_server::secrets::SecretsKey;
use portolan_store::{IntegrationLog, OrgId};
use reqwest::StatusCode;
use serde_json::json;

use crate::app::{Browser, ORG, WebApp};

const SECRET: &str = "hunter2-the-webhook-secret";

async fn app() -> Option<WebApp> {
    WebApp::spawn_with(ApiConfig {
        secrets_key: Some(SecretsKey::generate()),
        job_poll: Duration::from_millis(50),
        ..ApiConfig::default()
    })
    .await
}

/// A webhook with a hostile title and mapping, and a disabled one; `n` log lines on the first.
async fn setup(app: &WebApp, n: usize) -> String {
    app.api("POST", "/v1/blueprints", json!({"identifier": "pr", "title": "PR", "schema": {"properties": {}}})).await;
    let made = app
        .api(
            "POST",
            "/v1/webhooks",
            json!({"identifier": "gh", "title": "<script>alert(1)</script>", "enabled": true,
               "mappings": [{"blueprint": "pr",
                   "filter": ".body.x == \"<img src=x onerror=alert(2)>\"",
                   "entity": {"identifier": ".body.id | tostring", "title": "\"<b>bold</b>\""}}],
               "security": {"secret": SECRET, "signatureHeaderName": "x-sig", "signatureAlgorithm": "sha256"}}),
        )
        .await;
    app.api("POST", "/v1/webhooks", json!({"identifier": "off", "title": "Off", "enabled": false, "mappings": []}))
        .await;
    let levels = ["INFO", "ERROR", "WARNING"];
    let lines: Vec<IntegrationLog> = (0..n)
        .map(|i| IntegrationLog {
            id: String::new(),
            at: format!("2024-11-10T08:{:02}:00.000000Z", i % 60),
            level: levels[i % 3].into(),
            source: "server".into(),
            event: if i % 3 == 0 { "delivery_received" } else { "mapping_failed" }.into(),
            resync_id: Some(format!("job_{i}")),
            message: format!("line {i} <script>alert('log')</script>"),
            extra: json!({}),
        })
        .collect();
    app.store.append_webhook_logs(&OrgId(ORG.into()), "gh", &lines).await.unwrap();
    made["integration"]["webhookKey"].as_str().unwrap().to_string()
}

fn log_ids(text: &str) -> Vec<String> {
    let t = &text[text.find("id=\"log\"").expect("the log table")..];
    t.split("data-id=\"").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect()
}

fn log_levels(text: &str) -> Vec<String> {
    let t = &text[text.find("id=\"log\"").expect("the log table")..];
    t.split("data-level=\"").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect()
}

fn next_link(text: &str) -> Option<String> {
    let i = text.find("rel=\"next\"")?;
    let href = text[..i].rsplit("href=\"").next()?.split('"').next()?;
    Some(href.replace("&amp;", "&").replace("&#x2f;", "/"))
}

#[tokio::test]
async fn the_list_shows_webhooks_with_their_ingest_url_and_last_delivery() {
    let Some(app) = app().await else { return };
    let mut b = app.admin().await;
    let empty = app.get(&mut b, "/ui/data-sources").await;
    assert!(empty.text.contains("id=\"no-webhooks\""), "{}", empty.text);
    let key = setup(&app, 4).await;
    let p = app.get(&mut b, "/ui/data-sources").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    let text = p.unescaped();
    let row = &text[text.find("data-webhook=\"gh\"").expect("the webhook's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("href=\"/ui/data-sources/webhooks/gh\""), "{row}");
    assert!(row.contains(">enabled<") && row.contains("<td>1</td>"), "enabled, one mapping: {row}");
    assert!(row.contains(&format!("/v1/ingest/{key}")), "the ingest URL: {row}");
    assert!(!row.contains(">never<"), "a delivery was received: {row}");
    assert!(row.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the title is escaped: {row}");
    let off = &text[text.find("data-webhook=\"off\"").expect("the disabled webhook")..];
    let off = &off[..off.find("</tr>").unwrap()];
    assert!(off.contains(">disabled<") && off.contains(">never<"), "{off}");
    assert!(!p.text.contains("<script>alert(1)"), "no live script");
    assert!(!p.text.contains(SECRET));
}

#[tokio::test]
async fn a_webhooks_page_shows_its_configuration_without_the_secret_and_renders_hostile_values_inert() {
    let Some(app) = app().await else { return };
    setup(&app, 3).await;
    let mut b = app.admin().await;
    let p = app.get(&mut b, "/ui/data-sources/webhooks/gh").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert!(!p.text.contains(SECRET), "the secret is never rendered");
    assert!(!p.text.contains("********"), "not even masked: only whether one is set");
    let stored = app.store.get_webhook(&OrgId(ORG.into()), "gh").await.unwrap().unwrap();
    assert!(!p.text.contains(stored.secret.as_deref().unwrap()), "nor its ciphertext");
    assert!(p.text.contains("set (never shown)"));
    assert!(p.text.contains("x-sig") && p.text.contains("sha256"), "the signature settings");
    let mappings = &p.text[p.text.find("id=\"mappings\"").expect("the mappings table")..];
    assert!(mappings.contains("<code>pr</code>"), "the mapping's blueprint");
    for live in ["<script>alert(1)", "<img src=x", "<b>bold</b>", "<script>alert('log')"] {
        assert!(!p.text.contains(live), "{live} is escaped");
    }
    assert!(p.text.contains("&lt;img src=x onerror=alert(2)&gt;"), "the filter is shown, escaped");
    assert!(p.text.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "the title is shown, escaped");
    assert_eq!(log_ids(&p.text).len(), 3);
    assert!(p.text.contains("job_0"), "a line's delivery");
    // Members read it too; unknown webhooks are 404; signed-out users go to sign in.
    let mut anon = Browser::default();
    assert_eq!(app.get(&mut anon, "/ui/data-sources/webhooks/gh").await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.get(&mut b, "/ui/data-sources/webhooks/nope").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_webhooks_event_log_filters_by_level_and_time_and_pages() {
    let Some(app) = app().await else { return };
    setup(&app, 12).await;
    let mut b = app.admin().await;
    let errors = app.get(&mut b, "/ui/data-sources/webhooks/gh?level=ERROR").await;
    assert_eq!(log_levels(&errors.text), vec!["ERROR"; 4], "{}", errors.text);
    let timed = app.get(&mut b, "/ui/data-sources/webhooks/gh?from=2024-11-10T08:03&to=2024-11-10T08:05").await;
    assert_eq!(log_ids(&timed.text).len(), 3, "minutes 3, 4 and 5");
    // Pages of 5: every line once, newest first, in three pages.
    let first = app.get(&mut b, "/ui/data-sources/webhooks/gh?limit=5").await;
    let mut seen = log_ids(&first.text);
    assert_eq!(seen.len(), 5);
    let second = app.get(&mut b, &next_link(&first.text).expect("older lines")).await;
    let page2 = log_ids(&second.text);
    assert_eq!(page2.len(), 5);
    assert!(page2.iter().all(|id| !seen.contains(id)), "a different page: {seen:?} {page2:?}");
    seen.extend(page2);
    let third = app.get(&mut b, &next_link(&second.text).expect("older lines")).await;
    seen.extend(log_ids(&third.text));
    assert!(next_link(&third.text).is_none(), "the last page");
    let n = |id: &String| id.trim_start_matches("wl_").parse::<i64>().unwrap();
    assert_eq!(seen.len(), 12);
    assert!(seen.windows(2).all(|w| n(&w[0]) > n(&w[1])), "newest first: {seen:?}");
    let bad = app.get(&mut b, "/ui/data-sources/webhooks/gh?from=yesterday").await;
    assert!(bad.text.contains("must be a time like"), "the filter's error is shown");
}
