//! Conformance: local accounts of the web UI (users, sessions, invitations).

use super::{T0, ctx, join_all, org};
use crate::{Invitation, OrgId, Session, Store, StoreError, User};

fn user(id: &str, org: &OrgId, email: &str, role: &str) -> User {
    User {
        id: id.into(),
        org: org.clone(),
        email: email.into(),
        password_hash: format!("$argon2id$hash-of-{id}"),
        role: role.into(),
        created_at: T0.into(),
    }
}

fn session(id_hash: &str, user: &User, at: i64) -> Session {
    Session {
        id_hash: id_hash.into(),
        org: user.org.clone(),
        user_id: user.id.clone(),
        csrf: format!("csrf-{id_hash}"),
        created_at: at,
        last_seen: at,
    }
}

fn invitation(token_hash: &str, org: &OrgId, email: &str, expires_at: i64) -> Invitation {
    Invitation {
        token_hash: token_hash.into(),
        org: org.clone(),
        email: email.into(),
        role: "member".into(),
        created_by: "usr_admin".into(),
        created_at: 1_000,
        expires_at,
        used_at: None,
    }
}

/// Users: an e-mail names one user across every organization (sign-in finds the organization
/// through it); reads by id, listings and removal are scoped to the user's organization.
pub async fn users_have_unique_emails_and_are_tenant_scoped(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let admin = user("usr_1", &a, "one@example.com", "admin");
    s.create_user(&admin).await.unwrap();
    let taken = user("usr_2", &b, "one@example.com", "member");
    assert!(matches!(s.create_user(&taken).await, Err(StoreError::Conflict(_))), "the e-mail is taken in A");
    assert!(s.get_user(&b, "usr_2").await.unwrap().is_none(), "a refused user is not written");
    let member = user("usr_3", &a, "another@example.com", "member");
    s.create_user(&member).await.unwrap();
    let other = user("usr_4", &b, "b@example.com", "admin");
    s.create_user(&other).await.unwrap();

    assert_eq!(s.user_by_email("one@example.com").await.unwrap(), Some(admin.clone()), "found with its organization");
    assert_eq!(s.user_by_email("b@example.com").await.unwrap().map(|u| u.org), Some(b.clone()));
    assert!(s.user_by_email("nobody@example.com").await.unwrap().is_none());
    assert_eq!(s.get_user(&a, "usr_1").await.unwrap(), Some(admin.clone()));
    assert!(s.get_user(&b, "usr_1").await.unwrap().is_none(), "B cannot read A's user");
    assert!(s.get_user(&a, "usr_nope").await.unwrap().is_none());
    let emails = |us: Vec<User>| us.into_iter().map(|u| u.email).collect::<Vec<_>>();
    assert_eq!(emails(s.list_users(&a).await.unwrap()), ["another@example.com", "one@example.com"], "by e-mail");
    assert_eq!(emails(s.list_users(&b).await.unwrap()), ["b@example.com"]);

    assert!(!s.delete_user(&b, "usr_1", &ctx()).await.unwrap(), "B cannot remove A's user");
    assert!(s.get_user(&a, "usr_1").await.unwrap().is_some());
    assert!(s.delete_user(&a, "usr_1", &ctx()).await.unwrap());
    assert!(!s.delete_user(&a, "usr_1", &ctx()).await.unwrap(), "already gone");
    assert!(s.get_user(&a, "usr_1").await.unwrap().is_none());
    assert_eq!(emails(s.list_users(&a).await.unwrap()), ["another@example.com"]);
    assert_eq!(emails(s.list_users(&b).await.unwrap()), ["b@example.com"], "the other organization's stay");
    // The e-mail is free again, in any organization.
    s.create_user(&taken).await.unwrap();
    assert_eq!(s.user_by_email("one@example.com").await.unwrap().map(|u| u.org), Some(b));
}

/// Sessions: found by the hash of their id (in any organization, with the organization they
/// were created in); activity only moves `last_seen` forward; deleting one session, or the
/// user, ends exactly those sessions.
pub async fn sessions_are_found_by_hash_touched_forward_and_ended(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let (ua, ub) = (user("usr_a", &a, "a@example.com", "admin"), user("usr_b", &b, "b@example.com", "admin"));
    s.create_user(&ua).await.unwrap();
    s.create_user(&ub).await.unwrap();
    let (sa, sb) = (session("hash-a", &ua, 100), session("hash-b", &ub, 100));
    s.create_session(&sa).await.unwrap();
    s.create_session(&sb).await.unwrap();
    assert_eq!(s.session("hash-a").await.unwrap(), Some(sa.clone()));
    assert_eq!(s.session("hash-b").await.unwrap().map(|x| (x.org, x.user_id)), Some((b.clone(), "usr_b".into())));
    assert!(s.session("hash-nope").await.unwrap().is_none());

    s.touch_session("hash-a", 150).await.unwrap();
    let touched = s.session("hash-a").await.unwrap().unwrap();
    assert_eq!((touched.created_at, touched.last_seen), (100, 150), "only last_seen moves");
    s.touch_session("hash-a", 120).await.unwrap();
    assert_eq!(s.session("hash-a").await.unwrap().unwrap().last_seen, 150, "never backwards");
    assert_eq!(s.session("hash-b").await.unwrap(), Some(sb.clone()), "other sessions untouched");
    s.touch_session("hash-nope", 200).await.unwrap();
    assert!(s.session("hash-nope").await.unwrap().is_none(), "touching creates nothing");

    s.delete_session("hash-a").await.unwrap();
    assert!(s.session("hash-a").await.unwrap().is_none());
    assert_eq!(s.session("hash-b").await.unwrap(), Some(sb.clone()));
    s.delete_session("hash-a").await.unwrap();

    // Removing a user ends all of their sessions, and only theirs; another organization cannot.
    for h in ["hash-a1", "hash-a2"] {
        s.create_session(&session(h, &ua, 300)).await.unwrap();
    }
    assert!(!s.delete_user(&b, "usr_a", &ctx()).await.unwrap());
    assert!(s.session("hash-a1").await.unwrap().is_some(), "B's attempt ended nothing");
    assert!(s.delete_user(&a, "usr_a", &ctx()).await.unwrap());
    assert!(s.session("hash-a1").await.unwrap().is_none());
    assert!(s.session("hash-a2").await.unwrap().is_none());
    assert_eq!(s.session("hash-b").await.unwrap(), Some(sb));
}

