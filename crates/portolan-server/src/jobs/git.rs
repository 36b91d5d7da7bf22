//! `GITHUB` and `GITLAB` invocations (port-api.md §5.4) and the `git_follow` job that follows
//! the workflow run or pipeline they start.
//!
//! **GitHub:** `workflow_dispatch` through GitHub's REST API
//! (`POST {api}/repos/{org}/{repo}/actions/workflows/{workflow}/dispatches` with `ref` and the
//! rendered `workflowInputs`; `ref` among the inputs selects the branch, default `main`).
//! Credentials are organization secrets: `GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY` (a GitHub
//! App: a JWT signed with the key finds the repository's installation and buys an installation
//! token, cached per node until shortly before it expires), or `GITHUB_TOKEN`. `GITHUB_API_URL`
//! points at GitHub Enterprise (`https://ghe.example.com/api/v3`). With `reportWorkflowStatus`
//! (default true) the run follows the workflow run: its `link` is the run's page and it ends
//! `SUCCESS` or `FAILURE` on the conclusion. The workflow run is the one the dispatch answers
//! with (`return_run_details`), else the first `workflow_dispatch` run of the workflow created
//! after the dispatch.
//!
//! **GitLab:** the pipeline trigger API
//! (`POST {url}/api/v4/projects/{group%2Fproject}/trigger/pipeline`, `ref` = `defaultRef` or
//! `pipelineVariables.ref`, the other variables rendered), with the trigger token in the secret
//! `GITLAB_TRIGGER_TOKEN` (or `<group>_<project>`, as Port's agent names it); `GITLAB_URL` for
//! self-managed GitLab. The pipeline is followed when a `GITLAB_TOKEN` secret can read it.
//!
//! Calls go through the guarded outbound client and are kept on the run's trace (secrets and
//! tokens censored; token purchases are not traced). 429, 5xx and unreachable servers are
//! retried with the job's backoff; another 4xx ends the run `FAILURE` with the service's own
//! message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portolan_store::{NewJob, OrgId, Run, RunLog};
use serde_json::{Map, Value, json};

use super::action_run::{Ending, censor_value, flag, org_secrets, render};
use super::{JobCtx, JobError};
use crate::ops::action::set_status;
use crate::ops::audit::now_iso;
use crate::outbound::{Exchange, OutboundRequest};
use crate::state::AppState;

pub const FOLLOW_KIND: &str = "git_follow";
/// Where a run keeps what following it needs (hidden from the run object).
pub(super) const GIT_KEY: &str = "_git";
const GITHUB_API: &str = "https://api.github.com";
const GITLAB_URL: &str = "https://gitlab.com";
/// Who writes the follow job's log lines.
const FOLLOWER: &str = "portolan-git";

/// Installation tokens of GitHub Apps, per (organization, API, app, repository), until shortly
/// before they expire.
#[derive(Debug, Default)]
pub struct TokenCache(Mutex<HashMap<String, (String, Instant)>>);

impl TokenCache {
    fn get(&self, key: &str) -> Option<String> {
        let map = self.0.lock().ok()?;
        map.get(key).filter(|(_, until)| *until > Instant::now()).map(|(t, _)| t.clone())
    }

    fn put(&self, key: String, token: String, valid: Duration) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key, (token, Instant::now() + valid));
        }
    }
}

/// Why a call did not give what was asked.
enum Failed {
    /// Worth trying again later (429, 5xx, no answer).
    Transient(String),
    /// Refused for good, in the service's words.
    Refused(String),
}

