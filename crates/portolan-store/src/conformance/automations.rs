//! Conformance: automation events — recorded with the entity change that caused them, only
//! for blueprints an automation listens to and only when something changed; dispatched once.

use serde_json::json;

use super::{ctx, entity, model, org, write_ok};
use crate::{AUTOMATION_JOB, ActionWrite, JobFilter, NewJob, Run, SaveMode, Store};

fn automation(id: &str, event: &str, bp: &str) -> ActionWrite {
    ActionWrite {
        identifier: id.into(),
        id: format!("action_{id}"),
        data: json!({"identifier": id, "trigger": {"type": "automation",
            "event": {"type": event, "blueprintIdentifier": bp}},
            "invocationMethod": {"type": "WEBHOOK", "url": "http://x"}}),
    }
}

/// Entity changes on a listened-to blueprint leave one event each (Port's event object, the
/// writer's depth) and one queued dispatch job; other blueprints, other organizations and
/// unchanged writes leave none; an event is dispatched once, with its runs.
pub async fn automation_events_are_recorded_with_the_change_and_dispatched_once(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let (ma, mb) = (model(s, &a).await, model(s, &b).await);
    write_ok(s, &b, &mb, vec![entity("team", "t-b", json!({}), json!({}))]).await;
    write_ok(s, &a, &ma, vec![entity("team", "before", json!({}), json!({}))]).await;
    assert!(s.pending_events(&a, 10).await.unwrap().is_empty(), "no automation: no event");

    s.save_action(&a, &automation("on_team", "ANY_ENTITY_CHANGE", "team"), SaveMode::Create, &ctx()).await.unwrap();
    let deeper = crate::AuditCtx { depth: 3, ..ctx() };
    let writes = vec![super::put(entity("team", "t1", json!({}), json!({})), &ma, false)];
    let queued = s.write_group_use().queued_jobs;
    s.write_entities(&a, writes, &deeper).await.unwrap();
    assert_eq!(s.write_group_use().queued_jobs, queued + 1, "the heard write queued the dispatch");
    write_ok(s, &a, &ma, vec![entity("domain", "d1", json!({}), json!({}))]).await;
    // The same entity again: nothing changed.
    write_ok(s, &a, &ma, vec![entity("team", "t1", json!({}), json!({}))]).await;
    assert_eq!(s.write_group_use().queued_jobs, queued + 1, "writes no automation hears queue nothing");
    write_ok(s, &a, &ma, vec![entity("team", "t1", json!({"x": 1}), json!({}))]).await;
    s.delete_entities(&a, "team", &["t1".into()], false, &ctx()).await.unwrap();

    let events = s.pending_events(&a, 10).await.unwrap();
    let kinds: Vec<(&str, &str, u32)> = events.iter().map(|e| (e.kind.as_str(), e.target.as_str(), e.depth)).collect();
    assert_eq!(kinds, [("ENTITY_CREATED", "team", 3), ("ENTITY_UPDATED", "team", 0), ("ENTITY_DELETED", "team", 0)]);
    let first = &events[0].value().unwrap();
    assert_eq!((first["action"].as_str(), first["resourceType"].as_str()), (Some("CREATE"), Some("entity")));
    assert_eq!(
        first["context"],
        json!({"blueprintIdentifier": "team", "entityIdentifier": "t1",
        "propertyIdentifier": null})
    );
    assert_eq!(
        (first["diff"]["before"].clone(), first["diff"]["after"]["identifier"].clone()),
        (json!(null), json!("t1"))
    );
    assert_eq!(first["trigger"]["by"]["userId"], json!("tester"));
    assert_eq!(events[2].value().unwrap()["diff"]["after"], json!(null));
    let context = |e: &crate::AutomationEvent| (e.blueprint.clone(), e.entity.clone(), e.property.clone());
    assert_eq!(context(&events[2]), (Some("team".into()), Some("t1".into()), None));
    // Oldest first (the kinds above), each event once.
    assert_eq!(events.iter().map(|e| e.id).collect::<std::collections::HashSet<_>>().len(), events.len());
    assert!(s.pending_events(&b, 10).await.unwrap().is_empty(), "another organization's events");

    let jobs = s.list_jobs(&a, &JobFilter { limit: 100, ..JobFilter::default() }).await.unwrap();
    let dispatch: Vec<_> = jobs.iter().filter(|j| j.kind == AUTOMATION_JOB).collect();
    assert_eq!(dispatch.len(), 1, "one queued dispatch job for every event: {jobs:?}");

    // Dispatch: the runs and their jobs are stored with the event's deletion, once.
    let run = Run {
        id: "r_auto".into(),
        action: "on_team".into(),
        blueprint: Some("team".into()),
        entity: Some("t1".into()),
        ..run_template()
    };
    let job = NewJob { kind: "action_run".into(), payload: json!({"runId": "r_auto"}), max_attempts: 3 };
    let first = events[0].id;
    assert!(s.dispatch_events(&b, &[(first, vec![])]).await.unwrap().is_empty(), "not another organization's event");
    let done = s.dispatch_events(&a, &[(first, vec![(run.clone(), Some(job.clone()))])]).await.unwrap();
    assert_eq!(done, [first]);
    assert!(s.get_run(&a, "r_auto").await.unwrap().is_some());
    let again = Run { id: "r_again".into(), ..run };
    assert!(s.dispatch_events(&a, &[(first, vec![(again, Some(job))])]).await.unwrap().is_empty());
    assert!(s.get_run(&a, "r_again").await.unwrap().is_none(), "a dispatched event starts nothing again");
    let left: Vec<i64> = s.pending_events(&a, 10).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(left, [events[1].id, events[2].id]);

    // Run events: created, and updated only where a reader sees a change.
    s.save_action(&a, &automation("on_runs", "ANY_RUN_CHANGE", "deploy"), SaveMode::Create, &ctx()).await.unwrap();
    let mut deploy_run = Run { id: "r_deploy".into(), action: "deploy".into(), ..run_template() };
    deploy_run.data.insert("_depth".into(), json!(4));
    s.create_run(&a, &deploy_run, None).await.unwrap();
    s.update_run(&a, "r_deploy", &[], &mut |r| {
        r.trace.push(json!({"call": 1}));
        Ok(())
    })
    .await
    .unwrap();
    s.update_run(&a, "r_deploy", &[], &mut |r| {
        r.status = "SUCCESS".into();
        Ok(())
    })
    .await
    .unwrap();
    let runs: Vec<_> = s.pending_events(&a, 10).await.unwrap().into_iter().filter(|e| e.target == "deploy").collect();
    let kinds: Vec<(&str, u32)> = runs.iter().map(|e| (e.kind.as_str(), e.depth)).collect();
    assert_eq!(kinds, [("RUN_CREATED", 5), ("RUN_UPDATED", 5)], "the trace-only update is no event");
    let upd = &runs[1].value().unwrap();
    assert_eq!((runs[1].blueprint.as_deref(), runs[1].entity.as_deref()), (None, None), "a run event names no entity");
    assert_eq!((upd["resourceType"].as_str(), upd["diff"]["after"]["status"].as_str()), (Some("run"), Some("SUCCESS")));
    assert_eq!(upd["diff"]["before"]["status"], json!("IN_PROGRESS"));
    assert!(upd["diff"]["after"].get("_depth").is_none(), "bookkeeping keys are left out");

    // Timers: each expiry after the automation's creation fires once, in order of expiry.
    let mut timer = automation("on_exp", "TIMER_PROPERTY_EXPIRED", "domain");
    timer.data["trigger"]["event"]["propertyIdentifier"] = json!("exp");
    s.save_action(&a, &timer, SaveMode::Create, &ctx()).await.unwrap();
    let at = |sec: u32| format!("2024-01-01T00:{:02}:{:02}.000Z", sec / 60, sec % 60);
    write_ok(
        s,
        &a,
        &ma,
        vec![
            entity("domain", "d-late", json!({"exp": at(90)}), json!({})),
            entity("domain", "d-soon", json!({"exp": at(5)}), json!({})),
            entity("domain", "d-none", json!({"owner": "x"}), json!({})),
        ],
    )
    .await;
    write_ok(s, &b, &mb, vec![entity("domain", "d-b", json!({"exp": at(5)}), json!({}))]).await;
    assert_eq!(s.fire_timers(&at(10)).await.unwrap(), 1);
    assert_eq!(s.fire_timers(&at(10)).await.unwrap(), 0, "fired once");
    assert_eq!(s.fire_timers(&at(100)).await.unwrap(), 1);
    let fired = timer_events(s, &a).await;
    let ids: Vec<&str> = fired.iter().map(|e| e["context"]["entityIdentifier"].as_str().unwrap()).collect();
    assert_eq!(ids, ["d-soon", "d-late"]);
    assert_eq!(fired[0]["context"]["propertyIdentifier"], json!("exp"));
    assert_eq!(fired[0]["diff"]["after"]["properties"]["exp"], json!(at(5)));
    assert!(timer_events(s, &b).await.is_empty(), "no automation watches organization b's timers");
}

