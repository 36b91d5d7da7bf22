//! Conformance: aggregation values (computed with SQL aggregates over the search compiler's
//! relation walks), the upkeep jobs entity writes, deletes and blueprint saves enqueue, search
//! rules and sorts on computed values, tenancy.

use std::collections::HashMap;

use portolan_core::Blueprint;
use portolan_core::search::parse_query;
use serde_json::{Value, json};

use super::{bp, ctx, entity, idents, org, port_team, req, write_ok};
use crate::{
    AGGREGATE_ENTITIES_JOB, AGGREGATE_RECOMPUTE_JOB, AggregateTargets, JobFilter, OrgId, SearchRequest, Store,
};

fn agg(target: &str, spec: Value, extra: Value) -> Value {
    let mut v = json!({"title": "x", "target": target, "calculationSpec": spec});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

fn prop(func: &str) -> Value {
    json!({"calculationBy": "property", "func": func, "property": "severity", "averageOf": "total"})
}

/// service ← deployment(service) ← incident(deployment; severity, state); service aggregates
/// incidents two hops away.
async fn three(s: &dyn Store, org: &OrgId) -> HashMap<String, Blueprint> {
    let count = json!({"calculationBy": "entities", "func": "count"});
    let open = json!({"combinator": "and", "rules": [{"property": "state", "operator": "=", "value": "open"}]});
    let service = bp(json!({"identifier": "service", "title": "Service", "aggregationProperties": {
        "incidents": agg("incident", count.clone(), json!({})),
        "openIncidents": agg("incident", count.clone(), json!({"query": open})),
        "viaPath": agg("incident", count.clone(), json!({"pathFilter": [{"path": ["deployment", "service"]}]})),
        "wrongPath": agg("incident", count, json!({"pathFilter": [{"path": ["service"]}]})),
        "sevSum": agg("incident", prop("sum"), json!({})),
        "sevMin": agg("incident", prop("min"), json!({})),
        "sevMax": agg("incident", prop("max"), json!({})),
        "sevMedian": agg("incident", prop("median"), json!({})),
        "sevAvg": agg("incident", prop("average"), json!({})),
    }}));
    let deployment = bp(json!({"identifier": "deployment", "title": "Deployment",
        "relations": {"service": {"target": "service"}}}));
    let incident = bp(json!({"identifier": "incident", "title": "Incident",
        "schema": {"properties": {"severity": {"type": "number"}, "state": {"type": "string"}}},
        "relations": {"deployment": {"target": "deployment"}}}));
    let mut m = HashMap::new();
    for b in [service, deployment, incident] {
        s.create_blueprint(org, &b, &ctx()).await.unwrap();
        m.insert(b.identifier.clone(), b);
    }
    m
}

/// Run the queued `aggregation_entities` jobs' work as the server's handler does: the seeds'
/// aggregating entities, recomputed. Each job is then cancelled so it is not run again.
async fn upkeep(s: &dyn Store, org: &OrgId, m: &HashMap<String, Blueprint>) -> usize {
    let filter = JobFilter { kind: Some(AGGREGATE_ENTITIES_JOB.into()), limit: 100, ..JobFilter::default() };
    let mut ran = 0;
    for job in s.list_jobs(org, &filter).await.unwrap() {
        if job.status.is_finished() {
            continue;
        }
        let seeds: Vec<(String, String)> = serde_json::from_value(job.payload["seeds"].clone()).unwrap();
        let affected = s.aggregating_entities(org, &seeds, m).await.unwrap();
        assert!(affected.whole.is_empty());
        for (b, ids) in &affected.entities {
            let o = s.compute_aggregations(org, b, m, chrono::Utc::now(), AggregateTargets::Entities(ids)).await;
            assert!(o.unwrap().invalid.is_empty());
        }
        assert!(s.cancel_job(org, &job.id).await.unwrap());
        ran += 1;
    }
    ran
}

async fn values(s: &dyn Store, org: &OrgId, id: &str) -> HashMap<String, Option<f64>> {
    let keys = [("service".to_string(), id.to_string())];
    s.aggregation_values(org, &keys).await.unwrap().into_iter().map(|v| (v.property, v.value)).collect()
}

/// Values of every function over a two-hop path, the query filter and `pathFilter`; writes and
/// deletes of related entities enqueue the jobs that bring them up to date, coalesced while one
/// is queued (an organization without aggregation properties gets none); a full pass resumes after a row; a blueprint
/// save that changes an aggregation enqueues one recompute (coalesced while queued); search
/// rules and sorts read the values; nothing crosses organizations.
pub async fn aggregation_values_follow_writes_deletes_search_and_sort(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let m = three(s, &a).await;
    let plain = bp(json!({"identifier": "service", "title": "Service"}));
    s.create_blueprint(&b, &plain, &ctx()).await.unwrap();
    let mb: HashMap<String, Blueprint> = [("service".to_string(), plain)].into();
    let jobs = |o: OrgId, kind: &'static str| async move {
        let f = JobFilter { kind: Some(kind.into()), limit: 100, ..JobFilter::default() };
        s.list_jobs(&o, &f).await.unwrap()
    };
    assert_eq!(jobs(a.clone(), AGGREGATE_RECOMPUTE_JOB).await.len(), 1, "creating it enqueued a recompute");

    let e = |b: &str, id: &str, p: Value, r: Value| entity(b, id, p, r);
    write_ok(s, &a, &m, vec![e("service", "s1", json!({}), json!({})), e("service", "s2", json!({}), json!({}))]).await;
    write_ok(
        s,
        &a,
        &m,
        vec![
            e("deployment", "d1", json!({}), json!({"service": "s1"})),
            e("deployment", "d2", json!({}), json!({"service": "s2"})),
        ],
    )
    .await;
    let inc = |id: &str, sev: Value, state: &str, d: &str| {
        e("incident", id, json!({"severity": sev, "state": state}), json!({"deployment": d}))
    };
    write_ok(
        s,
        &a,
        &m,
        vec![
            inc("i1", json!(1), "open", "d1"),
            inc("i2", json!(4.5), "closed", "d1"),
            inc("i3", json!(10), "open", "d1"),
            inc("i4", json!("high"), "open", "d1"),
            inc("i5", json!(7), "open", "d2"),
        ],
    )
    .await;
    write_ok(s, &b, &mb, vec![e("service", "s1", json!({}), json!({}))]).await;
    assert!(jobs(b.clone(), AGGREGATE_ENTITIES_JOB).await.is_empty(), "no aggregation properties: no job");
    assert_eq!(upkeep(s, &a, &m).await, 1, "the three write batches' seeds went into one queued job");

    let v = values(s, &a, "s1").await;
    assert_eq!(v["incidents"], Some(4.0));
    assert_eq!(v["openIncidents"], Some(3.0));
    assert_eq!(v["viaPath"], Some(4.0));
    assert_eq!(v["wrongPath"], Some(0.0), "incidents have no relation `service`");
    assert_eq!(v["sevSum"], Some(15.5), "a non-number adds nothing");
    assert_eq!(v["sevMin"], Some(1.0));
    assert_eq!(v["sevMax"], Some(10.0));
    assert_eq!(v["sevMedian"], Some(4.5));
    assert_eq!(v["sevAvg"], Some(15.5 / 3.0));
    let v2 = values(s, &a, "s2").await;
    assert_eq!((v2["incidents"], v2["sevMedian"]), (Some(1.0), Some(7.0)));

    // Moving an incident to the other deployment updates both services (the old relation's
    // target is a seed); deleting one lowers the count.
    write_ok(s, &a, &m, vec![inc("i3", json!(10), "open", "d2")]).await;
    assert_eq!(upkeep(s, &a, &m).await, 1);
    assert_eq!(values(s, &a, "s1").await["incidents"], Some(3.0));
    assert_eq!(values(s, &a, "s2").await["incidents"], Some(2.0));
    assert_eq!(values(s, &a, "s2").await["sevMedian"], Some(8.5), "median of two: their mean");
    s.delete_entities(&a, "incident", &["i1".to_string()], false, &ctx()).await.unwrap();
    assert_eq!(upkeep(s, &a, &m).await, 1);
    let v = values(s, &a, "s1").await;
    assert_eq!((v["incidents"], v["openIncidents"], v["sevMin"]), (Some(2.0), Some(1.0), Some(4.5)));
    // A service with no incidents: counts and sums 0, the others none.
    write_ok(s, &a, &m, vec![e("service", "s3", json!({}), json!({}))]).await;
    assert_eq!(upkeep(s, &a, &m).await, 1);
    let v = values(s, &a, "s3").await;
    assert_eq!((v["incidents"], v["sevSum"], v["sevMax"], v["sevAvg"]), (Some(0.0), Some(0.0), None, None));

    // Search and sort read the computed values.
    let q = parse_query(&json!({"combinator": "and", "rules": [
        {"property": "incidents", "operator": ">=", "value": 2}]}))
    .unwrap();
    let r = req(Some("service"), Some(&q), &m);
    assert_eq!(super::idents(s, &a, &r).await, ["s1", "s2"]);
    let q = parse_query(&json!({"combinator": "and", "rules": [
        {"property": "sevMax", "operator": "isEmpty"}]}))
    .unwrap();
    assert_eq!(super::idents(s, &a, &req(Some("service"), Some(&q), &m)).await, ["s3"]);
    let all = SearchRequest { limit: 10, ..req(Some("service"), None, &m) };
    for (desc, want) in [(false, ["s1", "s2", "s3"]), (true, ["s2", "s1", "s3"])] {
        let p = s.search_sorted(&a, &all, "sevMedian", desc, 0).await.unwrap();
        let got: Vec<String> = p.entities.into_iter().map(|e| e.identifier).collect();
        assert_eq!(got, want, "4.5, 8.5, none last (descending: {desc})");
    }

    // A full pass in chunks of one gives the same values and removes those of gone properties.
    let mut changed = HashMap::new();
    changed.insert("service".to_string(), {
        let mut svc = m["service"].clone();
        svc.aggregation_properties.shift_remove("wrongPath");
        svc
    });
    let m2: HashMap<String, Blueprint> = m.clone().into_iter().chain(changed.clone()).collect();
    for j in jobs(a.clone(), AGGREGATE_RECOMPUTE_JOB).await {
        assert!(s.cancel_job(&a, &j.id).await.unwrap());
    }
    s.update_blueprint(&a, "service", &m2["service"], &[], &ctx()).await.unwrap();
    let mut again = m2["service"].clone();
    again.aggregation_properties.shift_remove("sevAvg");
    s.update_blueprint(&a, "service", &again, &[], &ctx()).await.unwrap();
    s.update_blueprint(&a, "service", &m2["service"], &[], &ctx()).await.unwrap();
    let recomputes = jobs(a.clone(), AGGREGATE_RECOMPUTE_JOB).await;
    assert_eq!(recomputes.len(), 2, "one on create, one for the changes (while queued: not enqueued again)");
    assert!(!values(s, &a, "s1").await.contains_key("wrongPath"), "the removed property's values went at once");
    let (mut after, mut passes) = (0, 0);
    loop {
        let o = s
            .compute_aggregations(&a, "service", &m2, chrono::Utc::now(), AggregateTargets::After { after, limit: 1 })
            .await
            .unwrap();
        passes += 1;
        match o.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(passes, 4, "three services, one per chunk, and the end");
    assert_eq!(values(s, &a, "s2").await["incidents"], Some(2.0));

    // Tenancy: org b's same-named entity has no values; a deleted service's values go.
    assert!(values(s, &b, "s1").await.is_empty());
    s.delete_entities(&a, "service", &["s3".to_string()], false, &ctx()).await.unwrap();
    assert!(values(s, &a, "s3").await.is_empty());
}

/// A reader who may read only some of the targets sees aggregation values computed over those
/// (`aggregation_values_visible`), never the stored ones built from every target.
pub async fn aggregation_values_for_a_reader_count_only_what_it_reads(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = three(s, &a).await;
    for t in ["t1", "t2"] {
        port_team(s, &a, t).await;
    }
    let e = |b: &str, id: &str, p: Value, r: Value| entity(b, id, p, r);
    write_ok(s, &a, &m, vec![e("service", "s1", json!({}), json!({}))]).await;
    write_ok(s, &a, &m, vec![e("deployment", "d1", json!({}), json!({"service": "s1"}))]).await;
    let inc = |id: &str, sev: i64, state: &str, team: &[&str]| {
        let mut x = e("incident", id, json!({"severity": sev, "state": state}), json!({"deployment": "d1"}));
        x.team = team.iter().map(|t| t.to_string()).collect();
        x
    };
    write_ok(
        s,
        &a,
        &m,
        vec![inc("i1", 1, "open", &["t1"]), inc("i2", 5, "open", &["t2"]), inc("i3", 2, "closed", &[])],
    )
    .await;
    let ids = ["s1".to_string()];
    s.compute_aggregations(&a, "service", &m, chrono::Utc::now(), AggregateTargets::Entities(&ids)).await.unwrap();
    assert_eq!(values(s, &a, "s1").await["incidents"], Some(3.0), "stored: every target");
    // The read restriction of a member of t1 who reads incidents of their teams only.
    let visible = parse_query(&json!({"combinator": "and", "rules": [{"combinator": "or", "rules": [
        {"property": "$blueprint", "operator": "!=", "value": "incident"},
        {"property": "$team", "operator": "containsAny", "value": ["t1"]}]}]}))
    .unwrap();
    let live = s.aggregation_values_visible(&a, "service", &ids, &m, chrono::Utc::now(), &visible).await.unwrap();
    let got: HashMap<&str, Option<f64>> = live.iter().map(|v| (v.property.as_str(), v.value)).collect();
    assert_eq!(
        (got["incidents"], got["openIncidents"], got["sevSum"], got["sevMax"], got["viaPath"]),
        (Some(1.0), Some(1.0), Some(1.0), Some(1.0), Some(1.0)),
        "{live:?}"
    );
    assert!(live.iter().all(|v| v.blueprint == "service" && v.entity == "s1"));
    // Nor may that reader search or sort by the stored values (they count hidden incidents).
    let rule = parse_query(&json!({"combinator": "and", "rules": [
        {"property": "incidents", "operator": ">", "value": 2}]}))
    .unwrap();
    let restricted = SearchRequest { visible: Some(&visible), ..req(Some("service"), Some(&rule), &m) };
    let err = s.search(&a, &restricted).await.map(|_| ()).unwrap_err();
    assert!(matches!(&err, crate::StoreError::Invalid(e) if e.message.contains("may not read")), "{err:?}");
    let sorting = SearchRequest { visible: Some(&visible), ..req(Some("service"), None, &m) };
    let err = s.search_sorted(&a, &sorting, "incidents", false, 0).await.map(|_| ()).unwrap_err();
    assert!(matches!(&err, crate::StoreError::Invalid(e) if e.path == "sort"), "{err:?}");
    assert_eq!(idents(s, &a, &req(Some("service"), Some(&rule), &m)).await, ["s1"], "unrestricted: searchable");
    // A restriction that admits every target gives the stored values.
    let all = parse_query(&json!({"combinator": "and", "rules": [
        {"property": "$blueprint", "operator": "!=", "value": "nothing"}]}))
    .unwrap();
    let live = s.aggregation_values_visible(&a, "service", &ids, &m, chrono::Utc::now(), &all).await.unwrap();
    let stored = values(s, &a, "s1").await;
    assert!(live.iter().all(|v| stored[&v.property] == v.value), "{live:?} vs {stored:?}");
    // Another organization's entities are not there.
    let b = org(s, "b").await;
    let live = s.aggregation_values_visible(&b, "service", &ids, &m, chrono::Utc::now(), &all).await.unwrap();
    let incidents = live.iter().find(|v| v.property == "incidents").map(|v| v.value);
    assert_eq!(incidents, Some(Some(0.0)), "organization b has no incidents: {live:?}");
}