/// A call's answer as JSON, or why it failed.
fn classify(service: &str, what: &str, ex: &Exchange) -> Result<Value, Failed> {
    let Some(resp) = &ex.response else {
        return Err(Failed::Transient(format!(
            "{service} did not answer {what}: {}",
            ex.error.clone().unwrap_or_default()
        )));
    };
    let body: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
    let limited = resp.status == 403
        && resp.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("x-ratelimit-remaining") && v.trim() == "0");
    if resp.status == 429 || resp.status >= 500 || limited {
        return Err(Failed::Transient(format!("{service} answered {what} with {} (retried later)", resp.status)));
    }
    if !(200..300).contains(&resp.status) {
        let msg = body["message"]
            .as_str()
            .map(str::to_string)
            .or_else(|| body.get("message").filter(|m| !m.is_null()).map(Value::to_string))
            .or_else(|| body["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| resp.body.chars().take(500).collect());
        return Err(Failed::Refused(format!("{service} refused {what} ({}): {msg}", resp.status)));
    }
    Ok(body)
}

async fn call(
    state: &AppState,
    method: &str,
    url: &str,
    headers: Vec<(String, String)>,
    body: Option<&Value>,
) -> Exchange {
    let mut headers = headers;
    headers.push(("user-agent".into(), format!("portolan/{}", env!("CARGO_PKG_VERSION"))));
    if body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
    state.outbound.send(OutboundRequest { method: method.into(), url: url.into(), headers, body }).await
}

fn secret<'a>(secrets: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    secrets.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn github_headers(token: &str) -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {token}")),
        ("accept".into(), "application/vnd.github+json".into()),
        ("x-github-api-version".into(), "2022-11-28".into()),
    ]
}

/// The JWT a GitHub App signs its API calls with (RS256, 9 minutes, backdated a minute).
fn app_jwt(app_id: &str, pem: &str) -> Result<String, String> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    if !pem.contains("BEGIN RSA PRIVATE KEY") {
        return Err("GITHUB_APP_PRIVATE_KEY must be the app's PEM key as GitHub gives it (BEGIN RSA PRIVATE KEY); \
                    convert a PKCS#8 key with `openssl rsa -traditional`"
            .into());
    }
    let der = STANDARD.decode(body).map_err(|e| format!("GITHUB_APP_PRIVATE_KEY is not valid PEM: {e}"))?;
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&der);
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iat": now - 60, "exp": now + 540, "iss": app_id});
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
        .map_err(|e| format!("GITHUB_APP_PRIVATE_KEY could not sign the app's JWT: {e}"))
}

