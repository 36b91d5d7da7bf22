//! The `approval_notify` job: tells the approvers of a run waiting for approval (§5.7), by the
//! action's `approvalNotification`:
//! - `{"type": "email"}` (the default): one message to the designated approvers through the
//!   server's SMTP server (`PORTOLAN_SMTP_URL`);
//! - `{"type": "webhook", "url", "format": "json" | "slack"}`: a POST through the guarded
//!   outbound client, signed like action webhooks (§5.8); `slack` posts Slack's
//!   `{text, blocks}` message shape, `json` the run.
//!
//! What happened is a run log line (and, for a webhook, the call in the run's trace), so a
//! requester can see who was asked and whether they were told. Unreachable servers and 5xx /
//! 429 answers are retried while attempts are left; the last attempt logs the failure. The
//! approvals inbox (`/ui/approvals`) lists the run either way.

use portolan_store::{OrgId, Run, RunLog};
use serde_json::{Value, json};

use super::{JobCtx, JobError};
use crate::ops::action::{render_run, signing_secret};
use crate::ops::approval;
use crate::ops::audit::now_iso;
use crate::outbound::{OutboundRequest, port_signature};
use crate::smtp::{self, Mail};
use crate::state::AppState;

pub const KIND: &str = approval::NOTIFY_JOB;
/// Who writes the notification's log line.
const NOTIFIER: &str = "portolan-approvals";

pub async fn run(ctx: JobCtx) -> Result<Value, JobError> {
    let (org, state) = (ctx.job.org.clone(), &ctx.state);
    let Some(run) = super::payload_run(&ctx).await? else {
        return Ok(json!({"skipped": "the run no longer exists"}));
    };
    let (Some(a), "WAITING_FOR_APPROVAL") = (approval::of(&run), run.status.as_str()) else {
        return Ok(json!({"skipped": format!("the run is {}", run.status)}));
    };
    let action = state.store.get_action(&org, &run.action).await?;
    let title =
        action.as_ref().and_then(|a| a.data["title"].as_str().map(str::to_string)).unwrap_or(run.action.clone());
    let how = action.as_ref().and_then(|a| a.data.get("approvalNotification").cloned()).unwrap_or(Value::Null);
    let last_attempt = ctx.job.attempts >= ctx.job.max_attempts;
    let inbox = format!("{}/ui/approvals", state.config.public_url.as_deref().unwrap_or(""));
    let text = message(&run, &title, &a.approvers, &inbox);
    let (line, trace) = match how["type"].as_str() {
        Some("webhook") => {
            let url = how["url"].as_str().unwrap_or_default().to_string();
            let body = if how["format"].as_str() == Some("slack") {
                json!({"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]})
            } else {
                json!({"type": "APPROVAL_REQUESTED", "run": render_run(&run), "action": {"identifier": run.action,
                    "title": title}, "requestedBy": run.created_by, "approvers": a.approvers, "mode": a.mode,
                    "inbox": inbox})
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
            if let Some(secret) = signing_secret(state, &org).await.map_err(JobError::from)? {
                let ts = chrono::Utc::now().timestamp();
                headers.push(("X-Port-Timestamp".into(), ts.to_string()));
                headers.push(("X-Port-Signature".into(), port_signature(&secret, ts, &bytes)));
            }
            let req = OutboundRequest { method: "POST".into(), url: url.clone(), headers, body: Some(bytes) };
            let exchange = state.outbound.send(req).await;
            let status = exchange.response.as_ref().map(|r| r.status);
            let failed = match (&exchange.error, status) {
                (Some(e), _) => Some(e.clone()),
                (None, Some(s)) if !(200..300).contains(&s) => Some(format!("it answered {s}")),
                _ => None,
            };
            let transient = exchange.error.is_some() || status.is_some_and(|s| s == 429 || s >= 500);
            if let Some(why) = &failed
                && transient
                && !last_attempt
            {
                return Err(JobError::Retry(format!("the approval webhook {url}: {why}")));
            }
            let line = match failed {
                Some(why) => format!("Approval requested; the notification webhook {url} could not be called: {why}"),
                None => format!("Approval requested; the notification webhook {url} answered {}", status.unwrap_or(0)),
            };
            (line, serde_json::to_value(&exchange).ok())
        }
        _ => (email(state, &a.approvers, &title, &text, last_attempt).await?, None),
    };
    record(state, &org, &run.id, line.clone(), trace).await?;
    Ok(json!({"notified": line}))
}

/// The notification's words (the e-mail body, Slack's text).
fn message(run: &Run, title: &str, approvers: &[String], inbox: &str) -> String {
    let on = run.entity.as_ref().map(|e| format!(" on entity {e}")).unwrap_or_default();
    let inputs = run.data.get("properties").map(Value::to_string).unwrap_or_else(|| "{}".into());
    let asked = if approvers.is_empty() { "anyone allowed to approve it".to_string() } else { approvers.join(", ") };
    format!(
        "{} asked to run the action \"{title}\"{on} (run {}).\nInputs: {inputs}\nApprovers: {asked}\n\nApprove or \
         decline it in the approvals inbox: {inbox}",
        run.created_by, run.id
    )
}

/// E-mail the approvers; the log line saying what happened. Transient failures retry while
/// attempts are left.
async fn email(
    state: &AppState,
    approvers: &[String],
    title: &str,
    text: &str,
    last_attempt: bool,
) -> Result<String, JobError> {
    let Some(cfg) = &state.config.smtp else {
        return Ok("Approval requested; the approvers were not e-mailed: this server has no SMTP server configured \
                   (PORTOLAN_SMTP_URL). They find the run in their approvals inbox."
            .into());
    };
    if approvers.is_empty() {
        return Ok("Approval requested; nobody is named by the action's approve permission, so no e-mail was sent \
                   (an administrator can approve it)."
            .into());
    }
    let mail = Mail { to: approvers.to_vec(), subject: format!("Approval requested: {title}"), text: text.into() };
    match smtp::send(cfg, &mail).await {
        Ok(answer) => Ok(format!(
            "Approval requested; e-mailed {} through {} ({})",
            approvers.join(", "),
            cfg.server(),
            answer.lines().next().unwrap_or("")
        )),
        Err(e) if !last_attempt => Err(JobError::Retry(e)),
        Err(e) => Ok(format!("Approval requested; the approvers could not be e-mailed: {e}")),
    }
}

/// Append the log line (and the webhook call to the trace) without changing the run.
async fn record(state: &AppState, org: &OrgId, id: &str, line: String, trace: Option<Value>) -> Result<(), JobError> {
    let log = RunLog {
        id: String::new(),
        at: now_iso(),
        message: line,
        termination_status: None,
        status_label: None,
        user_id: NOTIFIER.into(),
    };
    let mut edit = |r: &mut Run| {
        if let Some(t) = &trace {
            let mut t = t.clone();
            if let Some(o) = t.as_object_mut() {
                o.insert("note".into(), json!("approval notification"));
            }
            r.trace.push(t);
        }
        Ok(())
    };
    state.store.update_run(org, id, &[log], &mut edit).await?;
    Ok(())
}
