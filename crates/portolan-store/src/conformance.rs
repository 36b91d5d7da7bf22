//! The store conformance suite: behaviour every backend must have. Each case is a plain async
//! function over a fresh, empty store; [`conformance_tests!`](crate::conformance_tests) turns
//! them into one `#[tokio::test]` per case for a backend's factory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;

use portolan_core::search::parse_query;
use portolan_core::{Blueprint, Entity};
use serde_json::{Map, Value, json};

use crate::{
    AuditCtx, AuditFilter, EntityWrite, OrgId, RelTarget, Rename, SearchRequest, Store, StoreError, WriteRejection,
};

pub const T0: &str = "2024-01-01T00:00:00.000Z";

pub fn ctx() -> AuditCtx {
    AuditCtx { user_id: "tester".into(), origin: "API".into(), at: T0.into() }
}

pub async fn org(store: &dyn Store, name: &str) -> OrgId {
    store.create_org(&OrgId(format!("org_{name}")), name, T0).await.unwrap().id
}

pub fn bp(v: Value) -> Blueprint {
    serde_json::from_value(v).unwrap()
}

/// domain ← service(domain: single, optional; owner: single, required → team)
pub async fn model(store: &dyn Store, org: &OrgId) -> HashMap<String, Blueprint> {
    let team = bp(json!({"identifier": "team", "title": "Team"}));
    let domain =
        bp(json!({"identifier": "domain", "title": "Domain", "schema": {"properties": {"owner": {"type": "string"}}}}));
    let service = bp(json!({"identifier": "service", "title": "Service",
        "schema": {"properties": {"cpu": {"type": "number"}, "lang": {"type": "string"}}},
        "relations": {"domain": {"target": "domain"}, "team": {"target": "team", "required": true}}}));
    let mut m = HashMap::new();
    for b in [team, domain, service] {
        store.create_blueprint(org, &b, &ctx()).await.unwrap();
        m.insert(b.identifier.clone(), b);
    }
    m
}

pub fn entity(bp: &str, id: &str, props: Value, rels: Value) -> Entity {
    Entity {
        identifier: id.into(),
        title: Some(id.to_uppercase()),
        icon: None,
        blueprint: bp.into(),
        team: vec![],
        properties: props.as_object().cloned().unwrap_or_default(),
        relations: rels.as_object().cloned().unwrap_or_default(),
        created_at: T0.into(),
        created_by: "tester".into(),
        updated_at: T0.into(),
        updated_by: "tester".into(),
        datasource: None,
    }
}

fn edges(e: &Entity, model: &HashMap<String, Blueprint>) -> Vec<RelTarget> {
    let b = &model[&e.blueprint];
    portolan_core::entity::relation_targets(b, e)
        .into_iter()
        .map(|(relation, target_blueprint, target_identifier, required)| RelTarget {
            relation,
            target_blueprint,
            target_identifier,
            required,
        })
        .collect()
}

/// A plain upsert of `e`.
pub fn put(e: Entity, model: &HashMap<String, Blueprint>, create_missing: bool) -> EntityWrite {
    let ed = edges(&e, model);
    EntityWrite {
        blueprint: e.blueprint.clone(),
        identifier: e.identifier.clone(),
        build: Box::new(move |_| Ok((e, ed))),
        create_missing_related: create_missing,
    }
}

pub async fn write_ok(store: &dyn Store, org: &OrgId, model: &HashMap<String, Blueprint>, es: Vec<Entity>) {
    let writes = es.into_iter().map(|e| put(e, model, false)).collect();
    for r in store.write_entities(org, writes, &ctx()).await.unwrap() {
        r.expect("write accepted");
    }
}

fn req<'a>(
    bp: Option<&'a str>,
    q: Option<&'a portolan_core::search::Query>,
    m: &'a HashMap<String, Blueprint>,
) -> SearchRequest<'a> {
    SearchRequest { blueprint: bp, query: q, blueprints: m, after: None, limit: 100, now: chrono::Utc::now() }
}

