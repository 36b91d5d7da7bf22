//! GITHUB and GITLAB invocations (issue 14): a local stand-in follows GitHub's and GitLab's
//! published API shapes (app installation and token, workflow dispatch, list workflow runs, get
//! a run; pipeline trigger, get a pipeline) and records what it received. The GitHub App flow
//! signs a real RS256 JWT (checked by the stand-in with the app's public key), its installation
//! token is cached, runs follow the workflow run or pipeline to SUCCESS / FAILURE, 5xx answers
//! are retried and 4xx ones end the run with the service's message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode as AxStatus, Uri};
use portolan_server::ApiConfig;
use portolan_server::secrets::SecretsKey;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const APP_ID: &str = "31337";
const INSTALL_TOKEN: &str = "ghs_installation_token_1";
const TRIGGER_TOKEN: &str = "glptt-trigger-token";
const READ_TOKEN: &str = "glpat-read-token";

/// One call the stand-in received.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    query: String,
    auth: String,
    body: Value,
}

#[derive(Default)]
struct Hub {
    got: Vec<Got>,
    /// Workflow runs by id: (workflow, created_at, looks so far).
    runs: HashMap<i64, (String, String, u32)>,
    next_run: i64,
    pipeline_looks: u32,
    flaky_seen: bool,
}

/// The stand-in: GitHub under `/repos`, `/app`; GitLab under `/api/v4`.
struct StandIn {
    url: String,
    hub: Arc<Mutex<Hub>>,
}

fn reply(status: u16, body: Value) -> (AxStatus, axum::Json<Value>) {
    (AxStatus::from_u16(status).unwrap(), axum::Json(body))
}

