//! Conformance: blueprints, their version counter, renames and required dependents.

use serde_json::json;

use super::{bp, ctx, entity, model, org, write_ok};
use crate::{Rename, Store, StoreError};

pub async fn blueprint_lifecycle(s: &dyn Store) {
    let a = org(s, "a").await;
    let b1 = bp(json!({"identifier": "svc", "title": "Service"}));
    s.create_blueprint(&a, &b1, &ctx()).await.unwrap();
    assert!(matches!(s.create_blueprint(&a, &b1, &ctx()).await, Err(StoreError::Conflict(_))));
    let mut b2 = b1.clone();
    b2.title = "Renamed".into();
    s.update_blueprint(&a, "svc", &b2, &[], &ctx()).await.unwrap();
    assert_eq!(s.get_blueprint(&a, "svc").await.unwrap().unwrap().blueprint.title, "Renamed");
    // Every organization has the system blueprints `_user` and `_team` from its creation.
    let ids: Vec<String> = s.list_blueprints(&a).await.unwrap().into_iter().map(|b| b.blueprint.identifier).collect();
    assert_eq!(ids, ["_team", "_user", "svc"]);
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
