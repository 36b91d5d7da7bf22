//! Conformance: actions, runs and their logs, the agent's claim protocol, organization secrets
//! and settings, and the signing secret.

use std::time::Duration;

use serde_json::{Map, json};

use super::{T0, ctx, join_all, org};
use crate::{
    ActionWrite, AuditFilter, JobFilter, NewJob, OrgSecret, Run, RunFilter, RunLog, SaveMode, Store, StoreError,
};

fn action(id: &str) -> ActionWrite {
    ActionWrite {
        identifier: id.into(),
        id: format!("action_{id}"),
        data: json!({"identifier": id, "title": id, "trigger": {"type": "self-service", "operation": "CREATE",
            "userInputs": {"properties": {}}}, "invocationMethod": {"type": "WEBHOOK", "url": "http://x"}}),
    }
}

fn run(id: &str, action: &str, entity: Option<&str>, pending: bool) -> Run {
    let mut data = Map::new();
    data.insert("properties".into(), json!({"v": 1}));
    Run {
        rid: 0,
        id: id.into(),
        action: action.into(),
        blueprint: entity.map(|_| "service".into()),
        entity: entity.map(str::to_string),
        status: "IN_PROGRESS".into(),
        external_run_id: None,
        data,
        trace: vec![],
        pending_execution: pending,
        claimed_until: None,
        installation_id: None,
        ended_by_log: false,
        created_by: "tester".into(),
        created_at: T0.into(),
        updated_by: "tester".into(),
        updated_at: T0.into(),
        ended_at: None,
        timeout_at: None,
    }
}

fn log(msg: &str, termination: Option<&str>) -> RunLog {
    RunLog {
        id: String::new(),
        at: T0.into(),
        message: msg.into(),
        termination_status: termination.map(str::to_string),
        status_label: None,
        user_id: "agent".into(),
    }
}