impl StandIn {
    async fn start(public_der: Vec<u8>) -> StandIn {
        let hub: Arc<Mutex<Hub>> = Arc::new(Mutex::new(Hub { next_run: 4242, ..Hub::default() }));
        let h = hub.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let (hub, key) = (h.clone(), public_der.clone());
            async move {
                let auth = headers
                    .get("authorization")
                    .or_else(|| headers.get("private-token"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let got = Got {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    query: uri.query().unwrap_or_default().to_string(),
                    auth: auth.clone(),
                    body: body.clone(),
                };
                let mut hub = hub.lock().unwrap();
                hub.got.push(got.clone());
                let seg: Vec<&str> = got.path.trim_start_matches('/').split('/').collect();
                let jwt_ok = || {
                    let token = auth.strip_prefix("Bearer ").unwrap_or_default();
                    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
                    v.set_required_spec_claims(&["exp", "iat", "iss"]);
                    v.set_issuer(&[APP_ID]);
                    jsonwebtoken::decode::<Value>(token.as_bytes(), &jsonwebtoken::DecodingKey::from_rsa_der(&key), &v)
                        .is_ok()
                };
                let token_ok = auth == format!("Bearer {INSTALL_TOKEN}") || auth == "Bearer ghp_personal";
                match (got.method.as_str(), seg.as_slice()) {
                    ("GET", ["repos", _, _, "installation"]) if jwt_ok() => reply(200, json!({"id": 77})),
                    ("POST", ["app", "installations", "77", "access_tokens"]) if jwt_ok() => {
                        let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
                        reply(201, json!({"token": INSTALL_TOKEN, "expires_at": expires}))
                    }
                    ("GET", ["repos", ..]) | ("POST", ["app", ..]) if !token_ok && !jwt_ok() => {
                        reply(401, json!({"message": "Bad credentials"}))
                    }
                    ("POST", ["repos", _, _, "actions", "workflows", wf, "dispatches"]) => match *wf {
                        "missing.yml" => reply(404, json!({"message": "Not Found"})),
                        "flaky.yml" if !hub.flaky_seen => {
                            hub.flaky_seen = true;
                            reply(502, json!({"message": "Server Error"}))
                        }
                        wf => {
                            let id = hub.next_run;
                            hub.next_run += 1;
                            let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
                            hub.runs.insert(id, (wf.to_string(), created, 0));
                            if wf == "details.yml" && body["return_run_details"] == json!(true) {
                                let html = format!("https://github.example/acme/shop/actions/runs/{id}");
                                reply(200, json!({"workflow_run_id": id, "run_url": "x", "html_url": html}))
                            } else {
                                (AxStatus::NO_CONTENT, axum::Json(Value::Null))
                            }
                        }
                    },
                    ("GET", ["repos", _, _, "actions", "workflows", wf, "runs"]) => {
                        let runs: Vec<Value> = hub
                            .runs
                            .iter()
                            .filter(|(_, (w, _, _))| w == wf)
                            .map(|(id, (_, created, _))| json!({"id": id, "created_at": created, "status": "queued"}))
                            .collect();
                        reply(200, json!({"total_count": runs.len(), "workflow_runs": runs}))
                    }
                    ("GET", ["repos", _, _, "actions", "runs", id]) => {
                        let id: i64 = id.parse().unwrap_or_default();
                        let Some((wf, _, looks)) = hub.runs.get_mut(&id) else {
                            return reply(404, json!({"message": "Not Found"}));
                        };
                        *looks += 1;
                        let html = format!("https://github.example/acme/shop/actions/runs/{id}");
                        if *looks < 2 {
                            reply(200, json!({"id": id, "status": "in_progress", "conclusion": null, "html_url": html}))
                        } else {
                            let c = if wf == "fails.yml" { "failure" } else { "success" };
                            reply(200, json!({"id": id, "status": "completed", "conclusion": c, "html_url": html}))
                        }
                    }
                    ("POST", ["api", "v4", "projects", _, "trigger", "pipeline"]) => {
                        if body["token"] != json!(TRIGGER_TOKEN) {
                            return reply(404, json!({"message": "404 Not Found"}));
                        }
                        reply(201, json!({"id": 555, "status": "created", "web_url": "https://gitlab.example/pipelines/555"}))
                    }
                    ("GET", ["api", "v4", "projects", _, "pipelines", "555"]) if auth == READ_TOKEN => {
                        hub.pipeline_looks += 1;
                        let status = if hub.pipeline_looks < 2 { "running" } else { "success" };
                        reply(200, json!({"id": 555, "status": status, "web_url": "https://gitlab.example/pipelines/555"}))
                    }
                    _ => reply(404, json!({"message": "Not Found"})),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        StandIn { url, hub }
    }

    fn got(&self, method: &str, path_has: &str) -> Vec<Got> {
        self.hub
            .lock()
            .unwrap()
            .got
            .iter()
            .filter(|g| g.method == method && g.path.contains(path_has))
            .cloned()
            .collect()
    }
}

/// A GitHub App key pair made by `openssl`: the private key in PEM (as GitHub gives it) and the
/// public key in DER for the stand-in. `None` without openssl.
fn app_key() -> Option<(String, Vec<u8>)> {
    let dir = std::env::temp_dir().join(format!("portolan-gh-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).ok()?;
    let (key, public) = (dir.join("app.pem"), dir.join("app.der"));
    let ok = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .ok()?
        .status
        .success();
    if !ok {
        return None;
    }
    std::process::Command::new("openssl")
        .args(["rsa", "-RSAPublicKey_out", "-outform", "DER", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .output()
        .ok()?;
    let out = (std::fs::read_to_string(&key).ok()?, std::fs::read(&public).ok()?);
    let _ = std::fs::remove_dir_all(&dir);
    Some(out)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos().into()
}

async fn spawn() -> Option<TestApp> {
    let config = ApiConfig {
        secrets_key: Some(SecretsKey::generate()),
        job_poll: Duration::from_millis(50),
        git_poll: Duration::from_millis(200),
        ..ApiConfig::default()
    };
    TestApp::spawn_with(config).await
}

async fn secret(app: &TestApp, name: &str, value: &str) {
    let r = app.post("/v1/organization/secrets", json!({"secretName": name, "secretValue": value})).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
}

async fn action(app: &TestApp, id: &str, invocation: Value) {
    let a = json!({"identifier": id, "title": id,
        "trigger": {"type": "self-service", "operation": "CREATE",
            "userInputs": {"properties": {"version": {"type": "string"}}}},
        "invocationMethod": invocation});
    let r = app.post("/v1/actions", a).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
}

async fn start(app: &TestApp, action: &str) -> String {
    let r = app.post(&format!("/v1/actions/{action}/runs"), json!({"properties": {"version": "2.0"}})).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    r.body["run"]["id"].as_str().unwrap().to_string()
}

fn ended(r: &Value) -> bool {
    r["status"] != json!("IN_PROGRESS")
}

async fn logs(app: &TestApp, id: &str) -> Vec<String> {
    let r = app.get(&format!("/v1/actions/runs/{id}/logs")).await;
    r.body["runLogs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap().to_string()).collect()
}

fn github(workflow: &str) -> Value {
    json!({"type": "GITHUB", "org": "acme", "repo": "shop", "workflow": workflow,
           "workflowInputs": {"version": "{{ .inputs.version }}", "ref": "release"}})
}

#[tokio::test]
async fn a_github_app_dispatches_the_workflow_and_the_run_follows_it() {
    let Some((pem, public)) = app_key() else {
        eprintln!("NOTE: skipped: openssl is needed to make a GitHub App key");
        return;
    };
    let Some(app) = spawn().await else { return };
    let gh = StandIn::start(public).await;
    secret(&app, "GITHUB_API_URL", &gh.url).await;
    secret(&app, "GITHUB_APP_ID", APP_ID).await;
    secret(&app, "GITHUB_APP_PRIVATE_KEY", &pem).await;
    action(&app, "deploy", github("deploy.yml")).await;

    let id = start(&app, "deploy").await;
    let run = app.wait_run(&id, ended).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let dispatch = gh.got("POST", "/dispatches");
    assert_eq!(dispatch.len(), 1);
    assert_eq!(dispatch[0].path, "/repos/acme/shop/actions/workflows/deploy.yml/dispatches");
    assert_eq!(dispatch[0].body, json!({"ref": "release", "inputs": {"version": "2.0"}, "return_run_details": true}));
    assert_eq!(dispatch[0].auth, format!("Bearer {INSTALL_TOKEN}"), "the installation token, not the JWT");
    // The run was found by listing the workflow's dispatch runs since the dispatch.
    let listed = gh.got("GET", "/actions/workflows/deploy.yml/runs");
    assert!(!listed.is_empty() && listed[0].query.contains("event=workflow_dispatch&branch=release&created=%3E%3D"));
    assert_eq!(run["link"], json!(["https://github.example/acme/shop/actions/runs/4242"]));
    assert_eq!(run["summary"], "GitHub workflow run 4242 completed: success");
    let lines = logs(&app, &id).await;
    assert!(lines.iter().any(|l| l == "GitHub workflow run 4242 is in_progress"), "{lines:?}");
    let shown = run.to_string();
    assert!(!shown.contains(INSTALL_TOKEN) && !shown.contains("PRIVATE KEY"), "no token on the run: {shown}");
    assert_eq!(run["trace"][0]["note"], "GitHub workflow dispatch");

    // A second run reuses the cached installation token; a failing workflow fails the run.
    action(&app, "deploy_broken", github("fails.yml")).await;
    let id2 = start(&app, "deploy_broken").await;
    let run2 = app.wait_run(&id2, ended).await;
    assert_eq!(
        (run2["status"].as_str(), run2["summary"].as_str()),
        (Some("FAILURE"), Some("GitHub workflow run 4243 completed: failure"))
    );
    assert_eq!(gh.got("POST", "/access_tokens").len(), 1, "the installation token is cached");
}

#[tokio::test]
async fn github_refusals_end_the_run_with_githubs_message_and_5xx_is_retried() {
    let Some(app) = spawn().await else { return };
    let gh = StandIn::start(vec![]).await;
    secret(&app, "GITHUB_API_URL", &gh.url).await;
    action(&app, "no_credentials", github("deploy.yml")).await;
    let run = app.wait_run(&start(&app, "no_credentials").await, ended).await;
    assert!(run["summary"].as_str().unwrap().contains("no GitHub credentials: add the organization secrets"), "{run}");

    secret(&app, "GITHUB_TOKEN", "ghp_personal").await;
    action(&app, "missing", github("missing.yml")).await;
    let run = app.wait_run(&start(&app, "missing").await, ended).await;
    assert_eq!(run["status"], "FAILURE");
    assert_eq!(
        run["summary"], "GitHub refused the dispatch of workflow missing.yml in acme/shop (404): Not Found",
        "{run}"
    );

    action(&app, "flaky", github("flaky.yml")).await;
    let run = app.wait_run(&start(&app, "flaky").await, ended).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(gh.got("POST", "flaky.yml/dispatches").len(), 2, "the 502 was retried");

    // A dispatch answered with the run's details needs no listing; reportWorkflowStatus false
    // leaves the run to the workflow.
    action(&app, "detailed", github("details.yml")).await;
    let run = app.wait_run(&start(&app, "detailed").await, ended).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert!(gh.got("GET", "details.yml/runs").is_empty(), "the dispatch named the run");
    let mut quiet = github("deploy.yml");
    quiet["reportWorkflowStatus"] = json!(false);
    action(&app, "quiet", quiet).await;
    let id = start(&app, "quiet").await;
    let run = app.wait_run(&id, |r| r["summary"].is_string()).await;
    assert_eq!(run["status"], "IN_PROGRESS");
    assert!(run["summary"].as_str().unwrap().contains("the workflow reports the run's status itself"), "{run}");
}

#[tokio::test]
async fn a_gitlab_pipeline_is_triggered_with_its_variables_and_followed() {
    let Some(app) = spawn().await else { return };
    let gl = StandIn::start(vec![]).await;
    secret(&app, "GITLAB_URL", &gl.url).await;
    action(
        &app,
        "pipeline",
        json!({"type": "GITLAB", "groupName": "platform", "projectName": "shop", "defaultRef": "develop",
               "pipelineVariables": {"VERSION": "{{ .inputs.version }}", "DRY_RUN": false}}),
    )
    .await;
    let run = app.wait_run(&start(&app, "pipeline").await, ended).await;
    assert!(run["summary"].as_str().unwrap().contains("no GitLab trigger token"), "{run}");

    secret(&app, "platform_shop", TRIGGER_TOKEN).await;
    let id = start(&app, "pipeline").await;
    let run = app.wait_run(&id, |r| r["summary"].is_string()).await;
    assert!(run["summary"].as_str().unwrap().contains("it is not followed"), "{run}");
    let trigger = gl.got("POST", "/trigger/pipeline");
    assert_eq!(trigger.last().unwrap().path, "/api/v4/projects/platform%2Fshop/trigger/pipeline");
    assert_eq!(
        trigger.last().unwrap().body,
        json!({"token": TRIGGER_TOKEN, "ref": "develop", "variables": {"VERSION": "2.0", "DRY_RUN": "false"}})
    );
    assert!(!run.to_string().contains(TRIGGER_TOKEN), "the trigger token is censored: {run}");

    secret(&app, "GITLAB_TOKEN", READ_TOKEN).await;
    let id = start(&app, "pipeline").await;
    let run = app.wait_run(&id, ended).await;
    assert_eq!(
        (run["status"].as_str(), run["summary"].as_str()),
        (Some("SUCCESS"), Some("GitLab pipeline 555 succeeded"))
    );
    assert_eq!(run["link"], json!(["https://gitlab.example/pipelines/555"]));
    assert!(logs(&app, &id).await.iter().any(|l| l == "GitLab pipeline 555 is running"));
}
