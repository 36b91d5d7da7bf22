//! `migrate::sqlite_to_postgres` on a catalog of 10,000 entities with relations, updates,
//! deletions and their audit history, in two organizations; then a second organization added
//! to the non-empty target, and a tampered row caught by the checksums. Skipped (with a note
//! on stderr) without `PORTOLAN_TEST_DATABASE_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/pg.rs"]
mod pg;

use std::collections::HashMap;

use portolan_core::{Blueprint, Entity};
use portolan_store::conformance::{ctx, entity, model, org, put};
use portolan_store::migrate::{CopyOptions, MigrateError, sqlite_to_postgres, verify};
use portolan_store::{
    AuditFilter, IntegrationLog, Invitation, LogFilter, NewJob, OrgId, SaveMode, SearchRequest, Session, SqliteStore,
    Store, TeamWrite, User, WebhookWrite,
};
use serde_json::json;

fn temp_db() -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("portolan-migrate-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("portolan.sqlite")
}

async fn write_all(s: &dyn Store, o: &OrgId, m: &HashMap<String, Blueprint>, es: Vec<Entity>) {
    for chunk in es.chunks(500) {
        let writes = chunk.iter().cloned().map(|e| put(e, m, false)).collect();
        for r in s.write_entities(o, writes, &ctx()).await.unwrap() {
            r.expect("write accepted");
        }
    }
}

/// n/90 teams, n/10 domains, n services with relations; every 4th service updated, every 18th deleted.
async fn catalog(s: &dyn Store, o: &OrgId, m: &HashMap<String, Blueprint>, n_services: usize) {
    for i in 0..5 {
        let name = format!("team-{i}");
        let w = TeamWrite {
            name: name.clone(),
            id: format!("team_{}_{name}", o.0),
            description: None,
            provider: "Port".into(),
            members: Some(vec![format!("m{i}@example.com")]),
        };
        s.save_team(o, None, &w, SaveMode::Create, &ctx()).await.unwrap();
    }
    let teams = (0..n_services / 90).map(|i| entity("team", &format!("t{i}"), json!({}), json!({}))).collect();
    write_all(s, o, m, teams).await;
    let domains = (0..n_services / 10)
        .map(|i| entity("domain", &format!("d{i}"), json!({"owner": format!("o{}", i % 7)}), json!({})))
        .collect();
    write_all(s, o, m, domains).await;
    let service = |i: usize, cpu: f64| {
        let lang = ["go", "rust", "python"][i % 3];
        let mut e = entity(
            "service",
            &format!("s{i}"),
            json!({"cpu": cpu, "lang": lang}),
            json!({"domain": format!("d{}", i % (n_services / 10)), "team": format!("t{}", i % (n_services / 90))}),
        );
        e.team = vec![format!("team-{}", i % 5)];
        e.datasource = i.is_multiple_of(4).then(|| "port-ocean/github/0.1".to_string());
        e
    };
    write_all(s, o, m, (0..n_services).map(|i| service(i, (i % 64) as f64)).collect()).await;
    write_all(s, o, m, (0..n_services).step_by(4).map(|i| service(i, 1.5)).collect()).await;
    let gone: Vec<String> = (0..n_services).skip(1).step_by(18).map(|i| format!("s{i}")).collect();
    s.delete_entities(o, "service", &gone, false, &ctx()).await.unwrap();
}

async fn all_entities(s: &dyn Store, o: &OrgId, m: &HashMap<String, Blueprint>) -> Vec<Entity> {
    let mut out = Vec::new();
    let mut req = SearchRequest::new(m, None, None, 1000);
    loop {
        let page = s.search(o, &req).await.unwrap();
        out.extend(page.entities);
        match page.next {
            Some(n) => req.after = Some(n),
            None => return out,
        }
    }
}

