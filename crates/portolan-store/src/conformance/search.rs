//! Conformance: searches (cursor pages, sorted pages, budgets, the largest accepted queries).

use std::collections::HashMap;

use portolan_core::search::parse_query;
use portolan_core::{Blueprint, Entity};
use serde_json::{Value, json};

use super::{bp, ctx, entity, idents, model, org, req, write_ok};
use crate::{OrgId, SearchRequest, Store, StoreError};

pub async fn search_pages_with_a_cursor(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let es = (0..25)
        .map(|i| entity("domain", &format!("d{i:02}"), json!({"owner": format!("o{}", i % 5)}), json!({})))
        .collect();
    write_ok(s, &a, &m, es).await;
    let q =
        parse_query(&json!({"combinator": "and", "rules": [{"property": "owner", "operator": "=", "value": "o1"}]}))
            .unwrap();
    assert_eq!(idents(s, &a, &req(Some("domain"), Some(&q), &m)).await, vec!["d01", "d06", "d11", "d16", "d21"]);
    assert_eq!(s.count_entities(&a, &req(Some("domain"), Some(&q), &m)).await.unwrap(), 5);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let r = SearchRequest { after, limit: 10, ..req(Some("domain"), None, &m) };
        let page = s.search(&a, &r).await.unwrap();
        seen.extend(page.entities.into_iter().map(|e| e.identifier));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    seen.dedup();
    assert_eq!(seen.len(), 25);
}

/// An organization with `n` `node` entities, each related (`next`, many) to the following
/// five (a ring): every walk reaches every node.
pub async fn graph(store: &dyn Store, org: &OrgId, n: usize) -> HashMap<String, Blueprint> {
    let node = bp(json!({"identifier": "node", "title": "Node",
        "schema": {"properties": {"label": {"type": "string"}}},
        "relations": {"next": {"target": "node", "many": true}}}));
    store.create_blueprint(org, &node, &ctx()).await.unwrap();
    let mut m = HashMap::new();
    m.insert("node".to_string(), node);
    let es: Vec<Entity> = (0..n)
        .map(|i| {
            let next: Vec<String> = (1..=5).map(|k| format!("n{}", (i + k) % n)).collect();
            entity("node", &format!("n{i}"), json!({"label": format!("label {i}")}), json!({"next": next}))
        })
        .collect();
    for chunk in es.chunks(400) {
        write_ok(store, org, &m, chunk.to_vec()).await;
    }
    m
}

/// A search that takes seconds on either backend over [`graph`]: `rules` transitive
/// `relatedTo` walks (15 hops each, every one reaching the whole graph), OR-ed.
pub fn heavy_query(n: usize, rules: usize) -> portolan_core::search::Query {
    let rules: Vec<Value> = (0..rules)
        .map(|i| json!({"operator": "relatedTo", "blueprint": "node", "value": format!("n{}", i % n)}))
        .collect();
    parse_query(&json!({"combinator": "or", "rules": rules})).unwrap()
}

/// Every search statement (page, count, sorted page) stops at the store's budget with
/// `OverBudget` naming it, long before the statement would have ended; the connection then
/// serves other reads normally (no leftover interruption).
pub async fn searches_stop_at_their_budget(s: &dyn Store) {
    use std::time::{Duration, Instant};
    let a = org(s, "a").await;
    let m = graph(s, &a, 300).await;
    let q = heavy_query(300, 900);
    let budget = Duration::from_millis(150);
    s.set_query_budget(budget);
    let r = req(None, Some(&q), &m);
    let over = |e: &StoreError| matches!(e, StoreError::OverBudget { budget: b } if *b == budget);
    let started = Instant::now();
    let e = s.search(&a, &r).await.unwrap_err();
    assert!(over(&e), "{e}");
    assert!(e.to_string().contains("150 ms budget"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3), "stopped at the budget, took {:?}", started.elapsed());
    let started = Instant::now();
    let e = s.count_entities(&a, &r).await.unwrap_err();
    assert!(over(&e), "{e}");
    let e = s.search_sorted(&a, &r, "$title", false, 0).await.unwrap_err();
    assert!(over(&e), "{e}");
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
    // The stopped statements gave their connections back (an in-memory store has only one).
    s.ping(Duration::from_secs(2)).await.expect("a connection is free after the stopped searches");
    // Reads without a budget on the same connections are not interrupted afterwards.
    for i in 0..8 {
        let e = s.get_entity(&a, "node", &format!("n{i}")).await.unwrap();
        assert!(e.is_some());
    }
    let light = parse_query(&json!({"combinator": "and", "rules": [
        {"property": "label", "operator": "=", "value": "label 29"}]}))
    .unwrap();
    assert_eq!(s.count_entities(&a, &req(Some("node"), Some(&light), &m)).await.unwrap(), 1);
    // A budget of whole seconds reads as such.
    s.set_query_budget(Duration::from_secs(20));
    let e = StoreError::OverBudget { budget: Duration::from_secs(20) };
    assert!(e.to_string().contains("20-second budget"), "{e}");
}