async fn idents(store: &dyn Store, org: &OrgId, r: &SearchRequest<'_>) -> Vec<String> {
    let mut v: Vec<String> = store.search(org, r).await.unwrap().entities.into_iter().map(|e| e.identifier).collect();
    v.sort();
    v
}

pub async fn settings_are_initialised_once(s: &dyn Store) {
    assert_eq!(s.setting_or_init("k", "first").await.unwrap(), "first");
    assert_eq!(s.setting_or_init("k", "second").await.unwrap(), "first");
}

pub async fn orgs_and_credentials(s: &dyn Store) {
    let a = org(s, "a").await;
    assert!(matches!(s.create_org(&OrgId("org_other".into()), "a", T0).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.org_by_name("a").await.unwrap().unwrap().id, a);
    assert!(s.org_by_name("zzz").await.unwrap().is_none());
    s.add_credential(&a, "cid", "hash", "n", T0).await.unwrap();
    assert_eq!(s.credential("cid").await.unwrap(), Some((a.clone(), "hash".to_string())));
    assert!(s.credential("nope").await.unwrap().is_none());
    let b = org(s, "b").await;
    assert!(s.list_credentials(&b).await.unwrap().is_empty());
    assert_eq!(s.list_credentials(&a).await.unwrap().len(), 1);
}

pub async fn blueprint_lifecycle(s: &dyn Store) {
    let a = org(s, "a").await;
    let b1 = bp(json!({"identifier": "svc", "title": "Service"}));
    s.create_blueprint(&a, &b1, &ctx()).await.unwrap();
    assert!(matches!(s.create_blueprint(&a, &b1, &ctx()).await, Err(StoreError::Conflict(_))));
    let mut b2 = b1.clone();
    b2.title = "Renamed".into();
    s.update_blueprint(&a, "svc", &b2, &[], &ctx()).await.unwrap();
    assert_eq!(s.get_blueprint(&a, "svc").await.unwrap().unwrap().blueprint.title, "Renamed");
    assert_eq!(s.list_blueprints(&a).await.unwrap().len(), 1);
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

pub async fn tenancy_is_enforced(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let m = model(s, &a).await;
    write_ok(s, &a, &m, vec![entity("team", "t1", json!({}), json!({}))]).await;
    assert!(s.get_blueprint(&b, "team").await.unwrap().is_none());
    assert!(s.list_blueprints(&b).await.unwrap().is_empty());
    assert!(s.get_entity(&b, "team", "t1").await.unwrap().is_none());
    assert!(s.get_entities(&b, "team", &["t1".into()]).await.unwrap().is_empty());
    assert!(idents(s, &b, &req(None, None, &m)).await.is_empty());
    assert_eq!(s.count_entities(&b, &req(Some("team"), None, &m)).await.unwrap(), 0);
    assert!(matches!(s.delete_entities(&b, "team", &["t1".into()], false, &ctx()).await, Err(StoreError::NotFound(_))));
    assert!(s.list_audit(&b, &AuditFilter { limit: 100, ..Default::default() }).await.unwrap().is_empty());
    // B may use the same identifiers independently.
    let mb = model(s, &b).await;
    write_ok(s, &b, &mb, vec![entity("team", "t1", json!({}), json!({}))]).await;
    assert_eq!(s.count_entities(&a, &req(Some("team"), None, &m)).await.unwrap(), 1);
}

pub async fn entity_writes_see_the_stored_entity(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    write_ok(s, &a, &m, vec![entity("domain", "d1", json!({"owner": "x"}), json!({}))]).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    let w = EntityWrite {
        blueprint: "domain".into(),
        identifier: "d1".into(),
        build: Box::new(move |stored| {
            *seen2.lock().unwrap() = stored.map(|e| e.properties.clone());
            Err(WriteRejection::Conflict("exists".into()))
        }),
        create_missing_related: false,
    };
    let r = s.write_entities(&a, vec![w], &ctx()).await.unwrap();
    assert!(matches!(r[0], Err(WriteRejection::Conflict(_))));
    let mut expected = Map::new();
    expected.insert("owner".into(), json!("x"));
    assert_eq!(*seen.lock().unwrap(), Some(expected));
}

pub async fn missing_targets_reject_or_create_stubs(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let svc = entity("service", "s1", json!({}), json!({"team": "t-missing"}));
    let r = s.write_entities(&a, vec![put(svc.clone(), &m, false)], &ctx()).await.unwrap();
    assert!(matches!(&r[0], Err(WriteRejection::MissingTarget { identifier, .. }) if identifier == "t-missing"));
    assert!(s.get_entity(&a, "service", "s1").await.unwrap().is_none(), "nothing written");
    let r = s.write_entities(&a, vec![put(svc, &m, true)], &ctx()).await.unwrap();
    assert!(r[0].as_ref().unwrap().created);
    assert!(s.get_entity(&a, "team", "t-missing").await.unwrap().is_some(), "stub created");
}

pub async fn delete_unlinks_blocks_and_cascades(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    write_ok(
        s,
        &a,
        &m,
        vec![
            entity("team", "t1", json!({}), json!({})),
            entity("domain", "d1", json!({}), json!({})),
            entity("service", "s1", json!({}), json!({"domain": "d1", "team": "t1"})),
        ],
    )
    .await;
    // Optional relation: unlinked.
    s.delete_entities(&a, "domain", &["d1".into()], false, &ctx()).await.unwrap();
    assert_eq!(s.get_entity(&a, "service", "s1").await.unwrap().unwrap().relations["domain"], Value::Null);
    // Required relation: blocked, then cascaded.
    let err = s.delete_entities(&a, "team", &["t1".into()], false, &ctx()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::RequiredBy { ref dependents, .. } if dependents == &[("service".to_string(), "s1".to_string())])
    );
    assert!(s.get_entity(&a, "team", "t1").await.unwrap().is_some(), "all or nothing");
    let deleted = s.delete_entities(&a, "team", &["t1".into()], true, &ctx()).await.unwrap();
    assert_eq!(deleted.len(), 2);
    assert!(s.get_entity(&a, "service", "s1").await.unwrap().is_none());
}

pub async fn search_pages_with_a_cursor(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let es = (0..25)
        .map(|i| entity("domain", &format!("d{i:02}"), json!({"owner": format!("o{}", i % 5)}), json!({})))
        .collect();
    write_ok(s, &a, &m, es).await;
    let q =
        parse_query(&json!({"combinator": "and", "rules": [{"property": "owner", "operator": "=", "value": "o1"}]}))
            .unwrap();
    assert_eq!(idents(s, &a, &req(Some("domain"), Some(&q), &m)).await, vec!["d01", "d06", "d11", "d16", "d21"]);
    assert_eq!(s.count_entities(&a, &req(Some("domain"), Some(&q), &m)).await.unwrap(), 5);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let r = SearchRequest { after, limit: 10, ..req(Some("domain"), None, &m) };
        let page = s.search(&a, &r).await.unwrap();
        seen.extend(page.entities.into_iter().map(|e| e.identifier));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    seen.dedup();
    assert_eq!(seen.len(), 25);
}

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

pub async fn batches_are_one_unit(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    // s1 points at team t1, which comes later in the same batch: accepted.
    // s2 points at team t2, whose own write is rejected: s2 is rejected too.
    let rejected = EntityWrite {
        blueprint: "team".into(),
        identifier: "t2".into(),
        build: Box::new(|_| Err(WriteRejection::Invalid(portolan_core::FieldError::new("title", "bad").into()))),
        create_missing_related: false,
    };
    let writes = vec![
        put(entity("service", "s1", json!({}), json!({"team": "t1"})), &m, false),
        put(entity("service", "s2", json!({}), json!({"team": "t2"})), &m, false),
        put(entity("team", "t1", json!({}), json!({})), &m, false),
        rejected,
    ];
    let r = s.write_entities(&a, writes, &ctx()).await.unwrap();
    assert!(r[0].as_ref().is_ok_and(|w| w.created), "{:?}", r[0]);
    assert!(matches!(&r[1], Err(WriteRejection::MissingTarget { identifier, .. }) if identifier == "t2"), "{:?}", r[1]);
    assert!(r[2].is_ok());
    assert!(matches!(r[3], Err(WriteRejection::Invalid(_))));
    assert!(s.get_entity(&a, "service", "s2").await.unwrap().is_none());
    assert_eq!(s.count_entities(&a, &req(None, None, &m)).await.unwrap(), 2);
    // Relation edges of the batch work for later deletes: t1 is required by s1.
    assert!(matches!(
        s.delete_entities(&a, "team", &["t1".into()], false, &ctx()).await,
        Err(StoreError::RequiredBy { .. })
    ));
}

pub async fn a_batch_naming_an_entity_twice_applies_both_in_order(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let merge = |key: &'static str, v: i64| EntityWrite {
        blueprint: "domain".into(),
        identifier: "d1".into(),
        build: Box::new(move |stored| {
            let mut e = stored.cloned().unwrap_or_else(|| entity("domain", "d1", json!({}), json!({})));
            e.properties.insert(key.into(), json!(v));
            Ok((e, vec![]))
        }),
        create_missing_related: false,
    };
    let r = s.write_entities(&a, vec![merge("a", 1), merge("b", 2)], &ctx()).await.unwrap();
    assert!(r[0].as_ref().unwrap().created);
    assert!(!r[1].as_ref().unwrap().created, "the second write sees the first");
    let e = s.get_entity(&a, "domain", "d1").await.unwrap().unwrap();
    assert_eq!(e.properties.get("a"), Some(&json!(1)));
    assert_eq!(e.properties.get("b"), Some(&json!(2)));
    let _ = &m;
}

