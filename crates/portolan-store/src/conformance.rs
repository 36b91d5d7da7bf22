//! The store conformance suite: behaviour every backend must have. Each case is a plain async
//! function over a fresh, empty store; [`conformance_tests!`](crate::conformance_tests) turns
//! them into one `#[tokio::test]` per case for a backend's factory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;

use portolan_core::search::parse_query;
use portolan_core::{Blueprint, Entity};
use serde_json::{Map, Value, json};

use crate::{
    AuditCtx, AuditFilter, EntityWrite, OrgId, RelTarget, Rename, SearchRequest, Store, StoreError, WriteRejection,
};
use crate::{JobFilter, JobStatus, NewJob};

pub const T0: &str = "2024-01-01T00:00:00.000Z";

pub fn ctx() -> AuditCtx {
    AuditCtx { user_id: "tester".into(), origin: "API".into(), at: T0.into() }
}

pub async fn org(store: &dyn Store, name: &str) -> OrgId {
    store.create_org(&OrgId(format!("org_{name}")), name, T0).await.unwrap().id
}

pub fn bp(v: Value) -> Blueprint {
    serde_json::from_value(v).unwrap()
}

/// domain ← service(domain: single, optional; owner: single, required → team)
pub async fn model(store: &dyn Store, org: &OrgId) -> HashMap<String, Blueprint> {
    let team = bp(json!({"identifier": "team", "title": "Team"}));
    let domain =
        bp(json!({"identifier": "domain", "title": "Domain", "schema": {"properties": {"owner": {"type": "string"}}}}));
    let service = bp(json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {"cpu": {"type": "number"}, "lang": {"type": "string"}}},
        "relations": {"domain": {"target": "domain"}, "team": {"target": "team", "required": true}}}));
    let mut m = HashMap::new();
    for b in [team, domain, service] {
        store.create_blueprint(org, &b, &ctx()).await.unwrap();
        m.insert(b.identifier.clone(), b);
    }
    m
}

pub fn entity(bp: &str, id: &str, props: Value, rels: Value) -> Entity {
    Entity {
        identifier: id.into(),
        title: Some(id.to_uppercase()),
        icon: None,
        blueprint: bp.into(),
        team: vec![],
        properties: props.as_object().cloned().unwrap_or_default(),
        relations: rels.as_object().cloned().unwrap_or_default(),
        created_at: T0.into(),
        created_by: "tester".into(),
        updated_at: T0.into(),
        updated_by: "tester".into(),
        datasource: None,
    }
}

fn edges(e: &Entity, model: &HashMap<String, Blueprint>) -> Vec<RelTarget> {
    let b = &model[&e.blueprint];
    portolan_core::entity::relation_targets(b, e)
        .into_iter()
        .map(|(relation, target_blueprint, target_identifier, required)| RelTarget {
            relation,
            target_blueprint,
            target_identifier,
            required,
        })
        .collect()
}

/// A plain upsert of `e`.
pub fn put(e: Entity, model: &HashMap<String, Blueprint>, create_missing: bool) -> EntityWrite {
    let ed = edges(&e, model);
    EntityWrite {
        blueprint: e.blueprint.clone(),
        identifier: e.identifier.clone(),
        build: Box::new(move |_| Ok((e, ed))),
        create_missing_related: create_missing,
    }
}

pub async fn write_ok(store: &dyn Store, org: &OrgId, model: &HashMap<String, Blueprint>, es: Vec<Entity>) {
    let writes = es.into_iter().map(|e| put(e, model, false)).collect();
    for r in store.write_entities(org, writes, &ctx()).await.unwrap() {
        r.expect("write accepted");
    }
}

fn req<'a>(
    bp: Option<&'a str>,
    q: Option<&'a portolan_core::search::Query>,
    m: &'a HashMap<String, Blueprint>,
) -> SearchRequest<'a> {
    SearchRequest { blueprint: bp, query: q, blueprints: m, after: None, limit: 100, now: chrono::Utc::now() }
}

async fn idents(store: &dyn Store, org: &OrgId, r: &SearchRequest<'_>) -> Vec<String> {
    let mut v: Vec<String> = store.search(org, r).await.unwrap().entities.into_iter().map(|e| e.identifier).collect();
    v.sort();
    v
}

pub async fn settings_are_initialised_once(s: &dyn Store) {
    assert_eq!(s.setting_or_init("k", "first").await.unwrap(), "first");
    assert_eq!(s.setting_or_init("k", "second").await.unwrap(), "first");
    assert!(!s.replace_setting("k", "not-first", "x").await.unwrap());
    assert!(s.replace_setting("k", "first", "third").await.unwrap());
    assert_eq!(s.setting_or_init("k", "fourth").await.unwrap(), "third");
}

