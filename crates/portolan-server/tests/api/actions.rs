//! Self-service actions (port-api.md §5): definitions, runs, invocation (webhooks signed as
//! Port signs them, UPSERT_ENTITY, the execution agent's protocol), secrets, logs and the
//! run's lifecycle rules.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use base64::Engine;
use hmac::{KeyInit, Mac};
use portolan_server::ApiConfig;
use portolan_server::secrets::SecretsKey;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid, wide_text};

/// What the stand-in backend received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A local backend: `/ok` answers 200 `{"ok":true}`, `/fail` 500 `{"error":"boom"}`; it
/// records every request.
struct Backend {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Backend {
    async fn start() -> Backend {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let rec = got.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let rec = rec.clone();
            async move {
                let path = uri.path().to_string();
                rec.lock().unwrap().push(Received { path: path.clone(), headers, body });
                if path.starts_with("/fail") {
                    (AxStatus::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": "boom"})))
                } else {
                    (AxStatus::OK, axum::Json(json!({"ok": true, "deployed": "v2"})))
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Backend { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn spawn() -> Option<TestApp> {
    let config = ApiConfig {
        secrets_key: Some(SecretsKey::generate()),
        job_poll: Duration::from_millis(50),
        ..ApiConfig::default()
    };
    TestApp::spawn_with(config).await
}

async fn service_model(app: &TestApp) {
    app.blueprint(json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {"version": {"type": "string"}}}}))
        .await;
    app.entity("service", json!({"identifier": "svc-1", "title": "Svc 1", "properties": {"version": "1.0"}})).await;
}

fn webhook_action(id: &str, url: &str, synchronized: bool) -> Value {
    json!({
        "identifier": id, "title": "Deploy", "icon": "Deployment",
        "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
            "userInputs": {"properties": {"version": {"type": "string", "pattern": "^[0-9.]+$"},
                                          "dryRun": {"type": "boolean", "default": false}},
                           "required": ["version"]}},
        "invocationMethod": {"type": "WEBHOOK", "url": url, "synchronized": synchronized, "method": "POST",
            "headers": {"RUN_ID": "{{ .run.id }}"},
            "body": {"version": "{{ .inputs.version }}", "entity": "{{ .entity.identifier }}",
                     "dry": "{{ .inputs.dryRun }}", "{{ spreadValue() }}": {"runId": "{{ .run.id }}"}}}
    })
}

fn ended(run: &Value) -> bool {
    run["status"] != json!("IN_PROGRESS")
}

/// Verify `X-Port-Signature` as a receiver following Port's docs would (§5.8).
fn verify_signature(secret: &str, got: &Received) -> bool {
    let ts = got.headers.get("x-port-timestamp").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let sig = got.headers.get("x-port-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(b64) = sig.split(',').nth(1) else { return false };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else { return false };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&got.body);
    sig.starts_with("v1,") && mac.verify_slice(&raw).is_ok()
}

#[tokio::test]
async fn actions_are_created_listed_replaced_and_deleted_in_ports_shape() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    let r = app.post("/v1/actions", webhook_action("deploy", "http://127.0.0.1:9/x", true)).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    let a = &r.body["action"];
    assert!(a["id"].as_str().unwrap().starts_with("action_"), "{a}");
    assert_eq!((a["identifier"].clone(), a["createdBy"].clone()), (json!("deploy"), json!(app.client_id)));
    assert_eq!(a["trigger"]["operation"], json!("DAY-2"));
    assert_error(&app.post("/v1/actions", webhook_action("deploy", "http://x", true)).await, 409, "conflict");

    // A GET result sent back is accepted (server keys ignored); the identifier cannot change.
    let mut back = app.get("/v1/actions/deploy").await.body["action"].clone();
    back["title"] = json!("Deploy it");
    let r = app.put("/v1/actions/deploy", back.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(
        (r.body["action"]["title"].clone(), r.body["action"]["id"].clone()),
        (json!("Deploy it"), a["id"].clone())
    );
    back["identifier"] = json!("other");
    assert_invalid(&app.put("/v1/actions/deploy", back).await, "identifier");
    assert_error(&app.put("/v1/actions/nope", webhook_action("nope", "http://x", true)).await, 404, "not_found");

    let mut auto = webhook_action("on_create", "http://x", false);
    auto["trigger"] = json!({"type": "automation", "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "service"},
        "condition": {"type": "JQ", "combinator": "and", "expressions": [".diff.after.properties.version != null"]}});
    assert_eq!(app.post("/v1/actions", auto).await.status.as_u16(), 201);
    let list = |q: &'static str| {
        let app = &app;
        async move {
            let r = app.get(&format!("/v1/actions{q}")).await;
            assert_eq!(r.status.as_u16(), 200, "{}", r.body);
            r.body["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["identifier"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, ["deploy", "on_create"]);
    assert_eq!(list("?trigger_type=automation").await, ["on_create"]);
    assert_eq!(list("?action_identifier=deploy").await, ["deploy"]);
    assert_eq!(list("?blueprint_identifier=other").await, Vec::<String>::new());

    let r = app.delete("/v1/actions/on_create").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_error(&app.get("/v1/actions/on_create").await, 404, "not_found");
    let audits = app.audit("resources=action").await;
    let seen: Vec<_> = audits.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(seen, ["DELETE", "CREATE", "UPDATE", "CREATE"]);
}

#[tokio::test]
async fn invalid_actions_are_refused_with_every_field_path() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    let mut bad = webhook_action("bad", "http://x", true);
    bad["trigger"]["operation"] = json!("UPGRADE");
    let r = app.post("/v1/actions", bad).await;
    assert_invalid(&r, "trigger.operation");

    let mut bad = webhook_action("bad", "http://x", true);
    bad["trigger"]["blueprintIdentifier"] = json!("ghost");
    assert_invalid(&app.post("/v1/actions", bad).await, "trigger.blueprintIdentifier");

    let mut bad = webhook_action("bad", "http://x", true);
    bad["trigger"]["userInputs"]["properties"]["sdk"] = json!({"type": "string", "enum": {"jqQuery": ".form | ("}});
    assert_invalid(&app.post("/v1/actions", bad).await, "trigger.userInputs.properties.sdk.enum.jqQuery");

    let mut bad = webhook_action("bad", "http://x", true);
    bad["surprise"] = json!(1);
    assert_invalid(&app.post("/v1/actions", bad).await, "surprise");

    // Keys of runs and timers: bounded, so PostgreSQL can index them (a 500 there before).
    let long = webhook_action(&wide_text(1000), "http://x", true);
    assert_invalid(&app.post("/v1/actions", long).await, "identifier");
    let timer = json!({"identifier": "bad_timer", "title": "T",
        "trigger": {"type": "automation", "event": {"type": "TIMER_PROPERTY_EXPIRED",
            "blueprintIdentifier": "service", "propertyIdentifier": wide_text(1000)}},
        "invocationMethod": {"type": "WEBHOOK", "url": "http://x"}});
    assert_invalid(&app.post("/v1/actions", timer).await, "trigger.event.propertyIdentifier");
    assert!(app.get("/v1/actions/bad_timer").await.status.as_u16() == 404);
    assert!(app.get("/v1/actions/bad").await.status.as_u16() == 404, "nothing was stored");
}

#[tokio::test]
async fn a_synchronized_webhook_run_is_signed_templated_traced_and_ends_with_the_answer() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    let backend = Backend::start().await;
    app.post("/v1/actions", webhook_action("deploy", &format!("{}/ok", backend.url), true)).await;
    app.post("/v1/actions", webhook_action("deploy_fail", &format!("{}/fail", backend.url), true)).await;

    let r = app.post("/v1/actions/deploy/runs", json!({"entity": "svc-1", "properties": {"version": "1.2.3"}})).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    let run_id = r.body["run"]["id"].as_str().unwrap().to_string();
    assert!(run_id.starts_with("r_"));
    assert_eq!(r.body["run"]["status"], json!("IN_PROGRESS"));
    let run = app.wait_run(&run_id, ended).await;
    assert_eq!(run["status"], json!("SUCCESS"), "{run}");
    assert_eq!(run["response"], json!({"ok": true, "deployed": "v2"}));
    assert_eq!(
        (run["action"]["identifier"].clone(), run["entity"]["identifier"].clone()),
        (json!("deploy"), json!("svc-1"))
    );
    assert_eq!(run["properties"], json!({"version": "1.2.3", "dryRun": false}));
    assert!(run["endedAt"].is_string());

    let got = backend.received();
    assert_eq!((got.len(), got[0].path.as_str()), (1, "/ok"));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body, json!({"version": "1.2.3", "entity": "svc-1", "dry": false, "runId": run_id}));
    assert_eq!(got[0].headers.get("run_id").unwrap(), run_id.as_str());
    assert!(verify_signature(&app.client_secret, &got[0]), "the signature verifies with the client secret");
    assert!(!verify_signature("another secret", &got[0]), "and only with it");
    // The trace: request, answer, duration; the signature censored.
    let trace = &run["trace"][0];
    assert_eq!(trace["response"]["status"], json!(200), "{trace}");
    assert!(trace["durationMs"].is_u64(), "{trace}");
    assert!(!trace.to_string().contains(got[0].headers["x-port-signature"].to_str().unwrap()), "{trace}");
    assert_eq!(run["payload"]["body"]["version"], json!("1.2.3"));

    let r = app.post("/v1/actions/deploy_fail/runs", json!({"entity": "svc-1", "properties": {"version": "1"}})).await;
    let run = app.wait_run(r.body["run"]["id"].as_str().unwrap(), ended).await;
    assert_eq!(run["status"], json!("FAILURE"), "{run}");
    assert!(run["summary"].as_str().unwrap().contains("500"), "{run}");
    assert_eq!(run["response"], json!({"error": "boom"}));
}

#[tokio::test]
async fn run_requests_are_checked_field_by_field_before_anything_runs() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    let backend = Backend::start().await;
    app.post("/v1/actions", webhook_action("deploy", &format!("{}/ok", backend.url), true)).await;
    let run = |body: Value| {
        let app = &app;
        async move { app.post("/v1/actions/deploy/runs", body).await }
    };
    assert_invalid(&run(json!({"entity": "svc-1", "properties": {}})).await, "properties.version");
    assert_invalid(&run(json!({"entity": "svc-1", "properties": {"version": "v1"}})).await, "properties.version");
    assert_invalid(&run(json!({"entity": "svc-1", "properties": {"version": 1}})).await, "properties.version");
    assert_invalid(
        &run(json!({"entity": "svc-1", "properties": {"version": "1", "extra": 1}})).await,
        "properties.extra",
    );
    assert_invalid(&run(json!({"properties": {"version": "1"}})).await, "entity");
    assert_error(&run(json!({"entity": "ghost", "properties": {"version": "1"}})).await, 404, "not_found");
    assert_error(&app.post("/v1/actions/nope/runs", json!({"properties": {}})).await, 404, "not_found");
    assert_invalid(&run(json!({"entity": "svc-1", "inputs": {}})).await, "inputs");
    // trigger.condition: the action is offered only for matching entities, through the API too.
    let mut conditional = webhook_action("deploy_v1", &format!("{}/ok", backend.url), true);
    conditional["trigger"]["condition"] = json!({"type": "SEARCH", "combinator": "and",
        "rules": [{"property": "version", "operator": "=", "value": "1.0"}]});
    assert_eq!(app.post("/v1/actions", conditional).await.status.as_u16(), 201);
    app.entity("service", json!({"identifier": "svc-2", "properties": {"version": "2.0"}})).await;
    let r = app.post("/v1/actions/deploy_v1/runs", json!({"entity": "svc-2", "properties": {"version": "1"}})).await;
    assert_invalid(&r, "entity");
    assert!(r.body["message"].as_str().unwrap().contains("trigger.condition"), "{}", r.body);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(backend.received().is_empty(), "no refused run reached the backend");
    let ok = app.post("/v1/actions/deploy_v1/runs", json!({"entity": "svc-1", "properties": {"version": "1"}})).await;
    assert_eq!(ok.status.as_u16(), 202, "{}", ok.body);
    let id = ok.body["run"]["id"].as_str().unwrap().to_string();
    assert_eq!(app.wait_run(&id, ended).await["status"], json!("SUCCESS"));
    assert_eq!(app.get("/v1/actions/runs").await.body["runs"].as_array().unwrap().len(), 1, "only the accepted run");
}

#[tokio::test]
async fn secrets_reach_the_backend_and_nothing_else() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    let backend = Backend::start().await;
    const SECRET: &str = "s3cr3t-t0ken-value";
    let r = app
        .post(
            "/v1/organization/secrets",
            json!({"secretName": "DEPLOY_TOKEN", "secretValue": SECRET, "description": "ci"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_eq!(
        r.body["secret"],
        json!({"secretName": "DEPLOY_TOKEN", "description": "ci",
        "createdAt": r.body["secret"]["createdAt"], "createdBy": app.client_id,
        "updatedAt": r.body["secret"]["updatedAt"], "updatedBy": app.client_id})
    );
    assert_invalid(
        &app.post("/v1/organization/secrets", json!({"secretName": "bad name!", "secretValue": "x"})).await,
        "secretName",
    );
    assert_invalid(&app.post("/v1/organization/secrets", json!({"secretName": "EMPTY"})).await, "secretValue");

    let mut a = webhook_action("deploy", &format!("{}/ok?t={{{{ .secrets.DEPLOY_TOKEN }}}}", backend.url), true);
    a["invocationMethod"]["headers"]["Authorization"] = json!("Bearer {{ .secrets.DEPLOY_TOKEN }}");
    a["invocationMethod"]["body"]["token"] = json!("{{ .secrets[\"DEPLOY_TOKEN\"] }}");
    a["trigger"]["userInputs"]["properties"]["password"] = json!({"type": "string", "encryption": "aes256-gcm"});
    assert_eq!(app.post("/v1/actions", a).await.status.as_u16(), 201);
    const PASSWORD: &str = "hunter2-input";
    let r = app
        .post(
            "/v1/actions/deploy/runs",
            json!({"entity": "svc-1", "properties": {"version": "1", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    let id = r.body["run"]["id"].as_str().unwrap().to_string();
    let run = app.wait_run(&id, ended).await;
    assert_eq!(run["status"], json!("SUCCESS"), "{run}");

    // The backend got the secret, in the header, the URL and the body.
    let got = backend.received();
    assert_eq!(got[0].headers["authorization"], format!("Bearer {SECRET}").as_str());
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["token"], json!(SECRET));
    // The encrypted input arrives as Port's ciphertext, which decrypts with the client secret.
    let enc = run["properties"]["password"].as_str().unwrap();
    assert_ne!(enc, PASSWORD);
    assert_eq!(decrypt_port(&app.client_secret, enc), PASSWORD);
    assert_eq!(run["encryptedProperties"], json!(["password"]));

    // Nowhere else: run, runs list, logs, audit log, secrets API.
    let everything = [
        app.get(&format!("/v1/actions/runs/{id}")).await.body,
        app.get("/v1/actions/runs").await.body,
        app.get(&format!("/v1/actions/runs/{id}/logs")).await.body,
        app.get("/v1/audit-log").await.body,
        app.get("/v1/organization/secrets").await.body,
        app.get("/v1/organization/secrets/DEPLOY_TOKEN").await.body,
    ];
    for v in everything {
        let text = v.to_string();
        assert!(!text.contains(SECRET) && !text.contains(PASSWORD), "a secret leaked: {text}");
    }
    let stored = app.store.list_secrets(&portolan_store::OrgId("org_org-a".into())).await.unwrap();
    assert!(!format!("{stored:?}").contains(SECRET), "the store holds ciphertext only");

    // Change and delete.
    let r = app.patch("/v1/organization/secrets/DEPLOY_TOKEN", json!({"description": "rotated"})).await;
    assert_eq!(r.body["secret"]["description"], json!("rotated"), "{}", r.body);
    assert_eq!(app.delete("/v1/organization/secrets/DEPLOY_TOKEN").await.status.as_u16(), 200);
    assert_error(&app.get("/v1/organization/secrets/DEPLOY_TOKEN").await, 404, "not_found");
}

/// Port's `aes256-gcm` input decryption, as a backend does it: key = the first 32 bytes of the
/// client secret, `base64(IV[16] ‖ ciphertext ‖ tag[16])`.
fn decrypt_port(client_secret: &str, enc: &str) -> String {
    use aes_gcm::aead::{Aead, KeyInit as _, consts::U16};
    type Cipher = aes_gcm::AesGcm<aes_gcm::aes::Aes256, U16>;
    let raw = base64::engine::general_purpose::STANDARD.decode(enc).unwrap();
    let cipher = Cipher::new_from_slice(&client_secret.as_bytes()[..32]).unwrap();
    let (iv, ct) = raw.split_at(16);
    let iv: [u8; 16] = iv.try_into().unwrap();
    String::from_utf8(cipher.decrypt(&iv.into(), ct).unwrap()).unwrap()
}

#[tokio::test]
async fn the_agent_protocol_claims_once_acks_once_and_a_log_ends_the_run_for_good() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    app.post("/v1/organization/secrets", json!({"secretName": "TOKEN", "secretValue": "agent-secret-value"})).await;
    let mut a = webhook_action("deploy", "http://10.0.0.1/private", false);
    a["invocationMethod"]["agent"] = json!(true);
    a["invocationMethod"]["headers"]["X-Token"] = json!("{{ .secrets.TOKEN }}");
    assert_eq!(app.post("/v1/actions", a).await.status.as_u16(), 201);
    let r = app.post("/v1/actions/deploy/runs", json!({"entity": "svc-1", "properties": {"version": "2"}})).await;
    let id = r.body["run"]["id"].as_str().unwrap().to_string();
    let run = app.wait_run(&id, |r| r["pendingExecution"] == json!(true)).await;
    assert_eq!(run["payload"]["headers"]["X-Token"], json!("********"), "stored censored: {run}");

    let claim = json!({"installationId": "_PORT_EXEC_AGENT", "limit": 100, "invocationMethod": "WEBHOOK"});
    let r = app.post("/v1/actions/runs/claim-pending", claim.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let runs = r.body["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let p = &runs[0]["payload"];
    assert_eq!(
        (p["type"].clone(), p["agent"].clone(), p["url"].clone()),
        (json!("WEBHOOK"), json!(true), json!("http://10.0.0.1/private"))
    );
    assert_eq!(p["headers"]["X-Token"], json!("agent-secret-value"), "the agent gets the secret to call with");
    assert_eq!(p["body"]["version"], json!("2"));
    assert!(runs[0]["claimedUntil"].is_string());
    let again = app.post("/v1/actions/runs/claim-pending", claim.clone()).await;
    assert_eq!(again.body["runs"], json!([]), "a second agent does not get a claimed run");
    let wf =
        app.post("/v1/workflows/runs/claim-pending", json!({"installationId": "_PORT_EXEC_AGENT", "limit": 100})).await;
    assert_eq!(wf.body["nodeRuns"], json!([]));

    let ack = app.patch("/v1/actions/runs/ack", json!({"runIds": [id]})).await;
    assert_eq!(ack.body["ackedCount"], json!(1), "{}", ack.body);
    let ack = app.patch("/v1/actions/runs/ack", json!({"runIds": [id]})).await;
    assert_eq!(ack.body["ackedCount"], json!(0), "acknowledged once");

    let org = app.patch("/v1/organization", json!({"settings": {"portAgentStreamerName": "POLLING"}})).await;
    assert_eq!(org.body["organization"]["settings"]["portAgentStreamerName"], json!("POLLING"), "{}", org.body);

    let logs = format!("/v1/actions/runs/{id}/logs");
    assert_eq!(app.post(&logs, json!({"message": "An action message has been received"})).await.status.as_u16(), 201);
    let r =
        app.patch(&format!("/v1/actions/runs/{id}"), json!({"statusLabel": "deploying", "link": "https://ci/1"})).await;
    assert_eq!(
        (r.body["run"]["status"].clone(), r.body["run"]["link"].clone()),
        (json!("IN_PROGRESS"), json!(["https://ci/1"]))
    );
    // An external run id is kept and found by; one PostgreSQL cannot index is a 422, not a 500.
    let r = app.patch(&format!("/v1/actions/runs/{id}"), json!({"externalRunId": wide_text(1000)})).await;
    assert_invalid(&r, "externalRunId");
    let r = app.patch(&format!("/v1/actions/runs/{id}"), json!({"externalRunId": "gh-run-7"})).await;
    assert_eq!(r.body["run"]["externalRunId"], json!("gh-run-7"), "{}", r.body);
    let r = app.patch(&format!("/v1/actions/runs/{id}/response"), json!({"response": {"answer": 42}})).await;
    assert_eq!(r.body["run"]["response"], json!({"answer": 42}));
    let r =
        app.post(&logs, json!({"message": "done", "terminationStatus": "SUCCESS", "statusLabel": "deployed"})).await;
    assert_eq!(r.body["run"]["status"], json!("SUCCESS"), "{}", r.body);
    assert_invalid(&app.post(&logs, json!({"message": "again", "terminationStatus": "FAILURE"})).await, "status");
    assert_invalid(&app.patch(&format!("/v1/actions/runs/{id}"), json!({"status": "FAILURE"})).await, "status");
    assert_invalid(&app.post(&logs, json!({"text": "no message"})).await, "message");
    let r = app.get(&logs).await;
    let msgs: Vec<_> = r.body["runLogs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(msgs, ["An action message has been received", "done"]);
    assert_eq!(app.get(&format!("/v1/actions/runs/{id}")).await.body["run"]["statusLabel"], json!("deployed"));
}

#[tokio::test]
async fn a_backends_first_terminal_status_stands() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    let mut a = webhook_action("deploy", "http://10.0.0.1/x", false);
    a["invocationMethod"]["agent"] = json!(true);
    app.post("/v1/actions", a).await;
    let id = app.post("/v1/actions/deploy/runs", json!({"entity": "svc-1", "properties": {"version": "2"}})).await.body
        ["run"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/actions/runs/{id}");
    let r = app.patch(&path, json!({"status": "FAILURE", "summary": "Failed with status code: 500"})).await;
    assert_eq!(r.body["run"]["status"], json!("FAILURE"), "{}", r.body);
    // Port's agent reports a failure twice; the second must not replace the first summary.
    assert_invalid(&app.patch(&path, json!({"status": "FAILURE", "summary": "Agent failed"})).await, "status");
    assert_eq!(app.get(&path).await.body["run"]["summary"], json!("Failed with status code: 500"));
    assert_invalid(&app.patch(&path, json!({"status": "DONE"})).await, "status");
}

#[tokio::test]
async fn upsert_entity_runs_write_the_entity_and_run_id_writes_are_affected_entities() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    let action = json!({"identifier": "create_svc", "title": "Create",
        "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
            "userInputs": {"properties": {"name": {"type": "string"}}, "required": ["name"]}},
        "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
            "mapping": {"identifier": "{{ .inputs.name }}", "title": "{{ .inputs.name | ascii_upcase }}",
                        "properties": {"version": "0.1"}}}});
    assert_eq!(app.post("/v1/actions", action).await.status.as_u16(), 201);
    let r = app.post("/v1/actions/create_svc/runs", json!({"properties": {"name": "cart"}})).await;
    let id = r.body["run"]["id"].as_str().unwrap().to_string();
    let run = app.wait_run(&id, ended).await;
    assert_eq!(run["status"], json!("SUCCESS"), "{run}");
    let e = app.get("/v1/blueprints/service/entities/cart").await;
    assert_eq!(
        (e.body["entity"]["title"].clone(), e.body["entity"]["properties"]["version"].clone()),
        (json!("CART"), json!("0.1"))
    );
    let r = app.get(&format!("/v1/actions/runs/{id}/entities")).await;
    assert_eq!(r.body["entities"], json!([{"blueprint": "service", "identifier": "cart"}]));

    // A refused entity ends the run FAILURE with the reason.
    let r = app.post("/v1/actions/create_svc/runs", json!({"properties": {"name": "bad id/"}})).await;
    let run = app.wait_run(r.body["run"]["id"].as_str().unwrap(), ended).await;
    assert_eq!(run["status"], json!("FAILURE"), "{run}");
    assert!(run["summary"].as_str().unwrap().contains("refused"), "{run}");

    // ?run_id= on entity writes, while a run is in progress.
    let mut agent = webhook_action("deploy", "http://10.0.0.1/x", false);
    agent["invocationMethod"]["agent"] = json!(true);
    app.post("/v1/actions", agent).await;
    let run = app.post("/v1/actions/deploy/runs", json!({"entity": "svc-1", "properties": {"version": "2"}})).await;
    let rid = run.body["run"]["id"].as_str().unwrap().to_string();
    let w = app
        .post(&format!("/v1/blueprints/service/entities?upsert=true&run_id={rid}"), json!({"identifier": "svc-2"}))
        .await;
    assert!(w.status.is_success(), "{}", w.body);
    let b = app
        .post(
            &format!("/v1/blueprints/service/entities/bulk?upsert=true&run_id={rid}"),
            json!({"entities": [{"identifier": "svc-3"}]}),
        )
        .await;
    assert!(b.status.is_success(), "{}", b.body);
    let r = app.get(&format!("/v1/actions/runs/{rid}/entities")).await;
    assert_eq!(
        r.body["entities"],
        json!([{"blueprint": "service", "identifier": "svc-2"}, {"blueprint": "service", "identifier": "svc-3"}])
    );
    let w = app.post("/v1/blueprints/service/entities?upsert=true&run_id=r_nope", json!({"identifier": "svc-4"})).await;
    assert_error(&w, 404, "not_found");
    assert_error(&app.get("/v1/blueprints/service/entities/svc-4").await, 404, "not_found");
}

#[tokio::test]
async fn unsupported_invocation_types_fail_at_once_saying_so() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    let action = json!({"identifier": "gh", "title": "GH",
        "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
        "invocationMethod": {"type": "KAFKA"}});
    assert_eq!(app.post("/v1/actions", action).await.status.as_u16(), 201);
    let r = app.post("/v1/actions/gh/runs", json!({"properties": {}})).await;
    let run = app.wait_run(r.body["run"]["id"].as_str().unwrap(), ended).await;
    assert_eq!(run["status"], json!("FAILURE"));
    assert!(run["summary"].as_str().unwrap().contains("KAFKA"), "{run}");
}

#[tokio::test]
async fn actions_runs_and_secrets_are_invisible_to_another_organization() {
    let Some(app) = spawn().await else { return };
    service_model(&app).await;
    let mut a = webhook_action("deploy", "http://10.0.0.1/x", false);
    a["invocationMethod"]["agent"] = json!(true);
    app.post("/v1/actions", a).await;
    app.post("/v1/organization/secrets", json!({"secretName": "T", "secretValue": "v"})).await;
    let id = app.post("/v1/actions/deploy/runs", json!({"entity": "svc-1", "properties": {"version": "2"}})).await.body
        ["run"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_run(&id, |r| r["pendingExecution"] == json!(true)).await;
    let other = app.other_org_token("org-b").await;
    let get = |path: String| {
        let (app, other) = (&app, &other);
        async move { app.req_as(other, "GET", &path, None).await }
    };
    assert_error(&get("/v1/actions/deploy".into()).await, 404, "not_found");
    assert_eq!(get("/v1/actions".into()).await.body["actions"], json!([]));
    assert_error(&get(format!("/v1/actions/runs/{id}")).await, 404, "not_found");
    assert_error(&get(format!("/v1/actions/runs/{id}/logs")).await, 404, "not_found");
    assert_eq!(get("/v1/actions/runs".into()).await.body["runs"], json!([]));
    assert_eq!(get("/v1/organization/secrets".into()).await.body["secrets"], json!([]));
    let claim = app.req_as(&other, "POST", "/v1/actions/runs/claim-pending", Some(json!({"limit": 10}))).await;
    assert_eq!(claim.body["runs"], json!([]));
    let ack = app.req_as(&other, "PATCH", "/v1/actions/runs/ack", Some(json!({"runIds": [id]}))).await;
    assert_eq!(ack.body["ackedCount"], json!(0));
    let patch =
        app.req_as(&other, "PATCH", &format!("/v1/actions/runs/{id}"), Some(json!({"status": "SUCCESS"}))).await;
    assert_error(&patch, 404, "not_found");
}
