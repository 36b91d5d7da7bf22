//! Automations (issue 14, port-api.md §5.3): entity events recorded with the change, the JQ
//! condition over Port's event object, each automation run once per event on any number of
//! nodes, a loop cut with an explanation, and a failing condition shown on a run.

use std::time::Duration;

use portolan_server::ApiConfig;
use portolan_server::secrets::SecretsKey;
use serde_json::{Value, json};

use crate::helpers::{Recorder, TestApp};

fn config() -> ApiConfig {
    ApiConfig { secrets_key: Some(SecretsKey::generate()), job_poll: Duration::from_millis(50), ..ApiConfig::default() }
}

async fn model(app: &TestApp) {
    app.blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {
        "status": {"type": "string"}, "counter": {"type": "number"}}}}))
        .await;
}

fn automation(id: &str, event: &str, url: &str, condition: Option<Value>) -> Value {
    let mut a = json!({
        "identifier": id, "title": id,
        "trigger": {"type": "automation", "event": {"type": event, "blueprintIdentifier": "service"}},
        "invocationMethod": {"type": "WEBHOOK", "url": url, "synchronized": true, "method": "POST",
            "body": {"event": "{{ .event }}", "entity": "{{ .event.context.entityIdentifier }}",
                     "origin": "{{ .trigger.origin }}", "run": "{{ .run.id }}"}}
    });
    if let Some(c) = condition {
        a["trigger"]["condition"] = c;
    }
    a
}