pub async fn orgs_and_credentials(s: &dyn Store) {
    let a = org(s, "a").await;
    assert!(matches!(s.create_org(&OrgId("org_other".into()), "a", T0).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.org_by_name("a").await.unwrap().unwrap().id, a);
    assert!(s.org_by_name("zzz").await.unwrap().is_none());
    s.add_credential(&a, "cid", "hash", "n", T0).await.unwrap();
    assert_eq!(s.credential("cid").await.unwrap(), Some((a.clone(), "hash".to_string())));
    assert!(s.credential("nope").await.unwrap().is_none());
    let b = org(s, "b").await;
    assert!(s.list_credentials(&b).await.unwrap().is_empty());
    assert_eq!(s.list_credentials(&a).await.unwrap().len(), 1);
    // Rotation and renaming, only within the credential's organization.
    assert!(!s.update_credential(&b, "cid", None, Some("other")).await.unwrap());
    assert!(s.update_credential(&a, "cid", None, Some("hash2")).await.unwrap());
    assert_eq!(s.credential("cid").await.unwrap(), Some((a.clone(), "hash2".to_string())));
    assert!(s.update_credential(&a, "cid", Some("renamed"), None).await.unwrap());
    assert_eq!(s.list_credentials(&a).await.unwrap()[0].1, "renamed");
    assert_eq!(s.credential("cid").await.unwrap().unwrap().1, "hash2");
    assert!(!s.delete_credential(&b, "cid").await.unwrap());
    assert!(s.delete_credential(&a, "cid").await.unwrap());
    assert!(s.credential("cid").await.unwrap().is_none());
    assert!(!s.delete_credential(&a, "cid").await.unwrap());
    // Removing a web user ends their sessions; another organization cannot remove them.
    let user = crate::User {
        id: "usr_1".into(),
        org: a.clone(),
        email: "u@example.com".into(),
        password_hash: "x".into(),
        role: "member".into(),
        created_at: T0.into(),
    };
    s.create_user(&user).await.unwrap();
    let session = crate::Session {
        id_hash: "sess".into(),
        org: a.clone(),
        user_id: "usr_1".into(),
        csrf: "c".into(),
        created_at: 1,
        last_seen: 1,
    };
    s.create_session(&session).await.unwrap();
    assert!(!s.delete_user(&b, "usr_1").await.unwrap());
    assert!(s.session("sess").await.unwrap().is_some());
    assert!(s.delete_user(&a, "usr_1").await.unwrap());
    assert!(s.session("sess").await.unwrap().is_none());
    assert!(s.user_by_email("u@example.com").await.unwrap().is_none());
}

pub async fn blueprint_lifecycle(s: &dyn Store) {
    let a = org(s, "a").await;
    let b1 = bp(json!({"identifier": "svc", "title": "Service"}));
    s.create_blueprint(&a, &b1, &ctx()).await.unwrap();
    assert!(matches!(s.create_blueprint(&a, &b1, &ctx()).await, Err(StoreError::Conflict(_))));
    let mut b2 = b1.clone();
    b2.title = "Renamed".into();
    s.update_blueprint(&a, "svc", &b2, &[], &ctx()).await.unwrap();
    assert_eq!(s.get_blueprint(&a, "svc").await.unwrap().unwrap().blueprint.title, "Renamed");
    assert_eq!(s.list_blueprints(&a).await.unwrap().len(), 1);
    s.delete_blueprint(&a, "svc", &ctx()).await.unwrap();
    assert!(s.get_blueprint(&a, "svc").await.unwrap().is_none());
    assert!(matches!(s.delete_blueprint(&a, "svc", &ctx()).await, Err(StoreError::NotFound(_))));
}

pub async fn blueprint_delete_guards(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    assert!(matches!(s.delete_blueprint(&a, "domain", &ctx()).await, Err(StoreError::Referenced { .. })));
    write_ok(s, &a, &m, vec![entity("team", "t1", json!({}), json!({}))]).await;
    s.delete_blueprint(&a, "service", &ctx()).await.unwrap();
    assert!(matches!(s.delete_blueprint(&a, "team", &ctx()).await, Err(StoreError::HasEntities { count: 1, .. })));
}

pub async fn tenancy_is_enforced(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let m = model(s, &a).await;
    write_ok(s, &a, &m, vec![entity("team", "t1", json!({}), json!({}))]).await;
    assert!(s.get_blueprint(&b, "team").await.unwrap().is_none());
    assert!(s.list_blueprints(&b).await.unwrap().is_empty());
    assert!(s.get_entity(&b, "team", "t1").await.unwrap().is_none());
    assert!(s.get_entities(&b, "team", &["t1".into()]).await.unwrap().is_empty());
    assert!(idents(s, &b, &req(None, None, &m)).await.is_empty());
    assert_eq!(s.count_entities(&b, &req(Some("team"), None, &m)).await.unwrap(), 0);
    assert!(matches!(s.delete_entities(&b, "team", &["t1".into()], false, &ctx()).await, Err(StoreError::NotFound(_))));
    assert!(s.list_audit(&b, &AuditFilter { limit: 100, ..Default::default() }).await.unwrap().is_empty());
    // B may use the same identifiers independently.
    let mb = model(s, &b).await;
    write_ok(s, &b, &mb, vec![entity("team", "t1", json!({}), json!({}))]).await;
    assert_eq!(s.count_entities(&a, &req(Some("team"), None, &m)).await.unwrap(), 1);
}

pub async fn entity_writes_see_the_stored_entity(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    write_ok(s, &a, &m, vec![entity("domain", "d1", json!({"owner": "x"}), json!({}))]).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    let w = EntityWrite {
        blueprint: "domain".into(),
        identifier: "d1".into(),
        build: Box::new(move |stored| {
            *seen2.lock().unwrap() = stored.map(|e| e.properties.clone());
            Err(WriteRejection::Conflict("exists".into()))
        }),
        create_missing_related: false,
    };
    let r = s.write_entities(&a, vec![w], &ctx()).await.unwrap();
    assert!(matches!(r[0], Err(WriteRejection::Conflict(_))));
    let mut expected = Map::new();
    expected.insert("owner".into(), json!("x"));
    assert_eq!(*seen.lock().unwrap(), Some(expected));
}

pub async fn missing_targets_reject_or_create_stubs(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let svc = entity("service", "s1", json!({}), json!({"team": "t-missing"}));
    let r = s.write_entities(&a, vec![put(svc.clone(), &m, false)], &ctx()).await.unwrap();
    assert!(matches!(&r[0], Err(WriteRejection::MissingTarget { identifier, .. }) if identifier == "t-missing"));
    assert!(s.get_entity(&a, "service", "s1").await.unwrap().is_none(), "nothing written");
    let r = s.write_entities(&a, vec![put(svc, &m, true)], &ctx()).await.unwrap();
    assert!(r[0].as_ref().unwrap().created);
    assert!(s.get_entity(&a, "team", "t-missing").await.unwrap().is_some(), "stub created");
}

pub async fn delete_unlinks_blocks_and_cascades(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    write_ok(
        s,
        &a,
        &m,
        vec![
            entity("team", "t1", json!({}), json!({})),
            entity("domain", "d1", json!({}), json!({})),
            entity("service", "s1", json!({}), json!({"domain": "d1", "team": "t1"})),
        ],
    )
    .await;
    // Optional relation: unlinked.
    s.delete_entities(&a, "domain", &["d1".into()], false, &ctx()).await.unwrap();
    assert_eq!(s.get_entity(&a, "service", "s1").await.unwrap().unwrap().relations["domain"], Value::Null);
    // Required relation: blocked, then cascaded.
    let err = s.delete_entities(&a, "team", &["t1".into()], false, &ctx()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::RequiredBy { ref dependents, .. } if dependents == &[("service".to_string(), "s1".to_string())])
    );
    assert!(s.get_entity(&a, "team", "t1").await.unwrap().is_some(), "all or nothing");
    let deleted = s.delete_entities(&a, "team", &["t1".into()], true, &ctx()).await.unwrap();
    assert_eq!(deleted.len(), 2);
    assert!(s.get_entity(&a, "service", "s1").await.unwrap().is_none());
}

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

/// Claims keep each organization within its share of the workers: per node and across the
/// cluster, counting only live leases; among organizations under their share, the one with
/// the fewest running jobs goes first, whatever the queue order.
pub async fn job_claims_keep_each_organizations_share(s: &dyn Store) {
    use crate::JobShare;
    use std::time::Duration;
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let job = || NewJob { kind: "k".into(), payload: json!({}), max_attempts: 3 };
    let mut a_jobs = Vec::new();
    for _ in 0..5 {
        a_jobs.push(s.enqueue_job(&a, &job()).await.unwrap().id);
    }
    let b1 = s.enqueue_job(&b, &job()).await.unwrap().id;
    let kinds = vec!["k".to_string()];
    let lease = Duration::from_secs(30);
    let share = JobShare { per_org: 2, per_org_on_node: 1 };
    let claim = |node: &'static str| {
        let kinds = &kinds;
        async move { s.claim_job_fairly(node, kinds, lease, &share).await.unwrap() }
    };
    let first = claim("n1").await.unwrap();
    assert_eq!((first.org.clone(), first.id.clone()), (a.clone(), a_jobs[0].clone()), "oldest first");
    // n1 holds one of A's: its next claim skips A's older jobs for B's.
    assert_eq!(claim("n1").await.map(|j| j.id), Some(b1.clone()));
    assert!(claim("n1").await.is_none(), "n1 holds its share of both");
    // Another node may run one more of A's, up to A's cluster share of 2.
    assert_eq!(claim("n2").await.map(|j| j.id), Some(a_jobs[1].clone()));
    assert!(claim("n3").await.is_none(), "A has 2 running in the cluster, B nothing queued");
    // A new job of B goes first at the next free node though A's are older: B runs fewer.
    let b2 = s.enqueue_job(&b, &job()).await.unwrap().id;
    assert_eq!(claim("n3").await.map(|j| j.id), Some(b2));
    // A job finished frees its slot.
    let lease_of = |j: &crate::Job| j.lease().unwrap();
    assert!(s.complete_job(&lease_of(&first), &json!({})).await.unwrap());
    assert_eq!(claim("n1").await.map(|j| j.id), Some(a_jobs[2].clone()));
    // Without caps the oldest due job goes, whoever runs what.
    assert_eq!(s.claim_job("n1", &kinds, lease).await.unwrap().map(|j| j.id), Some(a_jobs[3].clone()));
    // Expired leases do not count: a dead node's jobs neither hold the share nor stay lost.
    let short = Duration::from_millis(1);
    let c = org(s, "c").await;
    let c1 = s.enqueue_job(&c, &job()).await.unwrap().id;
    let c2 = s.enqueue_job(&c, &job()).await.unwrap().id;
    let one = JobShare { per_org: 1, per_org_on_node: 1 };
    let got = s.claim_job_fairly("dead", &kinds, short, &one).await.unwrap().unwrap();
    assert_eq!(got.id, c1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A and B are over a share of one; C's only running job has an expired lease, so C is
    // under it, and its expired job (the older one) is taken over first.
    let next = s.claim_job_fairly("live", &kinds, lease, &one).await.unwrap().unwrap();
    assert_eq!((next.id, next.attempts), (c1, 2));
    assert!(s.claim_job_fairly("live2", &kinds, lease, &one).await.unwrap().is_none(), "C has {c2} queued, 1 running");
}

