//! Conformance: the `_user` and `_team` entities follow the organization's people and teams in
//! the transactions that change them, keep what the organization added, and a change made
//! through such an entity is one transaction with the entity's write.

use std::collections::HashMap;

use portolan_core::system::{SERVICE_ACCOUNT, TEAM, USER};
use portolan_core::{Blueprint, Entity};
use serde_json::json;

use super::teams::team;
use super::{T0, ctx, entity, org, put};
use crate::{
    AuditFilter, EntityWrite, OrgId, PersonEdit, SaveMode, Store, StoreError, SystemChange, TeamWrite, User,
    WriteRejection,
};

fn user(o: &OrgId, email: &str) -> User {
    User {
        id: format!("usr_{}", email.split('@').next().unwrap_or_default()),
        org: o.clone(),
        email: email.into(),
        password_hash: "$argon2id$x".into(),
        role: "member".into(),
        created_at: T0.into(),
    }
}

async fn system_model(s: &dyn Store, o: &OrgId) -> HashMap<String, Blueprint> {
    let mut m = HashMap::new();
    for id in [USER, TEAM] {
        m.insert(id.to_string(), s.get_blueprint(o, id).await.unwrap().expect("system blueprint").blueprint);
    }
    m
}

async fn get(s: &dyn Store, o: &OrgId, bp: &str, id: &str) -> Option<Entity> {
    s.get_entity(o, bp, id).await.unwrap()
}

pub async fn user_and_team_entities_follow_people_and_teams(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    assert!(s.get_blueprint(&a, USER).await.unwrap().is_some() && s.get_blueprint(&a, TEAM).await.unwrap().is_some());
    s.create_user(&user(&a, "p@example.com")).await.unwrap();
    s.save_team(&a, None, &team("core", &["p@example.com", "invitee@example.com"]), SaveMode::Create, &ctx())
        .await
        .unwrap();
    let u = get(s, &a, USER, "p@example.com").await.expect("_user entity made with the user");
    assert_eq!(u.title.as_deref(), Some("p@example.com"));
    assert_eq!(u.team, ["core"]);
    assert_eq!(
        serde_json::Value::Object(u.properties.clone()),
        json!({"port_role": "Member", "port_type": "Standard", "status": "Active", "moderated_blueprints": []})
    );
    let t = get(s, &a, TEAM, "core").await.expect("_team entity made with the team");
    assert_eq!(
        (t.title.as_deref(), &t.properties["size"], &t.properties["description"]),
        (Some("core"), &json!(2), &json!("core team"))
    );
    assert!(get(s, &b, USER, "p@example.com").await.is_none(), "tenancy");

    // What the organization adds to a `_user` entity stays when the person changes.
    let m = system_model(s, &a).await;
    let mut extended = u.clone();
    extended.properties.insert("slack".into(), json!("@p"));
    s.write_entities(&a, vec![put(extended, &m, false)], &ctx()).await.unwrap().pop().unwrap().unwrap();
    let edit = PersonEdit {
        role: Some("member".into()),
        first_name: Some(Some("Pat".into())),
        last_name: Some(Some("Doe".into())),
        status: Some("Disabled".into()),
        moderates: Some(vec!["service".into()]),
        ..PersonEdit::default()
    };
    s.update_person(&a, "p@example.com", &edit, &ctx()).await.unwrap();
    let u = get(s, &a, USER, "p@example.com").await.unwrap();
    assert_eq!(u.title.as_deref(), Some("Pat Doe"));
    assert_eq!(
        (
            &u.properties["port_role"],
            &u.properties["status"],
            &u.properties["moderated_blueprints"],
            &u.properties["slack"]
        ),
        (&json!("Moderator"), &json!("Disabled"), &json!(["service"]), &json!("@p"))
    );
    let recs = s
        .list_audit(&a, &AuditFilter { entity: Some("p@example.com".into()), limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    assert!(
        recs.iter().any(|r| r.action == "CREATE") && recs.iter().any(|r| r.action == "UPDATE"),
        "audited: {recs:?}"
    );

    // Memberships: the person's `$team` and the team's size.
    s.set_member_teams(&a, "p@example.com", &[], &ctx()).await.unwrap();
    assert!(get(s, &a, USER, "p@example.com").await.unwrap().team.is_empty());
    assert_eq!(get(s, &a, TEAM, "core").await.unwrap().properties["size"], json!(1));
    s.update_person(
        &a,
        "p@example.com",
        &PersonEdit { teams: Some(vec!["core".into()]), ..PersonEdit::default() },
        &ctx(),
    )
    .await
    .unwrap();
    assert_eq!(get(s, &a, TEAM, "core").await.unwrap().properties["size"], json!(2));

    // A rename moves the `_team` entity and the members' `$team`; a delete removes both.
    let renamed = TeamWrite { name: "platform".into(), members: None, ..team("core", &[]) };
    s.save_team(&a, Some("core"), &renamed, SaveMode::Update, &ctx()).await.unwrap();
    assert!(get(s, &a, TEAM, "core").await.is_none());
    assert_eq!(get(s, &a, TEAM, "platform").await.unwrap().properties["size"], json!(2));
    assert_eq!(get(s, &a, USER, "p@example.com").await.unwrap().team, ["platform"]);
    s.delete_team(&a, "platform", &ctx()).await.unwrap();
    assert!(get(s, &a, TEAM, "platform").await.is_none());
    assert!(get(s, &a, USER, "p@example.com").await.unwrap().team.is_empty());

    // The entity goes with the person.
    s.delete_user(&a, "usr_p", &ctx()).await.unwrap();
    assert!(get(s, &a, USER, "p@example.com").await.is_none());
}

pub async fn team_renames_keep_relations_to_their_entity_whole(s: &dyn Store) {
    let a = org(s, "a").await;
    s.save_team(&a, None, &team("core", &[]), SaveMode::Create, &ctx()).await.unwrap();
    let svc = super::bp(json!({"identifier": "svc", "title": "Service", "relations": {"owner": {"target": TEAM}}}));
    s.create_blueprint(&a, &svc, &ctx()).await.unwrap();
    let mut m = system_model(s, &a).await;
    m.insert("svc".into(), svc);
    let e = entity("svc", "api", json!({}), json!({"owner": "core"}));
    s.write_entities(&a, vec![put(e, &m, false)], &ctx()).await.unwrap().pop().unwrap().unwrap();
    let renamed = TeamWrite { name: "platform".into(), members: None, ..team("core", &[]) };
    let err = s.save_team(&a, Some("core"), &renamed, SaveMode::Update, &ctx()).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("\"owner\"") && m.contains("\"api\"")), "{err:?}");
    assert!(s.get_team(&a, "core").await.unwrap().is_some(), "the refused rename changed nothing");
    assert!(get(s, &a, TEAM, "core").await.is_some());

    // The entity quota counts the organization's own entities, not its people and teams.
    s.set_quotas(&a, &crate::Quotas { max_users: None, max_entities: Some(2) }).await.unwrap();
    let e = entity("svc", "web", json!({}), json!({}));
    s.write_entities(&a, vec![put(e, &m, false)], &ctx()).await.unwrap().pop().unwrap().expect("2 of 2");
}

