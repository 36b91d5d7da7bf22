//! Conformance: teams (keyed by name, members by e-mail), renames and deletions that follow
//! into entities' `team`, entity writes that name only existing teams, people (role, status,
//! teams), audit and tenancy.

use portolan_core::Entity;
use serde_json::json;

use super::{T0, ctx, entity, idents, model, org, put, req, write_ok};
use crate::{
    AuditFilter, OrgId, PersonEdit, SaveMode, SearchRequest, Session, Store, StoreError, TeamWrite, User,
    WriteRejection,
};

pub(super) fn team(name: &str, members: &[&str]) -> TeamWrite {
    TeamWrite {
        name: name.into(),
        id: format!("team_{name}"),
        description: Some(format!("{name} team")),
        provider: "Port".into(),
        members: Some(members.iter().map(|m| m.to_string()).collect()),
    }
}

fn with_team(mut e: Entity, teams: &[&str]) -> Entity {
    e.team = teams.iter().map(|t| t.to_string()).collect();
    e
}

async fn teams_of(s: &dyn Store, o: &OrgId, bp: &str, id: &str) -> Vec<String> {
    s.get_entity(o, bp, id).await.unwrap().expect("entity").team
}

/// The `team` entities `$team in [names]` finds (answered from the entity_teams rows the
/// write path's triggers keep), sorted, and their count.
async fn in_teams(
    s: &dyn Store,
    o: &OrgId,
    m: &std::collections::HashMap<String, portolan_core::Blueprint>,
    names: &[&str],
) -> Vec<String> {
    let q = portolan_core::search::parse_query(
        &json!({"combinator": "and", "rules": [{"property": "$team", "operator": "in", "value": names}]}),
    )
    .unwrap();
    let r = req(Some("team"), Some(&q), m);
    let found = idents(s, o, &r).await;
    assert_eq!(s.count_entities(o, &r).await.unwrap(), found.len() as u64, "count agrees with the search");
    // The same teams as a team-scoped read restriction (the server's shape), with no other
    // filter: counted from the entity_teams key alone.
    let visible = portolan_core::search::parse_query(&json!({"combinator": "and", "rules": [
        {"combinator": "or", "rules": [
            {"property": "$blueprint", "operator": "!=", "value": "team"},
            {"property": "$team", "operator": "containsAny", "value": names}]},
        {"property": "$blueprint", "operator": "!=", "value": "domain"}]}))
    .unwrap();
    let restricted = SearchRequest { visible: Some(&visible), ..req(Some("team"), None, m) };
    assert_eq!(s.count_entities(o, &restricted).await.unwrap(), found.len() as u64, "restricted count {names:?}");
    assert_eq!(idents(s, o, &restricted).await, found, "restricted search {names:?}");
    // Page by page (one entity a page): every entity once, in row order (a reader in one team
    // walks that team's rows).
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = s.search(o, &SearchRequest { after, limit: 1, ..restricted.clone() }).await.unwrap();
        paged.extend(page.entities.into_iter().map(|e| e.identifier));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    paged.sort();
    assert_eq!(paged, found, "restricted pages {names:?}");
    let domain = SearchRequest { visible: Some(&visible), ..req(Some("domain"), None, m) };
    assert_eq!(s.count_entities(o, &domain).await.unwrap(), 0, "a blueprint the reader may not read");
    found
}