pub async fn writes_are_audited(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    write_ok(s, &a, &m, vec![entity("domain", "d1", json!({"owner": "x"}), json!({}))]).await;
    write_ok(s, &a, &m, vec![entity("domain", "d1", json!({"owner": "y"}), json!({}))]).await;
    s.delete_entities(&a, "domain", &["d1".into()], false, &ctx()).await.unwrap();
    let f = AuditFilter { entity: Some("d1".into()), limit: 10, ..Default::default() };
    let recs = s.list_audit(&a, &f).await.unwrap();
    let actions: Vec<&str> = recs.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, vec!["DELETE", "UPDATE", "CREATE"], "newest first");
    assert_eq!(recs[1].diff.as_ref().unwrap()["before"]["properties"]["owner"], json!("x"));
    assert_eq!(recs[1].diff.as_ref().unwrap()["after"]["properties"]["owner"], json!("y"));
    let bps = AuditFilter { resources: vec!["blueprint".into()], limit: 10, ..Default::default() };
    assert_eq!(s.list_audit(&a, &bps).await.unwrap().len(), 3);
}

pub async fn renames_carry_entity_values(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    write_ok(s, &a, &m, vec![entity("domain", "d1", json!({"owner": "x"}), json!({}))]).await;
    let mut d = m["domain"].clone();
    let p = d.schema.properties.shift_remove("owner").unwrap();
    d.schema.properties.insert("lead".into(), p);
    s.update_blueprint(&a, "domain", &d, &[Rename::Property { from: "owner".into(), to: "lead".into() }], &ctx())
        .await
        .unwrap();
    let e = s.get_entity(&a, "domain", "d1").await.unwrap().unwrap();
    assert_eq!(e.properties.get("lead"), Some(&json!("x")));
    assert!(e.properties.get("owner").is_none());
}

pub async fn batches_are_one_unit(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    // s1 points at team t1, which comes later in the same batch: accepted.
    // s2 points at team t2, whose own write is rejected: s2 is rejected too.
    let rejected = EntityWrite {
        blueprint: "team".into(),
        identifier: "t2".into(),
        build: Box::new(|_| Err(WriteRejection::Invalid(portolan_core::FieldError::new("title", "bad").into()))),
        create_missing_related: false,
    };
    let writes = vec![
        put(entity("service", "s1", json!({}), json!({"team": "t1"})), &m, false),
        put(entity("service", "s2", json!({}), json!({"team": "t2"})), &m, false),
        put(entity("team", "t1", json!({}), json!({})), &m, false),
        rejected,
    ];
    let r = s.write_entities(&a, writes, &ctx()).await.unwrap();
    assert!(r[0].as_ref().is_ok_and(|w| w.created), "{:?}", r[0]);
    assert!(matches!(&r[1], Err(WriteRejection::MissingTarget { identifier, .. }) if identifier == "t2"), "{:?}", r[1]);
    assert!(r[2].is_ok());
    assert!(matches!(r[3], Err(WriteRejection::Invalid(_))));
    assert!(s.get_entity(&a, "service", "s2").await.unwrap().is_none());
    assert_eq!(s.count_entities(&a, &req(None, None, &m)).await.unwrap(), 2);
    // Relation edges of the batch work for later deletes: t1 is required by s1.
    assert!(matches!(
        s.delete_entities(&a, "team", &["t1".into()], false, &ctx()).await,
        Err(StoreError::RequiredBy { .. })
    ));
}

pub async fn a_batch_naming_an_entity_twice_applies_both_in_order(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let merge = |key: &'static str, v: i64| EntityWrite {
        blueprint: "domain".into(),
        identifier: "d1".into(),
        build: Box::new(move |stored| {
            let mut e = stored.cloned().unwrap_or_else(|| entity("domain", "d1", json!({}), json!({})));
            e.properties.insert(key.into(), json!(v));
            Ok((e, vec![]))
        }),
        create_missing_related: false,
    };
    let r = s.write_entities(&a, vec![merge("a", 1), merge("b", 2)], &ctx()).await.unwrap();
    assert!(r[0].as_ref().unwrap().created);
    assert!(!r[1].as_ref().unwrap().created, "the second write sees the first");
    let e = s.get_entity(&a, "domain", "d1").await.unwrap().unwrap();
    assert_eq!(e.properties.get("a"), Some(&json!(1)));
    assert_eq!(e.properties.get("b"), Some(&json!(2)));
    let _ = &m;
}

pub async fn updates_keep_creation_meta_and_replace_edges(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    write_ok(
        s,
        &a,
        &m,
        vec![
            entity("team", "t1", json!({}), json!({})),
            entity("team", "t2", json!({}), json!({})),
            entity("service", "s1", json!({}), json!({"team": "t1"})),
        ],
    )
    .await;
    let mut moved = entity("service", "s1", json!({"cpu": 2}), json!({"team": "t2"}));
    moved.created_at = "2030-01-01T00:00:00.000Z".into();
    moved.updated_at = "2030-01-01T00:00:00.000Z".into();
    write_ok(s, &a, &m, vec![moved]).await;
    let e = s.get_entity(&a, "service", "s1").await.unwrap().unwrap();
    assert_eq!(e.created_at, T0, "creation meta kept");
    assert_eq!(e.updated_at, "2030-01-01T00:00:00.000Z");
    // The old edge is gone: t1 can be deleted without touching s1; t2 is now required.
    s.delete_entities(&a, "team", &["t1".into()], false, &ctx()).await.unwrap();
    assert!(s.delete_entities(&a, "team", &["t2".into()], false, &ctx()).await.is_err());
}