/// Actions: created once, replaced keeping id and creation meta, deleted, audited, and never
/// visible from another organization.
pub async fn actions_are_saved_audited_and_tenant_scoped(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let saved = s.save_action(&a, &action("deploy"), SaveMode::Create, &ctx()).await.unwrap();
    assert_eq!((saved.id.as_str(), saved.created_by.as_str()), ("action_deploy", "tester"));
    assert!(matches!(
        s.save_action(&a, &action("deploy"), SaveMode::Create, &ctx()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(s.save_action(&a, &action("nope"), SaveMode::Update, &ctx()).await, Err(StoreError::NotFound(_))));
    let mut upd = action("deploy");
    upd.id = "action_other".into();
    upd.data["title"] = json!("Deploy!");
    let later = crate::AuditCtx { at: "2024-01-02T00:00:00.000Z".into(), user_id: "u2".into(), ..ctx() };
    let saved = s.save_action(&a, &upd, SaveMode::Update, &later).await.unwrap();
    assert_eq!((saved.id.as_str(), saved.created_at.as_str(), saved.updated_by.as_str()), ("action_deploy", T0, "u2"));
    assert_eq!(s.get_action(&a, "deploy").await.unwrap().unwrap(), saved);
    assert!(s.get_action(&b, "deploy").await.unwrap().is_none());
    assert!(s.list_actions(&b).await.unwrap().is_empty());
    s.save_action(&b, &action("deploy"), SaveMode::Create, &ctx()).await.expect_err("action ids are global");
    s.save_action(&a, &action("build"), SaveMode::Create, &ctx()).await.unwrap();
    let ids: Vec<_> = s.list_actions(&a).await.unwrap().into_iter().map(|x| x.identifier).collect();
    assert_eq!(ids, ["build", "deploy"]);
    assert!(matches!(s.delete_action(&b, "deploy", &ctx()).await, Err(StoreError::NotFound(_))));
    s.delete_action(&a, "deploy", &ctx()).await.unwrap();
    assert!(s.get_action(&a, "deploy").await.unwrap().is_none());
    let audits = s
        .list_audit(&a, &AuditFilter { resources: vec!["action".into()], limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    let seen: Vec<_> = audits.iter().map(|r| (r.action.as_str(), r.identifier.as_str())).collect();
    assert_eq!(seen, [("DELETE", "deploy"), ("CREATE", "build"), ("UPDATE", "deploy"), ("CREATE", "deploy")]);
    // Permission documents: none until set, kept across saves, audited, per organization.
    assert_eq!(s.action_permissions(&a, "build").await.unwrap(), None);
    assert!(matches!(s.action_permissions(&b, "build").await, Err(StoreError::NotFound(_))));
    let doc = json!({"execute": {"roles": ["Admin"], "users": [], "teams": ["sre"], "ownedByTeam": false}});
    s.set_action_permissions(&a, "build", &doc, &ctx()).await.unwrap();
    assert!(matches!(s.set_action_permissions(&b, "build", &doc, &ctx()).await, Err(StoreError::NotFound(_))));
    s.save_action(&a, &action("build"), SaveMode::Update, &ctx()).await.unwrap();
    assert_eq!(s.action_permissions(&a, "build").await.unwrap(), Some(doc.clone()));
    let audits = s
        .list_audit(&a, &AuditFilter { resources: vec!["action".into()], limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    assert!(audits.iter().any(|r| r.diff.as_ref().is_some_and(|d| d["after"]["permissions"] == doc)), "{audits:?}");
}

/// Runs: stored with their invocation job in one transaction, read back, filtered newest first
/// with a cursor, updated with logs atomically (a refused edit changes nothing), affected
/// entities recorded once; nothing of it visible from another organization.
pub async fn runs_are_stored_with_their_job_updated_with_logs_and_tenant_scoped(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let job = NewJob { kind: "action_run".into(), payload: json!({"run": "r_1"}), max_attempts: 3 };
    let (r1, j) = s.create_run(&a, &run("r_1", "deploy", Some("svc"), false), Some(&job)).await.unwrap();
    assert!(r1.rid > 0);
    let j = j.expect("the job is enqueued with the run");
    let jobs = s.list_jobs(&a, &JobFilter { limit: 10, ..JobFilter::default() }).await.unwrap();
    assert_eq!(jobs.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), [j.id.as_str()]);
    let (r2, none) = s.create_run(&a, &run("r_2", "build", None, false), None).await.unwrap();
    assert!(none.is_none() && r2.rid > r1.rid);
    s.create_run(&b, &run("r_b", "deploy", Some("svc"), false), None).await.unwrap();
    assert!(s.create_run(&a, &run("r_1", "deploy", None, false), None).await.is_err(), "run ids are unique");

    assert_eq!(s.get_run(&a, "r_1").await.unwrap().unwrap(), r1);
    assert!(s.get_run(&b, "r_1").await.unwrap().is_none());
    let a_ref = &a;
    let list = |f: RunFilter| async move {
        s.list_runs(a_ref, &RunFilter { limit: 10, ..f }).await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(list(RunFilter::default()).await, ["r_2", "r_1"]);
    assert_eq!(list(RunFilter { action: Some("deploy".into()), ..RunFilter::default() }).await, ["r_1"]);
    assert_eq!(list(RunFilter { entity: Some("svc".into()), ..RunFilter::default() }).await, ["r_1"]);
    assert_eq!(list(RunFilter { before: Some(r2.rid), ..RunFilter::default() }).await, ["r_1"]);
    assert_eq!(
        list(RunFilter { statuses: vec!["SUCCESS".into()], ..RunFilter::default() }).await,
        Vec::<String>::new()
    );

    // An edit with logs; then a refused edit leaves run and logs as they were.
    let updated = s
        .update_run(&a, "r_1", &[log("started", None), log("done", Some("SUCCESS"))], &mut |r| {
            r.status = "SUCCESS".into();
            r.ended_by_log = true;
            r.external_run_id = Some("ext-1".into());
            r.data.insert("summary".into(), json!("ok"));
            r.trace.push(json!({"request": {"url": "http://x"}}));
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(s.get_run(&a, "r_1").await.unwrap().unwrap(), updated);
    assert_eq!((updated.status.as_str(), updated.data["summary"].as_str()), ("SUCCESS", Some("ok")));
    let refused = s
        .update_run(&a, "r_1", &[log("late", None)], &mut |r| {
            r.status = "FAILURE".into();
            Err(StoreError::Conflict("run r_1 has ended".into()))
        })
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    assert_eq!(s.get_run(&a, "r_1").await.unwrap().unwrap().status, "SUCCESS");
    let logs = s.list_run_logs(&a, "r_1", None, 100).await.unwrap();
    assert_eq!(logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["started", "done"]);
    assert_eq!(logs[1].termination_status.as_deref(), Some("SUCCESS"));
    let first: i64 = logs[0].id.trim_start_matches("log_").parse().unwrap();
    assert_eq!(s.list_run_logs(&a, "r_1", Some(first), 100).await.unwrap().len(), 1);
    assert!(s.list_run_logs(&b, "r_1", None, 100).await.unwrap().is_empty());
    assert!(matches!(s.update_run(&b, "r_1", &[], &mut |_| Ok(())).await, Err(StoreError::NotFound(_))));
    assert_eq!(list(RunFilter { external_run_id: Some("ext-1".into()), ..RunFilter::default() }).await, ["r_1"]);

    let e = |bp: &str, id: &str| (bp.to_string(), id.to_string());
    s.add_run_entities(&a, "r_1", &[e("service", "svc"), e("service", "svc2")], T0).await.unwrap();
    s.add_run_entities(&a, "r_1", &[e("service", "svc")], "2024-01-02T00:00:00.000Z").await.unwrap();
    assert_eq!(s.run_entities(&a, "r_1").await.unwrap(), [e("service", "svc"), e("service", "svc2")]);
    assert!(s.run_entities(&b, "r_1").await.unwrap().is_empty());
    assert!(matches!(s.add_run_entities(&b, "r_1", &[e("service", "x")], T0).await, Err(StoreError::NotFound(_))));

    // A run's texts holding a NUL character (its external id, installation, author) are stored
    // at creation as at an update (kept on SQLite; U+FFFD on PostgreSQL, whose text cannot hold
    // it), never a database error.
    let mut odd = run("r_nul", "deploy", None, false);
    odd.external_run_id = Some("x\u{0}y".into());
    odd.installation_id = Some("i\u{0}".into());
    odd.created_by = "u\u{0}".into();
    odd.updated_by = "u\u{0}".into();
    s.create_run(&a, &odd, None).await.unwrap();
    let mut later = |r: &mut Run| {
        r.updated_by = "v\u{0}".into();
        Ok(())
    };
    let got = s.update_run(&a, "r_nul", &[], &mut later).await.unwrap();
    let kept = |v: &str, want: &str| v == want || v == want.replace('\u{0}', "\u{fffd}");
    assert!(kept(got.external_run_id.as_deref().unwrap_or_default(), "x\u{0}y"), "{got:?}");
    assert!(kept(got.installation_id.as_deref().unwrap_or_default(), "i\u{0}"), "{got:?}");
    assert!(kept(&got.created_by, "u\u{0}") && kept(&got.updated_by, "v\u{0}"), "{got:?}");
}

/// Approvals: `update_run_or_start` enqueues the invocation only when the edit moves a run
/// from `WAITING_FOR_APPROVAL` to `IN_PROGRESS`, and a refused edit enqueues nothing.
pub async fn approved_runs_start_with_their_job_in_the_same_transaction(s: &dyn Store) {
    let a = org(s, "a").await;
    let job = NewJob { kind: "action_run".into(), payload: json!({"runId": "r_w"}), max_attempts: 3 };
    let mut waiting = run("r_w", "deploy", None, false);
    waiting.status = "WAITING_FOR_APPROVAL".into();
    s.create_run(&a, &waiting, None).await.unwrap();
    let jobs = || async { s.list_jobs(&a, &JobFilter { limit: 10, ..JobFilter::default() }).await.unwrap().len() };
    let (r, j) = s
        .update_run_or_start(
            &a,
            "r_w",
            &[],
            &mut |r| {
                r.data.insert("note".into(), json!("one of two approved"));
                Ok(())
            },
            &job,
        )
        .await
        .unwrap();
    assert!(j.is_none() && r.status == "WAITING_FOR_APPROVAL" && jobs().await == 0, "still waiting: no job");
    let refused = s
        .update_run_or_start(
            &a,
            "r_w",
            &[],
            &mut |r| {
                r.status = "IN_PROGRESS".into();
                Err(StoreError::Conflict("already decided".into()))
            },
            &job,
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))) && jobs().await == 0, "a refused edit starts nothing");
    let (r, j) = s
        .update_run_or_start(
            &a,
            "r_w",
            &[log("approved", None)],
            &mut |r| {
                r.status = "IN_PROGRESS".into();
                Ok(())
            },
            &job,
        )
        .await
        .unwrap();
    assert_eq!((r.status.as_str(), j.is_some(), jobs().await), ("IN_PROGRESS", true, 1));
    assert_eq!(s.get_run(&a, "r_w").await.unwrap().unwrap().data["note"], "one of two approved");
    let (_, again) = s.update_run_or_start(&a, "r_w", &[], &mut |_| Ok(()), &job).await.unwrap();
    assert!(again.is_none() && jobs().await == 1, "a run already started is not started twice");
}

/// Run timeouts: a run's `timeout_at` is kept while it is in progress and dropped when it
/// ends; the due runs of every organization are listed earliest first (limited), and a run's
/// last log line is read without the others.
pub async fn run_timeouts_are_listed_across_organizations_until_the_run_ends(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let with_timeout = |id: &str, at: &str| Run { timeout_at: Some(at.into()), ..run(id, "deploy", None, false) };
    let (r1, _) = s.create_run(&a, &with_timeout("r_1", "2024-01-01T00:00:10.000Z"), None).await.unwrap();
    assert_eq!(r1.timeout_at.as_deref(), Some("2024-01-01T00:00:10.000Z"));
    assert_eq!(s.get_run(&a, "r_1").await.unwrap().unwrap(), r1);
    s.create_run(&b, &with_timeout("r_b", "2024-01-01T00:00:05.000Z"), None).await.unwrap();
    s.create_run(&a, &with_timeout("r_late", "2024-01-01T01:00:00.000Z"), None).await.unwrap();
    s.create_run(&a, &run("r_never", "deploy", None, false), None).await.unwrap();
    // A run stored already ended keeps no deadline.
    let ended = Run { status: "SUCCESS".into(), ended_at: Some(T0.into()), ..with_timeout("r_done", T0) };
    let (done, _) = s.create_run(&a, &ended, None).await.unwrap();
    assert_eq!(done.timeout_at, None);

    let due = |now: &'static str, limit: u32| async move {
        s.due_run_timeouts(now, limit).await.unwrap().into_iter().map(|(o, id)| (o.0, id)).collect::<Vec<_>>()
    };
    let pair = |o: &crate::OrgId, id: &str| (o.0.clone(), id.to_string());
    assert_eq!(due("2024-01-01T00:00:04.999Z", 10).await, []);
    assert_eq!(due("2024-01-01T00:00:10.000Z", 10).await, [pair(&b, "r_b"), pair(&a, "r_1")]);
    assert_eq!(due("2024-01-01T00:00:10.000Z", 1).await, [pair(&b, "r_b")]);

    // Ending the run (any terminal status with ended_at) drops it from the due list.
    let ended = s
        .update_run(&b, "r_b", &[log("gave up", None)], &mut |r| {
            r.status = "FAILURE".into();
            r.ended_at = Some(T0.into());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(ended.timeout_at, None);
    assert_eq!(s.get_run(&b, "r_b").await.unwrap().unwrap().timeout_at, None);
    assert_eq!(due("2024-01-01T02:00:00.000Z", 10).await, [pair(&a, "r_1"), pair(&a, "r_late")]);
    // An edit may move the deadline of a run still in progress.
    s.update_run(&a, "r_late", &[], &mut |r| {
        r.timeout_at = Some("2024-01-01T00:00:01.000Z".into());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(due("2024-01-01T00:00:10.000Z", 10).await, [pair(&a, "r_late"), pair(&a, "r_1")]);

    assert!(s.last_run_log(&a, "r_1").await.unwrap().is_none());
    s.update_run(&a, "r_1", &[log("one", None), log("two", None)], &mut |_| Ok(())).await.unwrap();
    s.update_run(&a, "r_1", &[log("three", None)], &mut |_| Ok(())).await.unwrap();
    assert_eq!(s.last_run_log(&a, "r_1").await.unwrap().map(|l| l.message), Some("three".into()));
    assert!(s.last_run_log(&b, "r_1").await.unwrap().is_none(), "another organization's run");
    assert_eq!(s.last_run_log(&b, "r_b").await.unwrap().map(|l| l.message), Some("gave up".into()));
}

/// The agent's claim: concurrent claims never hand one run to two agents; a claim not
/// acknowledged before its lease runs out is offered again; of two acknowledgements exactly
/// one counts; runs of another organization are never claimed.
pub async fn agent_claims_are_leased_exclusive_and_acknowledged_once(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    for i in 0..6 {
        s.create_run(&a, &run(&format!("r_{i}"), "deploy", None, i != 5), None).await.unwrap();
    }
    s.create_run(&b, &run("r_b", "deploy", None, true), None).await.unwrap();
    let claims =
        join_all((0..4).map(|_| s.claim_pending_runs(&a, "_PORT_EXEC_AGENT", 2, Duration::from_secs(60))).collect())
            .await;
    let mut got: Vec<String> = claims.into_iter().flat_map(|c| c.unwrap()).map(|r| r.id).collect();
    got.sort();
    assert_eq!(got, ["r_0", "r_1", "r_2", "r_3", "r_4"], "each waiting run once, not the one that is not waiting");
    assert!(s.claim_pending_runs(&a, "_PORT_EXEC_AGENT", 10, Duration::from_secs(60)).await.unwrap().is_empty());
    let claimed = s.get_run(&a, "r_0").await.unwrap().unwrap();
    assert!(claimed.claimed_until.is_some() && claimed.pending_execution);
    assert_eq!(claimed.installation_id.as_deref(), Some("_PORT_EXEC_AGENT"));

    // Two agents acknowledge r_0: one counts it.
    let acks = join_all(vec![s.ack_runs(&a, &["r_0".into()]), s.ack_runs(&a, &["r_0".into()])]).await;
    assert_eq!(acks.into_iter().map(|n| n.unwrap()).sum::<u64>(), 1);
    assert_eq!(s.ack_runs(&b, &["r_1".into()]).await.unwrap(), 0, "another organization's ack counts nothing");

    // A lease that ran out: offered again (a dead agent's run); an acknowledged run is not.
    let short = s.claim_pending_runs(&b, "agent-b", 10, Duration::from_millis(1)).await.unwrap();
    assert_eq!(short.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r_b"]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // (An installation id holding a NUL character is kept, or U+FFFD on PostgreSQL.)
    let again = s.claim_pending_runs(&b, "agent-b\u{0}", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r_b"]);
    assert!(matches!(again[0].installation_id.as_deref(), Some("agent-b\u{0}" | "agent-b\u{fffd}")));
    assert_eq!(s.ack_runs(&b, &["r_b".into(), "r_x".into()]).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(s.claim_pending_runs(&b, "agent-b", 10, Duration::from_millis(1)).await.unwrap().is_empty());
}

/// Organization secrets are kept as the opaque ciphertext given, listed by name, never in an
/// audit record; settings and the signing secret are per organization.
pub async fn secrets_settings_and_signing_secret_are_opaque_audited_and_tenant_scoped(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let secret = |name: &str, value: &str| OrgSecret {
        name: name.into(),
        value: value.into(),
        key_id: "k1".into(),
        description: Some("d".into()),
        created_at: String::new(),
        created_by: String::new(),
        updated_at: String::new(),
        updated_by: String::new(),
    };
    let saved = s.save_secret(&a, &secret("token", "v1:k1:n:CIPHER1"), SaveMode::Create, &ctx()).await.unwrap();
    assert_eq!((saved.value.as_str(), saved.created_at.as_str()), ("v1:k1:n:CIPHER1", T0));
    assert!(matches!(
        s.save_secret(&a, &secret("token", "x"), SaveMode::Create, &ctx()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.save_secret(&a, &secret("nope", "x"), SaveMode::Update, &ctx()).await,
        Err(StoreError::NotFound(_))
    ));
    s.save_secret(&a, &secret("token", "v1:k1:n:CIPHER2"), SaveMode::Update, &ctx()).await.unwrap();
    assert_eq!(s.get_secret(&a, "token").await.unwrap().unwrap().value, "v1:k1:n:CIPHER2");
    assert!(s.get_secret(&b, "token").await.unwrap().is_none());
    assert!(s.list_secrets(&b).await.unwrap().is_empty());
    s.save_secret(&b, &secret("token", "v1:k1:n:CIPHER3"), SaveMode::Create, &ctx()).await.unwrap();
    assert!(matches!(s.delete_secret(&a, "nope", &ctx()).await, Err(StoreError::NotFound(_))));
    s.delete_secret(&a, "token", &ctx()).await.unwrap();
    assert!(s.list_secrets(&a).await.unwrap().is_empty());
    assert_eq!(s.list_secrets(&b).await.unwrap().len(), 1);
    let audits = s
        .list_audit(&a, &AuditFilter { resources: vec!["secret".into()], limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(audits.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["DELETE", "UPDATE", "CREATE"]);
    assert!(!format!("{audits:?}").contains("CIPHER"), "no secret value in the audit log");
    assert_eq!(audits[1].message.as_deref(), Some("value changed"));

    assert_eq!(s.org_settings(&a).await.unwrap(), json!({}));
    s.set_org_settings(&a, &json!({"portAgentStreamerName": "POLLING"}), &ctx()).await.unwrap();
    assert_eq!(s.org_settings(&a).await.unwrap(), json!({"portAgentStreamerName": "POLLING"}));
    assert_eq!(s.org_settings(&b).await.unwrap(), json!({}));

    assert!(s.signing_secret(&a).await.unwrap().is_none());
    s.add_credential(&a, "cid-2", "hash", "second", "2024-01-02T00:00:00.000Z").await.unwrap();
    s.add_credential(&a, "cid-1", "hash", "first", T0).await.unwrap();
    assert!(!s.set_credential_secret(&b, "cid-1", "v1:k2:n:SIGN", "k2").await.unwrap(), "not b's credential");
    assert!(s.set_credential_secret(&a, "cid-2", "v1:k2:n:SIGN2", "k2").await.unwrap());
    assert_eq!(s.signing_secret(&a).await.unwrap(), Some(("cid-2".into(), "v1:k2:n:SIGN2".into())));
    assert!(s.set_credential_secret(&a, "cid-1", "v1:k2:n:SIGN1", "k2").await.unwrap());
    assert_eq!(s.signing_secret(&a).await.unwrap(), Some(("cid-1".into(), "v1:k2:n:SIGN1".into())), "the oldest");
    assert!(s.signing_secret(&b).await.unwrap().is_none());
    assert_eq!(s.secrets_key_ids().await.unwrap(), ["k1", "k2"]);
}

/// Pages: created once, replaced keeping creation meta, deleted, audited, tenant-scoped.
pub async fn pages_are_saved_audited_and_tenant_scoped(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let page =
        json!({"type": "dashboard", "title": "Ops", "widgets": [{"id": "w1", "type": "markdown", "markdown": "hi"}]});
    let saved = s.save_page(&a, "ops", &page, SaveMode::Create, &ctx()).await.unwrap();
    assert_eq!((saved.identifier.as_str(), saved.created_at.as_str()), ("ops", T0));
    assert!(matches!(s.save_page(&a, "ops", &page, SaveMode::Create, &ctx()).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.save_page(&a, "nope", &page, SaveMode::Update, &ctx()).await, Err(StoreError::NotFound(_))));
    let later = crate::AuditCtx { at: "2024-01-02T00:00:00.000Z".into(), user_id: "u2".into(), ..ctx() };
    let changed = json!({"type": "dashboard", "title": "Ops!", "widgets": []});
    let saved = s.save_page(&a, "ops", &changed, SaveMode::Update, &later).await.unwrap();
    assert_eq!(
        (saved.created_at.as_str(), saved.updated_by.as_str(), saved.data["title"].as_str()),
        (T0, "u2", Some("Ops!"))
    );
    assert_eq!(s.get_page(&a, "ops").await.unwrap().unwrap(), saved);
    assert!(s.get_page(&b, "ops").await.unwrap().is_none());
    s.save_page(&b, "ops", &page, SaveMode::Create, &ctx()).await.unwrap();
    s.save_page(&a, "home", &json!({"type": "home"}), SaveMode::Create, &ctx()).await.unwrap();
    let ids: Vec<_> = s.list_pages(&a).await.unwrap().into_iter().map(|p| p.identifier).collect();
    assert_eq!(ids, ["home", "ops"]);
    assert!(matches!(s.delete_page(&a, "nope", &ctx()).await, Err(StoreError::NotFound(_))));
    s.delete_page(&a, "ops", &ctx()).await.unwrap();
    assert!(s.get_page(&a, "ops").await.unwrap().is_none());
    assert!(s.get_page(&b, "ops").await.unwrap().is_some(), "b's page of the same name stays");
    // Page permissions: none until set, set on the page's own row, tenant-scoped, audited.
    assert_eq!(s.page_permissions(&a, "home").await.unwrap(), None);
    assert!(matches!(s.page_permissions(&a, "nope").await, Err(StoreError::NotFound(_))));
    let perms = json!({"read": {"roles": ["Admin"], "users": ["ann@example.com"], "teams": ["ops"]}});
    s.set_page_permissions(&a, "home", &perms, &ctx()).await.unwrap();
    assert!(matches!(s.set_page_permissions(&a, "nope", &perms, &ctx()).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.set_page_permissions(&b, "home", &perms, &ctx()).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.page_permissions(&a, "home").await.unwrap(), Some(perms.clone()));
    assert_eq!(s.page_permissions(&b, "ops").await.unwrap(), None, "b's page is untouched");
    assert_eq!(s.all_page_permissions(&a).await.unwrap(), [("home".to_string(), perms.clone())]);
    assert!(s.all_page_permissions(&b).await.unwrap().is_empty());
    let home = s.get_page(&a, "home").await.unwrap().unwrap();
    s.save_page(&a, "home", &home.data, SaveMode::Update, &ctx()).await.unwrap();
    assert_eq!(s.page_permissions(&a, "home").await.unwrap(), Some(perms.clone()), "a page update keeps them");
    let audits = s
        .list_audit(&a, &AuditFilter { resources: vec!["page".into()], limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    let seen: Vec<_> = audits.iter().map(|r| (r.action.as_str(), r.identifier.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("UPDATE", "home"),
            ("UPDATE", "home"),
            ("DELETE", "ops"),
            ("CREATE", "home"),
            ("UPDATE", "ops"),
            ("CREATE", "ops")
        ]
    );
    assert_eq!(
        audits[1].diff.as_ref().unwrap()["after"]["permissions"],
        perms,
        "the permission change is in the audit log"
    );
}