/// An integration with three config versions, kind examples, two resyncs and 250 log lines;
/// a user with a session and an invitation.
async fn integration_and_accounts(s: &dyn Store, o: &OrgId) {
    let config = |n: u32| {
        json!({"resources": [{"kind": "repo", "selector": {"query": "true"},
        "port": {"entity": {"mappings": {"identifier": ".name", "blueprint": format!("'service{n}'")}}}}]})
    };
    let data =
        json!({"installationAppType": "github", "installationType": "OnPrem", "version": "0.1", "config": config(1)});
    s.save_integration(o, "gh", &data, SaveMode::Create, true, &ctx()).await.unwrap();
    for n in 2..=3 {
        let data = json!({"installationAppType": "github", "installationType": "OnPrem", "version": "0.1", "config": config(n)});
        s.save_integration(o, "gh", &data, SaveMode::Update, true, &ctx()).await.unwrap();
    }
    s.put_kind_examples(o, "gh", "repo", &json!([{"name": "a", "stars": 1.0}]), "2026-01-01T00:00:00.000Z")
        .await
        .unwrap();
    for round in 0..2 {
        let r = s.start_resync(o, "gh", "2026-01-01T00:00:00.000Z", 100).await.unwrap();
        let lines: Vec<IntegrationLog> = (0..125)
            .map(|i| IntegrationLog {
                id: String::new(),
                at: format!("2026-01-01T00:{round:02}:{:02}.000Z", i % 60),
                level: ["INFO", "WARNING", "ERROR"][i % 3].into(),
                source: "ocean".into(),
                event: "log".into(),
                resync_id: Some(r.id.clone()),
                message: format!("line {round}-{i}"),
                extra: json!({"i": i}),
            })
            .collect();
        s.append_integration_logs(o, "gh", &lines).await.unwrap();
        s.finish_resync(o, "gh", "completed", "2026-01-01T00:05:00.000Z").await.unwrap();
    }
    let user = User {
        id: format!("usr_{}", o.0),
        org: o.clone(),
        email: format!("admin@{}.example", o.0),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role: "admin".into(),
        created_at: "2026-01-01T00:00:00.000Z".into(),
    };
    s.create_user(&user).await.unwrap();
    let session = Session {
        id_hash: format!("session-{}", o.0),
        org: o.clone(),
        user_id: user.id.clone(),
        csrf: "csrf".into(),
        created_at: 1_767_225_600,
        last_seen: 1_767_225_700,
    };
    s.create_session(&session).await.unwrap();
    let invitation = Invitation {
        token_hash: format!("invite-{}", o.0),
        org: o.clone(),
        email: format!("new@{}.example", o.0),
        role: "member".into(),
        created_by: user.id.clone(),
        created_at: 1_767_225_600,
        expires_at: 1_767_830_400,
        used_at: None,
    };
    s.create_invitation(&invitation).await.unwrap();

    // A webhook with an (encrypted, opaque to the store) secret, two deliveries and their log.
    let hook = WebhookWrite {
        identifier: "gh-hook".into(),
        data: json!({"title": "GitHub", "enabled": true, "mappings": [], "security": {"signatureAlgorithm": "sha256"}}),
        webhook_key: format!("key-{}", o.0),
        secret: Some("v1:k1:bm9uY2U:Y2lwaGVy".into()),
        secret_key_id: Some("k1".into()),
    };
    s.save_webhook(o, &hook, SaveMode::Create, &ctx()).await.unwrap();
    for request in ["d-1", "d-2"] {
        let job = NewJob { kind: "webhook_delivery".into(), payload: json!({"webhook": "gh-hook"}), max_attempts: 3 };
        s.enqueue_webhook_delivery(o, "gh-hook", Some(request), &job, "2026-01-01T00:00:00.000Z").await.unwrap();
    }
    let lines: Vec<IntegrationLog> = (0..30)
        .map(|i| IntegrationLog {
            id: String::new(),
            at: format!("2026-01-01T00:00:{i:02}.000Z"),
            level: "INFO".into(),
            source: "server".into(),
            event: "delivery_received".into(),
            resync_id: None,
            message: format!("delivery {i}"),
            extra: json!({}),
        })
        .collect();
    s.append_webhook_logs(o, "gh-hook", &lines).await.unwrap();
    // The web UI's saved initial filter of a catalog page.
    let initial = portolan_store::InitialFilter {
        filter: json!({"q": null, "rules": [["language", "=", "rust"]]}),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
        updated_by: "admin@example.com".into(),
    };
    s.set_initial_filter(o, "service", Some(&initial)).await.unwrap();
}