fn system_write(e: Entity, m: &HashMap<String, Blueprint>) -> EntityWrite {
    put(e, m, false)
}

pub async fn changes_through_system_entities_are_one_transaction(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = system_model(s, &a).await;
    let sa = "bot@serviceaccounts.getport.io";
    let mut wanted =
        entity(USER, sa, json!({"port_type": SERVICE_ACCOUNT, "status": "Active", "pager": "x"}), json!({}));
    wanted.team = vec![];
    let change = |client: &str| SystemChange::ServiceAccount {
        user: User { id: "usr_bot".into(), password_hash: "!service-account".into(), ..user(&a, sa) },
        client_id: client.into(),
        secret_hash: "hash".into(),
        edit: PersonEdit::default(),
    };

    // A refused entity write undoes the account.
    let refused = EntityWrite {
        blueprint: USER.into(),
        identifier: sa.into(),
        build: Box::new(|_| Err(WriteRejection::Conflict("refused".into()))),
        create_missing_related: false,
    };
    let out = s.write_system_entity(&a, Some(change("cid_1")), refused, &ctx()).await.unwrap();
    assert!(matches!(out, Err(WriteRejection::Conflict(_))));
    assert!(s.get_person(&a, sa).await.unwrap().is_none(), "no account without its entity");
    assert!(s.credential("cid_1").await.unwrap().is_none());

    let out = s.write_system_entity(&a, Some(change("cid_2")), system_write(wanted.clone(), &m), &ctx()).await.unwrap();
    let written = out.expect("written");
    assert!(written.created);
    assert_eq!(
        (&written.entity.properties["port_type"], &written.entity.properties["pager"]),
        (&json!(SERVICE_ACCOUNT), &json!("x"))
    );
    let p = s.get_person(&a, sa).await.unwrap().expect("service account");
    assert_eq!(p.kind, SERVICE_ACCOUNT);
    assert_eq!(s.credential("cid_2").await.unwrap().and_then(|c| c.user_email).as_deref(), Some(sa));

    // A change of the person with the entity: the system fields are the person's afterwards,
    // whatever the entity write said.
    let mut replaced = wanted.clone();
    replaced.properties = json!({"status": "Disabled"}).as_object().cloned().unwrap();
    let edit = PersonEdit { status: Some("Disabled".into()), ..PersonEdit::default() };
    let change = SystemChange::Person { email: sa.into(), edit };
    let written = s.write_system_entity(&a, Some(change), system_write(replaced, &m), &ctx()).await.unwrap().unwrap();
    assert_eq!(written.entity.properties["status"], json!("Disabled"));
    assert_eq!(written.entity.properties["port_type"], json!(SERVICE_ACCOUNT), "restored from the person");
    assert_eq!(s.get_person(&a, sa).await.unwrap().unwrap().status, "Disabled");

    // A team made through its entity.
    let t = entity(TEAM, "ops", json!({"description": "Operations"}), json!({}));
    let tw = TeamWrite { description: Some("Operations".into()), members: None, ..team("ops", &[]) };
    let change = SystemChange::Team { current: None, write: tw, mode: SaveMode::Create };
    let written = s.write_system_entity(&a, Some(change), system_write(t, &m), &ctx()).await.unwrap().unwrap();
    assert_eq!(written.entity.properties["size"], json!(0));
    assert_eq!(s.get_team(&a, "ops").await.unwrap().unwrap().description.as_deref(), Some("Operations"));
}

