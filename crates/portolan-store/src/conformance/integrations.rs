//! Conformance: integrations (config versions, event log, resyncs, the deletion guard) and
//! their incremental sync cursors.

use serde_json::json;

use super::{T0, ctx, join_all, org};
use crate::{AuditFilter, Store, StoreError};

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
    // 20 concurrent reservations of one deletion each.
    let reservations = (0..20).map(|_| s.reserve_deletions(&a, "int", 1, 0, &guard)).collect();
    let results: Vec<Reservation> = join_all(reservations).await.into_iter().map(Result::unwrap).collect();
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
