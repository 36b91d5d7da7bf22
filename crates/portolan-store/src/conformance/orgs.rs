//! Conformance: process-wide settings, readiness, organizations and API credentials.

use super::{T0, org};
use crate::{OrgId, Store, StoreError};

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
    assert_eq!(s.credential("cid").await.unwrap(), Some((a.clone(), "hash".to_string())));
    assert!(s.credential("nope").await.unwrap().is_none());
    let b = org(s, "b").await;
    assert!(s.list_credentials(&b).await.unwrap().is_empty());
    assert_eq!(s.list_credentials(&a).await.unwrap().len(), 1);
    // Rotation and renaming, only within the credential's organization.
    assert!(!s.update_credential(&b, "cid", None, Some("other")).await.unwrap());
    assert!(s.update_credential(&a, "cid", None, Some("hash2")).await.unwrap());
    assert_eq!(s.credential("cid").await.unwrap(), Some((a.clone(), "hash2".to_string())));
    assert!(s.update_credential(&a, "cid", Some("renamed"), None).await.unwrap());
    assert_eq!(s.list_credentials(&a).await.unwrap()[0].1, "renamed");
    assert_eq!(s.credential("cid").await.unwrap().unwrap().1, "hash2");
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
    assert!(!s.delete_user(&b, "usr_1").await.unwrap());
    assert!(s.session("sess").await.unwrap().is_some());
    assert!(s.delete_user(&a, "usr_1").await.unwrap());
    assert!(s.session("sess").await.unwrap().is_none());
    assert!(s.user_by_email("u@example.com").await.unwrap().is_none());
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
