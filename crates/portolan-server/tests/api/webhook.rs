//! Custom webhook integrations: `/v1/webhooks` CRUD and validation, the unauthenticated ingest
//! URL (signatures, limits, replays, disabled webhooks), processing by the durable
//! `webhook_delivery` job, and the webhook's event log with Port's messages.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use portolan_server::ApiConfig;
use portolan_server::secrets::SecretsKey;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Res, TestApp, assert_error, assert_invalid};

const SECRET: &str = "It's a Secret to Everybody";

async fn app() -> Option<TestApp> {
    TestApp::spawn_with(ApiConfig {
        secrets_key: Some(SecretsKey::generate()),
        job_poll: Duration::from_millis(50),
        ..ApiConfig::default()
    })
    .await
}

fn hmac_hex(algo: &str, secret: &str, body: &[u8]) -> String {
    let bytes = match algo {
        "sha1" => {
            let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(body);
            m.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(body);
            m.finalize().into_bytes().to_vec()
        }
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A GitHub-style pull-request webhook (docs/reference/port-api.md §7.2).
fn github_webhook() -> Value {
    json!({
        "identifier": "prMapper", "title": "Pull Request Mapper", "description": "PR events from GitHub",
        "icon": "Github", "enabled": true,
        "mappings": [
            {"blueprint": "pullRequest", "operation": "create",
             "filter": ".headers.\"x-github-event\" == \"pull_request\" and .body.action != \"deleted\"",
             "entity": {"identifier": ".body.pull_request.id | tostring", "title": ".body.pull_request.title",
                        "properties": {"author": ".body.pull_request.user.login", "commits": ".body.pull_request.commits"},
                        "relations": {}}},
            {"blueprint": "pullRequest", "operation": {"type": "delete", "deleteDependents": false},
             "filter": ".body.action == \"deleted\"",
             "entity": {"identifier": ".body.pull_request.id | tostring"}}
        ],
        "security": {"secret": SECRET, "signatureHeaderName": "X-Hub-Signature-256",
                     "signatureAlgorithm": "sha256", "signaturePrefix": "sha256=",
                     "requestIdentifierPath": ".headers.\"x-github-delivery\""}
    })
}

fn pr_event(id: u64, title: &str, author: &str) -> Value {
    json!({"action": "opened", "pull_request": {"id": id, "title": title, "user": {"login": author}, "commits": 3}})
}

impl TestApp {
    async fn pr_blueprint(&self) {
        self.blueprint(json!({"identifier": "pullRequest", "title": "Pull Request",
            "schema": {"properties": {"author": {"type": "string"}, "commits": {"type": "number", "maximum": 100}}}}))
            .await;
    }

    /// Create a webhook; its ingest path.
    async fn webhook(&self, body: Value) -> String {
        let r = self.post("/v1/webhooks", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let url = r.body["integration"]["url"].as_str().unwrap();
        url.strip_prefix(&self.base).unwrap().to_string()
    }

    /// POST to an ingest path without a bearer token.
    async fn deliver(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Res {
        let mut rb = self.http.post(format!("{}{path}", self.base));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let res = rb.body(body).send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = serde_json::from_str(&res.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        Res { status, body, headers }
    }

    /// A signed GitHub delivery.
    async fn github(&self, path: &str, delivery: &str, event: &str, body: &Value) -> Res {
        let raw = body.to_string().into_bytes();
        let sig = format!("sha256={}", hmac_hex("sha256", SECRET, &raw));
        let h = [
            ("content-type", "application/json"),
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", sig.as_str()),
        ];
        self.deliver(path, &h, raw).await
    }

    /// Wait for a delivery's job to finish; the job.
    async fn processed(&self, r: &Res) -> Value {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let id = r.body["deliveryId"].as_str().unwrap();
        for _ in 0..200 {
            let j = self.get(&format!("/v1/jobs/{id}")).await.body["job"].clone();
            if ["succeeded", "failed"].contains(&j["status"].as_str().unwrap_or_default()) {
                return j;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("delivery {id} was not processed");
    }

    async fn webhook_logs(&self, id: &str, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/webhooks/{id}/logs?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["logs"].as_array().unwrap().clone()
    }
}

fn messages(logs: &[Value]) -> Vec<String> {
    logs.iter().map(|l| l["message"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn webhooks_are_created_read_changed_and_deleted_in_ports_shape() {
    let Some(app) = app().await else { return };
    let r = app.post("/v1/webhooks", github_webhook()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let w = &r.body["integration"];
    let key = w["webhookKey"].as_str().unwrap();
    assert!(key.len() >= 32, "at least 128 random bits: {key}");
    assert_eq!(w["url"], json!(format!("{}/v1/ingest/{key}", app.base)));
    assert_eq!(w["security"]["secret"], json!("********"), "never returned in clear");
    assert_eq!((&w["enabled"], &w["integrationType"]), (&json!(true), &json!("custom")));
    assert_eq!(w["mappings"][1]["operation"]["deleteDependents"], json!(false));
    let r = app.get("/v1/webhooks/prMapper").await;
    assert_eq!((r.status, &r.body["integration"]["webhookKey"]), (StatusCode::OK, &json!(key)));
    assert!(!r.body.to_string().contains(SECRET));
    let r = app.get("/v1/webhooks").await;
    assert_eq!(r.body["integrations"].as_array().unwrap().len(), 1);
    assert_error(&app.post("/v1/webhooks", github_webhook()).await, 409, "conflict");

    // PATCH is partial: the secret and the key stay.
    let r =
        app.patch("/v1/webhooks/prMapper", json!({"title": "PRs", "security": {"signaturePrefix": "sha256="}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["integration"]["title"], &r.body["integration"]["description"]),
        (&json!("PRs"), &json!("PR events from GitHub"))
    );
    assert_eq!(
        (&r.body["integration"]["security"]["secret"], &r.body["integration"]["webhookKey"]),
        (&json!("********"), &json!(key))
    );
    // PUT of what GET returned keeps the secret (the mask); PUT without it removes it.
    let mut back = r.body["integration"].clone();
    back["description"] = json!("changed");
    let r = app.put("/v1/webhooks/prMapper", back).await;
    assert_eq!(
        (r.status, &r.body["integration"]["security"]["secret"]),
        (StatusCode::OK, &json!("********")),
        "{}",
        r.body
    );
    let r = app.put("/v1/webhooks/prMapper", json!({"title": "No checks", "security": {}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["integration"]["security"].clone(), &r.body["integration"]["mappings"]),
        (json!({}), &json!([]))
    );
    let r = app.put("/v1/webhooks/prMapper", json!({"identifier": "other"})).await;
    assert_invalid(&r, "identifier");

    // Every change is audited, without the secret.
    let audits = app.audit("resources=webhook").await;
    let actions: Vec<&str> = audits.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["UPDATE", "UPDATE", "UPDATE", "CREATE"], "{audits:?}");
    assert!(!Value::Array(audits).to_string().contains(SECRET));
    let r = app.delete("/v1/webhooks/prMapper").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_error(&app.get("/v1/webhooks/prMapper").await, 404, "not_found");
    assert_error(&app.delete("/v1/webhooks/prMapper").await, 404, "not_found");
    assert_eq!(app.audit("resources=webhook").await[0]["action"], json!("DELETE"));
    // Another organization sees none of it.
    let other = app.other_org_token("b").await;
    assert_eq!(app.req_as(&other, "GET", "/v1/webhooks", None).await.body["integrations"], json!([]));
}

#[tokio::test]
async fn webhook_validation_names_each_field_and_compiles_jq_at_save_time() {
    let Some(app) = app().await else { return };
    let mut w = github_webhook();
    w["identifier"] = json!("a-webhook-identifier-longer-than-30");
    w["description"] = json!("x".repeat(201));
    w["mappings"][0]["entity"]["properties"]["author"] = json!(".body.pull_request.user.login |||");
    w["mappings"][0]["itemsToParse"] = json!("[.body");
    w["mappings"][1]["operation"] = json!("upsert");
    w["security"]["signatureAlgorithm"] = json!("md5");
    let r = app.post("/v1/webhooks", w).await;
    for path in [
        "identifier",
        "description",
        "mappings[0].entity.properties.author",
        "mappings[0].itemsToParse",
        "mappings[1].operation",
        "security.signatureAlgorithm",
    ] {
        assert_invalid(&r, path);
    }
    assert!(crate::helpers::detail(&r, "mappings[0].entity.properties.author").contains("jq"), "{}", r.body);
    let r = app
        .post(
            "/v1/webhooks",
            json!({"identifier": "x", "mappings": [{"blueprint": "b", "entity": {}}],
        "security": {"signatureAlgorithm": "sha256"}}),
        )
        .await;
    for path in ["mappings[0].entity.identifier", "security.signatureHeaderName", "security.secret"] {
        assert_invalid(&r, path);
    }
    assert_invalid(&app.post("/v1/webhooks", json!({"identifier": "x", "title": "t".repeat(31)})).await, "title");
    assert_error(
        &app.post("/v1/webhooks", json!({"identifier": "x", "security": {"secret": "********"}})).await,
        422,
        "invalid_request",
    );
    assert_eq!(app.get("/v1/webhooks").await.body["integrations"], json!([]), "nothing was saved");
}

#[tokio::test]
async fn without_a_master_key_a_webhook_secret_is_refused_with_the_setting_to_fix() {
    let Some(app) = TestApp::spawn().await else { return };
    let r = app.post("/v1/webhooks", github_webhook()).await;
    assert_error(&r, 503, "secrets_key_missing");
    assert!(r.body["message"].as_str().unwrap().contains("PORTOLAN_SECRETS_KEY"), "{}", r.body);
    let r = app.post("/v1/webhooks", json!({"identifier": "open", "security": {}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "a webhook without a secret needs no key: {}", r.body);
}

#[tokio::test]
async fn github_signed_deliveries_are_verified_processed_and_replays_ignored() {
    let Some(app) = app().await else { return };
    app.pr_blueprint().await;
    let path = app.webhook(github_webhook()).await;
    let r = app.github(&path, "d-1", "pull_request", &pr_event(101, "Fix bug", "ana")).await;
    assert_eq!(
        (r.body["ok"].clone(), r.body["duplicate"].clone(), r.body["requestId"].clone()),
        (json!(true), json!(false), json!("d-1"))
    );
    let job = app.processed(&r).await;
    assert_eq!((job["status"].clone(), job["result"]["upserted"].clone()), (json!("succeeded"), json!(1)), "{job}");
    let e = app.get("/v1/blueprints/pullRequest/entities/101").await.body["entity"].clone();
    assert_eq!((&e["title"], &e["properties"]["author"]), (&json!("Fix bug"), &json!("ana")));
    // The same delivery again (GitHub's "redeliver"): accepted, not processed again.
    let again = app.github(&path, "d-1", "pull_request", &pr_event(101, "Changed", "bob")).await;
    assert_eq!((again.status, &again.body["duplicate"]), (StatusCode::ACCEPTED, &json!(true)), "{}", again.body);
    assert_eq!(again.body["deliveryId"], r.body["deliveryId"], "the first delivery's job");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = app.get("/v1/blueprints/pullRequest/entities/101").await.body["entity"].clone();
    assert_eq!(e["title"], json!("Fix bug"), "processed once");
    assert_eq!(app.audit("entity=101").await.len(), 1, "one write in the audit log");
    let jobs = app.get("/v1/jobs?kind=webhook_delivery").await.body["jobs"].as_array().unwrap().len();
    assert_eq!(jobs, 1);
    let e_audit = &app.audit("entity=101").await[0];
    assert_eq!(e_audit["trigger"]["origin"], json!("webhook:prMapper"));
    let org = portolan_store::OrgId("org_org-a".into());
    let stored = app.store.get_entity(&org, "pullRequest", "101").await.unwrap().unwrap();
    assert_eq!(stored.datasource.as_deref(), Some("webhook:prMapper"));

    // Bad signature, missing header: 401 naming the header and algorithm; nothing stored.
    let raw = pr_event(102, "x", "y").to_string().into_bytes();
    let bad = format!("sha256={}", hmac_hex("sha256", "wrong secret", &raw));
    let r = app.deliver(&path, &[("x-hub-signature-256", &bad), ("x-github-event", "pull_request")], raw.clone()).await;
    assert_error(&r, 401, "unauthorized");
    assert!(
        r.body["message"].as_str().unwrap().contains("x-hub-signature-256")
            && r.body["message"].as_str().unwrap().contains("SHA256"),
        "{}",
        r.body
    );
    let r = app.deliver(&path, &[("x-github-event", "pull_request")], raw).await;
    assert_error(&r, 401, "unauthorized");
    assert!(
        r.body["message"].as_str().unwrap().contains("missing signature header \"x-hub-signature-256\""),
        "{}",
        r.body
    );
    assert_eq!(app.count("pullRequest").await, 1);
    let logs = app.webhook_logs("prMapper", "event=delivery_refused").await;
    assert_eq!(logs.len(), 2, "{logs:?}");
    // A filter that does not match writes nothing.
    let r = app.github(&path, "d-2", "push", &json!({"ref": "main"})).await;
    let job = app.processed(&r).await;
    assert_eq!(job["result"]["mappingsMatched"], json!(0), "{job}");
    // Unknown key, no bearer needed but the key must exist.
    let r = app.deliver("/v1/ingest/not-a-key", &[], b"{}".to_vec()).await;
    assert_error(&r, 404, "not_found");
    let received = app.webhook_logs("prMapper", "event=delivery_received").await;
    assert_eq!(received.len(), 2);
    let dup = app.webhook_logs("prMapper", "event=delivery_duplicate").await;
    assert_eq!(dup.len(), 1);
}

#[tokio::test]
async fn sha1_and_plain_signatures_and_no_security() {
    let Some(app) = app().await else { return };
    app.pr_blueprint().await;
    let mapping = json!([{"blueprint": "pullRequest", "entity": {"identifier": ".body.id", "title": ".body.t"}}]);
    let sha1 = app
        .webhook(json!({"identifier": "s1", "mappings": mapping, "security": {"secret": SECRET,
        "signatureHeaderName": "X-Hub-Signature", "signatureAlgorithm": "sha1", "signaturePrefix": "sha1="}}))
        .await;
    let plain = app
        .webhook(json!({"identifier": "pl", "mappings": mapping, "security": {"secret": SECRET,
        "signatureHeaderName": "x-token", "signatureAlgorithm": "plain"}}))
        .await;
    let open = app.webhook(json!({"identifier": "op", "mappings": mapping, "security": {}})).await;
    let raw = json!({"id": "a", "t": "A"}).to_string().into_bytes();
    let sig = format!("sha1={}", hmac_hex("sha1", SECRET, &raw));
    app.processed(&app.deliver(&sha1, &[("x-hub-signature", &sig)], raw.clone()).await).await;
    assert_error(&app.deliver(&sha1, &[("x-hub-signature", "sha1=00")], raw.clone()).await, 401, "unauthorized");
    let raw = json!({"id": "b", "t": "B"}).to_string().into_bytes();
    app.processed(&app.deliver(&plain, &[("x-token", SECRET)], raw.clone()).await).await;
    let r = app.deliver(&plain, &[("x-token", "guess")], raw.clone()).await;
    assert_error(&r, 401, "unauthorized");
    assert!(r.body["message"].as_str().unwrap().contains("plain"), "{}", r.body);
    let raw = json!({"id": "c", "t": "C"}).to_string().into_bytes();
    app.processed(&app.deliver(&open, &[], raw).await).await;
    assert_eq!(app.count("pullRequest").await, 3);
    // The plain secret arrives as a header: it is not kept with the stored delivery.
    let jobs = app.get("/v1/jobs?kind=webhook_delivery").await.body.to_string();
    assert!(!jobs.contains(SECRET), "{jobs}");
}

#[tokio::test]
async fn oversized_malformed_and_disabled_deliveries() {
    let Some(app) = app().await else { return };
    app.pr_blueprint().await;
    let path = app
        .webhook(json!({"identifier": "open", "mappings": [{"blueprint": "pullRequest", "entity": {"identifier": ".body.id"}}]}))
        .await;
    let big = json!({"id": "x", "pad": "p".repeat(512 * 1024)}).to_string().into_bytes();
    let r = app.deliver(&path, &[("content-type", "application/json")], big).await;
    assert_error(&r, 413, "payload_too_large");
    assert!(r.body["message"].as_str().unwrap().contains("512 KiB"), "{}", r.body);
    let huge = vec![b'a'; 2 * 1024 * 1024];
    assert_error(&app.deliver(&path, &[], huge).await, 413, "payload_too_large");
    let r = app.deliver(&path, &[("content-type", "application/json")], b"{\"id\": ".to_vec()).await;
    assert_error(&r, 400, "bad_request");
    assert!(r.body["message"].as_str().unwrap().contains("not valid JSON"), "{}", r.body);
    assert!(r.headers.get("x-trace-id").is_some());
    assert_eq!(app.get("/v1/jobs?kind=webhook_delivery").await.body["jobs"], json!([]), "nothing stored");
    // Disabled: 202, dropped, logged.
    assert_eq!(app.patch("/v1/webhooks/open", json!({"enabled": false})).await.status, StatusCode::OK);
    let r = app.deliver(&path, &[], json!({"id": "y"}).to_string().into_bytes()).await;
    assert_eq!((r.status, &r.body["dropped"]), (StatusCode::ACCEPTED, &json!(true)), "{}", r.body);
    assert_eq!(app.get("/v1/jobs?kind=webhook_delivery").await.body["jobs"], json!([]));
    let logs = app.webhook_logs("open", "").await;
    assert!(messages(&logs).iter().any(|m| m.contains("disabled")), "{logs:?}");
    assert_eq!(app.count("pullRequest").await, 0);
}

#[tokio::test]
async fn items_to_parse_mapping_errors_and_the_500_item_limit() {
    let Some(app) = app().await else { return };
    app.pr_blueprint().await;
    let path = app
        .webhook(json!({"identifier": "commits", "mappings": [
            {"blueprint": "pullRequest", "itemsToParse": ".body.items",
             "entity": {"identifier": ".item.id", "title": ".item.title", "properties": {"commits": ".item.n", "author": ".body.by"}}},
            {"blueprint": "pullRequest", "filter": ".body.nothing", "entity": {"identifier": ".body.id"}},
            {"blueprint": "missingBp", "entity": {"identifier": "\"x\""}}
        ]}))
        .await;
    let items = json!([{"id": "c1", "title": "one", "n": 1}, {"id": null}, {"title": "no id"},
                       {"id": "c4", "n": 1000}, {"id": "c5", "n": "many"}]);
    let r = app.deliver(&path, &[], json!({"by": "ana", "items": items}).to_string().into_bytes()).await;
    let job = app.processed(&r).await;
    assert_eq!(job["status"], json!("succeeded"), "{job}");
    assert_eq!((&job["result"]["upserted"], &job["result"]["failedTransformations"]), (&json!(1), &json!(2)), "{job}");
    assert_eq!(app.count("pullRequest").await, 1);
    let e = app.get("/v1/blueprints/pullRequest/entities/c1").await.body["entity"].clone();
    assert_eq!(e["properties"]["author"], json!("ana"), ".body is visible beside .item");
    let delivery = r.body["deliveryId"].as_str().unwrap();
    let logs = app.webhook_logs("commits", &format!("eventId={delivery}")).await;
    let msgs = messages(&logs);
    let has = |s: &str| msgs.iter().any(|m| m.contains(s));
    assert!(has("2 transformations of batch failed due to empty, null or missing values"), "{msgs:?}");
    assert!(has("Unable to find valid data for: pullRequest"), "{msgs:?}");
    assert!(has("entity \"c4\" of blueprint \"pullRequest\" was rejected") && has("properties.commits"), "{msgs:?}");
    assert!(has("entity \"c5\""), "{msgs:?}");
    assert!(has("blueprint \"missingBp\" does not exist"), "{msgs:?}");
    let rejected = app.webhook_logs("commits", "event=entity_rejected&level=ERROR").await;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(app.audit("entity=c4").await.iter().any(|a| a["status"] == json!("FAILURE")));

    // More than 500 items: the delivery fails, nothing is written, the log says why.
    let many: Vec<Value> = (0..501).map(|i| json!({"id": format!("m{i}")})).collect();
    let r = app.deliver(&path, &[], json!({"items": many}).to_string().into_bytes()).await;
    let job = app.processed(&r).await;
    assert_eq!((&job["status"], &job["attempts"]), (&json!("failed"), &json!(1)), "{job}");
    assert_eq!(app.count("pullRequest").await, 1);
    let failed = app.webhook_logs("commits", "event=delivery_failed").await;
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["message"].as_str().unwrap().contains("501 items") && failed[0]["level"] == json!("ERROR"),
        "{failed:?}"
    );
    // Filters of the log endpoint.
    assert_eq!(app.webhook_logs("commits", "limit=1").await.len(), 1);
    assert_error(&app.get("/v1/webhooks/commits/logs?level=LOUD").await, 422, "invalid_request");
    assert_error(&app.get("/v1/webhooks/nope/logs").await, 404, "not_found");
}

/// More items than one jq hand-off (the chunks are written while the next is mapped): every
/// chunk is written, failures and rejections of every chunk are counted and logged, the
/// transformations warning before the rejections, as for a single chunk.
#[tokio::test]
async fn a_delivery_of_several_chunks_writes_and_counts_every_chunk() {
    let Some(app) = app().await else { return };
    app.pr_blueprint().await;
    let path = app
        .webhook(json!({"identifier": "many", "mappings": [
            {"blueprint": "pullRequest", "itemsToParse": ".body.items",
             "entity": {"identifier": ".item.id", "properties": {"commits": ".item.n"}}}]}))
        .await;
    let n = 450;
    let failed = (0..n).filter(|i| i % 60 == 11).count();
    let rejected = (0..n).filter(|i| i % 50 == 7 && i % 60 != 11).count();
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let id = if i % 60 == 11 { Value::Null } else { json!(format!("p{i}")) };
            let commits = if i % 50 == 7 { json!("many") } else { json!(i % 100) };
            json!({"id": id, "n": commits})
        })
        .collect();
    let r = app.deliver(&path, &[], json!({"items": items}).to_string().into_bytes()).await;
    let job = app.processed(&r).await;
    assert_eq!(job["status"], json!("succeeded"), "{job}");
    let result = &job["result"];
    assert_eq!(
        (&result["upserted"], &result["rejected"], &result["failedTransformations"]),
        (&json!(n - failed - rejected), &json!(rejected), &json!(failed)),
        "{job}"
    );
    assert_eq!(app.count("pullRequest").await, (n - failed - rejected) as u64);
    assert!(rejected > 0 && failed > 0 && (0..n).any(|i| i >= 256 && i % 50 == 7 && i % 60 != 11));
    let delivery = r.body["deliveryId"].as_str().unwrap();
    let logs = app.webhook_logs("many", &format!("eventId={delivery}")).await;
    let events: Vec<&str> = logs.iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(events.iter().filter(|e| **e == "entity_rejected").count(), rejected, "{events:?}");
    assert_eq!(events.iter().filter(|e| **e == "transformations_failed").count(), 1, "{events:?}");
    let warned = events.iter().position(|e| *e == "transformations_failed").unwrap();
    let first_rejection = events.iter().position(|e| *e == "entity_rejected").unwrap();
    let processed = events.iter().position(|e| *e == "delivery_processed").unwrap();
    let (ordered, reversed) = (warned < first_rejection, warned > first_rejection);
    assert!(ordered || reversed, "{events:?}");
    // The log lists newest first or oldest first; either way the warning and the summary are on
    // the same side of the rejections as they were written.
    assert!(if ordered { processed > first_rejection } else { processed < first_rejection }, "{events:?}");
    assert!(messages(&logs).iter().any(|m| m.contains(&format!("{failed} transformations of batch failed"))));
}

#[tokio::test]
async fn the_delete_operation_deletes_with_or_without_dependents() {
    let Some(app) = app().await else { return };
    app.pr_blueprint().await;
    app.blueprint(json!({"identifier": "review", "title": "Review",
        "relations": {"pr": {"target": "pullRequest", "required": true, "many": false}}}))
        .await;
    let path = app.webhook(github_webhook()).await;
    for (d, id) in [("d1", 1), ("d2", 2)] {
        app.processed(&app.github(&path, d, "pull_request", &pr_event(id, "t", "a")).await).await;
    }
    app.entity("review", json!({"identifier": "r1", "relations": {"pr": "1"}})).await;
    let deleted = json!({"action": "deleted", "pull_request": {"id": 1}});
    // deleteDependents false: the required review blocks it; the log says so.
    let job = app.processed(&app.github(&path, "d3", "pull_request", &deleted).await).await;
    assert_eq!(job["result"]["rejected"], json!(1), "{job}");
    assert_eq!(app.count("pullRequest").await, 2);
    let rej = app.webhook_logs("prMapper", "event=entity_rejected").await;
    assert!(rej[0]["message"].as_str().unwrap().contains("delete_dependents"), "{rej:?}");
    // The same mapping with dependents (the default of "delete").
    let r = app
        .patch(
            "/v1/webhooks/prMapper",
            json!({"mappings": [{"blueprint": "pullRequest", "operation": "delete",
        "entity": {"identifier": ".body.pull_request.id | tostring"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let job = app.processed(&app.github(&path, "d4", "pull_request", &deleted).await).await;
    assert_eq!(job["result"]["deleted"], json!(2), "the PR and its review: {job}");
    assert_eq!((app.count("pullRequest").await, app.count("review").await), (1, 0));
    let deleted_logs = app.webhook_logs("prMapper", "event=entity_deleted").await;
    assert_eq!(deleted_logs.len(), 2);
    // Deleting what does not exist is not an error.
    let job = app.processed(&app.github(&path, "d5", "pull_request", &deleted).await).await;
    assert_eq!((&job["status"], &job["result"]["deleted"]), (&json!("succeeded"), &json!(0)));
}

/// A mapping into `_user` sets the organization's own properties of existing people, through
/// the same person path as the API (their role untouched), and says in the webhook's log why
/// it makes no one: people are not created by ingestion.
#[tokio::test]
async fn a_mapping_into_user_entities_sets_own_properties_and_makes_no_one() {
    let Some(app) = app().await else { return };
    app.web_user("usr_a", "ann@example.com", "admin").await;
    let r = app.patch("/v1/blueprints/_user", json!({"schema": {"properties": {"github": {"type": "string"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let path = app
        .webhook(json!({"identifier": "people", "title": "People", "enabled": true, "mappings": [
            {"blueprint": "_user", "entity": {"identifier": ".body.email", "properties": {"github": ".body.login"}}}
        ]}))
        .await;
    for (email, login) in [("ann@example.com", "ann-gh"), ("ghost@example.com", "ghost-gh")] {
        let body = json!({"email": email, "login": login}).to_string().into_bytes();
        let r = app.deliver(&path, &[("content-type", "application/json")], body).await;
        app.processed(&r).await;
    }
    let ann = app.get("/v1/blueprints/_user/entities/ann@example.com").await;
    assert_eq!(
        (&ann.body["entity"]["properties"]["github"], &ann.body["entity"]["properties"]["port_role"]),
        (&json!("ann-gh"), &json!("Admin"))
    );
    assert_eq!(app.get("/v1/blueprints/_user/entities/ghost@example.com").await.status, StatusCode::NOT_FOUND);
    let logs = messages(&app.webhook_logs("people", "limit=50").await);
    assert!(logs.iter().any(|m| m.contains("ghost@example.com") && m.contains("is not a user")), "{logs:?}");
}
