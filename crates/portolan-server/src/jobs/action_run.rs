//! The `action_run` job: invokes one run of a self-service action (port-api.md §5.4–§5.8).
//!
//! It renders the invocation's `{{ }}` templates over the run's trigger data (§5.5: inputs,
//! trigger, entity, action, run, secrets) and then, by `invocationMethod.type`:
//! - `WEBHOOK` without `agent`: calls the URL through the guarded outbound client, signed with
//!   `X-Port-Signature` / `X-Port-Timestamp` (§5.8). `synchronized`: the run ends with the
//!   answer (2xx SUCCESS, else FAILURE) and keeps the response; otherwise the backend reports
//!   back, and only a failed call ends the run (FAILURE).
//! - `WEBHOOK` with `agent`: the payload waits for an execution agent's claim
//!   (`POST /v1/actions/runs/claim-pending`).
//! - `UPSERT_ENTITY`: the server writes the templated entity itself (validation and audit as any
//!   write) and the run ends with the result.
//! - `GITHUB`, `GITLAB`: a workflow dispatch or pipeline trigger, followed to its end
//!   (`jobs/git.rs`).
//! - `KAFKA`, `AZURE_DEVOPS`, `INTEGRATION_ACTION`: accepted by the API, not run by this
//!   version: the run ends FAILURE at once, saying so.
//!
//! Every call is kept on the run's `trace` (request, answer, duration, error), with every
//! secret value censored; the stored `payload` is censored too. A job that dies between the
//! call and recording it is retried, so a webhook may be called twice (at least once).

use portolan_jq::{JqBudget, template};
use portolan_store::{OrgId, Run};
use serde_json::{Map, Value, json};

use super::{JobCtx, JobError};
use super::{automation, git};
use crate::error::ErrorCode;
use crate::ops::Actor;
use crate::ops::action::{self, AGENT_PAYLOAD_KEY, agent_payload_aad, set_status, signing_secret};
use crate::ops::audit::now_iso;
use crate::outbound::{Exchange, OutboundRequest, censor, port_signature};
use crate::state::AppState;

pub const KIND: &str = action::RUN_JOB;

pub async fn run(ctx: JobCtx) -> Result<Value, JobError> {
    let (org, state) = (ctx.job.org.clone(), &ctx.state);
    let Some(run) = super::payload_run(&ctx).await? else {
        return Ok(json!({"skipped": "the run no longer exists"}));
    };
    if run.status != "IN_PROGRESS" || run.pending_execution {
        return Ok(json!({"skipped": format!("the run is {} already", run.status)}));
    }
    let last_attempt = ctx.job.attempts >= ctx.job.max_attempts;
    match invoke(state, &org, &run).await {
        Ok(outcome) => Ok(outcome),
        Err(JobError::Retry(why)) if !last_attempt => Err(JobError::Retry(why)),
        Err(JobError::LeaseLost) => Err(JobError::LeaseLost),
        Err(e) => {
            let why = match &e {
                JobError::Retry(m) => m.clone(),
                JobError::Fail { message, .. } => message.clone(),
                JobError::LeaseLost => String::new(),
            };
            let end = Ending::failure(format!("the run could not be invoked: {why}"));
            end.apply(state, &org, &run.id).await?;
            Ok(json!({"failed": why}))
        }
    }
}

/// The organization's secrets in clear (name → value), for templates.
pub(super) async fn org_secrets(state: &AppState, org: &OrgId) -> Result<Map<String, Value>, JobError> {
    let stored = state.store.list_secrets(org).await?;
    let mut map = Map::new();
    if stored.is_empty() {
        return Ok(map);
    }
    let key = state.config.secrets_key.as_ref().ok_or_else(|| {
        JobError::fail(ErrorCode::SecretsKeyMissing, "organization secrets exist but no secrets key is configured")
    })?;
    for s in stored {
        match key.decrypt(&s.value, &crate::ops::secrets::secret_aad(org, &s.name)) {
            Ok(v) => {
                map.insert(s.name, json!(v));
            }
            Err(e) => {
                return Err(JobError::fail(
                    ErrorCode::Internal,
                    format!("organization secret {:?} does not decrypt with this server's secrets key: {e}", s.name),
                ));
            }
        }
    }
    Ok(map)
}