/// The NUL character (U+0000): lookups by identifiers holding one find nothing; a value holding
/// one is either stored and read back exactly (SQLite) or refused as invalid naming the field
/// (PostgreSQL text cannot hold it) — never a database error; a write whose identifier holds
/// one reaches its build closure (whose validation refuses it) like any other.
pub async fn nul_characters_are_kept_or_refused_never_an_error(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let nul = "a\u{0}b".to_string();
    assert!(s.get_entity(&a, "service", &nul).await.unwrap().is_none());
    assert!(s.get_entities(&a, "service", std::slice::from_ref(&nul)).await.unwrap().is_empty());
    assert!(s.get_blueprint(&a, &nul).await.unwrap().is_none());
    assert!(matches!(
        s.delete_entities(&a, "service", std::slice::from_ref(&nul), false, &ctx()).await,
        Err(StoreError::NotFound(_))
    ));
    let f = AuditFilter { entity: Some(nul.clone()), limit: 10, ..Default::default() };
    assert!(s.list_audit(&a, &f).await.unwrap().is_empty());
    assert!(idents(s, &a, &req(Some(&nul), None, &m)).await.is_empty());
    let q = parse_query(&json!({"combinator": "and", "rules": [{"property": "lang", "operator": "=", "value": nul}]}))
        .unwrap();
    match s.search(&a, &req(Some("service"), Some(&q), &m)).await {
        Ok(page) => assert!(page.entities.is_empty()),
        Err(e) => assert!(matches!(e, StoreError::Invalid(_)), "{e:?}"),
    }

    // A value with NUL characters, in a batch with a plain write and a write whose identifier
    // holds one (refused by its build closure, as the server's validation does).
    write_ok(s, &a, &m, vec![entity("team", "t1", json!({}), json!({}))]).await;
    let mut odd = entity("service", "s1", json!({"lang": "x\u{0}y", "cpu": 1}), json!({"team": "t1"}));
    odd.title = Some("T\u{0}".into());
    let bad_id = EntityWrite {
        blueprint: "service".into(),
        identifier: nul.clone(),
        build: Box::new(|_| Err(WriteRejection::Invalid(portolan_core::FieldError::new("identifier", "bad").into()))),
        create_missing_related: false,
    };
    let plain = entity("service", "s2", json!({}), json!({"team": "t1"}));
    let r =
        s.write_entities(&a, vec![put(odd.clone(), &m, false), bad_id, put(plain, &m, false)], &ctx()).await.unwrap();
    match &r[0] {
        Ok(_) => {
            let got = s.get_entity(&a, "service", "s1").await.unwrap().unwrap();
            assert_eq!((got.title, got.properties), (odd.title, odd.properties), "kept exactly");
        }
        Err(WriteRejection::Invalid(errs)) => {
            let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["title", "properties.lang"]);
            assert!(s.get_entity(&a, "service", "s1").await.unwrap().is_none());
        }
        Err(other) => panic!("unexpected rejection {other:?}"),
    }
    assert!(matches!(&r[1], Err(WriteRejection::Invalid(e)) if e.0[0].path == "identifier"));
    assert!(r[2].is_ok());
    assert!(s.get_entity(&a, "service", "s2").await.unwrap().is_some());
}

/// Poll every future to completion concurrently (on the current task), outputs in order.
pub async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(out.iter_mut().map(|o| o.take().unwrap()).collect()) }
    })
    .await
}

fn new_job(kind: &str, n: i64, max_attempts: u32) -> NewJob {
    NewJob { kind: kind.into(), payload: json!({"n": n}), max_attempts }
}

const LONG: std::time::Duration = std::time::Duration::from_secs(60);

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

pub async fn job_claims_are_exclusive_under_concurrency(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let mut enqueued = Vec::new();
    for i in 0..30 {
        let o = if i % 2 == 0 { &a } else { &b };
        let j = s.enqueue_job(o, &new_job("work", i, 3)).await.unwrap();
        assert_eq!((j.status, j.attempts, j.lease_owner.clone()), (JobStatus::Queued, 0, None));
        enqueued.push(j.id);
    }
    let other = s.enqueue_job(&a, &new_job("other-kind", 99, 3)).await.unwrap();
    let kinds = vec!["work".to_string()];
    let claimers: Vec<_> = (0..10)
        .map(|c| {
            let kinds = kinds.clone();
            async move {
                let node = format!("node-{c}");
                let mut got = Vec::new();
                while let Some(j) = s.claim_job(&node, &kinds, LONG).await.unwrap() {
                    assert_eq!(j.status, JobStatus::Running);
                    assert_eq!(j.lease_owner.as_deref(), Some(node.as_str()));
                    assert_eq!(j.attempts, 1);
                    assert!(j.lease_until.is_some() && j.started_at.is_some());
                    got.push(j.id);
                }
                got
            }
        })
        .collect();
    let mut claimed: Vec<String> = join_all(claimers).await.into_iter().flatten().collect();
    claimed.sort();
    let mut want = enqueued.clone();
    want.sort();
    assert_eq!(claimed, want, "every job claimed exactly once");
    assert!(s.claim_job("late", &kinds, LONG).await.unwrap().is_none(), "nothing left: leases are held");
    assert!(s.claim_job("late", &[], LONG).await.unwrap().is_none());
    let o = s.claim_job("late", &["other-kind".to_string()], LONG).await.unwrap().unwrap();
    assert_eq!(o.id, other.id, "kinds filter what a node claims");
}

pub async fn an_expired_lease_is_taken_over_and_the_old_holder_refused(s: &dyn Store) {
    let a = org(s, "a").await;
    let kinds = vec!["work".to_string()];
    let job = s.enqueue_job(&a, &new_job("work", 1, 3)).await.unwrap();
    let short = std::time::Duration::from_millis(300);
    let first = s.claim_job("node-1", &kinds, short).await.unwrap().unwrap();
    let old = first.lease().unwrap();
    assert_eq!((old.owner.as_str(), old.attempt), ("node-1", 1));
    assert!(s.claim_job("node-2", &kinds, short).await.unwrap().is_none(), "the lease is live");
    assert!(s.heartbeat_job(&old, short).await.unwrap());
    assert!(s.save_job_progress(&old, &json!({"done": 10})).await.unwrap());
    sleep_ms(600).await;
    let second = s.claim_job("node-2", &kinds, LONG).await.unwrap().expect("an expired lease is claimable");
    assert_eq!(second.id, job.id);
    assert_eq!((second.attempts, second.lease_owner.as_deref()), (2, Some("node-2")));
    assert_eq!(second.progress, Some(json!({"done": 10})), "the new holder resumes from the checkpoint");
    // The old holder has lost the lease: nothing it does counts.
    assert!(!s.heartbeat_job(&old, LONG).await.unwrap());
    assert!(!s.save_job_progress(&old, &json!({"done": 0})).await.unwrap());
    assert!(!s.complete_job(&old, &json!({"by": "node-1"})).await.unwrap());
    assert_eq!(s.fail_job(&old, "boom", None, None).await.unwrap(), None);
    assert!(!s.release_job(&old).await.unwrap());
    let new = second.lease().unwrap();
    assert!(s.save_job_progress(&new, &json!({"done": 20})).await.unwrap());
    assert!(s.complete_job(&new, &json!({"by": "node-2"})).await.unwrap());
    let done = s.get_job(&a, &job.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!((done.attempts, done.lease_owner.as_deref()), (2, Some("node-2")));
    assert_eq!((done.progress, done.result), (Some(json!({"done": 20})), Some(json!({"by": "node-2"}))));
    assert!(done.finished_at.is_some() && done.lease_until.is_none());
    // A finished job is not claimed again, and its lease is over.
    assert!(s.claim_job("node-3", &kinds, LONG).await.unwrap().is_none());
    assert!(!s.heartbeat_job(&new, LONG).await.unwrap());
}

pub async fn failed_jobs_retry_with_backoff_until_max_attempts(s: &dyn Store) {
    let a = org(s, "a").await;
    let kinds = vec!["work".to_string()];
    let job = s.enqueue_job(&a, &new_job("work", 1, 2)).await.unwrap();
    let l1 = s.claim_job("n", &kinds, LONG).await.unwrap().unwrap().lease().unwrap();
    let backoff = Some(std::time::Duration::from_millis(400));
    assert_eq!(s.fail_job(&l1, "flaky", None, backoff).await.unwrap(), Some(JobStatus::Queued));
    let queued = s.get_job(&a, &job.id).await.unwrap().unwrap();
    assert_eq!((queued.status, queued.last_error.as_deref(), queued.attempts), (JobStatus::Queued, Some("flaky"), 1));
    assert!(queued.run_at > queued.created_at, "runnable only after the backoff");
    assert!(s.claim_job("n", &kinds, LONG).await.unwrap().is_none(), "not before the backoff");
    sleep_ms(700).await;
    let j2 = s.claim_job("n", &kinds, LONG).await.unwrap().expect("claimable after the backoff");
    assert_eq!(j2.attempts, 2);
    let detail = json!({"error": "conflict"});
    let l2 = j2.lease().unwrap();
    assert_eq!(s.fail_job(&l2, "flaky again", Some(&detail), backoff).await.unwrap(), Some(JobStatus::Failed));
    let failed = s.get_job(&a, &job.id).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.last_error.as_deref()), (JobStatus::Failed, Some("flaky again")));
    assert_eq!(failed.result, Some(detail));
    assert!(failed.finished_at.is_some());
    sleep_ms(500).await;
    assert!(s.claim_job("n", &kinds, LONG).await.unwrap().is_none(), "no attempts left");

    // A permanent failure (no retry) ends the job on its first attempt.
    let p = s.enqueue_job(&a, &new_job("work", 2, 5)).await.unwrap();
    let lp = s.claim_job("n", &kinds, LONG).await.unwrap().unwrap().lease().unwrap();
    assert_eq!(s.fail_job(&lp, "bad input", None, None).await.unwrap(), Some(JobStatus::Failed));
    assert_eq!(s.get_job(&a, &p.id).await.unwrap().unwrap().attempts, 1);

    // A node that dies on the last attempt: the job fails once its lease expires.
    let d = s.enqueue_job(&a, &new_job("work", 3, 1)).await.unwrap();
    s.claim_job("dies", &kinds, std::time::Duration::from_millis(200)).await.unwrap().unwrap();
    sleep_ms(500).await;
    assert!(s.claim_job("n", &kinds, LONG).await.unwrap().is_none());
    let dead = s.get_job(&a, &d.id).await.unwrap().unwrap();
    assert_eq!(dead.status, JobStatus::Failed);
    assert!(dead.last_error.as_deref().unwrap_or("").contains("expired"), "{:?}", dead.last_error);
}

