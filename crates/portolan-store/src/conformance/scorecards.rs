//! Conformance: scorecard definitions, results computed by the search compiler, level
//! history, the recompute job every entity write enqueues, tenancy.

use portolan_core::scorecard::{Scorecard, check_scorecard};
use serde_json::{Value, json};

use super::{ctx, entity, model, org, write_ok};
use crate::{
    AuditFilter, JobFilter, NewJob, SCORE_ENTITIES_JOB, SaveMode, ScoreTargets, ScorecardWrite, Store, StoreError,
};

fn body(id: &str) -> Value {
    json!({"identifier": id, "title": id,
    "filter": {"combinator": "and", "conditions": [{"property": "lang", "operator": "!=", "value": "cobol"}]},
    "rules": [
        {"identifier": "hasCpu", "title": "cpu", "level": "Bronze",
         "query": {"combinator": "and", "conditions": [{"property": "cpu", "operator": "isNotEmpty"}]}},
        {"identifier": "bigCpu", "title": "big", "level": "Silver",
         "query": {"combinator": "and", "conditions": [{"property": "cpu", "operator": ">", "value": 2}]}},
        {"identifier": "rust", "title": "rust", "level": "Gold",
         "query": {"combinator": "and", "conditions": [{"property": "lang", "operator": "=", "value": "rust"}]}}
    ]})
}

fn checked(v: &Value) -> Scorecard {
    let mut m = v.as_object().cloned().unwrap();
    check_scorecard("service", &mut m).unwrap()
}

fn write(id: &str, v: &Value) -> ScorecardWrite {
    ScorecardWrite {
        blueprint: "service".into(),
        identifier: id.into(),
        id: format!("scorecard_{id}"),
        data: v.clone(),
    }
}