/// The trigger data of a self-service run (§5.5).
async fn trigger_data(
    state: &AppState,
    org: &OrgId,
    run: &Run,
    secrets: &Map<String, Value>,
) -> Result<Value, JobError> {
    if let Some(event) = run.data.get(automation::EVENT_KEY) {
        // An automation's run (port-api.md §5.5): the event instead of inputs and entity.
        return Ok(json!({
            "inputs": null,
            "trigger": {"by": event["trigger"]["by"], "origin": "AUTOMATION", "at": run.created_at},
            "event": event,
            "entity": null,
            "action": {"identifier": run.action},
            "run": {"id": run.id},
            "secrets": secrets,
        }));
    }
    let entity = match (&run.blueprint, &run.entity) {
        (Some(bp), Some(id)) => state
            .store
            .get_entity(org, bp, id)
            .await?
            .map_or(json!({}), |e| Value::Object(crate::computed::entity_json(&e))),
        _ => json!({}),
    };
    Ok(json!({
        "inputs": run.data.get("properties").cloned().unwrap_or(json!({})),
        "trigger": {
            "by": {"orgId": org.0, "userId": run.created_by,
                   "user": {"email": run.created_by, "id": run.created_by, "firstName": "", "lastName": "",
                            "phoneNumber": "", "picture": "", "status": "ACTIVE", "providers": []}},
            "origin": run.data.get("source").cloned().unwrap_or(json!("API")),
            "at": run.created_at,
            "operation": run.data.get("operation").cloned().unwrap_or(Value::Null),
        },
        "event": null,
        "entity": entity,
        "action": {"identifier": run.action, "blueprint": run.blueprint,
                   "encryptedProperties": run.data.get("encryptedProperties").cloned().unwrap_or(json!([]))},
        "run": {"id": run.id},
        "secrets": secrets,
    }))
}

/// What the job leaves on the run.
#[derive(Default)]
pub(super) struct Ending {
    /// `None`: the run stays in progress.
    pub(super) status: Option<&'static str>,
    pub(super) summary: Option<String>,
    pub(super) payload: Option<Value>,
    pub(super) response: Option<Value>,
    pub(super) trace: Option<Value>,
    /// Waiting for an agent, with the payload it gets (encrypted) if that differs from `payload`.
    pub(super) agent: Option<Option<String>>,
    pub(super) affected: Option<(String, String)>,
    /// The run's `link` (a workflow run's page).
    pub(super) link: Option<String>,
    /// What following the run needs (`jobs/git.rs`), kept hidden on the run.
    pub(super) follow: Option<Value>,
}

impl Ending {
    pub(super) fn failure(summary: String) -> Self {
        Ending { status: Some("FAILURE"), summary: Some(summary), ..Ending::default() }
    }