pub async fn released_and_cancelled_jobs(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let kinds = vec!["work".to_string()];
    let job = s.enqueue_job(&a, &new_job("work", 1, 1)).await.unwrap();
    let l1 = s.claim_job("n1", &kinds, LONG).await.unwrap().unwrap().lease().unwrap();
    assert!(s.save_job_progress(&l1, &json!({"step": 1})).await.unwrap());
    assert!(s.release_job(&l1).await.unwrap());
    let j2 = s.claim_job("n2", &kinds, LONG).await.unwrap().expect("a released job is claimable at once");
    assert_eq!((j2.attempts, j2.max_attempts), (2, 2), "the interrupted attempt is given back");
    assert_eq!(j2.progress, Some(json!({"step": 1})));
    assert!(!s.heartbeat_job(&l1, LONG).await.unwrap(), "the released lease stays dead");
    assert!(!s.cancel_job(&b, &job.id).await.unwrap(), "another organization cannot cancel it");
    assert!(s.cancel_job(&a, &job.id).await.unwrap());
    assert!(!s.cancel_job(&a, &job.id).await.unwrap(), "already finished");
    let l2 = j2.lease().unwrap();
    assert!(!s.heartbeat_job(&l2, LONG).await.unwrap(), "cancelling takes the lease away");
    assert!(!s.complete_job(&l2, &json!({})).await.unwrap());
    let c = s.get_job(&a, &job.id).await.unwrap().unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    assert!(c.status.is_finished() && c.finished_at.is_some());
    assert!(s.claim_job("n3", &kinds, LONG).await.unwrap().is_none());
    assert!(!s.cancel_job(&a, "job_nope").await.unwrap());
}

pub async fn jobs_are_tenant_scoped(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let ja = s.enqueue_job(&a, &new_job("work", 1, 3)).await.unwrap();
    let ja2 = s.enqueue_job(&a, &new_job("other", 2, 3)).await.unwrap();
    assert_eq!(ja.org, a);
    assert_eq!(ja.payload, json!({"n": 1}));
    assert_eq!(s.get_job(&a, &ja.id).await.unwrap().unwrap(), ja);
    assert!(s.get_job(&b, &ja.id).await.unwrap().is_none(), "B cannot read A's job");
    assert!(s.get_job(&a, "job_999999").await.unwrap().is_none());
    assert!(s.get_job(&a, "nonsense").await.unwrap().is_none());
    let all = JobFilter { limit: 10, ..Default::default() };
    assert!(s.list_jobs(&b, &all).await.unwrap().is_empty());
    let ids: Vec<String> = s.list_jobs(&a, &all).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![ja2.id.clone(), ja.id.clone()], "newest first");
    let f = JobFilter { kind: Some("work".into()), ..all.clone() };
    assert_eq!(s.list_jobs(&a, &f).await.unwrap().len(), 1);
    s.claim_job("n", &["other".to_string()], LONG).await.unwrap().unwrap();
    let f = JobFilter { status: Some(JobStatus::Running), ..all.clone() };
    let running: Vec<String> = s.list_jobs(&a, &f).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(running, vec![ja2.id]);
    let one = JobFilter { limit: 1, ..all };
    assert_eq!(s.list_jobs(&a, &one).await.unwrap().len(), 1);
}

pub async fn blueprint_version_changes_with_every_blueprint_write(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let v0 = s.blueprints_version(&a).await.unwrap();
    let vb = s.blueprints_version(&b).await.unwrap();
    let m = model(s, &a).await;
    let v1 = s.blueprints_version(&a).await.unwrap();
    assert!(v1 > v0, "{v0} -> {v1}");
    write_ok(s, &a, &m, vec![entity("team", "t1", json!({}), json!({}))]).await;
    assert_eq!(s.blueprints_version(&a).await.unwrap(), v1, "entity writes leave it");
    let mut d = m["domain"].clone();
    d.title = "Domains".into();
    s.update_blueprint(&a, "domain", &d, &[], &ctx()).await.unwrap();
    let v2 = s.blueprints_version(&a).await.unwrap();
    assert!(v2 > v1, "{v1} -> {v2}");
    s.delete_blueprint(&a, "service", &ctx()).await.unwrap();
    let v3 = s.blueprints_version(&a).await.unwrap();
    assert!(v3 > v2, "{v2} -> {v3}");
    assert_eq!(s.blueprints_version(&b).await.unwrap(), vb, "other organizations are untouched");
}

pub async fn required_dependents_come_from_other_blueprints(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let m = model(s, &a).await;
    write_ok(
        s,
        &a,
        &m,
        vec![
            entity("team", "t1", json!({}), json!({})),
            entity("team", "t2", json!({}), json!({})),
            entity("domain", "d1", json!({}), json!({})),
            entity("service", "s1", json!({}), json!({"team": "t1", "domain": "d1"})),
            entity("service", "s2", json!({}), json!({"team": "t1"})),
        ],
    )
    .await;
    let deps = s.required_dependents(&a, "team", 10).await.unwrap();
    assert_eq!(deps, vec![("service".into(), "s1".into(), "t1".into()), ("service".into(), "s2".into(), "t1".into())]);
    assert_eq!(s.required_dependents(&a, "team", 1).await.unwrap().len(), 1);
    assert!(s.required_dependents(&a, "domain", 10).await.unwrap().is_empty(), "optional relations do not count");
    assert!(s.required_dependents(&a, "service", 10).await.unwrap().is_empty());
    assert!(s.required_dependents(&b, "team", 10).await.unwrap().is_empty(), "tenant scoped");
}