pub async fn entity_writes_do_not_make_people_or_teams(s: &dyn Store) {
    let a = org(s, "a").await;
    let svc = super::bp(json!({"identifier": "svc", "title": "Service", "relations": {"owner": {"target": USER}}}));
    s.create_blueprint(&a, &svc, &ctx()).await.unwrap();
    let mut m = system_model(s, &a).await;
    m.insert("svc".into(), svc);
    // Neither written directly (one batch, and one by one when it names an entity twice) ...
    let ghost = || entity(USER, "ghost@example.com", json!({"port_type": "Standard"}), json!({}));
    for writes in [vec![put(ghost(), &m, false)], vec![put(ghost(), &m, false), put(ghost(), &m, false)]] {
        for r in s.write_entities(&a, writes, &ctx()).await.unwrap() {
            assert!(matches!(&r, Err(WriteRejection::Invalid(e)) if e.0[0].path == "identifier"), "{r:?}");
        }
    }
    // ... nor as the stub of a missing relation target.
    let e = entity("svc", "api", json!({}), json!({"owner": "ghost@example.com"}));
    for writes in [vec![put(e.clone(), &m, true)], vec![put(e.clone(), &m, true), put(e, &m, true)]] {
        for r in s.write_entities(&a, writes, &ctx()).await.unwrap() {
            assert!(matches!(&r, Err(WriteRejection::MissingTarget { blueprint, .. }) if blueprint == USER), "{r:?}");
        }
    }
    assert!(get(s, &a, USER, "ghost@example.com").await.is_none() && get(s, &a, "svc", "api").await.is_none());
}

/// PostgreSQL, several connections: a person change and a write of the person's `_user` entity
/// at once neither deadlock (user row, `_user` row and entity key locked in opposite orders
/// before `mirror::lock_people`) nor lose either change; memberships changed at once are all
/// counted in the team's `size`.
pub async fn concurrent_people_changes_keep_their_entities_whole(s: &dyn Store) {
    let a = org(s, "a").await;
    s.create_user(&user(&a, "c@example.com")).await.unwrap();
    s.save_team(&a, None, &team("core", &[]), SaveMode::Create, &ctx()).await.unwrap();
    for round in 0..20 {
        let name = PersonEdit { first_name: Some(Some(format!("n{round}"))), ..PersonEdit::default() };
        let pager = EntityWrite {
            blueprint: USER.into(),
            identifier: "c@example.com".into(),
            build: Box::new(move |stored| {
                let mut e = stored.cloned().expect("the person's entity");
                e.properties.insert("pager".into(), json!(round));
                Ok((e, vec![]))
            }),
            create_missing_related: false,
        };
        let c = ctx();
        let (x, y) =
            tokio::join!(s.update_person(&a, "c@example.com", &name, &c), s.write_system_entity(&a, None, pager, &c));
        x.unwrap();
        y.unwrap().unwrap();
        let u = get(s, &a, USER, "c@example.com").await.unwrap();
        assert_eq!((u.title, &u.properties["pager"]), (Some(format!("n{round}")), &json!(round)), "round {round}");
    }
    let emails: Vec<String> = (0..8).map(|i| format!("m{i}@example.com")).collect();
    for e in &emails {
        s.create_user(&user(&a, e)).await.unwrap();
    }
    let join = PersonEdit { teams: Some(vec!["core".into()]), ..PersonEdit::default() };
    let c = ctx();
    for r in super::join_all(emails.iter().map(|e| s.update_person(&a, e, &join, &c)).collect()).await {
        r.unwrap();
    }
    assert_eq!(get(s, &a, TEAM, "core").await.unwrap().properties["size"], json!(8), "every join counted");
}
