//! Searches the database could not run or would run for too long: bounded before SQL (422
//! naming the field and the limit), stopped at the query budget (422 naming the budget), and
//! readiness that reports a starved pool.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, assert_invalid, detail};

/// A `node` blueprint and `n` nodes in a ring, each related (`next`, many) to the next five:
/// every transitive walk reaches every node.
async fn ring(app: &TestApp, n: usize) {
    ring_as(app, &app.token, n).await;
}

/// [`ring`] in the organization of `token`.
async fn ring_as(app: &TestApp, token: &str, n: usize) {
    let bp = json!({"identifier": "node", "title": "Node",
        "schema": {"properties": {"label": {"type": "string"}}},
        "relations": {"next": {"target": "node", "many": true, "required": false, "title": "Next"}}});
    let r = app.req_as(token, "POST", "/v1/blueprints", Some(bp)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let entities: Vec<Value> = (0..n)
        .map(|i| {
            let next: Vec<String> = (1..=5).map(|k| format!("n{}", (i + k) % n)).collect();
            json!({"identifier": format!("n{i}"), "properties": {"label": format!("label {i}")},
                   "relations": {"next": next}})
        })
        .collect();
    for chunk in entities.chunks(1000) {
        let body = json!({"entities": chunk});
        let r = app.req_as(token, "POST", "/v1/blueprints/node/entities/bulk", Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

/// `rules` OR-ed transitive `relatedTo` walks over [`ring`]: seconds of work on either backend.
fn heavy(n: usize, rules: usize) -> Value {
    let rules: Vec<Value> = (0..rules)
        .map(|i| json!({"operator": "relatedTo", "blueprint": "node", "value": format!("n{}", i % n)}))
        .collect();
    json!({"combinator": "or", "rules": rules})
}

fn labels_any(count: usize) -> Value {
    let rules: Vec<Value> =
        (0..count).map(|i| json!({"property": "label", "operator": "=", "value": format!("label {i}")})).collect();
    json!({"combinator": "or", "rules": rules})
}

#[tokio::test]
async fn the_largest_accepted_queries_are_answered_and_larger_ones_are_422() {
    let Some(app) = TestApp::spawn().await else { return };
    ring(&app, 30).await;
    // 1,000 rules (the review's 995-1,000 were a 500 on SQLite: expression too deep).
    let r = app.post("/v1/entities/search", labels_any(1000)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entities"].as_array().unwrap().len(), 30);
    let r = app.post("/v1/blueprints/node/entities/search", json!({"query": labels_any(995), "limit": 5})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // 1,001 name the rule over the limit and the limit.
    let r = app.post("/v1/entities/search", labels_any(1001)).await;
    assert_invalid(&r, "rules[1000]");
    assert!(detail(&r, "rules[1000]").contains("at most 1000 rules"), "{}", r.body);
    let r = app.post("/v1/blueprints/node/entities/search", json!({"query": labels_any(1001)})).await;
    assert_invalid(&r, "query.rules[1000]");
    // A relation path of 15 steps over the ring (5^15 paths; one walk per level).
    let path = vec!["next"; 15];
    let q =
        json!({"combinator": "and", "rules": [{"operator": "matchAny", "property": {"path": path}, "value": "n0"}]});
    let started = Instant::now();
    let r = app.post("/v1/entities/search", q).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entities"].as_array().unwrap().len(), 30);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn long_strings_are_422_naming_the_field_and_the_limit() {
    let Some(app) = TestApp::spawn().await else { return };
    ring(&app, 3).await;
    let long = "a".repeat(50_000);
    for op in ["contains", "doesNotContains", "beginsWith", "endsWith", "="] {
        let q = json!({"combinator": "and", "rules": [{"property": "label", "operator": op, "value": long}]});
        let r = app.post("/v1/entities/search", q.clone()).await;
        assert_invalid(&r, "rules[0].value");
        assert!(detail(&r, "rules[0].value").contains("more than 10000 characters"), "{op}: {}", r.body);
        let r = app.post("/v1/blueprints/node/entities/search", json!({"query": q})).await;
        assert_invalid(&r, "query.rules[0].value");
    }
    let q = json!({"combinator": "and", "rules": [{"property": "label", "operator": "in", "value": ["x", long]}]});
    assert_invalid(&app.post("/v1/entities/search", q).await, "rules[0].value[1]");
    // At the limit it is a search like any other.
    let q = json!({"combinator": "and", "rules": [{"property": "label", "operator": "contains", "value": "b".repeat(10_000)}]});
    let r = app.post("/v1/entities/search", q).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_search_over_its_budget_is_422_naming_the_budget() {
    let Some(app) = TestApp::spawn().await else { return };
    ring(&app, 300).await;
    app.store.set_query_budget(Duration::from_millis(200));
    let started = Instant::now();
    let r = app.post("/v1/entities/search", heavy(300, 900)).await;
    assert_error(&r, 422, "query_budget_exceeded");
    assert!(r.body["message"].as_str().unwrap().contains("200 ms budget"), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    let r = app.post("/v1/blueprints/node/entities/search", json!({"query": heavy(300, 900), "limit": 10})).await;
    assert_error(&r, 422, "query_budget_exceeded");
    // The server answers the next searches normally.
    let r = app.post("/v1/blueprints/node/entities/search", json!({"query": labels_any(3)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entities"].as_array().unwrap().len(), 3);
}

/// Slow searches take every read connection: `/readyz` says so (503) while `/healthz` stays
/// 200. On SQLite a client that goes away stops its search at once, so the connection is free
/// again right after; on PostgreSQL the statement ends at its budget. (One organization may
/// hold all connections but one — `limits` of the store — so on PostgreSQL's pool of four
/// two organizations starve it together.)
#[tokio::test]
async fn readyz_reports_a_starved_pool_and_abandoned_searches_free_it() {
    let Some(app) = TestApp::spawn().await else { return };
    // The SQLite test store has one connection, the PostgreSQL one four.
    let (n, searches, budget) = match crate::BACKEND {
        Backend::Sqlite => (1000, 1, Duration::from_secs(600)),
        Backend::Postgres => (300, 4, Duration::from_secs(4)),
    };
    let other = app.other_org_token("org-b").await;
    ring(&app, n).await;
    ring_as(&app, &other, n).await;
    app.store.set_query_budget(budget);
    let url = format!("{}/v1/entities/search", app.base);
    let running: Vec<_> = (0..searches)
        .map(|i| {
            // On PostgreSQL: three of organization A's, one of B's.
            let token = if i == 3 { other.clone() } else { app.token.clone() };
            let (http, url, q) = (app.http.clone(), url.clone(), heavy(n, 900));
            tokio::spawn(async move { http.post(url).bearer_auth(token).json(&q).send().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(running.iter().all(|t| !t.is_finished()), "the searches should still be running");
    let started = Instant::now();
    let r = app.req_as("", "GET", "/readyz", None).await;
    assert_error(&r, 503, "not_ready");
    assert!(r.body["message"].as_str().unwrap().contains("busy"), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(2), "readyz answered in {:?}", started.elapsed());
    assert_eq!(app.req_as("", "GET", "/healthz", None).await.status, StatusCode::OK);
    // The clients go away.
    for t in &running {
        t.abort();
    }
    let started = Instant::now();
    let limit = match crate::BACKEND {
        Backend::Sqlite => Duration::from_secs(3),
        // PostgreSQL notices `statement_timeout` at its interrupt checks: four of these
        // 900-walk statements at once on two cores were stopped ~20 s after they began (budget
        // 4 s), planning included. Freed they are, but the budget is soft there.
        Backend::Postgres => budget + Duration::from_secs(45),
    };
    loop {
        let r = app.req_as("", "GET", "/readyz", None).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "still not ready {:?} after the clients left: {}",
            started.elapsed(),
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both organizations' reads work again.
    for token in [&app.token, &other] {
        let r = app.req_as(token, "GET", "/v1/blueprints/node/entities?limit=5", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

/// One organization's slow searches leave a connection to the others (PostgreSQL: a pool of
/// four, so three slow searches of A, and B's search is answered at once).
#[tokio::test]
async fn one_organizations_slow_searches_leave_a_connection_to_the_others() {
    let Some(app) = TestApp::spawn().await else { return };
    if crate::BACKEND == Backend::Sqlite {
        return; // one connection in the SQLite test store: nothing to share (see the store's conformance_sqlite)
    }
    let other = app.other_org_token("org-b").await;
    ring(&app, 300).await;
    ring_as(&app, &other, 3).await;
    app.store.set_query_budget(Duration::from_secs(4));
    let url = format!("{}/v1/entities/search", app.base);
    let running: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, token, q) = (app.http.clone(), url.clone(), app.token.clone(), heavy(300, 900));
            tokio::spawn(async move { http.post(url).bearer_auth(token).json(&q).send().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    let r = app.req_as(&other, "POST", "/v1/blueprints/node/entities/search", Some(json!({"limit": 10}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entities"].as_array().unwrap().len(), 3);
    assert!(started.elapsed() < Duration::from_secs(2), "B waited {:?}", started.elapsed());
    for t in &running {
        t.abort();
    }
}