async fn timer_events(s: &dyn Store, org: &crate::OrgId) -> Vec<serde_json::Value> {
    let evs = s.pending_events(org, 100).await.unwrap();
    evs.into_iter()
        .filter(|e| e.kind == "TIMER_PROPERTY_EXPIRED")
        .map(|e| {
            let v = e.value().unwrap();
            let named = (v["context"]["entityIdentifier"].as_str(), v["context"]["propertyIdentifier"].as_str());
            assert_eq!((e.entity.as_deref(), e.property.as_deref()), named, "the event's context fields");
            v
        })
        .collect()
}

/// One entity's changes are dispatched in commit order, also where their request times run the
/// other way (a request stamps its time before it waits for the entity) and run events are
/// pending beside them; what a batch's limit leaves out is the newest of each kind.
/// Automation events and changelog changes left with no job to handle them (on PostgreSQL, a
/// write that committed after its organization's job had looked and ended) get one queued once
/// they have waited since before the given time — not while a job is queued or running, and
/// not for an organization with nothing waiting.
pub async fn work_left_with_no_job_is_queued_again(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let mut ma = model(s, &a).await;
    let mb = model(s, &b).await;
    let vm = super::bp(json!({"identifier": "vm", "title": "VM",
        "changelogDestination": {"type": "WEBHOOK", "url": "https://changes.example/hook"}}));
    s.create_blueprint(&a, &vm, &ctx()).await.unwrap();
    ma.insert("vm".into(), vm);
    s.save_action(&a, &automation("on_team", "ANY_ENTITY_CHANGE", "team"), SaveMode::Create, &ctx()).await.unwrap();
    write_ok(s, &a, &ma, vec![entity("team", "t1", json!({}), json!({})), entity("vm", "v1", json!({}), json!({}))])
        .await;
    write_ok(s, &b, &mb, vec![entity("team", "t-b", json!({}), json!({}))]).await;
    let kinds = vec![AUTOMATION_JOB.to_string(), crate::CHANGELOG_JOB.to_string()];
    let lease = std::time::Duration::from_secs(30);
    let unfinished = |org: crate::OrgId| async move {
        let jobs = s.list_jobs(&org, &JobFilter { limit: 100, ..JobFilter::default() }).await.unwrap();
        let mut v: Vec<(String, String)> = jobs
            .into_iter()
            .filter(|j| !j.status.is_finished())
            .map(|j| (j.kind, j.status.as_str().to_string()))
            .collect();
        v.sort();
        v
    };
    // The jobs the write queued looked before it committed, found nothing and ended.
    while let Some(job) = s.claim_job("n1", &kinds, lease).await.unwrap() {
        assert!(s.complete_job(&job.lease().unwrap(), &json!({})).await.unwrap());
    }
    assert!(unfinished(a.clone()).await.is_empty());
    assert_eq!(s.requeue_stranded("2000-01-01T00:00:00.000Z").await.unwrap(), 0, "not waiting that long yet");
    assert_eq!(s.requeue_stranded(LATER).await.unwrap(), 2);
    let queued = |k: &str| (k.to_string(), "queued".to_string());
    assert_eq!(unfinished(a.clone()).await, [queued(AUTOMATION_JOB), queued(crate::CHANGELOG_JOB)]);
    assert!(unfinished(b.clone()).await.is_empty(), "nothing of b's waits");
    assert_eq!(s.requeue_stranded(LATER).await.unwrap(), 0, "queued already");
    // Running jobs will read what waits: none is queued beside them.
    let running = [s.claim_job("n1", &kinds, lease).await.unwrap(), s.claim_job("n1", &kinds, lease).await.unwrap()];
    assert!(running.iter().all(Option::is_some));
    assert_eq!(s.requeue_stranded(LATER).await.unwrap(), 0, "running already");
    assert_eq!(s.pending_events(&a, 10).await.unwrap().len(), 1, "the event still waits for its dispatch");
    // Once dispatched (its mark cleared, or SQLite's cursor moved past it), nothing waits.
    let waiting: Vec<i64> = s.pending_events(&a, 10).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(s.dispatch_events(&a, &[(waiting[0], vec![])]).await.unwrap(), waiting);
    for job in running.into_iter().flatten() {
        if job.kind == AUTOMATION_JOB {
            assert!(s.complete_job(&job.lease().unwrap(), &json!({})).await.unwrap());
        }
    }
    assert_eq!(s.requeue_stranded(LATER).await.unwrap(), 0, "a dispatched event is no stranded work");
}