    async fn apply(self, state: &AppState, org: &OrgId, run_id: &str) -> Result<(), JobError> {
        let now = now_iso();
        let mut edit = |run: &mut Run| {
            if let Some(p) = &self.payload {
                run.data.insert("payload".into(), p.clone());
            }
            if let Some(r) = &self.response {
                run.data.insert("response".into(), r.clone());
            }
            if let Some(t) = &self.trace {
                run.trace.push(t.clone());
            }
            if let Some(l) = &self.link {
                run.data.insert("link".into(), json!([l]));
            }
            if let Some(f) = &self.follow {
                run.data.insert(git::GIT_KEY.into(), f.clone());
            }
            // A run that ended meanwhile (its backend reported, or it timed out) keeps the
            // summary it ended with; the call is still recorded.
            if let Some(s) = &self.summary
                && run.status == "IN_PROGRESS"
            {
                run.data.insert("summary".into(), json!(s));
            }
            if let Some(agent) = &self.agent {
                run.pending_execution = true;
                match agent {
                    Some(enc) => run.data.insert(AGENT_PAYLOAD_KEY.into(), json!(enc)),
                    None => run.data.remove(AGENT_PAYLOAD_KEY),
                };
            }
            if let Some(s) = self.status {
                if run.ended_by_log || run.status != "IN_PROGRESS" {
                    // The backend already reported (an asynchronous backend may be quick).
                    return Ok(());
                }
                set_status(run, s, &now);
            }
            run.updated_at = now.clone();
            Ok(())
        };
        state.store.update_run(org, run_id, &[], &mut edit).await?;
        if let Some(e) = &self.affected {
            state.store.add_run_entities(org, run_id, std::slice::from_ref(e), &now).await?;
        }
        Ok(())
    }
}

async fn invoke(state: &AppState, org: &OrgId, run: &Run) -> Result<Value, JobError> {
    let Some(action) = state.store.get_action(org, &run.action).await? else {
        Ending::failure(format!("action {:?} was deleted before the run was invoked", run.action))
            .apply(state, org, &run.id)
            .await?;
        return Ok(json!({"failed": "action deleted"}));
    };
    let inv = action.data.get("invocationMethod").cloned().unwrap_or(Value::Null);
    let kind = inv["type"].as_str().unwrap_or_default().to_string();
    let secrets = org_secrets(state, org).await?;
    let mut censored: Vec<String> = secrets.values().filter_map(Value::as_str).map(str::to_string).collect();
    let signing = signing_secret(state, org).await.map_err(JobError::from)?;
    if let Some(s) = &signing {
        censored.push(s.clone());
    }
    let data = trigger_data(state, org, run, &secrets).await?;
    let ending = match kind.as_str() {
        "WEBHOOK" => webhook(state, org, run, &inv, &data, signing.as_deref(), &censored).await?,
        "UPSERT_ENTITY" => upsert_entity(state, org, run, &inv, &data).await?,
        "GITHUB" | "GITLAB" => {
            let (mut ending, follow) = if kind == "GITHUB" {
                git::github(state, org, &inv, &data, &secrets, &censored).await?
            } else {
                git::gitlab(state, org, &inv, &data, &secrets, &censored).await?
            };
            if follow.is_some() {
                // Queued first: if the run's update below fails, the follow job finds nothing
                // to follow and stops.
                git::follow_later(state, org, &run.id).await?;
            }
            ending.follow = follow;
            ending
        }
        other => Ending::failure(format!(
            "invocation method {other} is accepted by this server but not run by this version of Portolan; nothing \
             was called. Use WEBHOOK (directly or through Port's execution agent), UPSERT_ENTITY, GITHUB or GITLAB."
        )),
    };
    let status = ending.status;
    ending.apply(state, org, &run.id).await?;
    Ok(json!({"invocation": kind, "status": status}))
}

/// Render a template over the trigger data (on a blocking thread: it runs tenant jq) within
/// `budget`: the organization's, one per invocation, shared by every template and flag of it.
pub(super) async fn render(
    state: &AppState,
    budget: &JqBudget,
    template: &Value,
    data: &Value,
) -> Result<Value, String> {
    let (jq, b, t, d) = (state.jq.clone(), budget.clone(), template.clone(), data.clone());
    tokio::task::spawn_blocking(move || template::render(&jq, &b, &t, &d).map_err(|e| e.to_string()))
        .await
        .map_err(|e| format!("the renderer stopped: {e}"))?
}

