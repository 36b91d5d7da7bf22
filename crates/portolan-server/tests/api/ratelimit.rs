//! The per-organization rate limit: Port's `x-ratelimit-*` headers and a JSON 429.

use portolan_server::ApiConfig;
use portolan_store::OrgId;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Res, TestApp, assert_error};

fn header(r: &Res, name: &str) -> String {
    r.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap().to_string()
}

#[tokio::test]
async fn over_the_limit_is_429_json_with_rate_limit_headers() {
    let Some(app) = TestApp::spawn_with(ApiConfig { rate_limit_per_minute: 3, ..Default::default() }).await else {
        return;
    };
    for remaining in [2, 1, 0] {
        let r = app.get("/v1/blueprints").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(header(&r, "x-ratelimit-limit"), "3");
        assert_eq!(header(&r, "x-ratelimit-remaining"), remaining.to_string());
        assert_eq!(header(&r, "x-ratelimit-period"), "60");
        let reset: u64 = header(&r, "x-ratelimit-reset").parse().unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    let r = app.post("/v1/blueprints", json!({"identifier": "svc", "title": "Svc"})).await;
    assert_error(&r, 429, "rate_limited");
    assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&r, "x-ratelimit-limit"), "3");
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert!(r.headers.contains_key("x-trace-id"));
    assert!(header(&r, "content-type").starts_with("application/json"));
    // The refused write did not happen.
    assert_eq!(app.store.list_blueprints(&OrgId("org_org-a".into())).await.unwrap().len(), 2, "_user and _team only");
    // Health checks are not limited; another organization has its own budget.
    let health = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let b = app.other_org_token("org-b").await;
    let r = app.req_as(&b, "GET", "/v1/blueprints", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(header(&r, "x-ratelimit-remaining"), "2");
}
