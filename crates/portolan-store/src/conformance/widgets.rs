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

/// A dashboard's widgets over one blueprint read in one scan ([`crate::Widgets::measure`]):
/// each measure's answer is what its own statement gives (counts, every aggregate, counts by a
/// value that is a string, number, boolean, array, JSON null or missing), with the scan whole
/// or split across connections; a measure whose query is wrong gets its own error and the
/// others are read; another organization's entities are not counted.
pub async fn measures_of_one_scan_match_their_own_statements(s: &dyn Store) {
    use crate::{Measure, Measured};
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let m = model(s, &a).await;
    let mb = model(s, &b).await;
    write_ok(s, &a, &m, vec![entity("team", "t", json!({}), json!({}))]).await;
    write_ok(s, &b, &mb, vec![entity("team", "t", json!({}), json!({}))]).await;
    let langs = [json!("rust"), json!("go"), json!(true), json!(false), json!(3), json!(2.5), json!(["x", "y"])];
    let cpus = [json!(1), json!(2.5), json!("many"), json!(-4), json!(8), json!(true), json!(0.25)];
    let svcs: Vec<_> = (0..40)
        .map(|i| {
            let mut p = serde_json::Map::new();
            if i % 9 != 8 {
                p.insert("lang".into(), if i % 11 == 10 { json!(null) } else { langs[i % langs.len()].clone() });
            }
            if i % 5 != 4 {
                p.insert("cpu".into(), cpus[i % cpus.len()].clone());
            }
            entity("service", &format!("s{i}"), serde_json::Value::Object(p), json!({"team": "t"}))
        })
        .collect();
    write_ok(s, &a, &m, svcs).await;
    write_ok(s, &b, &mb, vec![entity("service", "x", json!({"lang": "rust", "cpu": 100}), json!({"team": "t"}))]).await;

    let q = |v: serde_json::Value| parse_query(&v).unwrap();
    let rust = q(json!({"combinator": "and", "rules": [{"property": "lang", "operator": "=", "value": "rust"}]}));
    let big = q(json!({"combinator": "and", "rules": [{"property": "cpu", "operator": ">", "value": 2}]}));
    let bad = q(json!({"combinator": "and", "rules": [{"scorecard": "nope", "operator": "=", "value": "Gold"}]}));
    let ms: Vec<(Option<&portolan_core::search::Query>, Measure<'_>)> = vec![
        (None, Measure::Count),
        (Some(&rust), Measure::Count),
        (None, Measure::CountBy { field: "lang", top: 3 }),
        (None, Measure::CountBy { field: "lang", top: 100 }),
        (Some(&big), Measure::CountBy { field: "lang", top: 100 }),
        (None, Measure::CountBy { field: "cpu", top: 100 }),
        (Some(&bad), Measure::Count),
        (None, Measure::Aggregate { property: "cpu", func: Aggregate::Sum }),
        (Some(&rust), Measure::Aggregate { property: "cpu", func: Aggregate::Sum }),
        (None, Measure::Aggregate { property: "cpu", func: Aggregate::Average }),
        (Some(&big), Measure::Aggregate { property: "cpu", func: Aggregate::Min }),
        (None, Measure::Aggregate { property: "cpu", func: Aggregate::Max }),
        (None, Measure::Aggregate { property: "nothing", func: Aggregate::Max }),
    ];
    // What each measure's own statement answers.
    let mut expected = Vec::new();
    for (query, measure) in &ms {
        let one = req(Some("service"), *query, &m);
        expected.push(match *measure {
            Measure::Count => s.count_entities(&a, &one).await.map(Measured::Count),
            Measure::Aggregate { property, func } => {
                s.aggregate(&a, &one, property, func).await.map(Measured::Aggregate)
            }
            Measure::CountBy { field, top } => s.count_by(&a, &one, field, top).await.map(Measured::Breakdown),
        });
    }
    assert!(expected[6].is_err(), "an unknown scorecard is an error: {:?}", expected[6]);
    let Ok(Measured::Breakdown(every)) = &expected[3] else { panic!("{:?}", expected[3]) };
    for v in ["rust", "go", "true", "false", "3", "2.5"] {
        assert!(every.groups.iter().any(|(g, _)| g.as_deref() == Some(v)), "{v} is a group: {every:?}");
    }
    // Arrays as JSON (PostgreSQL writes a space after the comma).
    assert!(every.groups.iter().any(|(g, _)| g.as_deref().is_some_and(|g| g.starts_with("[\"x\","))), "{every:?}");
    let same = |got: &[crate::Result<Measured>], how: &str| {
        assert_eq!(got.len(), ms.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            match (g, e) {
                (Ok(Measured::Breakdown(g)), Ok(Measured::Breakdown(e))) => {
                    // Ties may be ordered differently by the databases' own statements: the
                    // counts in order, and the groups themselves when all are shown.
                    assert_eq!(g.total, e.total, "{how}: measure {i}");
                    let counts = |b: &crate::Breakdown| b.groups.iter().map(|x| x.1).collect::<Vec<_>>();
                    assert_eq!(counts(g), counts(e), "{how}: measure {i}: {g:?} / {e:?}");
                    if e.other() == 0 {
                        let (mut gs, mut es) = (g.groups.clone(), e.groups.clone());
                        gs.sort();
                        es.sort();
                        assert_eq!(gs, es, "{how}: measure {i}");
                    }
                }
                (Ok(Measured::Aggregate(Some(g))), Ok(Measured::Aggregate(Some(e)))) => {
                    assert!((g - e).abs() < 1e-9, "{how}: measure {i}: {g} / {e}");
                }
                (Ok(g), Ok(e)) => assert_eq!(g, e, "{how}: measure {i}"),
                (Err(g), Err(e)) => assert_eq!(g.to_string(), e.to_string(), "{how}: measure {i}"),
                (g, e) => panic!("{how}: measure {i}: {g:?} / {e:?}"),
            }
        }
    };
    let base = req(Some("service"), None, &m);
    same(&s.measure(&a, &base, &ms).await.unwrap(), "one scan");
    s.set_scan_part_rows(5);
    same(&s.measure(&a, &base, &ms).await.unwrap(), "split scan");
    s.set_scan_part_rows(crate::SCAN_PART_ROWS);

    // Across blueprints (no blueprint): counts by `$blueprint`.
    let all = req(None, None, &m);
    let by_bp = s.measure(&a, &all, &[(None, Measure::CountBy { field: "$blueprint", top: 10 })]).await.unwrap();
    let Ok(Measured::Breakdown(by_bp)) = &by_bp[0] else { panic!("{by_bp:?}") };
    assert_eq!(by_bp.groups, vec![(Some("service".into()), 40), (Some("team".into()), 1)]);
    // The other organization: its one service.
    let theirs = s.measure(&b, &req(Some("service"), None, &mb), &ms[..3]).await.unwrap();
    assert_eq!(theirs[0].as_ref().unwrap(), &Measured::Count(1));
    assert_eq!(theirs[1].as_ref().unwrap(), &Measured::Count(1));
}