/// Blueprint permission documents: none until set (the defaults), kept beside the blueprint
/// (a blueprint update leaves them), audited, listed, per organization; a missing blueprint is
/// `NotFound`.
pub async fn blueprint_permissions_are_kept_and_audited(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    model(s, &a).await;
    assert_eq!(s.blueprint_permissions(&a, "service").await.unwrap(), None);
    assert!(matches!(s.blueprint_permissions(&a, "ghost").await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.blueprint_permissions(&b, "service").await, Err(StoreError::NotFound(_))));
    let doc = json!({"entities": {"read": {"roles": ["Admin"], "users": [], "teams": ["ops"], "ownedByTeam": true}}});
    s.set_blueprint_permissions(&a, "service", &doc, &ctx()).await.unwrap();
    assert!(matches!(s.set_blueprint_permissions(&b, "service", &doc, &ctx()).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.blueprint_permissions(&a, "service").await.unwrap(), Some(doc.clone()));
    assert_eq!(s.all_blueprint_permissions(&a).await.unwrap(), vec![("service".to_string(), doc.clone())]);
    assert!(s.all_blueprint_permissions(&b).await.unwrap().is_empty());
    let bp = s.get_blueprint(&a, "service").await.unwrap().unwrap().blueprint;
    s.update_blueprint(&a, "service", &bp, &[], &ctx()).await.unwrap();
    assert_eq!(s.blueprint_permissions(&a, "service").await.unwrap(), Some(doc.clone()), "kept across updates");
    let recs = s
        .list_audit(&a, &AuditFilter { resources: vec!["blueprint".into()], limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    let rec = recs.iter().find(|r| r.diff.as_ref().is_some_and(|d| d["after"].get("permissions").is_some()));
    let diff = rec.expect("an audit record of the permission change").diff.clone().unwrap();
    assert_eq!((diff["before"]["permissions"].clone(), diff["after"]["permissions"].clone()), (json!(null), doc));
}

/// Teams: created once per name, members replaced, renamed (entities follow, members move),
/// deleted (entities lose it), every change audited; another organization sees none of it.
pub async fn teams_are_saved_renamed_deleted_audited_and_tenant_scoped(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let m = model(s, &a).await;
    let saved = s.save_team(&a, None, &team("core", &["x@example.com"]), SaveMode::Create, &ctx()).await.unwrap();
    assert_eq!((saved.id.as_str(), saved.members.as_slice()), ("team_core", &["x@example.com".to_string()][..]));
    let dup = s.save_team(&a, None, &team("core", &[]), SaveMode::Create, &ctx()).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    let missing = s.save_team(&a, Some("ghost"), &team("ghost", &[]), SaveMode::Update, &ctx()).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
    s.save_team(&a, None, &team("web", &[]), SaveMode::Create, &ctx()).await.unwrap();
    assert_eq!(s.missing_teams(&a, &["core".into(), "nope".into(), "web".into()]).await.unwrap(), ["nope"]);
    assert_eq!(s.missing_teams(&b, &["core".into()]).await.unwrap(), ["core"], "B has no team");

    write_ok(s, &a, &m, vec![with_team(entity("team", "t1", json!({}), json!({})), &["core", "web"])]).await;
    write_ok(s, &a, &m, vec![with_team(entity("team", "t2", json!({}), json!({})), &["web"])]).await;
    // Another blueprint's entities in the same teams are not counted as the blueprint's.
    write_ok(s, &a, &m, vec![with_team(entity("domain", "d1", json!({}), json!({})), &["core", "web"])]).await;

    // Members replaced; `None` keeps them.
    let mut w = team("core", &["y@example.com", "x@example.com", "y@example.com"]);
    let upd = s.save_team(&a, Some("core"), &w, SaveMode::Update, &ctx()).await.unwrap();
    assert_eq!(upd.members, ["x@example.com", "y@example.com"], "sorted, once each");
    w.members = None;
    w.description = None;
    let upd = s.save_team(&a, Some("core"), &w, SaveMode::Update, &ctx()).await.unwrap();
    assert_eq!((upd.members.len(), upd.description.as_deref(), upd.id.as_str()), (2, None, "team_core"));

    // Rename: entities and members follow; the old name is free, the new one must be.
    let taken = s.save_team(&a, Some("core"), &team("web", &[]), SaveMode::Update, &ctx()).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let mut r = team("platform", &[]);
    r.members = None;
    let renamed = s.save_team(&a, Some("core"), &r, SaveMode::Update, &ctx()).await.unwrap();
    assert_eq!(renamed.members.len(), 2, "members moved with the name");
    assert!(s.get_team(&a, "core").await.unwrap().is_none());
    assert_eq!(teams_of(s, &a, "team", "t1").await, ["platform", "web"]);
    assert_eq!(teams_of(s, &a, "team", "t2").await, ["web"]);
    // `$team` rules follow the rename (they read the entity_teams rows, not the arrays).
    assert_eq!(in_teams(s, &a, &m, &["platform"]).await, ["t1"]);
    assert!(in_teams(s, &a, &m, &["core"]).await.is_empty());
    assert_eq!(in_teams(s, &a, &m, &["web", "platform"]).await, ["t1", "t2"]);

    // Delete: gone from entities, members and the list.
    s.delete_team(&a, "web", &ctx()).await.unwrap();
    assert_eq!(teams_of(s, &a, "team", "t1").await, ["platform"]);
    assert!(teams_of(s, &a, "team", "t2").await.is_empty());
    assert!(matches!(s.delete_team(&a, "web", &ctx()).await, Err(StoreError::NotFound(_))));
    let names: Vec<String> = s.list_teams(&a).await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["platform"]);
    assert!(in_teams(s, &a, &m, &["web"]).await.is_empty(), "the deletion reached the team rows");
    // An entity write changing its teams, then its deletion.
    write_ok(s, &a, &m, vec![with_team(entity("team", "t2", json!({}), json!({})), &["platform"])]).await;
    assert_eq!(in_teams(s, &a, &m, &["platform"]).await, ["t1", "t2"]);
    write_ok(s, &a, &m, vec![with_team(entity("team", "t1", json!({}), json!({})), &[])]).await;
    assert_eq!(in_teams(s, &a, &m, &["platform"]).await, ["t2"]);
    s.delete_entities(&a, "team", &["t2".into()], false, &ctx()).await.unwrap();
    assert!(in_teams(s, &a, &m, &["platform"]).await.is_empty());

    // Tenancy.
    assert!(s.list_teams(&b).await.unwrap().is_empty());
    assert!(s.get_team(&b, "platform").await.unwrap().is_none());
    assert!(matches!(s.delete_team(&b, "platform", &ctx()).await, Err(StoreError::NotFound(_))));
    let recs = s
        .list_audit(&a, &AuditFilter { resources: vec!["team".into()], limit: 20, ..AuditFilter::default() })
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = recs.iter().map(|r| (r.action.as_str(), r.identifier.as_str())).collect();
    assert_eq!(
        actions,
        [
            ("DELETE", "web"),
            ("UPDATE", "core"),
            ("UPDATE", "core"),
            ("UPDATE", "core"),
            ("CREATE", "web"),
            ("CREATE", "core")
        ]
    );
    // Another organization's entity in a team of the same name is not found from here.
    let mb = model(s, &b).await;
    s.save_team(&b, None, &team("platform", &[]), SaveMode::Create, &ctx()).await.unwrap();
    write_ok(s, &b, &mb, vec![with_team(entity("team", "tb", json!({}), json!({})), &["platform"])]).await;
    assert!(in_teams(s, &a, &m, &["platform"]).await.is_empty());
    assert_eq!(in_teams(s, &b, &mb, &["platform"]).await, ["tb"]);
}

/// For every non-empty set of `names`: the team entities some of them own, searched and counted
/// ([`in_teams`]), are those whose stored teams meet the set.
async fn every_team_set(
    s: &dyn Store,
    a: &OrgId,
    m: &std::collections::HashMap<String, portolan_core::Blueprint>,
    names: &[&str],
) {
    let mut stored = Vec::new();
    for id in ["e1", "e2", "e3", "e4", "e5", "e6", "e7"] {
        stored.push((id.to_string(), teams_of(s, a, "team", id).await));
    }
    for mask in 1..(1u32 << names.len()) {
        let set: Vec<&str> = names.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| *n).collect();
        let want: Vec<String> = stored
            .iter()
            .filter(|(_, t)| t.iter().any(|x| set.contains(&x.as_str())))
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(in_teams(s, a, m, &set).await, want, "teams {set:?}");
    }
}

/// Team-scoped counts (answered from the entity_teams rows: one entry per entity whose first
/// team is among the reader's, plus entities owned through another of their teams) count every
/// visible entity once, for every set of teams, also after a rename changes which team comes
/// first and after an entity's teams change.
pub async fn team_scoped_counts_count_entities_of_several_teams_once(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    for t in ["a", "b", "c", "d"] {
        s.save_team(&a, None, &team(t, &[]), SaveMode::Create, &ctx()).await.unwrap();
    }
    let owned: &[(&str, &[&str])] = &[
        ("e1", &["a"]),
        ("e2", &["b"]),
        ("e3", &["a", "b"]),
        ("e4", &["b", "c"]),
        ("e5", &["c", "a"]),
        ("e6", &[]),
        ("e7", &["d", "c", "b"]),
    ];
    let entities = owned.iter().map(|(id, t)| with_team(entity("team", id, json!({}), json!({})), t)).collect();
    write_ok(s, &a, &m, entities).await;
    every_team_set(s, &a, &m, &["a", "b", "c", "d"]).await;
    // "c" renamed to come first ("0c" < "a"): e4, e5 and e7 get another first team.
    let mut r = team("0c", &[]);
    r.members = None;
    s.save_team(&a, Some("c"), &r, SaveMode::Update, &ctx()).await.unwrap();
    every_team_set(s, &a, &m, &["a", "b", "0c", "d"]).await;
    // An entity's teams change, first team included.
    write_ok(s, &a, &m, vec![with_team(entity("team", "e3", json!({}), json!({})), &["d", "b"])]).await;
    write_ok(s, &a, &m, vec![with_team(entity("team", "e6", json!({}), json!({})), &["a", "0c"])]).await;
    every_team_set(s, &a, &m, &["a", "b", "0c", "d"]).await;
}

/// Concurrent edits of different fields of one person both hold: an edit writes only the
/// columns it names (an SSO sign-in recording its provider never undoes an admin's disabling).
pub async fn concurrent_person_edits_of_different_fields_both_hold(s: &dyn Store) {
    let a = org(s, "a").await;
    let u = User {
        id: "usr_c".into(),
        org: a.clone(),
        email: "c@example.com".into(),
        password_hash: "$argon2id$x".into(),
        role: "member".into(),
        created_at: T0.into(),
    };
    s.create_user(&u).await.unwrap();
    for round in 0..30 {
        let reset = PersonEdit { status: Some("Active".into()), ..PersonEdit::default() };
        s.update_person(&a, "c@example.com", &reset, &ctx()).await.unwrap();
        let disable = PersonEdit { status: Some("Disabled".into()), ..PersonEdit::default() };
        let name = PersonEdit { first_name: Some(Some(format!("n{round}"))), ..PersonEdit::default() };
        let c = ctx();
        let (x, y) = tokio::join!(
            s.update_person(&a, "c@example.com", &disable, &c),
            s.update_person(&a, "c@example.com", &name, &c)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        let p = s.get_person(&a, "c@example.com").await.unwrap().unwrap();
        assert_eq!(
            (p.status.as_str(), p.first_name.as_deref()),
            ("Disabled", Some(format!("n{round}").as_str())),
            "round {round}"
        );
        // The audit records chain: the later edit's "before" is the earlier one's "after" (each
        // diff read inside its own transaction), and the later answer is the final person.
        let recs = s
            .list_audit(&a, &AuditFilter { resources: vec!["user".into()], limit: 2, ..AuditFilter::default() })
            .await
            .unwrap();
        let (later, earlier) = (recs[0].diff.clone().unwrap(), recs[1].diff.clone().unwrap());
        assert_eq!(later["before"], earlier["after"], "round {round}: {earlier} then {later}");
        let last = if later["after"]["status"] == "Disabled" && later["after"]["firstName"] == format!("n{round}") {
            [&x, &y]
        } else {
            panic!("round {round}: the later record does not hold both edits: {later}")
        };
        assert!(
            last.iter()
                .any(|q| q.status == "Disabled" && q.first_name.as_deref() == Some(format!("n{round}").as_str())),
            "round {round}: one answer is the person after both edits"
        );
    }
}

/// An entity write may keep a team it has but may only add existing teams: on the batch path
/// and the one-by-one path (a batch naming an entity twice) alike, the rejection names the
/// team at its path and nothing of that entity is written.
pub async fn entity_writes_name_only_existing_teams(s: &dyn Store) {
    let a = org(s, "a").await;
    let m = model(s, &a).await;
    s.save_team(&a, None, &team("core", &[]), SaveMode::Create, &ctx()).await.unwrap();
    let rejected = |r: &Result<crate::Written, WriteRejection>, path: &str| match r {
        Err(WriteRejection::Invalid(errs)) => {
            assert!(errs.0.iter().any(|e| e.path == path && e.message.contains("is not a team")), "{errs:?}")
        }
        other => panic!("expected a team rejection at {path}, got {other:?}"),
    };
    let t = |id: &str, teams: &[&str]| with_team(entity("team", id, json!({}), json!({})), teams);
    let out = s
        .write_entities(
            &a,
            vec![put(t("ok", &["core"]), &m, false), put(t("bad", &["core", "ghost"]), &m, false)],
            &ctx(),
        )
        .await
        .unwrap();
    assert!(out[0].is_ok(), "{:?}", out[0]);
    rejected(&out[1], "team[1]");
    assert!(s.get_entity(&a, "team", "bad").await.unwrap().is_none());
    // One by one (the same key twice).
    let out = s
        .write_entities(&a, vec![put(t("seq", &["ghost"]), &m, false), put(t("seq", &["core"]), &m, false)], &ctx())
        .await
        .unwrap();
    rejected(&out[0], "team");
    assert!(out[1].is_ok(), "{:?}", out[1]);
    assert_eq!(teams_of(s, &a, "team", "seq").await, ["core"]);
}

/// People: Port's fields beside the web account, teams by e-mail (an invitee's too), role
/// and status changes audited; disabling ends sessions; unknown teams and users refused.
pub async fn people_have_roles_status_and_teams(s: &dyn Store) {
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let u = User {
        id: "usr_p".into(),
        org: a.clone(),
        email: "p@example.com".into(),
        password_hash: "$argon2id$x".into(),
        role: "member".into(),
        created_at: T0.into(),
    };
    s.create_user(&u).await.unwrap();
    s.create_session(&Session {
        id_hash: "h".into(),
        org: a.clone(),
        user_id: u.id.clone(),
        csrf: "c".into(),
        created_at: 1,
        last_seen: 1,
    })
    .await
    .unwrap();
    s.save_team(&a, None, &team("core", &["p@example.com", "invitee@example.com"]), SaveMode::Create, &ctx())
        .await
        .unwrap();
    let p = s.get_person(&a, "p@example.com").await.unwrap().expect("person");
    assert_eq!(
        (p.status.as_str(), p.role.as_str(), p.teams.as_slice()),
        ("Active", "member", &["core".to_string()][..])
    );
    assert!(s.get_person(&b, "p@example.com").await.unwrap().is_none(), "tenancy");
    assert_eq!(s.list_people(&a).await.unwrap().len(), 1, "invitees are members, not people");

    s.save_team(&a, None, &team("web", &[]), SaveMode::Create, &ctx()).await.unwrap();
    let edit = PersonEdit {
        role: Some("admin".into()),
        first_name: Some(Some("Pat".into())),
        status: Some("Disabled".into()),
        teams: Some(vec!["web".into()]),
        moderates: Some(vec!["service".into(), "env".into(), "service".into()]),
        ..PersonEdit::default()
    };
    let after = s.update_person(&a, "p@example.com", &edit, &ctx()).await.unwrap();
    assert_eq!(
        (after.role.as_str(), after.first_name.as_deref(), after.teams.as_slice()),
        ("admin", Some("Pat"), &["web".to_string()][..])
    );
    assert_eq!(after.moderates, ["env", "service"], "moderated blueprints, sorted, once each");
    assert_eq!(s.get_person(&a, "p@example.com").await.unwrap().unwrap(), after);
    assert!(s.session("h").await.unwrap().is_none(), "disabling ends sessions");
    assert_eq!(s.get_team(&a, "core").await.unwrap().unwrap().members, ["invitee@example.com"]);

    assert_eq!(after.providers, ["port"], "a password: Port's own provider");

    let bad = PersonEdit { teams: Some(vec!["ghost".into()]), ..PersonEdit::default() };
    assert!(matches!(s.update_person(&a, "p@example.com", &bad, &ctx()).await, Err(StoreError::NotFound(_))));
    assert_eq!(
        s.get_person(&a, "p@example.com").await.unwrap().unwrap().teams,
        ["web"],
        "a refused edit changes nothing"
    );
    assert!(matches!(s.update_person(&b, "p@example.com", &edit, &ctx()).await, Err(StoreError::NotFound(_))));
    let recs = s
        .list_audit(&a, &AuditFilter { resources: vec!["user".into()], limit: 5, ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(recs.len(), 1);
    let diff = recs[0].diff.as_ref().expect("diff");
    assert_eq!((diff["before"]["role"].as_str(), diff["after"]["status"].as_str()), (Some("member"), Some("Disabled")));

    // Single sign-on providers are added once each, after "port"; an account made by single
    // sign-on (no password) has only them.
    let sso = PersonEdit { signed_in_with: Some("OIDC".into()), ..PersonEdit::default() };
    for _ in 0..2 {
        let p = s.update_person(&a, "p@example.com", &sso, &ctx()).await.unwrap();
        assert_eq!(p.providers, ["port", "OIDC"]);
    }
    let jit = User { id: "usr_j".into(), email: "j@example.com".into(), password_hash: "!sso".into(), ..u.clone() };
    s.create_user(&jit).await.unwrap();
    assert_eq!(s.get_person(&a, "j@example.com").await.unwrap().unwrap().providers, Vec::<String>::new());
    let j = s.update_person(&a, "j@example.com", &sso, &ctx()).await.unwrap();
    assert_eq!(j.providers, ["OIDC"]);
    assert_eq!(s.get_person(&a, "j@example.com").await.unwrap().unwrap().providers, ["OIDC"], "stored");
    let p = s.update_person(&a, "p@example.com", &PersonEdit::default(), &ctx()).await.unwrap();
    assert_eq!(p.providers, ["port", "OIDC"], "an edit without a sign-in keeps them");
    // An account made by single sign-on names its provider from the statement that creates it
    // (no moment with no provider); signing in through it again adds nothing.
    let made =
        User { id: "usr_k".into(), email: "k@example.com".into(), password_hash: "!sso:SAML".into(), ..u.clone() };
    s.create_user(&made).await.unwrap();
    assert_eq!(s.get_person(&a, "k@example.com").await.unwrap().unwrap().providers, ["SAML"]);
    let saml = PersonEdit { signed_in_with: Some("SAML".into()), ..PersonEdit::default() };
    assert_eq!(s.update_person(&a, "k@example.com", &saml, &ctx()).await.unwrap().providers, ["SAML"]);
    assert_eq!(s.update_person(&a, "k@example.com", &sso, &ctx()).await.unwrap().providers, ["SAML", "OIDC"]);

    s.set_member_teams(&a, "later@example.com", &["core".into(), "web".into()], &ctx()).await.unwrap();
    assert_eq!(s.get_team(&a, "web").await.unwrap().unwrap().members, ["later@example.com", "p@example.com"]);
    assert!(matches!(
        s.set_member_teams(&a, "later@example.com", &["ghost".into()], &ctx()).await,
        Err(StoreError::NotFound(_))
    ));
    s.delete_user(&a, "usr_p", &ctx()).await.unwrap();
    assert_eq!(
        s.get_team(&a, "web").await.unwrap().unwrap().members,
        ["later@example.com"],
        "removed users leave teams"
    );
}