const LATER: &str = "2999-01-01T00:00:00.000Z";

pub async fn automation_events_keep_each_entitys_commit_order(s: &dyn Store) {
    let a = org(s, "a").await;
    let ma = model(s, &a).await;
    s.save_action(&a, &automation("on_team", "ANY_ENTITY_CHANGE", "team"), SaveMode::Create, &ctx()).await.unwrap();
    s.save_action(&a, &automation("on_runs", "ANY_RUN_CHANGE", "deploy"), SaveMode::Create, &ctx()).await.unwrap();
    let at = |sec: u32| crate::AuditCtx { at: format!("2024-01-01T00:00:{sec:02}.000Z"), ..ctx() };
    let run = Run { id: "r_deploy".into(), action: "deploy".into(), ..run_template() };
    s.create_run(&a, &run, None).await.unwrap(); // RUN_CREATED at T0
    let write = |props: serde_json::Value| vec![super::put(entity("team", "t1", props, json!({})), &ma, false)];
    s.write_entities(&a, write(json!({})), &at(9)).await.unwrap();
    s.write_entities(&a, write(json!({"x": 1})), &at(5)).await.unwrap();
    s.write_entities(&a, write(json!({"x": 2})), &at(7)).await.unwrap();
    let kinds = |evs: &[crate::AutomationEvent]| {
        evs.iter()
            .map(|e| (e.kind.clone(), e.value().unwrap()["diff"]["after"]["properties"]["x"].clone()))
            .collect::<Vec<_>>()
    };
    let all = s.pending_events(&a, 10).await.unwrap();
    assert_eq!(
        kinds(&all),
        [
            ("RUN_CREATED".to_string(), json!(null)),
            ("ENTITY_CREATED".to_string(), json!(null)),
            ("ENTITY_UPDATED".to_string(), json!(1)),
            ("ENTITY_UPDATED".to_string(), json!(2)),
        ]
    );
    let first_two = s.pending_events(&a, 2).await.unwrap();
    assert_eq!(kinds(&first_two), kinds(&all[..2]), "a batch is the oldest events, in order");
}