async fn runs_of(app: &TestApp, action: &str) -> Vec<Value> {
    let r = app.get(&format!("/v1/actions/runs?action_identifier={action}&limit=100")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    r.body["runs"].as_array().cloned().unwrap_or_default()
}

/// Wait until `action` has `n` runs, none in progress (at most 10 s).
async fn wait_runs(app: &TestApp, action: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let runs = runs_of(app, action).await;
        if runs.len() >= n && runs.iter().all(|r| r["status"] != json!("IN_PROGRESS")) {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{action}: wanted {n} ended runs, have {:?}", runs_of(app, action).await);
}

#[tokio::test]
async fn entity_events_start_the_automations_listening_with_ports_event_object() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    model(&app).await;
    let be = Recorder::start().await;
    let degraded = json!({"type": "JQ", "combinator": "and", "expressions": [
        ".diff.before.properties.status == \"ok\"", ".diff.after.properties.status != \"ok\""]});
    for a in [
        automation("on_create", "ENTITY_CREATED", &format!("{}/created", be.url), None),
        automation("on_degraded", "ENTITY_UPDATED", &format!("{}/degraded", be.url), Some(degraded)),
        automation("on_delete", "ENTITY_DELETED", &format!("{}/deleted", be.url), None),
        automation("on_any", "ANY_ENTITY_CHANGE", &format!("{}/any", be.url), None),
    ] {
        let r = app.post("/v1/actions", a).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    }
    app.entity("service", json!({"identifier": "svc-1", "properties": {"status": "ok", "counter": 1}})).await;
    // The same entity again: nothing changed, so no ENTITY_UPDATED.
    let same = json!({"identifier": "svc-1", "properties": {"status": "ok", "counter": 1}});
    let r = app.post("/v1/blueprints/service/entities?upsert=true", same).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let r = app.patch("/v1/blueprints/service/entities/svc-1", json!({"properties": {"counter": 2}})).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let r = app.patch("/v1/blueprints/service/entities/svc-1", json!({"properties": {"status": "down"}})).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(app.delete("/v1/blueprints/service/entities/svc-1").await.status.as_u16(), 200);

    let created = be.wait_for("/created", 1).await;
    assert_eq!(created.len(), 1, "{created:?}");
    let ev = &created[0]["event"];
    assert_eq!((ev["action"].clone(), ev["resourceType"].clone()), (json!("CREATE"), json!("entity")));
    assert_eq!(
        ev["context"],
        json!({"blueprintIdentifier": "service", "entityIdentifier": "svc-1",
        "propertyIdentifier": null})
    );
    assert_eq!(ev["diff"]["before"], Value::Null);
    assert_eq!(ev["diff"]["after"]["properties"]["status"], json!("ok"));
    assert_eq!(ev["trigger"]["by"]["userId"], json!(app.client_id));
    assert_eq!((created[0]["entity"].clone(), created[0]["origin"].clone()), (json!("svc-1"), json!("AUTOMATION")));

    let degraded = be.wait_for("/degraded", 1).await;
    assert_eq!(degraded.len(), 1, "only the update that left \"ok\": {degraded:?}");
    assert_eq!(degraded[0]["event"]["diff"]["after"]["properties"]["status"], json!("down"));
    let deleted = be.wait_for("/deleted", 1).await;
    assert_eq!((deleted.len(), deleted[0]["event"]["diff"]["after"].clone()), (1, Value::Null));
    let any = be.wait_for("/any", 4).await;
    let actions: Vec<&str> = any.iter().map(|c| c["event"]["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["CREATE", "UPDATE", "UPDATE", "DELETE"], "the unchanged write made no event");

    let runs = wait_runs(&app, "on_degraded", 1).await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!((run["status"].clone(), run["source"].clone()), (json!("SUCCESS"), json!("AUTOMATION")), "{run}");
    assert_eq!(run["entity"]["identifier"], json!("svc-1"));
    assert_eq!(degraded[0]["run"], run["id"]);
    assert!(run.get("_event").is_none(), "bookkeeping is not shown: {run}");
    // Numbers and booleans in the query string (`limit=100` was refused as "expected u32").
    let r = app.get("/v1/actions/runs?active=false&limit=2").await;
    assert_eq!((r.status.as_u16(), r.body["runs"].as_array().map(Vec::len)), (200, Some(2)), "{}", r.body);
    let r = app.get("/v1/actions/runs?limit=ten").await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.body["message"].as_str().unwrap().contains("\"ten\" is not a whole number"), "{}", r.body);

    // Bulk writes start one run per entity.
    let bulk = json!({"entities": [{"identifier": "a"}, {"identifier": "b"}, {"identifier": "c"}]});
    let r = app.post("/v1/blueprints/service/entities/bulk", bulk).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let created = be.wait_for("/created", 4).await;
    let mut ids: Vec<&str> = created.iter().map(|c| c["entity"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["a", "b", "c", "svc-1"]);
}

#[tokio::test]
async fn a_failing_condition_and_an_unpublished_automation_are_handled_visibly() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    model(&app).await;
    let be = Recorder::start().await;
    let bad = json!({"type": "JQ", "combinator": "and", "expressions": ["true", ".diff.after | error(\"no way\")"]});
    app.post("/v1/actions", automation("broken", "ENTITY_CREATED", &format!("{}/broken", be.url), Some(bad))).await;
    let mut off = automation("off", "ENTITY_CREATED", &format!("{}/off", be.url), None);
    off["publish"] = json!(false);
    app.post("/v1/actions", off).await;
    let or = json!({"type": "JQ", "combinator": "or", "expressions": ["false", ".diff.after.identifier == \"x\""]});
    app.post("/v1/actions", automation("either", "ENTITY_CREATED", &format!("{}/either", be.url), Some(or))).await;
    app.entity("service", json!({"identifier": "x"})).await;
    app.entity("service", json!({"identifier": "y"})).await;

    let runs = wait_runs(&app, "broken", 2).await;
    assert_eq!(runs.len(), 2);
    for r in &runs {
        assert_eq!(r["status"], json!("FAILURE"));
        let s = r["summary"].as_str().unwrap();
        assert!(s.contains("trigger.condition.expressions[1]") && s.contains("no way"), "{s}");
    }
    assert_eq!(be.wait_for("/either", 1).await.len(), 1, "or: only x");
    assert!(be.calls("/broken").is_empty() && be.calls("/off").is_empty());
    assert!(runs_of(&app, "off").await.is_empty(), "an unpublished automation does not run");
}

#[tokio::test]
async fn an_automation_that_triggers_itself_is_cut_with_an_explanation() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    model(&app).await;
    let bump = json!({
        "identifier": "bump", "title": "Bump",
        "trigger": {"type": "automation", "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"}},
        "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service", "mapping": {
            "identifier": "{{ .event.context.entityIdentifier }}",
            "properties": {"counter": "{{ .event.diff.after.properties.counter + 1 }}"}}}
    });
    let r = app.post("/v1/actions", bump).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    app.entity("service", json!({"identifier": "loop", "properties": {"counter": 0}})).await;
    app.patch("/v1/blueprints/service/entities/loop", json!({"properties": {"counter": 1}})).await;

    let runs = wait_runs(&app, "bump", 11).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs_after = runs_of(&app, "bump").await;
    assert_eq!(runs_after.len(), 11, "the chain stops: {runs:?}");
    let failed: Vec<&Value> = runs_after.iter().filter(|r| r["status"] == json!("FAILURE")).collect();
    assert_eq!(failed.len(), 1, "{runs_after:?}");
    let s = failed[0]["summary"].as_str().unwrap();
    assert!(s.contains("chain of 10 automation runs") && s.contains("cut at 10"), "{s}");
    let e = app.get("/v1/blueprints/service/entities/loop").await;
    assert_eq!(e.body["entity"]["properties"]["counter"], json!(11), "{}", e.body);
}

