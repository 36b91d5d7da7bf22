//! Conformance: the audit log of entity and blueprint writes.

use serde_json::json;

use super::{ctx, entity, model, org, write_ok};
use crate::{AuditFilter, Store};

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