/// `agent` / `synchronized`: a boolean, or a jq expression over the trigger data (within
/// `budget`, as [`render`]).
pub(super) async fn flag(
    state: &AppState,
    budget: &JqBudget,
    v: &Value,
    data: &Value,
    path: &str,
) -> Result<bool, String> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        Value::String(src) => {
            let (jq, b, src, d) = (state.jq.clone(), budget.clone(), src.clone(), data.clone());
            let out = tokio::task::spawn_blocking(move || jq.first_in(&b, &src, &d))
                .await
                .map_err(|e| format!("the jq worker stopped: {e}"))?
                .map_err(|e| format!("invocationMethod.{path}: {e}"))?;
            Ok(matches!(out, Value::Bool(true)))
        }
        _ => Err(format!("invocationMethod.{path} must be a boolean or a jq expression")),
    }
}

pub(super) fn censor_value(v: &Value, secrets: &[String]) -> Value {
    if secrets.is_empty() {
        return v.clone();
    }
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let text = censor(&v.to_string(), &refs);
    serde_json::from_str(&text).unwrap_or_else(|_| json!("********"))
}

async fn webhook(
    state: &AppState,
    org: &OrgId,
    run: &Run,
    inv: &Value,
    data: &Value,
    signing: Option<&str>,
    secrets: &[String],
) -> Result<Ending, JobError> {
    let rendered = async {
        let budget = state.jq.budget_for(&org.0);
        let url = render(state, &budget, &inv["url"], data).await?;
        let headers = render(state, &budget, inv.get("headers").unwrap_or(&json!({})), data).await?;
        let body = render(state, &budget, inv.get("body").unwrap_or(&json!({})), data).await?;
        let agent = flag(state, &budget, &inv["agent"], data, "agent").await?;
        let synchronized = flag(state, &budget, &inv["synchronized"], data, "synchronized").await?;
        Ok::<_, String>((url, headers, body, agent, synchronized))
    };
    let (url, headers, body, agent, synchronized) = match rendered.await {
        Ok(r) => r,
        Err(e) => return Ok(Ending::failure(format!("the invocation's templates did not render: {e}"))),
    };
    let Some(url) = url.as_str().map(str::to_string) else {
        return Ok(Ending::failure(format!("invocationMethod.url rendered to {url}, not a URL string")));
    };
    let method = inv["method"].as_str().unwrap_or("POST").to_uppercase();
    let payload = json!({"type": "WEBHOOK", "url": url, "agent": agent, "synchronized": synchronized,
                         "method": method, "headers": headers, "body": body});
    let shown = censor_value(&payload, secrets);
    if agent {
        let hidden = if shown == payload {
            None
        } else {
            let key = state.config.secrets_key.as_ref().ok_or_else(|| {
                JobError::fail(
                    ErrorCode::SecretsKeyMissing,
                    "the agent's payload holds secrets and no secrets key is configured",
                )
            })?;
            Some(key.encrypt(&payload.to_string(), &agent_payload_aad(org, &run.id)))
        };
        return Ok(Ending { payload: Some(shown), agent: Some(hidden), ..Ending::default() });
    }
    let body_bytes = if method == "GET" { None } else { Some(serde_json::to_vec(&body).unwrap_or_default()) };
    let mut req_headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), format!("portolan/{}", env!("CARGO_PKG_VERSION"))),
    ];
    for (k, v) in headers.as_object().into_iter().flatten() {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        req_headers.push((k.clone(), v));
    }
    let mut note = None;
    match signing {
        Some(secret) => {
            let ts = chrono::Utc::now().timestamp();
            let sig = port_signature(secret, ts, body_bytes.as_deref().unwrap_or_default());
            req_headers.push(("X-Port-Timestamp".into(), ts.to_string()));
            req_headers.push(("X-Port-Signature".into(), sig));
        }
        None => {
            note = Some(
                "sent unsigned: no client secret is on record to sign with (credentials created before this version \
                 keep none; rotate one with POST /v1/apps/{id}/rotate-secret)",
            )
        }
    }
    let req = OutboundRequest { method: method.clone(), url: url.clone(), headers: req_headers, body: body_bytes };
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let exchange: Exchange = state.outbound.send(req).await.censored(&refs);
    let mut trace = serde_json::to_value(&exchange).unwrap_or(Value::Null);
    if let (Some(n), Some(o)) = (note, trace.as_object_mut()) {
        o.insert("note".into(), json!(n));
    }
    let mut ending = Ending { payload: Some(shown), trace: Some(trace), ..Ending::default() };
    match (&exchange.response, &exchange.error) {
        (_, Some(err)) => {
            ending.status = Some("FAILURE");
            ending.summary = Some(format!("the webhook call to {} failed: {err}", exchange.request.url));
        }
        (Some(resp), None) => {
            let ok = (200..300).contains(&resp.status);
            if synchronized {
                ending.response =
                    Some(serde_json::from_str(&resp.body).unwrap_or_else(|_| Value::String(resp.body.clone())));
                ending.status = Some(if ok { "SUCCESS" } else { "FAILURE" });
                ending.summary = Some(format!("the backend answered {}", resp.status));
            } else if !ok {
                ending.status = Some("FAILURE");
                ending.summary = Some(format!("the backend answered {}; the run was not accepted", resp.status));
            }
        }
        (None, None) => {
            ending.status = Some("FAILURE");
            ending.summary = Some("the webhook call got no answer".into());
        }
    }
    Ok(ending)
}

