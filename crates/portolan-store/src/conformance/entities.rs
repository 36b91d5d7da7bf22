//! Conformance: entity writes (batches, relations, creation meta, NUL characters), deletes
//! and tenancy of entity reads.

use portolan_core::search::parse_query;
use serde_json::{Map, Value, json};

use super::{T0, ctx, entity, idents, model, org, put, req, write_ok};
use crate::{AuditCtx, AuditFilter, EntityWrite, Store, StoreError, WriteRejection};

pub async fn tenancy_is_enforced(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let m = model(s, &a).await;
    write_ok(s, &a, &m, vec![entity("team", "t1", json!({}), json!({}))]).await;
    assert!(s.get_blueprint(&b, "team").await.unwrap().is_none());
    // Only its own system blueprints.
    assert_eq!(s.list_blueprints(&b).await.unwrap().len(), 2);
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

/// The NUL character (U+0000): lookups by identifiers holding one find nothing; a value holding
/// one is either stored and read back exactly (SQLite) or refused as invalid naming the field
/// (PostgreSQL text cannot hold it) — never a database error; a write whose identifier holds
/// one reaches its build closure (whose validation refuses it) like any other.
pub async fn nul_characters_are_kept_or_refused_never_an_error(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let nul = "a\u{0}b".to_string();
    assert!(s.get_entity(&a, "service", &nul).await.unwrap().is_none());
    assert!(s.get_entities(&a, "service", std::slice::from_ref(&nul)).await.unwrap().is_empty());
    assert!(s.get_blueprint(&a, &nul).await.unwrap().is_none());
    assert!(matches!(
        s.delete_entities(&a, "service", std::slice::from_ref(&nul), false, &ctx()).await,
        Err(StoreError::NotFound(_))
    ));
    let f = AuditFilter { entity: Some(nul.clone()), limit: 10, ..Default::default() };
    assert!(s.list_audit(&a, &f).await.unwrap().is_empty());
    assert!(idents(s, &a, &req(Some(&nul), None, &m)).await.is_empty());
    let q = parse_query(&json!({"combinator": "and", "rules": [{"property": "lang", "operator": "=", "value": nul}]}))
        .unwrap();
    match s.search(&a, &req(Some("service"), Some(&q), &m)).await {
        Ok(page) => assert!(page.entities.is_empty()),
        Err(e) => assert!(matches!(e, StoreError::Invalid(_)), "{e:?}"),
    }

    // A value with NUL characters, in a batch with a plain write and a write whose identifier
    // holds one (refused by its build closure, as the server's validation does).
    write_ok(s, &a, &m, vec![entity("team", "t1", json!({}), json!({}))]).await;
    let mut odd = entity("service", "s1", json!({"lang": "x\u{0}y", "cpu": 1}), json!({"team": "t1"}));
    odd.title = Some("T\u{0}".into());
    let bad_id = EntityWrite {
        blueprint: "service".into(),
        identifier: nul.clone(),
        build: Box::new(|_| Err(WriteRejection::Invalid(portolan_core::FieldError::new("identifier", "bad").into()))),
        create_missing_related: false,
    };
    let plain = entity("service", "s2", json!({}), json!({"team": "t1"}));
    let r =
        s.write_entities(&a, vec![put(odd.clone(), &m, false), bad_id, put(plain, &m, false)], &ctx()).await.unwrap();
    match &r[0] {
        Ok(_) => {
            let got = s.get_entity(&a, "service", "s1").await.unwrap().unwrap();
            assert_eq!((got.title, got.properties), (odd.title, odd.properties), "kept exactly");
        }
        Err(WriteRejection::Invalid(errs)) => {
            let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["title", "properties.lang"]);
            assert!(s.get_entity(&a, "service", "s1").await.unwrap().is_none());
        }
        Err(other) => panic!("unexpected rejection {other:?}"),
    }
    assert!(matches!(&r[1], Err(WriteRejection::Invalid(e)) if e.0[0].path == "identifier"));
    assert!(r[2].is_ok());
    assert!(s.get_entity(&a, "service", "s2").await.unwrap().is_some());
}