/// Definitions: created once, replaced keeping id and creation meta, listed per blueprint or
/// for all, deleted with their results and history, audited, and invisible to another
/// organization; the job given to a save is enqueued with it.
pub async fn scorecards_are_saved_audited_and_tenant_scoped(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    model(s, &a).await;
    model(s, &b).await;
    let job = NewJob { kind: "scorecard_recompute".into(), payload: json!({"x": 1}), max_attempts: 3 };
    let (saved, j) =
        s.save_scorecard(&a, &write("own", &body("own")), SaveMode::Create, &ctx(), Some(&job)).await.unwrap();
    assert_eq!(saved.id, "scorecard_own");
    assert_eq!(j.unwrap().kind, "scorecard_recompute");
    let dup = s.save_scorecard(&a, &write("own", &body("own")), SaveMode::Create, &ctx(), None).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    let missing = s.save_scorecard(&a, &write("nope", &body("nope")), SaveMode::Update, &ctx(), None).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
    let mut changed = body("own");
    changed["title"] = json!("Ownership");
    let mut w = write("own", &changed);
    w.id = "scorecard_other".into();
    let (upd, _) = s.save_scorecard(&a, &w, SaveMode::Update, &ctx(), None).await.unwrap();
    assert_eq!(upd.id, "scorecard_own", "the id is kept");
    assert_eq!(s.get_scorecard(&a, "service", "own").await.unwrap().unwrap().data["title"], "Ownership");
    assert_eq!(s.list_scorecards(&a, Some("service")).await.unwrap().len(), 1);
    assert_eq!(s.list_scorecards(&a, Some("domain")).await.unwrap().len(), 0);
    assert_eq!(s.list_scorecards(&a, None).await.unwrap().len(), 1);
    // Tenancy.
    assert!(s.get_scorecard(&b, "service", "own").await.unwrap().is_none());
    assert!(s.list_scorecards(&b, None).await.unwrap().is_empty());
    assert!(matches!(s.delete_scorecard(&b, "service", "own", &ctx()).await, Err(StoreError::NotFound(_))));
    let recs = s
        .list_audit(&a, &AuditFilter { resources: vec!["scorecard".into()], limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    let actions: Vec<&str> = recs.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["UPDATE", "CREATE"]);
    s.delete_scorecard(&a, "service", "own", &ctx()).await.unwrap();
    assert!(s.get_scorecard(&a, "service", "own").await.unwrap().is_none());
    assert!(matches!(s.delete_scorecard(&a, "service", "own", &ctx()).await, Err(StoreError::NotFound(_))));

    // Deleting a blueprint deletes its scorecards.
    s.save_scorecard(&a, &write("own", &body("own")), SaveMode::Create, &ctx(), None).await.unwrap();
    s.delete_blueprint(&a, "service", &ctx()).await.unwrap();
    assert!(s.list_scorecards(&a, None).await.unwrap().is_empty());
}

/// Results: the filter decides who is evaluated, each rule's status and the level follow Port's
/// rule, unchanged results are not rewritten, history grows only when a level changes, a full
/// pass in chunks resumes after a row and ends by removing results of deleted entities, and no
/// result is visible from another organization.
pub async fn scorecard_results_follow_rules_filter_and_history(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let m = model(s, &a).await;
    model(s, &b).await;
    let v = body("q");
    s.save_scorecard(&a, &write("q", &v), SaveMode::Create, &ctx(), None).await.unwrap();
    let sc = checked(&v);
    let queued = s.write_group_use().queued_jobs;
    write_ok(s, &a, &m, vec![entity("team", "t", json!({}), json!({}))]).await;
    assert_eq!(s.write_group_use().queued_jobs, queued, "a write that queues no job is not counted");
    let svc = |id: &str, props: Value| entity("service", id, props, json!({"team": "t"}));
    write_ok(
        s,
        &a,
        &m,
        vec![
            svc("none", json!({})),
            svc("bronze", json!({"cpu": 1})),
            svc("gold-no-silver", json!({"cpu": 1, "lang": "rust"})),
            svc("gold", json!({"cpu": 4, "lang": "rust"})),
            svc("old", json!({"cpu": 4, "lang": "cobol"})),
        ],
    )
    .await;
    // Each write batch touching a blueprint with scorecards enqueued one recompute job, counted
    // by the time the write answers (the server wakes a job worker for it).
    assert_eq!(s.write_group_use().queued_jobs, queued + 1);
    let filter = JobFilter { kind: Some(SCORE_ENTITIES_JOB.into()), limit: 10, ..JobFilter::default() };
    let jobs = s.list_jobs(&a, &filter).await.unwrap();
    assert_eq!(jobs.len(), 1, "the team write enqueued nothing");
    assert_eq!(jobs[0].payload["blueprint"], "service");
    assert_eq!(jobs[0].payload["entities"].as_array().unwrap().len(), 5);

    // A full pass, two entities at a time.
    let now = chrono::Utc::now();
    let (mut after, mut passes, mut level_changes) = (0, 0, 0);
    loop {
        let o = s.score_entities(&a, &sc, &m, now, ScoreTargets::After { after, limit: 2 }).await.unwrap();
        passes += 1;
        level_changes += o.level_changes;
        match o.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(passes, 3);
    assert_eq!(level_changes, 4, "first results count as changes; `old` is filtered out");
    let keys: Vec<(String, String)> = ["none", "bronze", "gold-no-silver", "gold", "old"]
        .iter()
        .map(|i| ("service".to_string(), i.to_string()))
        .collect();
    let levels = |rs: Vec<crate::ScorecardResult>| -> Vec<(String, String)> {
        rs.into_iter().map(|r| (r.entity, r.level)).collect()
    };
    let results = s.scorecard_results(&a, &keys).await.unwrap();
    let bronze = results.iter().find(|r| r.entity == "bronze").unwrap();
    assert_eq!(
        bronze.rules,
        json!([{"identifier": "hasCpu", "status": "SUCCESS", "level": "Bronze"},
               {"identifier": "bigCpu", "status": "FAILURE", "level": "Silver"},
               {"identifier": "rust", "status": "FAILURE", "level": "Gold"}])
    );
    let want = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(
        levels(results),
        want(&[("bronze", "Bronze"), ("gold", "Gold"), ("gold-no-silver", "Bronze"), ("none", "Basic")])
    );

    // Nothing changed: nothing written.
    let o = s.score_entities(&a, &sc, &m, now, ScoreTargets::After { after: 0, limit: 100 }).await.unwrap();
    assert_eq!((o.scanned, o.changed, o.level_changes, o.next), (5, 0, 0, None));

    // `none` climbs to Silver, `gold` leaves the filter, `bronze` is deleted.
    write_ok(s, &a, &m, vec![svc("none", json!({"cpu": 3})), svc("gold", json!({"cpu": 4, "lang": "cobol"}))]).await;
    s.delete_entities(&a, "service", &["bronze".into()], false, &ctx()).await.unwrap();
    let ids: Vec<String> = ["none", "gold", "bronze"].iter().map(|s| s.to_string()).collect();
    let o = s.score_entities(&a, &sc, &m, now, ScoreTargets::Entities(&ids)).await.unwrap();
    assert_eq!((o.scanned, o.changed, o.level_changes), (2, 3, 1));
    assert_eq!(
        levels(s.scorecard_results(&a, &keys).await.unwrap()),
        want(&[("gold-no-silver", "Bronze"), ("none", "Silver")])
    );
    let h = s.level_history(&a, "service", "none", "q", 10).await.unwrap();
    assert_eq!(h.iter().map(|c| c.level.as_str()).collect::<Vec<_>>(), ["Basic", "Silver"]);
    assert!(!h[0].at.is_empty());
    assert_eq!(s.level_history(&a, "service", "none", "q", 1).await.unwrap()[0].level, "Silver", "the last ones");

    // Tenancy: another organization sees no result, no history, and cannot score a
    // scorecard it does not have.
    assert!(s.scorecard_results(&b, &keys).await.unwrap().is_empty());
    assert!(s.level_history(&b, "service", "none", "q", 10).await.unwrap().is_empty());
    let other = s.score_entities(&b, &sc, &m, now, ScoreTargets::Entities(&ids)).await;
    assert!(matches!(other, Err(StoreError::NotFound(_))));

    // Deleting the scorecard removes its results and history.
    s.delete_scorecard(&a, "service", "q", &ctx()).await.unwrap();
    assert!(s.scorecard_results(&a, &keys).await.unwrap().is_empty());
    assert!(s.level_history(&a, "service", "none", "q", 10).await.unwrap().is_empty());
}

/// Replacing all of a blueprint's scorecards: given ones are created or replaced (ids kept),
/// the others deleted with their results, each change audited and each given job enqueued,
/// in one transaction — a refused write changes nothing; another organization is untouched.
pub async fn scorecards_are_replaced_all_at_once(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let m = model(s, &a).await;
    model(s, &b).await;
    for o in [&a, &b] {
        for id in ["one", "two"] {
            let mut w = write(id, &body(id));
            w.id = format!("scorecard_{id}_{}", o.0); // ids are unique across organizations
            s.save_scorecard(o, &w, SaveMode::Create, &ctx(), None).await.unwrap();
        }
    }
    write_ok(s, &a, &m, vec![entity("team", "t", json!({}), json!({}))]).await;
    write_ok(s, &a, &m, vec![entity("service", "svc", json!({"cpu": 4, "lang": "rust"}), json!({"team": "t"}))]).await;
    let two = checked(&body("two"));
    s.score_entities(&a, &two, &m, chrono::Utc::now(), ScoreTargets::Entities(&["svc".into()])).await.unwrap();
    assert_eq!(s.scorecard_results(&a, &[("service".into(), "svc".into())]).await.unwrap().len(), 1);
    let before = s.get_scorecard(&a, "service", "one").await.unwrap().unwrap();
    let job = |id: &str| NewJob { kind: "scorecard_recompute".into(), payload: json!({"sc": id}), max_attempts: 3 };

    // A write for another blueprint is refused, and nothing changed.
    let mut stray = write("three", &body("three"));
    stray.blueprint = "domain".into();
    let bad = vec![(write("one", &body("one")), job("one")), (stray, job("three"))];
    assert!(s.replace_scorecards(&a, "service", &bad, &ctx()).await.is_err());
    assert_eq!(s.list_scorecards(&a, Some("service")).await.unwrap().len(), 2);

    let mut one = body("one");
    one["title"] = json!("One, changed");
    let saved = s
        .replace_scorecards(
            &a,
            "service",
            &[(write("one", &one), job("one")), (write("three", &body("three")), job("three"))],
            &ctx(),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = saved.iter().map(|x| x.identifier.as_str()).collect();
    assert_eq!(ids, ["one", "three"]);
    assert_eq!(saved[0].id, before.id, "a replaced scorecard keeps its id");
    let listed: Vec<String> =
        s.list_scorecards(&a, Some("service")).await.unwrap().into_iter().map(|x| x.identifier).collect();
    assert_eq!(listed, ["one", "three"], "'two' was deleted");
    assert!(
        s.scorecard_results(&a, &[("service".into(), "svc".into())]).await.unwrap().is_empty(),
        "the deleted scorecard's results went with it"
    );
    let recs = s
        .list_audit(&a, &AuditFilter { resources: vec!["scorecard".into()], limit: 3, ..AuditFilter::default() })
        .await
        .unwrap();
    let mut actions: Vec<(&str, &str)> = recs.iter().map(|r| (r.action.as_str(), r.identifier.as_str())).collect();
    actions.sort_unstable();
    assert_eq!(actions, [("CREATE", "three"), ("DELETE", "two"), ("UPDATE", "one")]);
    let filter = JobFilter { kind: Some("scorecard_recompute".into()), limit: 10, ..JobFilter::default() };
    let queued = s.list_jobs(&a, &filter).await;
    assert_eq!(queued.unwrap().len(), 2, "one job per given scorecard");
    assert_eq!(s.list_scorecards(&b, Some("service")).await.unwrap().len(), 2, "the other organization's stay");
}
