//! Run timeouts (issue 14): a run with no terminal status after its action's
//! `runTimeoutSeconds` (else the organization's, else a day) ends FAILURE with a summary that
//! names the timeout and the last thing that happened; deadlines survive a restart, and two
//! nodes end a run once.

use std::time::Duration;

use axum::http::StatusCode as AxStatus;
use chrono::{DateTime, Utc};
use portolan_server::ApiConfig;
use portolan_server::secrets::SecretsKey;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_invalid, detail};

fn config() -> ApiConfig {
    ApiConfig { secrets_key: Some(SecretsKey::generate()), job_poll: Duration::from_millis(50), ..ApiConfig::default() }
}

/// A backend that accepts every call (202) and never reports back: the run stays in progress.
async fn silent_backend() -> String {
    let app = axum::Router::new().fallback(|| async { (AxStatus::ACCEPTED, axum::Json(json!({"queued": true}))) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/deploy", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn model(app: &TestApp) {
    app.blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {}}})).await;
}

fn action(id: &str, url: &str, timeout: Option<Value>) -> Value {
    let mut a = json!({
        "identifier": id, "title": id,
        "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
            "userInputs": {"properties": {}}},
        "invocationMethod": {"type": "WEBHOOK", "url": url, "synchronized": false, "method": "POST"}
    });
    if let Some(t) = timeout {
        a["runTimeoutSeconds"] = t;
    }
    a
}

async fn start_run(app: &TestApp, action: &str) -> (String, Value) {
    let r = app.post(&format!("/v1/actions/{action}/runs"), json!({"properties": {}})).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    (r.body["run"]["id"].as_str().unwrap().to_string(), r.body["run"].clone())
}