/// One `#[tokio::test]` per conformance case, each on a fresh store from `$make`.
///
/// Integrations: config versions, audit, the event log, resyncs and the deletion guard's atomic
/// counter (concurrent reservations never exceed the limit), all scoped to the organization.
pub async fn integrations_are_versioned_guarded_and_tenant_scoped(s: &dyn Store) {
    use crate::{DeletionGuard, IntegrationLog, LogFilter, Reservation, SaveMode};
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let v1 = json!({"installationAppType": "t", "config": {"resources": []}});
    let saved = s.save_integration(&a, "int", &v1, SaveMode::Create, true, &ctx()).await.unwrap();
    assert_eq!(saved.config_version, 1);
    assert!(matches!(
        s.save_integration(&a, "int", &v1, SaveMode::Create, true, &ctx()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.save_integration(&b, "int", &v1, SaveMode::Update, true, &ctx()).await,
        Err(StoreError::NotFound(_))
    ));
    let same_config = json!({"installationAppType": "t", "version": "2", "config": {"resources": []}});
    assert_eq!(
        s.save_integration(&a, "int", &same_config, SaveMode::Update, true, &ctx()).await.unwrap().config_version,
        1
    );
    let v2 = json!({"installationAppType": "t", "config": {"resources": [{"kind": "k"}]}});
    assert_eq!(s.save_integration(&a, "int", &v2, SaveMode::Update, false, &ctx()).await.unwrap().config_version, 2);
    let versions = s.integration_config_versions(&a, "int").await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(versions[1].config, v1["config"]);
    assert_eq!(s.get_integration(&a, "int").await.unwrap().unwrap().data, v2);
    let audits = s
        .list_audit(&a, &AuditFilter { resources: vec!["integration".into()], limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(audits.len(), 2, "the unaudited save is not in the log");
    assert!(s.get_integration(&b, "int").await.unwrap().is_none());
    assert!(s.list_integrations(&b).await.unwrap().is_empty());
    s.put_kind_examples(&a, "int", "k", &json!([1, 2]), T0).await.unwrap();
    assert_eq!(s.kind_examples(&a, "int", "k").await.unwrap(), Some(json!([1, 2])));
    assert_eq!(s.kind_examples(&b, "int", "k").await.unwrap(), None);

    // Resyncs and the guard: 10 entities at the start, at most 5 deletions (min 2, 50%).
    let guard = DeletionGuard { max_share: 0.5, min_count: 2 };
    assert_eq!(s.reserve_deletions(&a, "int", 1, 0, &guard).await.unwrap(), Reservation::NoResync);
    let r = s.start_resync(&a, "int", T0, 10).await.unwrap();
    assert_eq!(r.status, "running");
    assert!(s.latest_resync(&b, "int").await.unwrap().is_none());
    let results = futures_util_join(s, &a, &guard).await;
    assert_eq!(results.iter().filter(|g| matches!(g, Reservation::Granted(_))).count(), 5, "{results:?}");
    let latest = s.latest_resync(&a, "int").await.unwrap().unwrap();
    assert_eq!((latest.deleted, latest.refused, latest.tripped), (5, 15, true));
    s.release_deletions(&a, &latest.id, 2).await.unwrap();
    assert!(
        matches!(s.reserve_deletions(&a, "int", 1, 0, &guard).await.unwrap(), Reservation::Refused(_)),
        "tripped stays"
    );
    assert!(s.confirm_deletions(&a, "int").await.unwrap().is_some_and(|r| r.confirmed));
    assert!(matches!(s.reserve_deletions(&a, "int", 100, 0, &guard).await.unwrap(), Reservation::Granted(_)));
    let done = s.finish_resync(&a, "int", "completed", T0).await.unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.deleted), ("completed", 103));
    assert!(s.finish_resync(&a, "int", "completed", T0).await.unwrap().is_none());
    // A projected count breaks the guard on the first deletion.
    s.start_resync(&a, "int", T0, 10).await.unwrap();
    assert!(matches!(s.reserve_deletions(&a, "int", 1, 9, &guard).await.unwrap(), Reservation::Refused(_)));
    // Confirming with no resync running confirms the next one.
    s.finish_resync(&a, "int", "failed", T0).await.unwrap();
    assert!(s.confirm_deletions(&a, "int").await.unwrap().is_none());
    assert!(s.start_resync(&a, "int", T0, 10).await.unwrap().confirmed);
    assert!(!s.start_resync(&a, "int", T0, 10).await.unwrap().confirmed, "consumed; the previous one is abandoned");
    assert!(matches!(s.confirm_deletions(&b, "int").await, Err(StoreError::NotFound(_))));

    // The event log.
    let line = |level: &str, event: &str, resync: Option<String>| IntegrationLog {
        id: String::new(),
        at: T0.into(),
        level: level.into(),
        source: "server".into(),
        event: event.into(),
        resync_id: resync,
        message: format!("{event}\0x"),
        extra: json!({"k": event}),
    };
    s.append_integration_logs(
        &a,
        "int",
        &[line("INFO", "one", Some(r.id.clone())), line("ERROR", "two", None), line("INFO", "three", None)],
    )
    .await
    .unwrap();
    let all = s.list_integration_logs(&a, "int", &LogFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|l| l.event.as_str()).collect::<Vec<_>>(), vec!["three", "two", "one"]);
    assert_eq!(all[2].resync_id.as_deref(), Some(r.id.as_str()));
    assert_eq!(all[2].extra, json!({"k": "one"}));
    let errors = LogFilter { levels: vec!["ERROR".into()], limit: 10, ..Default::default() };
    assert_eq!(s.list_integration_logs(&a, "int", &errors).await.unwrap().len(), 1);
    let of_resync = LogFilter { resync_id: Some(r.id.clone()), limit: 10, ..Default::default() };
    assert_eq!(s.list_integration_logs(&a, "int", &of_resync).await.unwrap().len(), 1);
    let cursor: i64 = all[1].id.trim_start_matches("il_").parse().unwrap();
    let older = LogFilter { cursor: Some((cursor, true)), limit: 10, ..Default::default() };
    assert_eq!(s.list_integration_logs(&a, "int", &older).await.unwrap(), vec![all[2].clone()]);
    let newer = LogFilter { cursor: Some((cursor, false)), ascending: true, limit: 10, ..Default::default() };
    assert_eq!(s.list_integration_logs(&a, "int", &newer).await.unwrap(), vec![all[0].clone()]);
    assert!(
        s.list_integration_logs(&b, "int", &LogFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty()
    );
    // Deleting removes everything of the integration.
    s.delete_integration(&a, "int", &ctx()).await.unwrap();
    assert!(s.get_integration(&a, "int").await.unwrap().is_none());
    assert!(
        s.list_integration_logs(&a, "int", &LogFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty()
    );
    assert!(matches!(s.delete_integration(&a, "int", &ctx()).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.get_org(&a).await.unwrap().unwrap().name, "a");
}

/// 20 concurrent reservations of one deletion each.
async fn futures_util_join(s: &dyn Store, org: &OrgId, guard: &crate::DeletionGuard) -> Vec<crate::Reservation> {
    let futs: Vec<_> = (0..20).map(|_| s.reserve_deletions(org, "int", 1, 0, guard)).collect();
    let mut pinned: Vec<std::pin::Pin<Box<_>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<crate::Reservation>> = vec![None; pinned.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => out[i] = Some(r.unwrap()),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}
// ---- Webhooks ----

fn webhook_write(id: &str, key: &str, secret: Option<&str>) -> crate::WebhookWrite {
    crate::WebhookWrite {
        identifier: id.into(),
        data: json!({"title": id, "enabled": true, "mappings": [], "security": {"signatureAlgorithm": "sha256"}}),
        webhook_key: key.into(),
        secret: secret.map(str::to_string),
        secret_key_id: secret.map(|s| s.split(':').nth(1).unwrap_or_default().to_string()),
    }
}

/// Webhooks: the secret is stored as given (opaque ciphertext) and never in the audit log; keys
/// are unique across organizations; a request id is delivered once per webhook, atomically,
/// even when the same delivery arrives many times at once.
pub async fn webhooks_dedupe_deliveries_keep_opaque_secrets_and_are_tenant_scoped(s: &dyn Store) {
    use crate::{Delivery, SaveMode};
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let w = webhook_write("gh", "key-a", Some("v1:k1:bm9uY2U:Y2lwaGVy"));
    let saved = s.save_webhook(&a, &w, SaveMode::Create, &ctx()).await.unwrap();
    assert_eq!((saved.secret.as_deref(), saved.secret_key_id.as_deref()), (Some("v1:k1:bm9uY2U:Y2lwaGVy"), Some("k1")));
    let got = s.get_webhook(&a, "gh").await.unwrap().unwrap();
    assert_eq!(got, saved);
    let (found_org, found) = s.webhook_by_key("key-a").await.unwrap().unwrap();
    assert_eq!((found_org, found.identifier.as_str()), (a.clone(), "gh"));
    assert!(s.webhook_by_key("key-x").await.unwrap().is_none());
    assert!(matches!(s.save_webhook(&a, &w, SaveMode::Create, &ctx()).await, Err(StoreError::Conflict(_))));
    let stolen_key = webhook_write("other", "key-a", None);
    assert!(matches!(s.save_webhook(&b, &stolen_key, SaveMode::Create, &ctx()).await, Err(StoreError::Conflict(_))));
    s.save_webhook(&b, &webhook_write("gh", "key-b", None), SaveMode::Create, &ctx()).await.unwrap();
    assert!(s.get_webhook(&b, "other").await.unwrap().is_none());
    assert_eq!(s.list_webhooks(&a).await.unwrap().len(), 1);
    assert_eq!(s.webhook_secret_key_ids().await.unwrap(), vec!["k1".to_string()]);
    // An update keeps the key and creation meta; a removed secret takes its key id along.
    let upd = webhook_write("gh", "ignored", None);
    assert!(matches!(
        s.save_webhook(&a, &webhook_write("nope", "k", None), SaveMode::Update, &ctx()).await,
        Err(StoreError::NotFound(_))
    ));
    let saved = s.save_webhook(&a, &upd, SaveMode::Update, &ctx()).await.unwrap();
    assert_eq!(
        (saved.webhook_key.as_str(), saved.secret.as_deref(), saved.secret_key_id.as_deref()),
        ("key-a", None, None)
    );
    assert!(s.webhook_secret_key_ids().await.unwrap().is_empty());
    let audits = s
        .list_audit(&a, &AuditFilter { resources: vec!["webhook".into()], limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(audits.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["UPDATE", "CREATE"]);
    assert!(!format!("{audits:?}").contains("Y2lwaGVy"), "no secret in the audit log");
    assert_eq!(audits[0].message.as_deref(), Some("security.secret changed"));

    // The same request id, eight times at once: one job.
    let job = NewJob { kind: "webhook_delivery".into(), payload: json!({"n": 1}), max_attempts: 3 };
    let outcomes = join_all((0..8).map(|_| s.enqueue_webhook_delivery(&a, "gh", Some("r1"), &job, T0)).collect()).await;
    let outcomes: Vec<Delivery> = outcomes.into_iter().map(Result::unwrap).collect();
    let enqueued: Vec<&crate::Job> =
        outcomes.iter().filter_map(|o| if let Delivery::Enqueued(j) = o { Some(&**j) } else { None }).collect();
    assert_eq!(enqueued.len(), 1, "{outcomes:?}");
    let first = enqueued[0].id.clone();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Delivery::Enqueued(_)) || *o == Delivery::Duplicate { job_id: first.clone() })
    );
    let filter = JobFilter { kind: Some("webhook_delivery".into()), limit: 100, ..JobFilter::default() };
    assert_eq!(s.list_jobs(&a, &filter).await.unwrap().len(), 1);
    // Per webhook and organization; no request id: no de-duplication.
    assert!(matches!(s.enqueue_webhook_delivery(&b, "gh", Some("r1"), &job, T0).await.unwrap(), Delivery::Enqueued(_)));
    for _ in 0..2 {
        assert!(matches!(s.enqueue_webhook_delivery(&a, "gh", None, &job, T0).await.unwrap(), Delivery::Enqueued(_)));
    }
    assert_eq!(s.list_jobs(&a, &filter).await.unwrap().len(), 3);

    // The event log, by delivery.
    let line = |delivery: Option<&str>, msg: &str| crate::IntegrationLog {
        id: String::new(),
        at: T0.into(),
        level: "INFO".into(),
        source: "server".into(),
        event: "delivery_received".into(),
        resync_id: delivery.map(str::to_string),
        message: msg.into(),
        extra: json!({}),
    };
    s.append_webhook_logs(&a, "gh", &[line(Some(&first), "one"), line(None, "two")]).await.unwrap();
    let all = s.list_webhook_logs(&a, "gh", &crate::LogFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["two", "one"]);
    assert!(all[0].id.starts_with("wl_"));
    let one = crate::LogFilter { resync_id: Some(first.clone()), limit: 10, ..Default::default() };
    let by_delivery = s.list_webhook_logs(&a, "gh", &one).await.unwrap();
    assert_eq!((by_delivery.len(), by_delivery[0].resync_id.as_deref()), (1, Some(first.as_str())));
    assert!(
        s.list_webhook_logs(&b, "gh", &crate::LogFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty()
    );

    // Deleting a webhook takes its deliveries and log along (audited).
    s.delete_webhook(&a, "gh", &ctx()).await.unwrap();
    assert!(s.get_webhook(&a, "gh").await.unwrap().is_none());
    assert!(matches!(s.delete_webhook(&a, "gh", &ctx()).await, Err(StoreError::NotFound(_))));
    assert!(
        s.list_webhook_logs(&a, "gh", &crate::LogFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty()
    );
    assert!(s.get_webhook(&b, "gh").await.unwrap().is_some(), "the other organization's webhook stays");
}

/// Integration cursors: keyed by (integration, kind, index); update only touches an existing
/// one; another organization sees none; deleting the integration deletes them.
pub async fn integration_cursors_are_keyed_updated_only_when_present_and_tenant_scoped(s: &dyn Store) {
    use crate::SaveMode;
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let data = json!({"installationAppType": "t", "config": {}});
    s.save_integration(&a, "int", &data, SaveMode::Create, false, &ctx()).await.unwrap();
    let c1 = json!({"primary": "2024-01-01T00:00:00Z"});
    let c2 = json!({"primary": "2024-02-01T00:00:00Z"});
    assert_eq!(s.integration_cursor(&a, "int", "repo", "0").await.unwrap(), None);
    assert!(!s.update_integration_cursor(&a, "int", "repo", "0", &c1, T0).await.unwrap(), "no cursor to update");
    assert_eq!(s.integration_cursor(&a, "int", "repo", "0").await.unwrap(), None, "a failed update writes nothing");
    s.save_integration_cursor(&a, "int", "repo", "0", &c1, T0).await.unwrap();
    assert_eq!(s.integration_cursor(&a, "int", "repo", "0").await.unwrap(), Some(c1.clone()));
    assert_eq!(s.integration_cursor(&a, "int", "repo", "1").await.unwrap(), None, "another index");
    assert_eq!(s.integration_cursor(&a, "int", "issue", "0").await.unwrap(), None, "another kind");
    assert_eq!(s.integration_cursor(&b, "int", "repo", "0").await.unwrap(), None, "another organization");
    assert!(s.update_integration_cursor(&a, "int", "repo", "0", &c2, T0).await.unwrap());
    assert_eq!(s.integration_cursor(&a, "int", "repo", "0").await.unwrap(), Some(c2.clone()));
    s.save_integration_cursor(&a, "int", "repo", "0", &c1, T0).await.unwrap();
    assert_eq!(s.integration_cursor(&a, "int", "repo", "0").await.unwrap(), Some(c1), "save replaces");
    assert!(!s.update_integration_cursor(&b, "int", "repo", "0", &c2, T0).await.unwrap());
    s.delete_integration(&a, "int", &ctx()).await.unwrap();
    assert_eq!(s.integration_cursor(&a, "int", "repo", "0").await.unwrap(), None, "deleted with the integration");
}

/// Web UI: the saved initial filter of a catalog page (replaced, removed, per organization and
/// blueprint), the audit log's `before` cursor, and bounded config-version reads.
pub async fn web_ui_settings_are_tenant_scoped_and_reads_are_paged(s: &dyn Store) {
    use crate::{AuditRecord, InitialFilter, SaveMode};
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    assert_eq!(s.initial_filter(&a, "service").await.unwrap(), None);
    let f1 = InitialFilter {
        filter: json!({"q": null, "rules": [["lang", "=", "rust"]]}),
        updated_at: T0.into(),
        updated_by: "admin@example.com".into(),
    };
    s.set_initial_filter(&a, "service", Some(&f1)).await.unwrap();
    assert_eq!(s.initial_filter(&a, "service").await.unwrap(), Some(f1.clone()));
    assert_eq!(s.initial_filter(&b, "service").await.unwrap(), None, "tenant scoped");
    assert_eq!(s.initial_filter(&a, "team").await.unwrap(), None, "per blueprint");
    let f2 = InitialFilter { filter: json!({"q": "x\u{0}y", "rules": []}), ..f1.clone() };
    s.set_initial_filter(&a, "service", Some(&f2)).await.unwrap();
    assert_eq!(s.initial_filter(&a, "service").await.unwrap(), Some(f2), "replaced");
    s.set_initial_filter(&b, "service", Some(&f1)).await.unwrap();
    s.set_initial_filter(&a, "service", None).await.unwrap();
    assert_eq!(s.initial_filter(&a, "service").await.unwrap(), None, "removed");
    assert_eq!(s.initial_filter(&b, "service").await.unwrap(), Some(f1), "the other organization's stays");
    s.set_initial_filter(&a, "service", None).await.unwrap();

    // The audit log pages newest first below a cursor.
    let record = |n: usize| AuditRecord {
        id: String::new(),
        at: T0.into(),
        resource_type: "entity".into(),
        action: "UPDATE".into(),
        status: "SUCCESS".into(),
        identifier: format!("e{n}"),
        blueprint: Some("service".into()),
        entity: Some(format!("e{n}")),
        origin: "API".into(),
        user_id: "tester".into(),
        diff: None,
        message: None,
    };
    s.append_audit(&a, &(0..5).map(record).collect::<Vec<_>>()).await.unwrap();
    s.append_audit(&b, &[record(9)]).await.unwrap();
    let page = |before: Option<i64>| AuditFilter { before, limit: 2, ..AuditFilter::default() };
    let ids = |rs: &[AuditRecord]| rs.iter().map(|r| r.identifier.clone()).collect::<Vec<_>>();
    let first = s.list_audit(&a, &page(None)).await.unwrap();
    assert_eq!(ids(&first), ["e4", "e3"]);
    let cursor = |rs: &[AuditRecord]| rs.last().unwrap().id.trim_start_matches("aud_").parse::<i64>().unwrap();
    let second = s.list_audit(&a, &page(Some(cursor(&first)))).await.unwrap();
    assert_eq!(ids(&second), ["e2", "e1"]);
    let third = s.list_audit(&a, &page(Some(cursor(&second)))).await.unwrap();
    assert_eq!(ids(&third), ["e0"]);

    // Config versions: the newest `limit` only.
    for n in 0..4 {
        let data = json!({"installationAppType": "t", "config": {"resources": [], "n": n}});
        let mode = if n == 0 { SaveMode::Create } else { SaveMode::Update };
        s.save_integration(&a, "int", &data, mode, false, &ctx()).await.unwrap();
    }
    let recent = s.recent_config_versions(&a, "int", 2).await.unwrap();
    assert_eq!(recent.iter().map(|v| v.version).collect::<Vec<_>>(), [4, 3]);
    assert_eq!(recent[0].config, json!({"resources": [], "n": 3}));
    assert!(s.recent_config_versions(&b, "int", 2).await.unwrap().is_empty());
}

/// `conformance_tests!(@optional $make)`: `$make` yields an `Option` of something that derefs
/// to a store; on `None` (a backend not configured on this machine) each test returns at once,
/// and the factory is expected to say on stderr that it skipped.
#[macro_export]
macro_rules! conformance_tests {
    (@list $mode:ident $make:expr) => {
        $crate::conformance_tests!(@cases $mode $make;
            settings_are_initialised_once, orgs_and_credentials, blueprint_lifecycle, blueprint_delete_guards,
            tenancy_is_enforced, entity_writes_see_the_stored_entity, missing_targets_reject_or_create_stubs,
            delete_unlinks_blocks_and_cascades, search_pages_with_a_cursor, writes_are_audited,
            renames_carry_entity_values, batches_are_one_unit,
            a_batch_naming_an_entity_twice_applies_both_in_order, updates_keep_creation_meta_and_replace_edges,
            job_claims_are_exclusive_under_concurrency, an_expired_lease_is_taken_over_and_the_old_holder_refused,
            failed_jobs_retry_with_backoff_until_max_attempts, released_and_cancelled_jobs, jobs_are_tenant_scoped,
            blueprint_version_changes_with_every_blueprint_write, required_dependents_come_from_other_blueprints,
            nul_characters_are_kept_or_refused_never_an_error, integrations_are_versioned_guarded_and_tenant_scoped,
            webhooks_dedupe_deliveries_keep_opaque_secrets_and_are_tenant_scoped,
            integration_cursors_are_keyed_updated_only_when_present_and_tenant_scoped,
            web_ui_settings_are_tenant_scoped_and_reads_are_paged, searches_stop_at_their_budget,
            largest_accepted_queries_run, job_claims_keep_each_organizations_share);
    };
    (@cases always $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::conformance::$case(&store).await;
            }
        )*
    };
    (@cases optional $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(store) = $make.await else { return };
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
    (@optional $make:expr) => {
        $crate::conformance_tests!(@list optional $make);
    };
    ($make:expr) => {
        $crate::conformance_tests!(@list always $make);
    };
}