/// A dispatch stores every run of its events and each run's job, however many (the runs are
/// inserted many rows per statement, in chunks): each run as given, the refused one without a
/// job, and the events are gone.
pub async fn a_dispatch_stores_every_run_and_job_of_its_events(s: &dyn Store) {
    let a = org(s, "a").await;
    let ma = model(s, &a).await;
    s.save_action(&a, &automation("on_team", "ANY_ENTITY_CHANGE", "team"), SaveMode::Create, &ctx()).await.unwrap();
    let write = |id: &str| vec![super::put(entity("team", id, json!({}), json!({})), &ma, false)];
    s.write_entities(&a, write("t1"), &ctx()).await.unwrap();
    s.write_entities(&a, write("t2"), &ctx()).await.unwrap();
    let events = s.pending_events(&a, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    let run = |i: usize| {
        let mut r =
            Run { id: format!("r_{i}"), action: "on_team".into(), entity: Some(format!("t{i}")), ..run_template() };
        r.data.insert("n".into(), json!(i));
        r
    };
    let job =
        |i: usize| NewJob { kind: "action_run".into(), payload: json!({"runId": format!("r_{i}")}), max_attempts: 3 };
    let mut refused = run(0);
    refused.status = "FAILURE".into();
    let many: Vec<(Run, Option<NewJob>)> =
        std::iter::once((refused, None)).chain((1..=501).map(|i| (run(i), Some(job(i))))).collect();
    let few = vec![(run(502), Some(job(502))), (run(503), Some(job(503)))];
    let done = s.dispatch_events(&a, &[(events[0].id, many), (events[1].id, few)]).await.unwrap();
    assert_eq!(done, [events[0].id, events[1].id]);
    assert!(s.pending_events(&a, 10).await.unwrap().is_empty(), "both events were dispatched");
    let mut rids = std::collections::HashSet::new();
    for i in 0..=503 {
        let got = s.get_run(&a, &format!("r_{i}")).await.unwrap().unwrap_or_else(|| panic!("run r_{i} is missing"));
        assert_eq!((got.entity.clone(), got.data.get("n")), (Some(format!("t{i}")), Some(&json!(i))), "run r_{i}");
        assert_eq!(got.status, if i == 0 { "FAILURE" } else { "IN_PROGRESS" }, "run r_{i}");
        assert!(rids.insert(got.rid), "run r_{i}'s rid {} is another run's", got.rid);
    }
    let filter = JobFilter { kind: Some("action_run".into()), limit: 1000, ..JobFilter::default() };
    let mut queued: Vec<String> = s
        .list_jobs(&a, &filter)
        .await
        .unwrap()
        .iter()
        .map(|j| j.payload["runId"].as_str().unwrap_or_default().to_string())
        .collect();
    queued.sort();
    let mut want: Vec<String> = (1..=503).map(|i| format!("r_{i}")).collect();
    want.sort();
    assert_eq!(queued, want, "one job per run, none for the refused one");
}

/// A dispatch given later events without an earlier waiting one takes at most those (on
/// SQLite, which takes events in order by moving a cursor, none): whatever it took is never
/// taken again, what it did not take still waits, and a dispatch of everything waiting then
/// takes exactly the rest — no event is lost or dispatched twice, and no run is stored for an
/// event not taken.
pub async fn events_left_out_of_a_dispatch_still_wait(s: &dyn Store) {
    let a = org(s, "a").await;
    let ma = model(s, &a).await;
    s.save_action(&a, &automation("on_team", "ANY_ENTITY_CHANGE", "team"), SaveMode::Create, &ctx()).await.unwrap();
    for id in ["t1", "t2", "t3"] {
        write_ok(s, &a, &ma, vec![entity("team", id, json!({}), json!({}))]).await;
    }
    let events: Vec<i64> = s.pending_events(&a, 10).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(events.len(), 3);
    let run =
        |i: i64| (Run { id: format!("r_{}", i.unsigned_abs()), action: "on_team".into(), ..run_template() }, None);
    let later = [(events[1], vec![run(events[1])]), (events[2], vec![run(events[2])])];
    let first = s.dispatch_events(&a, &later).await.unwrap();
    assert!(first.iter().all(|id| events[1..].contains(id)), "{first:?} of {events:?}");
    let waiting: Vec<i64> = s.pending_events(&a, 10).await.unwrap().iter().map(|e| e.id).collect();
    let expected: Vec<i64> = events.iter().copied().filter(|id| !first.contains(id)).collect();
    assert_eq!(waiting, expected, "the events not taken still wait, in order");
    assert_eq!(s.get_run(&a, &run(events[1]).0.id).await.unwrap().is_some(), !first.is_empty());
    let batch: Vec<_> = waiting.iter().map(|id| (*id, vec![run(*id)])).collect();
    let rest = s.dispatch_events(&a, &batch).await.unwrap();
    assert_eq!(rest, waiting, "a dispatch of everything waiting takes it all");
    assert!(s.pending_events(&a, 10).await.unwrap().is_empty());
    assert!(s.dispatch_events(&a, &batch).await.unwrap().is_empty(), "nothing is taken twice");
    for id in &events {
        assert!(s.get_run(&a, &run(*id).0.id).await.unwrap().is_some(), "event {id} started its run once");
    }
}

fn run_template() -> Run {
    Run {
        rid: 0,
        id: String::new(),
        action: String::new(),
        blueprint: None,
        entity: None,
        status: "IN_PROGRESS".into(),
        external_run_id: None,
        data: serde_json::Map::new(),
        trace: vec![],
        pending_execution: false,
        claimed_until: None,
        installation_id: None,
        ended_by_log: false,
        created_by: "automation".into(),
        created_at: super::T0.into(),
        updated_by: "automation".into(),
        updated_at: super::T0.into(),
        ended_at: None,
        timeout_at: None,
    }
}
