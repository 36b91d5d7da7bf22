//! Approvals (issue 14, port-api.md §5.7): runs of an action with `requiredApproval` wait for
//! the approvers its `approve` permission names; ANY starts on one approval, ALL on every
//! designated approver's; a declined run is never invoked; approvers are told by e-mail (a
//! local SMTP sink) or by webhook (JSON or Slack's shape, signed).

use std::time::Duration;

use portolan_server::ApiConfig;
use portolan_server::secrets::SecretsKey;
use portolan_server::smtp::SmtpConfig;
use portolan_server::smtp::sink::{Sink, SinkOptions};
use serde_json::{Value, json};

use crate::helpers::{Recorder, TestApp, assert_error, assert_invalid, person};

fn config(smtp: Option<&Sink>) -> ApiConfig {
    ApiConfig {
        secrets_key: Some(SecretsKey::generate()),
        job_poll: Duration::from_millis(50),
        public_url: Some("https://portal.example.com".into()),
        smtp: smtp.map(|s| SmtpConfig::parse(&s.url(), "portal@example.com").unwrap()),
        ..ApiConfig::default()
    }
}

/// `deploy`: a webhook action needing `approval` (`{"type": "ANY"}`, …), notified by `notify`.
async fn setup(app: &TestApp, be: &Recorder, approval: Value, notify: Option<Value>) {
    app.blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {}}})).await;
    let mut a = json!({
        "identifier": "deploy", "title": "Deploy",
        "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
            "userInputs": {"properties": {"version": {"type": "string"}}}},
        "invocationMethod": {"type": "WEBHOOK", "url": format!("{}/deploy", be.url), "synchronized": true},
        "requiredApproval": approval,
    });
    if let Some(n) = notify {
        a["approvalNotification"] = n;
    }
    let r = app.post("/v1/actions", a).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
}

async fn start(app: &TestApp, token: &str) -> String {
    let r = app.req_as(token, "POST", "/v1/actions/deploy/runs", Some(json!({"properties": {"version": "2.0"}}))).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    assert_eq!(r.body["run"]["status"], "WAITING_FOR_APPROVAL", "{}", r.body);
    assert!(r.body["run"]["timeoutAt"].is_null(), "a waiting run has no timeout yet: {}", r.body);
    r.body["run"]["id"].as_str().unwrap().to_string()
}

async fn decide(app: &TestApp, token: &str, id: &str, status: &str, description: Option<&str>) -> crate::helpers::Res {
    let body = json!({"status": status, "description": description});
    app.req_as(token, "PATCH", &format!("/v1/actions/runs/{id}/approval"), Some(body)).await
}

