//! Changelog destinations (issue 14, port-api.md §1.8): each change of an entity of a blueprint
//! with a webhook `changelogDestination` is sent there, signed, as Port's changelog message;
//! changes are recorded with the write (a node without job workers keeps them for one with),
//! arrive in order per entity, and a failing endpoint holds back only the entity whose change
//! failed, retried until it is delivered, with the failure visible.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode as AxStatus;
use portolan_server::ApiConfig;
use portolan_server::secrets::SecretsKey;
use serde_json::{Value, json};

use crate::helpers::{Recorder, TestApp};

fn config(workers: usize) -> ApiConfig {
    with_key(workers, SecretsKey::generate())
}

fn with_key(workers: usize, key: SecretsKey) -> ApiConfig {
    ApiConfig {
        secrets_key: Some(key),
        job_poll: Duration::from_millis(50),
        job_workers: workers,
        changelog_retry: Duration::from_millis(300),
        ..ApiConfig::default()
    }
}

async fn model(app: &TestApp, url: &str) {
    app.blueprint(json!({"identifier": "vm", "title": "VM",
        "schema": {"properties": {"size": {"type": "number"}}},
        "changelogDestination": {"type": "WEBHOOK", "url": url}}))
        .await;
}

async fn put(app: &TestApp, id: &str, size: i64) {
    let r = app
        .post("/v1/blueprints/vm/entities?upsert=true", json!({"identifier": id, "properties": {"size": size}}))
        .await;
    assert!(r.status.is_success(), "{}", r.body);
}

fn summary(m: &Value) -> (String, String, Value) {
    (
        m["action"].as_str().unwrap().to_string(),
        m["context"]["entity"].as_str().unwrap().to_string(),
        m["diff"]["after"]["properties"]["size"].clone(),
    )
}

#[tokio::test]
async fn every_change_is_sent_signed_in_ports_shape_in_order() {
    let Some(app) = TestApp::spawn_with(config(2)).await else { return };
    let be = Recorder::start().await;
    model(&app, &format!("{}/changes", be.url)).await;
    put(&app, "vm-1", 1).await;
    put(&app, "vm-1", 2).await;
    put(&app, "vm-1", 2).await; // nothing changed: no message
    assert_eq!(app.delete("/v1/blueprints/vm/entities/vm-1").await.status.as_u16(), 200);
    let got = be.wait_for("/changes", 3).await;
    let seen: Vec<_> = got.iter().map(summary).collect();
    assert_eq!(
        seen,
        [
            ("CREATE".into(), "vm-1".into(), json!(1)),
            ("UPDATE".into(), "vm-1".into(), json!(2)),
            ("DELETE".into(), "vm-1".into(), Value::Null),
        ]
    );
    let m = &got[1];
    assert_eq!((m["resourceType"].as_str(), m["status"].as_str()), (Some("entity"), Some("SUCCESS")));
    assert_eq!(m["context"]["blueprint"], "vm");
    assert_eq!(m["diff"]["before"]["properties"]["size"], 1);
    assert!(m["trigger"]["at"].is_string() && m["trigger"]["by"]["orgId"].is_string(), "{m}");
    let call = &be.received("/changes")[0];
    assert!(call.headers.get("x-port-signature").is_some_and(|s| s.to_str().unwrap().starts_with("v1,")));
    let r = app.get("/v1/blueprints/vm/changelog").await;
    assert_eq!(r.body["changelog"]["pending"], 0, "{}", r.body);
    assert_eq!(r.body["changelog"]["delivered"], true);
}

