//! `GET /metrics`: off without a token, bearer-token protected, Prometheus' text format, route
//! templates (never raw URLs) as labels, and series that move with requests and jobs.

use portolan_server::ApiConfig;
use portolan_store::{NewJob, OrgId};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

const TOKEN: &str = "metrics-token-0123456789";

/// One sample line: name, labels (in order), value.
type Sample = (String, Vec<(String, String)>, f64);

/// A strict reader of the text exposition format (0.0.4): every line is `# HELP`, `# TYPE` or
/// a sample `name{l="v",…} value`; every sample's family has a TYPE line before it.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.is_empty() && !line.starts_with('#'), "unexpected line {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad name in {line:?}");
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(typed.contains(name) || typed.contains(family), "no TYPE before {line:?}");
        let mut parsed = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, v) = rest.split_once("=\"").expect("label=\"value\"");
            let mut end = 0;
            let bytes = v.as_bytes();
            while bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            parsed.push((k.to_string(), v[..end].to_string()));
            rest = v[end + 1..].trim_start_matches(',');
        }
        out.push((name.to_string(), parsed, value));
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, ls, _)| n == name && labels.iter().all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|s| s.2)
}

async fn scrape(app: &TestApp, token: &str) -> (StatusCode, String) {
    let r = app.http.get(format!("{}/metrics", app.base)).bearer_auth(token).send().await.unwrap();
    let status = r.status();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    if status == StatusCode::OK {
        assert_eq!(ct.as_deref(), Some("text/plain; version=0.0.4; charset=utf-8"));
    }
    (status, text)
}

#[tokio::test]
async fn metrics_are_off_without_a_token() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app.get("/metrics").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["ok"], false);
    assert!(r.body["message"].as_str().unwrap().contains("PORTOLAN_METRICS_TOKEN"), "{}", r.body);
}

#[tokio::test]
async fn metrics_need_the_token_and_count_requests_jobs_and_pools() {
    let config = ApiConfig { metrics_token: Some(TOKEN.into()), job_workers: 0, ..ApiConfig::default() };
    let Some(app) = TestApp::spawn_with(config).await else { return };
    // The API's own bearer token is not the metrics token.
    let r = app.get("/metrics").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(scrape(&app, "wrong-token-0123456789").await.0, StatusCode::UNAUTHORIZED);

    assert_eq!(app.get("/v1/blueprints").await.status, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(app.get("/v1/blueprints/no-such-blueprint-xyz").await.status, StatusCode::NOT_FOUND);
    }
    // Entity writes: two bulk requests, each answered by the store.
    app.model().await;
    for i in 0..2 {
        let body = json!({"entities": [{"identifier": format!("m{i}"), "properties": {"language": "go"}}]});
        let r = app.post("/v1/blueprints/service/entities/bulk", body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let org = OrgId("org_org-a".into());
    for i in 0..2 {
        let job = NewJob { kind: "metrics-test-kind".into(), payload: json!({"n": i}), max_attempts: 1 };
        app.store.enqueue_job(&org, &job).await.unwrap();
    }

    let (status, text) = scrape(&app, TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let s = parse(&text);
    let route = [("route", "/v1/blueprints/{id}"), ("method", "GET"), ("status", "404")];
    assert_eq!(value(&s, "portolan_http_requests_total", &route), Some(3.0), "{text}");
    assert_eq!(value(&s, "portolan_http_request_duration_seconds_count", &route), Some(3.0), "{text}");
    let inf = [("route", "/v1/blueprints/{id}"), ("status", "404"), ("le", "+Inf")];
    assert_eq!(value(&s, "portolan_http_request_duration_seconds_bucket", &inf), Some(3.0), "{text}");
    let list = [("route", "/v1/blueprints"), ("method", "GET"), ("status", "200")];
    assert_eq!(value(&s, "portolan_http_requests_total", &list), Some(1.0), "{text}");
    assert!(!text.contains("no-such-blueprint-xyz"), "a raw URL leaked into a label:\n{text}");
    assert!(!text.contains("org-a"), "an organization leaked into a label:\n{text}");

    let kind = [("kind", "metrics-test-kind")];
    assert_eq!(value(&s, "portolan_jobs_queued", &kind), Some(2.0), "{text}");
    assert_eq!(value(&s, "portolan_jobs_running", &kind), Some(0.0), "{text}");
    assert!(value(&s, "portolan_jobs_oldest_queued_age_seconds", &kind).is_some_and(|a| a >= 0.0), "{text}");
    assert!(value(&s, "portolan_db_pool_connections", &[("state", "open")]).is_some_and(|n| n >= 1.0), "{text}");
    let requests = value(&s, "portolan_entity_write_requests_total", &[]).unwrap_or(0.0);
    let transactions = value(&s, "portolan_entity_write_transactions_total", &[]).unwrap_or(0.0);
    assert!(requests >= 2.0 && (1.0..=requests).contains(&transactions), "{text}");
    for counter in [
        "portolan_webhook_deliveries_total",
        "portolan_webhook_mapping_failures_total",
        "portolan_ocean_resyncs_total",
        "portolan_jq_limits_hit_total",
    ] {
        assert_eq!(value(&s, counter, &[]), Some(0.0), "{counter}\n{text}");
    }
    // The scrape itself is counted by the next one.
    let (_, text) = scrape(&app, TOKEN).await;
    let s = parse(&text);
    let scrape_route = [("route", "/metrics"), ("status", "200")];
    assert!(value(&s, "portolan_http_requests_total", &scrape_route).is_some(), "{text}");

    // Prometheus' own checker, where its package is installed (Debian: prometheus).
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            // promtool exits non-zero for lint warnings too; only a parse error fails here.
            assert!(!said.contains("error while linting") && !said.contains("parse"), "promtool: {said}\n{text}");
        }
        Err(_) => eprintln!("promtool not installed: the exposition was checked by this test's own reader only"),
    }
}
