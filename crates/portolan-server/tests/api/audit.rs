//! `GET /v1/audit-log`: every write (and every refused write) is recorded, with filters.

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_invalid};

fn summary(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["resourceType"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["identifier"].as_str().unwrap()
            )
        })
        .collect()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn pause() {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
}

/// Writes of every kind, successful and refused, in a known order.
async fn history(app: &TestApp) {
    let ok = |s: StatusCode| assert!(s.is_success(), "{s}");
    let bad = |s: StatusCode| assert!(s.is_client_error(), "{s}");
    let bp = json!({"identifier": "svc", "title": "Svc", "schema": {"properties": {"lang": {"type": "string"}}}});
    ok(app.post("/v1/blueprints", bp).await.status);
    bad(app.post("/v1/blueprints", json!({"identifier": "bad bp", "title": "X"})).await.status);
    ok(app.patch("/v1/blueprints/svc", json!({"title": "Service"})).await.status);
    ok(app.post("/v1/blueprints/svc/entities", json!({"identifier": "a", "properties": {"lang": "go"}})).await.status);
    bad(app.post("/v1/blueprints/svc/entities", json!({"identifier": "b", "properties": {"lang": 5}})).await.status);
    ok(app.patch("/v1/blueprints/svc/entities/a", json!({"properties": {"lang": "rust"}})).await.status);
    bad(app.patch("/v1/blueprints/svc/entities/ghost", json!({"title": "x"})).await.status);
    bad(app.delete("/v1/blueprints/svc").await.status);
    ok(app.delete("/v1/blueprints/svc/entities/a").await.status);
    bad(app.delete("/v1/blueprints/svc/entities/a").await.status);
    ok(app.delete("/v1/blueprints/svc").await.status);
}

#[tokio::test]
async fn every_write_and_every_refusal_is_recorded_newest_first() {
    let Some(app) = TestApp::spawn().await else { return };
    history(&app).await;
    let all = app.audit("").await;
    assert_eq!(
        summary(&all),
        vec![
            "blueprint DELETE SUCCESS svc",
            "entity DELETE FAILURE a",
            "entity DELETE SUCCESS a",
            "blueprint DELETE FAILURE svc",
            "entity UPDATE FAILURE ghost",
            "entity UPDATE SUCCESS a",
            "entity CREATE FAILURE b",
            "entity CREATE SUCCESS a",
            "blueprint UPDATE SUCCESS svc",
            "blueprint CREATE FAILURE bad bp",
            "blueprint CREATE SUCCESS svc",
        ]
    );
    for r in &all {
        assert_eq!(r["trigger"]["by"], json!({"orgId": "org_org-a", "userId": app.client_id}), "{r}");
        assert_eq!(r["trigger"]["origin"], json!("API"));
        assert!(r["trigger"]["at"].as_str().unwrap().ends_with('Z'), "{r}");
        assert!(r["id"].as_str().is_some_and(|i| !i.is_empty()), "{r}");
        let failed = r["status"] == json!("FAILURE");
        assert_eq!(r["message"].as_str().is_some_and(|m| !m.is_empty()), failed, "{r}");
    }
    let failure = &all[6];
    assert_eq!(failure["context"], json!({"blueprint": "svc", "entity": "b"}));
    assert!(failure["message"].as_str().unwrap().contains("properties.lang"), "{failure}");
    assert!(all[3]["message"].as_str().unwrap().contains("entities"), "{}", all[3]);
    assert!(all[4]["message"].as_str().unwrap().contains("ghost"), "{}", all[4]);
}