/// A backend that answers 503 for entity `down` while `failing` is set, and records the
/// `(entity, size)` of every change it accepts.
struct Flaky {
    url: String,
    failing: Arc<Mutex<bool>>,
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Flaky {
    async fn start(down: &'static str) -> Flaky {
        let failing = Arc::new(Mutex::new(true));
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let (f, g) = (failing.clone(), got.clone());
        let app = axum::Router::new().fallback(move |axum::Json(m): axum::Json<Value>| {
            let (f, g) = (f.clone(), g.clone());
            async move {
                let entity = m["context"]["entity"].as_str().unwrap_or_default().to_string();
                if entity == down && *f.lock().unwrap() {
                    return AxStatus::SERVICE_UNAVAILABLE;
                }
                g.lock().unwrap().push((entity, m["diff"]["after"]["properties"]["size"].clone()));
                AxStatus::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Flaky { url, failing, got }
    }

    fn got(&self) -> Vec<(String, Value)> {
        self.got.lock().unwrap().clone()
    }

    async fn wait(&self, pred: impl Fn(&[(String, Value)]) -> bool) -> Vec<(String, Value)> {
        for _ in 0..200 {
            if pred(&self.got()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.got()
    }
}

#[tokio::test]
async fn a_failing_change_holds_back_only_its_entity_and_is_retried_until_delivered() {
    let Some(app) = TestApp::spawn_with(config(2)).await else { return };
    let hook = Flaky::start("stuck").await;
    model(&app, &hook.url).await;
    put(&app, "stuck", 1).await;
    put(&app, "stuck", 2).await;
    put(&app, "fine", 1).await;
    put(&app, "fine", 2).await;
    let got = hook.wait(|g| g.len() >= 2).await;
    assert_eq!(got, [("fine".into(), json!(1)), ("fine".into(), json!(2))], "the other entity is not held back");

    // The failure is visible, with the endpoint's answer; nothing of `stuck` went out of order.
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app.get("/v1/blueprints/vm/changelog").await.body["changelog"].clone();
        if status["failing"][0]["attempts"].as_u64() >= Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["pending"], 2, "{status}");
    assert_eq!(status["failing"][0]["entity"], "stuck");
    assert!(status["failing"][0]["lastError"].as_str().unwrap().ends_with("answered 503"), "{status}");
    assert!(status["failing"][0]["attempts"].as_u64().unwrap() >= 2, "retried: {status}");
    let r = app.get("/v1/jobs?limit=100").await;
    let queued = r.body["jobs"].as_array().unwrap().iter().filter(|j| j["status"] == "queued").count();
    assert!(queued <= 2, "one chain of retries, not one per attempt: {}", r.body);

    *hook.failing.lock().unwrap() = false;
    let got = hook.wait(|g| g.len() >= 4).await;
    assert_eq!(
        &got[2..],
        [("stuck".to_string(), json!(1)), ("stuck".to_string(), json!(2))],
        "in order once it recovers"
    );
    let r = app.get("/v1/blueprints/vm/changelog").await;
    assert_eq!(
        (r.body["changelog"]["pending"].as_u64(), r.body["changelog"]["failing"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn changes_are_kept_with_the_write_until_a_node_delivers_them() {
    // This node runs no jobs: the changes wait in the database.
    let key = SecretsKey::generate();
    let Some(app) = TestApp::spawn_with(with_key(0, key.clone())).await else { return };
    let be = Recorder::start().await;
    model(&app, &format!("{}/changes", be.url)).await;
    for i in 0..5 {
        put(&app, "vm-1", i).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(be.calls("/changes").is_empty());
    let r = app.get("/v1/blueprints/vm/changelog").await;
    assert_eq!(r.body["changelog"]["pending"], 5, "{}", r.body);
    // A node with workers (as after a restart) delivers them, in order.
    app.extra_node(with_key(2, key)).await;
    let got = be.wait_for("/changes", 5).await;
    let sizes: Vec<Value> = got.iter().map(|m| m["diff"]["after"]["properties"]["size"].clone()).collect();
    assert_eq!(sizes, [json!(0), json!(1), json!(2), json!(3), json!(4)]);

    // A blueprint without a destination records nothing; an agent destination is not ours.
    app.blueprint(json!({"identifier": "plain", "title": "Plain"})).await;
    let r = app.get("/v1/blueprints/plain/changelog").await;
    assert!(r.body["changelog"]["note"].as_str().unwrap().contains("no changelogDestination"), "{}", r.body);
    app.blueprint(json!({"identifier": "private", "title": "Private",
        "changelogDestination": {"type": "WEBHOOK", "url": "http://agent-side/hook", "agent": true}}))
        .await;
    let r = app.get("/v1/blueprints/private/changelog").await;
    assert_eq!(r.body["changelog"]["delivered"], false);
    assert!(r.body["changelog"]["note"].as_str().unwrap().contains("Kafka"), "{}", r.body);
    assert_eq!(app.get("/v1/blueprints/nope/changelog").await.status.as_u16(), 404);
}

/// A slow endpoint is not called one change at a time: the changes of different entities are
/// sent concurrently (one entity's still in order, as the tests above show).
#[tokio::test]
async fn changes_of_different_entities_are_sent_concurrently() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(app) = TestApp::spawn_with(config(2)).await else { return };
    let (now, max, done) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m, d) = (now.clone(), max.clone(), done.clone());
    let slow = axum::Router::new().fallback(move || {
        let (n, m, d) = (n.clone(), m.clone(), d.clone());
        async move {
            m.fetch_max(n.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            d.fetch_add(1, Ordering::SeqCst);
            AxStatus::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, slow).await });
    model(&app, &url).await;
    // One bulk write: six entities' changes recorded together, claimed in one batch.
    let entities: Vec<Value> =
        (0..6).map(|i| json!({"identifier": format!("vm-{i}"), "properties": {"size": i}})).collect();
    let r = app.post("/v1/blueprints/vm/entities/bulk", json!({"entities": entities})).await;
    assert!(r.status.is_success(), "{}", r.body);
    for _ in 0..200 {
        if done.load(Ordering::SeqCst) >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done.load(Ordering::SeqCst), 6, "every change delivered");
    assert!(max.load(Ordering::SeqCst) >= 2, "the calls were made one at a time");
}
