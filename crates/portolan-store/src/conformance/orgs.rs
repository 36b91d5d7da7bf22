//! Conformance: process-wide settings, readiness, organizations and API credentials.

use super::{T0, ctx, join_all, org};
use crate::{Credential, OrgId, Store, StoreError};

pub async fn settings_are_initialised_once(s: &dyn Store) {
    assert_eq!(s.setting_or_init("k", "first").await.unwrap(), "first");
    assert_eq!(s.setting_or_init("k", "second").await.unwrap(), "first");
    assert!(!s.replace_setting("k", "not-first", "x").await.unwrap());
    assert!(s.replace_setting("k", "first", "third").await.unwrap());
    assert_eq!(s.setting_or_init("k", "fourth").await.unwrap(), "third");
}

pub async fn orgs_and_credentials(s: &dyn Store) {
    let a = org(s, "a").await;
    assert!(matches!(s.create_org(&OrgId("org_other".into()), "a", T0).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.org_by_name("a").await.unwrap().unwrap().id, a);
    assert!(s.org_by_name("zzz").await.unwrap().is_none());
    s.add_credential(&a, "cid", "hash", "n", T0).await.unwrap();
    let v0 = s.blueprints_version(&a).await.unwrap();
    let cred = |hash: &str| {
        Some(Credential { org: a.clone(), secret_hash: hash.into(), user_email: None, blueprints_version: v0 })
    };
    assert_eq!(s.credential("cid").await.unwrap(), cred("hash"));
    assert!(s.credential("nope").await.unwrap().is_none());
    let b = org(s, "b").await;
    assert!(s.list_credentials(&b).await.unwrap().is_empty());
    assert_eq!(s.list_credentials(&a).await.unwrap().len(), 1);
    // Rotation and renaming, only within the credential's organization.
    assert!(!s.update_credential(&b, "cid", None, Some("other")).await.unwrap());
    assert!(s.update_credential(&a, "cid", None, Some("hash2")).await.unwrap());
    assert_eq!(s.credential("cid").await.unwrap(), cred("hash2"));
    assert!(s.update_credential(&a, "cid", Some("renamed"), None).await.unwrap());
    assert_eq!(s.list_credentials(&a).await.unwrap()[0].1, "renamed");
    assert_eq!(s.credential("cid").await.unwrap().unwrap().secret_hash, "hash2");
    // The credential carries its organization's blueprint version as it is now.
    let svc = super::bp(serde_json::json!({"identifier": "svc", "title": "Service"}));
    s.create_blueprint(&a, &svc, &ctx()).await.unwrap();
    let v1 = s.blueprints_version(&a).await.unwrap();
    assert_ne!(v1, v0);
    assert_eq!(s.credential("cid").await.unwrap().unwrap().blueprints_version, v1);
    assert!(!s.delete_credential(&b, "cid").await.unwrap());
    assert!(s.delete_credential(&a, "cid").await.unwrap());
    assert!(s.credential("cid").await.unwrap().is_none());
    assert!(!s.delete_credential(&a, "cid").await.unwrap());
    // Removing a web user ends their sessions; another organization cannot remove them.
    let user = crate::User {
        id: "usr_1".into(),
        org: a.clone(),
        email: "u@example.com".into(),
        password_hash: "x".into(),
        role: "member".into(),
        created_at: T0.into(),
    };
    s.create_user(&user).await.unwrap();
    let session = crate::Session {
        id_hash: "sess".into(),
        org: a.clone(),
        user_id: "usr_1".into(),
        csrf: "c".into(),
        created_at: 1,
        last_seen: 1,
    };
    s.create_session(&session).await.unwrap();
    // A personal credential: not among the organization's, replaced when set again, gone
    // with its user; the organization's own calls cannot rotate or delete it.
    s.set_user_credential(&a, "u@example.com", "pc1", "ph1", &super::ctx()).await.unwrap();
    s.set_user_credential(&a, "u@example.com", "pc2", "ph2", &super::ctx()).await.unwrap();
    let recs = s
        .list_audit(&a, &crate::AuditFilter { resources: vec!["credential".into()], limit: 5, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(recs.len(), 2, "each new personal credential is audited");
    assert!(s.credential("pc1").await.unwrap().is_none(), "the old personal credential is revoked");
    let personal = s.credential("pc2").await.unwrap().unwrap();
    assert_eq!(personal.user_email.as_deref(), Some("u@example.com"));
    assert_eq!(s.user_credential(&a, "u@example.com").await.unwrap().unwrap().0, "pc2");
    assert!(s.user_credential(&b, "u@example.com").await.unwrap().is_none());
    assert!(s.list_credentials(&a).await.unwrap().iter().all(|c| c.0 != "pc2"));
    assert!(!s.update_credential(&a, "pc2", None, Some("x")).await.unwrap());
    assert!(!s.delete_credential(&a, "pc2").await.unwrap());
    assert!(!s.delete_user(&b, "usr_1", &ctx()).await.unwrap());
    assert!(s.session("sess").await.unwrap().is_some());
    assert!(s.delete_user(&a, "usr_1", &ctx()).await.unwrap());
    assert!(s.session("sess").await.unwrap().is_none());
    assert!(s.user_by_email("u@example.com").await.unwrap().is_none());
    assert!(s.credential("pc2").await.unwrap().is_none(), "a removed user's credential goes with them");
}

/// Readiness: `ping` answers within its wait on an idle store, before and after writes.
pub async fn ping_answers_within_its_wait(s: &dyn Store) {
    let wait = std::time::Duration::from_secs(5);
    let started = std::time::Instant::now();
    s.ping(wait).await.unwrap();
    org(s, "a").await;
    s.setting_or_init("k", "v").await.unwrap();
    for _ in 0..3 {
        s.ping(wait).await.unwrap();
    }
    assert!(started.elapsed() < wait, "took {:?}", started.elapsed());
    // The pools have opened connections for that, within their maximum.
    let p = s.pool_use();
    assert!(p.open >= 1 && p.open <= p.max && p.idle <= p.open, "{p:?}");
}

/// Quotas: unset means unlimited; an entity quota refuses the writes that would create
/// entities past it (their own or stubs, on the batch and the one-by-one paths) and keeps
/// updates; concurrent batches cannot pass it together; a user quota refuses accepting an
/// invitation; usage counts; an unknown organization is `NotFound`.
pub async fn quotas_bound_entities_and_users(s: &dyn Store) {
    use crate::{Invitation, Quotas, User, WriteRejection};
    use serde_json::json;

    use super::{ctx, entity, model, put, write_ok};
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let m = model(s, &a).await;
    model(s, &b).await;
    assert_eq!(s.quotas(&a).await.unwrap(), Quotas::default(), "unlimited by default");
    let quota = Quotas { max_users: Some(1), max_entities: Some(3) };
    s.set_quotas(&a, &quota).await.unwrap();
    assert_eq!(s.quotas(&a).await.unwrap(), quota);
    assert!(matches!(s.set_quotas(&OrgId("org_nope".into()), &quota).await, Err(StoreError::NotFound(_))));

    let t = |id: &str| entity("team", id, json!({}), json!({}));
    let is_quota = |r: &Result<crate::Written, WriteRejection>| matches!(r, Err(WriteRejection::Invalid(e)) if e.0.iter().any(|e| e.message.contains("quota of 3 entities")));
    write_ok(s, &a, &m, vec![t("t1"), t("t2")]).await;
    let out = s.write_entities(&a, vec![put(t("t3"), &m, false), put(t("t4"), &m, false)], &ctx()).await.unwrap();
    assert!(out.iter().all(is_quota), "2 + 2 > 3: both creations refused, {out:?}");
    // An update at the quota is fine; a creation that fits is too.
    let out = s.write_entities(&a, vec![put(t("t1"), &m, false), put(t("t3"), &m, false)], &ctx()).await.unwrap();
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    // A stub is an entity too; the one-by-one path (a key twice) counts as well.
    let svc = entity("service", "s1", json!({}), json!({"team": "t1", "domain": "ghost"}));
    let out = s.write_entities(&a, vec![put(svc, &m, true)], &ctx()).await.unwrap();
    assert!(is_quota(&out[0]), "{out:?}");
    let twice = vec![put(t("t1"), &m, false), put(t("t9"), &m, false), put(t("t1"), &m, false)];
    let out = s.write_entities(&a, twice, &ctx()).await.unwrap();
    assert!(out[0].is_ok() && is_quota(&out[1]) && out[2].is_ok(), "{out:?}");
    assert_eq!(s.usage(&a).await.unwrap().entities, 3);
    // Another organization is not limited by it.
    write_ok(s, &b, &m, (0..5).map(|i| t(&format!("b{i}"))).collect()).await;

    // Concurrent batches cannot pass the quota together.
    s.set_quotas(&a, &Quotas { max_users: Some(1), max_entities: Some(7) }).await.unwrap();
    let c = ctx();
    let batches: Vec<_> = (0..4)
        .map(|k| {
            let writes = (0..2).map(|i| put(t(&format!("c{k}{i}")), &m, false)).collect();
            s.write_entities(&a, writes, &c)
        })
        .collect();
    let created: usize =
        join_all(batches).await.into_iter().map(|r| r.unwrap().iter().filter(|o| o.is_ok()).count()).sum();
    assert_eq!(created, 4, "7 - 3 = room for 4 (two batches of two)");
    assert_eq!(s.usage(&a).await.unwrap().entities, 7);

    // Users: the second invitation cannot be accepted.
    let inv = |hash: &str, email: &str| Invitation {
        token_hash: hash.into(),
        org: a.clone(),
        email: email.into(),
        role: "member".into(),
        created_by: "op".into(),
        created_at: 1,
        expires_at: 10_000,
        used_at: None,
    };
    let user = User {
        id: "usr_q1".into(),
        org: a.clone(),
        email: String::new(),
        password_hash: "x".into(),
        role: String::new(),
        created_at: T0.into(),
    };
    s.create_invitation(&inv("h1", "one@example.com")).await.unwrap();
    s.create_invitation(&inv("h2", "two@example.com")).await.unwrap();
    s.accept_invitation("h1", &user, 5).await.unwrap();
    let second = s.accept_invitation("h2", &User { id: "usr_q2".into(), ..user.clone() }, 5).await;
    assert!(matches!(second, Err(StoreError::Invalid(ref e)) if e.message.contains("quota of 1 users")), "{second:?}");
    assert_eq!(s.usage(&a).await.unwrap().users, 1);
    s.set_quotas(&a, &Quotas::default()).await.unwrap();
    // The refused acceptance left the invitation usable.
    s.accept_invitation("h2", &User { id: "usr_q2".into(), ..user }, 5).await.unwrap();
}