/// One organization's slow searches (`slow` at once, enough to take every connection of the
/// store's pool) do not starve another organization: it holds at most all connections but
/// one, and the other organization's search is answered at once. Not part of the shared
/// suite: it needs a store with several connections (`Arc`, for the concurrent searches).
pub async fn slow_searches_of_one_org_leave_connections_to_others(
    s: std::sync::Arc<dyn Store>,
    slow: usize,
    budget: std::time::Duration,
) {
    use std::time::{Duration, Instant};
    let (a, b) = (org(&*s, "a").await, org(&*s, "b").await);
    let ma = graph(&*s, &a, 300).await;
    let mb = graph(&*s, &b, 3).await;
    s.set_query_budget(budget);
    let tasks: Vec<_> = (0..slow)
        .map(|_| {
            let (s, a, ma) = (s.clone(), a.clone(), ma.clone());
            tokio::spawn(async move {
                let q = heavy_query(300, 900);
                s.count_entities(&a, &req(None, Some(&q), &ma)).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(tasks.iter().all(|t| !t.is_finished()), "the slow searches should still run");
    let started = Instant::now();
    let light = parse_query(&json!({"combinator": "and", "rules": [
        {"property": "label", "operator": "beginsWith", "value": "label"}]}))
    .unwrap();
    assert_eq!(s.count_entities(&b, &req(Some("node"), Some(&light), &mb)).await.unwrap(), 3);
    assert_eq!(s.search(&b, &req(Some("node"), None, &mb)).await.unwrap().entities.len(), 3);
    assert!(started.elapsed() < Duration::from_secs(2), "B waited {:?}", started.elapsed());
    for t in &tasks {
        t.abort();
    }
}

/// Big queries compile into SQL every backend accepts: 1,000 OR-ed rules (SQLite refuses
/// expressions nested over 1,000 deep, which a flat chain of ORs is), the deepest nesting, a
/// relation path of the most steps, and values of the longest length the parser accepts.
pub async fn largest_accepted_queries_run(s: &dyn Store) {
    use portolan_core::search::{MAX_DEPTH, MAX_PATH_STEPS, MAX_RULES, MAX_STRING_CHARS};
    let a = org(s, "a").await;
    let m = graph(s, &a, 30).await;
    let count = |q: Value| {
        let q = parse_query(&q).unwrap();
        let m = &m;
        let a = &a;
        async move { s.count_entities(a, &req(None, Some(&q), m)).await }
    };
    let rules: Vec<Value> =
        (0..MAX_RULES).map(|i| json!({"property": "label", "operator": "=", "value": format!("label {i}")})).collect();
    assert_eq!(count(json!({"combinator": "or", "rules": rules})).await.unwrap(), 30);
    let rules: Vec<Value> =
        (0..MAX_RULES).map(|i| json!({"property": "label", "operator": "!=", "value": format!("x{i}")})).collect();
    assert_eq!(count(json!({"combinator": "and", "rules": rules})).await.unwrap(), 30);
    let mut nested =
        json!({"combinator": "or", "rules": [{"property": "label", "operator": "contains", "value": "label 7"}]});
    for _ in 1..MAX_DEPTH {
        nested = json!({"combinator": "and", "rules": [nested, {"property": "$identifier", "operator": "isNotEmpty"}]});
    }
    assert_eq!(count(nested).await.unwrap(), 1);
    let long = "é".repeat(MAX_STRING_CHARS);
    for op in ["contains", "doesNotContains", "beginsWith", "endsWith", "="] {
        let q = json!({"combinator": "and", "rules": [{"property": "label", "operator": op, "value": long}]});
        let n = count(q).await.unwrap();
        assert_eq!(n, if op.starts_with("does") { 30 } else { 0 }, "{op}");
    }
    // Fifteen steps along a ring of 30 (5 edges each): every node is a start of such a path.
    let path = vec!["next"; MAX_PATH_STEPS];
    let q = json!({"combinator": "and", "rules": [
        {"operator": "matchAny", "property": {"path": path}, "value": "n0"}]});
    assert_eq!(count(q).await.unwrap(), 30);
}

/// Sorted pages (the web UI's catalog table): by each meta column and by a property (JSON
/// order: numbers as numbers; entities without the property last, either way), ties by
/// position, paged by offset with `more` on every page but the last; the filter, the
/// blueprint and the organization narrow it like a search. JSON `null` and mixed JSON types:
/// `sorted_pages_order_null_and_mixed_types_alike`.
pub async fn sorted_pages_order_by_meta_and_properties_and_page_by_offset(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let m = model(s, &a).await;
    // (identifier, owner, rank, title, created, updated), written in this order.
    let rows = [
        ("d1", Some("c"), 10.0, "E", "05", "01"),
        ("d2", Some("a"), 9.5, "D", "01", "05"),
        ("d3", None, 100.0, "C", "03", "03"),
        ("d4", Some("b"), 2.0, "B", "02", "04"),
        ("d5", Some("a"), -1.0, "A", "04", "02"),
    ];
    for (id, owner, rank, title, created, updated) in rows {
        let mut e = entity("domain", id, json!({"rank": rank}), json!({}));
        if let Some(o) = owner {
            e.properties.insert("owner".into(), json!(o));
        }
        e.title = Some(title.into());
        e.created_at = format!("2024-01-{created}T00:00:00.000Z");
        e.updated_at = format!("2024-02-{updated}T00:00:00.000Z");
        write_ok(s, &a, &m, vec![e]).await;
    }
    write_ok(s, &a, &m, vec![entity("team", "t1", json!({}), json!({}))]).await;
    let domains = req(Some("domain"), None, &m);
    let all = |sort: &'static str, desc: bool| sorted_ids(s, &a, &domains, sort, desc, 0);
    let ids = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(all("$identifier", false).await, (ids(&["d1", "d2", "d3", "d4", "d5"]), false));
    assert_eq!(all("$identifier", true).await.0, ids(&["d5", "d4", "d3", "d2", "d1"]));
    assert_eq!(all("$title", false).await.0, ids(&["d5", "d4", "d3", "d2", "d1"]));
    assert_eq!(all("$createdAt", false).await.0, ids(&["d2", "d4", "d3", "d5", "d1"]));
    assert_eq!(all("$updatedAt", true).await.0, ids(&["d2", "d4", "d3", "d5", "d1"]));
    assert_eq!(all("rank", false).await.0, ids(&["d5", "d4", "d2", "d1", "d3"]), "numbers, not text");
    assert_eq!(all("owner", false).await.0, ids(&["d2", "d5", "d4", "d1", "d3"]), "ties by position, missing last");
    assert_eq!(all("owner", true).await.0, ids(&["d1", "d4", "d5", "d2", "d3"]), "missing last also descending");

    // Pages of two by offset.
    let two = SearchRequest { limit: 2, ..domains.clone() };
    assert_eq!(sorted_ids(s, &a, &two, "owner", false, 0).await, (ids(&["d2", "d5"]), true));
    assert_eq!(sorted_ids(s, &a, &two, "owner", false, 2).await, (ids(&["d4", "d1"]), true));
    assert_eq!(sorted_ids(s, &a, &two, "owner", false, 4).await, (ids(&["d3"]), false));
    assert_eq!(sorted_ids(s, &a, &two, "owner", false, 9).await, (ids(&[]), false));
    let four = SearchRequest { limit: 4, ..domains.clone() };
    assert_eq!(sorted_ids(s, &a, &four, "$identifier", false, 1).await, (ids(&["d2", "d3", "d4", "d5"]), false));

    // The filter, the blueprint and the organization narrow it.
    let q = parse_query(&json!({"combinator": "and", "rules": [{"property": "owner", "operator": "=", "value": "a"}]}))
        .unwrap();
    let owned_by_a = req(Some("domain"), Some(&q), &m);
    assert_eq!(sorted_ids(s, &a, &owned_by_a, "$identifier", true, 0).await, (ids(&["d5", "d2"]), false));
    let everything = req(None, None, &m);
    let every_id = ids(&["d1", "d2", "d3", "d4", "d5", "t1"]);
    assert_eq!(sorted_ids(s, &a, &everything, "$identifier", false, 0).await, (every_id, false));
    assert_eq!(sorted_ids(s, &b, &everything, "$identifier", false, 0).await, (ids(&[]), false), "B sees none");
}

/// A sort by a property orders its values alike on every backend, whatever JSON types they
/// hold: numbers (numerically), then strings (by code point, `"B"` before `"b"`), then
/// booleans (`false` first), then arrays and objects; JSON `null` and a missing value come
/// last in both directions, ties by position. (Before, SQLite put `null` last and PostgreSQL
/// first, and the two ordered mixed types differently.)
pub async fn sorted_pages_order_null_and_mixed_types_alike(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let values = [
        ("m1", Some(json!(10))),
        ("m2", Some(json!("b"))),
        ("m3", Some(Value::Null)),
        ("m4", Some(json!(true))),
        ("m5", Some(json!(2.5))),
        ("m6", None),
        ("m7", Some(json!("B"))),
        ("m8", Some(json!(false))),
    ];
    for (id, v) in values {
        let mut e = entity("domain", id, json!({}), json!({}));
        if let Some(v) = v {
            e.properties.insert("mixed".into(), v);
        }
        write_ok(s, &a, &m, vec![e]).await;
    }
    let domains = req(Some("domain"), None, &m);
    let ids = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let up = sorted_ids(s, &a, &domains, "mixed", false, 0).await.0;
    assert_eq!(up, ids(&["m5", "m1", "m7", "m2", "m8", "m4", "m3", "m6"]), "ascending");
    let down = sorted_ids(s, &a, &domains, "mixed", true, 0).await.0;
    assert_eq!(down, ids(&["m4", "m8", "m2", "m7", "m1", "m5", "m6", "m3"]), "descending");
}

/// The identifiers of a sorted page, and whether more follow.
async fn sorted_ids(
    s: &dyn Store,
    org: &OrgId,
    r: &SearchRequest<'_>,
    sort: &str,
    descending: bool,
    offset: u64,
) -> (Vec<String>, bool) {
    let page = s.search_sorted(org, r, sort, descending, offset).await.unwrap();
    (page.entities.into_iter().map(|e| e.identifier).collect(), page.more)
}