async fn logs(app: &TestApp, id: &str) -> Vec<String> {
    let r = app.get(&format!("/v1/actions/runs/{id}/logs")).await;
    r.body["runLogs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap().to_string()).collect()
}

async fn wait_log(app: &TestApp, id: &str, needle: &str) -> Vec<String> {
    for _ in 0..200 {
        let l = logs(app, id).await;
        if l.iter().any(|m| m.contains(needle)) {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} never logged {needle:?}: {:?}", logs(app, id).await);
}

#[tokio::test]
async fn any_starts_on_one_approval_from_an_allowed_approver() {
    let sink = Sink::start(SinkOptions::default()).await.unwrap();
    let Some(app) = TestApp::spawn_with(config(Some(&sink))).await else { return };
    let be = Recorder::start().await;
    setup(&app, &be, json!({"type": "ANY"}), None).await;
    let dev = person(&app, "usr_dev", "dev@example.com", json!(["Member"]), json!([])).await;
    let lead = person(&app, "usr_lead", "lead@example.com", json!(["Admin"]), json!([])).await;
    let id = start(&app, &dev).await;

    // The admin is designated (the default approve grant is the Admin role) and e-mailed.
    let mails = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, ["lead@example.com"]);
    assert_eq!(mails[0].header("Subject").as_deref(), Some("Approval requested: Deploy"));
    let text = mails[0].text();
    assert!(text.contains("dev@example.com asked to run the action \"Deploy\""), "{text}");
    assert!(text.contains("https://portal.example.com/ui/approvals") && text.contains("\"version\":\"2.0\""), "{text}");
    wait_log(&app, &id, "e-mailed lead@example.com through 127.0.0.1").await;
    let r =
        app.req_as(&dev, "GET", &format!("/v1/actions/runs/{id}/approvers?include_pending_approvers=true"), None).await;
    assert_eq!(r.body["approvers"], json!([{"userId": "lead@example.com", "state": "PENDING", "description": null}]));

    // Nothing was invoked; the requester (a member) may not approve; the run may not be
    // reported on while it waits, except withdrawn.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(be.calls("/deploy").is_empty(), "a waiting run is not invoked");
    let r = decide(&app, &dev, &id, "APPROVE", None).await;
    assert_error(&r, 403, "forbidden");
    assert!(r.body["message"].as_str().unwrap().contains("may not approve runs of action \"deploy\""), "{}", r.body);
    let r = app.patch(&format!("/v1/actions/runs/{id}"), json!({"status": "SUCCESS"})).await;
    assert_invalid(&r, "status");
    assert!(r.body["message"].as_str().unwrap().contains("waiting for approval"), "{}", r.body);
    let r = decide(&app, &lead, &id, "MAYBE", None).await;
    assert_invalid(&r, "status");

    let r = decide(&app, &lead, &id, "APPROVE", Some("ship it")).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_eq!(r.body["run"]["status"], "IN_PROGRESS");
    assert_eq!(
        r.body["run"]["approval"],
        json!({"userId": "lead@example.com", "state": "APPROVED", "description": "ship it"})
    );
    assert!(r.body["run"]["timeoutAt"].is_string(), "the timeout starts with the run: {}", r.body);
    assert!(r.body["run"].get("_approval").is_none(), "the server's keys stay hidden");
    let done = app.wait_run(&id, |r| r["status"] == "SUCCESS").await;
    assert_eq!(be.calls("/deploy").len(), 1, "{done}");
    assert!(logs(&app, &id).await.iter().any(|m| m == "lead@example.com approved the run: ship it"));
    let r = decide(&app, &lead, &id, "APPROVE", None).await;
    assert_error(&r, 409, "conflict");
    assert!(r.body["message"].as_str().unwrap().contains("not waiting for approval"), "{}", r.body);
}

#[tokio::test]
async fn all_waits_for_every_designated_approver_and_a_decline_ends_the_run_uninvoked() {
    let Some(app) = TestApp::spawn_with(config(None)).await else { return };
    let be = Recorder::start().await;
    setup(&app, &be, json!({"type": "ALL"}), None).await;
    app.teams(&["sre"]).await;
    let dev = person(&app, "usr_dev", "dev@example.com", json!(["Member"]), json!([])).await;
    let a = person(&app, "usr_a", "a@example.com", json!(["Member"]), json!([])).await;
    let b = person(&app, "usr_b", "b@example.com", json!(["Member"]), json!(["sre"])).await;
    let admin = person(&app, "usr_ad", "admin@example.com", json!(["Admin"]), json!([])).await;
    // a by e-mail, b through the sre team; the Admin role is no longer named.
    let r = app
        .patch(
            "/v1/actions/deploy/permissions",
            json!({"approve": {"roles": [], "users": ["a@example.com"], "teams": ["sre"]}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);

    let id = start(&app, &dev).await;
    // Without an SMTP server the run says that nobody was e-mailed, and where to look.
    wait_log(&app, &id, "no SMTP server configured (PORTOLAN_SMTP_URL)").await;
    let r = decide(&app, &a, &id, "APPROVE", None).await;
    assert_eq!(
        (r.status.as_u16(), r.body["run"]["status"].as_str()),
        (201, Some("WAITING_FOR_APPROVAL")),
        "{}",
        r.body
    );
    let r = decide(&app, &a, &id, "APPROVE", None).await;
    assert_error(&r, 409, "conflict");
    let r = decide(&app, &admin, &id, "APPROVE", None).await;
    assert_error(&r, 403, "forbidden");
    assert!(
        r.body["message"].as_str().unwrap().contains("each of its designated approvers (a@example.com, b@example.com)")
    );
    // The approvers see the run (they are asked), and who has decided.
    let r =
        app.req_as(&b, "GET", &format!("/v1/actions/runs/{id}/approvers?include_pending_approvers=true"), None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let states: Vec<(&str, &str)> = r.body["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["userId"].as_str().unwrap(), x["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("a@example.com", "APPROVED"), ("b@example.com", "PENDING")]);
    let r = decide(&app, &b, &id, "APPROVE", None).await;
    assert_eq!(r.body["run"]["status"], "IN_PROGRESS", "{}", r.body);
    app.wait_run(&id, |r| r["status"] == "SUCCESS").await;

    // A second run, declined by an administrator: never invoked, ended for good.
    let id2 = start(&app, &dev).await;
    decide(&app, &a, &id2, "APPROVE", None).await;
    let r = decide(&app, &admin, &id2, "DECLINE", Some("not on a Friday")).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    let declined = &r.body["run"];
    assert_eq!(declined["status"], "DECLINED");
    assert!(declined["endedAt"].is_string(), "{declined}");
    assert_eq!(declined["summary"], "Declined by admin@example.com: not on a Friday");
    assert_error(&decide(&app, &b, &id2, "APPROVE", None).await, 409, "conflict");
    let r = app.patch(&format!("/v1/actions/runs/{id2}"), json!({"status": "SUCCESS"})).await;
    assert!(r.body["message"].as_str().unwrap().contains("was declined"), "{}", r.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(be.calls("/deploy").len(), 1, "the declined run was never invoked");
    assert_eq!(app.run(&id2).await["status"], "DECLINED");
    let r = app.get("/v1/actions/runs?active=false&action_identifier=deploy").await;
    assert!(r.body["runs"].as_array().unwrap().iter().any(|x| x["id"] == json!(id2)), "{}", r.body);
}

#[tokio::test]
async fn webhook_notifications_are_signed_in_json_or_slacks_shape_and_runs_can_be_withdrawn() {
    let Some(app) = TestApp::spawn_with(config(None)).await else { return };
    let be = Recorder::start().await;
    let notify = json!({"type": "webhook", "format": "slack", "url": format!("{}/slack", be.url)});
    setup(&app, &be, json!(true), Some(notify)).await;
    let dev = person(&app, "usr_dev", "dev@example.com", json!(["Member"]), json!([])).await;
    person(&app, "usr_lead", "lead@example.com", json!(["Admin"]), json!([])).await;
    let id = start(&app, &dev).await;
    let slack = be.wait_for("/slack", 1).await;
    assert_eq!(slack.len(), 1);
    let text = slack[0]["text"].as_str().unwrap();
    assert!(text.contains("dev@example.com asked to run the action \"Deploy\"") && text.contains(&id), "{text}");
    assert_eq!(slack[0]["blocks"][0]["text"]["type"], "mrkdwn");
    let call = &be.received("/slack")[0];
    assert!(call.headers.get("x-port-signature").is_some_and(|s| s.to_str().unwrap().starts_with("v1,")));
    let logged = wait_log(&app, &id, "notification webhook").await;
    assert!(logged.iter().any(|m| m.contains("answered 200")), "{logged:?}");
    let traced = app.run(&id).await;
    assert_eq!(traced["trace"][0]["note"], "approval notification", "{traced}");

    // JSON format: the run itself.
    let notify = json!({"type": "webhook", "format": "json", "url": format!("{}/json", be.url)});
    let mut a = app.get("/v1/actions/deploy").await.body["action"].clone();
    a["approvalNotification"] = notify;
    let r = app.put("/v1/actions/deploy", a).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let id2 = start(&app, &dev).await;
    let sent = be.wait_for("/json", 1).await;
    assert_eq!(
        (sent[0]["type"].as_str(), sent[0]["run"]["id"].as_str()),
        (Some("APPROVAL_REQUESTED"), Some(id2.as_str()))
    );
    assert_eq!(sent[0]["approvers"], json!(["lead@example.com"]));

    // A waiting run is withdrawn with FAILURE, and then cannot be approved.
    let r = app.patch(&format!("/v1/actions/runs/{id2}"), json!({"status": "FAILURE", "summary": "withdrawn"})).await;
    assert_eq!(r.body["run"]["status"], "FAILURE", "{}", r.body);
    assert_error(
        &app.patch(&format!("/v1/actions/runs/{id2}/approval"), json!({"status": "APPROVE"})).await,
        409,
        "conflict",
    );
    assert!(be.calls("/deploy").is_empty());
}