/// Invitations: accepting one creates the user in the invitation's organization, with its
/// e-mail and role (not the ones of the `User` passed in), and uses it up — a second
/// acceptance, even a concurrent one, is refused; an expired invitation is refused; an e-mail
/// that already has a user is a conflict that leaves the invitation unused.
pub async fn invitations_are_used_once_before_they_expire(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let inv = invitation("tok-1", &a, "new@example.com", 2_000);
    s.create_invitation(&inv).await.unwrap();
    assert_eq!(s.invitation("tok-1").await.unwrap(), Some(inv.clone()));
    assert!(s.invitation("tok-nope").await.unwrap().is_none());

    // Organization, e-mail and role come from the invitation.
    let newcomer = user("usr_new", &b, "ignored@example.com", "admin");
    let created = s.accept_invitation("tok-1", &newcomer, 1_500).await.unwrap();
    let expected = User { org: a.clone(), email: "new@example.com".into(), role: "member".into(), ..newcomer };
    assert_eq!(created, expected);
    assert_eq!(s.get_user(&a, "usr_new").await.unwrap(), Some(expected.clone()));
    assert!(s.get_user(&b, "usr_new").await.unwrap().is_none());
    assert_eq!(s.user_by_email("new@example.com").await.unwrap(), Some(expected));
    assert!(s.user_by_email("ignored@example.com").await.unwrap().is_none());
    assert_eq!(s.invitation("tok-1").await.unwrap().unwrap().used_at, Some(1_500));

    // Used: refused, and nothing is written.
    let again = user("usr_again", &a, "again@example.com", "member");
    assert!(matches!(s.accept_invitation("tok-1", &again, 1_600).await, Err(StoreError::NotFound(_))));
    assert!(s.get_user(&a, "usr_again").await.unwrap().is_none());
    assert_eq!(s.invitation("tok-1").await.unwrap().unwrap().used_at, Some(1_500), "first use kept");
    assert!(matches!(s.accept_invitation("tok-nope", &again, 1_600).await, Err(StoreError::NotFound(_))));

    // Expired at `expires_at`: refused, still unused.
    s.create_invitation(&invitation("tok-2", &a, "late@example.com", 2_000)).await.unwrap();
    assert!(matches!(s.accept_invitation("tok-2", &again, 2_000).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.invitation("tok-2").await.unwrap().unwrap().used_at, None);
    assert!(s.user_by_email("late@example.com").await.unwrap().is_none());

    // An e-mail that has a user: a conflict, and the invitation stays usable (one transaction).
    s.create_invitation(&invitation("tok-3", &b, "new@example.com", 2_000)).await.unwrap();
    let third = user("usr_third", &b, "x@example.com", "member");
    assert!(matches!(s.accept_invitation("tok-3", &third, 1_500).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.invitation("tok-3").await.unwrap().unwrap().used_at, None, "rolled back");
    assert!(s.get_user(&b, "usr_third").await.unwrap().is_none());
    assert!(s.delete_user(&a, "usr_new", &ctx()).await.unwrap());
    assert_eq!(s.accept_invitation("tok-3", &third, 1_500).await.unwrap().org, b, "usable once the e-mail is free");

    // Five acceptances of one invitation at once: exactly one user.
    s.create_invitation(&invitation("tok-4", &a, "race@example.com", 2_000)).await.unwrap();
    let racers: Vec<User> = (0..5).map(|i| user(&format!("usr_race{i}"), &a, "r@example.com", "member")).collect();
    let outcomes = join_all(racers.iter().map(|u| s.accept_invitation("tok-4", u, 1_500)).collect()).await;
    let won: Vec<&User> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.is_ok() || matches!(o, Err(StoreError::NotFound(_)))), "{outcomes:?}");
    let users = s.list_users(&a).await.unwrap();
    assert_eq!(users.iter().filter(|u| u.email == "race@example.com").count(), 1);
    assert_eq!(s.user_by_email("race@example.com").await.unwrap().map(|u| u.id), Some(won[0].id.clone()));
}

/// A single sign-on answer is spent once, whichever of concurrent posts gets there first; per
/// organization; forgotten once expired, so the table holds only the answers of the last minutes.
pub async fn sso_answers_are_spent_once(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let tries = join_all((0..4).map(|_| s.spend_sso_answer(&a, "_req1", 1_000, 100)).collect()).await;
    let firsts = tries.into_iter().map(|r| r.unwrap()).filter(|first| *first).count();
    assert_eq!(firsts, 1, "exactly one of four concurrent posts of one answer signs in");
    assert!(!s.spend_sso_answer(&a, "_req1", 1_000, 200).await.unwrap(), "replayed");
    assert!(s.spend_sso_answer(&b, "_req1", 1_000, 200).await.unwrap(), "another organization's flow");
    assert!(s.spend_sso_answer(&a, "_req2", 1_000, 200).await.unwrap());
    // Past its expiry the id is forgotten (the flow it belonged to has expired too).
    assert!(s.spend_sso_answer(&a, "_req1", 3_000, 2_000).await.unwrap(), "forgotten after expiry");
}