#[tokio::test]
async fn diffs_hold_before_and_after() {
    let Some(app) = TestApp::spawn().await else { return };
    history(&app).await;
    let update = &app.audit("entity=a&action=UPDATE&status=SUCCESS").await[0];
    assert_eq!(update["diff"]["before"]["properties"], json!({"lang": "go"}));
    assert_eq!(update["diff"]["after"]["properties"], json!({"lang": "rust"}));
    assert_eq!(update["diff"]["after"]["identifier"], json!("a"));
    let create = &app.audit("entity=a&action=CREATE").await[0];
    assert_eq!(create["diff"]["before"], json!(null));
    assert_eq!(create["diff"]["after"]["properties"], json!({"lang": "go"}));
    let delete = &app.audit("entity=a&action=DELETE&status=SUCCESS").await[0];
    assert_eq!(delete["diff"]["after"], json!(null));
    assert_eq!(delete["diff"]["before"]["properties"], json!({"lang": "rust"}));
    let bp = &app.audit("resources=blueprint&action=UPDATE").await[0];
    assert_eq!((&bp["diff"]["before"]["title"], &bp["diff"]["after"]["title"]), (&json!("Svc"), &json!("Service")));
    assert_eq!(bp["context"]["blueprint"], json!("svc"));
}

#[tokio::test]
async fn filters() {
    let Some(app) = TestApp::spawn().await else { return };
    let t0 = now();
    pause().await;
    history(&app).await;
    pause().await;
    let t1 = now();
    pause().await;
    app.blueprint(json!({"identifier": "late", "title": "Late"})).await;
    let n = |q: &'static str| {
        let app = &app;
        async move { summary(&app.audit(q).await) }
    };
    assert_eq!(
        n("identifier=a&status=SUCCESS").await,
        vec!["entity DELETE SUCCESS a", "entity UPDATE SUCCESS a", "entity CREATE SUCCESS a"]
    );
    assert_eq!(n("entity=b").await, vec!["entity CREATE FAILURE b"]);
    assert_eq!(n("blueprint=svc&resources=blueprint").await.len(), 4);
    assert_eq!(n("blueprint=svc").await.len(), 10);
    assert_eq!(n("resources=entity").await.len(), 6);
    assert_eq!(n("resources=entity&resources=blueprint&action=DELETE").await.len(), 4);
    assert_eq!(
        n("resources[]=blueprint&status=FAILURE").await,
        vec!["blueprint DELETE FAILURE svc", "blueprint CREATE FAILURE bad bp"]
    );
    assert_eq!(
        n("action=CREATE&status=SUCCESS").await,
        vec!["blueprint CREATE SUCCESS late", "entity CREATE SUCCESS a", "blueprint CREATE SUCCESS svc"]
    );
    assert_eq!(n("resources=run").await.len(), 0);
    assert_eq!(n("origin=API&limit=2").await, vec!["blueprint CREATE SUCCESS late", "blueprint DELETE SUCCESS svc"]);
    assert_eq!(n("origin=UI").await.len(), 0);
    let window = app.audit(&format!("from={t0}&to={t1}")).await;
    assert_eq!(window.len(), 11);
    let after = app.audit(&format!("from={}", t1.replace('Z', "%2B00:00"))).await;
    assert_eq!(summary(&after), vec!["blueprint CREATE SUCCESS late"]);
    assert_eq!(app.audit(&format!("to={t0}")).await.len(), 0);
    assert_eq!(app.audit("limit=1").await.len(), 1);
    assert_eq!(app.audit("limit=10000").await.len(), 12);
}

#[tokio::test]
async fn bad_filter_values_are_422() {
    let Some(app) = TestApp::spawn().await else { return };
    for (q, field) in [
        ("action=REMOVE", "action"),
        ("action=create", "action"),
        ("status=OK", "status"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=ten", "limit"),
        ("limit=-5", "limit"),
        ("from=yesterday", "from"),
        ("to=2024-13-01T00:00:00Z", "to"),
        ("resources=entities", "resources"),
        ("resources=entity&resources=nope", "resources"),
    ] {
        let r = app.get(&format!("/v1/audit-log?{q}")).await;
        assert_eq!(r.status.as_u16(), 422, "{q}: {}", r.body);
        assert_invalid(&r, field);
    }
    let r = app.get("/v1/audit-log?from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z").await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    assert_invalid(&r, "to");
}
