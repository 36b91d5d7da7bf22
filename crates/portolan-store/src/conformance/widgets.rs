//! Conformance: the aggregate reads of dashboard widgets — counts by a value with the rest as
//! "other", aggregates of a number property, entities per scorecard level — on the entities a
//! search selects, inside the organization.

use portolan_core::scorecard::check_scorecard;
use portolan_core::search::parse_query;
use serde_json::json;

use super::{ctx, entity, model, org, req, write_ok};
use crate::{Aggregate, SaveMode, ScoreTargets, ScorecardWrite, Store};

/// Counts by a property (top groups, nulls as `None`, the rest as other), by `$blueprint`,
/// restricted by a query; sum/average/min/max skip values that are not numbers; levels are
/// counted from stored results; another organization sees none of it.
pub async fn widget_aggregates_count_group_and_stay_in_the_organization(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let m = model(s, &a).await;
    let mb = model(s, &b).await;
    write_ok(s, &a, &m, vec![entity("team", "t", json!({}), json!({}))]).await;
    write_ok(s, &b, &mb, vec![entity("team", "t", json!({}), json!({}))]).await;
    let svc = |id: &str, props: serde_json::Value| entity("service", id, props, json!({"team": "t"}));
    write_ok(
        s,
        &a,
        &m,
        vec![
            svc("r1", json!({"lang": "rust", "cpu": 1})),
            svc("r2", json!({"lang": "rust", "cpu": 2.5})),
            svc("r3", json!({"lang": "rust", "cpu": "many"})),
            svc("g1", json!({"lang": "go", "cpu": 4})),
            svc("g2", json!({"lang": "go"})),
            svc("p1", json!({"lang": "python", "cpu": 8})),
            svc("n1", json!({})),
        ],
    )
    .await;
    write_ok(s, &b, &mb, vec![svc("x", json!({"lang": "rust", "cpu": 100}))]).await;

    let all = req(Some("service"), None, &m);
    let by_lang = s.count_by(&a, &all, "lang", 2).await.unwrap();
    assert_eq!(by_lang.groups, vec![(Some("rust".into()), 3), (Some("go".into()), 2)]);
    assert_eq!((by_lang.total, by_lang.other()), (7, 2));
    let every = s.count_by(&a, &all, "lang", 10).await.unwrap();
    assert_eq!(every.groups.len(), 4, "{every:?}");
    assert!(every.groups.contains(&(None, 1)), "a missing value is a group of its own: {every:?}");
    assert_eq!((every.total, every.other()), (7, 0));
    let by_bp = s.count_by(&a, &req(None, None, &m), "$blueprint", 10).await.unwrap();
    assert_eq!(by_bp.groups, vec![(Some("service".into()), 7), (Some("team".into()), 1)]);

    let q =
        parse_query(&json!({"combinator": "and", "rules": [{"property": "lang", "operator": "=", "value": "rust"}]}))
            .unwrap();
    let rust = req(Some("service"), Some(&q), &m);
    assert_eq!(s.count_by(&a, &rust, "lang", 5).await.unwrap().total, 3);
    assert_eq!(s.aggregate(&a, &rust, "cpu", Aggregate::Sum).await.unwrap(), Some(3.5), "\"many\" is no number");
    assert_eq!(s.aggregate(&a, &all, "cpu", Aggregate::Sum).await.unwrap(), Some(15.5));
    assert_eq!(s.aggregate(&a, &all, "cpu", Aggregate::Average).await.unwrap(), Some(15.5 / 4.0));
    assert_eq!(s.aggregate(&a, &all, "cpu", Aggregate::Min).await.unwrap(), Some(1.0));
    assert_eq!(s.aggregate(&a, &all, "cpu", Aggregate::Max).await.unwrap(), Some(8.0));
    assert_eq!(s.aggregate(&a, &all, "nothing", Aggregate::Max).await.unwrap(), None);

    // Levels of a scorecard, from its stored results.
    let v = json!({"identifier": "q", "title": "Q", "rules": [
        {"identifier": "hasCpu", "title": "cpu", "level": "Bronze",
         "query": {"combinator": "and", "conditions": [{"property": "cpu", "operator": "isNotEmpty"}]}}]});
    let w = ScorecardWrite {
        blueprint: "service".into(),
        identifier: "q".into(),
        id: "scorecard_q".into(),
        data: v.clone(),
    };
    s.save_scorecard(&a, &w, SaveMode::Create, &ctx(), None).await.unwrap();
    let sc = check_scorecard("service", &mut v.as_object().cloned().unwrap()).unwrap();
    s.score_entities(&a, &sc, &m, chrono::Utc::now(), ScoreTargets::After { after: 0, limit: 100 }).await.unwrap();
    let levels = s.level_counts(&a, "service", "q").await.unwrap();
    // No rule of a higher level: passing Bronze's reaches the top level.
    assert_eq!(levels, vec![("Gold".to_string(), 5), ("Basic".to_string(), 2)]);

    // The other organization: only its own entity, no levels.
    let b_all = req(Some("service"), None, &mb);
    assert_eq!(s.count_by(&b, &b_all, "lang", 5).await.unwrap().groups, vec![(Some("rust".into()), 1)]);
    assert_eq!(s.aggregate(&b, &b_all, "cpu", Aggregate::Sum).await.unwrap(), Some(100.0));
    assert!(s.level_counts(&b, "service", "q").await.unwrap().is_empty());
}