#[tokio::test]
async fn events_outlive_the_writer_and_two_nodes_run_each_automation_once() {
    // The writing node runs no jobs (as if it died right after answering).
    let first = ApiConfig { job_workers: 0, ..config() };
    let Some(app) = TestApp::spawn_with(first.clone()).await else { return };
    model(&app).await;
    let be = Recorder::start().await;
    app.post("/v1/actions", automation("on_create", "ENTITY_CREATED", &format!("{}/created", be.url), None)).await;
    for i in 0..30 {
        app.entity("service", json!({"identifier": format!("s{i}")})).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(be.calls("/created").is_empty(), "nothing runs on a node without workers");

    let workers = ApiConfig { job_workers: 2, ..first.clone() };
    app.extra_node(workers.clone()).await;
    app.extra_node(workers).await;
    let calls = be.wait_for("/created", 30).await;
    let mut ids: Vec<String> = calls.iter().map(|c| c["entity"].as_str().unwrap().to_string()).collect();
    ids.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("s{i}")).collect();
    want.sort();
    assert_eq!(ids, want, "each entity's event ran the automation exactly once");
    assert_eq!(wait_runs(&app, "on_create", 30).await.len(), 30);
}

#[tokio::test]
async fn run_events_start_automations_and_automations_chain() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    model(&app).await;
    let be = Recorder::start().await;
    let deploy = json!({
        "identifier": "deploy", "title": "Deploy",
        "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
        "invocationMethod": {"type": "WEBHOOK", "url": format!("{}/deploy", be.url), "synchronized": true}
    });
    assert_eq!(app.post("/v1/actions", deploy).await.status.as_u16(), 201);
    let after = json!({
        "identifier": "after_deploy", "title": "After a deploy",
        "trigger": {"type": "automation", "event": {"type": "RUN_UPDATED", "actionIdentifier": "deploy"},
            "condition": {"type": "JQ", "combinator": "and", "expressions": [".diff.after.status == \"SUCCESS\""]}},
        "invocationMethod": {"type": "WEBHOOK", "url": format!("{}/after", be.url), "synchronized": true,
            "body": {"event": "{{ .event }}"}}
    });
    assert_eq!(app.post("/v1/actions", after).await.status.as_u16(), 201);
    let chained = json!({
        "identifier": "chained", "title": "Chained",
        "trigger": {"type": "automation", "event": {"type": "RUN_CREATED", "actionIdentifier": "after_deploy"}},
        "invocationMethod": {"type": "WEBHOOK", "url": format!("{}/chained", be.url), "synchronized": true,
            "body": {"event": "{{ .event }}"}}
    });
    assert_eq!(app.post("/v1/actions", chained).await.status.as_u16(), 201);

    let r = app.post("/v1/actions/deploy/runs", json!({"properties": {}})).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    let run_id = r.body["run"]["id"].clone();
    let got = be.wait_for("/after", 1).await;
    assert_eq!(got.len(), 1, "one RUN_UPDATED to SUCCESS: {got:?}");
    let ev = &got[0]["event"];
    assert_eq!((ev["action"].as_str(), ev["resourceType"].as_str()), (Some("UPDATE"), Some("run")));
    assert_eq!(ev["context"]["action"]["identifier"], json!("deploy"));
    assert_eq!(
        (ev["diff"]["before"]["status"].clone(), ev["diff"]["after"]["status"].clone()),
        (json!("IN_PROGRESS"), json!("SUCCESS"))
    );
    assert_eq!(ev["diff"]["after"]["id"], run_id);
    let got = be.wait_for("/chained", 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["event"]["diff"]["after"]["action"]["identifier"], json!("after_deploy"));
    assert_eq!(got[0]["event"]["action"], json!("CREATE"));
    assert_eq!(wait_runs(&app, "chained", 1).await[0]["status"], json!("SUCCESS"));
}