async fn upsert_entity(
    state: &AppState,
    org: &OrgId,
    run: &Run,
    inv: &Value,
    data: &Value,
) -> Result<Ending, JobError> {
    let budget = state.jq.budget_for(&org.0);
    let bp = match render(state, &budget, &inv["blueprintIdentifier"], data).await {
        Ok(Value::String(bp)) => bp,
        Ok(other) => return Ok(Ending::failure(format!("invocationMethod.blueprintIdentifier rendered to {other}"))),
        Err(e) => return Ok(Ending::failure(format!("invocationMethod.blueprintIdentifier did not render: {e}"))),
    };
    let mapping = match render(state, &budget, inv.get("mapping").unwrap_or(&json!({})), data).await {
        Ok(m) => m,
        Err(e) => return Ok(Ending::failure(format!("invocationMethod.mapping did not render: {e}"))),
    };
    let actor = Actor {
        client_id: run.created_by.clone(),
        org: org.clone(),
        user_agent: Some(format!("action:{}", run.action)),
        // Running the action was decided when the run was created.
        principal: portolan_core::permissions::Principal::Machine,
        blueprints_version: None,
        // An automation's write carries its chain on: the events it causes are one link deeper.
        depth: run
            .data
            .get(automation::DEPTH_KEY)
            .and_then(Value::as_u64)
            .map_or(0, |d| u32::try_from(d + 1).unwrap_or(u32::MAX)),
    };
    let blueprint = match crate::ops::entity::blueprint(state, org, &bp).await {
        Ok(b) => b,
        Err(e) => return Ok(Ending::failure(e.message)),
    };
    let opts = crate::ops::entity::WriteOptions { create_missing_related: false, ..Default::default() };
    let op = crate::ops::entity::Op::from_flags(true, false);
    match crate::ops::entity::write(state, &actor, &blueprint, None, &mapping, op, opts).await {
        Ok(w) => Ok(Ending {
            status: Some("SUCCESS"),
            summary: Some(format!(
                "{} entity {:?} of blueprint {bp:?}",
                if w.created { "created" } else { "updated" },
                w.entity.identifier
            )),
            payload: Some(json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": bp, "mapping": mapping})),
            affected: Some((bp, w.entity.identifier)),
            ..Ending::default()
        }),
        Err(e) if e.status.is_server_error() => Err(JobError::from(e)),
        Err(e) => Ok(Ending {
            payload: Some(json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": bp, "mapping": mapping})),
            ..Ending::failure(format!("the entity was refused: {}", e.message))
        }),
    }
}
