//! Scorecards (port-api.md §6): CRUD with field-path validation, results computed in the
//! background by the store's search compiler (every rule operator, level edges, the filter),
//! recomputation after a scorecard change and after entity writes, the `scorecards` map of
//! entity answers and the level history (Portolan extension).

use std::time::Duration;

use portolan_server::ApiConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_invalid};

async fn app() -> Option<TestApp> {
    TestApp::spawn_with(ApiConfig { job_poll: Duration::from_millis(50), ..ApiConfig::default() }).await
}

/// Wait until no scorecard job is queued or running; none may have failed.
async fn settle(app: &TestApp) {
    for _ in 0..400 {
        let r = app.get("/v1/jobs?limit=1000").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let jobs: Vec<Value> = r.body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"].as_str().unwrap_or_default().starts_with("scorecard_"))
            .cloned()
            .collect();
        assert!(!jobs.iter().any(|j| j["status"] == "failed"), "a scorecard job failed: {jobs:?}");
        if jobs.iter().all(|j| j["status"] == "succeeded") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("scorecard jobs did not finish");
}

fn cond(c: Value) -> Value {
    json!({"combinator": "and", "conditions": [c]})
}

fn rule(id: &str, level: &str, c: Value) -> Value {
    json!({"identifier": id, "title": id, "level": level, "query": cond(c)})
}

/// `{rule identifier: status}` of an entity's result in scorecard `sc`.
fn statuses(e: &Value, sc: &str) -> Vec<(String, String)> {
    e["scorecards"][sc]["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("no result of {sc}: {e}"))
        .iter()
        .map(|r| (r["identifier"].as_str().unwrap().to_string(), r["status"].as_str().unwrap().to_string()))
        .collect()
}

async fn get_entity(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/v1/blueprints/service/entities/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["entity"].clone()
}

async fn level(app: &TestApp, id: &str, sc: &str) -> Value {
    get_entity(app, id).await["scorecards"][sc]["level"].clone()
}

fn ownership() -> Value {
    json!({"identifier": "ownership", "title": "Ownership",
    "filter": cond(json!({"property": "language", "operator": "!=", "value": "python"})),
    "rules": [
        rule("hasDomain", "Bronze", json!({"relation": "domain", "operator": "isNotEmpty"})),
        rule("hasCpu", "Bronze", json!({"property": "cpu", "operator": "isNotEmpty"})),
        rule("bigCpu", "Silver", json!({"property": "cpu", "operator": ">=", "value": 8})),
        rule("isRust", "Gold", json!({"property": "language", "operator": "=", "value": "rust"}))
    ]})
}

#[tokio::test]
async fn scorecards_are_created_read_replaced_listed_and_deleted() {
    let Some(app) = app().await else { return };
    app.model().await;
    let r = app.post("/v1/blueprints/service/scorecards", ownership()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sc = &r.body["scorecard"];
    assert!(sc["id"].as_str().unwrap().starts_with("scorecard_"));
    assert_eq!(sc["blueprint"], "service");
    assert_eq!(sc["levels"][0]["title"], "Basic", "Port's default levels");
    assert_eq!(sc["levels"].as_array().unwrap().len(), 4);
    assert_eq!(sc["createdBy"], json!(app.client_id));
    assert_error(&app.post("/v1/blueprints/service/scorecards", ownership()).await, 409, "conflict");
    assert_error(&app.post("/v1/blueprints/nope/scorecards", ownership()).await, 404, "not_found");

    let r = app.get("/v1/blueprints/service/scorecards/ownership").await;
    assert_eq!(r.body["scorecard"]["rules"].as_array().unwrap().len(), 4, "{}", r.body);
    let mut changed = ownership();
    changed["title"] = json!("Owned");
    let r = app.put("/v1/blueprints/service/scorecards/ownership", changed.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["scorecard"]["title"], "Owned");
    assert_eq!(r.body["scorecard"]["id"], sc["id"], "the id is kept");
    changed["identifier"] = json!("other");
    assert_invalid(&app.put("/v1/blueprints/service/scorecards/ownership", changed.clone()).await, "identifier");
    assert_error(
        &app.put("/v1/blueprints/service/scorecards/missing", json!({"title": "x", "rules": []})).await,
        404,
        "not_found",
    );

    let list = app.get("/v1/blueprints/service/scorecards").await;
    assert_eq!(list.body["scorecards"].as_array().unwrap().len(), 1, "{}", list.body);
    assert_eq!(app.get("/v1/blueprints/domain/scorecards").await.body["scorecards"], json!([]));
    let all = app.get("/v1/scorecards").await;
    assert_eq!(all.body["scorecards"][0]["identifier"], "ownership", "{}", all.body);

    // Another organization sees none of it.
    let other = app.other_org_token("org-b").await;
    assert_eq!(app.req_as(&other, "GET", "/v1/scorecards", None).await.body["scorecards"], json!([]));

    let audits = app.audit("resources=scorecard").await;
    let actions: Vec<&str> = audits.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["UPDATE", "CREATE"]);

    let r = app.delete("/v1/blueprints/service/scorecards/ownership").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_error(&app.get("/v1/blueprints/service/scorecards/ownership").await, 404, "not_found");
    assert_error(&app.delete("/v1/blueprints/service/scorecards/ownership").await, 404, "not_found");
    settle(&app).await;
}

#[tokio::test]
async fn invalid_scorecards_are_refused_at_their_field_paths() {
    let Some(app) = app().await else { return };
    app.model().await;
    let post = |v: Value| app.post("/v1/blueprints/service/scorecards", v);
    let base = |rules: Value| json!({"identifier": "s", "title": "S", "rules": rules});
    let r = post(base(json!([
        rule("a", "Bronze", json!({"property": "cpu", "operator": "isNotEmpty"})),
        rule("b", "Bronze", json!({"property": "cpu", "operator": "isNotEmpty"})),
        rule("c", "Silver", json!({"property": "cpu", "operator": "biggerThan", "value": 1}))
    ])))
    .await;
    assert_invalid(&r, "rules[2].query.conditions[0].operator");
    assert_invalid(
        &post(base(json!([rule("a", "Basic", json!({"property": "cpu", "operator": "isEmpty"}))]))).await,
        "rules[0].level",
    );
    assert_invalid(
        &post(base(json!([rule("a", "Platinum", json!({"property": "cpu", "operator": "isEmpty"}))]))).await,
        "rules[0].level",
    );
    assert_invalid(
        &post(base(json!([
            rule("a", "Gold", json!({"property": "cpu", "operator": "isEmpty"})),
            rule("a", "Gold", json!({"property": "cpu", "operator": "isEmpty"}))
        ])))
        .await,
        "rules[1].identifier",
    );
    // Filtering on a calculation property cannot be compiled: refused when saved.
    assert_invalid(
        &post(base(json!([rule("a", "Gold", json!({"property": "link", "operator": "isEmpty"}))]))).await,
        "rules[0].query.conditions[0].property",
    );
    let r = post(json!({"identifier": "s", "title": "S", "rules": [],
        "filter": {"combinator": "and", "conditions": [{"property": "cpu", "operator": "between", "value": 3}]}}))
    .await;
    assert_invalid(&r, "filter.conditions[0].value");
    assert_invalid(&post(json!({"identifier": "s", "rules": []})).await, "");
    assert_invalid(&post(json!({"identifier": "s", "title": "S", "rules": [], "levels": []})).await, "levels");
    assert_eq!(app.get("/v1/scorecards").await.body["scorecards"], json!([]));
}

/// One rule per operator, each at the one level above the base, on entities whose expected
/// statuses are worked out by hand.
#[tokio::test]
async fn every_rule_operator_is_evaluated_by_the_search_compiler() {
    let Some(app) = app().await else { return };
    app.model().await;
    app.entity("domain", json!({"identifier": "pay", "properties": {"owner": "alice"}})).await;
    app.entity(
        "service",
        json!({"identifier": "a", "title": "Alpha", "properties": {"language": "rust", "cpu": 4,
        "url": "https://a.example.com", "tags": ["x", "y"], "deployedAt": "2024-06-01T00:00:00Z", "public": true},
        "relations": {"domain": "pay"}}),
    )
    .await;
    app.entity("service", json!({"identifier": "b", "properties": {"language": "go"}})).await;
    let ops = [
        ("eq", json!({"property": "language", "operator": "=", "value": "rust"})),
        ("ne", json!({"property": "language", "operator": "!=", "value": "rust"})),
        ("gt", json!({"property": "cpu", "operator": ">", "value": 3})),
        ("ge", json!({"property": "cpu", "operator": ">=", "value": 4})),
        ("lt", json!({"property": "cpu", "operator": "<", "value": 4})),
        ("le", json!({"property": "cpu", "operator": "<=", "value": 4})),
        (
            "between",
            json!({"property": "deployedAt", "operator": "between",
            "value": {"from": "2024-01-01T00:00:00Z", "to": "2024-12-31T00:00:00Z"}}),
        ),
        (
            "notBetween",
            json!({"property": "deployedAt", "operator": "notBetween",
            "value": {"from": "2024-01-01T00:00:00Z", "to": "2024-12-31T00:00:00Z"}}),
        ),
        ("contains", json!({"property": "url", "operator": "contains", "value": "example"})),
        ("doesNotContains", json!({"property": "url", "operator": "doesNotContains", "value": "example"})),
        ("beginsWith", json!({"property": "url", "operator": "beginsWith", "value": "https://"})),
        ("doesNotBeginsWith", json!({"property": "url", "operator": "doesNotBeginsWith", "value": "https://"})),
        ("endsWith", json!({"property": "url", "operator": "endsWith", "value": ".com"})),
        ("doesNotEndsWith", json!({"property": "url", "operator": "doesNotEndsWith", "value": ".com"})),
        ("in", json!({"property": "language", "operator": "in", "value": ["go", "python"]})),
        ("notIn", json!({"property": "language", "operator": "notIn", "value": ["go", "python"]})),
        ("containsAny", json!({"property": "tags", "operator": "containsAny", "value": ["y", "z"]})),
        ("isEmpty", json!({"property": "cpu", "operator": "isEmpty"})),
        ("isNotEmpty", json!({"property": "cpu", "operator": "isNotEmpty"})),
        ("notIsEmpty", json!({"property": "cpu", "operator": "isEmpty", "not": true})),
        ("boolEq", json!({"property": "public", "operator": "=", "value": true})),
        ("relation", json!({"relation": "domain", "operator": "=", "value": "pay"})),
        ("relationEmpty", json!({"relation": "domain", "operator": "isEmpty"})),
        ("mirror", json!({"property": "domainOwner", "operator": "=", "value": "alice"})),
        ("meta", json!({"property": "$title", "operator": "beginsWith", "value": "Alp"})),
    ];
    let rules: Vec<Value> = ops.iter().map(|(id, c)| rule(id, "Pass", c.clone())).collect();
    let r = app
        .post(
            "/v1/blueprints/service/scorecards",
            json!({"identifier": "ops", "title": "Operators",
            "levels": [{"title": "Fail", "color": "red"}, {"title": "Pass", "color": "green"}], "rules": rules}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    settle(&app).await;
    let a_passes = [
        "eq",
        "gt",
        "ge",
        "le",
        "between",
        "contains",
        "beginsWith",
        "endsWith",
        "notIn",
        "containsAny",
        "isNotEmpty",
        "notIsEmpty",
        "boolEq",
        "relation",
        "mirror",
        "meta",
    ];
    let b_passes = [
        "ne",
        "notBetween",
        "doesNotContains",
        "doesNotBeginsWith",
        "doesNotEndsWith",
        "in",
        "isEmpty",
        "relationEmpty",
    ];
    for (id, passes) in [("a", &a_passes[..]), ("b", &b_passes[..])] {
        let e = get_entity(&app, id).await;
        for (rule, status) in statuses(&e, "ops") {
            let want = if passes.contains(&rule.as_str()) { "SUCCESS" } else { "FAILURE" };
            assert_eq!(status, want, "entity {id}, rule {rule}");
        }
        assert_eq!(e["scorecards"]["ops"]["level"], "Fail", "some rule fails on each");
    }
    let r = app
        .put("/v1/blueprints/service/scorecards/ops", json!({"title": "Operators",
            "levels": [{"title": "Fail"}, {"title": "Pass"}],
            "rules": a_passes.iter().map(|p| rule(p, "Pass", ops.iter().find(|(i, _)| i == p).unwrap().1.clone())).collect::<Vec<_>>()}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    settle(&app).await;
    assert_eq!(level(&app, "a", "ops").await, "Pass", "every rule passes");
    assert_eq!(level(&app, "b", "ops").await, "Fail");
}

/// The model and five services for `ownership()`: no rule passes (`none`); all pass (`all`);
/// Silver's and Gold's pass but a Bronze one fails (`no-bronze`); Gold's passes but Silver's
/// fails (`no-silver`); outside the filter (`py`).
async fn seed_services(app: &TestApp) {
    app.model().await;
    app.entity("domain", json!({"identifier": "pay"})).await;
    let svc = |id: &str, props: Value, domain: Option<&str>| json!({"identifier": id, "properties": props, "relations": {"domain": domain}});
    app.entity("service", svc("none", json!({"language": "go"}), None)).await;
    app.entity("service", svc("all", json!({"language": "rust", "cpu": 16}), Some("pay"))).await;
    app.entity("service", svc("no-bronze", json!({"language": "rust", "cpu": 16}), None)).await;
    app.entity("service", svc("no-silver", json!({"language": "rust", "cpu": 2}), Some("pay"))).await;
    app.entity("service", svc("py", json!({"language": "python", "cpu": 16}), Some("pay"))).await;
}

#[tokio::test]
async fn levels_follow_ports_rule_and_follow_changes_with_history() {
    let Some(app) = app().await else { return };
    seed_services(&app).await;
    let r = app.post("/v1/blueprints/service/scorecards", ownership()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    settle(&app).await;
    assert_eq!(level(&app, "none", "ownership").await, "Basic");
    assert_eq!(level(&app, "all", "ownership").await, "Gold");
    assert_eq!(level(&app, "no-bronze", "ownership").await, "Basic", "a lower level's rule fails");
    assert_eq!(level(&app, "no-silver", "ownership").await, "Bronze", "Gold passes, Silver does not");
    assert!(get_entity(&app, "py").await.get("scorecards").is_none(), "outside the filter: no result");
    let e = get_entity(&app, "no-silver").await;
    assert_eq!(
        e["scorecards"]["ownership"]["rules"][2],
        json!({"identifier": "bigCpu", "status": "FAILURE", "level": "Silver"})
    );

    // The map is in list and search answers too.
    let r = app.get("/v1/blueprints/service/entities").await;
    let listed = r.body["entities"].as_array().unwrap();
    assert_eq!(listed.iter().filter(|e| e.get("scorecards").is_some()).count(), 4, "{}", r.body);
    let r = app
        .post(
            "/v1/blueprints/service/entities/search",
            json!({"query": {"combinator": "and",
            "rules": [{"property": "$identifier", "operator": "=", "value": "all"}]}}),
        )
        .await;
    assert_eq!(r.body["entities"][0]["scorecards"]["ownership"]["level"], "Gold", "{}", r.body);

    // Entity writes recompute their entities' results.
    let r = app.patch("/v1/blueprints/service/entities/no-silver", json!({"properties": {"cpu": 9}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.patch("/v1/blueprints/service/entities/all", json!({"properties": {"language": "python"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    settle(&app).await;
    assert_eq!(level(&app, "no-silver", "ownership").await, "Gold");
    assert!(get_entity(&app, "all").await.get("scorecards").is_none(), "left the filter");

    // A scorecard change recomputes every entity.
    let mut changed = ownership();
    changed["rules"][2] = rule("bigCpu", "Silver", json!({"property": "cpu", "operator": ">=", "value": 10}));
    changed["filter"] = Value::Null;
    let r = app.put("/v1/blueprints/service/scorecards/ownership", changed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    settle(&app).await;
    assert_eq!(level(&app, "no-silver", "ownership").await, "Bronze", "cpu 9 is no longer enough");
    assert_eq!(level(&app, "py", "ownership").await, "Silver", "no filter: evaluated now");
    assert_eq!(level(&app, "all", "ownership").await, "Silver");

    // The level history, oldest first.
    let r = app.get("/v1/blueprints/service/entities/no-silver/scorecards/ownership/history").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let levels: Vec<&str> =
        r.body["history"].as_array().unwrap().iter().map(|h| h["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["Bronze", "Gold", "Bronze"]);
    assert!(r.body["history"][0]["at"].as_str().unwrap().starts_with("20"));
    assert_eq!(r.body["levels"][3]["title"], "Gold");
    let r = app.get("/v1/blueprints/service/entities/none/scorecards/ownership/history").await;
    assert_eq!(r.body["history"].as_array().unwrap().len(), 1, "unchanged levels add no row: {}", r.body);
    assert_error(
        &app.get("/v1/blueprints/service/entities/ghost/scorecards/ownership/history").await,
        404,
        "not_found",
    );
    assert_error(&app.get("/v1/blueprints/service/entities/none/scorecards/ghost/history").await, 404, "not_found");
    let other = app.other_org_token("org-b").await;
    let r = app.req_as(&other, "GET", "/v1/blueprints/service/entities/none/scorecards/ownership/history", None).await;
    assert_error(&r, 404, "not_found");
}

/// The identifiers a blueprint search with one rule finds, sorted (the answer asserted 200).
async fn search_ids(app: &TestApp, bp: &str, rule: Value) -> Vec<String> {
    let body = json!({"query": {"combinator": "and", "rules": [rule]}});
    let r = app.post(&format!("/v1/blueprints/{bp}/entities/search"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut ids: Vec<String> =
        r.body["entities"].as_array().unwrap().iter().map(|e| e["identifier"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

async fn search_refused(app: &TestApp, rule: Value, path: &str) -> String {
    let body = json!({"query": {"combinator": "and", "rules": [rule]}});
    let r = app.post("/v1/blueprints/service/entities/search", body).await;
    assert_invalid(&r, path);
    crate::helpers::detail(&r, path)
}

#[tokio::test]
async fn entities_are_searched_by_scorecard_level_and_rule() {
    let Some(app) = app().await else { return };
    seed_services(&app).await;
    let r = app.post("/v1/blueprints/service/scorecards", ownership()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    settle(&app).await;

    let level = |op: &str, v: Value| json!({"scorecard": "ownership", "operator": op, "value": v});
    assert_eq!(search_ids(&app, "service", level("=", json!("Gold"))).await, ["all"]);
    assert_eq!(
        search_ids(&app, "service", level("in", json!(["Basic", "Bronze"]))).await,
        ["no-bronze", "no-silver", "none"]
    );
    // `py` is outside the filter: it has no level, so it matches only the negative operators.
    assert_eq!(search_ids(&app, "service", level("!=", json!("Gold"))).await, ["no-bronze", "no-silver", "none", "py"]);
    assert_eq!(search_ids(&app, "service", level("notIn", json!(["Basic", "Gold"]))).await, ["no-silver", "py"]);
    let status = |v: Value| json!({"scorecard": "ownership", "scorecardRule": "bigCpu", "operator": "=", "value": v});
    assert_eq!(search_ids(&app, "service", status(json!("SUCCESS"))).await, ["all", "no-bronze"]);
    assert_eq!(search_ids(&app, "service", status(json!(false))).await, ["no-silver", "none"]);
    // In a search over every blueprint, scoped or not.
    let r = app.post("/v1/entities/search", json!({"combinator": "and", "rules": [level("=", json!("Bronze"))]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entities"].as_array().unwrap().len(), 1, "{}", r.body);

    // A misspelt scorecard, level or rule is refused and named, never an empty answer.
    let msg = search_refused(
        &app,
        json!({"scorecard": "owner", "operator": "=", "value": "Gold"}),
        "query.rules[0].scorecard",
    )
    .await;
    assert!(msg.contains("service.ownership"), "{msg}");
    let msg = search_refused(&app, level("=", json!("Platinum")), "query.rules[0].value").await;
    assert!(msg.contains("Basic, Bronze, Silver, Gold"), "{msg}");
    search_refused(&app, level("in", json!(["Gold", "Platinum"])), "query.rules[0].value[1]").await;
    let msg = search_refused(
        &app,
        json!({"scorecard": "ownership", "scorecardRule": "bigcpu", "operator": "=", "value": true}),
        "query.rules[0].scorecardRule",
    )
    .await;
    assert!(msg.contains("hasDomain, hasCpu, bigCpu, isRust"), "{msg}");
    // A scorecard's own rules cannot use scorecard rules.
    let mut nested = ownership();
    nested["identifier"] = json!("meta");
    nested["rules"] =
        json!([rule("gold", "Bronze", json!({"scorecard": "ownership", "operator": "=", "value": "Gold"}))]);
    let r = app.post("/v1/blueprints/service/scorecards", nested).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);

    // Another organization's scorecards are not found.
    let other = app.other_org_token("org-b").await;
    let body = json!({"combinator": "and", "rules": [level("=", json!("Gold"))]});
    let r = app.req_as(&other, "POST", "/v1/entities/search", Some(body)).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
}

#[tokio::test]
async fn put_replaces_all_scorecards_of_a_blueprint_at_once() {
    let Some(app) = app().await else { return };
    app.model().await;
    app.entity("service", json!({"identifier": "s1", "properties": {"language": "rust", "cpu": 16}})).await;
    let r = app.post("/v1/blueprints/service/scorecards", ownership()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["scorecard"]["id"].clone();
    let second = json!({"identifier": "quality", "title": "Quality",
        "rules": [rule("rust", "Bronze", json!({"property": "language", "operator": "=", "value": "rust"}))]});
    settle(&app).await;

    // An invalid item refuses the whole request, at its index; nothing changes.
    let mut bad = second.clone();
    bad["rules"][0]["level"] = json!("Platinum");
    let r = app.put("/v1/blueprints/service/scorecards", json!([ownership(), bad])).await;
    assert!(
        r.body["details"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["path"].as_str().unwrap().starts_with("[1].rules[0]"))),
        "{}",
        r.body
    );
    assert_invalid(&app.put("/v1/blueprints/service/scorecards", json!([second, second])).await, "[1].identifier");
    assert_invalid(&app.put("/v1/blueprints/service/scorecards", json!({"identifier": "x"})).await, "");
    assert_error(&app.put("/v1/blueprints/nope/scorecards", json!([])).await, 404, "not_found");
    assert_eq!(app.get("/v1/blueprints/service/scorecards").await.body["scorecards"].as_array().unwrap().len(), 1);

    let mut changed = ownership();
    changed["title"] = json!("Owned");
    let r = app.put("/v1/blueprints/service/scorecards", json!([changed, second])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["scorecards"][0]["id"], id, "a kept scorecard keeps its id");
    assert_eq!(r.body["scorecards"][1]["identifier"], "quality");
    settle(&app).await;
    let e = get_entity(&app, "s1").await;
    // Silver and Gold have no rules, so passing Bronze's reaches Gold (Port's rule).
    assert_eq!(e["scorecards"]["quality"]["level"], "Gold", "the new scorecard was computed: {e}");
    assert_eq!(e["scorecards"]["ownership"]["level"], "Basic", "{e}");

    let r = app.put("/v1/blueprints/service/scorecards", json!([second])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    settle(&app).await;
    let listed = app.get("/v1/blueprints/service/scorecards").await;
    assert_eq!(listed.body["scorecards"].as_array().unwrap().len(), 1, "{}", listed.body);
    assert!(get_entity(&app, "s1").await["scorecards"].get("ownership").is_none(), "deleted with its results");
    let audits = app.audit("resources=scorecard").await;
    let actions: Vec<&str> = audits.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions[..2], ["DELETE", "UPDATE"], "{actions:?}");
}