pub async fn updates_keep_creation_meta_and_replace_edges(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    write_ok(
        s,
        &a,
        &m,
        vec![
            entity("team", "t1", json!({}), json!({})),
            entity("team", "t2", json!({}), json!({})),
            entity("service", "s1", json!({}), json!({"team": "t1"})),
        ],
    )
    .await;
    let mut moved = entity("service", "s1", json!({"cpu": 2}), json!({"team": "t2"}));
    moved.created_at = "2030-01-01T00:00:00.000Z".into();
    moved.updated_at = "2030-01-01T00:00:00.000Z".into();
    write_ok(s, &a, &m, vec![moved]).await;
    let e = s.get_entity(&a, "service", "s1").await.unwrap().unwrap();
    assert_eq!(e.created_at, T0, "creation meta kept");
    assert_eq!(e.updated_at, "2030-01-01T00:00:00.000Z");
    // The old edge is gone: t1 can be deleted without touching s1; t2 is now required.
    s.delete_entities(&a, "team", &["t1".into()], false, &ctx()).await.unwrap();
    assert!(s.delete_entities(&a, "team", &["t2".into()], false, &ctx()).await.is_err());
}

/// One `#[tokio::test]` per conformance case, each on a fresh store from `$make`.
///
/// `conformance_tests!(@optional $make)`: `$make` yields an `Option` of something that derefs
/// to a store; on `None` (a backend not configured on this machine) each test returns at once,
/// and the factory is expected to say on stderr that it skipped.
#[macro_export]
macro_rules! conformance_tests {
    (@list $mode:ident $make:expr) => {
        $crate::conformance_tests!(@cases $mode $make;
            settings_are_initialised_once, orgs_and_credentials, blueprint_lifecycle, blueprint_delete_guards,
            tenancy_is_enforced, entity_writes_see_the_stored_entity, missing_targets_reject_or_create_stubs,
            delete_unlinks_blocks_and_cascades, search_pages_with_a_cursor, writes_are_audited,
            renames_carry_entity_values, batches_are_one_unit,
            a_batch_naming_an_entity_twice_applies_both_in_order, updates_keep_creation_meta_and_replace_edges);
    };
    (@cases always $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::conformance::$case(&store).await;
            }
        )*
    };
    (@cases optional $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(store) = $make.await else { return };
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
    (@optional $make:expr) => {
        $crate::conformance_tests!(@list optional $make);
    };
    ($make:expr) => {
        $crate::conformance_tests!(@list always $make);
    };
}