async fn log_lines(app: &TestApp, id: &str) -> Vec<Value> {
    app.get(&format!("/v1/actions/runs/{id}/logs")).await.body["runLogs"].as_array().cloned().unwrap_or_default()
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

fn seconds_between(run: &Value) -> i64 {
    (at(&run["timeoutAt"]) - at(&run["createdAt"])).num_seconds()
}

fn summary(run: &Value) -> String {
    run["summary"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_run_nobody_ends_fails_at_its_timeout_naming_it_and_the_last_call() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    model(&app).await;
    let url = silent_backend().await;
    assert_eq!(app.post("/v1/actions", action("deploy", &url, Some(json!(1)))).await.status.as_u16(), 201);
    // An automation sees the timeout as RUN_UPDATED.
    let note = json!({"identifier": "note_timeouts", "title": "Note timeouts",
        "trigger": {"type": "automation", "event": {"type": "RUN_UPDATED", "actionIdentifier": "deploy"},
            "condition": {"type": "JQ", "combinator": "and", "expressions": [".diff.after.statusLabel == \"Timed out\""]}},
        "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
            "mapping": {"identifier": "{{ .event.diff.after.id }}", "title": "{{ .event.diff.after.summary }}"}}});
    assert_eq!(app.post("/v1/actions", note).await.status.as_u16(), 201);
    let (id, created) = start_run(&app, "deploy").await;
    assert_eq!(seconds_between(&created), 1, "{created}");
    assert_eq!(created["status"], json!("IN_PROGRESS"));
    assert!(created.get("_runTimeout").is_none(), "the server's bookkeeping is not shown: {created}");

    let ended = app.wait_run(&id, |r| r["status"] != json!("IN_PROGRESS")).await;
    assert_eq!((ended["status"].clone(), ended["statusLabel"].clone()), (json!("FAILURE"), json!("Timed out")));
    let s = summary(&ended);
    assert!(s.contains("within 1 second (the action's runTimeoutSeconds"), "{s}");
    assert!(s.contains(&format!("the last call, POST {url}, was answered 202")), "{s}");
    assert_eq!(ended["timeoutAt"], Value::Null, "an ended run has no deadline");
    assert!(ended["endedAt"].is_string());
    assert_eq!(ended["updatedBy"], json!("portolan-timer"));
    let logs = log_lines(&app, &id).await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(
        (logs[0]["message"].as_str(), logs[0]["terminationStatus"].as_str()),
        (Some(s.as_str()), Some("FAILURE"))
    );

    let mut noted = Value::Null;
    for _ in 0..100 {
        noted = app.get(&format!("/v1/blueprints/service/entities/{id}")).await.body;
        if noted["ok"] == json!(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(noted["entity"]["title"], json!(s), "the RUN_UPDATED automation ran: {noted}");

    // The backend reporting late is told the run has ended.
    let late = app.patch(&format!("/v1/actions/runs/{id}"), json!({"status": "SUCCESS"})).await;
    assert_invalid(&late, "status");
    assert!(detail(&late, "status").contains("already ended with FAILURE"), "{}", late.body);
}

#[tokio::test]
async fn the_summary_quotes_the_last_log_line_or_says_no_agent_claimed_the_run() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    model(&app).await;
    let url = silent_backend().await;
    app.post("/v1/actions", action("logged", &url, Some(json!(1)))).await;
    let mut agent = action("agent", "http://10.0.0.1/private", Some(json!(1)));
    agent["invocationMethod"]["agent"] = json!(true);
    assert_eq!(app.post("/v1/actions", agent).await.status.as_u16(), 201);

    let (logged, _) = start_run(&app, "logged").await;
    let r = app.post(&format!("/v1/actions/runs/{logged}/logs"), json!({"message": "waiting for the canary"})).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    let (agent_run, _) = start_run(&app, "agent").await;

    let ended = app.wait_run(&logged, |r| r["status"] == json!("FAILURE")).await;
    assert!(summary(&ended).contains("was \"waiting for the canary\""), "{}", summary(&ended));
    let ended = app.wait_run(&agent_run, |r| r["status"] == json!("FAILURE")).await;
    assert!(summary(&ended).contains("no execution agent claimed it"), "{}", summary(&ended));
    assert_eq!(ended["pendingExecution"], json!(false), "an agent polling now does not get it");
    let claim = json!({"installationId": "_PORT_EXEC_AGENT", "limit": 100, "invocationMethod": "WEBHOOK"});
    assert_eq!(app.post("/v1/actions/runs/claim-pending", claim).await.body["runs"], json!([]));
}

#[tokio::test]
async fn the_organization_sets_the_default_and_both_settings_are_checked() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    model(&app).await;
    let url = silent_backend().await;
    for bad in [json!(0), json!(2_592_001), json!("1h"), json!(2.5)] {
        let r = app.post("/v1/actions", action("bad", &url, Some(bad.clone()))).await;
        assert_invalid(&r, "runTimeoutSeconds");
        let r = app.patch("/v1/organization", json!({"settings": {"runTimeoutSeconds": bad}})).await;
        assert_invalid(&r, "settings.runTimeoutSeconds");
    }
    // Neither sets one: a day.
    app.post("/v1/actions", action("plain", &url, None)).await;
    let (_, r) = start_run(&app, "plain").await;
    assert_eq!(seconds_between(&r), 24 * 3600, "{r}");
    // `null` on the action is the organization's.
    app.post("/v1/actions", action("inherits", &url, Some(Value::Null))).await;
    let r = app.patch("/v1/organization", json!({"settings": {"runTimeoutSeconds": 1}})).await;
    assert_eq!(r.body["organization"]["settings"]["runTimeoutSeconds"], json!(1), "{}", r.body);
    let (id, r) = start_run(&app, "inherits").await;
    assert_eq!(seconds_between(&r), 1, "{r}");
    let ended = app.wait_run(&id, |r| r["status"] == json!("FAILURE")).await;
    assert!(summary(&ended).contains("(the organization's settings.runTimeoutSeconds"), "{}", summary(&ended));
    // The action's own timeout wins over the organization's.
    app.post("/v1/actions", action("own", &url, Some(json!(3600)))).await;
    assert_eq!(seconds_between(&start_run(&app, "own").await.1), 3600);
}

#[tokio::test]
async fn a_run_that_ends_in_time_is_left_alone() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    model(&app).await;
    let url = silent_backend().await;
    app.post("/v1/actions", action("quick", &url, Some(json!(1)))).await;
    let (id, _) = start_run(&app, "quick").await;
    let r = app.patch(&format!("/v1/actions/runs/{id}"), json!({"status": "SUCCESS", "summary": "deployed"})).await;
    assert_eq!((r.body["run"]["status"].clone(), r.body["run"]["timeoutAt"].clone()), (json!("SUCCESS"), Value::Null));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = app.run(&id).await;
    assert_eq!((after["status"].clone(), after["summary"].clone()), (json!("SUCCESS"), json!("deployed")));
    assert!(log_lines(&app, &id).await.is_empty());
}

#[tokio::test]
async fn deadlines_outlive_the_node_and_two_nodes_end_a_run_once() {
    // A node without workers (or one that is down) ends nothing.
    let first = ApiConfig { job_workers: 0, ..config() };
    let Some(app) = TestApp::spawn_with(first.clone()).await else { return };
    model(&app).await;
    // A backend that takes 30 s to answer: the nodes' invocations are still calling when the
    // timeouts fire, whichever runs first (an unreachable address answered 404 through CI's
    // network, and a fast answer would end the runs before their timers).
    let app_slow = axum::Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        (AxStatus::ACCEPTED, axum::Json(json!({"queued": true})))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow = format!("http://{}/deploy", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app_slow).await });
    app.post("/v1/actions", action("deploy", &slow, Some(json!(1)))).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(start_run(&app, "deploy").await.0);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.run(&ids[0]).await["status"], json!("IN_PROGRESS"), "no timers run on this node");

    // Two nodes start later over the same database: each run ends once.
    let workers = ApiConfig { job_workers: 2, ..first.clone() };
    app.extra_node(workers.clone()).await;
    app.extra_node(workers).await;
    for id in &ids {
        let ended = app.wait_run(id, |r| r["status"] == json!("FAILURE")).await;
        assert_eq!(ended["statusLabel"], json!("Timed out"), "{ended}");
        assert!(summary(&ended).contains("invocation has not completed"), "{}", summary(&ended));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in &ids {
        assert_eq!(log_lines(&app, id).await.len(), 1, "run {id} was ended once");
    }
}
