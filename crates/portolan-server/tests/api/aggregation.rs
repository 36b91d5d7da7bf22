//! Aggregation properties (port-api.md §1.7): values computed in the background (every
//! function), shown in entity answers (GET, list, search), kept current along a three-blueprint
//! path as related entities are created, moved and deleted, the `query` filter and
//! `pathFilter`, a blueprint change recomputing, and search rules on the values.

use std::time::Duration;

use portolan_server::ApiConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_invalid};

async fn app() -> Option<TestApp> {
    TestApp::spawn_with(ApiConfig { job_poll: Duration::from_millis(50), ..ApiConfig::default() }).await
}

/// Wait until no aggregation job is queued or running; none may have failed.
async fn settle(app: &TestApp) {
    for _ in 0..400 {
        let r = app.get("/v1/jobs?limit=1000").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let jobs: Vec<Value> = r.body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"].as_str().unwrap_or_default().starts_with("aggregation_"))
            .cloned()
            .collect();
        assert!(!jobs.iter().any(|j| j["status"] == "failed"), "an aggregation job failed: {jobs:?}");
        if !jobs.is_empty() && jobs.iter().all(|j| j["status"] == "succeeded") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("aggregation jobs did not finish");
}

fn agg(target: &str, spec: Value) -> Value {
    json!({"title": "x", "target": target, "calculationSpec": spec})
}

fn sev(func: &str) -> Value {
    json!({"calculationBy": "property", "func": func, "property": "severity", "averageOf": "total"})
}

/// service ← deployment(service) ← incident(deployment; severity, state).
async fn model(app: &TestApp, aggregations: Value) {
    app.blueprint(json!({"identifier": "service", "title": "Service"})).await;
    app.blueprint(json!({"identifier": "deployment", "title": "Deployment",
        "relations": {"service": {"title": "Service", "target": "service", "many": false, "required": false}}}))
        .await;
    app.blueprint(json!({"identifier": "incident", "title": "Incident",
        "schema": {"properties": {"severity": {"type": "number"}, "state": {"type": "string"}}},
        "relations": {"deployment": {"title": "Deployment", "target": "deployment", "many": false, "required": false}}}))
        .await;
    // Targets exist now: add the aggregations.
    let r = app.patch("/v1/blueprints/service", json!({"aggregationProperties": aggregations})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn incident(app: &TestApp, id: &str, severity: Value, state: &str, deployment: &str) {
    let r = app
        .post(
            "/v1/blueprints/incident/entities?upsert=true",
            json!({"identifier": id, "properties": {"severity": severity, "state": state},
                   "relations": {"deployment": deployment}}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
}

async fn props(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/v1/blueprints/service/entities/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["entity"]["properties"].clone()
}

/// s1 ← d1 ← {i1: 1 open, i2: 4.5 closed, i3: 10 open, i4: null open}; s2 ← d2 ← {i5: 7 open}.
async fn catalog(app: &TestApp) {
    for s in ["s1", "s2"] {
        app.entity("service", json!({"identifier": s})).await;
    }
    for (d, s) in [("d1", "s1"), ("d2", "s2")] {
        app.entity("deployment", json!({"identifier": d, "relations": {"service": s}})).await;
    }
    incident(app, "i1", json!(1), "open", "d1").await;
    incident(app, "i2", json!(4.5), "closed", "d1").await;
    incident(app, "i3", json!(10), "open", "d1").await;
    incident(app, "i4", Value::Null, "open", "d1").await;
    incident(app, "i5", json!(7), "open", "d2").await;
}

#[tokio::test]
async fn every_function_is_computed_and_shown_in_entity_answers() {
    let Some(app) = app().await else { return };
    let count = json!({"calculationBy": "entities", "func": "count"});
    model(
        &app,
        json!({
            "incidents": agg("incident", count),
            "sevSum": agg("incident", sev("sum")),
            "sevMin": agg("incident", sev("min")),
            "sevMax": agg("incident", sev("max")),
            "sevMedian": agg("incident", sev("median")),
            "sevAvg": agg("incident", sev("average")),
            "perWeek": agg("incident", json!({"calculationBy": "entities", "func": "average", "averageOf": "week"})),
        }),
    )
    .await;
    catalog(&app).await;
    settle(&app).await;
    let p = props(&app, "s1").await;
    assert_eq!(p["incidents"], json!(4), "{p}");
    assert_eq!(p["sevSum"], json!(15.5), "a missing value adds nothing: {p}");
    assert_eq!(p["sevMin"], json!(1));
    assert_eq!(p["sevMax"], json!(10));
    assert_eq!(p["sevMedian"], json!(4.5), "the middle of 1, 4.5, 10");
    assert_eq!(p["sevAvg"], json!(15.5 / 3.0));
    assert_eq!(p["perWeek"], json!(4), "all created this week: one (begun) week");
    let p2 = props(&app, "s2").await;
    assert_eq!((&p2["incidents"], &p2["sevMedian"]), (&json!(1), &json!(7)));

    // An entity with nothing to aggregate: counts and sums 0, the others null.
    app.entity("service", json!({"identifier": "s3"})).await;
    settle(&app).await;
    let p3 = props(&app, "s3").await;
    assert_eq!(
        p3,
        json!({"incidents": 0, "sevSum": 0, "sevMin": null, "sevMax": null, "sevMedian": null,
                          "sevAvg": null, "perWeek": 0})
    );

    // Lists and searches carry them too.
    let r = app.get("/v1/blueprints/service/entities").await;
    let listed = r.body["entities"].as_array().unwrap();
    let s1 = listed.iter().find(|e| e["identifier"] == "s1").unwrap();
    assert_eq!(s1["properties"]["incidents"], json!(4), "{s1}");
    let r =
        app.post("/v1/blueprints/service/entities/search", json!({"query": {"combinator": "and", "rules": []}})).await;
    let found = r.body["entities"].as_array().unwrap();
    assert!(found.iter().any(|e| e["identifier"] == "s2" && e["properties"]["incidents"] == json!(1)), "{}", r.body);
    // A blueprint answer says nothing about aggregations not being computed.
    let r = app.get("/v1/blueprints/service").await;
    assert!(r.body.get("warnings").is_none(), "{}", r.body);
}

#[tokio::test]
async fn values_follow_writes_and_deletes_along_a_three_blueprint_path_with_query_and_path_filter() {
    let Some(app) = app().await else { return };
    let count = json!({"calculationBy": "entities", "func": "count"});
    let open = json!({"combinator": "and", "rules": [{"property": "state", "operator": "=", "value": "open"}]});
    let mut open_incidents = agg("incident", count.clone());
    open_incidents["query"] = open;
    let mut via_path = agg("incident", count.clone());
    via_path["pathFilter"] = json!([{"path": ["deployment", "service"]}]);
    let mut from_service = agg("deployment", count.clone());
    from_service["pathFilter"] = json!([{"path": ["service"]}]);
    let mut wrong_path = agg("incident", count.clone());
    wrong_path["pathFilter"] = json!([{"path": ["deployment"]}]);
    model(
        &app,
        json!({"incidents": agg("incident", count), "openIncidents": open_incidents, "viaPath": via_path,
               "deployments": from_service, "wrongPath": wrong_path}),
    )
    .await;
    catalog(&app).await;
    settle(&app).await;
    let p = props(&app, "s1").await;
    assert_eq!(
        (&p["incidents"], &p["openIncidents"], &p["viaPath"], &p["deployments"], &p["wrongPath"]),
        (&json!(4), &json!(3), &json!(4), &json!(1), &json!(0)),
        "the path of an incident to a service is deployment.service: {p}"
    );

    // Closing an incident changes the filtered count only.
    incident(&app, "i1", json!(1), "closed", "d1").await;
    settle(&app).await;
    let p = props(&app, "s1").await;
    assert_eq!((&p["incidents"], &p["openIncidents"]), (&json!(4), &json!(2)));

    // Moving an incident to the other deployment moves it between the services.
    incident(&app, "i3", json!(10), "open", "d2").await;
    settle(&app).await;
    assert_eq!(props(&app, "s1").await["incidents"], json!(3));
    assert_eq!(props(&app, "s2").await["incidents"], json!(2));

    // Deleting a related entity lowers the count; deleting the middle of the path empties it.
    let r = app.delete("/v1/blueprints/incident/entities/i2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    settle(&app).await;
    assert_eq!(props(&app, "s1").await["incidents"], json!(2));
    let r = app.delete("/v1/blueprints/deployment/entities/d2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    settle(&app).await;
    let p2 = props(&app, "s2").await;
    assert_eq!((&p2["incidents"], &p2["deployments"]), (&json!(0), &json!(0)), "{p2}");

    // A blueprint change recomputes every entity: a new aggregation has values.
    let r = app
        .patch(
            "/v1/blueprints/service",
            json!({"aggregationProperties": {"closed": {"title": "Closed", "target": "incident",
                "calculationSpec": {"calculationBy": "entities", "func": "count"},
                "query": {"combinator": "and", "rules": [{"property": "state", "operator": "=", "value": "closed"}]}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    settle(&app).await;
    assert_eq!(props(&app, "s1").await["closed"], json!(1), "i1 (i2 was deleted)");
}

#[tokio::test]
async fn search_rules_read_aggregation_values_and_bad_ones_are_refused() {
    let Some(app) = app().await else { return };
    let count = json!({"calculationBy": "entities", "func": "count"});
    model(&app, json!({"incidents": agg("incident", count), "sevMax": agg("incident", sev("max"))})).await;
    catalog(&app).await;
    app.entity("service", json!({"identifier": "s3"})).await;
    settle(&app).await;
    let search = |rules: Value| {
        let app = &app;
        async move {
            let r = app
                .post("/v1/blueprints/service/entities/search", json!({"query": {"combinator": "and", "rules": rules}}))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let mut ids: Vec<String> = r.body["entities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["identifier"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(search(json!([{"property": "incidents", "operator": ">", "value": 1}])).await, ["s1"]);
    assert_eq!(search(json!([{"property": "incidents", "operator": "=", "value": 0}])).await, ["s3"]);
    assert_eq!(search(json!([{"property": "sevMax", "operator": "<=", "value": 7}])).await, ["s2"]);
    assert_eq!(search(json!([{"property": "sevMax", "operator": "isEmpty"}])).await, ["s3"]);
    assert_eq!(search(json!([{"property": "incidents", "operator": "in", "value": [1, 4]}])).await, ["s1", "s2"]);
    assert_eq!(search(json!([{"property": "incidents", "operator": "!=", "value": 4}])).await, ["s2", "s3"]);
    let r = app
        .post(
            "/v1/blueprints/service/entities/search",
            json!({"query": {"combinator": "and",
                "rules": [{"property": "incidents", "operator": "contains", "value": "1"}]}}),
        )
        .await;
    assert_invalid(&r, "query.rules[0].operator");
}

/// A stored aggregation counts every related entity, so a reader who may not read all of the
/// target blueprint gets the value computed over the targets it reads — never a number built
/// from entities hidden from it; readers of the whole target, and admins, get the stored value.
#[tokio::test]
async fn aggregations_count_only_the_entities_the_reader_reads() {
    let Some(app) = app().await else { return };
    model(&app, json!({"deployments": agg("deployment", json!({"calculationBy": "entities", "func": "count"}))})).await;
    app.teams(&["ops"]).await;
    let ops = crate::helpers::person(&app, "usr_1", "ops@example.com", json!(["Member"]), json!(["ops"])).await;
    app.entity("service", json!({"identifier": "s1", "team": ["ops"]})).await;
    for d in ["d1", "d2"] {
        app.entity("deployment", json!({"identifier": d, "relations": {"service": "s1"}})).await;
    }
    app.entity("deployment", json!({"identifier": "d3", "team": ["ops"], "relations": {"service": "s1"}})).await;
    settle(&app).await;
    let (app, ops) = (&app, &ops);
    let as_ops = |path: &'static str| async move {
        let r = app.req_as(ops, "GET", path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    };
    let one = "/v1/blueprints/service/entities/s1";
    assert_eq!(as_ops(one).await["entity"]["properties"]["deployments"], json!(3), "a member who reads every one");
    let r = app
        .patch(
            "/v1/blueprints/deployment/permissions",
            json!({"entities": {"read": {"roles": ["Admin"], "ownedByTeam": true}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        as_ops(one).await["entity"]["properties"]["deployments"],
        json!(1),
        "only the deployment of the member's team (d1 and d2 have no team)"
    );
    let page = as_ops("/v1/blueprints/service/entities").await;
    assert_eq!(page["entities"][0]["properties"]["deployments"], json!(1), "lists too: {page}");
    assert_eq!(props(app, "s1").await["deployments"], json!(3), "admins: the stored value");
    // The stored value may not be searched by this reader: it would tell hidden entities apart.
    let by_count = json!({"query": {"combinator": "and", "rules": [
        {"property": "deployments", "operator": ">", "value": 2}]}});
    let path = "/v1/blueprints/service/entities/search";
    let r = app.req_as(ops, "POST", path, Some(by_count.clone())).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("some of which you may not read"), "{}", r.body);
    assert_eq!(crate::helpers::ids(&app.post(path, by_count).await.body), ["s1"], "admins search by it");
}

/// Wait (at most 10 s) until service `id`'s `incidents` is `want`.
async fn incidents_become(app: &TestApp, id: &str, want: i64, what: &str) {
    for _ in 0..400 {
        if props(app, id).await["incidents"] == json!(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: {id}'s incidents did not become {want} within 10 s (no worker woken: the poll is 10 minutes)");
}

/// A write and a delete that give a job work wake a worker of the node at once: with the idle
/// workers' poll at ten minutes, the values follow within seconds.
#[tokio::test]
async fn writes_and_deletes_wake_a_worker_without_the_poll() {
    let Some(app) = TestApp::spawn_with(ApiConfig { job_poll: Duration::from_secs(600), ..ApiConfig::default() }).await
    else {
        return;
    };
    model(&app, json!({"incidents": agg("incident", json!({"calculationBy": "entities", "func": "count"}))})).await;
    app.entity("service", json!({"identifier": "s1"})).await;
    app.entity("deployment", json!({"identifier": "d1", "relations": {"service": "s1"}})).await;
    incident(&app, "i1", json!(1), "open", "d1").await;
    incidents_become(&app, "s1", 1, "after a write").await;
    let r = app.delete("/v1/blueprints/incident/entities/i1").await;
    assert!(r.status.is_success(), "{}", r.body);
    incidents_become(&app, "s1", 0, "after a delete").await;
}