fn timer_model() -> Value {
    json!({"identifier": "lease", "title": "Lease", "schema": {"properties": {
        "expires": {"type": "string", "format": "timer"}, "other": {"type": "string", "format": "timer"}}}})
}

fn timer_automation(url: &str) -> Value {
    json!({
        "identifier": "on_expiry", "title": "On expiry",
        "trigger": {"type": "automation",
            "event": {"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "lease", "propertyIdentifier": "expires"}},
        "invocationMethod": {"type": "WEBHOOK", "url": format!("{url}/expired"), "synchronized": true,
            "body": {"event": "{{ .event }}", "entity": "{{ .event.context.entityIdentifier }}"}}
    })
}

fn in_ms(ms: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(ms)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[tokio::test]
async fn a_timer_property_fires_its_automation_once_when_it_expires() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    app.blueprint(timer_model()).await;
    let be = Recorder::start().await;
    assert_eq!(app.post("/v1/actions", timer_automation(&be.url)).await.status.as_u16(), 201);
    app.entity("lease", json!({"identifier": "soon", "properties": {"expires": in_ms(700), "other": in_ms(300)}}))
        .await;
    app.entity("lease", json!({"identifier": "later", "properties": {"expires": in_ms(3_600_000)}})).await;
    app.entity("lease", json!({"identifier": "never", "properties": {"other": in_ms(200)}})).await;

    let got = be.wait_for("/expired", 1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got_after = be.calls("/expired");
    assert_eq!(got_after.len(), 1, "once, and only the watched property: {got:?}");
    let ev = &got_after[0]["event"];
    assert_eq!(got_after[0]["entity"], json!("soon"));
    assert_eq!(ev["context"]["propertyIdentifier"], json!("expires"));
    assert_eq!((ev["diff"]["before"].clone(), ev["diff"]["after"]["identifier"].clone()), (Value::Null, json!("soon")));
    assert_eq!(wait_runs(&app, "on_expiry", 1).await[0]["status"], json!("SUCCESS"));
}

#[tokio::test]
async fn a_timer_that_expired_while_no_node_ran_fires_when_one_starts() {
    let first = ApiConfig { job_workers: 0, ..config() };
    let Some(app) = TestApp::spawn_with(first.clone()).await else { return };
    app.blueprint(timer_model()).await;
    let be = Recorder::start().await;
    app.post("/v1/actions", timer_automation(&be.url)).await;
    app.entity("lease", json!({"identifier": "l1", "properties": {"expires": in_ms(300)}})).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(be.calls("/expired").is_empty());
    let workers = ApiConfig { job_workers: 2, ..first.clone() };
    app.extra_node(workers.clone()).await;
    app.extra_node(workers).await;
    let got = be.wait_for("/expired", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(be.calls("/expired").len(), 1, "fired once by two nodes: {got:?}");
}

/// An onboarding hook: an automation on `_user` `ENTITY_CREATED` runs when a person joins (the
/// entity is made with the account, in its transaction) and `ENTITY_UPDATED` when they change.
#[tokio::test]
async fn automations_on_user_entities_run_when_people_join_and_change() {
    let Some(app) = TestApp::spawn_with(config()).await else { return };
    let be = Recorder::start().await;
    for (id, event) in [("onboard", "ENTITY_CREATED"), ("changed", "ENTITY_UPDATED")] {
        let mut a = automation(id, event, &format!("{}/{id}", be.url), None);
        a["trigger"]["event"]["blueprintIdentifier"] = json!("_user");
        let r = app.post("/v1/actions", a).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    }
    app.web_user("usr_n", "new@example.com", "member").await;
    let calls = be.wait_for("/onboard", 1).await;
    assert_eq!(calls[0]["entity"], "new@example.com", "{calls:?}");
    let r = app.patch("/v1/users/new@example.com", json!({"status": "Disabled"})).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let calls = be.wait_for("/changed", 1).await;
    assert_eq!(calls[0]["entity"], "new@example.com", "{calls:?}");
    wait_runs(&app, "onboard", 1).await;
}