/// A token for `repo` (`owner/name`): the app's installation token (cached), or `GITHUB_TOKEN`.
async fn github_token(
    state: &AppState,
    org: &OrgId,
    secrets: &Map<String, Value>,
    api: &str,
    repo: &str,
) -> Result<String, Failed> {
    let (Some(app), Some(pem)) = (secret(secrets, "GITHUB_APP_ID"), secret(secrets, "GITHUB_APP_PRIVATE_KEY")) else {
        return secret(secrets, "GITHUB_TOKEN").map(str::to_string).ok_or_else(|| {
            Failed::Refused(
                "no GitHub credentials: add the organization secrets GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (a \
                 GitHub App installed on the repository), or GITHUB_TOKEN"
                    .into(),
            )
        });
    };
    let key = format!("{}|{api}|{app}|{repo}", org.0);
    if let Some(t) = state.git_tokens.get(&key) {
        return Ok(t);
    }
    let jwt = app_jwt(app, pem).map_err(Failed::Refused)?;
    let ex = call(state, "GET", &format!("{api}/repos/{repo}/installation"), github_headers(&jwt), None).await;
    let installation = classify("GitHub", &format!("the app's installation on {repo}"), &ex)?["id"]
        .as_i64()
        .ok_or_else(|| Failed::Refused("GitHub's installation has no id".into()))?;
    let url = format!("{api}/app/installations/{installation}/access_tokens");
    let ex = call(state, "POST", &url, github_headers(&jwt), Some(&json!({}))).await;
    let body = classify("GitHub", "an installation token", &ex)?;
    let token = body["token"].as_str().ok_or_else(|| Failed::Refused("GitHub's answer holds no token".into()))?;
    let left = body["expires_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds())
        .unwrap_or(3600);
    // Kept until five minutes before it expires.
    let valid = Duration::from_secs(u64::try_from(left - 300).unwrap_or(0));
    state.git_tokens.put(key, token.to_string(), valid);
    Ok(token.to_string())
}

/// A triggering call's classified answer: the service's body, the run's end when the service
/// refused (with the call's `payload` and `trace`), or a retry of the job when it may answer
/// later.
fn answered(r: Result<Value, Failed>, payload: &Value, trace: &Value) -> Result<Result<Value, Ending>, JobError> {
    match r {
        Ok(b) => Ok(Ok(b)),
        Err(Failed::Transient(why)) => Err(JobError::Retry(why)),
        Err(Failed::Refused(why)) => {
            Ok(Err(Ending { payload: Some(payload.clone()), trace: Some(trace.clone()), ..Ending::failure(why) }))
        }
    }
}

fn trace_of(ex: &Exchange, censored: &[String], note: &str) -> Value {
    let refs: Vec<&str> = censored.iter().map(String::as_str).collect();
    let mut t = serde_json::to_value(ex.clone().censored(&refs)).unwrap_or(Value::Null);
    if let Some(o) = t.as_object_mut() {
        o.insert("note".into(), json!(note));
    }
    t
}

/// Invoke a `GITHUB` action run.
pub(super) async fn github(
    state: &AppState,
    org: &OrgId,
    inv: &Value,
    data: &Value,
    secrets: &Map<String, Value>,
    censored: &[String],
) -> Result<(Ending, Option<Value>), JobError> {
    let (owner, repo, workflow) = (inv["org"].as_str(), inv["repo"].as_str(), inv["workflow"].as_str());
    let (Some(owner), Some(repo), Some(workflow)) = (owner, repo, workflow) else {
        return Ok((Ending::failure("invocationMethod needs org, repo and workflow".into()), None));
    };
    let budget = state.jq.budget_for(&org.0);
    let inputs = match render(state, &budget, inv.get("workflowInputs").unwrap_or(&json!({})), data).await {
        Ok(Value::Object(m)) => m,
        Ok(other) => return Ok((Ending::failure(format!("workflowInputs rendered to {other}, not an object")), None)),
        Err(e) => return Ok((Ending::failure(format!("the invocation's templates did not render: {e}")), None)),
    };
    let report = match inv.get("reportWorkflowStatus") {
        None | Some(Value::Null) => true,
        Some(v) => flag(state, &budget, v, data, "reportWorkflowStatus").await.unwrap_or(true),
    };
    let mut inputs = inputs;
    let git_ref = match inputs.remove("ref") {
        Some(Value::String(r)) if !r.is_empty() => r,
        _ => "main".to_string(),
    };
    let api = secret(secrets, "GITHUB_API_URL").unwrap_or(GITHUB_API).trim_end_matches('/').to_string();
    let full = format!("{owner}/{repo}");
    let token = match github_token(state, org, secrets, &api, &full).await {
        Ok(t) => t,
        Err(Failed::Transient(why)) => return Err(JobError::Retry(why)),
        Err(Failed::Refused(why)) => return Ok((Ending::failure(why), None)),
    };
    let mut censored = censored.to_vec();
    censored.push(token.clone());
    let url = format!("{api}/repos/{full}/actions/workflows/{workflow}/dispatches");
    let body = json!({"ref": git_ref, "inputs": inputs, "return_run_details": true});
    let started = now_iso();
    let ex = call(state, "POST", &url, github_headers(&token), Some(&body)).await;
    let payload =
        censor_value(&json!({"type": "GITHUB", "url": url, "ref": git_ref, "inputs": body["inputs"]}), &censored);
    let trace = trace_of(&ex, &censored, "GitHub workflow dispatch");
    let answer = match answered(
        classify("GitHub", &format!("the dispatch of workflow {workflow} in {full}"), &ex),
        &payload,
        &trace,
    )? {
        Ok(b) => b,
        Err(refused) => return Ok((refused, None)),
    };
    let run_id = answer["workflow_run_id"].as_i64();
    let link = answer["html_url"].as_str().map(str::to_string);
    let summary = if report {
        format!("Dispatched workflow {workflow} on {full}@{git_ref}; following the workflow run.")
    } else {
        format!("Dispatched workflow {workflow} on {full}@{git_ref}; the workflow reports the run's status itself.")
    };
    let follow = report.then(|| {
        json!({"provider": "github", "api": api, "repo": full, "workflow": workflow, "ref": git_ref,
               "dispatchedAt": started, "runId": run_id, "status": null})
    });
    let mut ending = Ending { payload: Some(payload), trace: Some(trace), summary: Some(summary), ..Ending::default() };
    ending.link = link;
    Ok((ending, follow))
}

/// Invoke a `GITLAB` action run.
pub(super) async fn gitlab(
    state: &AppState,
    org: &OrgId,
    inv: &Value,
    data: &Value,
    secrets: &Map<String, Value>,
    censored: &[String],
) -> Result<(Ending, Option<Value>), JobError> {
    let (Some(group), Some(project)) = (inv["groupName"].as_str(), inv["projectName"].as_str()) else {
        return Ok((Ending::failure("invocationMethod needs groupName and projectName".into()), None));
    };
    let budget = state.jq.budget_for(&org.0);
    let mut vars = match render(state, &budget, inv.get("pipelineVariables").unwrap_or(&json!({})), data).await {
        Ok(Value::Object(m)) => m,
        Ok(other) => {
            return Ok((Ending::failure(format!("pipelineVariables rendered to {other}, not an object")), None));
        }
        Err(e) => return Ok((Ending::failure(format!("the invocation's templates did not render: {e}")), None)),
    };
    let git_ref = match vars.remove("ref") {
        Some(Value::String(r)) if !r.is_empty() => r,
        _ => inv["defaultRef"].as_str().unwrap_or("main").to_string(),
    };
    let variables: Map<String, Value> = vars
        .into_iter()
        .map(|(k, v)| (k, Value::String(v.as_str().map_or_else(|| v.to_string(), str::to_string))))
        .collect();
    let base = secret(secrets, "GITLAB_URL").unwrap_or(GITLAB_URL).trim_end_matches('/').to_string();
    let project_path = format!("{group}/{project}");
    let per_project = format!("{group}_{project}");
    let Some(trigger) = secret(secrets, "GITLAB_TRIGGER_TOKEN").or_else(|| secret(secrets, &per_project)) else {
        return Ok((
            Ending::failure(format!(
                "no GitLab trigger token: add the organization secret GITLAB_TRIGGER_TOKEN (or {per_project}) with \
                 a pipeline trigger token of {project_path}"
            )),
            None,
        ));
    };
    let mut censored = censored.to_vec();
    censored.push(trigger.to_string());
    let encoded = url::form_urlencoded::byte_serialize(project_path.as_bytes()).collect::<String>();
    let url = format!("{base}/api/v4/projects/{encoded}/trigger/pipeline");
    let body = json!({"token": trigger, "ref": git_ref, "variables": variables});
    let ex = call(state, "POST", &url, vec![], Some(&body)).await;
    let payload =
        censor_value(&json!({"type": "GITLAB", "url": url, "ref": git_ref, "variables": variables}), &censored);
    let trace = trace_of(&ex, &censored, "GitLab pipeline trigger");
    let answer = match answered(
        classify("GitLab", &format!("the pipeline trigger of {project_path}"), &ex),
        &payload,
        &trace,
    )? {
        Ok(b) => b,
        Err(refused) => return Ok((refused, None)),
    };
    let pipeline = answer["id"].as_i64();
    let followed = secret(secrets, "GITLAB_TOKEN").is_some() && pipeline.is_some();
    let summary = if followed {
        format!("Triggered pipeline {} of {project_path}@{git_ref}; following it.", pipeline.unwrap_or_default())
    } else {
        format!(
            "Triggered pipeline {} of {project_path}@{git_ref}; it is not followed (add a GITLAB_TOKEN secret that \
             can read pipelines), so the pipeline reports the run's status itself.",
            pipeline.map_or_else(|| "?".to_string(), |p| p.to_string())
        )
    };
    let follow = followed.then(
        || json!({"provider": "gitlab", "api": base, "repo": project_path, "pipeline": pipeline, "status": null}),
    );
    let mut ending = Ending { payload: Some(payload), trace: Some(trace), summary: Some(summary), ..Ending::default() };
    ending.link = answer["web_url"].as_str().map(str::to_string);
    Ok((ending, follow))
}

/// Queue the next look at a followed run.
pub(super) async fn follow_later(state: &AppState, org: &OrgId, run_id: &str) -> Result<(), JobError> {
    let job = NewJob { kind: FOLLOW_KIND.into(), payload: json!({"runId": run_id}), max_attempts: 3 };
    state.store.enqueue_job_after(org, &job, state.config.git_poll).await?;
    Ok(())
}

/// What one look at the workflow run / pipeline found.
struct Seen {
    /// The provider's id of the run (GitHub's workflow run id, once found).
    id: Option<i64>,
    status: Option<String>,
    link: Option<String>,
    /// `Some(SUCCESS | FAILURE, summary)` once it finished.
    end: Option<(&'static str, String)>,
}

/// The `git_follow` job: look at the workflow run / pipeline once; end the run when it has
/// finished, else look again after `git_poll`.
pub async fn follow(ctx: JobCtx) -> Result<Value, JobError> {
    let (org, state) = (ctx.job.org.clone(), &ctx.state);
    let Some(run) = super::payload_run(&ctx).await? else {
        return Ok(json!({"skipped": "the run no longer exists"}));
    };
    let Some(git) = run.data.get(GIT_KEY).cloned() else { return Ok(json!({"skipped": "nothing to follow"})) };
    if run.status != "IN_PROGRESS" || run.ended_by_log {
        return Ok(json!({"skipped": format!("the run is {}", run.status)}));
    }
    let secrets = org_secrets(state, &org).await?;
    let api = git["api"].as_str().unwrap_or_default().to_string();
    let repo = git["repo"].as_str().unwrap_or_default().to_string();
    let seen = match git["provider"].as_str() {
        Some("github") => match github_token(state, &org, &secrets, &api, &repo).await {
            Ok(token) => github_look(state, &git, &token).await,
            Err(e) => Err(e),
        },
        _ => match secret(&secrets, "GITLAB_TOKEN") {
            Some(token) => gitlab_look(state, &git, token).await,
            None => return stop(state, &org, &run, &git, "the GITLAB_TOKEN secret was removed".into()).await,
        },
    };
    let seen = match seen {
        Ok(s) => s,
        Err(Failed::Transient(_)) => return follow_again(state, &org, &run.id).await,
        Err(Failed::Refused(why)) => return stop(state, &org, &run, &git, why).await,
    };
    let mut next = git.clone();
    if let Some(id) = seen.id {
        next["runId"] = json!(id);
    }
    let changed = seen.status.is_some() && seen.status.as_deref() != git["status"].as_str();
    next["status"] = json!(seen.status);
    let what = match git["provider"].as_str() {
        Some("github") => format!("GitHub workflow run {}", next["runId"]),
        _ => format!("GitLab pipeline {}", git["pipeline"]),
    };
    let mut logs = vec![];
    if changed && seen.end.is_none() {
        logs.push(log_line(format!("{what} is {}", seen.status.clone().unwrap_or_default())));
    }
    if let Some((_, summary)) = &seen.end {
        logs.push(log_line(summary.clone()));
    }
    let now = now_iso();
    let end = seen.end.clone();
    let link = seen.link.clone();
    let mut edit = |r: &mut Run| {
        if r.status != "IN_PROGRESS" || r.ended_by_log {
            return Ok(());
        }
        r.data.insert(GIT_KEY.into(), next.clone());
        if let Some(l) = &link {
            r.data.insert("link".into(), json!([l]));
        }
        if let Some(s) = &next["status"].as_str() {
            r.data.insert("statusLabel".into(), json!(s));
        }
        if let Some((status, summary)) = &end {
            set_status(r, status, &now);
            r.data.insert("summary".into(), json!(summary));
        }
        r.updated_at = now.clone();
        Ok(())
    };
    state.store.update_run(&org, &run.id, &logs, &mut edit).await?;
    match seen.end {
        Some((status, _)) => Ok(json!({"ended": status})),
        None => follow_again(state, &org, &run.id).await,
    }
}

fn log_line(message: String) -> RunLog {
    RunLog {
        id: String::new(),
        at: now_iso(),
        message,
        termination_status: None,
        status_label: None,
        user_id: FOLLOWER.into(),
    }
}

async fn follow_again(state: &AppState, org: &OrgId, run_id: &str) -> Result<Value, JobError> {
    follow_later(state, org, run_id).await?;
    Ok(json!({"following": run_id}))
}

/// Following is impossible: end the run `FAILURE`, saying why.
async fn stop(state: &AppState, org: &OrgId, run: &Run, git: &Value, why: String) -> Result<Value, JobError> {
    let summary = format!("The run's {} could not be followed: {why}", git["provider"].as_str().unwrap_or("pipeline"));
    let now = now_iso();
    let mut edit = |r: &mut Run| {
        if r.status == "IN_PROGRESS" && !r.ended_by_log {
            set_status(r, "FAILURE", &now);
            r.data.insert("summary".into(), json!(summary));
        }
        Ok(())
    };
    state.store.update_run(org, &run.id, &[log_line(summary.clone())], &mut edit).await?;
    Ok(json!({"failed": why}))
}

async fn github_look(state: &AppState, git: &Value, token: &str) -> Result<Seen, Failed> {
    let api = git["api"].as_str().unwrap_or_default();
    let repo = git["repo"].as_str().unwrap_or_default();
    let id = match git["runId"].as_i64() {
        Some(id) => id,
        None => {
            // The first workflow_dispatch run of the workflow created since the dispatch.
            let since = git["dispatchedAt"].as_str().unwrap_or_default();
            let since_secs = chrono::DateTime::parse_from_rfc3339(since)
                .map(|t| (t - chrono::Duration::seconds(5)).format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default();
            let url = format!(
                "{api}/repos/{repo}/actions/workflows/{}/runs?event=workflow_dispatch&branch={}&created=%3E%3D{}&per_page=50",
                git["workflow"].as_str().unwrap_or_default(),
                url::form_urlencoded::byte_serialize(git["ref"].as_str().unwrap_or("main").as_bytes())
                    .collect::<String>(),
                since_secs
            );
            let ex = call(state, "GET", &url, github_headers(token), None).await;
            let body = classify("GitHub", "the list of workflow runs", &ex)?;
            let mut runs: Vec<&Value> = body["workflow_runs"]
                .as_array()
                .map(|a| {
                    a.iter().filter(|r| r["created_at"].as_str().unwrap_or_default() >= since_secs.as_str()).collect()
                })
                .unwrap_or_default();
            runs.sort_by_key(|r| (r["created_at"].as_str().unwrap_or_default().to_string(), r["id"].as_i64()));
            match runs.first().and_then(|r| r["id"].as_i64()) {
                Some(id) => id,
                // Not listed yet: look again.
                None => return Ok(Seen { id: None, status: None, link: None, end: None }),
            }
        }
    };
    let ex = call(state, "GET", &format!("{api}/repos/{repo}/actions/runs/{id}"), github_headers(token), None).await;
    let body = classify("GitHub", &format!("workflow run {id}"), &ex)?;
    let status = body["status"].as_str().map(str::to_string);
    let end = (status.as_deref() == Some("completed")).then(|| {
        let conclusion = body["conclusion"].as_str().unwrap_or("unknown");
        let s = if conclusion == "success" { "SUCCESS" } else { "FAILURE" };
        (s, format!("GitHub workflow run {id} completed: {conclusion}"))
    });
    Ok(Seen { id: Some(id), status, link: body["html_url"].as_str().map(str::to_string), end })
}

async fn gitlab_look(state: &AppState, git: &Value, token: &str) -> Result<Seen, Failed> {
    let base = git["api"].as_str().unwrap_or_default();
    let project =
        url::form_urlencoded::byte_serialize(git["repo"].as_str().unwrap_or_default().as_bytes()).collect::<String>();
    let id = git["pipeline"].as_i64().unwrap_or_default();
    let url = format!("{base}/api/v4/projects/{project}/pipelines/{id}");
    let ex = call(state, "GET", &url, vec![("private-token".into(), token.to_string())], None).await;
    let body = classify("GitLab", &format!("pipeline {id}"), &ex)?;
    let status = body["status"].as_str().map(str::to_string);
    let end = match status.as_deref() {
        Some("success") => Some(("SUCCESS", format!("GitLab pipeline {id} succeeded"))),
        Some(s @ ("failed" | "canceled" | "skipped")) => Some(("FAILURE", format!("GitLab pipeline {id} {s}"))),
        _ => None,
    };
    Ok(Seen { id: Some(id), status, link: body["web_url"].as_str().map(str::to_string), end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{TraceRequest, TraceResponse};

    fn answered(status: u16, headers: &[(&str, &str)], body: &str) -> Exchange {
        Exchange {
            request: TraceRequest { method: "POST".into(), url: "u".into(), headers: vec![], body: String::new() },
            response: Some(TraceResponse {
                status,
                headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                body: body.into(),
                body_truncated: false,
            }),
            redirects: vec![],
            duration_ms: 1,
            error: None,
        }
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried_other_refusals_are_final() {
        let transient = |ex: &Exchange| matches!(classify("GitHub", "x", ex), Err(Failed::Transient(_)));
        assert!(transient(&answered(429, &[], "")));
        assert!(transient(&answered(503, &[], "")));
        assert!(transient(&answered(403, &[("X-RateLimit-Remaining", "0")], r#"{"message":"API rate limit"}"#)));
        let mut none = answered(200, &[], "");
        none.response = None;
        none.error = Some("connection refused".into());
        assert!(transient(&none));
        match classify(
            "GitHub",
            "the dispatch",
            &answered(
                403,
                &[("x-ratelimit-remaining", "12")],
                r#"{"message":"Resource not accessible by integration"}"#,
            ),
        ) {
            Err(Failed::Refused(m)) => {
                assert_eq!(m, "GitHub refused the dispatch (403): Resource not accessible by integration")
            }
            _ => panic!("a 403 with requests left is final"),
        }
        match classify("GitLab", "the trigger", &answered(400, &[], r#"{"message":{"base":["Reference not found"]}}"#))
        {
            Err(Failed::Refused(m)) => assert!(m.contains("Reference not found"), "{m}"),
            _ => panic!("400 is final"),
        }
        assert_eq!(classify("GitHub", "x", &answered(204, &[], "")).ok(), Some(Value::Null));
    }

    #[test]
    fn an_app_key_that_is_not_pkcs1_pem_is_explained() {
        let e = app_jwt("1", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").unwrap_err();
        assert!(e.contains("openssl rsa -traditional"), "{e}");
        let e = app_jwt("1", "-----BEGIN RSA PRIVATE KEY-----\n!!!\n-----END RSA PRIVATE KEY-----").unwrap_err();
        assert!(e.contains("not valid PEM"), "{e}");
    }
}