#[tokio::test]
async fn copies_a_catalog_of_10000_entities_and_verifies_it() {
    let Some(pg) = pg::fresh().await else { return };
    let path = temp_db();
    let src = SqliteStore::open(&path).await.unwrap();
    src.setting_or_init("token_signing_key", "the-old-key").await.unwrap();
    let acme = org(&src, "acme").await;
    src.add_credential(&acme, "acme-client", "hash-of-acme-secret", "default", "2026-01-01T00:00:00.000Z")
        .await
        .unwrap();
    let m = model(&src, &acme).await;
    catalog(&src, &acme, &m, 9000).await;
    integration_and_accounts(&src, &acme).await;
    let small = org(&src, "small").await;
    let ms = model(&src, &small).await;
    catalog(&src, &small, &ms, 900).await;

    let quotas = portolan_store::Quotas { max_users: Some(15), max_entities: None };
    src.set_quotas(&acme, &quotas).await.unwrap();
    let report = sqlite_to_postgres(&src, &pg, &CopyOptions::default()).await.unwrap();
    assert_eq!(pg.quotas(&acme).await.unwrap(), quotas, "quotas are copied, unset ones as unset");
    assert_eq!(report.organizations, vec!["acme".to_string(), "small".to_string()]);
    assert!(report.settings_copied && report.committed);
    for t in &report.tables {
        assert!(t.matches(), "{t:?}");
    }
    let count = |t: &str| report.tables.iter().find(|c| c.table == t).unwrap().target_rows;
    // Plus the system entities: a `_team` per team (5 per org) and a `_user` per user (1).
    assert_eq!(count("entities"), (100 + 900 + 9000 - 500) + (10 + 90 + 900 - 50) + 10 + 1);
    assert_eq!(count("entity_relations"), 2 * (9000 - 500) + 2 * (900 - 50));
    assert_eq!(count("credentials"), 1);
    assert_eq!(count("blueprints"), 6 + 2 * 2, "and each organization's _user and _team");
    // Every create (11,000 entities, 6 blueprints), update (2,250 + 225) and delete (500 + 50),
    // the integration's create and two updates, the webhook's create, and 5 teams per org with
    // their 10 `_team` entities and the user's `_user` entity.
    assert_eq!(count("audit_log"), 11_000 + 6 + 2_475 + 550 + 3 + 1 + 10 + 11);
    assert_eq!((count("teams"), count("team_members")), (10, 10));
    assert_eq!(count("integrations"), 1);
    assert_eq!(count("integration_config_versions"), 3);
    assert_eq!(count("integration_examples"), 1);
    assert_eq!(count("integration_resyncs"), 2);
    assert_eq!(count("integration_logs"), 250);
    assert_eq!((count("users"), count("sessions"), count("invitations")), (1, 1, 1));
    assert_eq!((count("webhooks"), count("webhook_deliveries"), count("webhook_logs")), (1, 2, 30));
    assert_eq!(count("ui_initial_filters"), 1);
    assert_eq!(src.initial_filter(&acme, "service").await.unwrap(), pg.initial_filter(&acme, "service").await.unwrap());
    assert!(pg.initial_filter(&acme, "service").await.unwrap().is_some());

    // Read back through the PostgreSQL store: the same entities in the same (cursor) order.
    let (before, after) = (all_entities(&src, &acme, &m).await, all_entities(&*pg, &acme, &m).await);
    assert_eq!(before.len(), 9500 + 5 + 1, "with acme's five _team entities and its _user entity");
    assert_eq!(before, after);
    let filter = AuditFilter { limit: 100_000, ..AuditFilter::default() };
    let (a, b) = (src.list_audit(&acme, &filter).await.unwrap(), pg.list_audit(&acme, &filter).await.unwrap());
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).all(|(x, y)| x.id == y.id && x.at == y.at && x.diff == y.diff && x.action == y.action));
    assert_eq!(pg.credential("acme-client").await.unwrap().unwrap().secret_hash, "hash-of-acme-secret");
    // The integration, its event log (in order, with its resyncs) and the accounts read back alike.
    assert_eq!(src.get_integration(&acme, "gh").await.unwrap(), pg.get_integration(&acme, "gh").await.unwrap());
    assert_eq!(
        src.integration_config_versions(&acme, "gh").await.unwrap(),
        pg.integration_config_versions(&acme, "gh").await.unwrap()
    );
    let logs = LogFilter { limit: 300, ..LogFilter::default() };
    let (a, b) = (
        src.list_integration_logs(&acme, "gh", &logs).await.unwrap(),
        pg.list_integration_logs(&acme, "gh", &logs).await.unwrap(),
    );
    assert_eq!(a.len(), 250);
    assert_eq!(a, b);
    assert_eq!(src.latest_resync(&acme, "gh").await.unwrap(), pg.latest_resync(&acme, "gh").await.unwrap());
    let email = "admin@".to_string() + &acme.0 + ".example";
    assert_eq!(src.user_by_email(&email).await.unwrap(), pg.user_by_email(&email).await.unwrap());
    let session = "session-".to_string() + &acme.0;
    assert_eq!(src.session(&session).await.unwrap(), pg.session(&session).await.unwrap());
    assert_eq!(src.get_webhook(&acme, "gh-hook").await.unwrap(), pg.get_webhook(&acme, "gh-hook").await.unwrap());
    let (a_hook, b_hook) = (
        src.list_webhook_logs(&acme, "gh-hook", &logs).await.unwrap(),
        pg.list_webhook_logs(&acme, "gh-hook", &logs).await.unwrap(),
    );
    assert_eq!((a_hook.len(), &a_hook), (30, &b_hook));
    // A replayed delivery is still recognized after the move.
    let job = NewJob { kind: "webhook_delivery".into(), payload: json!({}), max_attempts: 3 };
    let again = pg.enqueue_webhook_delivery(&acme, "gh-hook", Some("d-1"), &job, "2026-02-01T00:00:00.000Z").await;
    assert!(matches!(again.unwrap(), portolan_store::Delivery::Duplicate { .. }));
    // New log lines and resyncs continue after the copied ids.
    let r = pg.start_resync(&acme, "gh", "2026-02-01T00:00:00.000Z", 1).await.unwrap();
    assert_ne!(Some(&r.id), a[0].resync_id.as_ref());
    assert_eq!(pg.setting_or_init("token_signing_key", "new").await.unwrap(), "the-old-key");
    // The identity sequences continue after the copied ids: new writes work.
    let e = entity("team", "t-new", json!({}), json!({}));
    pg.write_entities(&acme, vec![put(e, &m, false)], &ctx()).await.unwrap().pop().unwrap().unwrap();
    let last = all_entities(&*pg, &acme, &m).await.pop().unwrap();
    assert_eq!(last.identifier, "t-new", "the new entity sorts after every copied one");

    // A non-empty target is refused, and nothing is written.
    let err = sqlite_to_postgres(&src, &pg, &CopyOptions::default()).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Refused(m) if m.contains("not empty") && m.contains("--allow-non-empty")));
    let opts = CopyOptions { organizations: vec!["acme".into()], allow_non_empty: true };
    let err = sqlite_to_postgres(&src, &pg, &opts).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Refused(m) if m.contains("already exists")), "{err}");
    let opts = CopyOptions { organizations: vec!["nope".into()], allow_non_empty: true };
    let err = sqlite_to_postgres(&src, &pg, &opts).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Refused(m) if m.contains("acme, small")), "{err}");

    // Another organization added to the non-empty target: ids shift past the target's own.
    let late = org(&src, "late").await;
    let ml = model(&src, &late).await;
    catalog(&src, &late, &ml, 180).await;
    let opts = CopyOptions { organizations: vec!["late".into()], allow_non_empty: true };
    let report = sqlite_to_postgres(&src, &pg, &opts).await.unwrap();
    assert!(!report.settings_copied);
    assert!(report.rid_offset > 0 && report.audit_offset > 0);
    assert!(report.verified(), "{:?}", report.tables);
    assert_eq!(all_entities(&src, &late, &ml).await, all_entities(&*pg, &late, &ml).await);

    // The checksums are not decorative: one changed property is caught.
    let mut conn = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&pg.url()).await.unwrap()
    };
    sqlx::query("UPDATE entities SET properties = jsonb_set(properties, '{cpu}', '999') WHERE identifier = 's2' AND org_id = $1")
        .bind(&late.0)
        .execute(&mut conn)
        .await
        .unwrap();
    let checks = verify(&src, &pg, &report).await.unwrap();
    let bad: Vec<&str> = checks.iter().filter(|c| !c.matches()).map(|c| c.table).collect();
    assert_eq!(bad, vec!["entities"]);
    pg.close().await;
    src.close().await;
}

