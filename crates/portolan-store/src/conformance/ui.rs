//! Conformance: the web UI's saved settings and paged reads.

use serde_json::json;

use super::{T0, ctx, org};
use crate::{AuditFilter, Store};

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