/// Concurrent write requests of one organization may share a transaction (group commit, on
/// SQLite), and each is still answered with its own outcomes, in its order, and audited with its
/// own context; a request of another organization is written in its own.
pub async fn concurrent_writes_share_transactions_and_keep_their_own_answers(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let m = model(s, &a).await;
    let mb = model(s, &b).await;
    let ctxs: Vec<AuditCtx> = (0..9)
        .map(|i| AuditCtx {
            user_id: format!("user{i}"),
            origin: "API".into(),
            at: format!("2024-01-01T00:00:0{i}.000Z"),
            depth: 0,
        })
        .collect();
    // Requests 0–7 of `a`: three teams, a rejected write; request 3 also writes request 1's
    // first team, request 5 a service whose missing team becomes a stub. Request 8 is `b`'s.
    let rejected = |i: usize| EntityWrite {
        blueprint: "team".into(),
        identifier: format!("bad{i}"),
        build: Box::new(|_| Err(WriteRejection::Invalid(portolan_core::FieldError::new("title", "bad").into()))),
        create_missing_related: false,
    };
    let mut futs = Vec::new();
    for (i, ctx) in ctxs.iter().enumerate().take(8) {
        let mut writes: Vec<EntityWrite> =
            (0..3).map(|j| put(entity("team", &format!("t{i}-{j}"), json!({}), json!({})), &m, false)).collect();
        writes.push(rejected(i));
        if i == 3 {
            writes.push(put(entity("team", "t1-0", json!({"n": 3}), json!({})), &m, false));
        }
        if i == 5 {
            writes.push(put(entity("service", "s5", json!({}), json!({"team": "stub5"})), &m, true));
        }
        futs.push(s.write_entities(&a, writes, ctx));
    }
    futs.insert(4, s.write_entities(&b, vec![put(entity("team", "t0-0", json!({}), json!({})), &mb, false)], &ctxs[8]));
    let before = s.write_group_use();
    let mut answers = super::join_all(futs).await.into_iter().map(Result::unwrap).collect::<Vec<_>>();
    let used = s.write_group_use();
    let requests = used.requests - before.requests;
    let transactions = used.transactions - before.transactions;
    assert_eq!(requests, 9);
    if used.grouped {
        assert!(transactions < requests, "9 concurrent requests took {transactions} transactions");
    } else {
        assert_eq!(transactions, requests);
    }

    let of_b = answers.remove(4);
    assert_eq!(of_b.len(), 1);
    assert!(of_b[0].as_ref().is_ok_and(|w| w.created));
    for (i, r) in answers.iter().enumerate() {
        let ids: Vec<String> = r.iter().filter_map(|o| o.as_ref().ok()).map(|w| w.entity.identifier.clone()).collect();
        let mut want: Vec<String> = (0..3).map(|j| format!("t{i}-{j}")).collect();
        if i == 3 {
            want.push("t1-0".into());
        }
        if i == 5 {
            want.push("s5".into());
        }
        assert_eq!(ids, want, "request {i}");
        assert!(matches!(r[3], Err(WriteRejection::Invalid(_))), "request {i}: {:?}", r[3]);
    }
    // Each record carries its request's user and time, the stub its request's too.
    let audit = s.list_audit(&a, &AuditFilter { limit: 100, ..Default::default() }).await.unwrap();
    for i in [0, 2, 4, 5, 7] {
        let id = format!("t{i}-1");
        let rec = audit.iter().find(|r| r.entity.as_deref() == Some(id.as_str())).expect("audited");
        assert_eq!((rec.user_id.as_str(), rec.at.as_str()), (ctxs[i].user_id.as_str(), ctxs[i].at.as_str()), "{id}");
    }
    let stub = s.get_entity(&a, "team", "stub5").await.unwrap().expect("the stub");
    assert_eq!(stub.created_by, "user5");
    // Request 3's write of t1-0 and request 1's both happened, one after the other.
    let t10: Vec<_> = audit.iter().filter(|r| r.entity.as_deref() == Some("t1-0")).collect();
    assert_eq!(t10.len(), 2, "{t10:?}");
    assert_eq!(s.count_entities(&b, &req(None, None, &mb)).await.unwrap(), 1);
    assert!(s.get_entity(&a, "team", "t0-0").await.unwrap().is_some(), "a's t0-0, beside b's");
}

/// A write whose caller went away after its first poll (a client that disconnected): where
/// writes are grouped (SQLite) it was queued and is written all the same, since a group's
/// transaction is not cut short by one of its callers; where they are not (PostgreSQL) its
/// transaction is rolled back and nothing of it is written.
pub async fn a_write_whose_caller_went_away_is_still_written(s: &dyn Store) {
    use std::task::Poll;
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    let by = ctx();
    let mut gone = s.write_entities(&a, vec![put(entity("team", "t-gone", json!({}), json!({})), &m, false)], &by);
    let first = std::future::poll_fn(|cx| Poll::Ready(gone.as_mut().poll(cx).is_pending())).await;
    assert!(first, "a write is answered after its transaction, not on its first poll");
    drop(gone);
    write_ok(s, &a, &m, vec![entity("team", "t-after", json!({}), json!({}))]).await;
    if !s.write_group_use().grouped {
        assert!(s.get_entity(&a, "team", "t-gone").await.unwrap().is_none());
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.get_entity(&a, "team", "t-gone").await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the abandoned write was not written");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