/// Automation events dispatched on SQLite (its cursor moved past them, their audit records
/// still marked) are not dispatched again on PostgreSQL; the one still waiting is.
#[tokio::test]
async fn dispatched_automation_events_stay_dispatched_after_the_move() {
    let Some(pg) = pg::fresh().await else { return };
    let src = SqliteStore::open(&temp_db()).await.unwrap();
    let acme = org(&src, "acme").await;
    let m = model(&src, &acme).await;
    let automation = portolan_store::ActionWrite {
        identifier: "on_team".into(),
        id: "action_on_team".into(),
        data: json!({"identifier": "on_team", "trigger": {"type": "automation",
            "event": {"type": "ANY_ENTITY_CHANGE", "blueprintIdentifier": "team"}},
            "invocationMethod": {"type": "WEBHOOK", "url": "http://x"}}),
    };
    src.save_action(&acme, &automation, SaveMode::Create, &ctx()).await.unwrap();
    write_all(&src, &acme, &m, ["t1", "t2", "t3"].map(|t| entity("team", t, json!({}), json!({}))).to_vec()).await;
    let events = src.pending_events(&acme, 10).await.unwrap();
    assert_eq!(events.len(), 3);
    let taken = src.dispatch_events(&acme, &[(events[0].id, vec![]), (events[1].id, vec![])]).await.unwrap();
    assert_eq!(taken, [events[0].id, events[1].id]);

    let report = sqlite_to_postgres(&src, &pg, &CopyOptions::default()).await.unwrap();
    assert!(report.verified(), "{:?}", report.tables);
    let waiting = pg.pending_events(&acme, 10).await.unwrap();
    let entities: Vec<Option<&str>> = waiting.iter().map(|e| e.entity.as_deref()).collect();
    assert_eq!(entities, [Some("t3")], "only the event SQLite had not dispatched waits on PostgreSQL");
    pg.close().await;
    src.close().await;
}

/// Says whether this binary ran on PostgreSQL (see `test_db::postgresql_half`).
#[tokio::test]
async fn postgresql_half() {
    pg::postgresql_half("migrate-data, tests/migrate_postgres").await;
}
